"""The simulator's book and markets, deterministic for a seed.

A book: households with a taxable account plus a mix of traditional / Roth / HSA
accounts ($50k-$3M), one model per risk level over seven asset classes (six
risky classes, each with a primary and a substitute ETF in different wash
groups, and cash), tax rates per household, monthly contributions or
withdrawals for some households, and starting positions near target made of lots
bought on the 15th of earlier months at the prices of a shared history path (so
lots carry gains and losses, and the same purchase month is a loss for everyone).

Markets: correlated log-normal returns per class from one fixed covariance
(Cholesky), in half-month steps (a run on the 15th, dividends on the 1st). Each
named path fixes every calendar year's log price return per class exactly: the
correlated shocks are de-meaned within each simulated year, so `bear` really
falls and `flat` really ends each year where it began, while the intra-year
swings (which create harvestable losses) stay. A substitute follows its primary
with a small tracking noise that also sums to zero within a year.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

CLASSES = ("us_equity", "intl_equity", "em_equity", "us_bonds", "munis", "reits", "cash")
RISKY = CLASSES[:-1]
CASH = len(CLASSES) - 1
EQUITY = np.array([c in ("us_equity", "intl_equity", "em_equity", "reits") for c in CLASSES])
ACCOUNT_TYPES = ("taxable", "traditional", "roth", "hsa")
TAXABLE, TRADITIONAL, ROTH, HSA = range(4)

# class: (primary, substitute, income_yield, qualified, exempt, foreign, cg_dist,
#         expected_return, cost_bps, annual vol, price of primary, price of substitute)
CLASS_SPECS = {
    "us_equity": ("VTI", "ITOT", 0.014, 0.95, 0.0, 0.00, 0.000, 0.070, 2.0, 0.16, 280.0, 120.0),
    "intl_equity": ("VXUS", "IXUS", 0.030, 0.70, 0.0, 0.07, 0.000, 0.072, 3.0, 0.17, 62.0, 70.0),
    "em_equity": ("VWO", "IEMG", 0.030, 0.55, 0.0, 0.10, 0.000, 0.080, 5.0, 0.22, 44.0, 53.0),
    "us_bonds": ("BND", "AGG", 0.040, 0.00, 0.0, 0.00, 0.000, 0.042, 2.0, 0.055, 73.0, 98.0),
    "munis": ("VTEB", "MUB", 0.030, 0.00, 1.0, 0.00, 0.000, 0.032, 3.0, 0.045, 50.0, 107.0),
    "reits": ("VNQ", "SCHH", 0.038, 0.10, 0.0, 0.00, 0.005, 0.068, 4.0, 0.20, 88.0, 21.0),
}
CORRELATION = np.array([
    # us    intl   em    bonds  munis  reits
    [1.00, 0.82, 0.70, 0.10, 0.15, 0.70],
    [0.82, 1.00, 0.80, 0.10, 0.12, 0.62],
    [0.70, 0.80, 1.00, 0.05, 0.10, 0.55],
    [0.10, 0.10, 0.05, 1.00, 0.65, 0.25],
    [0.15, 0.12, 0.10, 0.65, 1.00, 0.25],
    [0.70, 0.62, 0.55, 0.25, 0.25, 1.00],
])
TRACKING_VOL = 0.003  # annual tracking noise between a primary and its substitute
HISTORY_MONTHS = 72  # starting lots were bought up to six years before the first run
HISTORY_DRIFT = np.array([0.08, 0.05, 0.04, 0.0, 0.0, 0.05])  # annual price return before the start

# model weights per class, cash last (each row sums to 1)
MODELS = {
    "conservative": (0.15, 0.07, 0.03, 0.35, 0.30, 0.05, 0.05),
    "moderate": (0.30, 0.12, 0.05, 0.25, 0.18, 0.06, 0.04),
    "growth": (0.42, 0.17, 0.07, 0.14, 0.10, 0.07, 0.03),
    "aggressive": (0.52, 0.20, 0.10, 0.06, 0.04, 0.06, 0.02),
}
MODEL_ODDS = (0.2, 0.35, 0.3, 0.15)
# (ordinary incl. state and NIIT where it applies, long-term / qualified rate)
TAX_PROFILES = ((0.26, 0.19), (0.29, 0.20), (0.41, 0.238), (0.45, 0.288), (0.49, 0.318))
TAX_ODDS = (0.15, 0.3, 0.3, 0.15, 0.1)
FILING = ("married_joint", "single", "married_separate", "head_of_household")
FILING_ODDS = (0.5, 0.4, 0.03, 0.07)
# account mixes: taxable always; the share of households with each mix
MIXES = ((TAXABLE,), (TAXABLE, TRADITIONAL), (TAXABLE, TRADITIONAL, ROTH),
         (TAXABLE, TRADITIONAL, ROTH, HSA), (TAXABLE, ROTH))
MIX_ODDS = (0.1, 0.25, 0.25, 0.3, 0.1)
SPLIT_WEIGHT = np.array([3.0, 3.0, 1.2, 0.4])  # Dirichlet weights of value per account type


# Path: per simulated year, the annual price return (not total return: income is paid
# on top) of each risky class. Years beyond the list repeat its last entry.
def _path_returns(name: str, years: int) -> np.ndarray:
    eq = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.8])  # REITs move at 80% of equities
    out = np.zeros((years, len(RISKY)))
    for y in range(years):
        if name == "flat" or name == "volatile":
            r = np.zeros(len(RISKY))
        elif name == "bear":
            eq_r = -0.15 if y < 2 else 0.05
            r = eq * eq_r + np.array([0, 0, 0, 0.01, 0.0, 0])
        elif name == "bull":
            r = np.array([0.20, 0.18, 0.22, -0.01, 0.0, 0.15])
        else:
            raise ValueError(f"unknown market path {name!r}; use one of {', '.join(PATHS)}")
        out[y] = r
    return out


PATHS = {
    "flat": "every class ends each year where it began (income still paid)",
    "bear": "equities -15%/yr for two years, then +5%/yr; bonds +1%/yr",
    "bull": "equities +20%/yr (intl 18, EM 22, REITs 15), bonds -1%/yr",
    "volatile": "flat drift, twice the volatility",
}
VOL_SCALE = {"volatile": 2.0}


@dataclass
class Book:
    """The fixed part of a book and its starting positions (lots as arrays)."""

    start: np.datetime64  # first run date
    hh_ids: np.ndarray
    model: np.ndarray  # model index per household
    st_rate: np.ndarray
    lt_rate: np.ndarray
    ordinary_rate: np.ndarray
    qualified_div_rate: np.ndarray
    retirement_rate: np.ndarray
    filing: np.ndarray
    acct_ids: np.ndarray
    acct_hh: np.ndarray
    acct_type: np.ndarray
    contribution: np.ndarray  # monthly dollars per account
    withdrawal: np.ndarray  # monthly dollars per account
    sec_ids: np.ndarray
    sec_class: np.ndarray
    sec_rank: np.ndarray  # 1 primary, 2 substitute
    income_yield: np.ndarray
    qualified: np.ndarray
    exempt: np.ndarray
    foreign: np.ndarray
    cg_dist: np.ndarray
    expected_return: np.ndarray
    cost_bps: np.ndarray
    base_price: np.ndarray  # price at the first run date
    targets: np.ndarray  # (n_models, n_classes)
    primary: np.ndarray  # security index per risky class
    history_price: np.ndarray  # (HISTORY_MONTHS + 1, n_sec): row k = price k months before start
    cash: np.ndarray  # starting cash per account
    lot_acct: np.ndarray
    lot_sec: np.ndarray
    lot_qty: np.ndarray
    lot_basis: np.ndarray
    lot_acquired: np.ndarray  # datetime64[D]

    @property
    def model_names(self) -> list[str]:
        return list(MODELS)

    @property
    def n_hh(self) -> int:
        return len(self.hh_ids)


def run_dates(start: np.datetime64, months: int) -> np.ndarray:
    """Run date of month m: the start's day of month, m months later."""
    month0 = start.astype("datetime64[M]")
    day = (start - month0.astype("datetime64[D]")).astype(int)
    return (month0 + np.arange(months)).astype("datetime64[D]") + day


def dividend_dates(start: np.datetime64, months: int) -> np.ndarray:
    """Dividend date after run m: the first of the next month."""
    return (start.astype("datetime64[M]") + np.arange(1, months + 1)).astype("datetime64[D]")


def _securities() -> dict[str, list]:
    cols: dict[str, list] = {k: [] for k in ("id", "cls", "rank", "yield", "qual", "exempt", "foreign",
                                             "cg", "er", "cost", "price")}
    for k, name in enumerate(RISKY):
        p, s, y, q, x, f, cg, er, cost, _vol, pp, sp = CLASS_SPECS[name]
        for rank, (sid, price) in enumerate(((p, pp), (s, sp)), start=1):
            cols["id"].append(sid)
            cols["cls"].append(k)
            cols["rank"].append(rank)
            cols["yield"].append(y)
            cols["qual"].append(q)
            cols["exempt"].append(x)
            cols["foreign"].append(f)
            cols["cg"].append(cg)
            cols["er"].append(er)
            cols["cost"].append(cost)
            cols["price"].append(price)
    return cols


def _cholesky(vol_scale: float = 1.0) -> np.ndarray:
    vol = np.array([CLASS_SPECS[c][9] for c in RISKY]) * vol_scale
    cov = CORRELATION * np.outer(vol, vol)
    return np.linalg.cholesky(cov)


def _sec_log_returns(class_log: np.ndarray, sec_class: np.ndarray, sec_rank: np.ndarray,
                     rng: np.random.Generator, steps_per_year: int, demean: bool) -> np.ndarray:
    """Per-security log returns from per-class ones plus tracking noise for substitutes."""
    n_steps = class_log.shape[0]
    noise = rng.normal(0.0, TRACKING_VOL / np.sqrt(steps_per_year), (n_steps, len(sec_class)))
    noise[:, sec_rank == 1] = 0.0
    if demean:
        years = n_steps // steps_per_year
        block = noise[: years * steps_per_year].reshape(years, steps_per_year, -1)
        block -= block.mean(axis=1, keepdims=True)
    return class_log[:, sec_class] + noise


def market_prices(book: Book, path: str, years: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(prices at run dates, prices at dividend dates), each (12 * years, n_sec).

    The same seed and path name always give the same prices, whatever other paths
    are simulated alongside."""
    if path not in PATHS:
        raise ValueError(f"unknown market path {path!r}; use one of {', '.join(PATHS)}")
    steps_per_year = 24
    n_steps = steps_per_year * years
    rng = np.random.default_rng([seed, zlib.crc32(path.encode())])
    chol = _cholesky(VOL_SCALE.get(path, 1.0)) / np.sqrt(steps_per_year)
    shocks = rng.standard_normal((n_steps, len(RISKY))) @ chol.T
    block = shocks.reshape(years, steps_per_year, -1)
    block -= block.mean(axis=1, keepdims=True)  # each year's return is exactly the path's
    drift = np.log1p(_path_returns(path, years))  # (years, classes)
    class_log = block + (drift / steps_per_year)[:, None, :]
    class_log = class_log.reshape(n_steps, -1)
    sec_log = _sec_log_returns(class_log, book.sec_class, book.sec_rank, rng, steps_per_year, True)
    level = np.vstack([np.zeros(len(book.sec_ids)), np.cumsum(sec_log, axis=0)])
    prices = np.round(book.base_price * np.exp(level), 4)
    return prices[0:n_steps:2], prices[1:n_steps:2]


def _history(sec_class: np.ndarray, sec_rank: np.ndarray, base: np.ndarray,
             rng: np.random.Generator) -> np.ndarray:
    chol = _cholesky() / np.sqrt(12)
    shocks = rng.standard_normal((HISTORY_MONTHS, len(RISKY))) @ chol.T
    class_log = shocks + np.log1p(HISTORY_DRIFT) / 12
    sec_log = _sec_log_returns(class_log, sec_class, sec_rank, rng, 12, False)
    # row k: price k months before the start = base / exp(sum of the last k monthly returns)
    back = np.vstack([np.zeros(len(base)), np.cumsum(sec_log[::-1], axis=0)])
    return np.round(base * np.exp(-back), 4)


def build_book(households: int, seed: int, start: str = "2026-01-15") -> Book:
    """A book of ``households`` households, deterministic for ``seed``."""
    rng = np.random.default_rng([seed, 101])
    n = households
    start_d = np.datetime64(start, "D")
    sec = _securities()
    sec_class = np.array(sec["cls"])
    sec_rank = np.array(sec["rank"])
    base = np.array(sec["price"])
    history = _history(sec_class, sec_rank, base, np.random.default_rng([seed, 202]))
    targets = np.array([MODELS[m] for m in MODELS])
    primary = np.array([np.flatnonzero((sec_class == k) & (sec_rank == 1))[0]
                        for k in range(len(RISKY))])
    substitute = primary + 1

    model = rng.choice(len(MODELS), n, p=MODEL_ODDS)
    prof = rng.choice(len(TAX_PROFILES), n, p=TAX_ODDS)
    ordinary = np.array([TAX_PROFILES[p][0] for p in prof])
    lt = np.array([TAX_PROFILES[p][1] for p in prof])
    retirement = np.round(ordinary - rng.choice([0.0, 0.04, 0.08], n), 3)
    filing = np.array(FILING, dtype=object)[rng.choice(len(FILING), n, p=FILING_ODDS)]
    hh_value = np.round(np.exp(rng.uniform(np.log(50_000), np.log(3_000_000), n)), -2)
    mix = rng.choice(len(MIXES), n, p=MIX_ODDS)

    acct_hh, acct_type, acct_value = [], [], []
    for h in range(n):
        types = MIXES[mix[h]]
        split = rng.dirichlet(SPLIT_WEIGHT[list(types)])
        for t, s in zip(types, split):
            acct_hh.append(h)
            acct_type.append(t)
            acct_value.append(max(round(float(hh_value[h] * s), 2), 2_000.0))
    acct_hh_a = np.array(acct_hh)
    acct_type_a = np.array(acct_type)
    acct_val = np.array(acct_value)
    n_acct = len(acct_hh_a)
    acct_no = np.arange(n_acct) - np.searchsorted(acct_hh_a, acct_hh_a)
    hh_ids = np.array([f"S{h:05d}" for h in range(n)], dtype=object)
    acct_ids = np.array([f"{hh_ids[h]}-{ACCOUNT_TYPES[t][:3].upper()}{k}"
                         for h, t, k in zip(acct_hh_a, acct_type_a, acct_no)], dtype=object)

    # monthly cash flows: some households contribute to one account, some withdraw from one
    contribution = np.zeros(n_acct)
    withdrawal = np.zeros(n_acct)
    flow = rng.random(n)
    for h in range(n):
        accts = np.flatnonzero(acct_hh_a == h)
        types = acct_type_a[accts]
        if flow[h] < 0.35:
            odds = np.array([{TAXABLE: 0.5, TRADITIONAL: 0.3, ROTH: 0.15, HSA: 0.05}[t] for t in types])
            a = accts[rng.choice(len(accts), p=odds / odds.sum())]
            contribution[a] = max(200.0, round(float(hh_value[h] * rng.uniform(0.001, 0.005)), -1))
        elif flow[h] < 0.55:
            ok = np.isin(types, (TAXABLE, TRADITIONAL))
            a = accts[ok][rng.integers(ok.sum())]
            withdrawal[a] = max(100.0, round(float(acct_val[a] * rng.uniform(0.003, 0.006)), -1))

    # starting positions: each account near the model weights, lots from the history
    cash_w = targets[model, CASH]
    cash = np.round(acct_val * cash_w[acct_hh_a], 2)
    lot_acct, lot_sec, lot_qty, lot_basis, lot_acq = [], [], [], [], []
    for a in range(n_acct):
        w = targets[model[acct_hh_a[a]], :CASH] * np.exp(rng.normal(0.0, 0.03, len(RISKY)))
        w = w / w.sum() * (acct_val[a] - cash[a])
        taxable = acct_type_a[a] == TAXABLE
        for k in range(len(RISKY)):
            if w[k] <= 0:
                continue
            r = rng.random()
            # taxable accounts sometimes hold the substitute (an earlier harvest) or both
            holdings = ([primary[k]] if not taxable or r < 0.75 else
                        [substitute[k]] if r < 0.9 else [primary[k], substitute[k]])
            n_lots = rng.integers(1, 5) if taxable else 1
            parts = rng.dirichlet(np.ones(n_lots * len(holdings)))
            for j, part in enumerate(parts):
                s = holdings[j % len(holdings)]
                months_ago = int(rng.integers(2, HISTORY_MONTHS + 1))
                qty = round(float(w[k] * part / base[s]), 6)
                if qty <= 0:
                    continue
                lot_acct.append(a)
                lot_sec.append(s)
                lot_qty.append(qty)
                lot_basis.append(round(qty * float(history[months_ago, s]), 2))
                acq = (start_d.astype("datetime64[M]") - months_ago).astype("datetime64[D]") + 14
                lot_acq.append(acq)

    return Book(
        start=start_d, hh_ids=hh_ids, model=model, st_rate=ordinary.copy(), lt_rate=lt,
        ordinary_rate=ordinary, qualified_div_rate=lt.copy(), retirement_rate=retirement,
        filing=filing, acct_ids=acct_ids, acct_hh=acct_hh_a, acct_type=acct_type_a,
        contribution=contribution, withdrawal=withdrawal,
        sec_ids=np.array(sec["id"], dtype=object), sec_class=sec_class, sec_rank=sec_rank,
        income_yield=np.array(sec["yield"]), qualified=np.array(sec["qual"]),
        exempt=np.array(sec["exempt"]), foreign=np.array(sec["foreign"]), cg_dist=np.array(sec["cg"]),
        expected_return=np.array(sec["er"]), cost_bps=np.array(sec["cost"]), base_price=base,
        targets=targets, primary=primary, history_price=history, cash=cash,
        lot_acct=np.array(lot_acct, dtype=np.int64), lot_sec=np.array(lot_sec, dtype=np.int64),
        lot_qty=np.array(lot_qty), lot_basis=np.array(lot_basis),
        lot_acquired=np.array(lot_acq, dtype="datetime64[D]"),
    )
