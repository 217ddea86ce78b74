"""After-tax exposure (``exposure_basis = "after_tax"``): a dollar in a traditional
account counts at (1 - retirement_rate) in the exposures, in the value targets
apply to and in drift. Hand-solved households with their trades here.

The household of every test: a traditional IRA (retirement_rate 25%) and a Roth,
$100,000 each, a 50/50 stocks/bonds target, STK and BND at $100, no trading costs.
STK is expected to return 8% and BND 4%, so in the IRA STK drags 0.08 x 0.25 = 2%
a year and BND 1%; in the Roth nothing drags: location wants bonds in the IRA.

- pre_tax: V = $200,000, $100,000 of each class; the IRA holds $100,000 of BND, the
  Roth $100,000 of STK.
- after_tax: V = 0.75 x 100,000 + 100,000 = $175,000, $87,500 of each class after
  tax. With the IRA all BND (75,000 after tax, the least IRA stock location allows),
  the Roth holds the other 87,500 - 75,000 = $12,500 of bonds and $87,500 of STK.
"""

from __future__ import annotations

import numpy as np
import pytest

from hearth.model.build import derive, exposure_weight
from hearth.model.household import ROTH, TAXABLE, TRADITIONAL
from hearth.model.lp import ModelSettings
from hearth.model.solve import drift_by_class, solve_household

PRE = ModelSettings()
AFTER = ModelSettings(exposure_basis="after_tax")


def ira_and_roth(household, *, lots: bool, **kw):
    """From cash ($100,000 in each account) or, with ``lots``, from the pre-tax
    optimum (IRA 1,000 BND, Roth 1,000 STK)."""
    held = dict(lot_ids=("ira-bnd", "roth-stk"), lot_account=[0, 1], lot_security=[1, 0],
                quantity=[1000.0, 1000.0], cost_basis=[100_000.0, 100_000.0])
    none = dict(lot_ids=(), lot_account=np.zeros(0, dtype=np.int64),
                lot_security=np.zeros(0, dtype=np.int64), quantity=np.zeros(0),
                cost_basis=np.zeros(0), acquired=np.zeros(0, dtype="datetime64[D]"))
    base = dict(
        account_ids=("ira", "roth"), account_type=[TRADITIONAL, ROTH],
        cash=[0.0, 0.0] if lots else [100_000.0, 100_000.0],
        security_ids=("STK", "BND"), asset_class=[0, 1], price=[100.0, 100.0],
        classes=("stocks", "bonds", "cash"), target=[0.5, 0.5, 0.0],
        expected_return=[0.08, 0.04], cost_rate=[0.0, 0.0], retirement_rate=0.25,
        **(held if lots else none))
    return household(**{**base, **kw})


def holdings(hh, p):
    """[account, security] pre-tax dollars after the proposal."""
    out = np.zeros((hh.n_accounts, hh.n_securities))
    np.add.at(out, (hh.lot_account, hh.lot_security),
              (hh.quantity - p.sell) * hh.price[hh.lot_security])
    np.add.at(out, (p.buy_account, p.buy_security), p.buy_quantity * hh.price[p.buy_security])
    return out


def test_exposure_weight_counts_only_traditional_dollars_after_tax(household):
    hh = household(
        account_ids=("t", "ira", "roth", "hsa", "529"),
        account_type=[TAXABLE, TRADITIONAL, ROTH, 3, 4], security_ids=("STK",),
        asset_class=[0], price=[100.0], classes=("stocks", "cash"), target=[1.0, 0.0],
        lot_ids=(), lot_account=[], lot_security=[], quantity=[], cost_basis=[], acquired=[],
        retirement_rate=0.3)
    assert exposure_weight(hh, PRE).tolist() == [1.0] * 5
    assert exposure_weight(hh, AFTER).tolist() == pytest.approx([1.0, 0.7, 1.0, 1.0, 1.0])


def test_from_cash_pre_tax_holds_100k_of_each_class(household, solver):
    hh = ira_and_roth(household, lots=False)
    out = solve_household(hh, PRE, solver)
    assert out.status == "traded"
    assert out.derived.target_value == pytest.approx(200_000.0)
    h = holdings(hh, out.proposal)
    assert h[0].tolist() == pytest.approx([0.0, 100_000.0], abs=0.01)  # IRA: all BND
    assert h[1].tolist() == pytest.approx([100_000.0, 0.0], abs=0.01)  # Roth: all STK
    assert out.proposal.final_cash.tolist() == pytest.approx([0.0, 0.0], abs=0.01)


def test_from_cash_after_tax_holds_87_5k_of_each_class_after_tax(household, solver):
    hh = ira_and_roth(household, lots=False)
    out = solve_household(hh, AFTER, solver)
    assert out.status == "traded"
    assert out.derived.target_value == pytest.approx(175_000.0)
    assert out.derived.value == pytest.approx(200_000.0)  # the household's value stays pre-tax
    h = holdings(hh, out.proposal)
    assert h[0].tolist() == pytest.approx([0.0, 100_000.0], abs=0.01)  # IRA: all BND
    assert h[1].tolist() == pytest.approx([87_500.0, 12_500.0], abs=0.01)  # Roth: STK + BND
    # 1,000 BND in the IRA; 875 STK and 125 BND in the Roth
    buys = {(hh.account_ids[a], hh.security_ids[s]): q for a, s, q in
            zip(out.proposal.buy_account, out.proposal.buy_security, out.proposal.buy_quantity)}
    assert buys == pytest.approx({("ira", "BND"): 1000.0, ("roth", "STK"): 875.0,
                                  ("roth", "BND"): 125.0}, abs=1e-6)
    # after tax: stocks 87,500; bonds 0.75 x 100,000 + 12,500 = 87,500
    after_tax = holdings(hh, out.proposal) * exposure_weight(hh, AFTER)[:, None]
    assert after_tax.sum(axis=0).tolist() == pytest.approx([87_500.0, 87_500.0], abs=0.01)


def test_the_pre_tax_optimum_is_left_alone_pre_tax(household, solver):
    hh = ira_and_roth(household, lots=True)
    out = solve_household(hh, PRE, solver)
    assert out.status == "no_trade"
    assert out.proposal.n_trades == 0


def test_the_pre_tax_optimum_is_rebalanced_after_tax(household, solver):
    # after tax the household holds 100,000 of stocks and 75,000 of bonds against
    # 87,500 each: 12,500 over and under, 25,000 / 175,000 = 14.29% total drift. The
    # Roth sells 125 STK and buys 125 BND (the IRA's BND is where location wants it).
    hh = ira_and_roth(household, lots=True)
    d = derive(hh, AFTER)
    before = drift_by_class(hh, d, d.current_by_class, d.start_cash)
    assert before.tolist() == pytest.approx([12_500.0, -12_500.0, 0.0])
    assert np.abs(before).sum() / d.target_value == pytest.approx(25_000 / 175_000)
    out = solve_household(hh, AFTER, solver)
    assert out.status == "traded"
    p = out.proposal
    assert p.sell.tolist() == pytest.approx([0.0, 125.0], abs=1e-6)
    assert [(hh.account_ids[a], hh.security_ids[s]) for a, s in zip(p.buy_account,
                                                                     p.buy_security)] == [
        ("roth", "BND")]
    assert p.buy_quantity.tolist() == pytest.approx([125.0], abs=1e-6)
    after = holdings(hh, p) * d.exposure_weight[:, None]
    assert after.sum(axis=0).tolist() == pytest.approx([87_500.0, 87_500.0], abs=0.01)


def test_drift_before_pre_tax_is_zero_and_after_tax_counts_the_ira_at_75_cents(household):
    hh = ira_and_roth(household, lots=True)
    pre = derive(hh, PRE)
    assert pre.current_by_class.tolist() == [100_000.0, 100_000.0, 0.0]
    assert drift_by_class(hh, pre, pre.current_by_class, pre.start_cash).tolist() == [0.0] * 3
    after = derive(hh, AFTER)
    assert after.current_by_class.tolist() == pytest.approx([100_000.0, 75_000.0, 0.0])


def test_ira_cash_and_contributions_count_after_tax_too(household):
    # $10,000 of IRA cash and a $4,000 IRA contribution: 14,000 x 0.75 = 10,500 after
    # tax; V = 10,500 + 100,000 (Roth STK) + 75,000 (IRA BND) = 185,500
    hh = ira_and_roth(household, lots=True, cash=[10_000.0, 0.0], contribution=[4_000.0, 0.0])
    d = derive(hh, AFTER)
    assert d.start_cash == pytest.approx(10_500.0)
    assert d.target_value == pytest.approx(185_500.0)
    assert derive(hh, PRE).target_value == pytest.approx(214_000.0)
