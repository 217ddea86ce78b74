"""Concentration limits: no security above ``max_position_share`` of household
value, a position above it wound down over nights within the tax budget, and
``concentration`` as a review reason. Hand-solved households with their trades here.

The household of most tests (``concentrated``): one taxable account worth
$1,000,000 with a 60/40 us_equity/bonds target, every price $100, holding
- XYZ, a single stock (us_equity, not in the model: never bought): 4,000 shares =
  $400,000, bought in 2015 for $40,000, so $90 of long-term gain a share;
- VTI (us_equity, rank 1): 2,000 shares, no gain;
- BND (bonds, rank 1): 4,000 shares, no gain.
No trading costs, lt_rate 20%. The household is on target (no drift), so only the
concentration rule trades it. Its limit is 20%: $200,000 of XYZ at most, $200,000
(2,000 shares) above it. By default (``concentration_scope = "unlisted"``) the limit
applies to what the model does not list, XYZ, not to the model's funds. Selling a
share of XYZ realizes $90 of gain, $18 of tax; its proceeds buy VTI, which keeps the
classes where they are.

The tax priced per share sold is 90 x (0.20 - 0.20 x 1.05^-10) = $6.95, i.e. 6.95
cents per dollar sold, below the default concentration_weight of 10 cents per
dollar above the limit: without a budget the household sells down to the limit.
"""

from __future__ import annotations

import numpy as np
import pytest

from hearth.model.build import concentration_shift, derive
from hearth.model.checker import CheckRules, check_proposal
from hearth.model.household import TAXABLE, Restriction
from hearth.model.lp import ModelSettings
from hearth.model.review import ReviewThresholds, review_reasons
from hearth.model.solve import solve_household

XYZ, VTI, BND = 0, 1, 2  # in ``concentrated``
SHARE_TAX = 18.0  # dollars of tax per XYZ share sold: $90 gain x 20%


def concentrated(household, *, xyz=4000.0, vti=2000.0, run_date="2026-11-20", **kw):
    base = dict(
        run_date=run_date,
        account_ids=("taxable",), account_type=[TAXABLE],
        security_ids=("XYZ", "VTI", "BND"), asset_class=[0, 0, 1], price=[100.0, 100.0, 100.0],
        classes=("us_equity", "bonds", "cash"), target=[0.6, 0.4, 0.0],
        rank=[0, 1, 1], cost_rate=[0.0, 0.0, 0.0],
        lot_ids=("xyz", "vti", "bnd"), lot_account=[0, 0, 0], lot_security=[XYZ, VTI, BND],
        quantity=[xyz, vti, 4000.0], cost_basis=[10.0 * xyz, 100.0 * vti, 400_000.0],
        acquired=["2015-03-02", "2020-01-02", "2020-01-02"], max_position_share=0.2)
    base.update(kw)
    return household(**base)


def trades(hh, out):
    """{("sell"|"buy", security): shares} of a proposal."""
    p = out.proposal
    got: dict[tuple[str, str], float] = {}
    for lot in np.flatnonzero(p.sell > 0):
        key = ("sell", hh.security_ids[hh.lot_security[lot]])
        got[key] = got.get(key, 0.0) + float(p.sell[lot])
    for s, q in zip(p.buy_security, p.buy_quantity):
        key = ("buy", hh.security_ids[s])
        got[key] = got.get(key, 0.0) + float(q)
    return got


def reasons(hh, out):
    p = out.proposal
    shift = concentration_shift(hh, out.derived, p.sell, p.buy_account, p.buy_security,
                                p.buy_quantity)
    return review_reasons(status=out.status, turnover=0.0, tax_due=0.0, largest_order=0.0,
                          value=out.derived.value, restricted_traded=False,
                          t=ReviewThresholds(), concentration=shift)


ALL = ModelSettings(concentration_scope="all")


def test_the_position_above_the_limit_is_found(household):
    # XYZ ($400,000) and BND ($400,000) are both 40% of $1,000,000; by default the
    # limit applies only to what the model does not list (XYZ), with scope "all"
    # to the model's BND too
    hh = concentrated(household)
    d = derive(hh, ModelSettings())
    assert d.position_limit == pytest.approx(200_000.0)
    assert d.current_by_security.tolist() == [400_000.0, 200_000.0, 400_000.0]
    assert d.limited.tolist() == [True, False, False]
    assert d.concentrated.tolist() == [True, False, False]
    assert derive(hh, ALL).concentrated.tolist() == [True, False, True]
    unset = concentrated(household, max_position_share=None)
    assert not derive(unset, ModelSettings()).limited.any()  # no limit anywhere: 1 by default
    assert derive(unset, ModelSettings(max_position_share=0.2)).concentrated.tolist() == [
        True, False, False]  # the run's default where the household has none


def one_stock(household, *, xyz=4000.0, vti=2000.0, itot=0.0, xyz_basis=40_000.0,
              run_date="2026-11-20", **kw):
    """For the limit on every security (scope "all"): the household with every other
    security at or under the limit: us_equity in VTI ($200,000, at the limit) and
    XYZ; ITOT (rank 2, none held) is where us_equity money can go; bonds in BND and
    AGG (rank 2), $200,000 each."""
    base = dict(
        run_date=run_date,
        account_ids=("taxable",), account_type=[TAXABLE],
        security_ids=("XYZ", "VTI", "ITOT", "BND", "AGG"), asset_class=[0, 0, 0, 1, 1],
        price=[100.0] * 5, classes=("us_equity", "bonds", "cash"), target=[0.6, 0.4, 0.0],
        rank=[0, 1, 2, 1, 2], cost_rate=[0.0] * 5,
        lot_ids=("xyz", "vti", "itot", "bnd", "agg"), lot_account=[0] * 5,
        lot_security=[0, 1, 2, 3, 4], quantity=[xyz, vti, itot, 2000.0, 2000.0],
        cost_basis=[xyz_basis, 100.0 * vti, 100.0 * itot, 200_000.0, 200_000.0],
        acquired=["2015-03-02", "2020-01-02", "2020-01-02", "2020-01-02", "2020-01-02"],
        max_position_share=0.2)
    if itot == 0.0:  # no ITOT lot
        for k in ("lot_ids", "lot_account", "lot_security", "quantity", "cost_basis", "acquired"):
            base[k] = [v for i, v in enumerate(base[k]) if i != 2]
        base["lot_ids"] = tuple(base["lot_ids"])
    base.update(kw)
    return household(**base)


def test_first_night_sells_what_the_20k_tax_budget_allows_and_goes_to_review(household,
                                                                               solver):
    # the wind-down asks for 25% of the $200,000 excess (500 shares, $9,000 of tax);
    # selling more pays (10 cents of concentration cost per dollar against 6.95 of
    # tax), up to the budget: 20,000 / 18 = 1,111.111111 shares, $111,111.11 into VTI
    hh = concentrated(household, tax_budget=20_000.0)
    out = solve_household(hh, ModelSettings(), solver)
    assert out.status == "traded"
    assert trades(hh, out) == pytest.approx(
        {("sell", "XYZ"): 1111.111111, ("buy", "VTI"): 1111.111111}, abs=2e-6)
    sold = out.proposal.sell[0]
    assert sold * SHARE_TAX <= 20_000.0 + 0.01
    assert reasons(hh, out) == ["concentration"]


def test_successive_nights_reach_the_limit(household, solver):
    # night 1 (2026): 1,111.111111 shares within the $20,000 budget; night 2 (a new
    # tax year): the rest of the excess, 888.888889 shares ($16,000 of tax), leaving
    # 2,000 shares = $200,000 = 20%; night 3: at the limit, nothing to do.
    s = ModelSettings()
    xyz, vti = 4000.0, 2000.0
    sold = []
    for night, date in enumerate(("2026-11-20", "2027-01-04", "2027-01-05")):
        hh = concentrated(household, xyz=xyz, vti=vti, tax_budget=20_000.0, run_date=date)
        out = solve_household(hh, s, solver)
        got = trades(hh, out)
        sold.append(got.get(("sell", "XYZ"), 0.0))
        xyz -= sold[-1]
        vti += got.get(("buy", "VTI"), 0.0)
        if night < 2:
            assert out.status == "traded"
            assert reasons(hh, out) == ["concentration"]
        else:
            assert out.status == "no_trade"
            assert reasons(hh, out) == []
    assert sold == pytest.approx([1111.111111, 888.888889, 0.0], abs=2e-6)
    assert xyz * 100.0 == pytest.approx(200_000.0, abs=0.01)
    assert vti == pytest.approx(4000.0, abs=1e-5)


def test_without_a_budget_and_wind_down_1_it_sells_to_the_limit_in_one_night(household,
                                                                              solver):
    hh = concentrated(household)
    # concentration_weight 0.05 is below the 6.95 cents of tax per dollar: only the
    # wind-down makes the sale, and at 1.0 it asks for all 2,000 shares
    s = ModelSettings(concentration_weight=0.05, concentration_wind_down=1.0)
    out = solve_household(hh, s, solver)
    assert out.status == "traded"
    assert trades(hh, out) == pytest.approx({("sell", "XYZ"): 2000.0, ("buy", "VTI"): 2000.0},
                                            abs=1e-6)
    assert reasons(hh, out) == ["concentration"]


def test_the_wind_down_is_the_least_pace(household, solver):
    # weight 0.05 < 6.95 cents of tax a dollar: the household sells only what the
    # wind-down asks, 25% of the $200,000 excess = 500 shares
    hh = concentrated(household)
    out = solve_household(hh, ModelSettings(concentration_weight=0.05), solver)
    assert trades(hh, out) == pytest.approx({("sell", "XYZ"): 500.0, ("buy", "VTI"): 500.0},
                                            abs=1e-6)
    # ... and with the default weight (0.10 > 6.95 cents) it goes to the limit at once
    out = solve_household(hh, ModelSettings(), solver)
    assert trades(hh, out) == pytest.approx({("sell", "XYZ"): 2000.0, ("buy", "VTI"): 2000.0},
                                            abs=1e-6)


def test_a_tax_budget_below_the_wind_down_bounds_the_sale(household, solver):
    # the wind-down asks for 500 shares ($9,000 of tax); a $5,000 budget allows
    # 5,000 / 18 = 277.777778 shares; the rest waits for the next nights
    hh = concentrated(household, tax_budget=5_000.0)
    out = solve_household(hh, ModelSettings(), solver)
    assert out.status == "traded"
    assert trades(hh, out) == pytest.approx(
        {("sell", "XYZ"): 277.777778, ("buy", "VTI"): 277.777778}, abs=2e-6)
    assert out.budget_overrun == {}  # the budget held: the wind-down gave way
    assert reasons(hh, out) == ["concentration"]


def test_a_zero_budget_sells_nothing_and_still_goes_to_review(household, solver):
    hh = concentrated(household, tax_budget=0.0)
    out = solve_household(hh, ModelSettings(), solver)
    assert out.status == "no_trade"
    assert out.proposal.n_trades == 0
    assert reasons(hh, out) == ["concentration"]  # still above the limit


def test_the_run_default_applies_where_the_household_has_none(household, solver):
    hh = concentrated(household, max_position_share=None)
    assert solve_household(hh, ModelSettings(), solver).status == "no_trade"  # no limit
    out = solve_household(hh, ModelSettings(max_position_share=0.2), solver)
    assert trades(hh, out) == pytest.approx({("sell", "XYZ"): 2000.0, ("buy", "VTI"): 2000.0},
                                            abs=1e-6)


def test_buys_never_take_a_security_above_the_limit(household, solver):
    # the limit on the model's funds too (scope "all"): $600,000 of cash to invest
    # in us_equity, BND $400,000 (40%), limit 45% ($450,000): without it all
    # $600,000 goes into VTI (rank 1); with it VTI stops at 4,500 shares and the
    # other $150,000 buys ITOT (rank 2). By default (scope "unlisted") the model's
    # funds are not limited: all into VTI.
    base = dict(
        account_ids=("taxable",), account_type=[TAXABLE], cash=[600_000.0],
        security_ids=("VTI", "ITOT", "BND"), asset_class=[0, 0, 1], price=[100.0] * 3,
        classes=("us_equity", "bonds", "cash"), target=[0.6, 0.4, 0.0], rank=[1, 2, 1],
        cost_rate=[0.0] * 3, lot_ids=("bnd",), lot_account=[0], lot_security=[2],
        quantity=[4000.0], cost_basis=[400_000.0])
    free = household(**base)
    out = solve_household(free, ALL, solver)
    assert trades(free, out) == pytest.approx({("buy", "VTI"): 6000.0}, abs=1e-6)
    capped = household(**base, max_position_share=0.45)
    out = solve_household(capped, ALL, solver)
    assert trades(capped, out) == pytest.approx({("buy", "VTI"): 4500.0, ("buy", "ITOT"): 1500.0},
                                                abs=1e-6)
    assert reasons(capped, out) == []  # nothing above the limit, before or after
    out = solve_household(capped, ModelSettings(), solver)
    assert trades(capped, out) == pytest.approx({("buy", "VTI"): 6000.0}, abs=1e-6)


def test_a_position_above_the_limit_is_never_bought(household, solver):
    # XYZ is in the model here (rank 1, a first us_equity choice; scope "all") but
    # above the limit and under no_sell. A $100,000 contribution: V = $1,100,000, the limit $220,000;
    # us_equity needs 660,000 - 600,000 = $60,000: VTI (rank 1) up to the limit,
    # 200 shares, ITOT the other 400; bonds need $40,000: BND 200 shares to the
    # limit, AGG 200. XYZ is neither bought nor sold.
    hh = one_stock(household, rank=[1, 1, 2, 1, 2], contribution=[100_000.0],
                   restrictions=(Restriction("no_sell", security="XYZ"),))
    out = solve_household(hh, ALL, solver)
    assert out.status == "traded"
    assert trades(hh, out) == pytest.approx(
        {("buy", "VTI"): 200.0, ("buy", "ITOT"): 400.0, ("buy", "BND"): 200.0,
         ("buy", "AGG"): 200.0}, abs=1e-6)
    assert reasons(hh, out) == ["concentration"]  # still above the limit


def test_the_checker_refuses_a_buy_above_the_limit(household, solver):
    # the independent checker re-derives the limit: buying all $600,000 into VTI
    # (to 60% against a 45% limit, scope "all") is a violation; the model's answer
    # (4,500 VTI + 1,500 ITOT) is not; by default (scope "unlisted") neither is
    hh = household(
        account_ids=("taxable",), account_type=[TAXABLE], cash=[600_000.0],
        security_ids=("VTI", "ITOT", "BND"), asset_class=[0, 0, 1], price=[100.0] * 3,
        classes=("us_equity", "bonds", "cash"), target=[0.6, 0.4, 0.0], rank=[1, 2, 1],
        cost_rate=[0.0] * 3, lot_ids=("bnd",), lot_account=[0], lot_security=[2],
        quantity=[4000.0], cost_basis=[400_000.0], max_position_share=0.45)
    rules = CheckRules(concentration_scope="all")
    no_sell = np.zeros(1)
    bad = check_proposal(hh, no_sell, [0], [0], [6000.0], np.zeros(1), rules)
    assert [(x.rule, x.record) for x in bad] == [("concentration", "VTI")]
    assert "above the position limit 45.00% of $1,000,000.00 = $450,000.00" in bad[0].message
    assert check_proposal(hh, no_sell, [0], [0], [6000.0], np.zeros(1), CheckRules()) == []
    out = solve_household(hh, ALL, solver)
    p = out.proposal
    assert check_proposal(hh, p.sell, p.buy_account, p.buy_security, p.buy_quantity,
                          p.final_cash, rules) == []


def test_the_checker_measures_after_tax_when_exposure_is_after_tax(household):
    # an IRA ($100,000, retirement_rate 25%) and a Roth ($100,000 of cash); limit 40%
    # of V. Pre-tax V = $200,000, limit $80,000: buying $80,000 of STK in the Roth is
    # at it. After tax V = 175,000, limit $70,000: the same buy is $10,000 above.
    hh = household(
        account_ids=("ira", "roth"), account_type=[1, 2], cash=[0.0, 100_000.0],
        security_ids=("STK", "BND"), asset_class=[0, 1], price=[100.0, 100.0],
        classes=("stocks", "bonds", "cash"), target=[0.5, 0.5, 0.0], retirement_rate=0.25,
        lot_ids=("ira-bnd",), lot_account=[0], lot_security=[1], quantity=[1000.0],
        cost_basis=[100_000.0], max_position_share=0.4, cost_rate=[0.0, 0.0])
    buy = dict(buy_account=[1], buy_security=[0], buy_quantity=[800.0],
               final_cash=np.array([0.0, 20_000.0]))
    pre = CheckRules(concentration_scope="all")
    after = CheckRules(concentration_scope="all", exposure_basis="after_tax")
    assert check_proposal(hh, np.zeros(1), rules=pre, **buy) == []
    bad = check_proposal(hh, np.zeros(1), rules=after, **buy)
    assert [(x.rule, x.record) for x in bad] == [("concentration", "STK")]
    assert "$80,000.00, above the position limit 40.00% of $175,000.00 = $70,000.00" in bad[0].message
