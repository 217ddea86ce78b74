"""Cash needs (contract 2.1, ``cash_needs``): hand-solved households with their
trades and taxes written here (docs/model.md, "Cash needs").

The common setting: one security VTI at $100 in the class ``stocks``, a 100% stocks
target (cash 0%), no trading costs, st_rate 0.37 and lt_rate 0.20. With the default
horizon (10 years at 5%), a dollar of gain realized now is priced at its rate less
0.20 x 1.05^-10 = 0.1228 (the deferral it gives up), so a short-term dollar of gain
costs 0.2472 and a long-term one 0.0772.
"""

from __future__ import annotations

import numpy as np
import pytest

from hearth.model.build import derive
from hearth.model.checker import CheckRules, check_proposal
from hearth.model.household import ROTH, TAXABLE
from hearth.model.lp import ModelSettings
from hearth.model.needs import need_windows
from hearth.model.solve import netted_tax, realized_by_term, solve_household
from hearth.model.tax import long_term

ONE_STOCK = dict(security_ids=("VTI",), asset_class=[0], price=[100.0],
                 classes=("stocks", "cash"), target=[1.0, 0.0], cost_rate=[0.0])


def _check(hh, p, rules=None):
    return check_proposal(hh, p.sell, p.buy_account, p.buy_security, p.buy_quantity,
                          p.final_cash, rules or CheckRules(),
                          disallowed_loss=p.disallowed_loss)


# -- (a) $500k in 60 days, a lot turning long-term in 20 days ----------------------------------

def big_need(household, run_date, **kw):
    """A taxable account with $50,000 cash and two lots of VTI ($1,000,000):
    - ``soon-long``: 5,000 shares, basis $300,000 ($40 a share of gain), acquired
      2026-01-23: short-term on 2027-01-04, long-term from 2027-01-24 (20 days on);
    - ``recent``: 5,000 shares, basis $150,000 ($70 a share), acquired 2026-06-01:
      short-term on every run date here.
    A $500,000 need from the account is due 2027-03-05, 60 days after 2027-01-04."""
    return household(
        run_date=run_date, account_ids=("taxable",), account_type=[TAXABLE], cash=[50_000.0],
        lot_ids=("soon-long", "recent"), lot_account=[0, 0], lot_security=[0, 0],
        quantity=[5_000.0, 5_000.0], cost_basis=[300_000.0, 150_000.0],
        acquired=["2026-01-23", "2026-06-01"],
        need_ids=("tuition",), need_account=[0], need_due=["2027-03-05"],
        need_amount=[500_000.0], **ONE_STOCK, **kw)


def test_the_lot_turning_long_term_is_why_the_need_waits():
    acquired = np.array(["2026-01-23"], dtype="datetime64[D]")
    assert not long_term(acquired, np.datetime64("2027-01-23"))[0]  # the anniversary: short
    assert long_term(acquired, np.datetime64("2027-01-24"))[0]  # 20 days after 2027-01-04
    assert np.datetime64("2027-01-04") + 60 == np.datetime64("2027-03-05")
    assert np.datetime64("2027-03-05") - 5 == np.datetime64("2027-02-28")


def test_a_need_in_60_days_sells_nothing_today_and_keeps_the_cash(household, solver):
    # 60 days out: beyond the 5-day lead window, inside the 90-day reserve. Nothing is
    # forced, and the $50,000 of cash is the reserve: targets apply to $1,050,000 -
    # $50,000 = $1,000,000 of stocks (held), the cash class holds the $50,000. No drift.
    hh = big_need(household, "2027-01-04")
    out = solve_household(hh, ModelSettings(), solver)
    assert out.status == "no_trade"
    assert out.proposal.n_trades == 0
    assert out.proposal.final_cash.tolist() == [50_000.0]
    assert _check(hh, out.proposal) == []


def test_without_a_reserve_the_cash_would_be_invested(household, solver):
    # cash_reserve_days = 0: the need 60 days out counts for nothing today, and the
    # $50,000 of cash is $50,000 out of band (3% of $1,050,000 is $31,500): 500 VTI bought.
    hh = big_need(household, "2027-01-04")
    out = solve_household(hh, ModelSettings(cash_reserve_days=0), solver)
    assert out.status == "traded"
    assert out.proposal.sell.tolist() == [0.0, 0.0]
    assert out.proposal.buy_quantity.tolist() == pytest.approx([500.0])


def test_five_days_before_the_date_the_now_long_term_lot_is_sold(household, solver):
    # 2027-02-28: due in 5 days, inside the lead window: the $500,000 must be in cash.
    # $50,000 is there; targets now apply to $1,050,000 - $500,000 = $550,000 of
    # stocks, so $450,000 is sold: 4,500 shares. soon-long is long-term now:
    # 0.0772 x $40 = $3.09 a share against recent's 0.2472 x $70 = $17.30: 4,500
    # shares of soon-long, $180,000 of long-term gain, $36,000 of tax at lt_rate.
    hh = big_need(household, "2027-02-28")
    out = solve_household(hh, ModelSettings(), solver)
    assert out.status == "traded"
    p = out.proposal
    assert p.sell.tolist() == pytest.approx([4_500.0, 0.0], abs=1e-6)
    assert len(p.buy_quantity) == 0
    assert p.final_cash.tolist() == pytest.approx([500_000.0], abs=0.01)
    d = out.derived
    assert realized_by_term(hh, d, p.sell) == pytest.approx((0.0, 180_000.0), abs=0.01)
    assert netted_tax(hh, d, p.sell) == pytest.approx(36_000.0, abs=0.01)
    assert _check(hh, p) == []


def test_raised_on_the_first_day_the_same_need_would_sell_short_term(household, solver):
    # The counterfactual: a 60-day lead window forces the sale on 2027-01-04, when
    # soon-long is still short-term (0.2472 x $40 = $9.89 a share, still below
    # recent's $17.30): the same 4,500 shares, but $180,000 of short-term gain and
    # $66,600 of tax. Waiting 55 days saves $30,600.
    hh = big_need(household, "2027-01-04")
    out = solve_household(hh, ModelSettings(cash_need_lead_days=60), solver)
    p = out.proposal
    assert p.sell.tolist() == pytest.approx([4_500.0, 0.0], abs=1e-6)
    assert realized_by_term(hh, out.derived, p.sell) == pytest.approx((180_000.0, 0.0), abs=0.01)
    assert netted_tax(hh, out.derived, p.sell) == pytest.approx(66_600.0, abs=0.01)
    assert _check(hh, p, CheckRules(cash_need_lead_days=60)) == []


# -- (b) monthly needs, a contribution in between -----------------------------------------

def monthly(household, run_date, cash, shares, contribution=0.0):
    """$10,000 due on the first of each month from the taxable account; VTI lots at
    cost (no gain: selling is free of tax)."""
    dues = ["2027-02-01", "2027-03-01", "2027-04-01", "2027-05-01"]
    return household(
        run_date=run_date, account_ids=("taxable",), account_type=[TAXABLE], cash=[cash],
        contribution=[contribution], lot_ids=("held",), lot_account=[0], lot_security=[0],
        quantity=[shares], cost_basis=[shares * 100.0], acquired=["2025-06-01"],
        need_ids=tuple(f"month-{d[:7]}" for d in dues), need_account=[0] * 4, need_due=dues,
        need_amount=[10_000.0] * 4, **ONE_STOCK)


def test_a_contribution_before_a_monthly_need_stays_in_cash(household, solver):
    # 2027-01-15: $10,000 arrives; $30,000 is due within 90 days (Feb 1, Mar 1, Apr 1).
    # The reserve keeps the $10,000: targets apply to $1,010,000 - $10,000 of stocks,
    # which are held. Nothing is bought.
    first = solve_household(monthly(household, "2027-01-15", 0.0, 10_000.0, 10_000.0),
                            ModelSettings(), solver)
    assert first.status == "no_trade"
    assert first.proposal.n_trades == 0
    assert first.proposal.final_cash.tolist() == [10_000.0]
    # 2027-01-27: the Feb 1 need is within 5 days and its $10,000 is already cash.
    hh = monthly(household, "2027-01-27", 10_000.0, 10_000.0)
    second = solve_household(hh, ModelSettings(), solver)
    assert second.status == "no_trade"
    assert second.proposal.n_trades == 0
    assert _check(hh, second.proposal) == []


def test_without_the_reserve_the_contribution_is_invested_and_then_sold(household, solver):
    # The same two nights with cash_reserve_days = 5 (no reserve beyond the lead
    # window): 100 VTI bought on Jan 15, and the same 100 sold on Jan 27.
    s = ModelSettings(cash_reserve_days=5)
    first = solve_household(monthly(household, "2027-01-15", 0.0, 10_000.0, 10_000.0), s, solver)
    assert first.status == "traded"
    assert first.proposal.buy_quantity.tolist() == pytest.approx([100.0])
    second = solve_household(monthly(household, "2027-01-27", 0.0, 10_100.0), s, solver)
    assert second.status == "traded"
    assert second.proposal.sell.tolist() == pytest.approx([100.0], abs=1e-6)
    assert second.proposal.final_cash.tolist() == pytest.approx([10_000.0], abs=0.01)


# -- (c) a household-level need: the account with the lowest tax cost ---------------------

def two_taxable_and_a_roth(household, need_account):
    """Three accounts of 1,000 VTI each ($300,000), all long-term: ``joint`` (basis $50
    a share: $50 of gain), ``single`` (basis $95: $5 of gain), ``roth``. $50,000 is due
    2027-01-06, two days after the run date, from ``need_account`` (-1: the household's
    choice)."""
    return household(
        run_date="2027-01-04", account_ids=("joint", "single", "roth"),
        account_type=[TAXABLE, TAXABLE, ROTH],
        lot_ids=("gain", "small-gain", "roth-lot"), lot_account=[0, 1, 2], lot_security=[0, 0, 0],
        quantity=[1_000.0, 1_000.0, 1_000.0], cost_basis=[50_000.0, 95_000.0, 100_000.0],
        acquired=["2020-03-02"] * 3,
        need_ids=("roof",), need_account=[need_account], need_due=["2027-01-06"],
        need_amount=[50_000.0], **ONE_STOCK)


def test_a_household_need_is_funded_where_it_costs_the_least_tax(household, solver):
    # Targets apply to $300,000 - $50,000: $50,000 of stocks is sold. In joint a share
    # costs 0.0772 x $50 = $3.86, in single 0.0772 x $5 = $0.39; the Roth is no
    # funding account (a distribution is a tax event the model does not price), and
    # selling there too would leave $50,000 of idle cash. So 500 shares of single:
    # $2,500 of long-term gain, $500 of tax.
    hh = two_taxable_and_a_roth(household, -1)
    out = solve_household(hh, ModelSettings(), solver)
    assert out.status == "traded"
    p = out.proposal
    assert p.sell.tolist() == pytest.approx([0.0, 500.0, 0.0], abs=1e-6)
    assert p.final_cash.tolist() == pytest.approx([0.0, 50_000.0, 0.0], abs=0.01)
    assert netted_tax(hh, out.derived, p.sell) == pytest.approx(500.0, abs=0.01)
    assert _check(hh, p) == []


def test_a_need_that_names_its_account_is_funded_there(household, solver):
    # The same need named from joint: 500 shares of the $50-gain lot, $5,000 of tax.
    hh = two_taxable_and_a_roth(household, 0)
    out = solve_household(hh, ModelSettings(), solver)
    p = out.proposal
    assert p.sell.tolist() == pytest.approx([500.0, 0.0, 0.0], abs=1e-6)
    assert p.final_cash.tolist() == pytest.approx([50_000.0, 0.0, 0.0], abs=0.01)
    assert netted_tax(hh, out.derived, p.sell) == pytest.approx(5_000.0, abs=0.01)


# -- windows, targets and caps --------------------------------------------------------------

def test_windows_and_reserve_by_the_days_to_the_due_date(household):
    # cash $12,000 + contribution $3,000 - withdrawal $1,000 = $14,000, min_cash $2,000:
    # $12,000 spare. Needs: $5,000 two days ago (past: due now), $4,000 in 5 days (lead),
    # $20,000 in 30 days (reserve), $9,000 in 200 days (later).
    hh = household(
        run_date="2027-01-04", account_ids=("taxable",), account_type=[TAXABLE],
        cash=[12_000.0], contribution=[3_000.0], withdrawal=[1_000.0], min_cash=[2_000.0],
        lot_ids=("l",), lot_account=[0], lot_security=[0], quantity=[100.0],
        cost_basis=[10_000.0], need_account=[0, 0, 0, 0],
        need_due=["2027-01-02", "2027-01-09", "2027-02-03", "2027-07-23"],
        need_amount=[5_000.0, 4_000.0, 20_000.0, 9_000.0], **ONE_STOCK)
    n = need_windows(hh, 5, 90)
    assert n.lead_account.tolist() == [9_000.0]
    assert n.reserve_account.tolist() == [20_000.0]
    assert n.own_reserved.tolist() == [12_000.0]  # max(9,000, min(12,000, 29,000))
    assert n.floor.tolist() == [14_000.0]
    assert n.reserved == 12_000.0
    assert n.cap_raise.tolist() == [12_000.0]


def test_the_cash_class_target_holds_the_reserve(household):
    # V = $10,000 of stocks + $14,000 = $24,000; $12,000 reserved: stocks aim at
    # 100% of $12,000 and cash at 0% of it plus the $12,000.
    from hearth.model.build import target_dollars
    hh = household(
        run_date="2027-01-04", account_ids=("taxable",), account_type=[TAXABLE],
        cash=[12_000.0], contribution=[3_000.0], withdrawal=[1_000.0], min_cash=[2_000.0],
        lot_ids=("l",), lot_account=[0], lot_security=[0], quantity=[100.0],
        cost_basis=[10_000.0], need_account=[0, 0], need_due=["2027-01-02", "2027-02-03"],
        need_amount=[9_000.0, 20_000.0], **ONE_STOCK)
    d = derive(hh, ModelSettings())
    assert d.target_value == 24_000.0
    assert target_dollars(hh, d).tolist() == [12_000.0, 12_000.0]


def test_needs_beyond_the_reserve_change_nothing(household, solver):
    # $50,000 of cash, 5,000 VTI: out of band, 500 VTI bought. A need due beyond the
    # 90-day horizon adds no row and moves no target: the same answer.
    def make(**needs):
        return household(run_date="2027-01-04", account_ids=("taxable",),
                         account_type=[TAXABLE], cash=[50_000.0], lot_ids=("a",),
                         lot_account=[0], lot_security=[0], quantity=[5_000.0],
                         cost_basis=[300_000.0], **needs, **ONE_STOCK)
    a = solve_household(make(), ModelSettings(), solver)
    b = solve_household(make(need_account=[0], need_due=["2027-06-01"],
                             need_amount=[500_000.0]), ModelSettings(), solver)
    assert a.status == b.status == "traded"
    assert a.proposal.buy_quantity.tolist() == b.proposal.buy_quantity.tolist() == [500.0]
    assert (a.n_col, a.n_row) == (b.n_col, b.n_row)


def test_reserved_cash_may_sit_above_max_cash(household, solver):
    # max_cash $20,000 would invest $30,000 of the $50,000; held for the need, it stays
    hh = big_need(household, "2027-01-04", max_cash=[20_000.0])
    out = solve_household(hh, ModelSettings(), solver)
    assert out.proposal.n_trades == 0
    assert _check(hh, out.proposal) == []


def test_an_unfundable_need_is_infeasible_and_says_why(household, solver):
    # $500,000 due in 3 days from an account that holds $60,000 in all
    hh = household(
        run_date="2027-01-04", account_ids=("taxable",), account_type=[TAXABLE],
        cash=[10_000.0], lot_ids=("a",), lot_account=[0], lot_security=[0], quantity=[500.0],
        cost_basis=[50_000.0], need_ids=("house",), need_account=[0],
        need_due=["2027-01-07"], need_amount=[500_000.0], **ONE_STOCK)
    out = solve_household(hh, ModelSettings(), solver)
    assert out.status == "infeasible"
    assert "cash needs of $500,000.00 due within 5 days from account taxable" in out.message
    assert "short by $440,000.00" in out.message


# -- (e) the checker ---------------------------------------------------------------------------

def test_the_checker_rejects_an_unfunded_need_in_the_lead_window(household):
    # Doing nothing on 2027-02-28 leaves $50,000 of the $500,000 due 2027-03-05.
    hh = big_need(household, "2027-02-28")
    none = np.zeros(0, dtype=np.int64)
    v = check_proposal(hh, np.zeros(2), none, none, np.zeros(0), np.array([50_000.0]),
                       CheckRules())
    assert [(x.rule, x.record) for x in v] == [("cash_need", "tuition")]
    assert "account taxable" in v[0].message
    assert "tuition ($500,000.00 due 2027-03-05)" in v[0].message
    assert "short by $450,000.00" in v[0].message


def test_the_checker_rejects_a_proposal_that_invests_the_reserve(household):
    # 2027-01-04: buying 300 VTI spends $30,000 of the $50,000 held for the need
    hh = big_need(household, "2027-01-04")
    v = check_proposal(hh, np.zeros(2), np.array([0]), np.array([0]), np.array([300.0]),
                       np.array([20_000.0]), CheckRules())
    assert [(x.rule, x.record) for x in v] == [("cash_reserve", "tuition")]
    assert "invests $30,000.00 of the $50,000.00 account taxable holds" in v[0].message
    # with no reserve horizon the same buy is fine
    assert check_proposal(hh, np.zeros(2), np.array([0]), np.array([0]), np.array([300.0]),
                          np.array([20_000.0]), CheckRules(cash_reserve_days=0)) == []


def test_the_checker_judges_a_household_need_over_the_taxable_accounts(household):
    hh = two_taxable_and_a_roth(household, -1)
    # selling in the Roth raises the cash, but not where the need may be paid from
    v = check_proposal(hh, np.array([0.0, 0.0, 500.0]), np.zeros(0, dtype=np.int64),
                       np.zeros(0, dtype=np.int64), np.zeros(0),
                       np.array([0.0, 0.0, 50_000.0]), CheckRules())
    assert [(x.rule, x.record) for x in v] == [("cash_need", "roof")]
    assert "(joint, single)" in v[0].message and "short by $50,000.00" in v[0].message
    # from either taxable account it is funded
    for a in (0, 1):
        sell = np.zeros(3)
        sell[a] = 500.0
        cash = np.zeros(3)
        cash[a] = 50_000.0
        assert check_proposal(hh, sell, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64),
                              np.zeros(0), cash, CheckRules()) == []


def test_a_due_need_is_raised_through_a_zero_tax_budget(household, solver):
    # As a withdrawal: the $500,000 due in 5 days is raised even though the household's
    # tax budget is $0: the same 4,500 shares, $36,000 over the budget (the elastic
    # budget's overrun), and the checker allows exactly what raising the need costs.
    hh = big_need(household, "2027-02-28", tax_budget=0.0)
    out = solve_household(hh, ModelSettings(), solver)
    assert out.status == "traded"
    assert out.proposal.sell.tolist() == pytest.approx([4_500.0, 0.0], abs=1e-6)
    assert out.budget_overrun["tax_budget"] == pytest.approx(36_000.0, abs=0.01)
    assert _check(hh, out.proposal) == []
    # selling recent too (more tax than the need requires) breaks the budget
    more = out.proposal.sell + np.array([0.0, 100.0])
    cash = out.proposal.final_cash + 10_000.0
    v = check_proposal(hh, more, out.proposal.buy_account, out.proposal.buy_security,
                       out.proposal.buy_quantity, cash, CheckRules())
    assert [x.rule for x in v] == ["tax_budget"]
    assert "for its $500,000.00 of cash needs due" in v[0].message
