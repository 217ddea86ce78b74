"""Bad-input fuzzing with hypothesis: a valid generated book, corrupted at random in
one or several places at once, run through ``hearth run`` (in-process,
``hearth.batch.cli.main``), and judged against the clean run.

Each corruption (a hypothesis strategy picks its kind, table, row, column and
value) knows who it touches, from the clean book:

- ``bad``: households it must set aside: status ``error``, named in ``exceptions``
  (a row with their household_id, or their message naming the shared record that
  has one);
- ``affected``: households whose rows may change (a valid but different value, a
  reference that detaches a record from its household); ``None`` is every one;
- ``removed``: rows that stop being households (a null household_id);
- ``renamed``: households given a new (unicode, very long) id everywhere, whose
  rows must be the clean rows under the new id;
- ``stops``: a required table missing, a table that is no Parquet file, a
  required column of an unusable type: the run exits 2 naming the table.

The kinds: NaN, infinities, negative, zero and huge numbers in every number
column; nulls and empty strings in required columns; duplicate rows and ids;
dangling references; unknown enum values; future dates and Feb 29; target weights
not summing to 1; wrong column types (whole columns re-typed, one value that does
not parse); files that are not Parquet; missing and empty tables; unicode and
very long ids; extra columns.

A run must then either exit 2 naming a stopping table (and commit nothing), or
commit (exit 0, or 3 exactly when the failure share passes the limit) with: every
household exactly once; every ``bad`` household ``error`` and named; no household
set aside by anything but validation (``assembly_error``, ``internal_error``: a
check validation lacks); and every household no corruption touches with exactly
the clean run's ``household_results`` (``run_id``, ``solve_ms`` aside) and trades.
A household two corruptions touch, or one whose rows two corruptions read or
write (one gives row j row i's id, another changes row i's), is only counted: their
expectations may cancel.

``check`` returns the problems found instead of asserting, so ``bench/chaos.py``
runs the same judge over many more examples.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import faulthandler
import importlib.util
import io
import logging
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hearth.batch import cli
from hearth.batch.generate import generate
from hearth.io.write import committed_files, read_manifest

_path = Path(__file__).parents[2] / "bench" / "fuzz_inputs.py"
if "fuzz_inputs" in sys.modules:  # tests/batch/test_bad_input_runs.py loads it too
    fuzz = sys.modules["fuzz_inputs"]
else:
    _spec = importlib.util.spec_from_file_location("fuzz_inputs", _path)
    fuzz = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
    sys.modules["fuzz_inputs"] = fuzz  # dataclasses look their module up
    _spec.loader.exec_module(fuzz)  # type: ignore[union-attr]

D = "2026-11-20"
HOUSEHOLDS = 60
FAILURE_RATE_LIMIT = 0.05  # the default configuration's
HANG = 300  # seconds one in-process run may take before the test process is ended
WEIGHT_TOL = 1e-6
Tables = dict[str, pa.Table]


# -- the clean book ---------------------------------------------------------------------

class Book:
    """The clean book as tables, who depends on what, and its clean run's rows."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.path = os.path.join(root, "clean")
        generate(self.path, HOUSEHOLDS, seed=5, as_of=D, bad_fraction=0.0, profile="small")
        self.t: Tables = fuzz.read_book(self.path)
        self.ix = fuzz.Index(self.t)
        self.ids: list[str] = list(self.ix.households)
        self.custom = set(self.t["household_targets"].column("household_id").to_pylist())
        self.menu_users: dict[str, set[str]] = {m: set(hs) for m, hs in self.ix.menu_hh.items()}
        # who lists a security in their model, and who holds it (the households set
        # aside for a bad security; a household that only traded it is set aside too)
        code, out, log = run_book_in_process(self.path, os.path.join(root, "clean-out"))
        assert code == 0, log
        self.results, self.trades, self.exceptions = read_outputs(out)
        assert sorted(self.results) == sorted(self.ids) and not self.exceptions

    def rows(self, table: str) -> int:
        return self.t[table].num_rows

    def value(self, table: str, column: str, row: int) -> object:
        return self.t[table].column(column)[row].as_py()

    def owner(self, table: str, row: int) -> str:
        """The household a per-household table's row belongs to (in the clean book)."""
        if table in ("households", "accounts", "household_targets", "restrictions", "held_away"):
            return str(self.value(table, "household_id", row))
        return self.ix.acct_hh[self.value(table, "account_id", row)]  # lots, transactions

    def model_users(self, model: str) -> set[str]:
        return self.ix.model_users(model)

    def sec_users(self, sec: str) -> set[str]:
        return set(self.ix.sec_users.get(sec, set()))


# -- running and reading ----------------------------------------------------------------

def run_book_in_process(book: str, out: str) -> tuple[int, str, str]:
    """``hearth run BOOK OUT --run-date D --workers 1`` in this process: (exit code,
    OUT, the log). The hearth logger is put back as it was afterwards."""
    logger = logging.getLogger("hearth")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    err = io.StringIO()
    faulthandler.dump_traceback_later(HANG, exit=True)  # a hang ends the test process
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = cli.main(["run", book, out, "--run-date", D, "--workers", "1"])
    finally:
        faulthandler.cancel_dump_traceback_later()
        logger.handlers[:], logger.level, logger.propagate = saved
    return code, out, err.getvalue()


def read_outputs(out: str) -> tuple[dict[str, list[dict]], dict[str, list[dict]], list[dict]]:
    """Through the manifest: (household_results rows by household, trades rows by
    household, exceptions rows); run_id and solve_ms dropped."""
    files = committed_files(out, D)

    def rows(table: str) -> list[dict]:
        parts = [pq.read_table(f) for f in files[table]]
        return pa.concat_tables(parts).to_pylist() if parts else []

    results: dict[str, list[dict]] = {}
    for r in rows("household_results"):
        r.pop("run_id")
        r.pop("solve_ms")
        results.setdefault(r["household_id"], []).append(r)
    trades: dict[str, list[dict]] = {}
    for r in rows("trades"):
        r.pop("run_id")
        trades.setdefault(r["household_id"], []).append(r)
    return results, trades, rows("exceptions")


# -- corruptions ------------------------------------------------------------------------

# the order corruptions are applied in: cells of the clean rows first (so row numbers
# mean the clean book's rows), then rows added, ids renamed, whole columns and
# tables, and last the files on disk
CELL, ROWS, RENAME, COLUMNS, FILES = range(5)


@dataclass
class Corruption:
    what: str
    stage: int
    apply: Callable[[Tables], None] | None = None
    on_disk: Callable[[str], None] | None = None
    bad: set[str] = field(default_factory=set)
    affected: set[str] | None = field(default_factory=set)  # None: every household
    removed: set[str] = field(default_factory=set)
    renamed: dict[str, str] = field(default_factory=dict)
    names: tuple[str, ...] = ()  # shared records one of which a bad household's message names
    stops: str | None = None  # the table a run must stop on (exit 2)
    table: str | None = None  # the table an exception must be reported for
    wipes: str | None = None  # the table this one empties or removes (what others did there)
    rows: set[tuple[str, int]] = field(default_factory=set)  # clean rows it reads or writes

    def __repr__(self) -> str:
        return self.what

    def _repr_pretty_(self, p, cycle) -> None:  # how hypothesis prints a failing example
        p.text(self.what)

    def touched(self, everyone: set[str]) -> set[str]:
        out = set(everyone) if self.affected is None else set(self.affected)
        return out | self.bad | self.removed | set(self.renamed)


NAN, INF = math.nan, math.inf
# per number column: the values that break its rule (the others are valid, only
# different); "negative" is -0.5 for a fraction or rate, -100 for an amount
_ALWAYS = {"nan", "inf", "-inf", "huge"}
NUMBER_COLUMNS: dict[tuple[str, str], set[str]] = {
    **{("households", c): _ALWAYS | {"negative"} for c in (
        "st_rate", "lt_rate", "ordinary_rate", "qualified_div_rate", "retirement_rate",
        "loss_carryforward_st", "loss_carryforward_lt", "tax_budget", "turnover_limit",
        "drift_threshold")},
    **{("households", c): _ALWAYS for c in ("ytd_st_gain", "ytd_lt_gain")},
    **{("accounts", c): _ALWAYS | {"negative"} for c in (
        "cash", "min_cash", "max_cash", "contribution", "withdrawal")},
    ("lots", "quantity"): _ALWAYS | {"negative", "zero"},
    ("lots", "cost_basis"): _ALWAYS | {"negative"},
    ("securities", "price"): _ALWAYS | {"negative", "zero"},
    **{("securities", c): _ALWAYS | {"negative"} for c in (
        "income_yield", "qualified_fraction", "tax_exempt_fraction", "foreign_tax_fraction",
        "cg_distribution", "cost_bps")},
    ("securities", "expected_return"): _ALWAYS,
    ("targets", "weight"): _ALWAYS | {"negative"},
    ("household_targets", "weight"): _ALWAYS | {"negative"},
    ("transactions", "quantity"): _ALWAYS | {"negative", "zero"},
    ("transactions", "realized_gain"): _ALWAYS,
    ("held_away", "value"): _ALWAYS | {"negative"},
}
SHARED = ("securities", "targets", "model_securities", "menus")


def _number(label: str, column: str) -> float:
    if label == "negative":
        return -0.5 if column.endswith(("rate", "fraction", "weight", "limit", "threshold",
                                        "yield", "distribution", "return")) else -100.0
    return {"nan": NAN, "inf": INF, "-inf": -INF, "zero": 0.0, "huge": 1e300}[label]


def _text(v: object) -> str:
    """A number as the text that reads back as exactly it."""
    if not isinstance(v, (int, float)):
        raise TypeError(f"not a number: {v!r}")  # re-typed already: this one is skipped
    return repr(v)


def _iso(v: object) -> str:
    if not isinstance(v, dt.date):
        raise TypeError(f"not a date: {v!r}")
    return v.isoformat()


def _set(table: str, column: str, row: int, value: object) -> Callable[[Tables], None]:
    return lambda t: fuzz.set_cell(t, table, column, row, value)


class Kinds:
    """The corruption strategies over one clean book."""

    def __init__(self, book: Book) -> None:
        self.b = book

    def dependents(self, table: str, row: int) -> tuple[set[str], tuple[str, ...]]:
        """(households a shared row's problem sets aside, the record their message names)."""
        b = self.b
        if table == "securities":
            sec = str(b.value(table, "security_id", row))
            return b.sec_users(sec), (sec,)
        if table in ("targets", "model_securities"):
            model = str(b.value(table, "model_id", row))
            return b.model_users(model), (model,)
        menu = str(b.value(table, "menu_id", row))  # menus
        return set(b.menu_users.get(menu, set())), (menu,)

    def owned(self, table: str, row: int) -> tuple[set[str], tuple[str, ...]]:
        if table in SHARED:
            return self.dependents(table, row)
        return {self.b.owner(table, row)}, ()

    def row(self, table: str) -> st.SearchStrategy[int]:
        return st.integers(0, self.b.rows(table) - 1)

    # numbers ---------------------------------------------------------------------------
    def numbers(self) -> st.SearchStrategy[Corruption]:
        @st.composite
        def make(draw) -> Corruption:
            table, column = draw(st.sampled_from(sorted(NUMBER_COLUMNS)))
            label = draw(st.sampled_from(["nan", "inf", "-inf", "negative", "zero", "huge"]))
            row = draw(self.row(table))
            value = _number(label, column)
            who, record = self.owned(table, row)
            invalid = label in NUMBER_COLUMNS[(table, column)]
            old = self.b.value(table, column, row) if column in self.b.t[table].column_names \
                else None
            if label == "zero" and column == "weight":
                invalid = old is not None and old > WEIGHT_TOL  # the sum moves off 1
                if table == "household_targets":
                    who = {self.b.owner(table, row)}
            if label in ("zero", "negative") and column == "max_cash":
                invalid = label == "negative" or (self.b.value(table, "min_cash", row) or 0) > 0
            c = Corruption(f"{table}.{column}[{row}]={label}", CELL, _set(table, column, row, value),
                           table=table if invalid else None, rows={(table, row)})
            if invalid:
                c.bad, c.affected, c.names = who, set(), record
            else:
                c.affected = who
            return c

        @st.composite
        def rank(draw) -> Corruption:
            row = draw(self.row("model_securities"))
            label, value = draw(st.sampled_from([("zero", 0), ("negative", -3), ("huge", 2**62)]))
            who, record = self.dependents("model_securities", row)
            return Corruption(f"model_securities.rank[{row}]={label}", CELL,
                              _set("model_securities", "rank", row, value), bad=who,
                              names=record, table="model_securities",
                              rows={("model_securities", row)})
        return st.one_of(make(), rank())

    # nulls and empty strings in required columns ----------------------------------------
    def nulls(self) -> st.SearchStrategy[Corruption]:
        # (table, column) -> what a null there does: "bad" sets the row's owners aside,
        # "detached" takes the row away from its household (which may change), "gone"
        # makes the household row no household; "sum" breaks the weights' sum to 1
        effect = {
            ("households", "household_id"): "gone", ("households", "model_id"): "bad",
            ("households", "st_rate"): "bad", ("households", "lt_rate"): "bad",
            ("accounts", "account_id"): "bad", ("accounts", "household_id"): "detached",
            ("accounts", "account_type"): "bad", ("accounts", "cash"): "bad",
            ("lots", "lot_id"): "bad", ("lots", "account_id"): "detached",
            ("lots", "security_id"): "bad", ("lots", "quantity"): "bad",
            ("lots", "cost_basis"): "bad", ("lots", "acquired_date"): "bad",
            ("securities", "asset_class"): "bad", ("securities", "price"): "bad",
            ("securities", "security_id"): "security_id",
            ("targets", "model_id"): "sum", ("targets", "asset_class"): "sum",
            ("targets", "weight"): "bad",
            ("model_securities", "model_id"): "detached",
            ("model_securities", "asset_class"): "detached",
            ("model_securities", "security_id"): "bad", ("model_securities", "rank"): "bad",
            ("household_targets", "household_id"): "sum",
            ("household_targets", "asset_class"): "sum", ("household_targets", "weight"): "bad",
            ("transactions", "account_id"): "detached", ("transactions", "security_id"): "bad",
            ("transactions", "trade_date"): "bad", ("transactions", "side"): "bad",
            ("transactions", "quantity"): "bad",
            ("restrictions", "household_id"): "detached", ("restrictions", "rule"): "bad",
            ("held_away", "household_id"): "detached", ("held_away", "asset_class"): "bad",
            ("held_away", "value"): "bad",
            ("menus", "menu_id"): "detached", ("menus", "security_id"): "bad",
        }

        @st.composite
        def make(draw) -> Corruption:
            table, column = draw(st.sampled_from(sorted(effect)))
            row = draw(self.row(table))
            empty = column.endswith("_id") and draw(st.booleans())  # '' reads as a missing id
            value = "" if empty else None
            who, record = self.owned(table, row)
            c = Corruption(f"{table}.{column}[{row}]={'empty' if empty else 'null'}", CELL,
                           _set(table, column, row, value), table=table, rows={(table, row)})
            kind = effect[(table, column)]
            if kind == "sum":
                weight = self.b.value(table, "weight", row)
                kind = "bad" if weight is not None and weight > WEIGHT_TOL else "detached"
                if table == "household_targets":
                    who = {self.b.owner(table, row)}
            if kind == "bad":
                c.bad, c.names = who, record
            elif kind == "gone":
                c.removed = who
            elif kind == "detached":
                c.affected, c.table = who, None
            else:  # a security row without an id: its holders' and models' lots and
                # listings point at nothing (set aside); a trade of it drops out
                sec = str(self.b.value(table, "security_id", row))
                holders = {self.b.ix.lot_hh[i] for i, s in enumerate(
                    self.b.t["lots"].column("security_id").to_pylist()) if s == sec}
                listers = set().union(*(self.b.model_users(m) for m, s in zip(
                    self.b.t["model_securities"].column("model_id").to_pylist(),
                    self.b.t["model_securities"].column("security_id").to_pylist()) if s == sec))
                c.bad, c.affected = holders | listers, self.b.sec_users(sec)
                c.table = None
            return c
        return make()

    # duplicates ------------------------------------------------------------------------
    def duplicates(self) -> st.SearchStrategy[Corruption]:
        @st.composite
        def row_twice(draw) -> Corruption:
            table = draw(st.sampled_from(["households", "accounts", "lots", "securities",
                                          "targets", "model_securities", "transactions"]))
            row = draw(self.row(table))
            who, record = self.owned(table, row)
            c = Corruption(f"{table}[{row}] twice", ROWS, lambda t: fuzz.dup_row(t, table, row),
                           table=table, rows={(table, row)})
            if table in ("model_securities", "transactions"):  # no key: valid, may differ
                c.affected, c.table = who, None
            else:
                c.bad, c.names = who, record
            return c

        @st.composite
        def same_id(draw) -> Corruption:
            """Row j takes row i's id (another record's)."""
            table, key = draw(st.sampled_from([("households", "household_id"),
                                               ("accounts", "account_id"), ("lots", "lot_id")]))
            i, j = draw(st.lists(self.row(table), min_size=2, max_size=2, unique=True))
            c = Corruption(f"{table}[{j}].{key} = [{i}]'s", CELL,
                           _set(table, key, j, self.b.value(table, key, i)), table=table,
                           rows={(table, i), (table, j)})
            if table == "households":  # j's records now point at no household row
                c.bad, c.removed = {self.b.owner(table, i)}, {self.b.owner(table, j)} - {
                    self.b.owner(table, i)}
            else:
                c.bad = {self.b.owner(table, i), self.b.owner(table, j)}
            return c
        return st.one_of(row_twice(), same_id())

    # dangling references ---------------------------------------------------------------
    def dangling(self) -> st.SearchStrategy[Corruption]:
        # (table, column) -> "bad" (the row's owners are set aside) or "detached"
        refs = {("accounts", "household_id"): "detached", ("lots", "account_id"): "detached",
                ("lots", "security_id"): "bad", ("households", "model_id"): "model",
                ("accounts", "menu_id"): "bad", ("model_securities", "security_id"): "bad",
                ("menus", "security_id"): "bad", ("restrictions", "household_id"): "detached",
                ("restrictions", "account_id"): "foreign",
                ("transactions", "account_id"): "detached",
                ("transactions", "security_id"): "detached",
                ("household_targets", "household_id"): "detached",
                ("held_away", "household_id"): "detached"}

        @st.composite
        def make(draw) -> Corruption:
            table, column = draw(st.sampled_from(sorted(refs)))
            row = draw(self.row(table))
            kind = refs[(table, column)]
            who, record = self.owned(table, row)
            value: object = draw(st.sampled_from(["NOBODY", "nobody", " " + str(
                self.b.value(table, column, row) or "x"), "Δ-unknown"]))
            if kind == "foreign":  # an account of another household
                value = next(a for a, h in self.b.ix.acct_hh.items() if h not in who)
                kind = "bad"
            if kind == "model":  # households with custom targets still have targets
                kind = "detached" if who & self.b.custom else "bad"
            c = Corruption(f"{table}[{row}].{column}={value!r}", CELL,
                           _set(table, column, row, value), table=table, rows={(table, row)})
            if kind == "bad":
                c.bad, c.names = who, record
            else:
                c.affected, c.table = who, None
            return c
        return make()

    # unknown enum values ---------------------------------------------------------------
    def enums(self) -> st.SearchStrategy[Corruption]:
        @st.composite
        def make(draw) -> Corruption:
            table, column = draw(st.sampled_from([
                ("accounts", "account_type"), ("households", "filing_status"),
                ("restrictions", "rule"), ("transactions", "side")]))
            row = draw(self.row(table))
            old = str(self.b.value(table, column, row))
            value = draw(st.sampled_from(["ira", old.upper(), old + " ", "", "ünknown", old[:-1]]))
            return Corruption(f"{table}[{row}].{column}={value!r}", CELL,
                              _set(table, column, row, value), bad={self.b.owner(table, row)},
                              table=table, rows={(table, row)})
        return make()

    # dates -----------------------------------------------------------------------------
    def dates(self) -> st.SearchStrategy[Corruption]:
        run_date = dt.date.fromisoformat(D)

        @st.composite
        def make(draw) -> Corruption:
            table, column = draw(st.sampled_from([("lots", "acquired_date"),
                                                  ("transactions", "trade_date")]))
            row = draw(self.row(table))
            label, value = draw(st.sampled_from([
                ("tomorrow", run_date + dt.timedelta(days=1)), ("2027-01-01", dt.date(2027, 1, 1)),
                ("9999-12-31", dt.date(9999, 12, 31)), ("2024-02-29", dt.date(2024, 2, 29)),
                ("2000-02-29", dt.date(2000, 2, 29)), ("the run date", run_date),
                ("1900-01-01", dt.date(1900, 1, 1))]))
            who = {self.b.owner(table, row)}
            c = Corruption(f"{table}[{row}].{column}={label}", CELL, _set(table, column, row, value),
                           rows={(table, row)})
            if table == "lots" and value > run_date:
                c.bad, c.table = who, table
            else:  # a valid date, or a future trade (no rule): may change
                c.affected = who
            return c
        return make()

    # weights ---------------------------------------------------------------------------
    def weights(self) -> st.SearchStrategy[Corruption]:
        @st.composite
        def model(draw) -> Corruption:
            models = sorted(set(self.b.t["targets"].column("model_id").to_pylist()))
            m = draw(st.sampled_from(models))
            f = draw(st.sampled_from([0.9, 1.1, 0.5, 0.999]))

            def apply(t: Tables) -> None:
                tab = t["targets"]
                w = [x * f if k == m and x is not None else x for k, x in
                     zip(tab.column("model_id").to_pylist(), tab.column("weight").to_pylist())]
                i = tab.schema.get_field_index("weight")
                t["targets"] = tab.set_column(i, tab.schema.field(i), pa.array(w, pa.float64()))
            return Corruption(f"targets of {m} x {f}", CELL, apply, bad=self.b.model_users(m),
                              names=(m,), table="targets")

        @st.composite
        def custom(draw) -> Corruption:
            row = draw(self.row("household_targets"))
            d = draw(st.sampled_from([0.2, -0.05, 1e-3]))
            old = self.b.value("household_targets", "weight", row)
            return Corruption(f"household_targets[{row}].weight += {d}", CELL,
                              _set("household_targets", "weight", row, old + d),
                              bad={self.b.owner("household_targets", row)},
                              table="household_targets", rows={("household_targets", row)})
        return st.one_of(model(), custom())

    # wrong column types ----------------------------------------------------------------
    def types(self) -> st.SearchStrategy[Corruption]:
        b = self.b

        def retype(table: str, column: str, to: pa.DataType, convert: Callable[[object], object],
                   row: int | None = None, bad_value: object = None) -> Callable[[Tables], None]:
            def apply(t: Tables) -> None:
                tab = t[table]
                values = [convert(v) if v is not None else None
                          for v in tab.column(column).to_pylist()]
                if row is not None:
                    values[row] = bad_value
                i = tab.schema.get_field_index(column)
                t[table] = tab.set_column(i, pa.field(column, to), pa.array(values, to))
            return apply

        def holders_of(column: str) -> tuple[set[str], tuple[str, ...]]:
            """Users of the securities with a value in the column, and those securities."""
            sec = b.t["securities"].to_pydict()
            ids = tuple(s for s, v in zip(sec["security_id"], sec[column]) if v is not None)
            return set().union(*(b.sec_users(s) for s in ids)), ids

        @st.composite
        def one_bad_value(draw) -> Corruption:
            """A whole column written as strings (or doubles), one value that cannot be read."""
            table, column, to, text = draw(st.sampled_from([
                ("households", "tax_budget", pa.string(), "n/a"),
                ("accounts", "cash", pa.string(), "$1,000"),
                ("lots", "quantity", pa.string(), "ten"),
                ("lots", "cost_basis", pa.string(), "1.2.3"),
                ("lots", "acquired_date", pa.string(), "2025-02-29"),
                ("lots", "acquired_date", pa.string(), "29/02/2024"),
                ("transactions", "trade_date", pa.string(), "2026-13-01"),
                ("securities", "price", pa.string(), "12,50"),
                ("model_securities", "rank", pa.float64(), 1.5)]))
            row = draw(self.row(table))
            convert = _iso if column.endswith("date") else (float if to == pa.float64() else _text)
            who, record = self.owned(table, row)
            return Corruption(f"{table}.{column} as {to}, [{row}]={text!r}", COLUMNS,
                              retype(table, column, to, convert, row, text), bad=who, names=record,
                              table=table, rows={(table, row)})

        lossless = st.sampled_from([
            Corruption("securities.price as strings", COLUMNS,
                       retype("securities", "price", pa.string(), _text)),
            Corruption("accounts.tradable as int64", COLUMNS,
                       retype("accounts", "tradable", pa.int64(), int)),
            Corruption("lots.acquired_date as timestamps", COLUMNS,
                       retype("lots", "acquired_date", pa.timestamp("us"),
                              lambda v: dt.datetime.fromisoformat(_iso(v)))),
            Corruption("lots.acquired_date as ISO strings", COLUMNS,
                       retype("lots", "acquired_date", pa.string(), _iso)),
            Corruption("households.st_rate as strings", COLUMNS,
                       retype("households", "st_rate", pa.string(), _text)),
            Corruption("securities.tags as plain strings", COLUMNS,
                       retype("securities", "tags", pa.string(), lambda v: v[0]),
                       bad=holders_of("tags")[0], names=holders_of("tags")[1], table="securities"),
            Corruption("securities.sector as lists", COLUMNS,
                       retype("securities", "sector", pa.list_(pa.string()), lambda v: [v]),
                       bad=holders_of("sector")[0], names=holders_of("sector")[1],
                       table="securities"),
            Corruption("households.household_id as lists", COLUMNS,
                       retype("households", "household_id", pa.list_(pa.string()), lambda v: [v]),
                       stops="households"),
            Corruption("lots.account_id as lists", COLUMNS,
                       retype("lots", "account_id", pa.list_(pa.string()), lambda v: [v]),
                       stops="lots"),
        ])
        return st.one_of(one_bad_value(), lossless)

    # files and tables ------------------------------------------------------------------
    def files(self) -> st.SearchStrategy[Corruption]:
        b = self.b
        required = ["households", "accounts", "lots", "securities", "targets", "model_securities"]
        optional = ["household_targets", "restrictions", "transactions", "held_away", "menus"]

        def users(table: str) -> set[str]:
            """Households whose rows an optional table holds (they change without it)."""
            if table == "transactions":
                return set(b.ix.tx_hh)
            if table == "menus":
                return set().union(*b.menu_users.values())
            return set(b.t[table].column("household_id").to_pylist())

        @st.composite
        def not_parquet(draw) -> Corruption:
            table = draw(st.sampled_from(required + optional))
            how = draw(st.sampled_from(["text", "truncated", "empty file", "csv"]))

            def on_disk(root: str) -> None:
                path = os.path.join(root, f"{table}.parquet")
                data = Path(path).read_bytes()
                Path(path).write_bytes({
                    "text": b"this is not parquet\n", "truncated": data[: len(data) // 2],
                    "empty file": b"", "csv": b"a,b\n1,2\n"}[how])
            return Corruption(f"{table}.parquet: {how}", FILES, on_disk=on_disk, stops=table)

        @st.composite
        def missing(draw) -> Corruption:
            table = draw(st.sampled_from(required + optional))

            def on_disk(root: str) -> None:
                os.remove(os.path.join(root, f"{table}.parquet"))
            c = Corruption(f"{table}.parquet missing", FILES, on_disk=on_disk, wipes=table)
            if table in required:
                c.stops = table
            elif table == "menus":  # accounts on a menu name one that is not there
                c.bad, c.table = users(table), "accounts"
            else:
                c.affected = users(table)
            return c

        @st.composite
        def empty(draw) -> Corruption:
            table = draw(st.sampled_from(required + optional))
            c = Corruption(f"{table} empty", COLUMNS,
                           lambda t: t.__setitem__(table, t[table].slice(0, 0)), wipes=table)
            if table == "households":
                c.removed = set(b.ids)
            elif table == "menus":
                c.bad, c.table = users(table), "accounts"
            elif table in optional:
                c.affected = users(table)
            elif table == "targets":  # households without custom targets have no model
                c.bad, c.affected, c.table = set(b.ids) - b.custom, None, "households"
            else:
                c.affected = None
            return c
        return st.one_of(not_parquet(), missing(), empty())

    # ids -------------------------------------------------------------------------------
    def ids(self) -> st.SearchStrategy[Corruption]:
        b = self.b
        weird = st.one_of(
            st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=24),
            st.sampled_from(["家族-💰", "O'Brien \"&\" Sons; DROP TABLE lots", "x" * 5000,
                             "H0000001 ", "\u200b", "ñ/..\\%_*", "H\x00nul"]))

        @st.composite
        def household(draw) -> Corruption:
            """A household's id replaced everywhere it appears."""
            old = draw(st.sampled_from(b.ids))
            new = f"U-{old}-" + draw(weird)  # unique: two renames never meet

            def apply(t: Tables) -> None:
                for table in ("households", "accounts", "household_targets", "restrictions",
                              "held_away"):
                    if table in t and t[table].num_rows:
                        tab = t[table]
                        ids = [new if v == old else v for v in tab.column("household_id").to_pylist()]
                        i = tab.schema.get_field_index("household_id")
                        t[table] = tab.set_column(i, tab.schema.field(i), pa.array(ids, pa.string()))
            return Corruption(f"household {old} renamed {new[:40]!r}", RENAME, apply,
                              renamed={old: new})

        @st.composite
        def security(draw) -> Corruption:
            old = draw(st.sampled_from(sorted(b.t["securities"].column("security_id").to_pylist())))
            new = f"U-{old}-" + draw(weird)

            def apply(t: Tables) -> None:
                for table in ("securities", "lots", "model_securities", "transactions", "menus",
                              "restrictions"):
                    if table in t and t[table].num_rows:
                        tab = t[table]
                        ids = [new if v == old else v for v in tab.column("security_id").to_pylist()]
                        i = tab.schema.get_field_index("security_id")
                        t[table] = tab.set_column(i, tab.schema.field(i), pa.array(ids, pa.string()))
            # the column order of its holders' models changes: ties may resolve otherwise
            return Corruption(f"security {old} renamed {new[:40]!r}", RENAME, apply,
                              affected=b.sec_users(old))
        return st.one_of(household(), security())

    def extra_columns(self) -> st.SearchStrategy[Corruption]:
        b = self.b

        @st.composite
        def make(draw) -> Corruption:
            table = draw(st.sampled_from(sorted(b.t)))
            name = draw(st.sampled_from(["comment", "ünïcode", "household_id_2", "__index_level_0__",
                                         "Price", "x" * 300]))
            kind = draw(st.sampled_from(["string", "int", "list", "null"]))

            def apply(t: Tables) -> None:
                n = t[table].num_rows
                col = {"string": pa.array(["é" * (i % 7) for i in range(n)], pa.string()),
                       "int": pa.array(list(range(n)), pa.int64()),
                       "list": pa.array([[i] for i in range(n)], pa.list_(pa.int64())),
                       "null": pa.nulls(n)}[kind]
                if name not in t[table].column_names:
                    t[table] = t[table].append_column(name, col)
            return Corruption(f"{table} + column {name[:20]!r} ({kind})", COLUMNS, apply)
        return make()

    def any(self) -> st.SearchStrategy[Corruption]:
        return st.one_of(self.numbers(), self.nulls(), self.duplicates(), self.dangling(),
                         self.enums(), self.dates(), self.weights(), self.types(), self.files(),
                         self.ids(), self.extra_columns())


# -- the judge --------------------------------------------------------------------------

@dataclass
class Outcome:
    code: int
    log: str
    problems: dict[str, list[str]] = field(default_factory=dict)
    results: dict[str, list[dict]] = field(default_factory=dict)
    compared: int = 0  # untouched households compared row for row with the clean run
    set_aside: int = 0  # bad households checked for status error and an exception

    def add(self, kind: str, what: str) -> None:
        self.problems.setdefault(kind, []).append(what)


def corrupt(book: Book, corruptions: list[Corruption], root: str) -> list[Corruption]:
    """Write the corrupted book under ``root``; the corruptions that applied (one that
    an earlier one left nothing to work on, a second re-typing of a column or a
    second removal of a file, or a repeat, is skipped)."""
    t = dict(book.t)
    applied: list[Corruption] = []
    for c in sorted(corruptions, key=lambda c: c.stage):
        if c.apply is None or any(a.what == c.what for a in applied):
            continue
        try:
            c.apply(t)  # every apply assigns its table last: a failure changed nothing
        except (TypeError, ValueError, AttributeError, IndexError, KeyError, pa.ArrowException):
            continue
        applied.append(c)
    fuzz.write_book(root, t)
    for c in corruptions:
        if c.on_disk is None or any(a.what == c.what for a in applied):
            continue
        try:
            c.on_disk(root)
        except FileNotFoundError:  # removed by an earlier one
            continue
        applied.append(c)
    return applied


def check(book: Book, corruptions: list[Corruption], work: str | None = None) -> Outcome:
    """Run the corrupted book and judge it; the problems found, by kind."""
    work = work or tempfile.mkdtemp(prefix="fuzz-", dir=book.root)
    try:
        path = os.path.join(work, "book")
        applied = corrupt(book, corruptions, path)
        code, out, log = run_book_in_process(path, os.path.join(work, "out"))
        o = Outcome(code, log)
        judge(book, applied, o, out)
        return o
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _last_message(log: str) -> str:
    lines = [line for line in log.strip().splitlines() if line.startswith("{")]
    return lines[-1] if lines else log[-300:]


def judge(book: Book, corruptions: list[Corruption], o: Outcome, out: str) -> None:
    everyone = set(book.ids)
    stops = [c.stops for c in corruptions if c.stops]
    if o.code == 1:
        o.add("crash", _last_message(o.log))
        return
    if stops:
        if o.code != 2:
            o.add("did not stop", f"exit {o.code}, expected 2 naming {' or '.join(stops)}")
        elif not any(f"table {s}" in o.log for s in stops):
            o.add("stop without the table", _last_message(o.log))
        if read_manifest(out, D) is not None:
            o.add("committed after a stop", out)
        return
    if o.code not in (0, 3):
        o.add("unexpected exit", f"exit {o.code}: {_last_message(o.log)}")
        return
    results, trades, exceptions = read_outputs(out)
    o.results = results
    # households two corruptions touch, or whose rows another corruption also changed:
    # their expectations may cancel, only counted
    seen: dict[str, int] = {}
    for c in corruptions:
        for h in c.touched(everyone):
            seen[h] = seen.get(h, 0) + 1
    lenient = {h for h, n in seen.items() if n > 1}
    for i, a in enumerate(corruptions):  # one changed a row the other reads: both cancel
        for other in corruptions[i + 1:]:
            if a.rows & other.rows:
                lenient |= a.touched(everyone) | other.touched(everyone)
    bad = set().union(*(c.bad for c in corruptions)) - lenient
    removed = set().union(*(c.removed for c in corruptions))
    renamed = {k: v for c in corruptions for k, v in c.renamed.items()}
    any_all = any(c.affected is None for c in corruptions)
    touched = set().union(*(c.touched(everyone) for c in corruptions))

    for h, rows in results.items():
        if len(rows) > 1:
            o.add("duplicated household", f"{h[:60]!r} x{len(rows)}")
        if h not in everyone and not any(h in c.renamed.values() for c in corruptions):
            o.add("unknown household in results", repr(h[:60]))
    for h in sorted(everyone - lenient):
        if h in removed:
            if h in results:
                o.add("removed household in results", h)
        elif h in renamed:
            if renamed[h] not in results or h in results:
                o.add("lost household", f"{h} renamed {renamed[h][:40]!r}")
        elif h not in results:
            o.add("lost household", h)
    by_household: dict[str, set[str]] = {}
    for e in exceptions:
        by_household.setdefault(e["household_id"], set()).add(e["code"])
    for e in exceptions:
        if e["code"] in ("assembly_error", "internal_error"):
            o.add("not caught by validation", f"{e['household_id']}: {e['code']}: "
                                               f"{(e['message'] or '')[:160]}")
    named = " ".join(f"{e['record_id']}" for e in exceptions)
    for h in sorted(bad - removed):
        rows = results.get(renamed.get(h, h))
        if not rows:
            continue  # counted as lost above
        o.set_aside += 1
        r = rows[0]
        if r["status"] != "error":
            o.add("not set aside", f"{h}: {r['status']} ({[c for c in corruptions if h in c.bad]})")
            continue
        names = [n for c in corruptions if h in c.bad for n in c.names]
        if h not in by_household and not any(n in (r["message"] or "") and n in named
                                              for n in names):
            o.add("not named in exceptions", f"{h}: {r['message']!s:.120}")
    for c in corruptions:
        wiped = {w.wipes for w in corruptions if w.wipes and w is not c}  # by another one
        overwritten = any(c.rows & w.rows for w in corruptions if w is not c)
        if c.table and c.table not in wiped and not overwritten and \
                not any(e["source_table"] == c.table for e in exceptions):
            o.add("no exception for the table", f"{c}: nothing from {c.table}")
    if not any_all:
        for h in sorted(everyone - touched):
            got = results.get(h)
            o.compared += got is not None
            if got and (got != book.results[h] or trades.get(h, []) != book.trades.get(h, [])):
                was, now = book.results[h][0], got[0]
                keys = [k for k in was if was[k] != now.get(k)] or ["trades"]
                o.add("untouched household changed", f"{h}: {', '.join(keys)} (status "
                      f"{was['status']} -> {now['status']}: {now['message']!s:.100})")
        for old, new in renamed.items():
            if old in lenient or new not in results:
                continue
            want = [dict(r, household_id=new) for r in book.results[old]]
            want_trades = [dict(r, household_id=new) for r in book.trades.get(old, [])]
            if results[new] != want or trades.get(new, []) != want_trades:
                o.add("renamed household changed", f"{old} -> {new[:40]!r}")
    failed = sum(r[0]["status"] in ("error", "infeasible") for r in results.values())
    over = bool(results) and failed / len(results) > FAILURE_RATE_LIMIT
    if (o.code == 3) != over:
        o.add("wrong exit code", f"exit {o.code} with {failed} of {len(results)} failed")


# -- the tests --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Book:
    return Book(str(tmp_path_factory.mktemp("fuzz-books")))


@pytest.fixture(scope="module")
def kinds(book) -> Kinds:
    return Kinds(book)


def test_the_clean_book_runs_clean(book):
    assert len(book.results) == HOUSEHOLDS
    assert {r[0]["status"] for r in book.results.values()} <= {"traded", "no_trade"}


@settings(max_examples=int(os.environ.get("HEARTH_FUZZ_EXAMPLES", "30")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_a_corrupted_book_stops_naming_the_table_or_costs_only_its_households(book, kinds, data):
    corruptions = data.draw(st.lists(kinds.any(), min_size=1, max_size=4), label="corruptions")
    o = check(book, corruptions)
    assert o.problems == {}, f"exit {o.code}: {o.problems}"


def _classless_row(table: str, weight: float) -> Callable[[Tables], None]:
    def apply(t: Tables) -> None:
        tab = t[table]
        key = "model_id" if table == "targets" else "household_id"
        extra = pa.table({key: [tab.column(key)[0].as_py()],
                          "asset_class": pa.array([None], pa.string()), "weight": [weight]})
        t[table] = pa.concat_tables([tab, extra.select(tab.column_names).cast(tab.schema)])
    return apply


# what the fuzzing found, kept as examples (validation did not catch them before)
PINNED: dict[str, Callable[[Book], list[Corruption]]] = {
    # the model's households ran on a model without that class's weight: no exception
    "targets: a row without asset_class": lambda b: [Corruption(
        "targets[0].asset_class=null", CELL, _set("targets", "asset_class", 0, None),
        bad=b.model_users(str(b.value("targets", "model_id", 0))),
        names=(str(b.value("targets", "model_id", 0)),), table="targets")],
    # the household was an assembly_error (a TypeError sorting its classes)
    "household_targets: a row without asset_class": lambda b: [Corruption(
        "household_targets[0].asset_class=null", CELL,
        _set("household_targets", "asset_class", 0, None),
        bad={b.owner("household_targets", 0)}, table="household_targets")],
    # with no weight it counts for nothing: the household runs as before
    "household_targets: a classless row of weight 0": lambda b: [Corruption(
        "household_targets + (null, 0.0)", ROWS, _classless_row("household_targets", 0.0))],
    "targets: a classless row of weight 0": lambda b: [Corruption(
        "targets + (null, 0.0)", ROWS, _classless_row("targets", 0.0))],
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_pinned_corruptions(book, name):
    o = check(book, PINNED[name](book))
    assert o.problems == {}, f"exit {o.code}: {o.problems}"
