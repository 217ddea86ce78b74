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
    """Saved bases for these households (ids sorted, as a shard's are)."""
    pattern = os.path.join(root, "*.parquet")
    lo, hi = min(household_ids), max(household_ids)
    try:
        rows = con.execute(
            "SELECT household_id, col_keys, col_status, row_keys, row_status FROM read_parquet(?) "
            "WHERE household_id BETWEEN ? AND ?", [pattern, lo, hi]).fetchall()
    except duckdb.Error:  # state an older hearth wrote: a cold start, never a failure
        return {}
    wanted = set(household_ids)
    return {h: WarmStart(tuple(ck), np.frombuffer(c, dtype=np.int8), tuple(rk),
                         np.frombuffer(r, dtype=np.int8))
            for h, ck, c, rk, r in rows if h in wanted}
