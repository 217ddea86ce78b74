"""A small Parquet book kept in the repository with its expected outputs: any change
in behaviour shows up here as a diff of trades and results, compared with stated
tolerances (quantities and dollars to 1e-6 relative, a cent absolute).

Regenerate the expectations deliberately with ``HEARTH_UPDATE_GOLDEN=1 pytest
tests/batch/test_golden.py`` and review the diff like code."""

from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest

from hearth.batch.config import RunConfig
from hearth.batch.generate import DEFAULT_AS_OF
from hearth.batch.run import run_book
from hearth.cluster.local import LocalExecutor

HERE = os.path.join(os.path.dirname(__file__), "golden")
EXPECTED = os.path.join(HERE, "expected.json")
RESULT_COLUMNS = ("household_id", "status", "n_trades", "value", "drift_before", "drift_after",
                  "turnover", "realized_st_gain", "realized_lt_gain", "tax_due_estimate",
                  "tlh_losses", "tax_savings_estimate", "needs_review")
TRADE_COLUMNS = ("household_id", "account_id", "security_id", "side", "lot_id", "quantity",
                 "notional", "realized_gain", "term", "reason")


def _outputs(out: str) -> dict:
    def rows(table: str, cols: tuple[str, ...]) -> list[dict]:
        t = pq.read_table(os.path.join(out, table, f"run_date={DEFAULT_AS_OF}"))
        return t.select(list(cols)).to_pylist()

    return {"household_results": rows("household_results", RESULT_COLUMNS),
            "trades": rows("trades", TRADE_COLUMNS),
            "exceptions": rows("exceptions", ("source_table", "household_id", "record_id", "code"))}


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return b == pytest.approx(a, rel=1e-6, abs=0.01)
    return a == b


def test_golden_book(tmp_path):
    run_book(os.path.join(HERE, "book"), str(tmp_path), DEFAULT_AS_OF, RunConfig(shard_size=16),
             LocalExecutor(workers=1), progress=False)
    got = _outputs(str(tmp_path))
    if os.environ.get("HEARTH_UPDATE_GOLDEN"):
        with open(EXPECTED, "w") as f:
            json.dump(got, f, indent=1, sort_keys=True)
    with open(EXPECTED) as f:
        want = json.load(f)
    for table in ("household_results", "trades", "exceptions"):
        assert len(got[table]) == len(want[table]), table
        for g, w in zip(got[table], want[table]):
            diff = {k: (w[k], g[k]) for k in w if not _same(w[k], g[k])}
            assert not diff, f"{table} {w.get('household_id')}: {diff}"
