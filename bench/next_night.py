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
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl
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
LOT_COLUMNS = ("lot_id", "account_id", "security_id", "quantity", "cost_basis", "acquired_date")
TRADE_COLUMNS = ("household_id", "account_id", "security_id", "side", "lot_id", "quantity", "price",
                 "notional", "realized_gain", "wash_sale", "disallowed_loss")
BATCH_ROWS = 1 << 20  # lots are read, summed and written this many rows at a time
NO_DATE = np.iinfo(np.int32).min  # a null acquired_date: before every wash-sale window


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
    """A small table's string column as Python strings (accounts, securities, households)."""
    return np.array(a.to_pylist(), dtype=object)


def _rows_of(ids: pa.Array | pa.ChunkedArray, index: dict[str, int]) -> np.ndarray:
    """Each id's row in a small table by its ``index`` (id -> row, as a dict lookup
    would find it); -1 where the id is not there."""
    keys = pa.array(list(index), pa.string())
    rows = np.append(np.fromiter(index.values(), np.int32, len(index)), np.int32(-1))
    found = pc.index_in(pc.cast(ids, pa.string()), value_set=keys).fill_null(len(index))
    return rows[found.to_numpy(zero_copy_only=False)]


class LotsTable:
    """The book's lots, read a slice at a time in row order: ``lots.parquet`` is
    streamed from the file; a folder of parts is read whole once (``read_table``)."""

    def __init__(self, file: str | None, table: pa.Table | None):
        self.file, self.table = file, table
        meta = pq.ParquetFile(file) if file else None
        self.schema: pa.Schema = meta.schema_arrow if meta else table.schema
        self.num_rows: int = meta.metadata.num_rows if meta else table.num_rows

    @classmethod
    def open(cls, book: str) -> LotsTable | None:
        single = os.path.join(book, "lots.parquet")
        if os.path.isfile(single):
            return cls(single, None)
        table = read_table(book, "lots")
        return None if table is None else cls(None, table)

    def batches(self, columns: tuple[str, ...] | None = None) -> Iterator[pa.Table]:
        """The rows in slices of ``BATCH_ROWS`` with the given columns (those present;
        ``column`` gives an absent one its default)."""
        names = [c for c in columns or self.schema.names if c in self.schema.names]
        names = names or self.schema.names[:1]  # keep the row count
        if self.file:
            # (pre-buffering would keep every row group read so far in memory)
            reader = pq.ParquetFile(self.file, pre_buffer=False)
            for batch in reader.iter_batches(BATCH_ROWS, columns=names):
                yield pa.Table.from_batches([batch])
        else:
            t = self.table.select(names)
            for start in range(0, t.num_rows, BATCH_ROWS):
                yield t.slice(start, BATCH_ROWS)

    def lot_ids(self) -> pl.LazyFrame:
        """``lot_id`` as a string, one row per lot in row order (polars scans the file
        itself when the column is already a string)."""
        typ = self.schema.field("lot_id").type if "lot_id" in self.schema.names else None
        if self.file and typ is not None and (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
            return pl.scan_parquet(self.file, glob=False, hive_partitioning=False).select("lot_id")
        ids = [column(b, "lots", "lot_id") for b in self.batches(("lot_id",))]
        return pl.from_arrow(pa.table({"lot_id": pa.chunked_array(ids, pa.string())})).lazy()


def _night_outputs(output: str, run_date: str) -> tuple[pa.Table, pa.Table, dict]:
    """Night 1's trades (the columns used here), household results and manifest."""
    files = committed_files(output, run_date)
    trades = pa.concat_tables([pq.read_table(f, columns=list(TRADE_COLUMNS)) for f in files["trades"]])
    results = pa.concat_tables([pq.read_table(f) for f in files["household_results"]])
    manifest = read_manifest(output, run_date) or {}
    return trades, results, manifest


# -- the book in arrays -------------------------------------------------------------------------

@dataclass
class Securities:
    """The securities by row; ``index`` maps an id to its (last) row."""
    ids: np.ndarray
    index: dict[str, int]
    price: np.ndarray
    asset_class: np.ndarray
    group: np.ndarray  # wash group, the security itself where null
    cost_rate: np.ndarray  # one-way cost as a fraction
    income: np.ndarray  # income_yield + cg_distribution
    cg: np.ndarray  # cg_distribution


def _securities(sec_t: pa.Table, default_bps: float) -> Securities:
    """The securities table (a few hundred rows) as arrays."""
    ids = _strings(column(sec_t, "securities", "security_id"))
    group = _strings(column(sec_t, "securities", "wash_group"))
    bps = _floats(column(sec_t, "securities", "cost_bps"))
    cg = np.nan_to_num(_floats(column(sec_t, "securities", "cg_distribution")))
    return Securities(
        ids=ids, index={s: i for i, s in enumerate(ids.tolist()) if s is not None},
        price=_floats(column(sec_t, "securities", "price")),
        asset_class=_strings(column(sec_t, "securities", "asset_class")),
        group=np.where(_is_none(group), ids, group),
        cost_rate=np.where(np.isnan(bps), default_bps, bps) / 1e4,
        income=np.nan_to_num(_floats(column(sec_t, "securities", "income_yield"))) + cg, cg=cg)


@dataclass
class Accounts:
    """The accounts by row; ``index`` maps an id to its (last) row."""
    ids: np.ndarray
    index: dict[str, int]
    household: np.ndarray
    type: np.ndarray
    cash: np.ndarray
    contribution: np.ndarray
    withdrawal: np.ndarray
    tradable: np.ndarray


def _accounts(acct_t: pa.Table) -> Accounts:
    """The accounts table (a few per household) as arrays; money nulls are 0."""
    ids = _strings(column(acct_t, "accounts", "account_id"))
    return Accounts(
        ids=ids, index={a: i for i, a in enumerate(ids.tolist()) if a is not None},
        household=_strings(column(acct_t, "accounts", "household_id")),
        type=_strings(column(acct_t, "accounts", "account_type")),
        cash=np.nan_to_num(_floats(column(acct_t, "accounts", "cash"))),
        contribution=np.nan_to_num(_floats(column(acct_t, "accounts", "contribution"))),
        withdrawal=np.nan_to_num(_floats(column(acct_t, "accounts", "withdrawal"))),
        tradable=np.array(column(acct_t, "accounts", "tradable").fill_null(True).to_pylist(), dtype=bool))


@dataclass
class Trades:
    """Night 1's trades in file order: ids as Arrow strings, numbers as arrays, and
    what only the buys and the washed sells need."""
    account_id: pa.ChunkedArray
    security_id: pa.ChunkedArray
    lot_id: pa.ChunkedArray | None  # the lot a sell names; dropped once the sells are done
    account: np.ndarray  # the row of its account, -1: not in the book
    security: np.ndarray  # the row of its security, -1: not in the book
    sell: np.ndarray  # side "sell"; every other row executes as a buy
    quantity: np.ndarray
    notional: np.ndarray
    realized_gain: pa.ChunkedArray
    sells: int  # rows with side "sell"
    buys: int  # rows with side "buy"
    buy_household: list[str | None]  # of each buy (~sell), in trade order
    buy_price: np.ndarray
    washed: np.ndarray  # the trades flagged wash_sale with a disallowed loss, in order
    washed_household: list[str | None]
    washed_loss: np.ndarray  # their disallowed losses


def _trades(t: pa.Table, acc: Accounts, sec: Securities) -> Trades:
    """Night 1's trades as columns, their accounts and securities found by id."""
    side = t.column("side")
    sell = pc.equal(side, "sell").fill_null(False).to_numpy(zero_copy_only=False)
    buys = np.flatnonzero(~sell)
    disallowed = _floats(t.column("disallowed_loss"))
    washed = np.flatnonzero(pc.fill_null(t.column("wash_sale"), False).to_numpy(zero_copy_only=False)
                            & (disallowed > 0))
    household = t.column("household_id")
    return Trades(
        account_id=pc.cast(t.column("account_id"), pa.string()),
        security_id=pc.cast(t.column("security_id"), pa.string()),
        lot_id=pc.cast(t.column("lot_id"), pa.string()),
        account=_rows_of(t.column("account_id"), acc.index),
        security=_rows_of(t.column("security_id"), sec.index),
        sell=sell, quantity=_floats(t.column("quantity")), notional=_floats(t.column("notional")),
        realized_gain=pc.cast(t.column("realized_gain"), pa.float64()),
        sells=int(pc.sum(pc.equal(side, "sell")).as_py() or 0),
        buys=int(pc.sum(pc.equal(side, "buy")).as_py() or 0),
        buy_household=household.take(buys).to_pylist(),
        buy_price=_floats(t.column("price").take(buys)),
        washed=washed, washed_household=household.take(washed).to_pylist(),
        washed_loss=disallowed[washed])


@dataclass
class Lots:
    """The book's lots by row, the columns the night changes or reads."""
    account: np.ndarray  # the row of its account, -1: not in the book
    security: np.ndarray  # the row of its security, -1: not in the book
    quantity: np.ndarray
    basis: np.ndarray
    acquired: np.ndarray  # days since 1970, NO_DATE where null


def _read_lots(lots_t: LotsTable, acc: Accounts, sec: Securities) -> Lots:
    """One pass over the lots: the columns as arrays (the ids as rows of accounts and
    securities)."""
    n = lots_t.num_rows
    lots = Lots(account=np.empty(n, np.int32), security=np.empty(n, np.int32),
                quantity=np.empty(n), basis=np.empty(n), acquired=np.empty(n, np.int32))
    start = 0
    for b in lots_t.batches(LOT_COLUMNS[1:]):
        rows = slice(start, start + b.num_rows)
        lots.account[rows] = _rows_of(column(b, "lots", "account_id"), acc.index)
        lots.security[rows] = _rows_of(column(b, "lots", "security_id"), sec.index)
        lots.quantity[rows] = column(b, "lots", "quantity").to_numpy(zero_copy_only=False)
        lots.basis[rows] = column(b, "lots", "cost_basis").to_numpy(zero_copy_only=False)
        lots.acquired[rows] = column(b, "lots", "acquired_date").cast(pa.int32()).fill_null(
            NO_DATE).to_numpy(zero_copy_only=False)
        start = rows.stop
    return lots


@dataclass
class NewLots:
    """Night 1's buys as lots, in trade order."""
    lot_id: list[str]
    account_id: pa.ChunkedArray
    security_id: pa.ChunkedArray
    household: list[str | None]  # the buy's household, for the wash-sale matching
    account: np.ndarray
    security: np.ndarray
    quantity: np.ndarray
    basis: np.ndarray  # quantity x price, plus the washed losses they take


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
    trades_t, results, manifest = _night_outputs(output, run_date)
    default_bps = float(manifest.get("config", {}).get("default_cost_bps", 5.0))

    t = {name: read_table(book, name) for name in ("households", "accounts", "securities", "transactions")}
    lots_t = LotsTable.open(book)
    for name in ("households", "accounts", "lots", "securities"):
        if (lots_t if name == "lots" else t[name]) is None:
            raise FileNotFoundError(f"{book}: the required table {name} is missing")
    sec = _securities(t["securities"], default_bps)
    acc = _accounts(t["accounts"])
    tr = _trades(trades_t, acc, sec)
    del trades_t
    pa.default_memory_pool().release_unused()  # arrow keeps freed memory; polars joins next

    # 1. night 1's cash flows settle
    cash, contribution, withdrawal = _settle(acc, results)

    # 2. night 1's trades execute
    sold_row = _sold_rows(lots_t, tr.lot_id)
    _check_trades(tr, sold_row, book, run_date)
    lots = _read_lots(lots_t, acc, sec)
    closed = _execute_sells(lots, tr, sold_row)
    keep = np.ones(lots_t.num_rows, dtype=bool)
    keep[closed] = False
    new = _new_lots(tr, _taken_lot_ids(lots_t, run_date), run_date)
    tr.lot_id = None  # not needed any more: its memory goes
    cash = _trade_cash(cash, tr, sec)
    n_wash = _wash_basis(tr, sold_row, lots, keep, new, acc, sec, d1)

    # 3. prices move
    new_price = _random_walk(rng, sec.ids, sec.asset_class, sec.price, days, daily_vol)

    # 4. income on the holdings after the trades, at the new prices
    pay, cg_pay, held = _income(lots, keep, new, len(acc.ids), new_price, sec, days)
    pay = np.round(pay, 2)
    cash = cash + pay

    # 5. contributions
    added = _contributions(rng, acc, held + cash, days, contribution_share)
    cash = cash + added
    cash = np.where((cash < 0) & (cash > -0.01), 0.0, cash)  # a cent of float noise

    # 6. households: realized gains, budget, the year; then every table is written
    _write_households(out, t["households"], results, acc.household, acc.type, cg_pay, d1, d2)
    acct_t = _set(t["accounts"], "cash", pa.array(cash))
    acct_t = _set(acct_t, "contribution", pa.array(contribution))
    acct_t = _set(acct_t, "withdrawal", pa.array(withdrawal))
    pq.write_table(acct_t, os.path.join(out, "accounts.parquet"))
    pq.write_table(_set(t["securities"], "price", pa.array(new_price)),
                   os.path.join(out, "securities.parquet"))
    _write_lots(os.path.join(out, "lots.parquet"), lots_t, lots, keep, new, d1)
    del lots, keep
    tx_t = _transactions(t["transactions"], tr, d1)
    if tx_t is not None:
        pq.write_table(tx_t, os.path.join(out, "transactions.parquet"))
    _copy_unchanged(book, out)
    summary = NextNight(
        run_date=str(d2), previous_run_date=run_date, days=days, seed=seed,
        sells=tr.sells, buys=tr.buys, lots_closed=len(closed), lots_opened=len(new.lot_id),
        wash_sales=n_wash, income=round(float(pay.sum()), 2),
        contributions=round(float(added.sum()), 2), path=out)
    with open(os.path.join(out, "_next_night.json"), "w") as f:
        json.dump(asdict(summary), f, sort_keys=True)
    return summary


def _settle(acc: Accounts, results: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 1: cash, contribution and withdrawal after night 1's flows settle in the
    households whose night ended traded or no_trade."""
    status = dict(zip(results.column("household_id").to_pylist(), results.column("status").to_pylist()))
    settled = np.array([status.get(h) in SETTLED for h in acc.household.tolist()], dtype=bool)
    cash = np.where(settled, acc.cash + acc.contribution - acc.withdrawal, acc.cash)
    return (cash, np.where(settled, 0.0, acc.contribution), np.where(settled, 0.0, acc.withdrawal))


def _sold_rows(lots_t: LotsTable, trade_lot_ids: pa.ChunkedArray) -> np.ndarray:
    """The row of the lot each trade names (-1: none), by joining the trades' lot_id to
    the lots'; an id in several rows is the last of them, as a dict by lot_id finds it."""
    trade_ids = pl.from_arrow(pa.table({"lot_id": trade_lot_ids})).lazy().with_row_index("trade")
    pairs = (lots_t.lot_ids().with_row_index("row")
             .join(trade_ids, on="lot_id", how="inner")
             .select("trade", "row").collect(engine="streaming"))
    row = np.full(len(trade_lot_ids), -1, dtype=np.int64)
    np.maximum.at(row, pairs["trade"].to_numpy(), pairs["row"].to_numpy().astype(np.int64))
    return row


def _check_trades(tr: Trades, sold_row: np.ndarray, book: str, run_date: str) -> None:
    """The first trade whose account, security or sold lot the book does not have is
    an error: OUTPUT is another book's."""
    bad = np.flatnonzero((tr.account < 0) | (tr.security < 0) | (tr.sell & (sold_row < 0)))
    if not bad.size:
        return
    i = int(bad[0])
    account, security, lot = (c[i].as_py() for c in (tr.account_id, tr.security_id, tr.lot_id))
    if tr.account[i] < 0 or tr.security[i] < 0:
        raise ValueError(f"trade {i} of {run_date}: account {account} or security "
                         f"{security} is not in {book}; OUTPUT is another book's")
    raise ValueError(f"sell of lot {lot} on {run_date}: no such lot in {book}; OUTPUT is another book's")


def _execute_sells(lots: Lots, tr: Trades, sold_row: np.ndarray) -> np.ndarray:
    """The sells, in place: each lot's shares sold added up in trade order; a lot sold
    out closes, a lot sold in part keeps the rest with its basis pro rata. Returns the
    rows of the closed lots. (A lot of a household set aside for bad data, e.g. a
    negative quantity, is never sold: it is carried as it is.)"""
    sells = np.flatnonzero(tr.sell)
    sold = np.zeros(len(lots.quantity))
    np.add.at(sold, sold_row[sells], tr.quantity[sells])
    rows = np.flatnonzero(sold > 0)
    sold, qty, basis = sold[rows], lots.quantity[rows], lots.basis[rows]
    over = sold > qty * (1 + QTY_REL_TOL) + QTY_REL_TOL
    if over.any():
        j = int(np.argmax(over))
        lot_id = tr.lot_id[int(sells[np.argmax(sold_row[sells] == rows[j])])].as_py()
        raise ValueError(f"lot {lot_id}: {sold[j]:g} shares sold of {qty[j]:g}")
    rest = qty - sold
    closed = rest <= QTY_REL_TOL * np.maximum(np.abs(qty), 1.0)
    part = ~closed
    lots.basis[rows[part]] = basis[part] * rest[part] / np.where(qty[part] > 0, qty[part], 1.0)
    lots.quantity[rows[part]] = rest[part]
    return rows[closed]


def _taken_lot_ids(lots_t: LotsTable, run_date: str) -> set[str]:
    """The book's lot ids a new lot's id could collide with: those with the night's
    ``-N<YYYYMMDD>-``, which every new id has."""
    mark = f"-N{run_date.replace('-', '')}-"
    found = lots_t.lot_ids().filter(pl.col("lot_id").str.contains(mark, literal=True))
    return set(found.collect(engine="streaming")["lot_id"].to_list())


def _new_lots(tr: Trades, taken: set[str], run_date: str) -> NewLots:
    """Night 1's buys as new lots: id ``<account>-N<YYYYMMDD>-<security>`` (``-2``,
    ``-3``, ... when taken by a lot of the book or an earlier buy), basis quantity x
    price."""
    buys = np.flatnonzero(~tr.sell)
    account_id = tr.account_id.take(buys)
    security_id = tr.security_id.take(buys)
    day = run_date.replace("-", "")
    lot_ids = []
    for a, s in zip(account_id.to_pylist(), security_id.to_pylist()):
        base = f"{a}-N{day}-{s}"
        new_id, k = base, 1
        while new_id in taken:
            k += 1
            new_id = f"{base}-{k}"
        taken.add(new_id)
        lot_ids.append(new_id)
    quantity = tr.quantity[buys]
    return NewLots(lot_id=lot_ids, account_id=account_id, security_id=security_id,
                   household=tr.buy_household,
                   account=tr.account[buys], security=tr.security[buys], quantity=quantity,
                   basis=quantity * tr.buy_price)


def _trade_cash(cash: np.ndarray, tr: Trades, sec: Securities) -> np.ndarray:
    """Cash after the trades, added in trade order: a sell brings its notional less its
    cost, a buy takes its notional plus its cost."""
    rate = sec.cost_rate[tr.security]
    flow = np.where(tr.sell, tr.notional * (1.0 - rate), -(tr.notional * (1.0 + rate)))
    cash = cash.copy()
    np.add.at(cash, tr.account, flow)
    return cash


def _income(lots: Lots, keep: np.ndarray, new: NewLots, n_accounts: int, price: np.ndarray,
            sec: Securities, days: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 4, per account: income paid, its capital-gain distributions, and the value
    held at the new prices, over the kept lots (in row order) and then the new ones."""
    years = days / 365.0
    pay, cg_pay, held = np.zeros(n_accounts), np.zeros(n_accounts), np.zeros(n_accounts)

    def add(account: np.ndarray, security: np.ndarray, quantity: np.ndarray) -> None:
        ok = (account >= 0) & (security >= 0) & (quantity > 0) & np.isfinite(quantity)
        s = np.maximum(security, 0)
        value = np.where(ok, quantity * np.nan_to_num(price[s]), 0.0)
        np.add.at(pay, account[ok], (value * sec.income[s] * years)[ok])
        np.add.at(cg_pay, account[ok], (value * sec.cg[s] * years)[ok])
        np.add.at(held, account[ok], value[ok])

    for start in range(0, len(keep), BATCH_ROWS):
        rows = slice(start, start + BATCH_ROWS)
        k = keep[rows]
        add(lots.account[rows][k], lots.security[rows][k], lots.quantity[rows][k])
    add(new.account, new.security, new.quantity)
    return pay, cg_pay, held


def _contributions(rng: np.random.Generator, acc: Accounts, value: np.ndarray, days: int,
                   share: float) -> np.ndarray:
    """Step 5: each tradable account's contribution (0 for most); the draws are in
    sorted id order, so the file's row order does not matter."""
    order = np.argsort(np.array([a or "" for a in acc.ids.tolist()], dtype=object), kind="stable")
    draw = np.empty(len(acc.ids))
    draw[order] = rng.random(len(acc.ids))
    gets = acc.tradable & (draw < 1.0 - (1.0 - share) ** days)
    return np.where(gets, np.round(np.maximum(0.01 * value, 100.0), 2), 0.0)


def _lot_rows(rows: pa.Table, quantity: np.ndarray, basis: np.ndarray, typed: bool) -> pa.Table:
    """Lots as written: quantity and basis after the trades; when new lots follow, the
    contract columns read as their types."""
    rows = _set(rows, "quantity", pa.array(quantity, pa.float64()))
    rows = _set(rows, "cost_basis", pa.array(basis, pa.float64()))
    if typed:
        for name in LOT_COLUMNS:
            rows = _set(rows, name, column(rows, "lots", name))
    return rows


def _write_lots(path: str, lots_t: LotsTable, lots: Lots, keep: np.ndarray, new: NewLots,
                d1: np.datetime64) -> None:
    """The lots table, a slice at a time: the kept lots in their order, then the new
    ones (their other columns null)."""
    typed = len(new.lot_id) > 0
    empty = np.empty(0)
    schema = _lot_rows(lots_t.schema.empty_table(), empty, empty, typed).schema
    with pq.ParquetWriter(path, schema) as writer:
        start = 0
        for batch in lots_t.batches():
            rows = slice(start, start + batch.num_rows)
            k = keep[rows]
            if not k.all():
                batch = batch.filter(pa.array(k))
            writer.write_table(_lot_rows(batch, lots.quantity[rows][k], lots.basis[rows][k], typed))
            start = rows.stop
        if typed:
            fresh = {
                "lot_id": pa.array(new.lot_id, pa.string()),
                "account_id": pc.cast(new.account_id, pa.string()),
                "security_id": pc.cast(new.security_id, pa.string()),
                "quantity": pa.array(new.quantity, pa.float64()),
                "cost_basis": pa.array(new.basis, pa.float64()),
                "acquired_date": pa.array(np.full(len(new.lot_id), d1), pa.date32()),
            }
            n = len(new.lot_id)
            writer.write_table(pa.table([fresh[f.name] if f.name in fresh else pa.nulls(n, f.type)
                                         for f in schema], schema=schema))


def _transactions(tx_t: pa.Table | None, tr: Trades, d1: np.datetime64) -> pa.Table | None:
    """``transactions`` with every trade of night 1 appended on its date (a sell's
    realized gain 0 where null: a tax-advantaged sale realizes nothing)."""
    n = len(tr.sell)
    if n == 0:
        return tx_t
    sell = pa.array(tr.sell)
    fresh = pa.table({
        "account_id": tr.account_id,
        "security_id": tr.security_id,
        "trade_date": pa.array(np.full(n, d1), pa.date32()),
        "side": pc.if_else(sell, "sell", "buy"),
        "quantity": pa.array(tr.quantity, pa.float64()),
        "realized_gain": pc.if_else(sell, tr.realized_gain.fill_null(0.0), pa.scalar(None, pa.float64())),
    })
    return fresh if tx_t is None else _append(tx_t, fresh, "transactions")


def _copy_unchanged(book: str, out: str) -> None:
    """Every other table of the book, as it is."""
    for name in INPUT_TABLES:
        if name in CHANGED:
            continue
        single, folder = os.path.join(book, f"{name}.parquet"), os.path.join(book, name)
        if os.path.isfile(single):
            shutil.copy2(single, os.path.join(out, f"{name}.parquet"))
        elif os.path.isdir(folder):
            shutil.copytree(folder, os.path.join(out, name))


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


def _wash_basis(tr: Trades, sold_row: np.ndarray, lots: Lots, keep: np.ndarray, new: NewLots,
                acc: Accounts, sec: Securities, d1: np.datetime64) -> int:
    """Each washed loss into its replacement shares' basis (in place: ``lots.basis``,
    ``new.basis``), in trade order: first the household's open lots of the wash group
    acquired in the window (oldest first, the sold lot not), then tonight's buys; only
    a taxable account's basis takes it. Returns the number of washed trades."""
    if not tr.washed.size:
        return 0
    group = sec.group[tr.security[tr.washed]]
    replacements = _replacement_lots(lots, keep, acc, sec, set(tr.washed_household), d1)
    bought: dict[tuple, list[int]] = {}
    for k, (h, s) in enumerate(zip(new.household, new.security.tolist())):
        bought.setdefault((h, sec.group[s]), []).append(k)
    left: dict[int, float] = {}  # replacement shares not yet used, by lot row
    left_new = new.quantity.copy()
    taxable = acc.type == "taxable"
    for i, hh, g, loss in zip(tr.washed.tolist(), tr.washed_household, group.tolist(),
                              tr.washed_loss.tolist()):
        shares = float(tr.quantity[i])
        per_share = loss / shares
        pool = [j for j in replacements.get((hh, g), ()) if j != sold_row[i]]
        for j in sorted(pool, key=lambda j: lots.acquired[j]):
            m = min(shares, left.get(j, lots.quantity[j]))
            if m <= 0:
                continue
            shares -= m
            left[j] = left.get(j, lots.quantity[j]) - m
            if taxable[lots.account[j]]:
                lots.basis[j] += m * per_share
        for k in bought.get((hh, g), ()):
            if shares <= 0:
                break
            m = min(shares, left_new[k])
            shares -= m
            left_new[k] -= m
            if taxable[new.account[k]]:
                new.basis[k] += m * per_share
    return int(tr.washed.size)


def _replacement_lots(lots: Lots, keep: np.ndarray, acc: Accounts, sec: Securities,
                      households: set, d1: np.datetime64) -> dict[tuple, list[int]]:
    """The rows of the open lots acquired in the wash-sale window before ``d1`` in the
    given households, in row order, by (household, wash group)."""
    today = int(d1.astype(np.int64))
    in_household = np.array([h in households for h in acc.household.tolist()] + [False])
    rows = np.flatnonzero((lots.acquired >= today - WASH_DAYS) & (lots.acquired <= today) & keep
                          & in_household[lots.account] & (lots.security >= 0))
    found: dict[tuple, list[int]] = {}
    for j, a, s in zip(rows.tolist(), lots.account[rows].tolist(), lots.security[rows].tolist()):
        found.setdefault((acc.household[a], sec.group[s]), []).append(j)
    return found

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
