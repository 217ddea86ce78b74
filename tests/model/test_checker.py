"""The compliance checker catches each hard rule when a proposal breaks it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hearth.model.checker import CheckRules, check_proposal
from hearth.model.household import TAXABLE, TRADITIONAL, Restriction

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


def check(hh, sell=None, buys=(), rules=DEFAULT_RULES, final_cash=None):
    sell = np.zeros(hh.n_lots) if sell is None else np.array(sell, dtype=float)
    ba = np.array([b[0] for b in buys], dtype=np.int64)
    bs = np.array([b[1] for b in buys], dtype=np.int64)
    bq = np.array([b[2] for b in buys], dtype=float)
    fc = cash_after(hh, sell, ba, bs, bq) if final_cash is None else np.array(final_cash)
    return {v.rule for v in check_proposal(hh, sell, ba, bs, bq, fc, rules)}


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
    ({"txn_group": np.array([0]), "txn_date": np.array(["2026-11-01"], dtype="datetime64[D]"),
      "txn_buy": np.array([True]), "txn_realized_gain": np.array([np.nan])},
     [5, 0, 0, 0], [], "wash_sale_w1"),
    ({"txn_group": np.array([1]), "txn_date": np.array(["2026-11-01"], dtype="datetime64[D]"),
      "txn_buy": np.array([False]), "txn_realized_gain": np.array([-50.0])},
     None, [(1, 2, 5.0)], "wash_sale_w2"),
    ({}, [5, 0, 0, 0], [(1, 1, 4.0)], "wash_sale_w3"),  # loss sale of AAA, IRA buys AAA2
    ({"tax_budget": 50.0}, [0, 10, 0, 0], [], "tax_budget"),
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


def test_no_hold_forced_loss_sale_is_not_a_w1_violation(hh):
    forced = dataclasses.replace(
        hh, restrictions=(Restriction("no_hold", account=0, security="AAA"),),
        txn_group=np.array([0]), txn_date=np.array(["2026-11-01"], dtype="datetime64[D]"),
        txn_buy=np.array([True]), txn_realized_gain=np.array([np.nan]))
    assert check(forced, sell=[10, 10, 0, 0]) == set()
