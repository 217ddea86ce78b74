"""Concentration limits on groups of securities: a sector (``max_sector_share``, over
the securities of one ``securities.sector``) and an issuer (``max_position_share``
over the securities that share a ``securities.issuer``, e.g. two share classes).
A group above its limit is wound down over nights within the tax budget, the
cheapest tax first, none of its securities is bought, no buy takes a group above
its limit, and the checker flags a buy that does. Hand-solved households here.

Every price is $100, no trading costs, lt_rate 20%, one taxable account on a 60/40
us_equity/bonds target, so only the concentration rule trades. A share's gain g
is priced at g x 0.20 x (1 - 1.05^-10) = 0.0772173 g (the tax now less its value at
the horizon); its tax this year is 0.20 g.

The sector household (``tech``), $1,000,000:
- MSFT (technology, not in the model): lot msft1, 200 shares bought at $50 (gain
  $50: priced 3.86 cents a dollar sold, $10 of tax a share); lot msft2, 2,300
  shares at $10 (gain $90: 6.95 cents, $18);
- AAPL (technology, not in the model): 2,000 shares at $30 (gain $70: 5.41 cents, $14);
- VTI (us_equity, rank 1, no sector): 1,500 shares; BND (bonds): 4,000 shares.
Technology is $450,000; a 30% sector limit is $300,000: $150,000 above it, and the
25% wind-down asks for $37,500 tonight.
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

ALL = ModelSettings(concentration_scope="all")
LOW_WEIGHT = ModelSettings(concentration_weight=0.01)  # below every lot's priced tax


def tech(household, **kw):
    base = dict(
        account_ids=("taxable",), account_type=[TAXABLE],
        security_ids=("MSFT", "AAPL", "VTI", "BND"), asset_class=[0, 0, 0, 1],
        price=[100.0] * 4, classes=("us_equity", "bonds", "cash"), target=[0.6, 0.4, 0.0],
        rank=[0, 0, 1, 1], cost_rate=[0.0] * 4,
        sector=("technology", "technology", None, None),
        lot_ids=("msft1", "msft2", "aapl", "vti", "bnd"), lot_account=[0] * 5,
        lot_security=[0, 0, 1, 2, 3], quantity=[200.0, 2300.0, 2000.0, 1500.0, 4000.0],
        cost_basis=[10_000.0, 23_000.0, 60_000.0, 150_000.0, 400_000.0],
        acquired=["2020-01-02", "2015-03-02", "2015-03-02", "2020-01-02", "2020-01-02"],
        max_sector_share=0.3)
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


def test_the_sector_above_its_limit_is_found(household):
    hh = tech(household)
    d = derive(hh, ModelSettings())
    assert d.groups.name == ("sector technology",)  # no position limit: no issuer groups
    assert d.groups.limit.tolist() == [300_000.0]
    assert d.groups.current.tolist() == [450_000.0]
    assert d.limited.tolist() == [True, True, False, False]
    assert d.concentrated.tolist() == [True, True, False, False]
    # the run's default where the household has none; none anywhere: no groups
    unset = tech(household, max_sector_share=None)
    assert derive(unset, ModelSettings()).groups.name == ()
    assert derive(unset, ModelSettings(max_sector_share=0.3)).concentrated.tolist() == [
        True, True, False, False]
    # at 50% technology ($450,000 of $500,000 allowed) is under its limit
    assert not derive(tech(household, max_sector_share=0.5), ModelSettings()).concentrated.any()


def test_the_first_night_sells_the_wind_down_share_cheapest_tax_first(household, solver):
    # concentration_weight 0.01 is below every lot's priced tax, so only the wind-down
    # sells: $37,500, from the lot whose tax costs least a dollar first: msft1 (3.86
    # cents), all 200 shares = $20,000, then AAPL (5.41 cents): 175 shares = $17,500;
    # msft2 (6.95 cents) is kept. The proceeds buy 375 VTI (same class, no drift).
    hh = tech(household)
    out = solve_household(hh, LOW_WEIGHT, solver)
    assert out.status == "traded"
    assert trades(hh, out) == pytest.approx(
        {("sell", "MSFT"): 200.0, ("sell", "AAPL"): 175.0, ("buy", "VTI"): 375.0}, abs=1e-6)
    assert out.proposal.sell[1] == 0.0  # not the low-basis msft2 lot
    assert reasons(hh, out) == ["concentration"]


def test_a_tax_budget_below_the_wind_down_bounds_the_sale(household, solver):
    # a $3,000 budget: msft1's 200 shares cost $2,000 of tax ($10 a share, the least
    # tax per dollar sold), the other $1,000 sells 1,000 / 14 = 71.428571 AAPL; the
    # $27,142.86 sold is short of the wind-down's $37,500 and the rest waits
    hh = tech(household, tax_budget=3_000.0)
    out = solve_household(hh, LOW_WEIGHT, solver)
    assert out.status == "traded"
    assert trades(hh, out) == pytest.approx(
        {("sell", "MSFT"): 200.0, ("sell", "AAPL"): 71.428571, ("buy", "VTI"): 271.428571},
        abs=2e-6)
    assert out.budget_overrun == {}
    assert reasons(hh, out) == ["concentration"]


def test_where_selling_pays_the_sector_goes_to_its_limit_in_one_night(household, solver):
    # the default weight (10 cents a dollar above the limit) beats every lot's priced
    # tax: all $150,000 goes tonight, msft1 (200 shares) then AAPL (1,300 shares),
    # leaving technology at 700 AAPL + 2,300 MSFT = $300,000; the next night there is
    # nothing to do
    hh = tech(household)
    out = solve_household(hh, ModelSettings(), solver)
    assert trades(hh, out) == pytest.approx(
        {("sell", "MSFT"): 200.0, ("sell", "AAPL"): 1300.0, ("buy", "VTI"): 1500.0}, abs=1e-6)
    after = tech(household, lot_ids=("msft2", "aapl", "vti", "bnd"), lot_account=[0] * 4,
                 lot_security=[0, 1, 2, 3], quantity=[2300.0, 700.0, 3000.0, 4000.0],
                 cost_basis=[23_000.0, 21_000.0, 300_000.0, 400_000.0],
                 acquired=["2015-03-02", "2015-03-02", "2020-01-02", "2020-01-02"])
    assert derive(after, ModelSettings()).groups.current.tolist() == [300_000.0]
    nxt = solve_household(after, ModelSettings(), solver)
    assert nxt.status == "no_trade"
    assert reasons(after, nxt) == []


def share_classes(household, *, issuer=("Alphabet", "Alphabet", None, None), **kw):
    """An issuer in two share classes: GOOGL 1,500 shares at $20 (gain $80) and GOOG
    1,500 shares at $60 (gain $40: 3.09 cents a dollar priced), neither in the model,
    $150,000 each; VTI $300,000, BND $400,000; a 20% position limit ($200,000)."""
    base = dict(
        account_ids=("taxable",), account_type=[TAXABLE],
        security_ids=("GOOGL", "GOOG", "VTI", "BND"), asset_class=[0, 0, 0, 1],
        price=[100.0] * 4, classes=("us_equity", "bonds", "cash"), target=[0.6, 0.4, 0.0],
        rank=[0, 0, 1, 1], cost_rate=[0.0] * 4, issuer=issuer,
        lot_ids=("googl", "goog", "vti", "bnd"), lot_account=[0] * 4, lot_security=[0, 1, 2, 3],
        quantity=[1500.0, 1500.0, 3000.0, 4000.0],
        cost_basis=[30_000.0, 90_000.0, 300_000.0, 400_000.0],
        acquired=["2015-03-02", "2015-03-02", "2020-01-02", "2020-01-02"],
        max_position_share=0.2)
    base.update(kw)
    return household(**base)


def test_two_share_classes_of_one_issuer_are_limited_together(household, solver):
    # each class alone ($150,000) is under the $200,000 limit: without an issuer
    # nothing trades. As one issuer they are $300,000, $100,000 above: the wind-down
    # sells $25,000 of the class whose tax costs least, GOOG: 250 shares
    apart = share_classes(household, issuer=(None, None, None, None))
    assert derive(apart, LOW_WEIGHT).groups.name == ("GOOGL", "GOOG")
    out = solve_household(apart, LOW_WEIGHT, solver)
    assert out.status == "no_trade"
    assert reasons(apart, out) == []
    hh = share_classes(household)
    d = derive(hh, LOW_WEIGHT)
    assert d.groups.name == ("Alphabet",)
    assert d.groups.current.tolist() == [300_000.0]
    assert d.concentrated.tolist() == [True, True, False, False]
    out = solve_household(hh, LOW_WEIGHT, solver)
    assert trades(hh, out) == pytest.approx({("sell", "GOOG"): 250.0, ("buy", "VTI"): 250.0},
                                            abs=1e-6)
    assert reasons(hh, out) == ["concentration"]


def test_an_issuer_above_its_limit_is_not_bought(household, solver):
    # scope "all"; GOOG is the model's first us_equity choice (rank 1, none held),
    # GOOGL a legacy holding under no_sell, $250,000; VTI (rank 2) $150,000, ITOT
    # (rank 3) $200,000, both bought at $60 (a sale costs tax, so neither is sold for
    # the preferred GOOG), BND and AGG (bonds) $200,000 each. A $100,000 contribution:
    # V = $1,100,000, a 20% limit $220,000; us_equity needs $60,000, bonds $40,000.
    # Apart, GOOG is bought: 600 shares. As one issuer with GOOGL, Alphabet is above
    # its limit: GOOG is never bought and VTI takes the $60,000 (to $210,000). Bonds:
    # BND up to its limit (200 shares), AGG the other 200.
    def book(issuer):
        return household(
            account_ids=("taxable",), account_type=[TAXABLE], contribution=[100_000.0],
            security_ids=("GOOGL", "GOOG", "VTI", "ITOT", "BND", "AGG"),
            asset_class=[0, 0, 0, 0, 1, 1], price=[100.0] * 6,
            classes=("us_equity", "bonds", "cash"), target=[0.6, 0.4, 0.0],
            rank=[0, 1, 2, 3, 1, 2], cost_rate=[0.0] * 6, issuer=issuer,
            lot_ids=("googl", "vti", "itot", "bnd", "agg"), lot_account=[0] * 5,
            lot_security=[0, 2, 3, 4, 5], quantity=[2500.0, 1500.0, 2000.0, 2000.0, 2000.0],
            cost_basis=[250_000.0, 90_000.0, 120_000.0, 200_000.0, 200_000.0],
            restrictions=(Restriction("no_sell", security="GOOGL"),), max_position_share=0.2)

    apart = book((None,) * 6)
    out = solve_household(apart, ALL, solver)
    assert trades(apart, out) == pytest.approx(
        {("buy", "GOOG"): 600.0, ("buy", "BND"): 200.0, ("buy", "AGG"): 200.0}, abs=1e-6)
    hh = book(("Alphabet", "Alphabet", None, None, None, None))
    assert derive(hh, ALL).concentrated.tolist() == [True, True, False, False, False, False]
    out = solve_household(hh, ALL, solver)
    assert trades(hh, out) == pytest.approx(
        {("buy", "VTI"): 600.0, ("buy", "BND"): 200.0, ("buy", "AGG"): 200.0}, abs=1e-6)
    assert reasons(hh, out) == ["concentration"]  # Alphabet is still above its limit


def funds(household, **kw):
    """Two technology funds and a broad one, scope "all": XLK (rank 1) and VGT (rank 2)
    in technology, VTI (rank 3, no sector); BND $400,000 and $600,000 of cash to put
    into us_equity; a 25% sector limit ($250,000)."""
    base = dict(
        account_ids=("taxable",), account_type=[TAXABLE], cash=[600_000.0],
        security_ids=("XLK", "VGT", "VTI", "BND"), asset_class=[0, 0, 0, 1],
        price=[100.0] * 4, classes=("us_equity", "bonds", "cash"), target=[0.6, 0.4, 0.0],
        rank=[1, 2, 3, 1], cost_rate=[0.0] * 4,
        sector=("technology", "technology", None, None),
        lot_ids=("bnd",), lot_account=[0], lot_security=[3], quantity=[4000.0],
        cost_basis=[400_000.0], max_sector_share=0.25)
    base.update(kw)
    return household(**base)


def test_a_buy_never_takes_a_sector_above_its_limit(household, solver):
    # without the limit all $600,000 goes into XLK (rank 1). With it (scope "all")
    # XLK stops at $250,000 (2,500 shares); VGT (rank 2) is technology too, so the
    # other $350,000 buys VTI (rank 3). By default (scope "unlisted") the model's
    # funds are not limited: all into XLK.
    free = funds(household, max_sector_share=None)
    assert trades(free, solve_household(free, ALL, solver)) == pytest.approx(
        {("buy", "XLK"): 6000.0}, abs=1e-6)
    hh = funds(household)
    out = solve_household(hh, ALL, solver)
    assert trades(hh, out) == pytest.approx({("buy", "XLK"): 2500.0, ("buy", "VTI"): 3500.0},
                                            abs=1e-6)
    assert reasons(hh, out) == []  # at the limit, not above it
    p = out.proposal
    assert check_proposal(hh, p.sell, p.buy_account, p.buy_security, p.buy_quantity,
                          p.final_cash, CheckRules(concentration_scope="all")) == []
    out = solve_household(hh, ModelSettings(), solver)
    assert trades(hh, out) == pytest.approx({("buy", "XLK"): 6000.0}, abs=1e-6)


def test_the_checker_flags_a_buy_above_a_sector_limit(household):
    hh = funds(household)
    rules = CheckRules(concentration_scope="all")
    none = np.zeros(1)
    bad = check_proposal(hh, none, [0], [0], [6000.0], np.zeros(1), rules)
    assert [(x.rule, x.record) for x in bad] == [("concentration", "XLK")]
    assert bad[0].message == ("sector technology (XLK, VGT) bought to $600,000.00, above the "
                              "sector limit 25.00% of $1,000,000.00 = $250,000.00")
    # two technology funds that together pass the limit: each buy is named
    bad = check_proposal(hh, none, [0, 0, 0], [0, 1, 2], [2000.0, 1000.0, 3000.0],
                         np.zeros(1), rules)
    assert [(x.rule, x.record) for x in bad] == [("concentration", "XLK"),
                                                 ("concentration", "VGT")]
    assert "bought to $300,000.00, above the sector limit" in bad[0].message
    # at the limit is no violation; the run's default applies where the household has none
    assert check_proposal(hh, none, [0, 0], [0, 2], [2500.0, 3500.0], np.zeros(1), rules) == []
    unset = funds(household, max_sector_share=None)
    assert check_proposal(unset, none, [0], [0], [6000.0], np.zeros(1), rules) == []
    assert len(check_proposal(unset, none, [0], [0], [6000.0], np.zeros(1),
                              CheckRules(concentration_scope="all", max_sector_share=0.25))) == 1
    # by default (scope "unlisted") the model's funds are not limited
    assert check_proposal(hh, none, [0], [0], [6000.0], np.zeros(1), CheckRules()) == []


def test_the_checker_flags_a_buy_above_an_issuer_limit(household):
    # scope "all", GOOG in the model: buying 600 GOOG ($60,000) with $150,000 of GOOGL
    # held takes Alphabet
    # to $210,000 against a limit of 20% of $1,000,000; 500 shares is at it
    hh = share_classes(household, cash=[60_000.0], rank=[0, 1, 1, 1],
                       lot_ids=("googl", "vti", "bnd"),
                       lot_security=[0, 2, 3], lot_account=[0] * 3,
                       quantity=[1500.0, 3900.0, 4000.0],
                       cost_basis=[30_000.0, 390_000.0, 400_000.0],
                       acquired=["2015-03-02", "2020-01-02", "2020-01-02"])
    rules = CheckRules(concentration_scope="all")
    none = np.zeros(3)
    bad = check_proposal(hh, none, [0], [1], [600.0], np.zeros(1), rules)
    assert [(x.rule, x.record) for x in bad] == [("concentration", "GOOG")]
    assert bad[0].message == ("issuer Alphabet (GOOGL, GOOG) bought to $210,000.00, above the "
                              "position limit 20.00% of $1,000,000.00 = $200,000.00")
    assert check_proposal(hh, none, [0], [1], [500.0], np.array([10_000.0]), rules) == []
    apart = share_classes(household, issuer=(None, None, None, None), cash=[60_000.0],
                          rank=[0, 1, 1, 1],
                          lot_ids=("googl", "vti", "bnd"), lot_security=[0, 2, 3],
                          lot_account=[0] * 3, quantity=[1500.0, 3900.0, 4000.0],
                          cost_basis=[30_000.0, 390_000.0, 400_000.0])
    assert check_proposal(apart, none, [0], [1], [600.0], np.zeros(1), rules) == []
