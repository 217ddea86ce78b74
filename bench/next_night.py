"""The next night's book: night 1's proposals executed, prices moved, income paid.

    python bench/next_night.py BOOK OUTPUT --run-date D --out BOOK2 [--days 1] [--seed S]

Works on any book in the input contract (``docs/data-contract.md``): each table is
read with pyarrow from ``BOOK/<table>.parquet`` or a folder of parts, and only the
columns the next night changes are read as their contract types; every other
column and table is copied. ``OUTPUT`` holds night 1's committed outputs for run
date ``D``, read through the manifest (``hearth.io.write.committed_files``).

What happens between the nights, in order:

1. **Night 1's cash flows settle** for every household whose night ended
   ``traded`` or ``no_trade``: cash + contribution - withdrawal, and both columns
   go back to 0 (a household that failed still owes them tomorrow).
2. **Night 1's trades execute** at night 1's prices: a sell reduces its lot (basis
   pro rata) or closes it (the row is dropped); a buy becomes a new lot with
   basis quantity x price and acquired date ``D``; cash moves by the notional less
   (sells) or plus (buys) the security's ``cost_bps`` (the configuration's
   ``default_cost_bps`` where null), as hearth's cash balance counts it. A washed
   loss goes into the basis of its replacement shares (hearth's matching order:
   the household's lots of the wash group bought in the window, then tonight's
   buys; a replacement in a tax-advantaged account loses it), the holding period
   is not tacked on. Every trade is appended to ``transactions`` on date ``D``
   so tomorrow's wash-sale windows see it (a sell in a tax-advantaged account
   realizes nothing for tax, so its ``realized_gain`` is 0, not null: a null
   counts as a loss sale). The households' ``ytd_st_gain`` / ``ytd_lt_gain`` take
   night 1's realized gains and ``tax_budget`` what night 1 spent of it.
3. **Prices move** by a seeded random walk, one step per day: a daily log return
   of ``daily_vol`` x (sqrt(rho) x its asset class's shock + sqrt(1 - rho) x its
   own), so a class moves together.
4. **Income is paid** as cash: value at the new prices x (``income_yield`` +
   ``cg_distribution``) x days / 365 per account; capital-gain distributions in
   taxable accounts are long-term gains of the year.
5. **Contributions** arrive in cash: each tradable account with probability
   ``contribution_share`` a day, 1% of its value (at least $100).
6. A new calendar year nets the old one (Schedule D: a net loss beyond the
   ordinary-income offset carries forward by character) and starts at 0.

Deterministic for a seed and run date. Prints one JSON line (the new run date and
what was executed) and writes it to ``BOOK2/_next_night.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hearth.io.contract import INPUT_TABLES
from hearth.io.write import committed_files, read_manifest

WASH_DAYS = 30
CLASS_CORRELATION = 0.8
QTY_REL_TOL = 1e-9  # the contract's share tolerance: relative, with a floor of one share
ORDINARY_OFFSET = {"married_separate": 1_500.0}
DEFAULT_OFFSET = 3_000.0
SETTLED = ("traded", "no_trade")  # the night's proposal (or doing nothing) happened
CHANGED = ("households", "accounts", "lots", "securities", "transactions")


@dataclass(frozen=True)
class NextNight:
    run_date: str
    previous_run_date: str
    days: int
    seed: int
    sells: int
    buys: int
    lots_closed: int
    lots_opened: int
    wash_sales: int
    income: float
    contributions: float
    path: str


# -- reading any book -----------------------------------------------------------------------

def _parts(folder: str) -> list[tuple[str, dict[str, str]]]:
    """The Parquet files under a table folder with their Hive partition values."""
    found: list[tuple[str, dict[str, str]]] = []
    for root, _, files in os.walk(folder):
        rel = os.path.relpath(root, folder)
        keys = dict(p.split("=", 1) for p in rel.split(os.sep) if "=" in p)
        found.extend((os.path.join(root, f), keys) for f in files if f.endswith(".parquet"))
    return sorted(found)


def read_table(book: str, name: str) -> pa.Table | None:
    """``book/<name>.parquet``, or its folder's files combined by column name; None
    when the table is absent."""
    single = os.path.join(book, f"{name}.parquet")
    if os.path.isfile(single):
        return pq.read_table(single)
    folder = os.path.join(book, name)
    if not os.path.isdir(folder):
        return None
    tables = []
    for path, keys in _parts(folder):
        t = pq.read_table(path, partitioning=None)
        for k, v in keys.items():
            if k not in t.column_names:
                t = t.append_column(k, pa.array([v] * t.num_rows, pa.string()))
        tables.append(t)
    if not tables:
        return None
    # a column whose parts disagree on its type is read as a string (and parsed by
    # ``column``), as DuckDB's union_by_name does
    types: dict[str, set[pa.DataType]] = {}
    for part in tables:
        for f in part.schema:
            types.setdefault(f.name, set()).add(f.type)
    mixed = {n for n, ts in types.items() if len({str(x) for x in ts} - {"null"}) > 1}
    if mixed:
        tables = [pa.table({n: pc.cast(part.column(n), pa.string()) if n in mixed else part.column(n)
                            for n in part.column_names}) for part in tables]
    return pa.concat_tables(tables, promote_options="permissive")


_ARROW = {"VARCHAR": pa.string(), "DOUBLE": pa.float64(), "DATE": pa.date32(),
          "BOOLEAN": pa.bool_(), "BIGINT": pa.int64()}


def _parse(value, typ: pa.DataType):
    try:
        if pa.types.is_date32(typ):
            return datetime.date.fromisoformat(str(value)[:10])
        if pa.types.is_floating(typ):
            return float(value)
        if pa.types.is_boolean(typ):
            return {"true": True, "false": False}[str(value).strip().lower()]
        return str(value)
    except (KeyError, TypeError, ValueError):
        return None


def column(t: pa.Table, table: str, name: str) -> pa.Array:
    """Column ``name`` as its contract type (the contract's default where absent; a
    value that cannot be read as the type is null, as validation reports it)."""
    spec = next(c for c in INPUT_TABLES[table].columns if c.name == name)
    typ = _ARROW[spec.sql_type]
    if name not in t.column_names:
        default = None if spec.default in (None, "NULL") else spec.default.strip("'")
        return pa.array([_parse(default, typ) if default is not None else None] * t.num_rows, typ)
    col = t.column(name).combine_chunks()
    if col.type == typ:
        return col
    try:
        return pc.cast(col, typ, safe=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([None if v is None else _parse(v, typ) for v in col.to_pylist()], typ)


def _set(t: pa.Table, name: str, values: pa.Array) -> pa.Table:
    if name in t.column_names:
        return t.set_column(t.column_names.index(name), name, values)
    return t.append_column(name, values)


def _floats(a: pa.Array) -> np.ndarray:
    return np.array(a.to_numpy(zero_copy_only=False), dtype=np.float64)  # a writable copy


def _strings(a: pa.Array) -> np.ndarray:
    return np.array(a.to_pylist(), dtype=object)


def _night_outputs(output: str, run_date: str) -> tuple[pa.Table, pa.Table, dict]:
    files = committed_files(output, run_date)
    trades = pa.concat_tables([pq.read_table(f) for f in files["trades"]])
    results = pa.concat_tables([pq.read_table(f) for f in files["household_results"]])
    manifest = read_manifest(output, run_date) or {}
    return trades, results, manifest


# -- taxes at a new year ----------------------------------------------------------------------

def carryforward(st: float, lt: float, carry_st: float, carry_lt: float,
                 filing: str) -> tuple[float, float]:
    """The losses a year leaves to the next (Schedule D netting)."""
    st_net, lt_net = st - carry_st, lt - carry_lt
    loss_st, loss_lt = max(-st_net, 0.0), max(-lt_net, 0.0)
    if st_net < 0 <= lt_net:
        loss_st, loss_lt = max(-(st_net + lt_net), 0.0), 0.0
    elif lt_net < 0 <= st_net:
        loss_st, loss_lt = 0.0, max(-(st_net + lt_net), 0.0)
    offset = min(loss_st + loss_lt, ORDINARY_OFFSET.get(filing, DEFAULT_OFFSET))
    used_st = min(loss_st, offset)
    return loss_st - used_st, loss_lt - (offset - used_st)


# -- the night ---------------------------------------------------------------------------------

def next_night(book: str, output: str, run_date: str, out: str, days: int = 1, seed: int = 0,
               daily_vol: float = 0.01, contribution_share: float = 0.02,
               force: bool = False) -> NextNight:
    """Write the book of ``run_date + days`` to ``out``; see the module docstring."""
    if days < 1:
        raise ValueError(f"days must be at least 1; got {days}")
    if os.path.abspath(out) == os.path.abspath(book):
        raise ValueError("--out must not be the book itself")
    if os.path.exists(out) and os.listdir(out):
        if not force:
            raise FileExistsError(f"{out} is not empty; choose an empty folder or pass --force")
        shutil.rmtree(out)
    d1 = np.datetime64(run_date, "D")
    d2 = d1 + np.timedelta64(days, "D")
    rng = np.random.default_rng([seed, int(d1.astype(np.int64)), days])
    trades, results, manifest = _night_outputs(output, run_date)
    default_bps = float(manifest.get("config", {}).get("default_cost_bps", 5.0))

    t = {name: read_table(book, name) for name in CHANGED}
    for name in ("households", "accounts", "lots", "securities"):
        if t[name] is None:
            raise FileNotFoundError(f"{book}: the required table {name} is missing")
    hh_t, acct_t, lot_t, sec_t = t["households"], t["accounts"], t["lots"], t["securities"]

    # -- reference data --
    sec_id = _strings(column(sec_t, "securities", "security_id"))
    price = _floats(column(sec_t, "securities", "price"))
    sec_class = _strings(column(sec_t, "securities", "asset_class"))
    group = _strings(column(sec_t, "securities", "wash_group"))
    group = np.where(_is_none(group), sec_id, group)
    bps = _floats(column(sec_t, "securities", "cost_bps"))
    cost_rate = np.where(np.isnan(bps), default_bps, bps) / 1e4
    income = (np.nan_to_num(_floats(column(sec_t, "securities", "income_yield")))
              + np.nan_to_num(_floats(column(sec_t, "securities", "cg_distribution"))))
    cg = np.nan_to_num(_floats(column(sec_t, "securities", "cg_distribution")))
    sec_of = {s: i for i, s in enumerate(sec_id.tolist()) if s is not None}

    acct_id = _strings(column(acct_t, "accounts", "account_id"))
    acct_hh = _strings(column(acct_t, "accounts", "household_id"))
    acct_type = _strings(column(acct_t, "accounts", "account_type"))
    cash = np.nan_to_num(_floats(column(acct_t, "accounts", "cash")))
    contribution = np.nan_to_num(_floats(column(acct_t, "accounts", "contribution")))
    withdrawal = np.nan_to_num(_floats(column(acct_t, "accounts", "withdrawal")))
    tradable = np.array(column(acct_t, "accounts", "tradable").fill_null(True).to_pylist(), dtype=bool)
    acct_of = {a: i for i, a in enumerate(acct_id.tolist()) if a is not None}

    # -- 1. night 1's cash flows settle --
    status = dict(zip(results.column("household_id").to_pylist(), results.column("status").to_pylist()))
    settled = np.array([status.get(h) in SETTLED for h in acct_hh.tolist()], dtype=bool)
    cash = np.where(settled, cash + contribution - withdrawal, cash)
    contribution = np.where(settled, 0.0, contribution)
    withdrawal = np.where(settled, 0.0, withdrawal)

    # -- 2. night 1's trades execute --
    lot_id = _strings(column(lot_t, "lots", "lot_id"))
    lot_acct = _strings(column(lot_t, "lots", "account_id"))
    lot_sec = _strings(column(lot_t, "lots", "security_id"))
    qty = _floats(column(lot_t, "lots", "quantity"))
    basis = _floats(column(lot_t, "lots", "cost_basis"))
    acquired = np.array(column(lot_t, "lots", "acquired_date").cast(pa.int32()).fill_null(
        np.iinfo(np.int32).min).to_numpy(zero_copy_only=False), dtype=np.int64)
    lot_of = {x: i for i, x in enumerate(lot_id.tolist()) if x is not None}

    tr = {k: trades.column(k).to_pylist() for k in (
        "household_id", "account_id", "security_id", "side", "lot_id", "quantity", "price",
        "notional", "realized_gain", "wash_sale", "disallowed_loss")}
    n_tr = trades.num_rows
    sold = np.zeros(len(lot_id))
    new_lots: list[dict] = []
    tx_rows: list[dict] = []
    taken = set(lot_of)
    for i in range(n_tr):
        a = acct_of.get(tr["account_id"][i])
        s = sec_of.get(tr["security_id"][i])
        if a is None or s is None:
            raise ValueError(f"trade {i} of {run_date}: account {tr['account_id'][i]} or security "
                             f"{tr['security_id'][i]} is not in {book}; OUTPUT is another book's")
        q, notional = float(tr["quantity"][i]), float(tr["notional"][i])
        if tr["side"][i] == "sell":
            lot = lot_of.get(tr["lot_id"][i])
            if lot is None:
                raise ValueError(f"sell of lot {tr['lot_id'][i]} on {run_date}: no such lot in "
                                 f"{book}; OUTPUT is another book's")
            sold[lot] += q
            cash[a] += notional * (1.0 - cost_rate[s])
            gain = tr["realized_gain"][i]
            tx_rows.append(dict(account_id=tr["account_id"][i], security_id=tr["security_id"][i],
                                trade_date=run_date, side="sell", quantity=q,
                                realized_gain=0.0 if gain is None else float(gain)))
        else:
            cash[a] -= notional * (1.0 + cost_rate[s])
            base = f"{tr['account_id'][i]}-N{run_date.replace('-', '')}-{tr['security_id'][i]}"
            new_id, k = base, 1
            while new_id in taken:
                k += 1
                new_id = f"{base}-{k}"
            taken.add(new_id)
            new_lots.append(dict(lot_id=new_id, account_id=tr["account_id"][i],
                                 security_id=tr["security_id"][i], quantity=q,
                                 cost_basis=q * float(tr["price"][i]), acquired_date=run_date,
                                 household=tr["household_id"][i]))
            tx_rows.append(dict(account_id=tr["account_id"][i], security_id=tr["security_id"][i],
                                trade_date=run_date, side="buy", quantity=q, realized_gain=None))
    # (a lot of a household set aside for bad data, e.g. a negative quantity, is
    # never sold: it is carried as it is)
    over = (sold > 0) & (sold > qty * (1 + QTY_REL_TOL) + QTY_REL_TOL)
    if over.any():
        j = int(np.flatnonzero(over)[0])
        raise ValueError(f"lot {lot_id[j]}: {sold[j]:g} shares sold of {qty[j]:g}")
    traded = sold > 0
    rest = np.where(traded, qty - sold, qty)
    closed = traded & (rest <= QTY_REL_TOL * np.maximum(np.abs(qty), 1.0))
    basis = np.where(traded & ~closed, basis * rest / np.where(qty > 0, qty, 1.0), basis)
    qty = np.where(traded & ~closed, rest, qty)

    n_wash = _wash_basis(tr, lot_of, lot_acct, lot_sec, acquired, qty, closed, basis, new_lots,
                         acct_of, acct_hh, acct_type, sec_of, group, d1)

    # -- 3. prices move --
    new_price = _random_walk(rng, sec_id, sec_class, price, days, daily_vol)

    # -- 4. income on the holdings after the trades, at the new prices --
    keep = ~closed
    held_acct = np.array([acct_of.get(a, -1) for a in lot_acct[keep].tolist()]
                         + [acct_of[r["account_id"]] for r in new_lots], dtype=np.int64)
    held_sec = np.array([sec_of.get(x, -1) for x in lot_sec[keep].tolist()]
                        + [sec_of[r["security_id"]] for r in new_lots], dtype=np.int64)
    held_qty = np.concatenate([qty[keep], [r["quantity"] for r in new_lots]])
    ok = (held_acct >= 0) & (held_sec >= 0) & (held_qty > 0) & np.isfinite(held_qty)
    value = np.where(ok, held_qty * np.nan_to_num(new_price[np.maximum(held_sec, 0)]), 0.0)
    years = days / 365.0
    pay = np.bincount(held_acct[ok], weights=(value * income[np.maximum(held_sec, 0)] * years)[ok],
                      minlength=len(acct_id))
    cg_pay = np.bincount(held_acct[ok], weights=(value * cg[np.maximum(held_sec, 0)] * years)[ok],
                         minlength=len(acct_id))
    pay = np.round(pay, 2)
    cash += pay

    # -- 5. contributions --
    acct_value = np.bincount(held_acct[ok], weights=value[ok], minlength=len(acct_id)) + cash
    order = np.argsort(np.array([a or "" for a in acct_id.tolist()], dtype=object), kind="stable")
    draw = np.empty(len(acct_id))
    draw[order] = rng.random(len(acct_id))
    gets = tradable & (draw < 1.0 - (1.0 - contribution_share) ** days)
    added = np.where(gets, np.round(np.maximum(0.01 * acct_value, 100.0), 2), 0.0)
    cash += added
    cash = np.where((cash < 0) & (cash > -0.01), 0.0, cash)  # a cent of float noise

    # -- households: realized gains, budget, the year --
    _write_households(out, hh_t, results, acct_hh, acct_type, cg_pay, d1, d2)
    acct_t = _set(acct_t, "cash", pa.array(cash))
    acct_t = _set(acct_t, "contribution", pa.array(contribution))
    acct_t = _set(acct_t, "withdrawal", pa.array(withdrawal))
    sec_t = _set(sec_t, "price", pa.array(new_price))
    lot_t = _set(lot_t, "quantity", pa.array(qty))
    lot_t = _set(lot_t, "cost_basis", pa.array(basis))
    lot_t = lot_t.filter(pa.array(keep))
    if new_lots:
        fresh = pa.table({
            "lot_id": pa.array([r["lot_id"] for r in new_lots], pa.string()),
            "account_id": pa.array([r["account_id"] for r in new_lots], pa.string()),
            "security_id": pa.array([r["security_id"] for r in new_lots], pa.string()),
            "quantity": pa.array([r["quantity"] for r in new_lots], pa.float64()),
            "cost_basis": pa.array([r["cost_basis"] for r in new_lots], pa.float64()),
            "acquired_date": pa.array([datetime.date.fromisoformat(r["acquired_date"])
                                       for r in new_lots], pa.date32()),
        })
        lot_t = _append(lot_t, fresh, "lots")
    tx_t = t["transactions"]
    if tx_rows:
        fresh = pa.table({
            "account_id": pa.array([r["account_id"] for r in tx_rows], pa.string()),
            "security_id": pa.array([r["security_id"] for r in tx_rows], pa.string()),
            "trade_date": pa.array([datetime.date.fromisoformat(r["trade_date"]) for r in tx_rows],
                                   pa.date32()),
            "side": pa.array([r["side"] for r in tx_rows], pa.string()),
            "quantity": pa.array([r["quantity"] for r in tx_rows], pa.float64()),
            "realized_gain": pa.array([r["realized_gain"] for r in tx_rows], pa.float64()),
        })
        tx_t = fresh if tx_t is None else _append(tx_t, fresh, "transactions")

    os.makedirs(out, exist_ok=True)
    for name, table in (("accounts", acct_t), ("lots", lot_t), ("securities", sec_t),
                        ("transactions", tx_t)):
        if table is not None:
            pq.write_table(table, os.path.join(out, f"{name}.parquet"))
    for name in INPUT_TABLES:
        if name in CHANGED:
            continue
        single, folder = os.path.join(book, f"{name}.parquet"), os.path.join(book, name)
        if os.path.isfile(single):
            shutil.copy2(single, os.path.join(out, f"{name}.parquet"))
        elif os.path.isdir(folder):
            shutil.copytree(folder, os.path.join(out, name))
    summary = NextNight(
        run_date=str(d2), previous_run_date=run_date, days=days, seed=seed,
        sells=sum(1 for s in tr["side"] if s == "sell"),
        buys=sum(1 for s in tr["side"] if s == "buy"),
        lots_closed=int(closed.sum()), lots_opened=len(new_lots), wash_sales=n_wash,
        income=round(float(pay.sum()), 2), contributions=round(float(added.sum()), 2), path=out)
    with open(os.path.join(out, "_next_night.json"), "w") as f:
        json.dump(asdict(summary), f, sort_keys=True)
    return summary


def _is_none(a: np.ndarray) -> np.ndarray:
    return np.array([x is None for x in a.tolist()], dtype=bool)


def _append(old: pa.Table, fresh: pa.Table, table: str) -> pa.Table:
    """``fresh`` (contract columns and types) after ``old``: old's contract columns
    read as their types, its other columns kept (null on the new rows)."""
    for name in fresh.column_names:
        old = _set(old, name, column(old, table, name))
    return pa.concat_tables([old, fresh], promote_options="default")


def _random_walk(rng: np.random.Generator, sec_id: np.ndarray, sec_class: np.ndarray,
                 price: np.ndarray, days: int, vol: float) -> np.ndarray:
    """Prices after ``days`` daily steps; draws in sorted id order, so the file's row
    order does not matter. A missing or bad price stays as it is."""
    ids = np.array([s or "" for s in sec_id.tolist()], dtype=object)
    classes = np.array([c or "" for c in sec_class.tolist()], dtype=object)
    uniq_sec, sec_k = np.unique(ids, return_inverse=True)
    uniq_class, class_k = np.unique(classes, return_inverse=True)
    step = np.zeros(len(uniq_sec))
    class_of_sec = np.zeros(len(uniq_sec), dtype=np.int64)
    class_of_sec[sec_k] = class_k
    for _ in range(days):
        f = rng.standard_normal(len(uniq_class))
        e = rng.standard_normal(len(uniq_sec))
        z = np.sqrt(CLASS_CORRELATION) * f[class_of_sec] + np.sqrt(1 - CLASS_CORRELATION) * e
        step += vol * z - vol * vol / 2
    moved = price * np.exp(step[sec_k])
    moved = np.where(moved >= 1.0, np.round(moved, 2), np.round(moved, 4))
    good = np.isfinite(price) & (price > 0)
    return np.where(good, np.maximum(moved, 1e-4), price)


def _wash_basis(tr: dict, lot_of: dict, lot_acct: np.ndarray, lot_sec: np.ndarray,
                acquired: np.ndarray, qty: np.ndarray, closed: np.ndarray, basis: np.ndarray,
                new_lots: list[dict], acct_of: dict, acct_hh: np.ndarray, acct_type: np.ndarray,
                sec_of: dict, group: np.ndarray, d1: np.datetime64) -> int:
    """Each washed loss into its replacement shares' basis (in place); the count."""
    washed = [i for i, w in enumerate(tr["wash_sale"]) if w and (tr["disallowed_loss"][i] or 0) > 0]
    if not washed:
        return 0
    today = int(d1.astype(np.int64))
    lot_hh = np.array([acct_hh[acct_of[a]] if a in acct_of else None for a in lot_acct.tolist()],
                      dtype=object)
    lot_group = np.array([group[sec_of[s]] if s in sec_of else None for s in lot_sec.tolist()],
                         dtype=object)
    left = qty.copy()  # replacement shares not yet used
    left_new = [r["quantity"] for r in new_lots]
    for i in washed:
        sold_lot = lot_of[tr["lot_id"][i]]
        hh, g = tr["household_id"][i], group[sec_of[tr["security_id"][i]]]
        shares = float(tr["quantity"][i])
        per_share = float(tr["disallowed_loss"][i]) / shares
        pool = np.flatnonzero((lot_hh == hh) & (lot_group == g) & ~closed
                              & (acquired >= today - WASH_DAYS) & (acquired <= today))
        pool = pool[pool != sold_lot]
        for j in pool[np.argsort(acquired[pool], kind="stable")]:
            m = min(shares, left[j])
            if m <= 0:
                continue
            shares -= m
            left[j] -= m
            if acct_type[acct_of[lot_acct[j]]] == "taxable":
                basis[j] += m * per_share
        for k, r in enumerate(new_lots):
            if shares <= 0:
                break
            if r["household"] != hh or group[sec_of[r["security_id"]]] != g:
                continue
            m = min(shares, left_new[k])
            shares -= m
            left_new[k] -= m
            if acct_type[acct_of[r["account_id"]]] == "taxable":
                r["cost_basis"] += m * per_share
    return len(washed)


def _write_households(out: str, hh_t: pa.Table, results: pa.Table, acct_hh: np.ndarray,
                      acct_type: np.ndarray, cg_pay: np.ndarray, d1: np.datetime64,
                      d2: np.datetime64) -> None:
    hid = _strings(column(hh_t, "households", "household_id"))
    res = {k: results.column(k).to_pylist() for k in (
        "household_id", "realized_st_gain", "realized_lt_gain", "tax_due_estimate")}
    row = {h: i for i, h in enumerate(res["household_id"])}

    def from_results(key: str) -> np.ndarray:
        return np.array([(res[key][row[h]] or 0.0) if h in row else 0.0 for h in hid.tolist()])

    st = np.nan_to_num(_floats(column(hh_t, "households", "ytd_st_gain"))) + from_results("realized_st_gain")
    lt = np.nan_to_num(_floats(column(hh_t, "households", "ytd_lt_gain"))) + from_results("realized_lt_gain")
    carry_st = _floats(column(hh_t, "households", "loss_carryforward_st"))
    carry_lt = _floats(column(hh_t, "households", "loss_carryforward_lt"))
    if d2.astype("datetime64[Y]") != d1.astype("datetime64[Y]"):
        filing = _strings(column(hh_t, "households", "filing_status")).tolist()
        for i in range(len(hid)):
            carry_st[i], carry_lt[i] = carryforward(st[i], lt[i], np.nan_to_num(carry_st[i]),
                                                    np.nan_to_num(carry_lt[i]), filing[i] or "single")
        st, lt = np.zeros(len(hid)), np.zeros(len(hid))
        hh_t = _set(hh_t, "loss_carryforward_st", pa.array(np.round(carry_st, 2)))
        hh_t = _set(hh_t, "loss_carryforward_lt", pa.array(np.round(carry_lt, 2)))
    taxable = np.array([t == "taxable" for t in acct_type.tolist()], dtype=bool)
    cg_of: dict[str, float] = {}
    for h, v in zip(acct_hh[taxable].tolist(), cg_pay[taxable].tolist()):
        cg_of[h] = cg_of.get(h, 0.0) + v
    lt = lt + np.array([cg_of.get(h, 0.0) for h in hid.tolist()])
    hh_t = _set(hh_t, "ytd_st_gain", pa.array(np.round(st, 2)))
    hh_t = _set(hh_t, "ytd_lt_gain", pa.array(np.round(lt, 2)))
    if "tax_budget" in hh_t.column_names:
        budget = _floats(column(hh_t, "households", "tax_budget"))
        spent = np.maximum(from_results("tax_due_estimate"), 0.0)
        left = np.where(np.isnan(budget), np.nan, np.maximum(budget - spent, 0.0))
        hh_t = _set(hh_t, "tax_budget", pa.array(np.round(left, 2), from_pandas=True))
    os.makedirs(out, exist_ok=True)
    pq.write_table(hh_t, os.path.join(out, "households.parquet"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("book", help="night 1's book (input contract)")
    p.add_argument("output", help="night 1's committed outputs")
    p.add_argument("--run-date", required=True, help="night 1's run date, YYYY-MM-DD")
    p.add_argument("--out", required=True, help="where to write the next night's book")
    p.add_argument("--days", type=int, default=1, help="days until the next night (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--daily-vol", type=float, default=0.01, help="daily price volatility (0.01)")
    p.add_argument("--contribution-share", type=float, default=0.02,
                   help="chance a day that an account receives a contribution (0.02)")
    p.add_argument("--force", action="store_true", help="replace --out if it is not empty")
    a = p.parse_args(argv)
    try:
        s = next_night(a.book, a.output, a.run_date, a.out, days=a.days, seed=a.seed,
                       daily_vol=a.daily_vol, contribution_share=a.contribution_share, force=a.force)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"next_night: {e}", file=sys.stderr)
        return 2
    print(json.dumps(asdict(s), sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
