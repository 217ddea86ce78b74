"""Synthetic books in the input contract, deterministic for a seed.

Two profiles. ``realistic`` (the default) is shaped like a wealth manager's book:
1-6 accounts per household (taxable, traditional/401(k), Roth, HSA, 529), ETF
positions built from monthly buys over 1-15 years (12-180 lots each), 30% of
taxable accounts direct-indexed with 100-500 stocks of 1-20 lots each, prices from
random walks (so lots sit at gains and losses of both terms), 401(k) menus, recent
buys and harvests in the transactions table, restrictions, held-away assets,
custom targets, overrides (a few per 1,000 households, some expired),
product preferences (~7%), household glide paths (~4%, de-risking from the model's
weights over ten years), goals (every 529 without a cash cap saves for tuition, ~5% a
home purchase), concentration limits (~3.5%, most with a low-basis single
stock above theirs), sector limits (~10% of households with a direct-indexed
sleeve), tax budgets, contributions and withdrawals: a median of about
2,000 lots per household (p90 ~7,000, max ~13,000). The book starts asset-located,
as the last rebalance left it. No model lists the stocks: hearth holds, harvests and
sells a sleeve's stocks (each its own wash group) but buys the model's funds.
``small`` is the toy book the tests run on (a few lots per position, the median
model some 60 columns).

A small share of households is made bad on purpose (a lot with a negative
quantity, a lot in an unknown security) to exercise validation.

Everything is vectorized numpy over accounts and lots; the realistic book is
generated in chunks of households, the lots and transactions tables appended to
their Parquet files chunk by chunk, so memory stays bounded by the chunk, not the
book.
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
    if profile == "small":
        return _generate_small(path, households, seed, as_of, bad_fraction)
    return _generate_realistic(path, households, seed, as_of, bad_fraction)


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


# == the realistic profile =====================================================================

# Funds: (security_id, asset_class, wash_group, yield, qualified, exempt, foreign, cg_dist,
# exp_ret, price today). A group's members are substantially identical (an ETF and its
# mutual-fund share class); the other funds of a class are its harvest partners.
FUNDS = [
    ("VTI", "us_equity", "VTI", 0.013, 0.95, 0.0, 0.0, 0.000, 0.070, 290.0),
    ("VTSAX", "us_equity", "VTI", 0.013, 0.95, 0.0, 0.0, 0.002, 0.070, 142.0),
    ("ITOT", "us_equity", "ITOT", 0.013, 0.95, 0.0, 0.0, 0.000, 0.070, 128.0),
    ("SCHB", "us_equity", "SCHB", 0.013, 0.95, 0.0, 0.0, 0.000, 0.070, 24.5),
    ("FXAIX", "us_equity", "SP500", 0.013, 0.95, 0.0, 0.0, 0.001, 0.070, 205.0),
    ("VFIAX", "us_equity", "SP500", 0.013, 0.95, 0.0, 0.0, 0.001, 0.070, 545.0),
    ("VXUS", "intl_equity", "VXUS", 0.030, 0.70, 0.0, 0.08, 0.000, 0.075, 66.0),
    ("VTIAX", "intl_equity", "VXUS", 0.030, 0.70, 0.0, 0.08, 0.001, 0.075, 35.0),
    ("IXUS", "intl_equity", "IXUS", 0.030, 0.70, 0.0, 0.08, 0.000, 0.075, 74.0),
    ("FTIHX", "intl_equity", "FTIHX", 0.029, 0.70, 0.0, 0.08, 0.001, 0.075, 16.0),
    ("VWO", "em_equity", "VWO", 0.033, 0.55, 0.0, 0.10, 0.000, 0.080, 47.0),
    ("VEMAX", "em_equity", "VWO", 0.033, 0.55, 0.0, 0.10, 0.001, 0.080, 38.0),
    ("IEMG", "em_equity", "IEMG", 0.032, 0.55, 0.0, 0.10, 0.000, 0.080, 58.0),
    ("BND", "us_bond", "BND", 0.040, 0.00, 0.0, 0.0, 0.000, 0.040, 73.0),
    ("VBTLX", "us_bond", "BND", 0.040, 0.00, 0.0, 0.0, 0.000, 0.040, 9.7),
    ("AGG", "us_bond", "AGG", 0.040, 0.00, 0.0, 0.0, 0.000, 0.040, 99.0),
    ("FXNAX", "us_bond", "FXNAX", 0.039, 0.00, 0.0, 0.0, 0.000, 0.040, 10.5),
    ("VTEB", "muni_bond", "VTEB", 0.030, 0.00, 1.0, 0.0, 0.000, 0.035, 50.0),
    ("MUB", "muni_bond", "MUB", 0.030, 0.00, 1.0, 0.0, 0.000, 0.035, 107.0),
    ("VTIP", "tips", "VTIP", 0.035, 0.00, 0.0, 0.0, 0.000, 0.035, 49.5),
    ("SCHP", "tips", "SCHP", 0.035, 0.00, 0.0, 0.0, 0.000, 0.035, 26.5),
    ("VNQ", "reit", "VNQ", 0.040, 0.10, 0.0, 0.0, 0.005, 0.070, 91.0),
    ("VGSLX", "reit", "VNQ", 0.040, 0.10, 0.0, 0.0, 0.005, 0.070, 130.0),
    ("SCHH", "reit", "SCHH", 0.040, 0.10, 0.0, 0.0, 0.005, 0.070, 22.0),
]
FUND_SECTOR = {"VNQ": "real_estate", "VGSLX": "real_estate", "SCHH": "real_estate"}
# the mutual-fund share class that households bought before they switched to the ETF
EQUIVALENT = {"VTI": "VTSAX", "FXAIX": "VFIAX", "VXUS": "VTIAX", "VWO": "VEMAX",
              "BND": "VBTLX", "VNQ": "VGSLX"}
CLASSES = ["us_equity", "intl_equity", "em_equity", "us_bond", "muni_bond", "tips", "reit"]
# annual drift and volatility of each class's random walk
CLASS_WALK = {"us_equity": (0.075, 0.17), "intl_equity": (0.055, 0.18), "em_equity": (0.05, 0.22),
              "us_bond": (0.03, 0.06), "muni_bond": (0.025, 0.05), "tips": (0.025, 0.06),
              "reit": (0.055, 0.22)}
BRIDGE_KNOTS = (730, 1826, 3652)  # days before the run date where a class is at its expected growth
GROUP_TRACKING = 0.015  # annual tracking noise of a wash group against its class
SHARE_CLASS_TRACKING = 0.002  # and of one member of a group against the others
N_STOCKS = 600
# sector: (share of the stock universe, dividend yield range, tags and the share carrying each)
SECTORS = {
    "technology": (0.16, (0.0, 0.012), {}),
    "health_care": (0.12, (0.0, 0.025), {}),
    "financials": (0.13, (0.01, 0.04), {}),
    "consumer_discretionary": (0.11, (0.0, 0.02), {"gambling": 0.08}),
    "communication_services": (0.06, (0.0, 0.015), {}),
    "industrials": (0.12, (0.005, 0.025), {"weapons": 0.12}),
    "consumer_staples": (0.07, (0.015, 0.05), {"tobacco": 0.15, "alcohol": 0.15}),
    "energy": (0.06, (0.02, 0.06), {"fossil_fuel": 0.85}),
    "utilities": (0.06, (0.025, 0.05), {"fossil_fuel": 0.3}),
    "real_estate": (0.06, (0.025, 0.06), {}),
    "materials": (0.05, (0.01, 0.03), {}),
}
ACCOUNT_COUNT_ODDS = [0.10, 0.20, 0.27, 0.21, 0.13, 0.09]  # 1..6 accounts, median 3
OTHER_ACCOUNT_ODDS = [0.12, 0.42, 0.28, 0.08, 0.10]  # accounts after the first, by type
N_MENUS = 16  # 401(k) plan contracts, each with its own fund menu
DI_SHARE = 0.30  # of taxable accounts, direct-indexed
DI_LOG_VALUE = (12.9, 0.6)  # a direct-indexed account's log value: ~400k median
MONTH = 30.4375  # days
MAX_STOP = 48  # months since an account that stopped buying bought last
MAX_MONTHS = 180  # monthly buys per position: 12 to 180 (1 to 15 years)
HISTORY_DAYS = int(MONTH * (MAX_STOP + MAX_MONTHS)) + 62
RECENT_DAYS = 45  # transactions cover this many days before the run date
CHUNK = 500  # households generated and written at a time
# Asset location of the book as the last rebalance left it: log preference of an
# account type (rows, ACCOUNT_TYPES) for a class (columns, CLASSES). Ordinary income
# (bonds, TIPS, REITs) in tax-deferred accounts, munis and low-yield equity in taxable
# ones, the highest growth where it is never taxed.
LOCATION = np.array([
    # us_eq intl  em   bond  muni  tips  reit
    [1.0, 1.0, 0.3, -0.7, 2.5, -1.0, -1.2],  # taxable
    [-0.4, -0.4, -0.4, 1.0, -4.0, 1.0, 1.0],  # traditional
    [0.6, 0.3, 1.0, -1.0, -4.0, -1.0, 0.4],  # roth
    [0.6, 0.3, 1.0, -1.0, -4.0, -1.0, 0.4],  # hsa
    [0.6, 0.3, 1.0, -1.0, -4.0, -1.0, 0.4],  # education
])
LOCATION_ITERATIONS = 60
MIN_LOCATED_SHARE = 0.02  # of an account: below it, location leaves the class out
MIN_LOT_VALUE = 2.0  # dollars

LOTS_SCHEMA = pa.schema([("lot_id", pa.string()), ("account_id", pa.string()),
                         ("security_id", pa.string()), ("quantity", pa.float64()),
                         ("cost_basis", pa.float64()), ("acquired_date", pa.date32())])
TRANSACTIONS_SCHEMA = pa.schema([("account_id", pa.string()), ("security_id", pa.string()),
                                 ("trade_date", pa.date32()), ("side", pa.string()),
                                 ("quantity", pa.float64()), ("realized_gain", pa.float64())])
HOUSEHOLDS_SCHEMA = pa.schema([
    ("household_id", pa.string()), ("model_id", pa.string()), ("st_rate", pa.float64()),
    ("lt_rate", pa.float64()), ("retirement_rate", pa.float64()), ("ytd_st_gain", pa.float64()),
    ("ytd_lt_gain", pa.float64()), ("loss_carryforward_st", pa.float64()),
    ("loss_carryforward_lt", pa.float64()), ("tax_budget", pa.float64()),
    ("turnover_limit", pa.float64()), ("drift_threshold", pa.float64()),
    ("tlh_enabled", pa.bool_()), ("filing_status", pa.string())])
ACCOUNTS_SCHEMA = pa.schema([
    ("account_id", pa.string()), ("household_id", pa.string()), ("account_type", pa.string()),
    ("cash", pa.float64()), ("min_cash", pa.float64()), ("max_cash", pa.float64()),
    ("contribution", pa.float64()), ("withdrawal", pa.float64()), ("tradable", pa.bool_()),
    ("menu_id", pa.string())])
RESTRICTIONS_SCHEMA = pa.schema([
    ("household_id", pa.string()), ("account_id", pa.string()), ("rule", pa.string()),
    ("security_id", pa.string()), ("sector", pa.string()), ("tag", pa.string())])
HELD_AWAY_SCHEMA = pa.schema([("household_id", pa.string()), ("asset_class", pa.string()),
                              ("value", pa.float64())])
HOUSEHOLD_TARGETS_SCHEMA = pa.schema([("household_id", pa.string()),
                                      ("asset_class", pa.string()), ("weight", pa.float64())])
CASH_NEEDS_SCHEMA = pa.schema([("household_id", pa.string()), ("account_id", pa.string()),
                               ("due_date", pa.date32()), ("amount", pa.float64()),
                               ("need_id", pa.string())])
CASH_NEED_SHARE = 0.04  # of households, with one cash need due within CASH_NEED_DAYS
CASH_NEED_DAYS = 180


# the decimal digits of 0 .. 10**k - 1 as ASCII, k digits a row
_DIGITS = {k: (np.arange(10 ** k)[:, None] // 10 ** np.arange(k - 1, -1, -1) % 10 + 48).astype(np.uint8)
           for k in range(1, 5)}


def _fixed_ids(n: int, *parts: str | tuple[np.ndarray, int]) -> pa.Array:
    """Fixed-width identifiers built as bytes: each part is a literal or (integers,
    digits), so a million lot ids cost milliseconds, not a Python string each."""
    cols: list[np.ndarray] = []
    for part in parts:
        if isinstance(part, str):
            cols.append(np.broadcast_to(np.frombuffer(part.encode(), np.uint8), (n, len(part))))
            continue
        x, width = np.asarray(part[0], np.int64), part[1]
        groups = []  # four digits at a time, from the last
        while width > 0:
            k = min(4, width)
            groups.append(_DIGITS[k][x % 10 ** k])
            x, width = x // 10 ** k, width - k
        cols.extend(reversed(groups))
    chars = np.ascontiguousarray(np.concatenate(cols, axis=1))
    width = chars.shape[1]
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(chars.tobytes()))


def _first_index(sorted_keys: np.ndarray) -> np.ndarray:
    """Position of each element within its run of equal keys (keys sorted)."""
    n = len(sorted_keys)
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]) if n else np.zeros(0, int)
    return np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))


def _ragged(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(owner, index within owner) for ``counts[i]`` items of each owner ``i``."""
    owner = np.repeat(np.arange(len(counts)), counts)
    return owner, _first_index(owner)


@dataclass(frozen=True)
class _Universe:
    """The securities of the realistic book and their price histories."""
    ids: list[str]
    asset_class: np.ndarray  # index into CLASSES
    wash_group: list[str]
    log_price: np.ndarray  # (securities, HISTORY_DAYS + 1); the last column is the run date
    price: np.ndarray  # today, rounded to cents
    listed: np.ndarray  # (classes, 4) security index by rank, -1 beyond the class's list
    n_listed: np.ndarray  # per class
    equivalent: np.ndarray  # security -> its unlisted share class, -1 if none
    stocks: np.ndarray  # security indices of the stocks
    stock_log_cap: np.ndarray
    stock_sector: list[str]
    stock_tags: list[list[str] | None]
    menus: np.ndarray  # (menus, classes) security index on the menu for the class, -1 if none

    def at(self, sec: np.ndarray, age: np.ndarray) -> np.ndarray:
        """Price of ``sec`` ``age`` days before the run date."""
        return np.exp(self.log_price[sec, HISTORY_DAYS - age])


def _universe(rng: np.random.Generator) -> tuple[_Universe, pa.Table, pa.Table, pa.Table, pa.Table]:
    days = HISTORY_DAYS
    dt = 1.0 / 365.0
    k_of = {k: i for i, k in enumerate(CLASSES)}

    def walk(mu: np.ndarray, sigma: np.ndarray, bridge: bool = False) -> np.ndarray:
        """Log-price random walks ending at 0 today, one row per (mu, sigma). A bridge
        passes through the expected growth at BRIDGE_KNOTS: between them the path has
        its peaks and drawdowns (lots bought at a peak sit at a loss), but no seed draws
        a class that tripled or a run date at the bottom of a crash."""
        drift = (mu - 0.5 * sigma ** 2) * dt
        steps = rng.normal(drift[:, None], sigma[:, None] * np.sqrt(dt), (len(mu), days))
        path = np.concatenate([np.zeros((len(mu), 1)), np.cumsum(steps, axis=1)], axis=1)
        if bridge:
            knots = np.array(sorted({0, days, *(days - k for k in BRIDGE_KNOTS)}))
            t = np.arange(days + 1)
            for row in range(len(mu)):
                path[row] += np.interp(t, knots, drift[row] * knots - path[row, knots])
        return path - path[:, -1:]

    factor = walk(np.array([CLASS_WALK[k][0] for k in CLASSES]),
                  np.array([CLASS_WALK[k][1] for k in CLASSES]), bridge=True)
    groups = sorted({f[2] for f in FUNDS})
    group_noise = walk(np.zeros(len(groups)), np.full(len(groups), GROUP_TRACKING))
    share_noise = walk(np.zeros(len(FUNDS)), np.full(len(FUNDS), SHARE_CLASS_TRACKING))
    fund_class = np.array([k_of[f[1]] for f in FUNDS])
    fund_group = np.array([groups.index(f[2]) for f in FUNDS])
    fund_price = np.array([f[9] for f in FUNDS]) * np.exp(rng.normal(0.0, 0.03, len(FUNDS)))
    fund_log = (np.log(fund_price)[:, None] + factor[fund_class] + group_noise[fund_group]
                + share_noise)

    # stocks: beta to the US equity walk plus their own walk, a sector each
    names = list(SECTORS)
    sector = rng.choice(len(names), N_STOCKS, p=[SECTORS[s][0] for s in names])
    beta = rng.uniform(0.6, 1.5, N_STOCKS)
    vol = rng.uniform(0.12, 0.35, N_STOCKS)  # idiosyncratic
    own = walk(rng.normal(0.01, 0.03, N_STOCKS), vol)
    stock_price = np.exp(rng.normal(np.log(80.0), 0.9, N_STOCKS)) + 5.0
    stock_log = np.log(stock_price)[:, None] + beta[:, None] * factor[k_of["us_equity"]] + own
    log_price = np.concatenate([fund_log, stock_log])
    price = np.round(np.exp(log_price[:, -1]), 2)
    log_price[:, -1] = np.log(price)  # a lot bought today sits at the price of the run

    stock_ids = [f"EQ{i + 1:03d}" for i in range(N_STOCKS)]
    ids = [f[0] for f in FUNDS] + stock_ids
    index = {s: i for i, s in enumerate(ids)}
    stock_sector = [names[i] for i in sector]
    stock_tags: list[list[str] | None] = []
    for sec_name in stock_sector:
        tags = [t for t, share in SECTORS[sec_name][2].items() if rng.random() < share]
        stock_tags.append(tags or None)
    lo = np.array([SECTORS[names[i]][1][0] for i in sector])
    hi = np.array([SECTORS[names[i]][1][1] for i in sector])
    stock_yield = np.round(rng.uniform(lo, hi), 4)
    n_f = len(FUNDS)
    securities = pa.table({
        "security_id": ids,
        "asset_class": [f[1] for f in FUNDS] + ["us_equity"] * N_STOCKS,
        "price": price,
        "wash_group": [f[2] for f in FUNDS] + stock_ids,
        "income_yield": np.concatenate([[f[3] for f in FUNDS], stock_yield]),
        "qualified_fraction": np.concatenate([[f[4] for f in FUNDS],
                                              np.where(sector == names.index("real_estate"), 0.2, 1.0)]),
        "tax_exempt_fraction": np.concatenate([[f[5] for f in FUNDS], np.zeros(N_STOCKS)]),
        "foreign_tax_fraction": np.concatenate([[f[6] for f in FUNDS], np.zeros(N_STOCKS)]),
        "cg_distribution": np.concatenate([[f[7] for f in FUNDS], np.zeros(N_STOCKS)]),
        "expected_return": np.concatenate([[f[8] for f in FUNDS],
                                           np.round(rng.uniform(0.055, 0.095, N_STOCKS), 4)]),
        "sector": [FUND_SECTOR.get(f[0]) for f in FUNDS] + stock_sector,
        "tags": pa.array([None] * n_f + stock_tags, type=pa.list_(pa.string())),
        "cost_bps": pa.array([None] * n_f + np.round(rng.uniform(1.5, 5.0, N_STOCKS), 1).tolist(),
                             pa.float64()),
        "vehicle": ["mutual_fund" if f[0] in MUTUAL_FUNDS else "etf" for f in FUNDS]
                   + ["stock"] * N_STOCKS,
    })

    listed = np.full((len(CLASSES), 4), -1, dtype=np.int64)
    for k, secs in LISTED.items():
        listed[k_of[k], :len(secs)] = [index[s] for s in secs]
    n_listed = (listed >= 0).sum(axis=1)
    equivalent = np.full(len(ids), -1, dtype=np.int64)
    for s, e in EQUIVALENT.items():
        equivalent[index[s]] = index[e]
    # each plan's menu: one fund per class it offers (always US and international
    # equity and US bonds), drawn from the funds the models list
    menus = np.full((N_MENUS, len(CLASSES)), -1, dtype=np.int64)
    for m in range(N_MENUS):
        for k in CLASSES:
            core = k in ("us_equity", "intl_equity", "us_bond")
            if core or (k in ("em_equity", "tips", "reit") and rng.random() < 0.5):
                menus[m, k_of[k]] = listed[k_of[k], rng.integers(0, n_listed[k_of[k]])]
    menu_rows = [(f"plan{m + 1:02d}", ids[s]) for m in range(N_MENUS) for s in menus[m] if s >= 0]

    t_rows = [(m, k, w) for m, ws in MODELS.items() for k, w in ws.items()]
    targets = pa.table({"model_id": [r[0] for r in t_rows], "asset_class": [r[1] for r in t_rows],
                        "weight": [r[2] for r in t_rows]})
    ms_rows = [(m, k, s, r + 1) for m, ws in MODELS.items() for k in ws if k != "cash"
               for r, s in enumerate(LISTED[k])]
    model_securities = pa.table({
        "model_id": [r[0] for r in ms_rows], "asset_class": [r[1] for r in ms_rows],
        "security_id": [r[2] for r in ms_rows], "rank": pa.array([r[3] for r in ms_rows], pa.int64())})
    menus_table = pa.table({"menu_id": [r[0] for r in menu_rows],
                            "security_id": [r[1] for r in menu_rows]})
    universe = _Universe(
        ids=ids, asset_class=np.concatenate([fund_class, np.full(N_STOCKS, k_of["us_equity"])]),
        wash_group=[f[2] for f in FUNDS] + stock_ids, log_price=log_price, price=price,
        listed=listed, n_listed=n_listed, equivalent=equivalent,
        stocks=np.arange(n_f, n_f + N_STOCKS), stock_log_cap=rng.normal(0.0, 1.1, N_STOCKS),
        stock_sector=stock_sector, stock_tags=stock_tags, menus=menus)
    return universe, securities, targets, model_securities, menus_table


def _dates(today: np.datetime64, age: np.ndarray) -> pa.Array:
    return pa.array(today - age.astype("timedelta64[D]"), pa.date32())


def _nullable(x: np.ndarray) -> pa.Array:
    return pa.array(x, pa.float64(), from_pandas=True)


@dataclass
class _Accounts:
    hh: np.ndarray  # household (index within the chunk)
    no: np.ndarray  # account number within the household
    ids: pa.Array
    type: np.ndarray  # index into ACCOUNT_TYPES
    months: np.ndarray  # monthly buys of its positions
    stop: np.ndarray  # months since the last monthly buy (0: it still buys)
    phase: np.ndarray  # day of the month it buys on (days before the month boundary)
    menu: np.ndarray  # menu index, -1 for none
    direct: np.ndarray  # direct-indexed (taxable): its US equity is a stock sleeve
    value: np.ndarray
    cash: np.ndarray


@dataclass
class _Positions:
    acct: np.ndarray
    klass: np.ndarray  # index into CLASSES
    sec: np.ndarray
    partner: np.ndarray  # a listed fund of the same class in another wash group
    value: np.ndarray  # target value today
    months: np.ndarray
    direct: np.ndarray


def _households_table(rng: np.random.Generator, n: int, hh_ids: pa.Array) -> tuple[pa.Table, np.ndarray]:
    model_names = list(MODELS)
    model = rng.choice(len(model_names), n, p=[0.15, 0.35, 0.25, 0.15, 0.10])
    st_rate = np.round(rng.choice([0.24, 0.32, 0.35, 0.37, 0.408, 0.45], n), 3)
    lt_rate = np.round(np.where(st_rate >= 0.35, 0.238, 0.15) + rng.choice([0, 0.05], n), 3)
    retirement = np.where(rng.random(n) < 0.5,
                          np.round(np.maximum(st_rate - rng.choice([0.0, 0.05, 0.1], n), 0.12), 3),
                          np.nan)
    carry = rng.random(n) < 0.08
    table = pa.table({
        "household_id": hh_ids,
        "model_id": [model_names[m] for m in model],
        "st_rate": st_rate, "lt_rate": lt_rate, "retirement_rate": _nullable(retirement),
        "ytd_st_gain": np.round(rng.normal(0, 6000, n) * (rng.random(n) < 0.4), 2),
        "ytd_lt_gain": np.round(rng.normal(4000, 15000, n) * (rng.random(n) < 0.5), 2),
        "loss_carryforward_st": np.round(np.where(carry, rng.uniform(0, 30000, n), 0), 2),
        "loss_carryforward_lt": np.round(np.where(carry, rng.uniform(0, 15000, n), 0), 2),
        "tax_budget": _nullable(np.where(rng.random(n) < 0.12, np.round(rng.uniform(0, 5000, n)), np.nan)),
        "turnover_limit": _nullable(np.where(rng.random(n) < 0.06,
                                             np.round(rng.uniform(0.03, 0.15, n), 3), np.nan)),
        "drift_threshold": _nullable(np.where(rng.random(n) < 0.10,
                                              rng.choice([0.02, 0.03, 0.05], n), np.nan)),
        "tlh_enabled": rng.random(n) >= 0.05,
        "filing_status": rng.choice(["single", "married_joint", "married_separate",
                                     "head_of_household"], n, p=[0.4, 0.45, 0.05, 0.1]).tolist(),
    }, schema=HOUSEHOLDS_SCHEMA)
    return table, model


def _accounts(rng: np.random.Generator, hh_no: np.ndarray, hh_ids: pa.Array, width: int
              ) -> tuple[_Accounts, pa.Table]:
    n = len(hh_no)
    hh, no = _ragged(rng.choice(np.arange(1, 7), n, p=ACCOUNT_COUNT_ODDS))
    na = len(hh)
    first = no == 0
    kind = rng.choice(len(ACCOUNT_TYPES), na, p=OTHER_ACCOUNT_ODDS)
    kind[first] = np.where(rng.random(first.sum()) < 0.85, 0, 1)  # most households have a taxable
    ids = _fixed_ids(na, "H", (hh_no[hh], width), "-A", (no, 1))
    # months of history: the household's tenure for its first account, less for later ones
    tenure = 12 + np.round(168 * rng.beta(2.8, 1.1, n))
    months = np.where(first, tenure[hh], np.maximum(12, np.round(tenure[hh] * rng.uniform(0.7, 1.0, na))))
    stop = np.where(rng.random(na) < 0.65, 0, rng.integers(1, MAX_STOP + 1, na))
    phase = rng.integers(1, 31, na)
    menu = np.full(na, -1, dtype=np.int64)
    on_menu = (((kind == 1) & (rng.random(na) < 0.45)) | ((kind == 2) & (rng.random(na) < 0.15)))
    menu[on_menu] = rng.integers(0, N_MENUS, on_menu.sum())
    # one direct-indexed sleeve at most per household, in its first taxable account,
    # as many as DI_SHARE of all taxable accounts
    taxable = np.flatnonzero(kind == 0)
    candidate = taxable[np.unique(hh[taxable], return_index=True)[1]]
    direct = np.zeros(na, dtype=bool)
    share = min(1.0, DI_SHARE * len(taxable) / max(len(candidate), 1))
    direct[candidate] = rng.random(len(candidate)) < share
    value = np.exp(rng.normal(11.3, 1.0, na))  # ~80k median
    value[direct] = np.exp(DI_LOG_VALUE[0] + DI_LOG_VALUE[1] * rng.standard_normal(direct.sum()))
    value = np.round(value, 2)
    cash = np.round(value * rng.uniform(0.0, 0.04, na), 2)
    contribution = np.where(rng.random(na) < 0.08, np.round(value * rng.uniform(0.01, 0.1, na), 2), 0.0)
    withdrawal = np.where(rng.random(na) < 0.04, np.round(value * rng.uniform(0.01, 0.12, na), 2), 0.0)
    withdrawal[kind != 0] *= rng.random((kind != 0).sum()) < 0.5
    tradable = rng.random(na) >= 0.03
    withdrawal[~tradable & (rng.random(na) < 0.8)] = 0.0
    min_cash = np.where(rng.random(na) < 0.2, np.round(rng.uniform(100, 1000, na), 0), 0.0)
    max_cash = np.where(rng.random(na) < 0.3, np.round(value * 0.05 + min_cash + 500, 0), np.nan)
    menu_ids = np.array([None] + [f"plan{m + 1:02d}" for m in range(N_MENUS)], dtype=object)
    table = pa.table({
        "account_id": ids, "household_id": hh_ids.take(pa.array(hh)),
        "account_type": np.array(ACCOUNT_TYPES, dtype=object)[kind].tolist(), "cash": cash,
        "min_cash": min_cash, "max_cash": _nullable(max_cash), "contribution": contribution,
        "withdrawal": withdrawal, "tradable": tradable,
        "menu_id": pa.array(menu_ids[menu + 1].tolist(), pa.string()),
    }, schema=ACCOUNTS_SCHEMA)
    accounts = _Accounts(hh=hh, no=no, ids=ids, type=kind, months=months.astype(np.int64), stop=stop,
                         phase=phase, menu=menu, direct=direct, value=value, cash=cash)
    return accounts, table


def _located(a: _Accounts, acct: np.ndarray, klass: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Each position's share of its account when the household holds its model's
    classes (``weight`` of each position's class in the model) located by LOCATION:
    the matrix of account x class dollars nearest the location preference whose rows
    are the accounts' values and whose columns are the household's class targets
    (Sinkhorn's iteration, over every household at once)."""
    n_acct, n_k = len(a.hh), len(CLASSES)
    capacity = a.value - a.cash
    hk = a.hh[acct] * n_k + klass
    kernel = np.exp(LOCATION[a.type[acct], klass])
    # the household's dollars split by its model over the classes its accounts can hold
    hh_value = np.bincount(a.hh, weights=capacity)
    first = np.unique(hk, return_index=True)[1]
    share = np.zeros(hk.max() + 1)
    share[hk[first]] = weight[first]
    share /= np.bincount(np.arange(len(share)) // n_k, weights=share)[np.arange(len(share)) // n_k]
    target = share * np.repeat(hh_value, n_k)[: len(share)]
    row, col = np.ones(n_acct), np.ones(len(share))
    for _ in range(LOCATION_ITERATIONS):
        row = capacity / np.bincount(acct, weights=kernel * col[hk], minlength=n_acct)
        col = np.divide(target, np.bincount(hk, weights=kernel * row[acct], minlength=len(share)),
                        out=np.zeros(len(share)), where=target > 0)
    dollars = kernel * row[acct] * col[hk]
    return dollars / np.bincount(acct, weights=dollars, minlength=n_acct)[acct]


def _positions(rng: np.random.Generator, u: _Universe, a: _Accounts, model: np.ndarray) -> _Positions:
    """Every household holds the classes of its model, located (LOCATION) across its
    accounts (those a menu offers), near the model weight: markets have moved since
    the last rebalance, for some a lot."""
    k_of = {k: i for i, k in enumerate(CLASSES)}
    model_w = np.zeros((len(MODELS), len(CLASSES)))
    for m, name in enumerate(MODELS):
        for k, w in MODELS[name].items():
            if k != "cash":
                model_w[m, k_of[k]] = w
    w_ak = model_w[model[a.hh]]
    menu_sec = u.menus[np.maximum(a.menu, 0)]
    has = (w_ak > 0) & ((a.menu < 0)[:, None] | (menu_sec >= 0))
    acct, klass = np.nonzero(has)
    located = _located(a, acct, klass, w_ak[acct, klass])
    # an account holds a class only where location leaves it a real share (the
    # largest class of an account is always kept)
    biggest = located >= np.maximum.reduceat(located, np.searchsorted(acct, np.arange(len(a.hh))))[acct]
    keep = (located >= MIN_LOCATED_SHARE) | biggest
    acct, klass, located = acct[keep], klass[keep], located[keep]
    npos = len(acct)
    r = rng.random(npos)
    rank = np.minimum(np.where(r < 0.75, 0, np.where(r < 0.95, 1, 2)), u.n_listed[klass] - 1)
    sec = u.listed[klass, rank]
    on = a.menu[acct] >= 0
    sec[on] = menu_sec[acct[on], klass[on]]
    rank = np.argmax(u.listed[klass] == sec[:, None], axis=1)
    n_k = u.n_listed[klass]
    partner = u.listed[klass, (rank + 1 + rng.integers(0, 1 << 20, npos) % (n_k - 1)) % n_k]
    sigma = rng.choice([0.04, 0.12, 0.35], len(model), p=[0.55, 0.3, 0.15])[a.hh[acct]]
    w = located * np.exp(rng.normal(0.0, sigma))
    w /= np.bincount(acct, weights=w, minlength=len(a.hh))[acct]
    months = a.months[acct].copy()
    late = rng.random(npos) < 0.10  # a class added to the account later
    months[late] = np.maximum(12, np.round(months[late] * rng.uniform(0.3, 1.0, late.sum())))
    direct = a.direct[acct] & (klass == k_of["us_equity"])
    return _Positions(acct=acct, klass=klass, sec=sec, partner=partner,
                      value=(a.value - a.cash)[acct] * w, months=months, direct=direct)


def _fund_lots(rng: np.random.Generator, u: _Universe, a: _Accounts, p: _Positions
               ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Monthly buys of each fund position: (lots, positions harvested in the last
    30 days, index of their replacement lot in ``lots``)."""
    npos = len(p.acct)
    taxable = a.type[p.acct] == 0
    fund = ~p.direct
    # a recent harvest: the partner sold at a loss within 30 days, the proceeds bought here
    recent = taxable & fund & (rng.random(npos) < 0.05)
    months = p.months.copy()
    months[recent & (months >= MAX_MONTHS)] -= 1
    # an older harvest: lots before it were sold (in the partner) and bought back here
    old = taxable & fund & ~recent & (months >= 24) & (rng.random(npos) < 0.2)
    stop = a.stop[p.acct]
    h_month = stop + rng.integers(11, np.maximum(months - 1, 12))
    # a switch from the fund's mutual-fund share class (same wash group) to the ETF
    switch = fund & ~old & (u.equivalent[p.sec] >= 0) & (months >= 24) & (rng.random(npos) < 0.25)
    s_month = stop + rng.integers(6, np.maximum(months - 6, 7))

    pos, j = _ragged(np.where(fund, months, 0))
    j = j + stop[pos]
    age = np.round(MONTH * j).astype(np.int64) + a.phase[p.acct[pos]]
    amount = np.exp(rng.normal(0.0, 0.15, len(pos))) * 1.03 ** (-j / 12.0)  # contributions grow
    sec = p.sec[pos].copy()
    drop = old[pos] & (j > h_month[pos])
    d = np.flatnonzero(drop)
    sold = p.partner[pos[d]]
    age_h = np.round(MONTH * h_month[pos[d]]).astype(np.int64) + a.phase[p.acct[pos[d]]]
    proceeds = np.bincount(pos[d], weights=amount[d] * u.at(sold, age_h) / u.at(sold, age[d]),
                           minlength=npos)
    bought = old[pos] & (j == h_month[pos])
    amount[bought] += proceeds[pos[bought]]
    legacy = switch[pos] & (j > s_month[pos])
    sec[legacy] = u.equivalent[sec[legacy]]
    keep = ~drop
    lots = {"pos": pos[keep], "sec": sec[keep], "age": age[keep], "amount": amount[keep]}
    rp = np.flatnonzero(recent)
    total = np.bincount(lots["pos"], weights=lots["amount"], minlength=npos)
    extra = {"pos": rp, "sec": p.sec[rp], "age": rng.integers(1, 31, len(rp)),
             "amount": total[rp] * rng.uniform(0.2, 0.6, len(rp))}
    first_extra = len(lots["pos"])
    lots = {k: np.concatenate([lots[k], extra[k]]) for k in lots}
    return lots, rp, first_extra + np.arange(len(rp))


def _stock_lots(rng: np.random.Generator, u: _Universe, a: _Accounts, p: _Positions
                ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """The stock sleeve of each direct-indexed position: 100-500 stocks drawn by
    capitalization, bought when the account was funded and added to since (1-20 lots
    each). Returns (lots, sleeve position of each chosen stock, the stock)."""
    sleeve = np.flatnonzero(p.direct)
    # a larger account holds more names and has traded (harvested, rebalanced) more
    size = (np.log(a.value[p.acct[sleeve]]) - DI_LOG_VALUE[0]) / DI_LOG_VALUE[1]
    n_stocks = np.clip(np.round(300 + 140 * size + rng.normal(0, 30, len(sleeve))), 100, 500).astype(np.int64)
    span_months = rng.integers(12, np.minimum(120, p.months[sleeve]) + 1)
    add_rate = np.clip(0.55 + 0.25 * size + rng.normal(0, 0.1, len(sleeve)), 0.05, 0.85)
    keys = u.stock_log_cap[None, :] + rng.gumbel(size=(len(sleeve), N_STOCKS))
    owner, col = _ragged(n_stocks)
    stock = np.argsort(-keys, axis=1)[owner, col]
    pick, nth = _ragged(1 + rng.binomial(19, add_rate[owner]))
    held = owner[pick]
    span = np.round(MONTH * span_months[held]).astype(np.int64)
    funded = span + a.phase[p.acct[sleeve[held]]]
    age = np.where(nth == 0, funded, rng.integers(1, span + 1))
    weight = np.exp(u.stock_log_cap[stock[pick]])
    amount = weight * np.where(nth == 0, 1.0, rng.uniform(0.05, 0.3, len(pick)))
    lots = {"pos": sleeve[held], "sec": u.stocks[stock[pick]], "age": age, "amount": amount}
    return lots, sleeve[owner], u.stocks[stock]


def _transactions(rng: np.random.Generator, u: _Universe, a: _Accounts, p: _Positions,
                  lots: dict[str, np.ndarray], harvested: np.ndarray, replacement: np.ndarray,
                  sleeve_of: np.ndarray, sleeve_stock: np.ndarray, today: np.datetime64) -> pa.Table:
    """The last RECENT_DAYS of history: every lot bought in it, the partner sold at a
    loss for each recent harvest, loss sales of stocks in direct-indexed sleeves, and a
    few sells in tax-advantaged accounts (no realized gain reported)."""
    buy = np.flatnonzero(lots["age"] <= RECENT_DAYS)
    dollars = lots["dollars"][replacement]
    h_age = lots["age"][replacement]
    h_qty = dollars / u.at(p.partner[harvested], h_age)
    h_gain = -dollars * rng.uniform(0.03, 0.25, len(harvested))
    # loss harvests of stocks in the sleeves, about four per sleeve over the window
    pick = np.flatnonzero(rng.random(len(sleeve_of)) < 4.0 / 300.0)
    s_age = rng.integers(1, 31, len(pick))
    s_value = p.value[sleeve_of[pick]] * rng.uniform(0.0005, 0.005, len(pick))
    s_qty = s_value / u.at(sleeve_stock[pick], s_age)
    s_gain = -s_value * rng.uniform(0.05, 0.35, len(pick))
    ira = np.flatnonzero((a.type[p.acct] != 0) & ~p.direct & (rng.random(len(p.acct)) < 0.015))
    i_age = rng.integers(1, 31, len(ira))
    i_qty = p.value[ira] * rng.uniform(0.02, 0.1, len(ira)) / u.at(p.sec[ira], i_age)
    acct = np.concatenate([p.acct[lots["pos"][buy]], p.acct[harvested], p.acct[sleeve_of[pick]],
                           p.acct[ira]])
    sec = np.concatenate([lots["sec"][buy], p.partner[harvested], sleeve_stock[pick], p.sec[ira]])
    age = np.concatenate([lots["age"][buy], h_age, s_age, i_age])
    qty = np.round(np.concatenate([lots["quantity"][buy], h_qty, s_qty, i_qty]), 4)
    gain = np.round(np.concatenate([np.full(len(buy), np.nan), h_gain, s_gain,
                                    np.full(len(ira), np.nan)]), 2)
    side = np.concatenate([np.zeros(len(buy), np.int64), np.ones(len(acct) - len(buy), np.int64)])
    order = np.lexsort((side, sec, -age, acct))
    return pa.table({
        "account_id": a.ids.take(pa.array(acct[order])),
        "security_id": pa.array(u.ids).take(pa.array(sec[order])),
        "trade_date": _dates(today, age[order]),
        "side": pa.array(np.array(["buy", "sell"], dtype=object)[side[order]].tolist(), pa.string()),
        "quantity": np.maximum(qty[order], 1e-4),
        "realized_gain": _nullable(gain[order]),
    }, schema=TRANSACTIONS_SCHEMA)


def _household_extras(rng: np.random.Generator, u: _Universe, a: _Accounts, hh_ids: pa.Array,
                      first_sec: np.ndarray) -> tuple[pa.Table, pa.Table, pa.Table]:
    """Restrictions, held-away assets and custom targets (a few households each)."""
    n = len(hh_ids)
    hid = hh_ids.to_pylist()
    first_acct = np.searchsorted(a.hh, np.arange(n))
    acct_ids = a.ids.to_pylist()
    rs: list[tuple[Any, ...]] = []
    for h in np.flatnonzero(rng.random(n) < 0.08):
        kind = rng.integers(0, 7)
        if kind == 0:
            rs.append((hid[h], None, "no_buy", None, None, "tobacco"))
        elif kind == 1:  # forces tobacco stocks out of a direct-indexed sleeve
            rs.append((hid[h], None, "no_hold", None, None, "tobacco"))
        elif kind == 2:
            rs.append((hid[h], None, "no_trade", None, "energy", None))
        elif kind == 3:  # a low-basis holding the client keeps
            rs.append((hid[h], acct_ids[first_acct[h]], "no_sell", u.ids[first_sec[h]], None, None))
        elif kind == 4:
            rs.append((hid[h], None, "no_buy", "ITOT", None, None))
        elif kind == 5:  # an employer's stock
            rs.append((hid[h], None, "no_hold", u.ids[rng.choice(u.stocks)], None, None))
        else:
            rs.append((hid[h], None, "no_sell", None, "technology", None))
    restrictions = pa.table({c: [r[i] for r in rs] for i, c in enumerate(RESTRICTIONS_SCHEMA.names)},
                            schema=RESTRICTIONS_SCHEMA)
    ha = np.flatnonzero(rng.random(n) < 0.12)
    held_away = pa.table({
        "household_id": hh_ids.take(pa.array(ha)),
        "asset_class": rng.choice(["us_equity", "us_bond", "intl_equity", "reit", "cash"], len(ha),
                                  p=[0.4, 0.25, 0.1, 0.1, 0.15]).tolist(),
        "value": np.round(np.exp(rng.normal(10.8, 1.0, len(ha))), 2)}, schema=HELD_AWAY_SCHEMA)
    ht: list[tuple[str, str, float]] = []
    optional = ["intl_equity", "em_equity", "tips", "reit", "muni_bond", "cash"]
    for h in np.flatnonzero(rng.random(n) < 0.04):
        classes = ["us_equity", "us_bond"] + [k for k in optional if rng.random() < 0.4]
        w = np.floor(rng.dirichlet(np.full(len(classes), 2.0)) * 1e4) / 1e4
        w[-1] = round(1.0 - w[:-1].sum(), 4)
        ht.extend((hid[h], k, float(x)) for k, x in zip(classes, w))
    targets = pa.table({"household_id": [r[0] for r in ht], "asset_class": [r[1] for r in ht],
                        "weight": [r[2] for r in ht]}, schema=HOUSEHOLD_TARGETS_SCHEMA)
    return restrictions, held_away, targets


CONCENTRATION_LIMIT_SHARE = 0.035  # of households with a max_position_share (10-25%) ...
CONCENTRATED_STOCK_SHARE = 0.6  # ... of which hold a low-basis stock above it


def _concentration(rng: np.random.Generator, u: _Universe, a: _Accounts, hh_no: np.ndarray,
                   width: int, today: np.datetime64, tax_budget: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, pa.Table]:
    """Concentration limits for a few households (``max_position_share``, 10-25%),
    most of them holding a single stock above it: one old, low-basis lot (an
    employer's stock, an inheritance; 5-30% basis, 8-25 years) worth 5-30 points
    more than the limit, in their first taxable account, on top of their model's
    holdings; a household with such a stock and no tax budget gets one
    ($5,000-30,000), so it is wound down over nights. Returns (max_position_share
    per household, NaN for none; tax budget per household; the stock lots)."""
    n = len(hh_no)
    limit = np.where(rng.random(n) < CONCENTRATION_LIMIT_SHARE,
                     rng.choice([0.10, 0.15, 0.20, 0.25], n), np.nan)
    taxable = np.flatnonzero(a.type == 0)
    first = np.full(n, -1, dtype=np.int64)
    first[a.hh[taxable[::-1]]] = taxable[::-1]  # each household's first taxable account
    holds = ~np.isnan(limit) & (first >= 0) & (rng.random(n) < CONCENTRATED_STOCK_SHARE)
    h = np.flatnonzero(holds)
    acct = first[h]
    share = limit[h] + rng.uniform(0.05, 0.30, len(h))  # of the household with the stock
    hh_value = np.bincount(a.hh, weights=a.value, minlength=n)[h]
    stock = rng.choice(u.stocks, len(h))
    qty = np.round(share / (1.0 - share) * hh_value / u.price[stock], 4)
    basis = np.round(qty * u.price[stock] * rng.uniform(0.05, 0.30, len(h)), 2)
    age = rng.integers(8 * 365, 25 * 365, len(h))
    budget = tax_budget.copy()
    budget[h] = np.where(np.isnan(budget[h]), np.round(rng.uniform(5_000, 30_000, len(h))),
                         budget[h])
    lots = pa.table({
        "lot_id": _fixed_ids(len(h), "H", (hh_no[h], width), "-A", (a.no[acct], 1), "-C1"),
        "account_id": a.ids.take(pa.array(acct, pa.int64())),
        "security_id": pa.array([u.ids[s] for s in stock], pa.string()),
        "quantity": qty, "cost_basis": basis, "acquired_date": _dates(today, age),
    }, schema=LOTS_SCHEMA)
    return limit, budget, lots


SECTOR_LIMIT_SHARE = 0.10  # of households with a direct-indexed sleeve, a max_sector_share
SECTOR_LIMIT_OF_SLEEVE = (0.06, 0.12)  # ... this share of their sleeve's account, per sector


def _sector_limits(rng: np.random.Generator, a: _Accounts, n: int) -> np.ndarray:
    """Sector limits for a few households with a direct-indexed sleeve (a client who
    caps any one sector of the stocks it picks): ``max_sector_share`` of 6-12% of
    the sleeve account's value, as a share of the household's (the account's largest
    sector of stocks is about 5-10% of it, so the limit binds for some and they wind
    that sector down over nights). NaN for none."""
    sleeve = np.zeros(n)
    np.add.at(sleeve, a.hh[a.direct], a.value[a.direct])
    hh_value = np.bincount(a.hh, weights=a.value, minlength=n)
    share = sleeve / np.maximum(hh_value, 1.0) * rng.uniform(*SECTOR_LIMIT_OF_SLEEVE, n)
    pick = (sleeve > 0) & (rng.random(n) < SECTOR_LIMIT_SHARE)
    return np.where(pick, np.clip(np.round(share, 4), 0.01, 1.0), np.nan)


def _cash_needs(rng: np.random.Generator, a: _Accounts, tradable: np.ndarray, hh_ids: pa.Array,
                today: np.datetime64) -> pa.Table:
    """A few households (CASH_NEED_SHARE) owe one sum within CASH_NEED_DAYS: 5% to 30%
    of what pays it, from a named tradable account (a third of them, any type: a
    distribution from an IRA) or from the household's tradable taxable accounts."""
    n = len(hh_ids)
    rows: list[tuple[Any, ...]] = []
    hid = hh_ids.to_pylist()
    acct_ids = a.ids.to_pylist()
    for h in np.flatnonzero(rng.random(n) < CASH_NEED_SHARE):
        mine = np.flatnonzero((a.hh == h) & tradable)
        taxable = mine[a.type[mine] == 0]
        named = bool(rng.random() < 1 / 3) or len(taxable) == 0
        if len(mine) == 0:
            continue
        account = int(rng.choice(mine)) if named else -1
        funds = a.value[account] if named else a.value[taxable].sum()
        amount = max(1_000.0, float(np.round(funds * rng.uniform(0.05, 0.30), -2)))
        due = today + np.timedelta64(int(rng.integers(1, CASH_NEED_DAYS + 1)), "D")
        rows.append((hid[h], acct_ids[account] if named else None, due.item(), amount,
                     f"{hid[h]}-N1"))
    return pa.table({c: [r[i] for r in rows] for i, c in enumerate(CASH_NEEDS_SCHEMA.names)},
                    schema=CASH_NEEDS_SCHEMA)


# Overrides: a few per 1,000 households, a quarter of them expired (the run notes and
# ignores those); product preferences for ~7% of households.
OVERRIDE_SHARE = 0.006
OVERRIDE_EXPIRED_SHARE = 0.25
PREFERENCE_SHARE = 0.07
# the mutual funds among FUNDS (share classes and index funds); the other funds are ETFs
MUTUAL_FUNDS = frozenset({"VTSAX", "FXAIX", "VFIAX", "VTIAX", "FTIHX", "VEMAX", "VBTLX", "FXNAX",
                          "VGSLX"})
GLIDE_PATHS_SCHEMA = pa.schema([("model_id", pa.string()), ("household_id", pa.string()),
                                ("effective_date", pa.date32()), ("asset_class", pa.string()),
                                ("weight", pa.float64())])
GLIDE_SHARE = 0.04  # households on a glide path of their own
GLIDE_YEARS = 10  # ... from their model's weights today to GLIDE_SHIFT less equity then
GLIDE_SHIFT = 0.15
EQUITY_CLASSES = ("us_equity", "intl_equity", "em_equity", "reit")


def _glide_paths(rng: np.random.Generator, hh_ids: pa.Array, model: np.ndarray,
                 today: np.datetime64) -> pa.Table:
    """A few households de-risking on a path of their own (a personal target-date
    plan): their model's weights today, GLIDE_SHIFT of the equity weight moved to
    us_bond (pro rata over the equity classes) GLIDE_YEARS later. Tonight's target is
    the model's, so only later nights move along the path."""
    names = list(MODELS)
    later = today + np.timedelta64(365 * GLIDE_YEARS, "D")
    rows: list[tuple[str, np.datetime64, str, float]] = []
    for h in np.flatnonzero(rng.random(len(model)) < GLIDE_SHARE):
        now = dict(MODELS[names[model[h]]])
        equity = sum(w for k, w in now.items() if k in EQUITY_CLASSES)
        shift = min(GLIDE_SHIFT, equity)
        then = {k: (w * (1 - shift / equity) if k in EQUITY_CLASSES else w) for k, w in now.items()}
        then["us_bond"] = then.get("us_bond", 0.0) + shift
        hid = hh_ids[h].as_py()
        rows += [(hid, today, k, w) for k, w in sorted(now.items())]
        rows += [(hid, later, k, w) for k, w in sorted(then.items())]
    return pa.table({"model_id": pa.nulls(len(rows), pa.string()),
                     "household_id": [r[0] for r in rows],
                     "effective_date": pa.array(np.array([r[1] for r in rows],
                                                         dtype="datetime64[D]"), pa.date32()),
                     "asset_class": [r[2] for r in rows], "weight": [r[3] for r in rows]},
                    schema=GLIDE_PATHS_SCHEMA)


# Goals: every 529 without a cash cap saves for tuition (its own goal, on the household's
# model, gliding to a horizon 3 to 15 years out), and GOAL_HOME_SHARE of the households
# without one keep a tradable taxable account (without a cash cap) for a home bought in
# 1 to 4 years: on the conservative model, or on weights of their own (goal_targets) of
# bonds and cash. A cash cap would stop the built-in glide to cash (docs/model.md).
GOALS_SCHEMA = pa.schema([("goal_id", pa.string()), ("household_id", pa.string()),
                          ("account_id", pa.string()), ("model_id", pa.string()),
                          ("horizon_date", pa.date32())])
GOAL_TARGETS_SCHEMA = pa.schema([("goal_id", pa.string()), ("asset_class", pa.string()),
                                 ("weight", pa.float64())])
GOAL_HOME_SHARE = 0.05
GOAL_HOME_OWN_WEIGHTS = {"us_bond": 0.7, "cash": 0.3}


def _goals(rng: np.random.Generator, a: _Accounts, accounts: pa.Table, hh_ids: pa.Array,
           model: np.ndarray, today: np.datetime64) -> tuple[pa.Table, pa.Table]:
    """Tuition goals on 529s and home-purchase goals on taxable accounts (see above),
    deterministic for the generator."""
    names = list(MODELS)
    hid, acct_ids = hh_ids.to_pylist(), a.ids.to_pylist()
    capped = ~np.isnan(accounts.column("max_cash").to_numpy(zero_copy_only=False)
                       .astype(np.float64))
    tradable = accounts.column("tradable").to_numpy(zero_copy_only=False).astype(bool)
    goals: list[tuple[Any, ...]] = []
    weights: list[tuple[str, str, float]] = []
    tuition = np.flatnonzero((a.type == ACCOUNT_TYPES.index("education")) & ~capped)
    for j in tuition:
        years = int(rng.integers(3 * 365, 15 * 365 + 1))
        goals.append((f"{acct_ids[j]}-tuition", hid[a.hh[j]], acct_ids[j],
                      names[model[a.hh[j]]], (today + np.timedelta64(years, "D")).item()))
    has_tuition = np.zeros(len(hid), dtype=bool)
    has_tuition[a.hh[tuition]] = True
    home = (a.type == ACCOUNT_TYPES.index("taxable")) & tradable & ~capped
    for h in np.flatnonzero((rng.random(len(hid)) < GOAL_HOME_SHARE) & ~has_tuition):
        mine = np.flatnonzero(home & (a.hh == h))
        if len(mine) == 0:
            continue
        first = int(mine[0])
        own = rng.random() < 1 / 3 and "us_bond" in MODELS[names[model[h]]]
        gid = f"{acct_ids[first]}-home"
        days = int(rng.integers(365, 4 * 365 + 1))
        goals.append((gid, hid[h], acct_ids[first], None if own else "conservative",
                      (today + np.timedelta64(days, "D")).item()))
        if own:
            weights += [(gid, k, w) for k, w in GOAL_HOME_OWN_WEIGHTS.items()]
    return (pa.table({c: [r[i] for r in goals] for i, c in enumerate(GOALS_SCHEMA.names)},
                     schema=GOALS_SCHEMA),
            pa.table({c: [r[i] for r in weights] for i, c in enumerate(GOAL_TARGETS_SCHEMA.names)},
                     schema=GOAL_TARGETS_SCHEMA))


OVERRIDES_SCHEMA = pa.schema([
    ("override_id", pa.string()), ("household_id", pa.string()), ("action", pa.string()),
    ("security_id", pa.string()), ("account_id", pa.string()), ("reason", pa.string()),
    ("author", pa.string()), ("expires_on", pa.date32())])
PRODUCT_PREFERENCES_SCHEMA = pa.schema([
    ("household_id", pa.string()), ("asset_class", pa.string()), ("security_id", pa.string()),
    ("vehicle", pa.string()), ("rank", pa.int64())])
_OVERRIDE_ODDS = {"skip": 0.3, "hold_security": 0.35, "no_tax_budget": 0.2, "no_harvest": 0.15}
_OVERRIDE_REASONS = {
    "skip": "client travelling, call before trading", "hold_security": "shares to be gifted",
    "no_tax_budget": "advisor approved realizing gains", "no_harvest": "loss carryforward enough"}
_AUTHORS = ("j.doe", "a.lee", "m.garcia", "r.chen")
# (asset class, security_id, vehicle): every model lists both classes, with an ETF and
# a mutual fund in each; VTSAX is no model's (the preference makes it buyable)
_PREFERENCES = (("us_equity", None, "mutual_fund"), ("intl_equity", None, "etf"),
                ("us_equity", "VTSAX", None))


def _overrides_and_preferences(rng: np.random.Generator, hh_ids: list[str],
                               first_account: list[str], first_security: list[str],
                               today: np.datetime64) -> tuple[pa.Table, pa.Table]:
    """Overrides (OVERRIDE_SHARE of households: skip, hold the first lot's security,
    lift the tax budget, no harvesting; some expired, some open-ended) and product
    preferences (PREFERENCE_SHARE: mutual funds for US equity, ETFs for international
    equity, or VTSAX first), deterministic for the generator."""
    n = len(hh_ids)
    actions = list(_OVERRIDE_ODDS)
    ov: list[tuple[Any, ...]] = []
    for h in np.flatnonzero(rng.random(n) < OVERRIDE_SHARE):
        action = actions[rng.choice(len(actions), p=list(_OVERRIDE_ODDS.values()))]
        draw = rng.random()
        expires = (today - np.timedelta64(int(rng.integers(1, 61)), "D")
                   if draw < OVERRIDE_EXPIRED_SHARE else None if draw < 0.55
                   else today + np.timedelta64(int(rng.integers(0, 91)), "D"))
        hold = action == "hold_security"
        ov.append((f"OV-{hh_ids[h]}-1", hh_ids[h], action, first_security[h] if hold else None,
                   first_account[h] if hold and rng.random() < 0.5 else None,
                   _OVERRIDE_REASONS[action], _AUTHORS[rng.integers(len(_AUTHORS))],
                   None if expires is None else expires.item()))
    pp = [(hh_ids[h], *_PREFERENCES[rng.integers(len(_PREFERENCES))], 1)
          for h in np.flatnonzero(rng.random(n) < PREFERENCE_SHARE)]
    return (pa.table({c: [r[i] for r in ov] for i, c in enumerate(OVERRIDES_SCHEMA.names)},
                     schema=OVERRIDES_SCHEMA),
            pa.table({c: [r[i] for r in pp] for i, c in enumerate(PRODUCT_PREFERENCES_SCHEMA.names)},
                     schema=PRODUCT_PREFERENCES_SCHEMA))


def _chunk(rng: np.random.Generator, u: _Universe, h0: int, n: int, today: np.datetime64,
           bad_fraction: float, width: int) -> dict[str, pa.Table]:
    hh_no = h0 + np.arange(n)
    hh_ids = _fixed_ids(n, "H", (hh_no, width))
    households, model = _households_table(rng, n, hh_ids)
    a, accounts = _accounts(rng, hh_no, hh_ids, width)
    p = _positions(rng, u, a, model)
    fund, harvested, replacement = _fund_lots(rng, u, a, p)
    stock, sleeve_of, sleeve_stock = _stock_lots(rng, u, a, p)
    lots = {k: np.concatenate([fund[k], stock[k]]) for k in fund}
    # Prices follow the random walks: each lot's basis is its price on the day it was
    # bought; the position is then sized to its value today.
    then = u.at(lots["sec"], lots["age"])
    units = lots["amount"] / then
    scale = p.value / np.bincount(lots["pos"], weights=units * u.price[lots["sec"]], minlength=len(p.acct))
    # no lot below MIN_LOT_VALUE today (a sleeve's smallest names are still a few dollars)
    qty = np.round(np.maximum(units * scale[lots["pos"]], MIN_LOT_VALUE / u.price[lots["sec"]]), 4)
    lots["quantity"] = qty
    lots["dollars"] = lots["amount"] * scale[lots["pos"]]
    basis = np.round(qty * then, 2)
    transactions = _transactions(rng, u, a, p, lots, harvested, replacement, sleeve_of,
                                 sleeve_stock, today)

    acct = p.acct[lots["pos"]]
    # by account, security, oldest first (one integer key: a stable sort of it is the
    # lexicographic order at a fraction of np.lexsort's cost)
    key = (acct * len(u.ids) + lots["sec"]) * (HISTORY_DAYS + 1) + (HISTORY_DAYS - lots["age"])
    order = np.argsort(key, kind="stable")
    acct, sec, age, qty, basis = acct[order], lots["sec"][order], lots["age"][order], qty[order], basis[order]
    n_l = len(acct)
    lot_hh = a.hh[acct]
    first_lot = np.searchsorted(lot_hh, np.arange(n))
    # bad on purpose: a negative quantity, or a security nobody knows
    names = pa.array(u.ids + ["DELISTED1"])
    sec_out = sec.copy()
    for h in np.flatnonzero(rng.random(n) < bad_fraction):
        if (h0 + h) % 2 == 0:
            qty[first_lot[h]] = -qty[first_lot[h]]
        else:
            sec_out[first_lot[h]] = len(u.ids)
    lot_table = pa.table({
        "lot_id": _fixed_ids(n_l, "H", (hh_no[lot_hh], width), "-A", (a.no[acct], 1),
                             "-L", (_first_index(acct), 5)),
        "account_id": a.ids.take(pa.array(acct)),
        "security_id": names.take(pa.array(sec_out)),
        "quantity": qty, "cost_basis": basis, "acquired_date": _dates(today, age),
    }, schema=LOTS_SCHEMA)
    restrictions, held_away, targets = _household_extras(rng, u, a, hh_ids, sec[first_lot])
    # concentration limits and concentrated stocks from a generator of their own, so the
    # rest of the book is what it was without them
    limit, budget, stock_lots = _concentration(
        rng.spawn(1)[0], u, a, hh_no, width, today,
        households.column("tax_budget").to_numpy(zero_copy_only=False).astype(np.float64))
    households = households.set_column(households.schema.get_field_index("tax_budget"),
                                       "tax_budget", _nullable(budget))
    households = households.append_column("max_position_share", _nullable(limit))
    lot_table = pa.concat_tables([lot_table, stock_lots])
    # cash needs from a generator of their own too (the rest of the book is unchanged)
    cash_needs = _cash_needs(rng.spawn(1)[0], a, accounts.column("tradable").to_numpy(), hh_ids,
                             today)
    # overrides and product preferences from a generator of their own as well
    overrides, preferences = _overrides_and_preferences(
        rng.spawn(1)[0], hh_ids.to_pylist(),
        a.ids.take(pa.array(np.searchsorted(a.hh, np.arange(n)))).to_pylist(),
        [u.ids[s] for s in sec[first_lot]], today)
    glide_paths = _glide_paths(rng.spawn(1)[0], hh_ids, model, today)
    goals, goal_targets = _goals(rng.spawn(1)[0], a, accounts, hh_ids, model, today)
    # sector limits from a generator of their own too (spawned after the others, so
    # the rest of the book is what it was without them)
    households = households.append_column("max_sector_share",
                                          _nullable(_sector_limits(rng.spawn(1)[0], a, n)))
    return {"households": households, "accounts": accounts, "lots": lot_table,
            "transactions": transactions, "restrictions": restrictions, "held_away": held_away,
            "household_targets": targets, "cash_needs": cash_needs,
            "overrides": overrides, "product_preferences": preferences,
            "glide_paths": glide_paths, "goals": goals, "goal_targets": goal_targets}


STREAMED = {"lots": LOTS_SCHEMA, "transactions": TRANSACTIONS_SCHEMA}
COLLECTED = {"households": HOUSEHOLDS_SCHEMA, "accounts": ACCOUNTS_SCHEMA,
             "restrictions": RESTRICTIONS_SCHEMA, "held_away": HELD_AWAY_SCHEMA,
             "household_targets": HOUSEHOLD_TARGETS_SCHEMA, "cash_needs": CASH_NEEDS_SCHEMA,
             "overrides": OVERRIDES_SCHEMA, "product_preferences": PRODUCT_PREFERENCES_SCHEMA,
             "glide_paths": GLIDE_PATHS_SCHEMA, "goals": GOALS_SCHEMA,
             "goal_targets": GOAL_TARGETS_SCHEMA}


def _generate_realistic(path: str, n: int, seed: int, as_of: str, bad_fraction: float) -> BookStats:
    os.makedirs(path, exist_ok=True)
    today = np.datetime64(as_of, "D")
    u, securities, targets, model_securities, menus = _universe(
        np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,))))
    for name, table in (("securities", securities), ("targets", targets),
                        ("model_securities", model_securities), ("menus", menus)):
        _write(path, name, table)
    width = max(7, len(str(n - 1)))
    collected: dict[str, list[pa.Table]] = {name: [] for name in COLLECTED}
    writers = {name: pq.ParquetWriter(os.path.join(path, f"{name}.parquet"), schema)
               for name, schema in STREAMED.items()}
    n_acct = n_lots = 0
    try:
        for c, h0 in enumerate(range(0, n, CHUNK)):
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, c)))
            tables = _chunk(rng, u, h0, min(CHUNK, n - h0), today, bad_fraction, width)
            for name, writer in writers.items():
                writer.write_table(tables[name])
            for name in collected:
                collected[name].append(tables[name])
            n_acct += tables["accounts"].num_rows
            n_lots += tables["lots"].num_rows
    finally:
        for writer in writers.values():
            writer.close()
    for name, parts in collected.items():
        _write(path, name, pa.concat_tables(parts))
    return BookStats(households=n, accounts=n_acct, lots=n_lots, path=path)
