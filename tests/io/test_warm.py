"""The warm state read back: both stages' bases, and state an older hearth wrote
(stage one's basis alone) still read, where it starts stage one warm."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from hearth.io.warm import read_warm
from hearth.io.write import WARM_SCHEMA

ROW = dict(household_id="H1", col_keys=["b\x1fA\x1fVTI"], col_status=bytes([1]),
           row_keys=["cash_balance\x1fA", "exposure\x1fstocks"], row_status=bytes([1, 0]))


def test_both_stages_bases_come_back(tmp_path):
    row = dict(ROW, location_col_keys=["s\x1fL1", "c\x1fA"], location_col_status=bytes([1, 1]),
               location_row_status=bytes([0, 0]))
    pq.write_table(pa.Table.from_pylist([row, dict(row, household_id="H9")], schema=WARM_SCHEMA),
                   tmp_path / "part-0.parquet")
    got = read_warm(duckdb.connect(), str(tmp_path), ["H1", "H2"])
    assert list(got) == ["H1"]  # only the households asked for
    w = got["H1"]
    assert w.col_keys == ("b\x1fA\x1fVTI",) and w.row_status.tolist() == [1, 0]
    loc = w.location()
    assert loc is not None
    assert loc.col_keys == ("s\x1fL1", "c\x1fA") and loc.col_status.tolist() == [1, 1]
    assert loc.row_keys == w.row_keys and loc.row_status.tolist() == [0, 0]


def test_state_without_the_location_basis_still_starts_stage_one(tmp_path):
    old = pa.schema([f for f in WARM_SCHEMA if not f.name.startswith("location_")])
    pq.write_table(pa.Table.from_pylist([ROW], schema=old), tmp_path / "part-0.parquet")
    got = read_warm(duckdb.connect(), str(tmp_path), ["H1"])
    assert got["H1"].col_keys == ("b\x1fA\x1fVTI",)
    assert got["H1"].location() is None


def test_unreadable_state_is_a_cold_start(tmp_path):
    pq.write_table(pa.table({"household_id": ["H1"], "something": [1]}), tmp_path / "part-0.parquet")
    assert read_warm(duckdb.connect(), str(tmp_path), ["H1"]) == {}
