"""Books at the edges: households with no accounts, only held-away assets, or
nothing to buy, run through the whole job without costing anyone else."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq

from hearth.batch.config import RunConfig
from hearth.batch.run import run_book
from hearth.cluster.local import LocalExecutor


def test_households_with_nothing_to_trade(tmp_path):
    root = tmp_path / "book"
    root.mkdir()
    tables = {
        "households": {"household_id": ["EMPTY", "AWAY", "OK"], "model_id": ["m"] * 3,
                       "st_rate": [0.3] * 3, "lt_rate": [0.2] * 3},
        "accounts": {"account_id": ["A-OK"], "household_id": ["OK"],
                     "account_type": ["taxable"], "cash": [10_000.0]},
        "lots": {"lot_id": pa.array([], pa.string()), "account_id": pa.array([], pa.string()),
                 "security_id": pa.array([], pa.string()), "quantity": pa.array([], pa.float64()),
                 "cost_basis": pa.array([], pa.float64()),
                 "acquired_date": pa.array([], pa.date32())},
        "securities": {"security_id": ["S", "B"], "asset_class": ["eq", "bond"],
                       "price": [100.0, 50.0]},
        "targets": {"model_id": ["m", "m"], "asset_class": ["eq", "bond"], "weight": [0.6, 0.4]},
        "model_securities": {"model_id": ["m", "m"], "asset_class": ["eq", "bond"],
                             "security_id": ["S", "B"], "rank": pa.array([1, 1], pa.int64())},
        "held_away": {"household_id": ["AWAY"], "asset_class": ["eq"], "value": [50_000.0]},
    }
    for name, cols in tables.items():
        pq.write_table(pa.table(cols), os.path.join(root, f"{name}.parquet"))
    out = tmp_path / "out"
    summary = run_book(str(root), str(out), "2026-11-20", RunConfig(), LocalExecutor(workers=1),
                       progress=False)
    res = pq.read_table(out / "household_results" / "run_date=2026-11-20").to_pydict()
    status = dict(zip(res["household_id"], res["status"]))
    assert status == {"EMPTY": "no_trade", "AWAY": "no_trade", "OK": "traded"}
    trades = pq.read_table(out / "trades" / "run_date=2026-11-20").to_pydict()
    bought = dict(zip(trades["security_id"], trades["notional"]))
    assert set(trades["household_id"]) == {"OK"}
    assert bought["S"] + bought["B"] <= 10_000.0 + 0.01
    assert summary.exit_code == 0
