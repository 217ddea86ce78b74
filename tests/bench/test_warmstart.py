"""Warm starts on a real next night (bench/next_night.py, bench/warmstart.py): the
next night's book is night 1's proposals executed, and night 2 started from night
1's bases saves simplex iterations without changing a single answer."""

from __future__ import annotations

import os
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
import warmstart  # noqa: E402
from next_night import next_night  # noqa: E402

from hearth.batch.config import RunConfig  # noqa: E402
from hearth.batch.generate import DEFAULT_AS_OF, generate  # noqa: E402
from hearth.io.read import open_book  # noqa: E402
from hearth.io.validate import exceptions_table, validate  # noqa: E402
from hearth.io.write import committed_files, read_manifest  # noqa: E402

N = 40
NUMBERS = ("tax_due_estimate", "tax_savings_estimate", "drift_after")


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    root = tmp_path_factory.mktemp("warmstart")
    book = str(root / "book")
    # Each stage of a household's first solve starts from its saved basis; the
    # re-solves (wash sales, minimum trade, budget) start from the solve before in both
    # runs. Night 2 follows the book's first night, on which most households traded:
    # on this book warm takes 0.73 of cold's iterations.
    generate(book, N, seed=5, profile="small")
    return warmstart.run_nights(book, str(root), DEFAULT_AS_OF, RunConfig(), workers=1, seed=3)


def _table(path, name):
    return pq.read_table(os.path.join(path, f"{name}.parquet"))


def _night1(nights, table):
    return warmstart._read(nights.out_warm, nights.run_date, table).to_pylist()


def test_next_night_executes_night_ones_trades(nights):
    trades = _night1(nights, "trades")
    assert trades, "night 1 traded nothing: the test book says nothing"
    lots1 = {r["lot_id"]: r for r in _table(nights.book, "lots").to_pylist()}
    lots2 = {r["lot_id"]: r for r in _table(nights.book2, "lots").to_pylist()}
    for t in trades:
        if t["side"] == "sell":
            before = lots1[t["lot_id"]]
            rest = before["quantity"] - t["quantity"]
            if rest <= 1e-9 * max(before["quantity"], 1.0):
                assert t["lot_id"] not in lots2
            else:
                after = lots2[t["lot_id"]]
                assert after["quantity"] == pytest.approx(rest, rel=1e-12)
                assert after["cost_basis"] == pytest.approx(
                    before["cost_basis"] * rest / before["quantity"], rel=1e-12)
    buys = [t for t in trades if t["side"] == "buy"]
    new = {(r["account_id"], r["security_id"]): r for r in lots2.values() if r["lot_id"] not in lots1}
    assert len(new) == len(buys)
    for t in buys:
        lot = new[(t["account_id"], t["security_id"])]
        assert lot["quantity"] == t["quantity"]
        assert lot["cost_basis"] == pytest.approx(t["quantity"] * t["price"], rel=1e-12)
        assert str(lot["acquired_date"]) == nights.run_date
    tx1, tx2 = _table(nights.book, "transactions"), _table(nights.book2, "transactions")
    assert tx2.num_rows == tx1.num_rows + len(trades)
    today = [r for r in tx2.to_pylist() if str(r["trade_date"]) == nights.run_date]
    assert sorted((r["side"], r["account_id"], r["security_id"]) for r in today) == sorted(
        (t["side"], t["account_id"], t["security_id"]) for t in trades)
    # a sale in a tax-advantaged account is no loss sale for tomorrow's wash-sale rules
    assert all(r["realized_gain"] is not None for r in today if r["side"] == "sell")


def test_next_night_moves_cash_by_the_trades_flows_and_income(nights):
    acc1 = {r["account_id"]: r for r in _table(nights.book, "accounts").to_pylist()}
    acc2 = {r["account_id"]: r for r in _table(nights.book2, "accounts").to_pylist()}
    sec = {r["security_id"]: r for r in _table(nights.book, "securities").to_pylist()}
    flow = dict.fromkeys(acc1, 0.0)
    for t in _night1(nights, "trades"):
        rate = (sec[t["security_id"]]["cost_bps"] or 5.0) / 1e4
        flow[t["account_id"]] += (t["notional"] * (1 - rate) if t["side"] == "sell"
                                  else -t["notional"] * (1 + rate))
    settled = {r["household_id"] for r in _night1(nights, "household_results")
               if r["status"] in ("traded", "no_trade")}
    extra = 0.0
    for a, r in acc1.items():
        expected = r["cash"] + flow[a]
        if r["household_id"] in settled:
            expected += r["contribution"] - r["withdrawal"]
            assert acc2[a]["contribution"] == 0 and acc2[a]["withdrawal"] == 0
        assert acc2[a]["cash"] >= expected - 0.01  # income and contributions only add
        extra += acc2[a]["cash"] - expected
    nn = nights.next_night
    assert extra == pytest.approx(nn["income"] + nn["contributions"], abs=0.01 * len(acc1))
    assert nn["income"] > 0


def test_next_night_is_a_valid_book_deterministic_for_a_seed(nights, tmp_path):
    con = open_book(nights.book2)
    validate(con, nights.run_date2)
    bad = set(exceptions_table(con, "t").column("household_id").to_pylist())
    con = open_book(nights.book)
    validate(con, nights.run_date)
    assert bad <= set(exceptions_table(con, "t").column("household_id").to_pylist())
    again = next_night(nights.book, nights.out_cold, nights.run_date, str(tmp_path / "a"), seed=3)
    other = next_night(nights.book, nights.out_cold, nights.run_date, str(tmp_path / "b"), seed=4)
    assert again.run_date == nights.run_date2 == str(np.datetime64(nights.run_date) + 1)
    for name in ("households", "accounts", "lots", "securities", "transactions"):
        assert _table(again.path, name).equals(_table(nights.book2, name)), name
    p2 = _table(nights.book2, "securities").column("price").to_numpy()
    assert not np.array_equal(_table(other.path, "securities").column("price").to_numpy(), p2)
    p1 = _table(nights.book, "securities").column("price").to_numpy()
    assert 0 < np.abs(np.log(p2 / p1)).max() < 0.1  # a day's move


def test_night_two_starts_warm_and_saves_iterations(nights):
    assert read_manifest(nights.out_warm, nights.run_date2)["warm_state_from"] is not None
    assert read_manifest(nights.out_cold, nights.run_date2)["warm_state_from"] is None
    rows = warmstart.compare_outputs(nights.out_warm, nights.out_cold, nights.run_date2)
    assert len(rows) == N
    assert sum(r.warm_started for r in rows.values()) >= N / 2
    cold = warmstart._read(nights.out_cold, nights.run_date2, "household_results")
    assert not any(cold.column("warm_started").to_pylist())
    assert (sum(r.iterations_warm for r in rows.values())
            < sum(r.iterations_cold for r in rows.values()))


def test_warm_and_cold_give_the_same_answer_in_every_household(nights):
    def read(out, table):
        return warmstart._by_household(warmstart._read(out, nights.run_date2, table))

    res_w, res_c = read(nights.out_warm, "household_results"), read(nights.out_cold,
                                                                    "household_results")
    tr_w, tr_c = read(nights.out_warm, "trades"), read(nights.out_cold, "trades")
    assert sorted(res_w) == sorted(res_c) and len(res_w) == N
    assert sum(len(v) for v in tr_w.values()) > 0, "night 2 traded nothing: nothing compared"
    for h in res_w:
        (w,), (c,) = res_w[h], res_c[h]
        assert w["status"] == c["status"], h
        for col in NUMBERS:
            assert w[col] == pytest.approx(c[col], rel=1e-9, abs=1e-9), (h, col)
        key = warmstart._trade_key
        assert sorted(map(key, tr_w.get(h, []))) == sorted(map(key, tr_c.get(h, []))), h
        qty_c = {key(r): r["quantity"] for r in tr_c.get(h, [])}
        for r in tr_w.get(h, []):
            assert r["quantity"] == pytest.approx(qty_c[key(r)], rel=1e-6), (h, key(r))
    # and the bench's own check, the in-process benefits included, finds nothing
    rows = warmstart.compare_outputs(nights.out_warm, nights.out_cold, nights.run_date2)
    warmstart.compare_objectives(nights.book2, nights.out_warm, nights.run_date,
                                 nights.run_date2, RunConfig(), rows)
    assert {h: r.differences for h, r in rows.items() if r.differences} == {}
    assert any(r.benefit_warm for r in rows.values())
    # the first solve is the one the saved basis starts: there the saving is plain
    assert (sum(r.first_iterations_warm or 0 for r in rows.values())
            < sum(r.first_iterations_cold or 0 for r in rows.values()))
    assert committed_files(nights.out_warm, nights.run_date2)["warm"]


def test_a_night_after_a_warm_night_takes_under_half_the_iterations(tmp_path):
    """``--nights 3``: night 2 runs warm, then night 3 warm and cold. On a book hearth
    has run on, most households' models barely move overnight, and starting each
    stage from its saved basis takes under half the iterations of starting cold (0.32
    on this book), with the same answers."""
    book = str(tmp_path / "book")
    generate(book, N, seed=5, profile="small")
    nights = warmstart.run_nights(book, str(tmp_path), DEFAULT_AS_OF, RunConfig(), workers=1,
                                  seed=3, nights=3)
    assert nights.run_date2 == str(np.datetime64(DEFAULT_AS_OF) + 2)
    assert nights.run_date == str(np.datetime64(DEFAULT_AS_OF) + 1)  # the bases' night
    rows = warmstart.compare_outputs(nights.out_warm, nights.out_cold, nights.run_date2)
    warmstart.compare_objectives(nights.book2, nights.out_warm, nights.run_date,
                                 nights.run_date2, RunConfig(), rows)
    assert {h: r.differences for h, r in rows.items() if r.differences} == {}
    t = warmstart.totals(nights, rows)
    assert t["warm_started"] >= N / 2
    assert t["iterations_cold"] > 0 and t["iterations_ratio"] <= 0.5
