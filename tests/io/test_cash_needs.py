"""cash_needs (contract 2.1, docs/data-contract.md): validation codes with their
records and the households they cost, assembly into Household fields through real
open/validate/shard/assemble, and run_book nights on a small generated book (a need
funded, bad rows costing only their household, an empty table changing nothing)."""

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

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = "2027-02-01"


def need_table(rows: list[dict]) -> pa.Table:
    return pa.table({
        "household_id": pa.array([r.get("household_id") for r in rows], pa.string()),
        "account_id": pa.array([r.get("account_id") for r in rows], pa.string()),
        "due_date": pa.array([None if r.get("due_date") is None
                              else np.datetime64(r["due_date"], "D").item() for r in rows],
                             pa.date32()),
        "amount": pa.array([r.get("amount") for r in rows], pa.float64()),
        "need_id": pa.array([r.get("need_id") for r in rows], pa.string())})


# -- validation on a hand-written book --------------------------------------------------------

def small_book(root, need_rows: list[dict]) -> str:
    """H1: taxable A1 and Roth R1; H2: a Roth A2 only; H3: an untradable taxable A3
    and a tradable taxable B3."""
    tables = {
        "households": {"household_id": ["H1", "H2", "H3"], "model_id": ["m", "m", "m"],
                       "st_rate": [0.37, 0.3, 0.3], "lt_rate": [0.2, 0.15, 0.15]},
        "accounts": {"account_id": ["A1", "R1", "A2", "A3", "B3"],
                     "household_id": ["H1", "H1", "H2", "H3", "H3"],
                     "account_type": ["taxable", "roth", "roth", "taxable", "taxable"],
                     "cash": [100.0, 0.0, 50.0, 10.0, 0.0],
                     "tradable": [True, True, True, False, True]},
        "lots": {"lot_id": ["L1", "L2", "L3", "L4"], "account_id": ["A1", "A2", "A3", "B3"],
                 "security_id": ["S", "S", "S", "S"], "quantity": [10.0, 5.0, 1.0, 2.0],
                 "cost_basis": [900.0, 500.0, 90.0, 150.0],
                 "acquired_date": pa.array([19000, 19500, 19500, 19500], pa.date32())},
        "securities": {"security_id": ["S"], "asset_class": ["eq"], "price": [100.0]},
        "targets": {"model_id": ["m"], "asset_class": ["eq"], "weight": [1.0]},
        "model_securities": {"model_id": ["m"], "asset_class": ["eq"], "security_id": ["S"],
                             "rank": pa.array([1], pa.int64())},
    }
    os.makedirs(root, exist_ok=True)
    for name, cols in tables.items():
        pq.write_table(pa.table(cols), os.path.join(root, f"{name}.parquet"))
    pq.write_table(need_table(need_rows), os.path.join(root, "cash_needs.parquet"))
    return str(root)


GOOD = [{"household_id": "H1", "account_id": "A1", "due_date": "2027-02-03", "amount": 500.0,
         "need_id": "n1"},
        {"household_id": "H1", "due_date": "2027-03-01", "amount": 200.0},  # the household's
        {"household_id": "H2", "account_id": "A2", "due_date": "2027-01-15", "amount": 20.0},
        {"household_id": "H3", "due_date": "2027-02-02", "amount": 100.0}]  # past: due now


def checked(root: str) -> tuple[list[tuple], set[str], dict[str, int]]:
    con = open_book(root)
    validate(con, RUN)
    found = con.execute('SELECT "table", code, household_id, account_id, record_id, message '
                        "FROM exceptions_found ORDER BY ALL").fetchall()
    bad = {r[0] for r in con.execute("SELECT household_id FROM bad_households").fetchall()}
    return found, bad, unkeyed_rows(con)


def test_good_needs_have_no_exceptions(tmp_path):
    assert checked(small_book(tmp_path, GOOD)) == ([], set(), {})


def _with(index: int, **change) -> list[dict]:
    rows = [dict(r) for r in GOOD]
    rows[index].update(change)
    return rows


@pytest.mark.parametrize("rows, code, household, account, record, costs, unkeyed, says", [
    (_with(0, amount=0.0), "invalid_cash_need", "H1", "A1", "n1", {"H1"}, {},
     "amount 0.0 must be > 0 (the dollars to pay out)"),
    (_with(0, amount=-5.0), "invalid_cash_need", "H1", "A1", "n1", {"H1"}, {}, "must be > 0"),
    (_with(0, amount=float("inf")), "non_finite_number", "H1", "A1", "n1", {"H1"}, {},
     "amount=inf"),
    (_with(0, amount=5e12), "implausible_amount", "H1", "A1", "n1", {"H1"}, {},
     "check the units"),
    (_with(1, due_date=None), "invalid_cash_need", "H1", None, "H1/household/null", {"H1"}, {},
     "due_date is missing"),
    # an account of another household, and an account nobody has
    (_with(0, account_id="A2"), "unknown_account", "H1", "A2", "n1", {"H1"}, {},
     "account_id 'A2' is not an account of household 'H1'"),
    (_with(2, account_id="Z9"), "unknown_account", "H2", "Z9", "H2/Z9/2027-01-15", {"H2"}, {},
     "leave account_id empty"),
    (_with(3, account_id="A3"), "untradable_need_account", "H3", "A3", "H3/A3/2027-02-02",
     {"H3"}, {}, "account 'A3' is not tradable"),
    # H2 has only a Roth: a need without account_id has nothing to fund it
    (_with(2, account_id=None), "unfunded_cash_need", "H2", None, "H2/household/2027-01-15",
     {"H2"}, {}, "no tradable taxable account"),
    # an unknown household: a row that belongs to no household this run reports on
    (_with(3, household_id="H9"), "unknown_household", None, None, "H9/household/2027-02-02",
     set(), {"cash_needs": 1}, "household_id 'H9' is not in households"),
])
def test_bad_needs_are_exceptions_of_their_record(tmp_path, rows, code, household, account,
                                                  record, costs, unkeyed, says):
    found, bad, unkeyed_found = checked(small_book(tmp_path, rows))
    assert [(t, c, h, a, r) for t, c, h, a, r, _ in found] == \
        [("cash_needs", code, household, account, record)], found
    assert says in found[0][5], found[0][5]
    assert bad == costs
    assert unkeyed_found == unkeyed


def test_a_null_amount_breaks_both_rules_of_the_amount(tmp_path):
    found, bad, _ = checked(small_book(tmp_path, _with(0, amount=None)))
    assert [(c, h, r) for _, c, h, _, r, _ in found] == \
        [("implausible_amount", "H1", "n1"), ("invalid_cash_need", "H1", "n1")]
    assert bad == {"H1"}


def test_needs_reach_the_household(tmp_path):
    """open, validate, shard and assemble: each household's needs as Household fields
    (account -1: the household's choice; the record id where need_id is null)."""
    book = small_book(tmp_path / "book", GOOD)
    con = open_book(book)
    validate(con, RUN)
    plan = prepare(con, str(tmp_path / "prep"), shard_size=1)
    got = {}
    for shard in plan.shards:
        data = read_shard(plan.root, shard, duckdb.connect())
        for item in households(data, np.datetime64(RUN, "D"), reference(data.tables, 5.0)):
            assert item.household is not None, item.error
            hh = item.household
            got[item.household_id] = [
                (hh.need_ids[i], int(hh.need_account[i]), str(hh.need_due[i]),
                 float(hh.need_amount[i])) for i in range(len(hh.need_ids))]
    assert got == {
        "H1": [("n1", 0, "2027-02-03", 500.0), ("H1/household/2027-03-01", -1, "2027-03-01", 200.0)],
        "H2": [("H2/A2/2027-01-15", 0, "2027-01-15", 20.0)],
        "H3": [("H3/household/2027-02-02", -1, "2027-02-02", 100.0)],
    }


# -- run_book nights on a generated book --------------------------------------------------------

AS_OF = "2026-12-01"


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("needs") / "book")
    generate(root, 6, seed=11, as_of=AS_OF, bad_fraction=0.0, profile="small")
    return root


def _copy(src: str, dst: str, needs: list[dict] | None) -> str:
    os.makedirs(dst, exist_ok=True)
    for name in os.listdir(src):
        pq.write_table(pq.read_table(os.path.join(src, name)), os.path.join(dst, name))
    if needs is not None:
        pq.write_table(need_table(needs), os.path.join(dst, "cash_needs.parquet"))
    return dst


def _night(book: str, out: str) -> tuple[dict[str, dict], list[dict], list[dict]]:
    run_book(book, out, AS_OF, RunConfig(), LocalExecutor(workers=1), progress=False)
    part = f"run_date={AS_OF}"
    results = pq.read_table(os.path.join(out, "household_results", part)).to_pylist()
    trades = pq.read_table(os.path.join(out, "trades", part)).to_pylist()
    exc = pq.read_table(os.path.join(out, "exceptions", part)).to_pylist()
    return {r["household_id"]: r for r in results}, trades, exc


def _same(a: dict[str, dict], b: dict[str, dict], hid: str) -> bool:
    drop = ("run_id", "solve_ms")
    return ({k: v for k, v in a[hid].items() if k not in drop}
            == {k: v for k, v in b[hid].items() if k not in drop})


def test_a_need_is_funded_and_bad_rows_cost_only_their_household(generated, tmp_path):
    # H0000002: $10,000 due in two days, no account: its one taxable account (A0, max_cash
    # $3,380) raises it. H0000003's row has a negative amount, H0000004's names another
    # household's account, H0000005 (a Roth and a 529) names no account: each errors.
    needs = [{"household_id": "H0000002", "due_date": "2026-12-03", "amount": 10_000.0,
              "need_id": "car"},
             {"household_id": "H0000003", "account_id": "H0000003-A0", "due_date": "2027-01-10",
              "amount": -5.0, "need_id": "oops"},
             {"household_id": "H0000004", "account_id": "H0000000-A0",
              "due_date": "2026-12-20", "amount": 1_000.0, "need_id": "wrong-account"},
             {"household_id": "H0000005", "due_date": "2026-12-20", "amount": 1_000.0,
              "need_id": "no-taxable"}]
    with_needs = _copy(generated, str(tmp_path / "with"), needs)
    results, trades, exc = _night(with_needs, str(tmp_path / "out_with"))
    base, _, _ = _night(_copy(generated, str(tmp_path / "without"), None),
                        str(tmp_path / "out_without"))
    errors = {h for h, r in results.items() if r["status"] == "error"}
    assert errors == {"H0000003", "H0000004", "H0000005"}
    mine = sorted((e["code"], e["household_id"], e["record_id"]) for e in exc
                  if e["source_table"] == "cash_needs")
    assert mine == [("invalid_cash_need", "H0000003", "oops"),
                    ("unfunded_cash_need", "H0000005", "no-taxable"),
                    ("unknown_account", "H0000004", "wrong-account")]
    assert "cash_needs.invalid_cash_need [oops]" in results["H0000003"]["message"]
    # the households without needs ran as they do with no cash_needs table
    assert _same(results, base, "H0000000") and _same(results, base, "H0000001")
    # H0000002 traded, and its taxable account holds the $10,000 after the trades
    assert results["H0000002"]["status"] == "traded"
    accounts = {r["account_id"]: r for r in
                pq.read_table(os.path.join(generated, "accounts.parquet")).to_pylist()}
    bps = {r["security_id"]: r["cost_bps"] for r in
           pq.read_table(os.path.join(generated, "securities.parquet")).to_pylist()}
    a0 = accounts["H0000002-A0"]
    cash = a0["cash"] + a0["contribution"] - a0["withdrawal"]
    for t in trades:
        if t["account_id"] != "H0000002-A0":
            continue
        rate = (bps[t["security_id"]] if bps[t["security_id"]] is not None else 5.0) / 10_000
        cash += (t["notional"] * (1 - rate) if t["side"] == "sell"
                 else -t["notional"] * (1 + rate))
    assert cash >= 10_000.0 + a0["min_cash"] - 0.01
    assert any(t["account_id"] == "H0000002-A0" and t["side"] == "sell" for t in trades)


def test_an_empty_table_changes_nothing(generated, tmp_path):
    empty, _, _ = _night(_copy(generated, str(tmp_path / "empty"), []), str(tmp_path / "o1"))
    absent, _, _ = _night(_copy(generated, str(tmp_path / "absent"), None), str(tmp_path / "o2"))
    assert set(empty) == set(absent)
    assert all(_same(empty, absent, h) for h in absent)


# -- the realistic profile ---------------------------------------------------------------------

def test_the_realistic_book_has_needs_at_a_plausible_rate_and_funds_them(tmp_path):
    """About 4% of households owe one sum within 180 days; the rows validate, and
    a need due within the lead window is raised: after the night's trades the
    accounts that may pay it hold it."""
    book = str(tmp_path / "book")
    generate(book, 100, seed=4, bad_fraction=0.0)  # as of 2026-11-20
    needs = pq.read_table(os.path.join(book, "cash_needs.parquet")).to_pylist()
    assert 2 <= len({n["household_id"] for n in needs}) <= 8
    assert all(n["amount"] >= 1_000 for n in needs)
    assert {n["account_id"] is None for n in needs} == {True, False}  # both kinds
    con = open_book(book)
    validate(con, "2026-11-20")
    assert con.execute("SELECT count(*) FROM exceptions_found").fetchone() == (0,)
    out = str(tmp_path / "out")
    run_book(book, out, "2026-11-20", RunConfig(), LocalExecutor(workers=1), progress=False)
    part = "run_date=2026-11-20"
    results = {r["household_id"]: r for r in
               pq.read_table(os.path.join(out, "household_results", part)).to_pylist()}
    trades = pq.read_table(os.path.join(out, "trades", part)).to_pylist()
    accounts = pq.read_table(os.path.join(book, "accounts.parquet")).to_pylist()
    bps = {r["security_id"]: r["cost_bps"] for r in
           pq.read_table(os.path.join(book, "securities.parquet")).to_pylist()}
    due = [n for n in needs if (n["due_date"] - np.datetime64("2026-11-20", "D").item()).days <= 5]
    assert due, "the seed has a need in the lead window"
    for n in due:
        hid = n["household_id"]
        assert results[hid]["status"] == "traded", results[hid]["message"]
        payers = {a["account_id"]: a for a in accounts if a["household_id"] == hid
                  and (a["account_id"] == n["account_id"] if n["account_id"] is not None
                       else a["account_type"] == "taxable" and a["tradable"])}
        cash = sum(a["cash"] + a["contribution"] - a["withdrawal"] - a["min_cash"]
                   for a in payers.values())
        for t in trades:
            if t["account_id"] in payers:
                rate = (bps[t["security_id"]] if bps[t["security_id"]] is not None else 5.0) / 1e4
                cash += (t["notional"] * (1 - rate) if t["side"] == "sell"
                         else -t["notional"] * (1 + rate))
        assert cash >= n["amount"] - 0.01
