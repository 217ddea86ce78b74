"""A realistic synthetic book in the input contract, deterministic for a seed.

Households mix taxable, traditional, Roth, HSA and 529 accounts; positions drift
from their model; lots carry gains and losses of both terms; some households have
recent purchases and loss sales (wash-sale rules), restrictions (including
no_hold), 401(k) menus, held-away assets, contributions and withdrawals, tax
budgets and turnover limits. A small share is made bad on purpose (a lot with a
negative quantity, a lot in an unknown security) to exercise validation.

Everything is generated with vectorized numpy over accounts and lots, so 100,000
households take well under a minute.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DEFAULT_AS_OF = "2026-11-20"

# (security_id, asset_class, wash_group, yield, qualified, exempt, foreign, cg_dist, exp_ret, sector, tags)
SECURITIES = [
    ("VTI", "us_equity", "VTI", 0.014, 0.95, 0.0, 0.0, 0.000, 0.070, None, None),
    ("VTSAX", "us_equity", "VTI", 0.014, 0.95, 0.0, 0.0, 0.002, 0.070, None, None),
    ("ITOT", "us_equity", "ITOT", 0.014, 0.95, 0.0, 0.0, 0.000, 0.070, None, None),
    ("SCHB", "us_equity", "SCHB", 0.014, 0.95, 0.0, 0.0, 0.000, 0.070, None, None),
    ("FXAIX", "us_equity", "FXAIX", 0.013, 0.95, 0.0, 0.0, 0.001, 0.070, None, None),
    ("VXUS", "intl_equity", "VXUS", 0.030, 0.70, 0.0, 0.08, 0.000, 0.075, None, None),
    ("IXUS", "intl_equity", "IXUS", 0.030, 0.70, 0.0, 0.08, 0.000, 0.075, None, None),
    ("FTIHX", "intl_equity", "FTIHX", 0.029, 0.70, 0.0, 0.08, 0.001, 0.075, None, None),
    ("VWO", "em_equity", "VWO", 0.033, 0.55, 0.0, 0.10, 0.000, 0.080, None, None),
    ("IEMG", "em_equity", "IEMG", 0.032, 0.55, 0.0, 0.10, 0.000, 0.080, None, None),
    ("BND", "us_bond", "BND", 0.040, 0.00, 0.0, 0.0, 0.000, 0.040, None, None),
    ("AGG", "us_bond", "AGG", 0.040, 0.00, 0.0, 0.0, 0.000, 0.040, None, None),
    ("FXNAX", "us_bond", "FXNAX", 0.039, 0.00, 0.0, 0.0, 0.000, 0.040, None, None),
    ("VTEB", "muni_bond", "VTEB", 0.030, 0.00, 1.0, 0.0, 0.000, 0.035, None, None),
    ("MUB", "muni_bond", "MUB", 0.030, 0.00, 1.0, 0.0, 0.000, 0.035, None, None),
    ("VTIP", "tips", "VTIP", 0.035, 0.00, 0.0, 0.0, 0.000, 0.035, None, None),
    ("SCHP", "tips", "SCHP", 0.035, 0.00, 0.0, 0.0, 0.000, 0.035, None, None),
    ("VNQ", "reit", "VNQ", 0.040, 0.10, 0.0, 0.0, 0.005, 0.070, "real_estate", None),
    ("SCHH", "reit", "SCHH", 0.040, 0.10, 0.0, 0.0, 0.005, 0.070, "real_estate", None),
    # individual holdings no model lists: held and sold, never bought
    ("AAPL", "us_equity", "AAPL", 0.005, 1.0, 0.0, 0.0, 0.0, 0.080, "technology", None),
    ("XOM", "us_equity", "XOM", 0.035, 1.0, 0.0, 0.0, 0.0, 0.070, "energy", ["fossil_fuel"]),
    ("MO", "us_equity", "MO", 0.080, 1.0, 0.0, 0.0, 0.0, 0.060, "consumer_staples", ["tobacco"]),
    ("JPM", "us_equity", "JPM", 0.022, 1.0, 0.0, 0.0, 0.0, 0.075, "financials", None),
]
BASE_PRICE = {"VTI": 280, "VTSAX": 140, "ITOT": 120, "SCHB": 60, "FXAIX": 190, "VXUS": 62,
              "IXUS": 70, "FTIHX": 15, "VWO": 44, "IEMG": 53, "BND": 73, "AGG": 98, "FXNAX": 10.5,
              "VTEB": 50, "MUB": 107, "VTIP": 49, "SCHP": 53, "VNQ": 88, "SCHH": 21,
              "AAPL": 225, "XOM": 118, "MO": 55, "JPM": 240}
# model -> {asset class: weight}
MODELS = {
    "conservative": {"us_equity": 0.20, "intl_equity": 0.10, "us_bond": 0.50, "tips": 0.15,
                     "cash": 0.05},
    "moderate": {"us_equity": 0.40, "intl_equity": 0.15, "em_equity": 0.05, "us_bond": 0.30,
                 "tips": 0.05, "reit": 0.05},
    "growth": {"us_equity": 0.55, "intl_equity": 0.20, "em_equity": 0.05, "us_bond": 0.15,
               "reit": 0.05},
    "aggressive": {"us_equity": 0.65, "intl_equity": 0.20, "em_equity": 0.10, "us_bond": 0.05},
    "tax_exempt_income": {"us_equity": 0.35, "intl_equity": 0.10, "muni_bond": 0.45,
                          "tips": 0.10},
}
# asset class -> ranked securities every model buys for it
LISTED = {
    "us_equity": ["VTI", "ITOT", "SCHB", "FXAIX"],
    "intl_equity": ["VXUS", "IXUS", "FTIHX"],
    "em_equity": ["VWO", "IEMG"],
    "us_bond": ["BND", "AGG", "FXNAX"],
    "muni_bond": ["VTEB", "MUB"],
    "tips": ["VTIP", "SCHP"],
    "reit": ["VNQ", "SCHH"],
}
MENUS = {"k401_basic": ["FXAIX", "FTIHX", "FXNAX", "VTIP"],
         "k401_broad": ["VTI", "VXUS", "VWO", "BND", "VNQ", "VTIP"]}
ACCOUNT_TYPES = ["taxable", "traditional", "roth", "hsa", "education"]
ACCOUNT_ODDS = [0.8, 0.55, 0.4, 0.1, 0.08]


@dataclass(frozen=True)
class BookStats:
    households: int
    accounts: int
    lots: int
    path: str


def _ids(prefix: str, numbers: np.ndarray, width: int = 7) -> list[str]:
    return [f"{prefix}{n:0{width}d}" for n in numbers.tolist()]


def _write(path: str, name: str, table: pa.Table) -> None:
    pq.write_table(table, os.path.join(path, f"{name}.parquet"), row_group_size=256_000)


PROFILES = ("realistic", "small")


def generate(path: str, households: int, seed: int = 0, as_of: str = DEFAULT_AS_OF,
             bad_fraction: float = 0.002, profile: str = "realistic") -> BookStats:
    """Write a synthetic book of ``households`` households under ``path``.

    ``profile="small"`` is the toy book (a handful of lots per position);
    ``"realistic"`` is the default.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}; got {profile!r}")
    if households < 1:
        raise ValueError(f"households must be at least 1; got {households}")
    return _generate_small(path, households, seed, as_of, bad_fraction)


def _generate_small(path: str, households: int, seed: int, as_of: str,
                    bad_fraction: float) -> BookStats:
    rng = np.random.default_rng(seed)
    os.makedirs(path, exist_ok=True)
    today = np.datetime64(as_of, "D")
    n = households
    hh_ids = np.array(_ids("H", np.arange(n)), dtype=object)

    # -- securities and models -------------------------------------------------------------
    sec_ids = [s[0] for s in SECURITIES]
    sec_index = {s: i for i, s in enumerate(sec_ids)}
    drift = np.exp(rng.normal(0.0, 0.05, len(sec_ids)))
    price = np.round(np.array([BASE_PRICE[s] for s in sec_ids]) * drift, 2)
    sec_class = [s[1] for s in SECURITIES]
    _write(path, "securities", pa.table({
        "security_id": sec_ids, "asset_class": sec_class, "price": price,
        "wash_group": [s[2] for s in SECURITIES],
        "income_yield": [s[3] for s in SECURITIES], "qualified_fraction": [s[4] for s in SECURITIES],
        "tax_exempt_fraction": [s[5] for s in SECURITIES],
        "foreign_tax_fraction": [s[6] for s in SECURITIES],
        "cg_distribution": [s[7] for s in SECURITIES], "expected_return": [s[8] for s in SECURITIES],
        "sector": [s[9] for s in SECURITIES],
        "tags": pa.array([s[10] for s in SECURITIES], type=pa.list_(pa.string())),
        "cost_bps": [3.0 if s[0] in ("AAPL", "XOM", "MO", "JPM") else None for s in SECURITIES],
    }))
    t_rows = [(m, k, w) for m, ws in MODELS.items() for k, w in ws.items()]
    _write(path, "targets", pa.table({"model_id": [r[0] for r in t_rows],
                                      "asset_class": [r[1] for r in t_rows],
                                      "weight": [r[2] for r in t_rows]}))
    ms_rows = [(m, k, s, r + 1) for m, ws in MODELS.items() for k in ws if k != "cash"
               for r, s in enumerate(LISTED[k])]
    _write(path, "model_securities", pa.table({
        "model_id": [r[0] for r in ms_rows], "asset_class": [r[1] for r in ms_rows],
        "security_id": [r[2] for r in ms_rows], "rank": pa.array([r[3] for r in ms_rows], pa.int64())}))
    menu_rows = [(m, s) for m, ss in MENUS.items() for s in ss]
    _write(path, "menus", pa.table({"menu_id": [r[0] for r in menu_rows],
                                    "security_id": [r[1] for r in menu_rows]}))

    # -- households ---------------------------------------------------------------------------
    model_names = list(MODELS)
    model = rng.choice(len(model_names), n, p=[0.15, 0.35, 0.25, 0.15, 0.10])
    st_rate = np.round(rng.choice([0.24, 0.32, 0.35, 0.37, 0.408, 0.45], n), 3)
    lt_rate = np.round(np.where(st_rate >= 0.35, 0.238, 0.15) + rng.choice([0, 0.05], n), 3)
    tax_budget = np.where(rng.random(n) < 0.10, np.round(rng.uniform(0, 3000, n), 0), np.nan)
    turnover = np.where(rng.random(n) < 0.06, np.round(rng.uniform(0.03, 0.15, n), 3), np.nan)
    carry = rng.random(n) < 0.08
    _write(path, "households", pa.table({
        "household_id": hh_ids.tolist(),
        "model_id": [model_names[m] for m in model],
        "st_rate": st_rate, "lt_rate": lt_rate,
        "ytd_st_gain": np.round(rng.normal(0, 4000, n) * (rng.random(n) < 0.4), 2),
        "ytd_lt_gain": np.round(rng.normal(2000, 8000, n) * (rng.random(n) < 0.5), 2),
        "loss_carryforward_st": np.round(np.where(carry, rng.uniform(0, 20000, n), 0), 2),
        "loss_carryforward_lt": np.round(np.where(carry, rng.uniform(0, 10000, n), 0), 2),
        "tax_budget": pa.array(tax_budget, from_pandas=True),
        "turnover_limit": pa.array(turnover, from_pandas=True),
        "tlh_enabled": rng.random(n) >= 0.05,
        "filing_status": rng.choice(["single", "married_joint", "married_separate",
                                     "head_of_household"], n, p=[0.4, 0.45, 0.05, 0.1]).tolist(),
    }))

    # -- accounts -------------------------------------------------------------------------------
    has = rng.random((n, 5)) < np.array(ACCOUNT_ODDS)
    has[~has.any(axis=1), 0] = True
    acct_hh, acct_type = np.nonzero(has)
    n_acct = len(acct_hh)
    acct_no = np.arange(n_acct) - np.searchsorted(acct_hh, acct_hh)
    acct_ids = np.array([f"{h}-A{k}" for h, k in zip(hh_ids[acct_hh], acct_no)], dtype=object)
    acct_value = np.round(np.exp(rng.normal(11.3, 1.0, n_acct)), 2)  # ~80k median
    cash = np.round(acct_value * rng.uniform(0.0, 0.04, n_acct), 2)
    contribution = np.where(rng.random(n_acct) < 0.08,
                            np.round(acct_value * rng.uniform(0.01, 0.1, n_acct), 2), 0.0)
    withdrawal = np.where(rng.random(n_acct) < 0.04,
                          np.round(acct_value * rng.uniform(0.01, 0.12, n_acct), 2), 0.0)
    withdrawal[acct_type != 0] *= rng.random((acct_type != 0).sum()) < 0.5
    tradable = rng.random(n_acct) >= 0.03
    withdrawal[~tradable & (rng.random(n_acct) < 0.8)] = 0.0  # rarely asked of a held-away-like account
    menu = np.full(n_acct, None, dtype=object)
    on_menu = (acct_type == 1) & (rng.random(n_acct) < 0.3)
    menu[on_menu] = rng.choice(list(MENUS), on_menu.sum())
    min_cash = np.where(rng.random(n_acct) < 0.2, np.round(rng.uniform(100, 1000, n_acct), 0), 0.0)
    max_cash = np.where(rng.random(n_acct) < 0.3, np.round(acct_value * 0.05 + min_cash + 500, 0), np.nan)
    _write(path, "accounts", pa.table({
        "account_id": acct_ids.tolist(), "household_id": hh_ids[acct_hh].tolist(),
        "account_type": [ACCOUNT_TYPES[t] for t in acct_type], "cash": cash,
        "min_cash": min_cash, "max_cash": pa.array(max_cash, from_pandas=True),
        "contribution": contribution, "withdrawal": withdrawal, "tradable": tradable,
        "menu_id": menu.tolist(),
    }))

    # -- positions and lots ------------------------------------------------------------------------
    # Every account holds each class of its model near the model weight: the book was
    # rebalanced before and markets have moved since (most households a little, some a lot).
    classes_of = [[k for k in MODELS[m] if k != "cash"] for m in model_names]
    n_pos = np.array([len(classes_of[m]) for m in model[acct_hh]])
    pos_acct = np.repeat(np.arange(n_acct), n_pos)
    n_p = len(pos_acct)
    pos_no = np.arange(n_p) - np.searchsorted(pos_acct, pos_acct)
    pos_model = model[acct_hh[pos_acct]]
    pos_class = np.array([classes_of[m][j] for m, j in zip(pos_model, pos_no)], dtype=object)
    weight = np.array([MODELS[model_names[m]][k] for m, k in zip(pos_model, pos_class)])
    r = rng.random(n_p)
    rank_pick = np.where(r < 0.75, 0, np.where(r < 0.95, 1, 2))
    pos_sec = np.array([sec_index[LISTED[k][min(rk, len(LISTED[k]) - 1)]]
                        for k, rk in zip(pos_class, rank_pick)], dtype=np.int64)
    legacy = (acct_type[pos_acct] == 0) & (rng.random(n_p) < 0.04)
    pos_sec[legacy] = rng.choice([sec_index[s] for s in ("AAPL", "XOM", "MO", "JPM", "VTSAX")],
                                 legacy.sum())
    menu_of_pos = menu[pos_acct]
    for m, allowed in MENUS.items():  # menu accounts hold their menu's funds
        sel = menu_of_pos == m
        pos_sec[sel] = rng.choice([sec_index[s] for s in allowed], sel.sum())
    sigma = rng.choice([0.04, 0.12, 0.35], n, p=[0.55, 0.3, 0.15])[acct_hh[pos_acct]]
    w = weight * np.exp(rng.normal(0.0, sigma))
    w /= np.bincount(pos_acct, weights=w)[pos_acct]
    pos_value = (acct_value - cash)[pos_acct] * w
    n_lot = rng.integers(1, 4, n_p)
    lot_pos = np.repeat(np.arange(n_p), n_lot)
    n_l = len(lot_pos)
    lw = rng.exponential(1.0, n_l)
    lw /= np.bincount(lot_pos, weights=lw)[lot_pos]
    lot_sec = pos_sec[lot_pos]
    lot_value = pos_value[lot_pos] * lw
    qty = np.round(lot_value / price[lot_sec], 4)
    qty = np.maximum(qty, 0.001)
    age = rng.integers(31, 2200, n_l)
    recent = rng.random(n_l) < 0.03
    age[recent] = rng.integers(1, 30, recent.sum())
    near_lt = rng.random(n_l) < 0.03  # a few days short of long-term
    age[near_lt] = rng.integers(355, 366, near_lt.sum())
    acquired = today - age.astype("timedelta64[D]")
    growth = rng.normal(0.07 * age / 365.0, 0.18 + 0.05 * np.sqrt(age / 365.0))
    basis = np.round(qty * price[lot_sec] / np.exp(growth), 2)
    lot_acct = pos_acct[lot_pos]
    lot_no = np.arange(n_l) - np.searchsorted(lot_acct, lot_acct)
    lot_ids = [f"{a}-L{k:03d}" for a, k in zip(acct_ids[lot_acct], lot_no)]
    sec_names = np.array(sec_ids, dtype=object)
    lot_sec_ids = sec_names[lot_sec].copy()
    # bad on purpose: a negative quantity, or a security nobody knows
    bad_hh = np.flatnonzero(rng.random(n) < bad_fraction)
    first_lot_of_hh = np.searchsorted(acct_hh[lot_acct], bad_hh)
    for j, (h, l) in enumerate(zip(bad_hh, first_lot_of_hh)):
        if l < n_l and acct_hh[lot_acct[l]] == h:
            if j % 2 == 0:
                qty[l] = -qty[l]
            else:
                lot_sec_ids[l] = "DELISTED1"
    _write(path, "lots", pa.table({
        "lot_id": lot_ids, "account_id": acct_ids[lot_acct].tolist(),
        "security_id": lot_sec_ids.tolist(), "quantity": qty, "cost_basis": basis,
        "acquired_date": pa.array(acquired, pa.date32()),
    }))

    # -- recent transactions: purchases (W1) and loss sales (W2) -------------------------------
    tx_lot = np.flatnonzero(recent)  # every recent lot was a purchase
    buy_extra = rng.choice(n_l, size=max(1, n_l // 60), replace=False)  # buys elsewhere (W1)
    loss_pos = rng.choice(n_p, size=max(1, n_p // 40), replace=False)  # recent loss sales (W2)
    tx_acct = np.concatenate([lot_acct[tx_lot], lot_acct[buy_extra], pos_acct[loss_pos]])
    tx_sec = np.concatenate([lot_sec[tx_lot], lot_sec[buy_extra], pos_sec[loss_pos]])
    tx_age = np.concatenate([age[tx_lot], rng.integers(1, 30, len(buy_extra)),
                             rng.integers(1, 30, len(loss_pos))])
    tx_side = ["buy"] * (len(tx_lot) + len(buy_extra)) + ["sell"] * len(loss_pos)
    tx_qty = np.round(rng.uniform(1, 50, len(tx_acct)), 3)
    gain = np.full(len(tx_acct), np.nan)
    gain[len(tx_lot) + len(buy_extra):] = -np.round(rng.uniform(50, 3000, len(loss_pos)), 2)
    sells = len(tx_lot) + len(buy_extra) + np.arange(len(loss_pos))
    gain[sells[acct_type[pos_acct[loss_pos]] != 0]] = np.nan  # no realized loss in an IRA
    _write(path, "transactions", pa.table({
        "account_id": acct_ids[tx_acct].tolist(), "security_id": sec_names[tx_sec].tolist(),
        "trade_date": pa.array(today - tx_age.astype("timedelta64[D]"), pa.date32()),
        "side": tx_side, "quantity": tx_qty, "realized_gain": pa.array(gain, from_pandas=True),
    }))

    # -- restrictions, held-away, custom targets ----------------------------------------------
    rs: list[tuple[Any, ...]] = []
    for h in np.flatnonzero(rng.random(n) < 0.06):
        kind = h % 5
        hid = hh_ids[h]
        if kind == 0:
            rs.append((hid, None, "no_buy", None, None, "tobacco"))
        elif kind == 1:
            rs.append((hid, None, "no_hold", "MO", None, None))
        elif kind == 2:
            rs.append((hid, None, "no_trade", None, "energy", None))
        elif kind == 3:
            a = np.flatnonzero(acct_hh == h)
            rs.append((hid, acct_ids[a[0]], "no_sell", "VTI", None, None))
        else:
            rs.append((hid, None, "no_buy", "ITOT", None, None))
    _write(path, "restrictions", pa.table({
        "household_id": [r[0] for r in rs], "account_id": pa.array([r[1] for r in rs], pa.string()),
        "rule": [r[2] for r in rs], "security_id": pa.array([r[3] for r in rs], pa.string()),
        "sector": pa.array([r[4] for r in rs], pa.string()),
        "tag": pa.array([r[5] for r in rs], pa.string())}))
    ha = np.flatnonzero(rng.random(n) < 0.10)
    _write(path, "held_away", pa.table({
        "household_id": hh_ids[ha].tolist(),
        "asset_class": rng.choice(["us_equity", "us_bond", "cash"], len(ha)).tolist(),
        "value": np.round(np.exp(rng.normal(10.5, 0.8, len(ha))), 2)}))
    custom = np.flatnonzero(rng.random(n) < 0.03)
    ht = [(hh_ids[h], k, w) for h in custom
          for k, w in {"us_equity": 0.5, "intl_equity": 0.1, "us_bond": 0.4}.items()]
    _write(path, "household_targets", pa.table({
        "household_id": [r[0] for r in ht], "asset_class": [r[1] for r in ht],
        "weight": [r[2] for r in ht]}))
    return BookStats(households=n, accounts=n_acct, lots=n_l, path=path)
