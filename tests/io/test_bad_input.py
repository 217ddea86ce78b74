"""Bad input caught before it reaches a model: every float column's NaN and
infinity, out-of-range numbers, column type slips, rows without a key; and the HiGHS
adapter refusing a non-finite model instead of spinning. Real Parquet files (with
the statistics pyarrow writes), real DuckDB, real HiGHS."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hearth.errors import InputError
from hearth.io.contract import INPUT_TABLES
from hearth.io.read import open_book
from hearth.io.validate import unkeyed_rows, validate
from hearth.model.highs import Solver, SolverError
from hearth.model.lp import LinearProgram


def tables(**overrides) -> dict[str, dict]:
    """A valid book of two households (H1 holds S, H2 holds B; both on model m) with a
    row in every optional table; ``overrides`` replace whole tables."""
    t = {
        "households": {"household_id": ["H1", "H2"], "model_id": ["m", "m"],
                       "st_rate": [0.37, 0.3], "lt_rate": [0.2, 0.15]},
        "accounts": {"account_id": ["A1", "A2"], "household_id": ["H1", "H2"],
                     "account_type": ["taxable", "roth"], "cash": [100.0, 50.0]},
        "lots": {"lot_id": ["L1", "L2"], "account_id": ["A1", "A2"], "security_id": ["S", "B"],
                 "quantity": [10.0, 5.0], "cost_basis": [900.0, 500.0],
                 "acquired_date": pa.array([19000, 19500], pa.date32())},
        "securities": {"security_id": ["S", "B", "X"], "asset_class": ["eq", "bond", "eq"],
                       "price": [100.0, 100.0, 10.0],
                       "tags": pa.array([["fossil_fuel"], None, None], pa.list_(pa.string())),
                       "cost_bps": pa.array([None, 2.0, None], pa.float64())},
        "targets": {"model_id": ["m", "m", "n"], "asset_class": ["eq", "bond", "eq"],
                    "weight": [0.6, 0.4, 1.0]},
        "model_securities": {"model_id": ["m", "m", "n"], "asset_class": ["eq", "bond", "eq"],
                             "security_id": ["S", "B", "X"],
                             "rank": pa.array([1, 1, 1], pa.int64())},
        "household_targets": {"household_id": ["H2", "H2"], "asset_class": ["eq", "bond"],
                              "weight": [0.5, 0.5]},
        "transactions": {"account_id": ["A1"], "security_id": ["S"],
                         "trade_date": pa.array([20400], pa.date32()), "side": ["sell"],
                         "quantity": [1.0], "realized_gain": [-10.0]},
        "held_away": {"household_id": ["H1"], "asset_class": ["bond"], "value": [1000.0]},
    }
    t.update(overrides)
    return t


def write(root, t: dict[str, dict]) -> str:
    os.makedirs(root, exist_ok=True)
    for name, cols in t.items():
        pq.write_table(pa.table(cols), os.path.join(root, f"{name}.parquet"))
    return str(root)


def found(con) -> list[tuple]:
    return con.execute('SELECT "table", code, household_id, account_id, record_id, message '
                       "FROM exceptions_found ORDER BY ALL").fetchall()


def bad(con) -> set[str]:
    return {r[0] for r in con.execute("SELECT household_id FROM bad_households").fetchall()}


def checked(root) -> tuple[list[tuple], set[str]]:
    con = open_book(root)
    validate(con, "2026-11-20")
    return found(con), bad(con)


# the household each table's first row belongs to (None: a shared table)
OWNER = {"households": {"H1"}, "accounts": {"H1"}, "lots": {"H1"},
         "securities": {"H1", "H2"},  # S: held by H1, listed by model m (H1 and H2)
         "targets": {"H1", "H2"}, "household_targets": {"H2"}, "transactions": {"H1"},
         "held_away": {"H1"}}
FLOAT_COLUMNS = [(t.name, c.name) for t in INPUT_TABLES.values() for c in t.columns
                 if c.sql_type == "DOUBLE" and t.name in OWNER]


def test_the_base_book_is_clean(tmp_path):
    assert checked(write(tmp_path, tables())) == ([], set())


@pytest.mark.parametrize("table, column, value", [
    (t, c, (math.nan, math.inf, -math.inf)[i % 3]) for i, (t, c) in enumerate(FLOAT_COLUMNS)])
def test_every_non_finite_number_is_an_exception_of_its_owner(tmp_path, table, column, value):
    t = tables()
    cols = dict(t[table])
    n = len(next(iter(cols.values())))
    old = cols.get(column)
    values = (old.to_pylist() if isinstance(old, pa.Array) else list(old)) if old is not None \
        else [None] * n
    values[0] = value
    cols[column] = pa.array(values, pa.float64())  # pyarrow's statistics leave the NaN out
    t[table] = cols
    exc, households = checked(write(tmp_path, t))
    hits = [e for e in exc if e[1] == "non_finite_number"]
    assert len(hits) == 1, exc
    assert hits[0][0] == table and f"{column}=" in hits[0][5]
    assert households == OWNER[table]


def test_nan_survives_duckdb_statistics_that_leave_it_out(tmp_path):
    """pyarrow writes min/max without the NaN, and DuckDB folds ``isnan`` and range
    comparisons from them (``isnan(x)`` is false, ``x < 1`` is true for the NaN):
    the finiteness check must not depend on either."""
    t = tables(households={"household_id": [f"H{i}" for i in range(1, 9)],
                           "model_id": ["m"] * 8, "st_rate": [0.3] * 7 + [math.nan],
                           "lt_rate": [0.2] * 8})
    root = write(tmp_path, t)
    con = open_book(root)
    assert con.execute("SELECT count(*) FROM in_households WHERE isnan(st_rate)").fetchone() \
        in [(0,), (1,)]  # whichever DuckDB does, validation below must see it
    validate(con, "2026-11-20")
    assert ("households", "non_finite_number", "H8") in {e[:3] for e in found(con)}
    assert "H8" in bad(con)


@pytest.mark.parametrize("table, column, value, code, owners", [
    ("households", "st_rate", 1.5, "invalid_rate", {"H1"}),
    ("households", "ytd_st_gain", 1e300, "implausible_amount", {"H1"}),
    ("households", "tax_budget", -5.0, "invalid_tax_budget", {"H1"}),
    ("accounts", "cash", 1e15, "implausible_amount", {"H1"}),
    ("lots", "quantity", 0.0, "negative_quantity", {"H1"}),
    ("securities", "price", 1e300, "implausible_price", {"H1", "H2"}),
    ("securities", "income_yield", 1.5, "invalid_income_yield", {"H1", "H2"}),
    ("securities", "cg_distribution", -0.01, "invalid_cg_distribution", {"H1", "H2"}),
    ("securities", "expected_return", -2.0, "invalid_expected_return", {"H1", "H2"}),
    ("securities", "cost_bps", 5000.0, "invalid_cost_bps", {"H1", "H2"}),
    ("securities", "qualified_fraction", 1.2, "invalid_qualified_fraction", {"H1", "H2"}),
    ("securities", "foreign_tax_fraction", -0.1, "invalid_foreign_tax_fraction", {"H1", "H2"}),
    ("targets", "weight", -0.2, "invalid_weight weights_not_one", {"H1", "H2"}),
    ("transactions", "realized_gain", -1e13, "implausible_amount", {"H1"}),
    ("held_away", "value", -1.0, "invalid_held_away", {"H1"}),
])
def test_out_of_range_numbers_have_their_own_codes(tmp_path, table, column, value, code, owners):
    t = tables()
    cols = dict(t[table])
    old = cols.get(column)
    n = len(next(iter(cols.values())))
    values = (old.to_pylist() if isinstance(old, pa.Array) else list(old)) if old is not None \
        else [None] * n
    values[0] = value
    cols[column] = pa.array(values, pa.float64())
    t[table] = cols
    exc, households = checked(write(tmp_path, t))
    assert [e[1] for e in exc] == code.split(), exc
    assert exc[0][0] == table and f"{column} " in exc[0][5]
    assert households == owners


def test_security_tax_attributes_name_the_security_and_cost_its_holders(tmp_path):
    """qualified_fraction + tax_exempt_fraction > 1 on X (no lots; only model n lists
    it, and nobody is on n) costs no one; on S it costs the holder H1 and H2, whose
    model m lists S."""
    t = tables()
    sec = dict(t["securities"], qualified_fraction=[1.0, 0.0, 0.7],
               tax_exempt_fraction=[0.0, 1.0, 0.6])
    exc, households = checked(write(tmp_path / "x", dict(t, securities=sec)))
    assert [(e[1], e[4]) for e in exc] == [("income_fractions_exceed_one", "X")]
    assert "security X" in exc[0][5] and "0.7" in exc[0][5] and "0.6" in exc[0][5]
    assert households == set()
    sec = dict(sec, tax_exempt_fraction=[0.5, 1.0, 0.0])
    exc, households = checked(write(tmp_path / "s", dict(t, securities=sec)))
    assert [(e[1], e[4]) for e in exc] == [("income_fractions_exceed_one", "S")]
    assert households == {"H1", "H2"}


# -- column types ---------------------------------------------------------------------------

def test_tags_as_a_plain_string_column_cost_only_the_tagged_securities(tmp_path):
    """The export slip of the issue: tags written as 'fossil_fuel' instead of a list.
    DuckDB raised ConversionException for the whole run; now S (the one tagged
    security) gets invalid_type and only the households that depend on S stop."""
    t = tables()
    t["securities"] = dict(t["securities"], tags=["fossil_fuel", None, None])
    exc, households = checked(write(tmp_path, t))
    assert [e[:5] for e in exc] == [("securities", "invalid_type", None, None, "S")]
    assert "tags 'fossil_fuel'" in exc[0][5] and "VARCHAR[]" in exc[0][5]
    assert households == {"H1", "H2"}
    # a string column that holds lists in DuckDB's text form reads as lists
    t["securities"] = dict(t["securities"], tags=["[fossil_fuel, tobacco]", None, None])
    con = open_book(write(tmp_path / "text", t))
    assert con.execute("SELECT tags FROM in_securities WHERE security_id = 'S'").fetchone() == (
        ["fossil_fuel", "tobacco"],)


def test_numbers_as_strings_parse_where_they_can_and_are_exceptions_where_not(tmp_path):
    t = tables()
    t["securities"] = dict(t["securities"], cost_bps=["7", "2 bps", None])
    t["households"] = dict(t["households"], tax_budget=["1000", "$2,000"])
    con = open_book(write(tmp_path, t))
    validate(con, "2026-11-20")
    assert {e[:5] for e in found(con)} == {
        ("securities", "invalid_type", None, None, "B"),
        ("households", "invalid_type", "H2", None, "H2")}
    assert con.execute("SELECT cost_bps FROM in_securities WHERE security_id = 'S'"
                       ).fetchone() == (7.0,)
    assert bad(con) == {"H1", "H2"}  # model m (both households) lists B


def test_wrong_types_that_read_losslessly_are_accepted(tmp_path):
    t = tables()
    t["lots"] = dict(t["lots"], acquired_date=["2022-01-08", "2023-05-23"])
    t["accounts"] = dict(t["accounts"], tradable=pa.array([1, 0], pa.int64()),
                         cash=pa.array([100, 50], pa.int32()))
    con = open_book(write(tmp_path, t))
    validate(con, "2026-11-20")
    assert found(con) == []
    assert con.execute("SELECT tradable, cash FROM in_accounts ORDER BY account_id"
                       ).fetchall() == [(True, 100.0), (False, 50.0)]


def test_a_fractional_rank_and_a_list_sector_are_type_exceptions(tmp_path):
    t = tables()
    t["model_securities"] = dict(t["model_securities"], rank=[1.0, 1.5, 1.0])
    t["securities"] = dict(t["securities"], sector=pa.array([["energy"], None, None],
                                                            pa.list_(pa.string())))
    exc, households = checked(write(tmp_path, t))
    assert {(e[0], e[1], e[4]) for e in exc} == {
        ("model_securities", "invalid_type", "m/B"), ("securities", "invalid_type", "S")}
    assert households == {"H1", "H2"}


def test_a_required_column_of_an_unusable_type_stops_the_run_naming_it(tmp_path):
    t = tables()
    t["accounts"] = dict(t["accounts"], household_id=pa.array([["H1"], ["H2"]],
                                                             pa.list_(pa.string())))
    with pytest.raises(InputError, match=r"table accounts: column household_id is VARCHAR\[\], "
                                         r"expected a string"):
        open_book(write(tmp_path, t))


# -- rows without a key ---------------------------------------------------------------------

@pytest.mark.parametrize("missing", [None, ""], ids=["null", "empty"])
def test_a_household_row_without_an_id_is_reported_and_counted(tmp_path, missing):
    t = tables()
    t["households"] = dict(t["households"], household_id=["H1", missing])
    con = open_book(write(tmp_path, t))
    validate(con, "2026-11-20")
    exc = found(con)
    keyless = [e for e in exc if e[1] == "missing_household_id"]
    assert len(keyless) == 1 and keyless[0][2] is None
    assert "model_id 'm'" in keyless[0][5]
    # H2's account and custom targets now point at no household
    assert ("accounts", "unknown_household", None, "A2", "A2") in {e[:5] for e in exc}
    assert unkeyed_rows(con) == {"accounts": 1, "household_targets": 2, "households": 1}
    assert bad(con) == set()  # H1 is untouched


# -- the solver adapter ---------------------------------------------------------------------

def _lp(cost: list[float], a: list[float]) -> LinearProgram:
    """min cost.x, 0 <= x <= 10, x0 + x1 <= 5, x0 - x1 >= 0."""
    return LinearProgram(
        cost=np.array(cost), lower=np.zeros(2), upper=np.full(2, 10.0),
        row_lower=np.array([-np.inf, 0.0]), row_upper=np.array([5.0, np.inf]),
        a_start=np.array([0, 2, 4], dtype=np.int32), a_index=np.array([0, 1, 0, 1], dtype=np.int32),
        a_value=np.array(a), integrality=None, layout=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("cost, a, what", [
    ([math.nan, -1.0], [1.0, 1.0, 1.0, -1.0], "costs"),
    ([1.0, -math.inf], [1.0, 1.0, 1.0, -1.0], "costs"),
    ([1.0, -1.0], [1.0, math.nan, 1.0, -1.0], "matrix values"),
])
def test_the_adapter_refuses_non_finite_models(cost, a, what):
    s = Solver(time_limit=1.0)
    with pytest.raises(SolverError, match=f"non-finite or out-of-range {what}"):
        s.load(_lp(cost, a))
    s.load(_lp([1.0, -1.0], [1.0, 1.0, 1.0, -1.0]))  # the instance is still usable
    assert s.solve().status == "optimal"
    with pytest.raises(SolverError, match="costs"):
        s.set_costs(np.array([0]), np.array([math.nan]))
    with pytest.raises(SolverError, match="column bounds"):
        s.set_bounds(np.array([0]), np.array([math.nan]), np.array([1.0]))


def test_a_nan_cost_ends_in_seconds_not_never():
    """HiGHS 1.16 loops forever on a NaN cost, deaf to time_limit and callbacks, which
    is how one NaN st_rate hung the night. A child process, so a regression fails
    this test instead of hanging the suite."""
    code = textwrap.dedent("""
        import math, numpy as np
        from hearth.model.highs import Solver, SolverError
        from hearth.model.lp import LinearProgram
        lp = LinearProgram(cost=np.array([math.nan, -1.0]), lower=np.zeros(2),
                           upper=np.full(2, 10.0), row_lower=np.array([-np.inf, 0.0]),
                           row_upper=np.array([5.0, np.inf]),
                           a_start=np.array([0, 2, 4], dtype=np.int32),
                           a_index=np.array([0, 1, 0, 1], dtype=np.int32),
                           a_value=np.array([1.0, 1.0, 1.0, -1.0]), integrality=None,
                           layout=None)
        s = Solver(time_limit=1.0)
        try:
            s.load(lp)
            print(s.solve().status)
        except SolverError:
            print("refused")
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stdout.strip().splitlines()[-1] == "refused", p.stderr


def test_an_id_shared_by_two_households_costs_both(tmp_path):
    """any_value() picked one of them before; the other ran with a lot or an account
    that was not its own."""
    t = tables()
    t["accounts"] = dict(t["accounts"], account_id=["A1", "A1"])
    exc, households = checked(write(tmp_path / "a", t))
    assert {(e[1], e[2]) for e in exc if e[1] == "duplicate_account_id"} == {
        ("duplicate_account_id", "H1"), ("duplicate_account_id", "H2")}
    assert households == {"H1", "H2"}
    t = tables()
    t["lots"] = dict(t["lots"], lot_id=["L1", "L1"])
    exc, households = checked(write(tmp_path / "l", t))
    assert sorted(e[2] for e in exc if e[1] == "duplicate_lot_id") == ["H1", "H2"]
    assert households == {"H1", "H2"}


def test_a_bad_security_costs_households_that_only_traded_it(tmp_path):
    """H2 holds B but sold S last month: S's NaN price reaches its wash-sale history."""
    t = tables(transactions={"account_id": ["A2"], "security_id": ["X"],
                             "trade_date": pa.array([20400], pa.date32()), "side": ["sell"],
                             "quantity": [1.0], "realized_gain": [-10.0]})
    t["securities"] = dict(t["securities"], price=[100.0, 100.0, math.nan])
    exc, households = checked(write(tmp_path, t))
    assert [(e[1], e[4]) for e in exc] == [("non_finite_number", "X")]
    assert households == {"H2"}


def test_a_corrupt_data_page_stops_the_run_naming_the_table(tmp_path):
    """The footer reads (so the columns are known) but the data does not: exit 2 with
    the table's name, not DuckDB's raw error."""
    root = write(tmp_path, tables())
    path = os.path.join(root, "lots.parquet")
    pq.write_table(pa.table({"lot_id": [f"L{i}" for i in range(500)],
                             "account_id": ["A1"] * 500, "security_id": ["S"] * 500,
                             "quantity": [1.0] * 500, "cost_basis": [1.0] * 500,
                             "acquired_date": pa.array([19000] * 500, pa.date32())}), path)
    data = bytearray(open(path, "rb").read())
    data[20:2000] = b"\xff" * 1980
    open(path, "wb").write(bytes(data))
    con = open_book(root)
    with pytest.raises(InputError, match=r"table lots: its data .* cannot be read"):
        validate(con, "2026-11-20")


def test_money_within_a_cent_below_zero_is_float_noise_read_as_zero(tmp_path):
    # Before: a loss carryforward of -2.3e-13 from an upstream sum made the household
    # an error for a year. Within a cent below zero it is read as 0; beyond, an error.
    from hearth.io.households import households, reference
    from hearth.io.shards import prepare, read_shard

    t = tables()
    t["households"] = dict(t["households"], loss_carryforward_lt=[-2.3e-13, -0.5])
    t["accounts"] = dict(t["accounts"], cash=[-1e-9, 50.0])
    root = write(tmp_path / "book", t)
    con = open_book(root)
    validate(con, "2026-11-20")
    assert [r[1] for r in found(con)] == ["negative_carryforward"]  # only H2's -$0.50
    assert bad(con) == {"H2"}
    prep = str(tmp_path / "prep")
    plan = prepare(con, prep, 10)
    got = {}
    for shard in plan.shards:
        data = read_shard(prep, shard)
        for item in households(data, np.datetime64("2026-11-20"), reference(data.tables, 5.0)):
            got[item.household_id] = item.household
    h1 = got["H1"]
    assert h1 is not None and h1.loss_carryforward_lt == 0.0 and h1.cash[0] == 0.0
