"""The multi-year simulator (bench/simulate.py): hearth's proposals execute without
overselling or overdrawing, both strategies start from the same book, the year-end
netting and the wash-sale accounting give hand-computed answers, and a seed gives
the same figures twice."""

from __future__ import annotations

import dataclasses
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
import simulate  # noqa: E402
from sim_book import ROTH, TAXABLE, build_book, market_prices  # noqa: E402
from sim_ledger import Ledger, day, net_capital_gains  # noqa: E402

from hearth.batch.config import RunConfig  # noqa: E402


def tiny_book(account_types=(TAXABLE, ROTH)):
    """One household, the given accounts, no lots and no cash; VTI (index 0) at cost 0."""
    book = build_book(3, seed=0)
    n_a = len(account_types)
    one = lambda a: np.array([a[0]])  # noqa: E731
    kw = dict(hh_ids=np.array(["H"], dtype=object), model=one(book.model),
              st_rate=np.array([0.35]), lt_rate=np.array([0.15]), ordinary_rate=np.array([0.35]),
              qualified_div_rate=np.array([0.15]), retirement_rate=np.array([0.30]),
              filing=np.array(["married_joint"], dtype=object))
    return dataclasses.replace(
        book, **kw, acct_ids=np.array([f"H-{i}" for i in range(n_a)], dtype=object),
        acct_hh=np.zeros(n_a, dtype=np.int64), acct_type=np.array(account_types),
        contribution=np.zeros(n_a), withdrawal=np.zeros(n_a), cash=np.zeros(n_a),
        cost_bps=np.zeros(len(book.sec_ids)), lot_acct=np.zeros(0, dtype=np.int64),
        lot_sec=np.zeros(0, dtype=np.int64), lot_qty=np.zeros(0), lot_basis=np.zeros(0),
        lot_acquired=np.zeros(0, dtype="datetime64[D]"))


def add_lot(ledger: Ledger, acct: int, sec: int, qty: float, basis: float, acquired: str) -> int:
    d = day(acquired)
    ledger._new_lot(acct, sec, qty, basis, d, d, qty)
    ledger._flush()
    return len(ledger.lot_qty) - 1


def prices_at(book, vti: float) -> np.ndarray:
    p = book.base_price.copy()
    p[0] = vti
    return p


# -- taxes ----------------------------------------------------------------------------------
def test_netting_short_term_loss_against_long_term_gain_with_offset():
    # ST -12,000 and a 2,000 ST carryforward against LT +5,000: a 9,000 net ST loss,
    # 3,000 of it against ordinary income at 35%, 6,000 carried forward as short-term
    n = net_capital_gains(-12_000, 5_000, 2_000, 0, 0.35, 0.15, 0.35, "married_joint")
    assert n.tax == pytest.approx(-1_050.0)
    assert (n.carry_st, n.carry_lt, n.offset) == pytest.approx((6_000.0, 0.0, 3_000.0))


def test_netting_long_term_loss_against_short_term_gain():
    # ST +10,000 against LT -4,000 and a 1,000 LT carryforward: 5,000 taxed at st_rate
    n = net_capital_gains(10_000, -4_000, 0, 1_000, 0.35, 0.15, 0.35, "single")
    assert n.tax == pytest.approx(1_750.0)
    assert (n.carry_st, n.carry_lt, n.taxable_st) == pytest.approx((0.0, 0.0, 5_000.0))


def test_netting_married_separate_offset_is_1500():
    n = net_capital_gains(-1_000, -4_000, 0, 0, 0.35, 0.15, 0.32, "married_separate")
    assert n.tax == pytest.approx(-1_500 * 0.32)
    assert (n.carry_st, n.carry_lt) == pytest.approx((0.0, 3_500.0))  # ST losses used first


def test_year_settlement_of_a_hand_made_year():
    """Sells that realize ST -12,000 and LT +5,000, a 2,000 ST carryforward, and a year of
    dividends: tax = -3,000 x 35% + 1,000 x 15% + 500 x 35% = -725, paid from taxable cash."""
    book = tiny_book()
    led = Ledger(book)
    led.carry_st[0] = 2_000.0
    st_lot = add_lot(led, 0, 0, 100, 22_000.0, "2026-01-02")  # 100 sh at $220, sold at $100
    lt_lot = add_lot(led, 0, 1, 100, 1_000.0, "2024-01-02")  # the substitute ITOT: LT gain
    p = prices_at(book, 100.0)
    p[1] = 60.0
    led.cash[0] = 10_000.0
    led.execute(day("2026-06-15"), p, [(st_lot, 100.0), (lt_lot, 100.0)], [])
    yt = led.year(2026)
    assert (yt.st[0], yt.lt[0]) == pytest.approx((-12_000.0, 5_000.0))
    yt.div_qualified[0] = 1_000.0
    yt.div_ordinary[0] = 500.0
    cash_before = led.cash[0]
    tax = led.settle_year(2026)
    assert tax[0] == pytest.approx(-725.0)
    assert led.cash[0] == pytest.approx(cash_before + 725.0)
    assert (led.carry_st[0], led.carry_lt[0]) == pytest.approx((6_000.0, 0.0))
    # losses used: 12,000 realized + 2,000 carried in - 6,000 carried out
    assert led.losses_used[0] == pytest.approx(8_000.0)
    assert led.losses_realized[0] == pytest.approx(12_000.0)


def test_tax_larger_than_cash_is_next_runs_withdrawal():
    book = tiny_book()
    led = Ledger(book)
    led.cash[0] = 100.0
    led.year(2026).st[0] = 10_000.0
    led.settle_year(2026)
    led.settle_cash()
    assert led.cash[0] == 0.0
    assert led.pending_withdrawal[0] == pytest.approx(3_500.0 - 100.0)


# -- wash sales -----------------------------------------------------------------------------
def test_wash_sale_disallows_the_replaced_share_of_the_loss():
    """100 sh of VTI bought in 2024 for $12,000, sold at $100 (a $2,000 LT loss); 30 sh
    bought in taxable 10 days later, 50 sh in the Roth 15 days later, 20 sh 40 days later.
    Washed: 30% to the taxable replacement's basis, 50% lost in the Roth; allowed: $400."""
    book = tiny_book()
    led = Ledger(book)
    lot = add_lot(led, 0, 0, 100, 12_000.0, "2024-03-01")
    p = prices_at(book, 100.0)
    led.cash[:] = 50_000.0
    led.execute(day("2026-06-15"), p, [(lot, 100.0)], [])
    led.execute(day("2026-06-25"), p, [], [(0, 0, 30.0)])
    led.execute(day("2026-06-30"), p, [], [(1, 0, 50.0)])
    led.execute(day("2026-07-25"), p, [], [(0, 0, 20.0)])
    yt = led.year(2026)
    assert yt.lt[0] == pytest.approx(-400.0)
    assert yt.st[0] == pytest.approx(0.0)
    assert led.counters.wash_sales == 1
    assert led.counters.disallowed_loss == pytest.approx(1_600.0)
    assert led.counters.disallowed_lost_in_ira == pytest.approx(1_000.0)
    repl = np.flatnonzero((led.lot_acct == 0) & (led.lot_qty == 30.0))
    assert len(repl) == 1
    assert led.lot_basis[repl[0]] == pytest.approx(3_000.0 + 600.0)
    # the replacement's holding period includes the sold lot's
    held = day("2026-06-15") - day("2024-03-01")
    assert led.lot_acquired[repl[0]] == day("2026-06-25") - held
    late = np.flatnonzero((led.lot_acct == 0) & (led.lot_qty == 20.0))
    assert led.lot_basis[late[0]] == pytest.approx(2_000.0)  # outside the window


def test_earlier_purchase_is_a_replacement_but_the_sold_lot_is_not():
    book = tiny_book()
    led = Ledger(book)
    old = add_lot(led, 0, 0, 100, 12_000.0, "2024-03-01")
    recent = add_lot(led, 0, 0, 10, 1_100.0, "2026-05-26")  # 20 days before the sale
    p = prices_at(book, 100.0)
    led.execute(day("2026-06-15"), p, [(old, 100.0)], [])
    assert led.year(2026).lt[0] == pytest.approx(-2_000.0 + 200.0)
    assert led.lot_basis[recent] == pytest.approx(1_100.0 + 200.0)
    # a whole recent lot sold at a loss with nothing left to replace it: no wash sale
    led2 = Ledger(book)
    lot = add_lot(led2, 0, 0, 10, 1_100.0, "2026-06-10")
    led2.execute(day("2026-06-15"), p, [(lot, 10.0)], [])
    assert led2.counters.wash_sales == 0
    assert led2.year(2026).st[0] == pytest.approx(-100.0)


def test_a_substitute_is_not_a_replacement():
    book = tiny_book()
    led = Ledger(book)
    lot = add_lot(led, 0, 0, 100, 12_000.0, "2024-03-01")
    p = prices_at(book, 100.0)
    led.cash[0] = 20_000.0
    led.execute(day("2026-06-15"), p, [(lot, 100.0)], [(0, 1, 50.0)])  # ITOT, its own wash group
    assert led.counters.wash_sales == 0
    assert led.year(2026).lt[0] == pytest.approx(-2_000.0)


# -- the simulation -------------------------------------------------------------------------
def test_both_strategies_start_from_the_same_book():
    book = build_book(4, seed=3)
    a, b = Ledger(book), Ledger(book)
    for name in ("cash", "lot_ids", "lot_acct", "lot_sec", "lot_qty", "lot_basis", "lot_acquired"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
        assert not np.shares_memory(getattr(a, name), getattr(b, name)), name
    a.lot_qty[0] = 0.0
    assert b.lot_qty[0] == book.lot_qty[0]


def test_market_paths_are_deterministic_and_named_years_are_exact():
    book = build_book(4, seed=3)
    r1, d1 = market_prices(book, "bear", 2, seed=5)
    r2, d2 = market_prices(book, "bear", 2, seed=5)
    assert np.array_equal(r1, r2) and np.array_equal(d1, d2)
    assert not np.array_equal(r1, market_prices(book, "bear", 2, seed=6)[0])
    r3, _ = market_prices(book, "bull", 2, seed=5)
    assert r3[12, 0] / r3[0, 0] == pytest.approx(1.20, rel=1e-3)  # VTI: +20% in year one
    assert r1[12, 0] / r1[0, 0] == pytest.approx(0.85, rel=1e-3)


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    runs = []
    for i in range(2):
        out = str(tmp_path_factory.mktemp(f"sim{i}"))
        state: dict = {}
        book = build_book(4, seed=11)
        result = simulate.simulate_path(book, "flat", 1, 11, RunConfig(), 1, out, True, 0.05, False,
                                        months=3, state=state, log=open(os.devnull, "w"))
        runs.append((result, state))
    return runs


def test_hearth_proposals_execute_without_oversell_or_overdraft(tiny_runs):
    result, state = tiny_runs[0]
    h = result["hearth"]
    assert result["hearth_statuses"].get("traded", 0) > 0, result["hearth_failures"]
    assert h["oversells"] == 0 and h["unknown_lots"] == 0
    assert h["cash_violations"] == 0, h["cash_violation_dollars"]
    for led in state.values():
        assert (led.lot_qty >= 0).all()
        assert (led.cash >= 0).all()


def test_a_seed_gives_the_same_figures(tiny_runs):
    strip = lambda r: {k: v for k, v in r.items() if "seconds" not in k}  # noqa: E731
    assert strip(tiny_runs[0][0]) == strip(tiny_runs[1][0])


def test_a_large_cash_need_is_funded_on_time_with_less_tax_than_selling_on_the_day(tmp_path):
    """A $500k need of the household with the largest taxable account, known at the
    second run and due 60 days later: hearth (a cash_needs row each month) has it in
    cash after the last run before the due date, as the naive (which sells for it on
    the day) does, and pays less capital-gains tax for it."""
    book = build_book(60, seed=1)
    prices, _ = market_prices(book, "flat", 1, seed=1)
    values = np.where(book.acct_type == TAXABLE, Ledger(book).account_values(prices[0]), 0.0)
    need = simulate.NeedPlan(500_000.0, days=60, month=1)
    result = simulate.simulate_path(book, "flat", 1, 1, RunConfig(), 1, str(tmp_path), True, 0.05,
                                    False, months=4, log=open(os.devnull, "w"), need=need)
    got = result["cash_need"]
    assert got["household"] == str(book.hh_ids[book.acct_hh[int(np.argmax(values))]])
    assert (got["known"], got["due"], got["paid_after_run"]) == ("2026-02-15", "2026-04-16",
                                                                 "2026-04-15")
    hearth, naive = got["hearth"], got["naive"]
    assert hearth["funded_on_time"] and naive["funded_on_time"], got
    assert naive["realized_lt_gain"] > 50_000  # selling on the day realizes long-term gains
    assert hearth["tax_at_rates"] < naive["tax_at_rates"] - 10_000, got
    assert hearth["cg_tax_paid_whole_run"] < naive["cg_tax_paid_whole_run"], got
    assert result["hearth"]["cash_violations"] == 0


def test_two_months_of_a_150_household_book_pass_the_checker_everywhere(tmp_path):
    """Every household-month of the simulated book's first two runs is traded or
    no_trade: no proposal fails the independent checker (a minimum-order repair that
    gave back a cleared W1 pool's lot once made two of them washed loss sales)."""
    book = build_book(150, seed=1)
    result = simulate.simulate_path(book, "flat", 1, 1, RunConfig(), 1, str(tmp_path), True, 0.05,
                                    False, months=2, log=open(os.devnull, "w"))
    assert set(result["hearth_statuses"]) <= {"traded", "no_trade"}, result["hearth_failures"]
    assert sum(result["hearth_statuses"].values()) == 300
    assert result["hearth"]["oversells"] == 0 and result["hearth"]["cash_violations"] == 0
