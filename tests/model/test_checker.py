"""The compliance checker catches each hard rule when a proposal breaks it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hearth.model.checker import CheckRules, Violation, check_proposal, least_tax_raise
from hearth.model.household import TAXABLE, TRADITIONAL, Household, Restriction

COST = 0.001


@pytest.fixture
def hh(household):
    # taxable: AAA at a loss (lot 0), AAA at a gain (lot 1), BBB (lot 2); IRA: BBB (lot 3)
    # securities: AAA (rank 1), AAA2 (same wash group, rank 2), BBB (rank 1), CCC (unlisted)
    return household(
        account_ids=("tax", "ira"), account_type=[TAXABLE, TRADITIONAL], cash=[1_000.0, 500.0],
        min_cash=[100.0, 0.0], max_cash=[np.inf, 5_000.0],
        security_ids=("AAA", "AAA2", "BBB", "CCC"), asset_class=[0, 0, 1, 0],
        price=[100.0, 50.0, 10.0, 20.0], classes=("eq", "bond", "cash"), target=[0.6, 0.4, 0.0],
        wash_group=[0, 0, 1, 2], wash_groups=("AAA", "BBB", "CCC"), rank=[1, 2, 1, 0],
        lot_ids=("L0", "L1", "L2", "L3"), lot_account=[0, 0, 0, 1], lot_security=[0, 0, 2, 2],
        quantity=[10.0, 10.0, 100.0, 100.0], cost_basis=[1_500.0, 500.0, 1_000.0, 1_000.0],
        menu=np.array([[True, True, True, True], [True, False, True, True]]),
        cost_rate=[COST] * 4)


def cash_after(hh, sell, ba, bs, bq):
    price_l = hh.price[hh.lot_security]
    proceeds = np.bincount(hh.lot_account, weights=sell * price_l * (1 - COST), minlength=2)
    spent = np.bincount(ba, weights=bq * hh.price[bs] * (1 + COST), minlength=2)
    return hh.cash + hh.contribution - hh.withdrawal + proceeds - spent


DEFAULT_RULES = CheckRules()


def violations(hh: Household, sell=None, buys=(), rules=DEFAULT_RULES, final_cash=None,
               disallowed=None) -> list[Violation]:
    """Check a proposal of lot sells and (account, security, quantity) buys; final cash
    follows from the trades at the household's cost rates unless given."""
    sell = np.zeros(hh.n_lots) if sell is None else np.array(sell, dtype=float)
    ba = np.array([b[0] for b in buys], dtype=np.int64)
    bs = np.array([b[1] for b in buys], dtype=np.int64)
    bq = np.array([b[2] for b in buys], dtype=float)
    if final_cash is None:
        price_l = hh.price[hh.lot_security]
        proceeds = np.bincount(hh.lot_account, minlength=hh.n_accounts,
                               weights=sell * price_l * (1 - hh.cost_rate[hh.lot_security]))
        spent = np.bincount(ba, minlength=hh.n_accounts,
                            weights=bq * hh.price[bs] * (1 + hh.cost_rate[bs]))
        final_cash = hh.cash + hh.contribution - hh.withdrawal + proceeds - spent
    return check_proposal(hh, sell, ba, bs, bq, np.asarray(final_cash), rules,
                          disallowed_loss=None if disallowed is None else np.array(disallowed))


def check(hh, sell=None, buys=(), rules=DEFAULT_RULES, final_cash=None, disallowed=None):
    return {v.rule for v in violations(hh, sell, buys, rules, final_cash, disallowed)}


def message(hh, rule, **kw) -> str:
    found = [v.message for v in violations(hh, **kw) if v.rule == rule]
    assert found, f"no {rule} violation"
    return found[0]


def test_a_valid_proposal_passes(hh):
    # sell the AAA gain lot in taxable, buy BBB there; IRA buys BBB with its cash
    assert check(hh, sell=[0, 5, 0, 0], buys=[(0, 2, 40.0), (1, 2, 30.0)]) == set()


@pytest.mark.parametrize("change, sell, buys, rule", [
    ({}, [11, 0, 0, 0], [], "oversell"),
    ({"tradable": np.array([True, False])}, [0, 0, 0, 10], [], "untradable_account"),
    ({}, [0, 0, 0, 0], [(0, 2, 95.0)], "min_cash"),
    ({"withdrawal": np.array([0.0, 600.0])}, None, [], "withdrawal_funded"),
    ({"max_cash": np.array([np.inf, 100.0])}, None, [], "max_cash"),
    ({"restrictions": (Restriction("no_buy", security="BBB"),)}, None, [(0, 2, 10.0)], "no_buy"),
    ({"restrictions": (Restriction("no_sell", account=0, security="AAA"),)}, [0, 2, 0, 0], [],
     "no_sell"),
    ({"restrictions": (Restriction("no_trade", tag="bad"),), "tags": (frozenset(), frozenset(),
      frozenset({"bad"}), frozenset())}, [0, 0, 5, 0], [], "no_trade"),
    ({"restrictions": (Restriction("no_hold", sector="tech"),),
      "sector": (None, None, "tech", None)}, [0, 0, 50, 100], [], "no_hold"),
    ({}, None, [(1, 1, 2.0)], "menu"),
    ({}, None, [(0, 3, 2.0)], "off_model"),
    # 3 AAA bought in tax 19 days ago (no lot of it in the window): they wash 3 of the
    # 5 loss shares sold ($50 each), and nothing forces the sale
    ({"txn_group": np.array([0]), "txn_date": np.array(["2026-11-01"], dtype="datetime64[D]"),
      "txn_buy": np.array([True]), "txn_realized_gain": np.array([np.nan]),
      "txn_account": np.array([0]), "txn_security": np.array([0]),
      "txn_quantity": np.array([3.0])},
     [5, 0, 0, 0], [], "wash_sale_w1"),
    ({"txn_group": np.array([1]), "txn_date": np.array(["2026-11-01"], dtype="datetime64[D]"),
      "txn_buy": np.array([False]), "txn_realized_gain": np.array([-50.0])},
     None, [(1, 2, 5.0)], "wash_sale_w2"),
    ({}, [5, 0, 0, 0], [(1, 1, 4.0)], "wash_sale_w3"),  # loss sale of AAA, IRA buys AAA2
    ({"tax_budget": 50.0}, [0, 10, 0, 0], [], "tax_budget"),  # $500 LT gain: $100 of tax
    ({"turnover_limit": 0.01}, [0, 10, 0, 0], [], "turnover"),
])
def test_each_rule_is_caught(hh, change, sell, buys, rule):
    broken = dataclasses.replace(hh, **change)
    assert rule in check(broken, sell=sell, buys=buys)


def test_cash_balance_mismatch_is_caught(hh):
    sell = np.array([0, 5, 0, 0])
    fc = cash_after(hh, sell, np.zeros(0, int), np.zeros(0, int), np.zeros(0)) + [10.0, 0.0]
    assert "cash_balance" in check(hh, sell=sell, final_cash=fc)


def test_min_trade_caught_unless_it_closes_the_position(hh):
    rules = CheckRules(min_trade_value=250.0)
    assert "min_trade" in check(hh, sell=[0, 1, 0, 0], rules=rules)  # $100 sell of 20 shares held
    assert "min_trade" in check(hh, buys=[(0, 2, 10.0)], rules=rules)  # $100 buy
    small = dataclasses.replace(hh, quantity=np.array([1.0, 1.0, 100.0, 100.0]),
                                cost_basis=np.array([150.0, 50.0, 1000.0, 1000.0]))
    assert "min_trade" not in check(small, sell=[1, 1, 0, 0], rules=rules)  # closes AAA


def test_whole_shares(hh):
    rules = CheckRules(whole_shares=True)
    assert "whole_shares" in check(hh, sell=[0, 2.5, 0, 0], rules=rules)
    assert "whole_shares" in check(hh, buys=[(0, 2, 1.5)], rules=rules)
    frac = dataclasses.replace(hh, quantity=np.array([10.0, 10.5, 100.0, 100.0]))
    assert "whole_shares" not in check(frac, sell=[0, 10.5, 0, 0], rules=rules)  # whole lot


def test_no_hold_sale_of_a_position_bought_in_the_window_is_not_its_own_replacement(hh):
    # AAA bought in tax 19 days ago; the no_hold sale sells every AAA share there, so
    # none is left to replace the loss of L0: not washed, nothing to declare
    forced = dataclasses.replace(
        hh, restrictions=(Restriction("no_hold", account=0, security="AAA"),),
        txn_group=np.array([0]), txn_date=np.array(["2026-11-01"], dtype="datetime64[D]"),
        txn_buy=np.array([True]), txn_realized_gain=np.array([np.nan]),
        txn_account=np.array([0]), txn_security=np.array([0]), txn_quantity=np.array([10.0]))
    assert check(forced, sell=[10, 10, 0, 0]) == set()


# -- cash: an empty proposal is checked too -------------------------------------------------
def test_an_empty_proposal_below_min_cash_or_short_of_a_withdrawal_is_caught(stock_bond_household):
    base = dict(lot_ids=("L0",), quantity=[100.0], cost_basis=[5_000.0])
    below = stock_bond_household(**base, cash=[50.0], min_cash=[100.0])
    assert check(below) == {"min_cash"}  # 50 < 100 and nothing sold
    short = stock_bond_household(**base, cash=[100.0], withdrawal=[200.0])
    assert check(short) == {"withdrawal_funded"}  # 100 - 200 = -100 < 0
    untradable = stock_bond_household(**base, cash=[50.0], min_cash=[100.0], tradable=[False])
    # an untradable account cannot raise cash, and still must not sit below its minimum
    # (the model reports such a household infeasible, naming the shortfall)
    assert check(untradable) == {"min_cash"}


# -- tax budget: the netted additional tax ---------------------------------------------------
def test_a_gain_absorbed_by_a_long_term_carryforward_costs_nothing(stock_bond_household):
    # $20,000 LT gain (200 shares at $100, basis $0) against a $100,000 LT carryforward:
    # before: LT -100,000, offset 3,000 -> tax -1,110; after: LT -80,000 -> -1,110; due $0
    hh = stock_bond_household(lot_ids=("L0",), quantity=[200.0], cost_basis=[0.0],
                              tax_budget=0.0, loss_carryforward_lt=100_000.0)
    assert check(hh, sell=[200]) == set()


def test_a_year_to_date_loss_absorbs_gains_down_to_the_ordinary_offset(stock_bond_household):
    # YTD short-term loss $20,000: before, ST -20,000 -> offset 3,000 -> tax -1,110.
    hh = stock_bond_household(lot_ids=("L0",), quantity=[200.0], cost_basis=[0.0],
                              tax_budget=0.0, ytd_st_gain=-20_000.0)
    # a $17,000 LT gain leaves a net -3,000: still the full offset, $0 due
    assert check(hh, sell=[170]) == set()
    # a $20,000 LT gain nets to 0 and loses the offset: $1,110 due
    assert "realizes $1,110.00 of tax against a budget of $0.00" in message(
        hh, "tax_budget", sell=[200])


def test_a_short_term_loss_does_not_cancel_a_long_term_gain_lot_by_lot(stock_bond_household):
    # L0: 20 shares bought 2026-06-01 at $200, now $100: a $2,000 ST loss.
    # L1: 37 shares at basis $0: a $3,700 LT gain. A per-lot sum says
    # 3,700 x 0.20 - 2,000 x 0.37 = 740 - 740 = $0; netted, LT 3,700 - 2,000 = 1,700
    # at 20% is $340 due, which breaks a $0 budget.
    hh = stock_bond_household(lot_ids=("L0", "L1"), quantity=[20.0, 37.0],
                              cost_basis=[4_000.0, 0.0], acquired=["2026-06-01", "2020-01-02"],
                              tax_budget=0.0)
    text = message(hh, "tax_budget", sell=[20, 37])
    assert "realizes $340.00 of tax against a budget of $0.00" in text
    assert "short-term $-2,000.00 and long-term $3,700.00" in text
    assert check(dataclasses.replace(hh, tax_budget=340.0), sell=[20, 37]) == set()


# -- exemptions exactly as wide as the forced amount -----------------------------------------
def test_a_one_dollar_withdrawal_relaxes_the_budgets_only_by_one_dollar_of_sales(
        stock_bond_household):
    # Sell 200 STK at basis $0 ($20,000 LT gain, $4,000 of tax) and buy 199 BND: turnover
    # (20,000 + 19,900) / 2 = 19,950 of a $20,000 household, against a $0 budget and a 25%
    # limit. The $1 withdrawal (cash $0) needs 1 / (100 x 0.9995) = 0.010005 shares:
    # $1.0005 of LT gain, $0.20 of tax, $0.50 of turnover.
    hh = stock_bond_household(lot_ids=("L0",), quantity=[200.0], cost_basis=[0.0],
                              withdrawal=[1.0], tax_budget=0.0, turnover_limit=0.25)
    assert least_tax_raise(hh) == pytest.approx([1 / 99.95])
    kw = dict(sell=[200], buys=[(0, 1, 199.0)])
    assert {"tax_budget", "turnover"} <= check(hh, **kw)
    assert message(hh, "tax_budget", **kw).startswith(
        "realizes $4,000.00 of tax against a budget of $0.00 (+ $0.20 that raising the $1.00 "
        "withdrawal from account taxable needs)")
    assert message(hh, "turnover", **kw) == (
        "turnover $19,950.00 exceeds 25.00% of $20,000.00 (+ $0.50 that raising the $1.00 "
        "withdrawal from account taxable needs)")


@pytest.fixture
def withdrawal_50k(stock_bond_household):
    """$50,000 to raise from $0 of cash, no trading cost, a $0 tax budget. STK lots at $100:
    L0 100 sh LT loss $10/sh; L1 300 sh LT gain $10/sh; L2 300 sh LT gain $40/sh;
    L3 200 sh ST gain $50/sh. Least tax: L0 100, L1 300, L2 100 = 500 shares,
    LT -1,000 + 3,000 + 4,000 = 6,000 at 20% = $1,200."""
    return stock_bond_household(
        lot_ids=("L0", "L1", "L2", "L3"), quantity=[100.0, 300.0, 300.0, 200.0],
        cost_basis=[11_000.0, 27_000.0, 18_000.0, 10_000.0],
        acquired=["2020-01-02", "2020-01-02", "2020-01-02", "2026-06-01"],
        cost_rate=[0.0, 0.0], withdrawal=[50_000.0], tax_budget=0.0)


def test_a_50k_withdrawal_allows_exactly_the_cheapest_tax(withdrawal_50k):
    hh = withdrawal_50k
    assert least_tax_raise(hh).tolist() == [100.0, 300.0, 100.0, 0.0]
    assert check(hh, sell=[100, 300, 100, 0]) == set()  # $1,200 of tax: exactly what it needs
    # 50 ST shares instead of 50 of L2: LT 4,000 -> $800, ST 2,500 -> $925; $1,725
    text = message(hh, "tax_budget", sell=[100, 300, 50, 50])
    assert text.startswith("realizes $1,725.00 of tax against a budget of $0.00 (+ $1,200.00 "
                           "that raising the $50,000.00 withdrawal from account taxable needs)")
    # keeping the loss lot: LT 3,000 + 8,000 = 11,000 -> $2,200
    assert "realizes $2,200.00" in message(hh, "tax_budget", sell=[0, 300, 200, 0])


def test_the_budget_is_relaxed_by_the_forced_tax_and_no_more(withdrawal_50k):
    hh = dataclasses.replace(withdrawal_50k, tax_budget=200.0)
    # 25 more L2 shares: +$1,000 LT gain, $1,400 of tax = 200 + 1,200: at the bound
    assert check(hh, sell=[100, 300, 125, 0]) == set()
    # 26 more: $1,408 > $1,400
    assert "tax_budget" in check(hh, sell=[100, 300, 126, 0])


def test_a_no_hold_sale_relaxes_the_budgets_by_its_own_tax_and_turnover(stock_bond_household):
    # L0 100 STK at basis $5,000 must go: $5,000 LT gain, $1,000 of tax, $5,000 of turnover
    hh = stock_bond_household(lot_ids=("L0", "L1"), quantity=[100.0, 50.0],
                              cost_basis=[5_000.0, 2_500.0], tax_budget=0.0, turnover_limit=0.0,
                              account_ids=("taxable", "ira"), account_type=[TAXABLE, TRADITIONAL],
                              lot_account=[0, 1],
                              restrictions=(Restriction("no_hold", account=0, security="STK"),))
    assert check(hh, sell=[100, 0]) == set()
    assert {"turnover"} == check(hh, sell=[100, 10])  # IRA sale: no tax, but turnover
    assert "selling the no_hold lots L0" in message(hh, "turnover", sell=[100, 10])


# -- tolerances and broker-ready quantities ---------------------------------------------------
def test_a_no_hold_position_left_as_dust_is_compliant(stock_bond_household):
    # a 0.00007-share reinvested-dividend lot below the 0.001-share dust size
    hh = stock_bond_household(lot_ids=("L0", "drip"), quantity=[100.0, 0.00007],
                              cost_basis=[10_000.0, 0.007],
                              restrictions=(Restriction("no_hold", security="STK"),))
    assert check(hh, sell=[100, 0]) == set()
    assert check(hh, sell=[100, 0], rules=CheckRules(dust_shares=1e-5)) == {"no_hold"}
    more = dataclasses.replace(hh, quantity=np.array([100.0, 0.002]))
    assert "no_hold" in check(more, sell=[100, 0])  # 0.002 shares are a position


def test_oversell_within_the_quantity_tolerance_is_no_oversell(stock_bond_household):
    hh = stock_bond_household(lot_ids=("L0",), quantity=[100.0], cost_basis=[10_000.0])
    assert "oversell" not in check(hh, sell=[100 + 5e-8])  # 1e-9 x 100 = 1e-7 allowed
    assert "oversell" in check(hh, sell=[100 + 2e-7])


def test_quantities_are_multiples_of_the_share_increment(stock_bond_household):
    hh = stock_bond_household(lot_ids=("L0",), quantity=[10.123456789], cost_basis=[1_000.0],
                              cash=[1_000.0])
    assert "share_increment" in check(hh, buys=[(0, 1, 4.990191715945595)])
    assert check(hh, buys=[(0, 1, 4.990192)]) == set()
    assert check(hh, sell=[10.123456789]) == set()  # the whole lot, exactly
    assert check(hh, sell=[5.5]) == set()
    assert "share_increment" in check(hh, sell=[5.1234567])
    assert "share_increment" in check(hh, sell=[10.123456789 - 1e-12])  # neither
    coarse = CheckRules(share_increment=0.01)
    assert check(hh, buys=[(0, 1, 4.99)], rules=coarse) == set()
    assert "share_increment" in check(hh, buys=[(0, 1, 4.995)], rules=coarse)
    big = stock_bond_household(lot_ids=("L0",), quantity=[2_000_000.0], cost_basis=[1e8],
                               price=[1.0, 1.0], cost_rate=[0.0, 0.0])
    assert check(big, sell=[1_234_567.891234]) == set()  # float spacing at 1.2e12 increments


def test_whole_share_buys_are_exact_integers(stock_bond_household):
    hh = stock_bond_household(lot_ids=("L0",), quantity=[10.5], cost_basis=[1_000.0],
                              cash=[1_000.0])
    rules = CheckRules(whole_shares=True)
    assert "whole_shares" in check(hh, buys=[(0, 1, 3.9999999999988907)], rules=rules)
    assert check(hh, buys=[(0, 1, 4.0)], rules=rules) == set()
    assert check(hh, sell=[10.5], rules=rules) == set()  # the whole lot
    assert check(hh, sell=[3.0], rules=rules) == set()
    assert "whole_shares" in check(hh, sell=[3.0000001], rules=rules)
