"""Product preferences (docs/data-contract.md, product_preferences): a household's own
order of the securities it buys for an asset class, by security or by vehicle, ahead
of its model's, honored in buys and never forcing a taxable sale of an equivalent.

Hand-solved households on a Parquet book written here, run through ``run_book``. The
model ``m`` is 50/50 equity/bonds and lists, for equity, the mutual fund A (rank 1)
and the ETF E (rank 2); for bonds the ETF BD. B is an ETF of the same wash group as A
that the model does not list. Nothing costs anything to trade (``cost_bps`` 0).

Each household is a taxable account holding A 50 x $100 at a basis of $60 (long-term,
a $2,000 gain) and BD 50 x $100, and $2,000 arrives as a contribution: V = $12,000,
so $1,000 goes to each class.

- no preference: buy 10 A (the model's primary) and 10 BD;
- preferring B: buy 10 B and 10 BD; A, now an acceptable equivalent at rank 2, is
  kept: selling it would save the preference's $0.0002 a dollar held ($1 on $5,000)
  and cost the tax on a $2,000 gain;
- preferring the vehicle ``etf``: E moves to rank 1 (A to 2), so buy 20 E ($50 each);
- preferring the vehicle ``direct_index``: no security the model lists for equity
  is one, an error for that household alone (``unmatched_preference``)."""

from __future__ import annotations

import os

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hearth.batch.config import RunConfig
from hearth.batch.run import run_book
from hearth.cluster.local import LocalExecutor
from hearth.io.households import households, preferred_ranks, reference
from hearth.io.read import open_book
from hearth.io.shards import prepare, read_shard
from hearth.io.validate import validate

DAY = "2026-11-20"
HOUSEHOLDS = ("NOPREF", "PREF_B", "PREF_ETF", "PREF_DI", "PREF_WRONG_CLASS", "PREF_GHOST_SEC")
PREFERENCES = [
    ("PREF_B", "eq", "B", None, 1),
    ("PREF_ETF", "eq", None, "etf", 1),
    ("PREF_DI", "eq", None, "direct_index", 1),
    ("PREF_WRONG_CLASS", "eq", "BD", None, 1),
    ("PREF_GHOST_SEC", "eq", "NOPE", None, 1),
    ("NOBODY", "eq", "B", None, 1),
]


def write_book(root: str, preferences: list[tuple]) -> str:
    os.makedirs(root, exist_ok=True)
    ids = list(HOUSEHOLDS)
    lots = [(f"{h}-{s}", f"A-{h}", s, 50.0, basis) for h in ids
            for s, basis in (("A", 3000.0), ("BD", 5000.0))]
    tables = {
        "households": {"household_id": ids, "model_id": ["m"] * len(ids),
                       "st_rate": [0.35] * len(ids), "lt_rate": [0.15] * len(ids),
                       "drift_threshold": [0.0] * len(ids)},
        "accounts": {"account_id": [f"A-{h}" for h in ids], "household_id": ids,
                     "account_type": ["taxable"] * len(ids), "cash": [0.0] * len(ids),
                     "contribution": [2000.0] * len(ids)},
        "lots": {"lot_id": [x[0] for x in lots], "account_id": [x[1] for x in lots],
                 "security_id": [x[2] for x in lots], "quantity": [x[3] for x in lots],
                 "cost_basis": [x[4] for x in lots],
                 "acquired_date": pa.array([np.datetime64("2023-03-01", "D").item()] * len(lots),
                                           pa.date32())},
        "securities": {"security_id": ["A", "B", "E", "BD"], "asset_class": ["eq", "eq", "eq", "bond"],
                       "price": [100.0, 100.0, 50.0, 100.0], "wash_group": ["AB", "AB", "E", "BD"],
                       "vehicle": ["mutual_fund", "etf", "etf", "etf"],
                       "cost_bps": [0.0] * 4},
        "targets": {"model_id": ["m", "m"], "asset_class": ["eq", "bond"], "weight": [0.5, 0.5]},
        "model_securities": {"model_id": ["m"] * 3, "asset_class": ["eq", "eq", "bond"],
                             "security_id": ["A", "E", "BD"],
                             "rank": pa.array([1, 2, 1], pa.int64())},
        "product_preferences": {
            "household_id": [p[0] for p in preferences], "asset_class": [p[1] for p in preferences],
            "security_id": pa.array([p[2] for p in preferences], pa.string()),
            "vehicle": pa.array([p[3] for p in preferences], pa.string()),
            "rank": pa.array([p[4] for p in preferences], pa.int64())},
    }
    for name, cols in tables.items():
        pq.write_table(pa.table(cols), os.path.join(root, f"{name}.parquet"))
    return root


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    base = tmp_path_factory.mktemp("preferences")
    book = write_book(str(base / "book"), PREFERENCES)
    out = str(base / "out")
    summary = run_book(book, out, DAY, RunConfig(), LocalExecutor(workers=1), progress=False)
    results = pq.read_table(os.path.join(out, "household_results", f"run_date={DAY}")).to_pylist()
    trades = pq.read_table(os.path.join(out, "trades", f"run_date={DAY}")).to_pylist()
    exceptions = pq.read_table(os.path.join(out, "exceptions", f"run_date={DAY}")).to_pylist()
    return {"book": book, "summary": summary, "results": {r["household_id"]: r for r in results},
            "trades": trades, "exceptions": exceptions}


def trades_of(night, hid: str) -> list[tuple[str, str, float]]:
    return sorted((t["side"], t["security_id"], round(t["quantity"], 6))
                  for t in night["trades"] if t["household_id"] == hid)


def test_without_a_preference_the_model_primary_is_bought(night):
    assert trades_of(night, "NOPREF") == [("buy", "A", 10.0), ("buy", "BD", 10.0)]
    assert night["results"]["NOPREF"]["status"] == "traded"


def test_a_preferred_security_is_bought_and_the_held_equivalent_kept(night):
    # B is not in the model: the preference makes it buyable for this household
    assert trades_of(night, "PREF_B") == [("buy", "B", 10.0), ("buy", "BD", 10.0)]
    r = night["results"]["PREF_B"]
    assert r["status"] == "traded" and r["realized_lt_gain"] == 0.0
    assert r["drift_after"] == pytest.approx(0.0, abs=1e-6)


def test_a_preferred_vehicle_reorders_the_model_list(night):
    assert trades_of(night, "PREF_ETF") == [("buy", "BD", 10.0), ("buy", "E", 20.0)]
    assert night["results"]["PREF_ETF"]["realized_lt_gain"] == 0.0


def test_bad_preferences_cost_only_their_household(night):
    res = night["results"]
    assert {h for h, r in res.items() if r["status"] == "error"} == {
        "PREF_DI", "PREF_WRONG_CLASS", "PREF_GHOST_SEC"}
    found = sorted((e["code"], e["household_id"], e["record_id"]) for e in night["exceptions"])
    assert found == [
        ("preference_class_mismatch", "PREF_WRONG_CLASS", "PREF_WRONG_CLASS/eq/BD/null"),
        ("unknown_household", None, "NOBODY/eq/B/null"),
        ("unknown_security", "PREF_GHOST_SEC", "PREF_GHOST_SEC/eq/NOPE/null"),
        ("unmatched_preference", "PREF_DI", "PREF_DI/eq/null/direct_index")]
    msg = {e["code"]: e["message"] for e in night["exceptions"]}
    assert msg["unmatched_preference"] == (
        "no security that model m lists for eq has vehicle 'direct_index' (securities.vehicle); "
        "fix the vehicle, name a security_id, or list such a security in model_securities")
    assert msg["preference_class_mismatch"].startswith("security BD is in asset class bond, not eq")
    assert night["summary"].extra["unkeyed_rows"] == {"product_preferences": 1}


def test_ranks_as_assembled(night, tmp_path):
    con = open_book(night["book"])
    validate(con, DAY)
    plan = prepare(con, str(tmp_path / "prep"), shard_size=100)
    ranks = {}
    for shard in plan.shards:
        data = read_shard(plan.root, shard, duckdb.connect())
        for item in households(data, np.datetime64(DAY, "D"), reference(data.tables, 5.0)):
            if item.household is not None:
                hh = item.household
                ranks[item.household_id] = dict(zip(hh.security_ids, hh.rank.tolist()))
    assert ranks == {"NOPREF": {"A": 1, "BD": 1, "E": 2},
                     "PREF_B": {"A": 2, "B": 1, "BD": 1, "E": 3},
                     "PREF_ETF": {"A": 2, "BD": 1, "E": 1}}


def test_preferred_ranks_orders_preferred_first_then_the_model():
    data_ref = reference({
        "securities": pa.table({
            "security_id": ["A", "B", "C", "D", "X"], "asset_class": ["eq"] * 4 + ["bond"],
            "price": [1.0] * 5, "wash_group": pa.array([None] * 5, pa.string()),
            "income_yield": [0.0] * 5, "qualified_fraction": [1.0] * 5,
            "tax_exempt_fraction": [0.0] * 5, "foreign_tax_fraction": [0.0] * 5,
            "cg_distribution": [0.0] * 5, "expected_return": [0.06] * 5,
            "sector": pa.array([None] * 5, pa.string()),
            "tags": pa.array([None] * 5, pa.list_(pa.string())),
            "cost_bps": pa.array([None] * 5, pa.float64()),
            "vehicle": ["mutual_fund", "etf", "etf", "mutual_fund", "etf"],
            "issuer": pa.array([None] * 5, pa.string())}),
        "targets": pa.table({"model_id": ["m"], "asset_class": ["eq"], "weight": [1.0]}),
        "model_securities": pa.table({"model_id": ["m"] * 4, "security_id": ["A", "B", "C", "X"],
                                      "rank": pa.array([1, 2, 3, 1], pa.int64())}),
        "menus": pa.table({"menu_id": pa.array([], pa.string()),
                           "security_id": pa.array([], pa.string())})}, 5.0)
    model = data_ref.model_ranks["m"]
    assert preferred_ranks(model, [], data_ref) == {"A": 1, "B": 2, "C": 3, "X": 1}
    # etf names B and C (in the model's order), the bond class is untouched
    assert preferred_ranks(model, [("eq", None, "etf", 1)], data_ref) == \
        {"B": 1, "C": 2, "A": 3, "X": 1}
    # D (not listed) first, then the etfs; a rank is a position, gaps close up
    assert preferred_ranks(model, [("eq", "D", None, 1), ("eq", None, "etf", 5)], data_ref) == \
        {"D": 1, "B": 2, "C": 3, "A": 4, "X": 1}
    # equal preference ranks: the model's order decides, a security it does not list last
    assert preferred_ranks(model, [("eq", "C", None, 1), ("eq", "D", None, 1)], data_ref) == \
        {"C": 1, "D": 2, "A": 3, "B": 4, "X": 1}
