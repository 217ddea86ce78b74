"""The warm-start state: per household, the final basis of its LP keyed by the
structure of its columns and rows, saved with a night's outputs and read back the
next night for the households of one shard only."""

from __future__ import annotations

import os

import duckdb
import numpy as np

from hearth.model.solve import WarmStart


def read_warm(con: duckdb.DuckDBPyConnection, root: str, household_ids: list[str]
              ) -> dict[str, WarmStart]:
    """Saved bases for these households (ids sorted, as a shard's are)."""
    pattern = os.path.join(root, "*.parquet")
    lo, hi = min(household_ids), max(household_ids)
    rows = con.execute(
        "SELECT household_id, structure, col_status, row_status FROM read_parquet(?) "
        "WHERE household_id BETWEEN ? AND ?", [pattern, lo, hi]).fetchall()
    wanted = set(household_ids)
    return {h: WarmStart(s, np.frombuffer(c, dtype=np.int8), np.frombuffer(r, dtype=np.int8))
            for h, s, c, r in rows if h in wanted}
