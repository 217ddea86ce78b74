"""The bad-input sweep: one-at-a-time corruptions of a valid generated book, each
run as a real ``hearth run`` process (``--workers 1``) under a wall-clock timeout
and compared with the clean run of the same book.

    python bench/fuzz_inputs.py                     # every case, 300 households
    python bench/fuzz_inputs.py --only st_rate      # cases whose name contains it
    python bench/fuzz_inputs.py --list

Each case changes one thing (a NaN, an infinity, a negative or huge number in one
numeric column of one table; a null in a required column; a duplicate id; a
dangling reference; a wrong column type in an optional column; weights that do
not sum to 1; an empty table; ...) and names the households it belongs to (the
"touched" ones: the household of the row, or for a shared table every household
that holds, may buy or trades the security, or is on the model or menu). A case
is counted as

- a hang: the run did not end within ``--timeout`` seconds;
- a raw exception: exit code 1, a traceback, or a library error on stderr;
- dropped / duplicated households: a committed run whose ``household_results``
  lack a household named in the input, or hold one twice;
- untouched households changed: a household the case does not touch whose
  ``household_results`` row (every column but ``run_id`` and ``solve_ms``) or
  trades differ from the clean run;
- checker violations: committed trades that oversell a lot, sell or buy outside
  the household, carry non-finite numbers, or leave a tradable account's cash
  below ``min_cash`` while the household is not ``infeasible``/``error``.

The last line printed is one JSON object of counts.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

RUN_DATE = "2026-11-20"
ALL = None  # a case that touches every household

Tables = dict[str, pa.Table]


# -- the book --------------------------------------------------------------------------------

def read_book(root: str) -> Tables:
    return {f[: -len(".parquet")]: pq.read_table(os.path.join(root, f))
            for f in sorted(os.listdir(root)) if f.endswith(".parquet")}


def write_book(root: str, tables: Tables) -> None:
    os.makedirs(root, exist_ok=True)
    for name, t in tables.items():
        pq.write_table(t, os.path.join(root, f"{name}.parquet"))


class Index:
    """Who depends on what, in the clean book."""

    def __init__(self, t: Tables) -> None:
        self.t = t
        hh = t["households"].to_pydict()
        self.households = hh["household_id"]
        self.model = dict(zip(hh["household_id"], hh["model_id"]))
        acc = t["accounts"].to_pydict()
        self.acct_hh = dict(zip(acc["account_id"], acc["household_id"]))
        self.menu_hh: dict[str, set[str]] = {}
        for a, m in zip(acc["household_id"], acc["menu_id"]):
            if m is not None:
                self.menu_hh.setdefault(m, set()).add(a)
        lots = t["lots"].to_pydict()
        self.lot_hh = [self.acct_hh[a] for a in lots["account_id"]]
        self.sec_users: dict[str, set[str]] = {}
        for h, s in zip(self.lot_hh, lots["security_id"]):
            self.sec_users.setdefault(s, set()).add(h)
        tx = t["transactions"].to_pydict()
        self.tx_hh = [self.acct_hh[a] for a in tx["account_id"]]
        for h, s in zip(self.tx_hh, tx["security_id"]):
            self.sec_users.setdefault(s, set()).add(h)
        ms = t["model_securities"].to_pydict()
        for m, s in zip(ms["model_id"], ms["security_id"]):
            self.sec_users.setdefault(s, set()).update(self.model_users(m))

    def model_users(self, model: str) -> set[str]:
        return {h for h, m in self.model.items() if m == model}

    def row_of(self, table: str, column: str, value: object) -> int:
        return self.t[table].column(column).to_pylist().index(value)


def set_cell(t: Tables, table: str, column: str, row: int, value: object) -> None:
    """Replace one value; a column the table lacks is added as float64 (nulls elsewhere)."""
    tab = t[table]
    if column in tab.column_names:
        type_ = tab.schema.field(column).type
        values = tab.column(column).to_pylist()
        values[row] = value
        i = tab.schema.get_field_index(column)
        t[table] = tab.set_column(i, pa.field(column, type_), pa.array(values, type_))
    else:
        values = [None] * tab.num_rows
        values[row] = value
        t[table] = tab.append_column(pa.field(column, pa.float64()),
                                     pa.array(values, pa.float64()))


def retype(t: Tables, table: str, column: str, convert: Callable[[object], object],
           type_: pa.DataType) -> None:
    """Rewrite a whole column in another type (an export-format slip)."""
    tab = t[table]
    values = [convert(v) if v is not None else None for v in tab.column(column).to_pylist()]
    i = tab.schema.get_field_index(column)
    t[table] = tab.set_column(i, pa.field(column, type_), pa.array(values, type_))


def drop_rows(t: Tables, table: str, keep: Callable[[dict], bool]) -> None:
    rows = [r for r in t[table].to_pylist() if keep(r)]
    t[table] = pa.Table.from_pylist(rows, schema=t[table].schema)


def dup_row(t: Tables, table: str, row: int) -> None:
    tab = t[table]
    t[table] = pa.concat_tables([tab, tab.slice(row, 1)])


# -- the cases --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    name: str
    apply: Callable[[Tables, Index], set[str] | None]  # mutates; returns touched households
    note: str = ""


NAN, INF = math.nan, math.inf
HUGE = 1e300


def _numeric_cases(ix: Index) -> list[Case]:
    """NaN, infinity, a negative and a huge value in every numeric column."""
    cases: list[Case] = []
    hh_row = 5  # H0000005: a taxable household with lots (the NaN st_rate that hung)
    h5 = ix.households[hh_row]
    acct_row = next(i for i, (a, h) in enumerate(ix.acct_hh.items()) if h == ix.households[7])
    acct_hh = list(ix.acct_hh.values())[acct_row]
    lot_row = 11
    tx_row = 3
    sec = "AAPL"  # held by a few households, listed by no model
    sec_row = ix.row_of("securities", "security_id", sec)
    tgt = ix.t["targets"].to_pydict()
    tgt_row = tgt["model_id"].index("aggressive")
    ht = ix.t["household_targets"].to_pydict()
    ha = ix.t["held_away"].to_pydict()
    columns = [
        ("households", ["st_rate", "lt_rate", "ordinary_rate", "qualified_div_rate",
                        "retirement_rate", "ytd_st_gain", "ytd_lt_gain", "loss_carryforward_st",
                        "loss_carryforward_lt", "tax_budget", "turnover_limit", "drift_threshold"],
         hh_row, {h5}),
        ("accounts", ["cash", "min_cash", "max_cash", "contribution", "withdrawal"], acct_row,
         {acct_hh}),
        ("lots", ["quantity", "cost_basis"], lot_row, {ix.lot_hh[lot_row]}),
        ("securities", ["price", "income_yield", "qualified_fraction", "tax_exempt_fraction",
                        "foreign_tax_fraction", "cg_distribution", "expected_return", "cost_bps"],
         sec_row, ix.sec_users.get(sec, set())),
        ("targets", ["weight"], tgt_row, ix.model_users("aggressive")),
        ("household_targets", ["weight"], 0, {ht["household_id"][0]}),
        ("transactions", ["quantity", "realized_gain"], tx_row, {ix.tx_hh[tx_row]}),
        ("held_away", ["value"], 0, {ha["household_id"][0]}),
    ]
    # a negative value is valid for these; a huge one is tried on amounts (the bounded
    # columns get their out-of-range case from the negative value)
    may_be_negative = {"ytd_st_gain", "ytd_lt_gain", "expected_return", "realized_gain"}
    may_be_huge = {"ytd_st_gain", "loss_carryforward_st", "tax_budget", "cash", "min_cash",
                   "max_cash", "contribution", "withdrawal", "quantity", "cost_basis", "price",
                   "realized_gain", "value", "cost_bps"}
    for table, cols, row, touched in columns:
        for col in cols:
            values = [("nan", NAN), ("inf", INF)]
            if col in may_be_huge:
                values.append(("huge", HUGE))
            if col not in may_be_negative:
                values.append(("negative", -0.5 if col.endswith(("rate", "fraction", "weight",
                                                                  "limit", "threshold")) else -100.0))
            else:
                values.append(("neg_inf", -INF))
            for label, v in values:
                def apply(t: Tables, _ix: Index, table=table, col=col, row=row, v=v,
                          touched=touched) -> set[str]:
                    set_cell(t, table, col, row, v)
                    return set(touched)
                cases.append(Case(f"{table}.{col}={label}", apply))
    # rank is an integer column
    ms = ix.t["model_securities"].to_pydict()
    ms_row = ms["model_id"].index("aggressive")
    for label, v in (("zero", 0), ("negative", -3), ("huge", 2**62)):
        def apply_rank(t: Tables, _ix: Index, v=v, row=ms_row) -> set[str]:
            set_cell(t, "model_securities", "rank", row, v)
            return ix.model_users("aggressive")
        cases.append(Case(f"model_securities.rank={label}", apply_rank))
    return cases


def _structural_cases(ix: Index) -> list[Case]:
    t0 = ix.t
    cases: list[Case] = []

    def case(name: str, note: str = ""):
        def deco(fn):
            cases.append(Case(name, fn, note))
            return fn
        return deco

    h5 = ix.households[5]
    acct0 = t0["accounts"].column("account_id")[0].as_py()
    hh_of_acct0 = ix.acct_hh[acct0]
    lot11_hh = ix.lot_hh[11]

    # nulls and empty strings in required columns
    required = {
        "households": (["household_id", "model_id", "st_rate", "lt_rate"], 5),
        "accounts": (["account_id", "household_id", "account_type", "cash"], 0),
        "lots": (["lot_id", "account_id", "security_id", "quantity", "cost_basis",
                  "acquired_date"], 11),
        "securities": (["security_id", "asset_class", "price"], ix.row_of("securities",
                                                                          "security_id", "AAPL")),
        "targets": (["model_id", "asset_class", "weight"],
                    t0["targets"].column("model_id").to_pylist().index("aggressive")),
        "model_securities": (["model_id", "asset_class", "security_id", "rank"],
                             t0["model_securities"].column("model_id").to_pylist()
                             .index("aggressive")),
    }

    def touched_by_row(table: str, row: int) -> set[str] | None:
        if table == "households":
            return {ix.households[row]}
        if table == "accounts":
            return {t0["accounts"].column("household_id")[row].as_py()}
        if table == "lots":
            return {ix.lot_hh[row]}
        if table == "securities":
            return set(ix.sec_users.get(t0["securities"].column("security_id")[row].as_py(), ()))
        if table in ("targets", "model_securities"):
            return ix.model_users(t0[table].column("model_id")[row].as_py())
        return ALL

    for table, (cols, row) in required.items():
        for col in cols:
            def null(t: Tables, _ix: Index, table=table, col=col, row=row):
                set_cell(t, table, col, row, None)
                return touched_by_row(table, row)
            cases.append(Case(f"{table}.{col}=null", null))
            if pa.types.is_string(t0[table].schema.field(col).type) and col.endswith("_id"):
                def empty(t: Tables, _ix: Index, table=table, col=col, row=row):
                    set_cell(t, table, col, row, "")
                    return touched_by_row(table, row)
                cases.append(Case(f"{table}.{col}=empty", empty))

    # duplicates
    @case("households.duplicate_row")
    def _(t, ix):
        dup_row(t, "households", 5)
        return {h5}

    @case("accounts.duplicate_row")
    def _(t, ix):
        dup_row(t, "accounts", 0)
        return {hh_of_acct0}

    @case("lots.duplicate_row")
    def _(t, ix):
        dup_row(t, "lots", 11)
        return {lot11_hh}

    @case("securities.duplicate_row")
    def _(t, ix):
        dup_row(t, "securities", ix.row_of("securities", "security_id", "AAPL"))
        return ix.sec_users["AAPL"]

    @case("targets.duplicate_row")
    def _(t, ix):
        dup_row(t, "targets", t["targets"].column("model_id").to_pylist().index("aggressive"))
        return ix.model_users("aggressive")

    # dangling references
    @case("households.model_id=unknown")
    def _(t, ix):
        set_cell(t, "households", "model_id", 5, "no_such_model")
        return {h5}

    @case("accounts.household_id=unknown")
    def _(t, ix):
        set_cell(t, "accounts", "household_id", 0, "H_NOBODY")
        return {hh_of_acct0}

    @case("lots.account_id=unknown")
    def _(t, ix):
        set_cell(t, "lots", "account_id", 11, "A_NOBODY")
        return {lot11_hh}

    @case("lots.security_id=unknown")
    def _(t, ix):
        set_cell(t, "lots", "security_id", 11, "DELISTED")
        return {lot11_hh}

    @case("accounts.menu_id=unknown")
    def _(t, ix):
        set_cell(t, "accounts", "menu_id", 0, "no_such_menu")
        return {hh_of_acct0}

    @case("model_securities.security_id=unknown")
    def _(t, ix):
        row = t["model_securities"].column("model_id").to_pylist().index("aggressive")
        set_cell(t, "model_securities", "security_id", row, "DELISTED")
        return ix.model_users("aggressive")

    @case("menus.security_id=unknown")
    def _(t, ix):
        set_cell(t, "menus", "security_id", 0, "DELISTED")
        return ix.menu_hh.get(t0["menus"].column("menu_id")[0].as_py(), set())

    @case("restrictions.household_id=unknown")
    def _(t, ix):
        h = t0["restrictions"].column("household_id")[0].as_py()
        set_cell(t, "restrictions", "household_id", 0, "H_NOBODY")
        return {h}

    @case("restrictions.account_id=foreign")
    def _(t, ix):
        h = t0["restrictions"].column("household_id")[0].as_py()
        other = next(a for a, hh in ix.acct_hh.items() if hh != h)
        set_cell(t, "restrictions", "account_id", 0, other)
        return {h}

    @case("transactions.account_id=unknown")
    def _(t, ix):
        set_cell(t, "transactions", "account_id", 3, "A_NOBODY")
        return {ix.tx_hh[3]}

    @case("household_targets.household_id=unknown")
    def _(t, ix):
        h = t0["household_targets"].column("household_id")[0].as_py()
        set_cell(t, "household_targets", "household_id", 0, "H_NOBODY")
        return {h}

    @case("held_away.household_id=unknown")
    def _(t, ix):
        h = t0["held_away"].column("household_id")[0].as_py()
        set_cell(t, "held_away", "household_id", 0, "H_NOBODY")
        return {h}

    # wrong types in optional columns (export-format slips)
    @case("securities.tags=string")
    def _(t, ix):
        retype(t, "securities", "tags", lambda v: v[0] if v else None, pa.string())
        return set().union(*(ix.sec_users.get(s, set()) for s, g in zip(
            t0["securities"].column("security_id").to_pylist(),
            t0["securities"].column("tags").to_pylist()) if g))

    @case("securities.cost_bps=string")
    def _(t, ix):
        retype(t, "securities", "cost_bps", lambda v: f"{v:g} bps", pa.string())
        return set().union(*(ix.sec_users.get(s, set()) for s, c in zip(
            t0["securities"].column("security_id").to_pylist(),
            t0["securities"].column("cost_bps").to_pylist()) if c is not None))

    @case("securities.sector=list")
    def _(t, ix):
        retype(t, "securities", "sector", lambda v: [v], pa.list_(pa.string()))
        return set().union(*(ix.sec_users.get(s, set()) for s, c in zip(
            t0["securities"].column("security_id").to_pylist(),
            t0["securities"].column("sector").to_pylist()) if c is not None))

    @case("households.tax_budget=string")
    def _(t, ix):
        retype(t, "households", "tax_budget", lambda v: f"${v:,.0f}", pa.string())
        hh = t0["households"].to_pydict()
        return {h for h, b in zip(hh["household_id"], hh["tax_budget"]) if b is not None}

    @case("households.tlh_enabled=string")
    def _(t, ix):
        retype(t, "households", "tlh_enabled", lambda v: "Y" if v else "N", pa.string())
        return ALL

    @case("accounts.max_cash=numeric_string")
    def _(t, ix):
        retype(t, "accounts", "max_cash", lambda v: f"{v}", pa.string())
        return set()  # parseable numbers: nothing changes

    @case("accounts.tradable=int")
    def _(t, ix):
        retype(t, "accounts", "tradable", lambda v: int(v), pa.int64())
        return set()  # 1/0 read as true/false

    @case("lots.acquired_date=string")
    def _(t, ix):
        retype(t, "lots", "acquired_date", lambda v: v.isoformat(), pa.string())
        return set()  # ISO dates parse

    @case("lots.acquired_date=timestamp")
    def _(t, ix):
        import datetime as dt
        retype(t, "lots", "acquired_date", lambda v: dt.datetime(v.year, v.month, v.day),
               pa.timestamp("us"))
        return set()

    @case("restrictions.tag=list")
    def _(t, ix):
        retype(t, "restrictions", "tag", lambda v: [v], pa.list_(pa.string()))
        rs = t0["restrictions"].to_pydict()
        return {h for h, g in zip(rs["household_id"], rs["tag"]) if g is not None}

    @case("securities.price=string")
    def _(t, ix):
        retype(t, "securities", "price", lambda v: f"{v:.2f}", pa.string())
        return set()  # required, but every value parses

    # targets that do not add up
    @case("targets.aggressive_sum=0.9")
    def _(t, ix):
        tab = t["targets"]
        w = [x * 0.9 if m == "aggressive" else x for m, x in
             zip(tab.column("model_id").to_pylist(), tab.column("weight").to_pylist())]
        t["targets"] = tab.set_column(2, "weight", pa.array(w))
        return ix.model_users("aggressive")

    @case("household_targets.sum=1.2")
    def _(t, ix):
        h = t0["household_targets"].column("household_id")[0].as_py()
        set_cell(t, "household_targets", "weight", 0,
                 t0["household_targets"].column("weight")[0].as_py() + 0.2)
        return {h}

    # empty tables
    for table in ("lots", "transactions", "restrictions", "held_away", "household_targets",
                  "menus", "model_securities", "targets", "securities", "accounts",
                  "households"):
        def empty_table(t: Tables, ix: Index, table=table):
            t[table] = t[table].slice(0, 0)
            if table == "restrictions" or table == "held_away" or table == "household_targets":
                col = t0[table].column("household_id").to_pylist()
                return set(col)
            if table == "transactions":
                return set(ix.tx_hh)
            if table == "menus":
                return set().union(*ix.menu_hh.values())
            return ALL
        cases.append(Case(f"{table}=empty", empty_table))

    # shared-table shapes
    @case("model_securities.aggressive_em_equity=none")
    def _(t, ix):
        drop_rows(t, "model_securities",
                  lambda r: not (r["model_id"] == "aggressive" and r["asset_class"] == "em_equity"))
        return ix.model_users("aggressive")

    @case("securities.qualified_plus_exempt>1")
    def _(t, ix):
        row = ix.row_of("securities", "security_id", "AAPL")
        set_cell(t, "securities", "tax_exempt_fraction", row, 0.5)
        return ix.sec_users["AAPL"]

    @case("securities.asset_class=cash")
    def _(t, ix):
        set_cell(t, "securities", "asset_class", ix.row_of("securities", "security_id", "AAPL"),
                 "cash")
        return ix.sec_users["AAPL"]

    # invalid codes
    @case("accounts.account_type=ira")
    def _(t, ix):
        set_cell(t, "accounts", "account_type", 0, "ira")
        return {hh_of_acct0}

    @case("households.filing_status=married")
    def _(t, ix):
        set_cell(t, "households", "filing_status", 5, "married")
        return {h5}

    @case("restrictions.rule=ban")
    def _(t, ix):
        set_cell(t, "restrictions", "rule", 0, "ban")
        return {t0["restrictions"].column("household_id")[0].as_py()}

    @case("transactions.side=hold")
    def _(t, ix):
        set_cell(t, "transactions", "side", 3, "hold")
        return {ix.tx_hh[3]}

    @case("lots.acquired_date=future")
    def _(t, ix):
        import datetime as dt
        set_cell(t, "lots", "acquired_date", 11, dt.date(2027, 1, 1))
        return {lot11_hh}

    # a cash floor that cannot be met
    @case("accounts.min_cash>cash+holdings")
    def _(t, ix):
        set_cell(t, "accounts", "min_cash", 0, 1e9)
        return {hh_of_acct0}

    return cases


def cases(ix: Index) -> list[Case]:
    return _numeric_cases(ix) + _structural_cases(ix)


# -- running and comparing ----------------------------------------------------------------------

@dataclass
class Result:
    name: str
    code: int | None  # None: timed out
    seconds: float
    stderr: str
    problems: dict[str, list[str]] = field(default_factory=dict)
    output: tuple | None = None  # (results, trades, exceptions) of a committed run

    def add(self, kind: str, what: str) -> None:
        self.problems.setdefault(kind, []).append(what)


RAW = re.compile(r"Traceback|(Conversion|Binder|InvalidInput|IO|Catalog|Parser|Internal)"
                 r"Exception|ArrowInvalid|BrokenProcessPool|KeyError|TypeError|ValueError")


def run_hearth(book: str, out: str, timeout: float, workers: int = 1,
               extra: tuple[str, ...] = ()) -> tuple[int | None, float, str]:
    """One ``hearth run`` in its own process group; (exit code or None on timeout, s, stderr)."""
    cmd = [sys.executable, "-m", "hearth.batch.cli", "run", book, out, "--run-date", RUN_DATE,
           "--workers", str(workers), *extra]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        _, err = p.communicate(timeout=timeout)
        return p.returncode, time.perf_counter() - t0, err
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)  # the run we started, and its workers
        _, err = p.communicate()
        return None, time.perf_counter() - t0, err


def read_output(out: str) -> tuple[dict[str, list[dict]], dict[str, list[dict]], list[dict]]:
    """(results rows by household, trades rows by household, exceptions rows)."""
    def table(name: str) -> list[dict]:
        path = os.path.join(out, name, f"run_date={RUN_DATE}")
        if not os.path.isdir(path):
            return []
        return pq.read_table(path).to_pylist()
    results: dict[str, list[dict]] = {}
    for r in table("household_results"):
        r.pop("run_id"), r.pop("solve_ms")
        results.setdefault(r["household_id"], []).append(r)
    trades: dict[str, list[dict]] = {}
    for r in table("trades"):
        r.pop("run_id")
        trades.setdefault(r["household_id"], []).append(r)
    return results, trades, table("exceptions")


def check_trades(t: Tables, results: dict[str, list[dict]], trades: dict[str, list[dict]],
                 default_cost_bps: float = 5.0) -> list[str]:
    """Re-check committed outputs against the (corrupted) inputs, independently of hearth."""
    out: list[str] = []
    acc = t["accounts"].to_pylist() if "accounts" in t else []
    lots = {r["lot_id"]: r for r in (t["lots"].to_pylist() if "lots" in t else [])}
    cost = {r["security_id"]: (r.get("cost_bps") if r.get("cost_bps") is not None
                               else default_cost_bps) for r in t["securities"].to_pylist()}
    accounts: dict[str, dict] = {}
    for a in acc:
        accounts.setdefault(a["account_id"], a)
    for hid, rows in results.items():
        status = rows[0]["status"]
        if status in ("error", "infeasible", "rejected"):
            continue
        sold: dict[str, float] = {}
        flow: dict[str, float] = {}
        for tr in trades.get(hid, []):
            nums = [tr["quantity"], tr["price"], tr["notional"]]
            if not all(isinstance(x, float) and math.isfinite(x) for x in nums):
                out.append(f"{hid}: non-finite trade {tr}")
                continue
            a = accounts.get(tr["account_id"])
            if a is None or a["household_id"] != hid:
                out.append(f"{hid}: trade in account {tr['account_id']} of another household")
                continue
            c = float(cost.get(tr["security_id"], default_cost_bps)) / 10_000.0
            if tr["side"] == "sell":
                lot = lots.get(tr["lot_id"])
                if lot is None or lot["account_id"] != tr["account_id"]:
                    out.append(f"{hid}: sells lot {tr['lot_id']} it does not hold")
                    continue
                sold[tr["lot_id"]] = sold.get(tr["lot_id"], 0.0) + tr["quantity"]
                flow[tr["account_id"]] = flow.get(tr["account_id"], 0.0) + tr["notional"] * (1 - c)
            else:
                flow[tr["account_id"]] = flow.get(tr["account_id"], 0.0) - tr["notional"] * (1 + c)
        for lot_id, q in sold.items():
            held = lots[lot_id]["quantity"]
            if q > held * (1 + 1e-9) + 1e-9:
                out.append(f"{hid}: oversells lot {lot_id}: {q:g} of {held:g}")
        for aid, a in accounts.items():
            if a["household_id"] != hid or a.get("tradable", True) not in (True, None):
                continue
            money = [a.get(k) or 0.0 for k in ("cash", "contribution", "withdrawal")]
            if not all(math.isfinite(float(x)) for x in money):
                continue
            final = money[0] + money[1] - money[2] + flow.get(aid, 0.0)
            floor = a.get("min_cash") or 0.0
            if math.isfinite(float(floor)) and final < float(floor) - 0.01:
                out.append(f"{hid}: account {aid} ends with cash {final:,.2f} below min_cash "
                           f"{floor:,.2f} and the household is {status}")
    return out


def compare(case: Case, touched: set[str] | None, t: Tables, clean, res: Result) -> None:
    if res.code is None:
        res.add("hang", f"no end within the timeout ({res.seconds:.0f}s)")
        return
    if res.code == 1 or RAW.search(res.stderr):
        res.add("raw_exception", (res.stderr.strip().splitlines() or ["(no stderr)"])[-1][:300])
    if res.code not in (0, 3):
        return
    results, trades, _ = clean["corrupt"]
    ids = [h for h in (t["households"].column("household_id").to_pylist()
                       if "households" in t else []) if h]
    for h in sorted(set(ids) - set(results)):
        res.add("dropped_household", h)
    for h, rows in sorted(results.items()):
        if len(rows) > 1:
            res.add("duplicated_household", h)
        if h not in set(ids):
            res.add("unknown_household_in_results", h)
    c_results, c_trades = clean["results"], clean["trades"]
    if touched is not ALL:
        for h in sorted(set(c_results) - touched):
            if h not in results:
                continue
            if results[h] != c_results[h] or trades.get(h, []) != c_trades.get(h, []):
                was, now = c_results[h][0], results[h][0]
                keys = [k for k in was if was[k] != now.get(k)]
                res.add("untouched_changed", f"{h}: {', '.join(keys) or 'trades'} differ "
                        f"(status {was['status']} -> {now['status']}: {now['message']!s:.120})")
    for v in check_trades(t, results, trades):
        res.add("checker_violation", v)


KINDS = {"hang": "hangs", "raw_exception": "raw_exceptions",
         "dropped_household": "dropped_households",
         "duplicated_household": "duplicated_households",
         "unknown_household_in_results": "unknown_households_in_results",
         "untouched_changed": "untouched_households_changed",
         "checker_violation": "checker_violations"}


class Sweep:
    """A clean book, its clean run, and the cases run against it one at a time."""

    def __init__(self, work: str, households: int = 300, seed: int = 0,
                 timeout: float = 60.0) -> None:
        from hearth.batch.generate import generate

        self.work, self.timeout = work, timeout
        self.clean_book = os.path.join(work, "clean")
        if not os.path.exists(os.path.join(self.clean_book, "households.parquet")):
            generate(self.clean_book, households, seed=seed, as_of=RUN_DATE, bad_fraction=0.0,
                     profile="small")
        self.base = read_book(self.clean_book)
        self.index = Index(self.base)
        self.clean_out = os.path.join(work, "clean-out")
        shutil.rmtree(self.clean_out, ignore_errors=True)
        code, self.clean_seconds, err = run_hearth(self.clean_book, self.clean_out, timeout)
        if code != 0:
            raise RuntimeError(f"the clean run failed ({code}): {err[-2000:]}")
        self.results, self.trades, _ = read_output(self.clean_out)
        self.clean_problems = check_trades(self.base, self.results, self.trades)

    def cases(self, only: list[str] | None = None) -> list[Case]:
        return [c for c in cases(self.index) if not only or any(o in c.name for o in only)]

    def case(self, name: str) -> Case:
        return next(c for c in cases(self.index) if c.name == name)

    def run(self, case: Case, out: str | None = None) -> Result:
        t = dict(self.base)
        touched = case.apply(t, self.index)
        book = os.path.join(self.work, "case")
        out = out or os.path.join(self.work, "case-out")
        shutil.rmtree(book, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
        write_book(book, t)
        code, secs, err = run_hearth(book, out, self.timeout)
        res = Result(case.name, code, secs, err)
        state = {"results": self.results, "trades": self.trades}
        if code in (0, 3):
            state["corrupt"] = read_output(out)
            res.output = state["corrupt"]
        compare(case, touched, t, state, res)
        return res


def sweep(households: int = 300, seed: int = 0, timeout: float = 60.0,
          only: list[str] | None = None, workdir: str | None = None, verbose: bool = True
          ) -> tuple[dict, list[Result]]:
    work = workdir or tempfile.mkdtemp(prefix="hearth-fuzz-")
    sw = Sweep(work, households, seed, timeout)
    clean = Result("clean", 0, sw.clean_seconds, "")
    for v in sw.clean_problems:
        clean.add("checker_violation", v)
    results: list[Result] = [clean] if clean.problems else []
    codes: dict[str, int] = {}
    todo = sw.cases(only)
    for i, case in enumerate(todo):
        res = sw.run(case)
        codes[str(res.code)] = codes.get(str(res.code), 0) + 1
        results.append(res)
        if verbose:
            flag = " ".join(f"{k}={len(v)}" for k, v in res.problems.items()) or "ok"
            print(f"[{i + 1:3d}/{len(todo)}] {case.name:48s} exit {res.code!s:4s} "
                  f"{res.seconds:5.1f}s  {flag}", flush=True)
            for kind, items in res.problems.items():
                for it in items[:3]:
                    print(f"        {kind}: {it}", flush=True)
    counts: dict = {"cases": len(todo)}
    for kind, label in KINDS.items():
        n = [len(r.problems.get(kind, [])) for r in results]
        # hangs and raw exceptions count cases; the others count households or violations
        counts[label] = sum(bool(x) for x in n) if kind in ("hang", "raw_exception") else sum(n)
    counts["cases_with_problems"] = sum(bool(r.problems) for r in results)
    counts["exit_codes"] = dict(sorted(codes.items()))
    counts["slowest_case_seconds"] = round(max((r.seconds for r in results), default=0.0), 1)
    counts["clean_seconds"] = round(sw.clean_seconds, 1)
    if workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return counts, results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--households", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per run")
    ap.add_argument("--only", action="append", help="run the cases whose name contains this")
    ap.add_argument("--workdir", help="keep books and outputs here (default: a temp folder)")
    ap.add_argument("--list", action="store_true", help="print the case names and stop")
    args = ap.parse_args()
    if args.list:
        from hearth.batch.generate import generate

        with tempfile.TemporaryDirectory() as d:
            generate(d, args.households, seed=args.seed, as_of=RUN_DATE, bad_fraction=0.0,
                     profile="small")
            names = [c.name for c in cases(Index(read_book(d)))]
        print("\n".join(names))
        print(f"{len(names)} cases")
        return
    counts, _ = sweep(args.households, args.seed, args.timeout, args.only, args.workdir)
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
