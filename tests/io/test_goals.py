"""goals and goal_targets (contract 2.1, docs/data-contract.md): validation codes with
their records and the households they cost, assembly into Household fields through
real open/validate/shard/assemble, a run_book night of a hand-solved book (goal
trades, goal_drift_before/after, a bad goal row costing only its household), an
empty table changing nothing, and the realistic generator's goals."""

from __future__ import annotations

import os

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hearth.batch.config import RunConfig
from hearth.batch.generate import generate
from hearth.batch.run import run_book
from hearth.cluster.local import LocalExecutor
from hearth.io.households import households, reference
from hearth.io.read import open_book
from hearth.io.shards import prepare, read_shard
from hearth.io.validate import unkeyed_rows, validate

RUN = "2027-01-04"


def goal_table(rows: list[dict]) -> pa.Table:
    return pa.table({
        "goal_id": pa.array([r.get("goal_id") for r in rows], pa.string()),
        "household_id": pa.array([r.get("household_id") for r in rows], pa.string()),
        "account_id": pa.array([r.get("account_id") for r in rows], pa.string()),
        "model_id": pa.array([r.get("model_id") for r in rows], pa.string()),
        "horizon_date": pa.array([None if r.get("horizon_date") is None
                                  else np.datetime64(r["horizon_date"], "D").item()
                                  for r in rows], pa.date32())})


def weights_table(rows: list[tuple]) -> pa.Table:
    return pa.table({"goal_id": pa.array([r[0] for r in rows], pa.string()),
                     "asset_class": pa.array([r[1] for r in rows], pa.string()),
                     "weight": pa.array([r[2] for r in rows], pa.float64())})


def book(root, goals: list[dict] | None, weights: list[tuple] | None = None) -> str:
    """H1 and H2 alike: a taxable account T ($60k EQ, $40k BD) and a 529 E ($50k EQ,
    $50k BD), all at basis, no trading cost, model 'blend' 55/45 (the household is at
    its target). H3: one taxable account, for bad rows. Models 'retire' 80/20,
    'college' 30/70, and 'glide' with a path from 80/20 on 2027-01-01 to 40/60 on
    2028-01-01."""
    hh = ["H1", "H2", "H3"]
    lot_acct = ["H1-T", "H1-T", "H1-E", "H1-E", "H2-T", "H2-T", "H2-E", "H2-E", "H3-T"]
    tables = {
        "households": {"household_id": hh, "model_id": ["blend"] * 3, "st_rate": [0.35] * 3,
                       "lt_rate": [0.15] * 3},
        "accounts": {"account_id": ["H1-T", "H1-E", "H2-T", "H2-E", "H3-T"],
                     "household_id": ["H1", "H1", "H2", "H2", "H3"],
                     "account_type": ["taxable", "education", "taxable", "education", "taxable"],
                     "cash": [0.0] * 5},
        "lots": {"lot_id": [f"{a}-{s}" for a, s in zip(lot_acct, ["EQ", "BD"] * 4 + ["EQ"])],
                 "account_id": lot_acct, "security_id": ["EQ", "BD"] * 4 + ["EQ"],
                 "quantity": [600.0, 400.0, 500.0, 500.0] * 2 + [100.0],
                 "cost_basis": [60_000.0, 40_000.0, 50_000.0, 50_000.0] * 2 + [10_000.0],
                 "acquired_date": pa.array([18_000] * 9, pa.date32())},
        "securities": {"security_id": ["EQ", "BD"], "asset_class": ["equity", "bond"],
                       "price": [100.0, 100.0], "cost_bps": [0.0, 0.0]},
        "targets": {"model_id": ["blend", "blend", "retire", "retire", "college", "college",
                                 "glide", "glide"],
                    "asset_class": ["equity", "bond"] * 4,
                    "weight": [0.55, 0.45, 0.8, 0.2, 0.3, 0.7, 0.8, 0.2]},
        "model_securities": {"model_id": ["blend", "blend"], "asset_class": ["equity", "bond"],
                             "security_id": ["EQ", "BD"], "rank": pa.array([1, 1], pa.int64())},
        "glide_paths": {"model_id": ["glide"] * 4, "household_id": pa.nulls(4, pa.string()),
                        "effective_date": pa.array([np.datetime64(d, "D").item() for d in (
                            "2027-01-01", "2027-01-01", "2028-01-01", "2028-01-01")],
                            pa.date32()),
                        "asset_class": ["equity", "bond"] * 2, "weight": [0.8, 0.2, 0.4, 0.6]},
    }
    os.makedirs(root, exist_ok=True)
    for name, cols in tables.items():
        pq.write_table(pa.table(cols), os.path.join(root, f"{name}.parquet"))
    if goals is not None:
        pq.write_table(goal_table(goals), os.path.join(root, "goals.parquet"))
    if weights is not None:
        pq.write_table(weights_table(weights), os.path.join(root, "goal_targets.parquet"))
    return str(root)


GOOD = [{"goal_id": "retirement", "household_id": "H1", "account_id": "H1-T",
         "model_id": "retire"},
        {"goal_id": "tuition", "household_id": "H1", "account_id": "H1-E",
         "model_id": "college"}]


def checked(root: str) -> tuple[list[tuple], set[str], dict[str, int]]:
    con = open_book(root)
    validate(con, RUN)
    found = con.execute('SELECT "table", code, household_id, account_id, record_id, message '
                        "FROM exceptions_found ORDER BY ALL").fetchall()
    bad = {r[0] for r in con.execute("SELECT household_id FROM bad_households").fetchall()}
    return found, bad, unkeyed_rows(con)


def test_good_goals_have_no_exceptions(tmp_path):
    assert checked(book(tmp_path, GOOD, [])) == ([], set(), {})


H3_GOAL = {"goal_id": "home", "household_id": "H3", "account_id": "H3-T", "model_id": "retire"}


@pytest.mark.parametrize("goals, weights, table, code, household, account, record, costs, "
                         "unkeyed, says", [
    # an account of another household
    ([{**H3_GOAL, "account_id": "H1-T"}], [], "goals", "unknown_account", "H3", "H1-T",
     "home/H1-T", {"H3"}, {}, "account 'H1-T' is not an account of household 'H3'"),
    ([{**H3_GOAL, "account_id": None}], [], "goals", "unknown_account", "H3", None,
     "home/null", {"H3"}, {}, "account_id is missing"),
    # an account in two goals
    ([H3_GOAL, {**H3_GOAL, "goal_id": "legacy"}], [], "goals", "duplicate_goal_account", "H3",
     "H3-T", "home+legacy/H3-T", {"H3"}, {}, "belongs to at most one goal"),
    ([{**H3_GOAL, "model_id": "nope"}], [], "goals", "unknown_model", "H3", "H3-T",
     "home/H3-T", {"H3"}, {}, "model_id 'nope' has no rows in targets"),
    ([{**H3_GOAL, "model_id": None}], [], "goals", "missing_goal_weights", "H3", "H3-T",
     "home/H3-T", {"H3"}, {}, "neither a model_id nor rows in goal_targets"),
    ([{**H3_GOAL, "goal_id": None}], [], "goals", "invalid_goal", "H3", "H3-T", "null/H3-T",
     {"H3"}, {}, "goal_id is missing"),
    ([{**H3_GOAL, "household_id": "H9"}], [], "goals", "unknown_household", None, "H3-T",
     "home/H3-T", set(), {"goals": 1}, "household_id 'H9' is not in households"),
    # custom weights that do not sum to 1 (they replace the model, which is then unused)
    ([H3_GOAL], [("home", "bond", 0.5), ("home", "cash", 0.4)], "goal_targets",
     "weights_not_one", "H3", None, "home", {"H3"}, {}, "weights of goal home sum to 0.9"),
    ([H3_GOAL], [("elsewhere", "bond", 1.0)], "goal_targets", "unknown_goal", None, None,
     "elsewhere/bond", set(), {"goal_targets": 1}, "goal_id 'elsewhere' is not in goals"),
])
def test_bad_goals_are_exceptions_of_their_record(tmp_path, goals, weights, table, code,
                                                  household, account, record, costs,
                                                  unkeyed, says):
    found, bad, unkeyed_found = checked(book(tmp_path, GOOD + goals, weights))
    assert [(t, c, h, a, r) for t, c, h, a, r, _ in found] == \
        [(table, code, household, account, record)], found
    assert says in found[0][5], found[0][5]
    assert bad == costs
    assert unkeyed_found == unkeyed


def test_a_weight_out_of_range_costs_the_goal_household(tmp_path):
    found, bad, _ = checked(book(tmp_path, GOOD + [H3_GOAL], [("home", "bond", 1.5),
                                                             ("home", "cash", -0.5)]))
    assert [(t, c, h, r) for t, c, h, _, r, _ in found] == [
        ("goal_targets", "invalid_weight", "H3", "home/bond"),
        ("goal_targets", "invalid_weight", "H3", "home/cash")]
    assert "weight 1.5 must be in [0, 1]" in found[0][5]
    assert bad == {"H3"}


def test_rows_of_one_goal_must_agree(tmp_path):
    """A goal over two accounts has two rows; they name one model and one horizon."""
    rows = [{"goal_id": "both", "household_id": "H1", "account_id": "H1-T",
             "model_id": "retire"},
            {"goal_id": "both", "household_id": "H1", "account_id": "H1-E",
             "model_id": "college"}]
    found, bad, _ = checked(book(tmp_path, rows, []))
    assert [(t, c, h, r) for t, c, h, _, r, _ in found] == \
        [("goals", "inconsistent_goal", "H1", "both/null")]
    assert bad == {"H1"}


def test_goals_reach_the_household(tmp_path):
    """open, validate, shard and assemble: H1's goals as Household fields; a goal on a
    model with a glide path takes the path's weights on the run date (80/20 on
    2027-01-01 to 40/60 on 2028-01-01: 2027-01-04 is 3/365 of the way) and no horizon,
    goal_targets' weights win over the model, and a class only a goal names (cash)
    joins the household's classes."""
    goals = [{"goal_id": "a-glide", "household_id": "H1", "account_id": "H1-T",
              "model_id": "glide", "horizon_date": "2030-06-01"},
             {"goal_id": "b-own", "household_id": "H1", "account_id": "H1-E",
              "model_id": "retire", "horizon_date": "2035-09-01"},
             {"goal_id": "c-model", "household_id": "H2", "account_id": "H2-E",
              "model_id": "college"}]
    root = book(tmp_path / "book", goals, [("b-own", "bond", 0.5), ("b-own", "cash", 0.5)])
    con = open_book(root)
    validate(con, RUN)
    plan = prepare(con, str(tmp_path / "prep"), shard_size=1)
    got = {}
    for shard in plan.shards:
        data = read_shard(plan.root, shard, duckdb.connect())
        for item in households(data, np.datetime64(RUN, "D"), reference(data.tables, 5.0)):
            assert item.household is not None, item.error
            got[item.household_id] = item.household
    h1, h2, h3 = got["H1"], got["H2"], got["H3"]
    assert h1.classes == ("bond", "cash", "equity")
    assert h1.goal_ids == ("a-glide", "b-own")
    assert h1.account_ids == ("H1-E", "H1-T")
    assert h1.goal_account.tolist() == [1, 0]
    eq = 0.8 - 0.4 * 3 / 365
    np.testing.assert_allclose(h1.goal_target, [[1 - eq, 0.0, eq], [0.5, 0.5, 0.0]])
    assert [str(d) for d in h1.goal_horizon] == ["NaT", "2035-09-01"]
    assert h2.goal_ids == ("c-model",) and h2.goal_account.tolist() == [0, -1]
    np.testing.assert_allclose(h2.goal_target, [[0.7, 0.0, 0.3]])  # bond, cash, equity
    assert [str(d) for d in h2.goal_horizon] == ["NaT"]
    assert h3.goal_ids == () and h3.goal_account.tolist() == [-1]


def _night(root: str, out: str) -> tuple[dict[str, dict], list[dict], list[dict]]:
    run_book(root, out, RUN, RunConfig(), LocalExecutor(workers=1), progress=False)
    part = f"run_date={RUN}"
    results = pq.read_table(os.path.join(out, "household_results", part)).to_pylist()
    trades = pq.read_table(os.path.join(out, "trades", part)).to_pylist()
    exc = pq.read_table(os.path.join(out, "exceptions", part)).to_pylist()
    return {r["household_id"]: r for r in results}, trades, exc


def test_a_night_trades_each_goal_to_its_weights_and_a_bad_row_costs_its_household(tmp_path):
    """H1: T in 'retirement' (80/20), E in 'tuition' (30/70): T sells 200 BD and buys
    200 EQ, E sells 200 EQ and buys 200 BD; the household stays at its blend (55/45)
    and each goal ends at its weights (goal drift 0.4 -> 0). H2, the same accounts
    without goals, is at its target: no trade. H3's goal names a model nobody has:
    H3 alone is an error."""
    bad = {"goal_id": "home", "household_id": "H3", "account_id": "H3-T", "model_id": "nope"}
    results, trades, exc = _night(book(tmp_path / "book", GOOD + [bad], []),
                                  str(tmp_path / "out"))
    h1, h2, h3 = results["H1"], results["H2"], results["H3"]
    assert h1["status"] == "traded", h1["message"]
    assert sorted((t["household_id"], t["account_id"], t["security_id"], t["side"],
                   t["quantity"], t["reason"]) for t in trades) == [
        ("H1", "H1-E", "BD", "buy", 200.0, "rebalance"),
        ("H1", "H1-E", "EQ", "sell", 200.0, "rebalance"),
        ("H1", "H1-T", "BD", "sell", 200.0, "rebalance"),
        ("H1", "H1-T", "EQ", "buy", 200.0, "rebalance")]
    assert h1["drift_before"] == pytest.approx(0.0, abs=1e-9)
    assert h1["drift_after"] == pytest.approx(0.0, abs=1e-9)
    assert h1["goal_drift_before"] == pytest.approx(0.4)
    assert h1["goal_drift_after"] == pytest.approx(0.0, abs=1e-9)
    assert h1["review_reasons"] == []
    assert h2["status"] == "no_trade"
    assert h2["goal_drift_before"] is None and h2["goal_drift_after"] is None
    assert h3["status"] == "error"
    assert "goals.unknown_model [home/H3-T]" in h3["message"]
    assert [(e["source_table"], e["household_id"], e["record_id"], e["code"]) for e in exc] == \
        [("goals", "H3", "home/H3-T", "unknown_model")]


def test_a_goal_that_cannot_trade_is_routed_to_review(tmp_path):
    """The 529 is not tradable: its tuition goal stays 40% off, T trades to its own
    goal, and the household goes to review (goal_drift)."""
    root = book(tmp_path / "book", GOOD, [])
    accounts = pq.read_table(os.path.join(root, "accounts.parquet")).to_pydict()
    accounts["tradable"] = [a != "H1-E" for a in accounts["account_id"]]
    pq.write_table(pa.table(accounts), os.path.join(root, "accounts.parquet"))
    results, trades, _ = _night(root, str(tmp_path / "out"))
    h1 = results["H1"]
    assert h1["status"] == "traded", h1["message"]
    assert h1["goal_drift_after"] == pytest.approx(0.4)
    assert "goal_drift" in h1["review_reasons"]
    assert {t["account_id"] for t in trades if t["household_id"] == "H1"} == {"H1-T"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("goals") / "book")
    generate(root, 6, seed=11, as_of="2026-12-01", bad_fraction=0.0, profile="small")
    return root


def test_an_empty_table_changes_nothing(generated, tmp_path):
    def night(goals: list[dict] | None, name: str) -> dict[str, dict]:
        dst = str(tmp_path / name)
        os.makedirs(dst)
        for f in os.listdir(generated):
            pq.write_table(pq.read_table(os.path.join(generated, f)), os.path.join(dst, f))
        if goals is not None:
            pq.write_table(goal_table(goals), os.path.join(dst, "goals.parquet"))
            pq.write_table(weights_table([]), os.path.join(dst, "goal_targets.parquet"))
        run_book(dst, dst + "-out", "2026-12-01", RunConfig(), LocalExecutor(workers=1),
                 progress=False)
        part = "run_date=2026-12-01"
        rows = pq.read_table(os.path.join(dst + "-out", "household_results", part)).to_pylist()
        return {r["household_id"]: {k: v for k, v in r.items() if k not in ("run_id", "solve_ms")}
                for r in rows}

    empty, absent = night([], "empty"), night(None, "absent")
    assert empty == absent
    assert all(r["goal_drift_before"] is None for r in absent.values())


def test_the_realistic_book_has_goals_at_plausible_rates(tmp_path):
    """529s without a cash cap save for tuition (horizons 3-15 years out), ~5% of the
    other households for a home (1-4 years out, a third on weights of their own); the
    book validates clean."""
    root = str(tmp_path / "book")
    generate(root, 300, seed=9, bad_fraction=0.0)  # as of 2026-11-20
    goals = pq.read_table(os.path.join(root, "goals.parquet")).to_pylist()
    weights = pq.read_table(os.path.join(root, "goal_targets.parquet")).to_pylist()
    accounts = {a["account_id"]: a for a in
                pq.read_table(os.path.join(root, "accounts.parquet")).to_pylist()}
    today = np.datetime64("2026-11-20", "D").item()
    tuition = [g for g in goals if g["goal_id"].endswith("-tuition")]
    home = [g for g in goals if g["goal_id"].endswith("-home")]
    assert len(tuition) + len(home) == len(goals)
    uncapped_529 = [a for a in accounts.values()
                    if a["account_type"] == "education" and a["max_cash"] is None]
    assert len(tuition) == len(uncapped_529) and 20 <= len(tuition) <= 80
    assert all(3 * 365 <= (g["horizon_date"] - today).days <= 15 * 365 for g in tuition)
    assert 5 <= len(home) <= 30  # 5% of the ~250 households without a tuition goal
    assert all(365 <= (g["horizon_date"] - today).days <= 4 * 365 for g in home)
    assert all(accounts[g["account_id"]]["account_type"] == "taxable" for g in home)
    own = {w["goal_id"] for w in weights}
    assert own and own <= {g["goal_id"] for g in home if g["model_id"] is None}
    con = open_book(root)
    validate(con, "2026-11-20")
    assert con.execute("SELECT count(*) FROM exceptions_found").fetchone() == (0,)
