"""Reading the contract through DuckDB and validating it, table by table."""

from __future__ import annotations

import os

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hearth.errors import InputError
from hearth.io.read import fingerprints, open_book
from hearth.io.validate import validate


def book(root, **overrides):
    """A valid two-household book; ``overrides`` replace whole tables (dicts of columns)."""
    tables = {
        "households": {"household_id": ["H1", "H2"], "model_id": ["m", "m"],
                       "st_rate": [0.37, 0.3], "lt_rate": [0.2, 0.15],
                       "extra_warehouse_col": ["x", "y"]},
        "accounts": {"account_id": ["A1", "A2"], "household_id": ["H1", "H2"],
                     "account_type": ["taxable", "roth"], "cash": [100.0, 50.0]},
        "lots": {"lot_id": ["L1", "L2"], "account_id": ["A1", "A2"], "security_id": ["S", "B"],
                 "quantity": [10.0, 5.0], "cost_basis": [900.0, 500.0],
                 "acquired_date": pa.array([19000, 19500], pa.date32())},
        "securities": {"security_id": ["S", "B"], "asset_class": ["eq", "bond"],
                       "price": [100.0, 100.0]},
        "targets": {"model_id": ["m", "m"], "asset_class": ["eq", "bond"], "weight": [0.6, 0.4]},
        "model_securities": {"model_id": ["m", "m"], "asset_class": ["eq", "bond"],
                             "security_id": ["S", "B"], "rank": pa.array([1, 1], pa.int64())},
    }
    tables.update(overrides)
    os.makedirs(root, exist_ok=True)
    for name, cols in tables.items():
        pq.write_table(pa.table(cols), os.path.join(root, f"{name}.parquet"))
    return str(root)


def exceptions(con):
    return con.execute('SELECT "table", code, household_id, account_id, record_id '
                       "FROM exceptions_found").fetchall()


def bad(con):
    return dict(con.execute("SELECT household_id, message FROM bad_households").fetchall())


def test_optional_columns_default_and_unknown_columns_are_ignored(tmp_path):
    con = open_book(book(tmp_path))
    row = con.execute("SELECT * FROM in_households WHERE household_id = 'H1'").fetchone()
    cols = [d[0] for d in con.description]
    got = dict(zip(cols, row))
    assert "extra_warehouse_col" not in got
    assert got["ytd_st_gain"] == 0.0 and got["tlh_enabled"] is True
    assert got["filing_status"] == "single" and got["tax_budget"] is None
    acct = con.execute("SELECT min_cash, max_cash, tradable FROM in_accounts").fetchall()
    assert acct == [(0.0, None, True), (0.0, None, True)]
    validate(con, "2026-11-20")
    assert exceptions(con) == []


def test_folder_of_hive_parts_reads_like_one_file(tmp_path):
    root = book(tmp_path / "single")
    lots = pq.read_table(os.path.join(root, "lots.parquet"))
    parts = tmp_path / "parts"
    book(parts)
    os.remove(parts / "lots.parquet")
    for i, (lo, hi) in enumerate([(0, 1), (1, 2)]):
        d = parts / "lots" / f"region={i}"
        d.mkdir(parents=True)
        pq.write_table(lots.slice(lo, hi - lo), d / "part-0.parquet")
    a = open_book(root).execute("SELECT * FROM in_lots ORDER BY lot_id").fetchall()
    b = open_book(str(parts)).execute("SELECT * FROM in_lots ORDER BY lot_id").fetchall()
    assert a == b
    assert fingerprints(open_book(root))["lots"] == fingerprints(open_book(str(parts)))["lots"]


def test_money_is_cast_to_double(tmp_path):
    root = book(tmp_path, securities={"security_id": ["S", "B"], "asset_class": ["eq", "bond"],
                                      "price": pa.array([100, 100], pa.int32())})
    con = open_book(root)
    assert con.execute("SELECT typeof(price) FROM in_securities LIMIT 1").fetchone() == ("DOUBLE",)


def test_missing_required_column_stops_the_run_naming_table_and_column(tmp_path):
    root = book(tmp_path, lots={"lot_id": ["L1"], "account_id": ["A1"], "security_id": ["S"],
                                "quantity": [1.0], "acquired_date": pa.array([1], pa.date32())})
    with pytest.raises(InputError, match="table lots: required column.*cost_basis"):
        open_book(root)


def test_missing_required_table_stops_the_run(tmp_path):
    root = book(tmp_path)
    os.remove(os.path.join(root, "targets.parquet"))
    with pytest.raises(InputError, match="table targets: not found"):
        open_book(root)


@pytest.mark.parametrize("table, cols, code, household", [
    ("households", {"household_id": ["H1", "H1", "H2"], "model_id": ["m"] * 3,
                    "st_rate": [0.3] * 3, "lt_rate": [0.2] * 3}, "duplicate_household_id", "H1"),
    ("households", {"household_id": ["H1", "H2"], "model_id": ["m", "m"],
                    "st_rate": [1.3, 0.3], "lt_rate": [0.2, 0.2]}, "invalid_rate", "H1"),
    ("households", {"household_id": ["H1", "H2"], "model_id": ["nope", "m"],
                    "st_rate": [0.3, 0.3], "lt_rate": [0.2, 0.2]}, "unknown_model", "H1"),
    ("households", {"household_id": ["H1", "H2"], "model_id": ["m", "m"], "st_rate": [0.3] * 2,
                    "lt_rate": [0.2] * 2, "filing_status": ["single", "married"]},
     "invalid_filing_status", "H2"),
    ("accounts", {"account_id": ["A1", "A2"], "household_id": ["H1", "H2"],
                  "account_type": ["taxable", "ira"], "cash": [1.0, 1.0]},
     "invalid_account_type", "H2"),
    ("accounts", {"account_id": ["A1", "A2"], "household_id": ["H1", "H2"],
                  "account_type": ["taxable", "roth"], "cash": [-1.0, 1.0]}, "negative_cash", "H1"),
    ("lots", {"lot_id": ["L1", "L1"], "account_id": ["A1", "A2"], "security_id": ["S", "B"],
              "quantity": [1.0, 1.0], "cost_basis": [1.0, 1.0],
              "acquired_date": pa.array([1, 1], pa.date32())}, "duplicate_lot_id", None),
    ("lots", {"lot_id": ["L1", "L2"], "account_id": ["A1", "A2"], "security_id": ["S", "B"],
              "quantity": [-3.0, 1.0], "cost_basis": [1.0, 1.0],
              "acquired_date": pa.array([1, 1], pa.date32())}, "negative_quantity", "H1"),
    ("lots", {"lot_id": ["L1", "L2"], "account_id": ["A1", "A2"], "security_id": ["S", "ZZZ"],
              "quantity": [1.0, 1.0], "cost_basis": [1.0, 1.0],
              "acquired_date": pa.array([1, 1], pa.date32())}, "unknown_security", "H2"),
    ("lots", {"lot_id": ["L1", "L2"], "account_id": ["A1", "A9"], "security_id": ["S", "B"],
              "quantity": [1.0, 1.0], "cost_basis": [1.0, 1.0],
              "acquired_date": pa.array([1, 1], pa.date32())}, "unknown_account", None),
    ("lots", {"lot_id": ["L1", "L2"], "account_id": ["A1", "A2"], "security_id": ["S", "B"],
              "quantity": [1.0, 1.0], "cost_basis": [1.0, 1.0],
              "acquired_date": pa.array([1, 30000], pa.date32())}, "future_acquired_date", "H2"),
    ("lots", {"lot_id": ["L1", "L2"], "account_id": ["A1", "A2"], "security_id": ["S", "B"],
              "quantity": [1.0, 1.0], "cost_basis": [1.0, 1.0],
              "acquired_date": pa.array([1, None], pa.date32())}, "missing_acquired_date", "H2"),
])
def test_validation_codes(tmp_path, table, cols, code, household):
    con = open_book(book(tmp_path, **{table: cols}))
    validate(con, "2026-11-20")
    found = exceptions(con)
    assert code in {e[1] for e in found if e[0] == table}, found
    if household is not None:
        assert household in bad(con)
        assert set(bad(con)) == {household}


def test_missing_price_costs_exactly_the_holders(tmp_path):
    root = book(tmp_path, securities={"security_id": ["S", "B"], "asset_class": ["eq", "bond"],
                                      "price": [100.0, None]},
                model_securities={"model_id": ["m"], "asset_class": ["eq"], "security_id": ["S"],
                                  "rank": pa.array([1], pa.int64())})
    con = open_book(root)
    validate(con, "2026-11-20")
    assert ("securities", "missing_price", None, None, "B") in exceptions(con)
    assert set(bad(con)) == {"H2"}  # H2 holds B; H1 does not
    assert "holds security B" in bad(con)["H2"]


def test_weights_not_summing_to_one_cost_the_model_households(tmp_path):
    root = book(tmp_path, targets={"model_id": ["m", "m"], "asset_class": ["eq", "bond"],
                                   "weight": [0.6, 0.3]})
    con = open_book(root)
    validate(con, "2026-11-20")
    assert ("targets", "weights_not_one", None, None, "m") in exceptions(con)
    assert set(bad(con)) == {"H1", "H2"}


def test_duplicate_lot_ids_are_exact_among_ids_whose_string_hashes_collide(tmp_path):
    # DuckDB's hash() of these two ids is the same (they differ in two aligned bytes):
    # the duplicate check's hash pre-filter must neither report them nor miss the one
    # id that really repeats.
    twins = ["H0000380-A0-L00847", "H0000387-A0-L00347"]
    con = duckdb.connect()
    assert con.execute("SELECT count(DISTINCT hash(x)) FROM unnest(?) t(x)", [twins]).fetchone() == (1,)
    ids = twins + ["L9", "L9"]
    root = book(tmp_path, lots={
        "lot_id": ids, "account_id": ["A1", "A1", "A1", "A2"], "security_id": ["S"] * 4,
        "quantity": [1.0] * 4, "cost_basis": [1.0] * 4,
        "acquired_date": pa.array([1] * 4, pa.date32())})
    con = open_book(root)
    validate(con, "2026-11-20")
    dup = sorted((e[2], e[3]) for e in con.execute(
        "SELECT \"table\", code, household_id, record_id FROM exceptions_found "
        "WHERE code = 'duplicate_lot_id'").fetchall())
    assert dup == [("H1", "L9"), ("H2", "L9")]
