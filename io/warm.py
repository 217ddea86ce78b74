"""The warm-start state: per household, the first solve's basis keyed by the
stable identity of its columns and rows (``hearth.model.warm``), saved with a
night's outputs and read back the next night for the households of one shard only."""

from __future__ import annotations

import os

import duckdb
import numpy as np

from hearth.model.warm import WarmStart


def read_warm(con: duckdb.DuckDBPyConnection, root: str, household_ids: list[str]
              ) -> dict[str, WarmStart]:
    """Saved bases for these households (ids sorted, as a shard's are). State an
    older hearth wrote without the location stage's basis still starts stage one
    warm; state that cannot be read at all is a cold start, never a failure."""
    pattern = os.path.join(root, "*.parquet")
    lo, hi = min(household_ids), max(household_ids)
    wanted = set(household_ids)
    for location in ("location_col_keys, location_col_status, location_row_status",
                     "[]::VARCHAR[], ''::BLOB, ''::BLOB"):
        try:
            rows = con.execute(
                f"SELECT household_id, col_keys, col_status, row_keys, row_status, {location} "
                "FROM read_parquet(?) WHERE household_id BETWEEN ? AND ?",
                [pattern, lo, hi]).fetchall()
        except duckdb.Error:
            continue
        return {h: WarmStart(tuple(ck), np.frombuffer(c, dtype=np.int8), tuple(rk),
                             np.frombuffer(r, dtype=np.int8), tuple(lk),
                             np.frombuffer(lc, dtype=np.int8), np.frombuffer(lr, dtype=np.int8))
                for h, ck, c, rk, r, lk, lc, lr in rows if h in wanted}
    return {}
