"""The household solve, rule by rule, on small households with known answers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hearth.model.build import derive
from hearth.model.estimates import estimate
from hearth.model.household import TAXABLE, TRADITIONAL, Restriction
from hearth.model.lp import ModelSettings
from hearth.model.review import ReviewThresholds, review_reasons
from hearth.model.solve import solve_household

S = ModelSettings(min_trade_value=0.0)
DISC = (1.05) ** -10  # (1 + d)^-H with the defaults


@pytest.fixture
def harvestable(household):
    """Taxable: 100 VTI bought at $130 now $100 (a $3,000 short-term loss) and 100
    BND at cost; 50/50 target, in band. ITOT is VTI's rank-2 substitute; VTSAX
    is substantially identical to VTI (same wash group)."""
    def make(**kw):
        base = dict(
            account_ids=("tax",), account_type=[TAXABLE],
            security_ids=("VTI", "ITOT", "VTSAX", "BND"), asset_class=[0, 0, 0, 1],
            price=[100.0, 50.0, 100.0, 100.0], classes=("stocks", "bonds", "cash"),
            target=[0.5, 0.5, 0.0], wash_group=[0, 1, 0, 2], wash_groups=("VTI", "ITOT", "BND"),
            rank=[1, 2, 2, 1], lot_ids=("vti", "bnd"), lot_account=[0, 0], lot_security=[0, 3],
            quantity=[100.0, 100.0], cost_basis=[13_000.0, 10_000.0],
            acquired=["2026-06-01", "2020-01-02"])
        base.update(kw)
        return household(**base)
    return make


def test_harvest_sells_the_loss_and_buys_the_substitute(harvestable, solver):
    hh = harvestable()
    out = solve_household(hh, S, solver)
    p = out.proposal
    assert out.status == "traded"
    assert p.sell.tolist() == pytest.approx([100.0, 0.0])
    bought = dict(zip(p.buy_security.tolist(), p.buy_quantity.tolist()))
    assert set(bought) == {1}  # ITOT only: never VTI or VTSAX (W3)
    assert bought[1] * 50.0 == pytest.approx(100 * 100.0 * (1 - 0.0005) / (1 + 0.0005))
    est = estimate(hh, out.derived, S, p.sell, p.buy_account, p.buy_security, p.buy_quantity)
    assert est.tlh_losses == pytest.approx(3_000.0)
    assert est.harvest_value == pytest.approx(3_000.0 * (0.37 - 0.20 * DISC))


def test_recent_purchase_blocks_the_harvest_w1(harvestable, solver):
    hh = harvestable(txn_group=np.array([0]), txn_date=np.array(["2026-11-05"], "datetime64[D]"),
                     txn_buy=np.array([True]), txn_realized_gain=np.array([np.nan]))
    out = solve_household(hh, S, solver)
    assert out.status == "no_trade"
    out = solve_household(hh, ModelSettings(min_trade_value=0.0, always_solve=True), solver)
    assert out.proposal.sell[0] == 0.0


def test_purchase_31_days_ago_does_not_block(harvestable, solver):
    hh = harvestable(txn_group=np.array([0]), txn_date=np.array(["2026-10-20"], "datetime64[D]"),
                     txn_buy=np.array([True]), txn_realized_gain=np.array([np.nan]))
    assert solve_household(hh, S, solver).proposal.sell[0] == pytest.approx(100.0)


def test_recent_loss_sale_blocks_buying_the_group_w2(household, solver):
    # cash to invest; VTI had a loss sale 10 days ago, so the buy goes to ITOT
    hh = household(
        account_ids=("tax",), account_type=[TAXABLE], cash=[10_000.0],
        security_ids=("VTI", "ITOT"), asset_class=[0, 0], price=[100.0, 50.0],
        classes=("stocks", "cash"), target=[1.0, 0.0], rank=[1, 2],
        lot_ids=(), lot_account=[], lot_security=[], quantity=[], cost_basis=[], acquired=[],
        txn_group=np.array([0]), txn_date=np.array(["2026-11-10"], "datetime64[D]"),
        txn_buy=np.array([False]), txn_realized_gain=np.array([-400.0]))
    p = solve_household(hh, S, solver).proposal
    assert p.buy_security.tolist() == [1]


def test_tax_budget_binds(stock_bond_household, solver):
    # overweight stock with only a long-term gain lot: $50/share gain at 20%;
    # a $300 budget allows 30 shares
    hh = stock_bond_household(lot_ids=("gain",), quantity=[100.0], cost_basis=[5_000.0],
                              tax_budget=300.0, cost_rate=[0.0, 0.0])
    out = solve_household(hh, S, solver)
    assert out.proposal.sell[0] == pytest.approx(30.0)


def test_harvested_losses_buy_room_in_the_tax_budget(stock_bond_household, solver):
    hh = stock_bond_household(
        lot_ids=("gain", "loss"), quantity=[100.0, 10.0], cost_basis=[5_000.0, 1_500.0],
        acquired=["2020-01-02", "2019-01-02"], tax_budget=300.0, cost_rate=[0.0, 0.0])
    out = solve_household(hh, S, solver)
    # the loss lot (10 shares, -$500 at 20% = -$100) raises the room to $400: 40 shares
    assert out.proposal.sell.tolist() == pytest.approx([40.0, 10.0])


def test_turnover_limit_binds(stock_bond_household, solver):
    hh = stock_bond_household(lot_ids=("a",), quantity=[100.0], cost_basis=[10_000.0],
                              turnover_limit=0.1, cost_rate=[0.0, 0.0])
    p = solve_household(hh, S, solver).proposal
    traded = p.sell[0] * 100 + (p.buy_quantity * 100).sum()
    assert traded / 2 == pytest.approx(1_000.0)


def test_withdrawal_is_raised_even_at_a_tax_cost(household, solver):
    hh = household(
        account_ids=("tax",), account_type=[TAXABLE], withdrawal=[2_000.0], min_cash=[100.0],
        security_ids=("STK",), asset_class=[0], price=[100.0], classes=("stocks", "cash"),
        target=[1.0, 0.0], lot_ids=("gain",), lot_account=[0], lot_security=[0],
        quantity=[100.0], cost_basis=[1_000.0], cost_rate=[0.0])
    out = solve_household(hh, S, solver)
    assert out.status == "traded"
    assert out.proposal.sell[0] == pytest.approx(21.0)  # 2,000 + 100 min cash
    assert out.proposal.final_cash[0] == pytest.approx(100.0)


def test_unfundable_withdrawal_explains_itself(household, solver):
    hh = household(
        account_ids=("tax",), account_type=[TAXABLE], withdrawal=[12_000.0], cash=[500.0],
        security_ids=("STK", "OTH"), asset_class=[0, 0], price=[100.0, 100.0],
        classes=("stocks", "cash"), target=[1.0, 0.0], lot_ids=("a", "b"), lot_account=[0, 0],
        lot_security=[0, 1], quantity=[90.0, 50.0], cost_basis=[9_000.0, 5_000.0],
        cost_rate=[0.0, 0.0], restrictions=(Restriction("no_sell", security="OTH"),))
    out = solve_household(hh, S, solver)
    assert out.status == "infeasible"
    assert out.message.startswith("withdrawal of $12,000.00 from account tax exceeds")
    assert "sellable value $9,000.00" in out.message and "short by $2,500.00" in out.message


def test_no_hold_sells_everything_even_at_a_gain(household, solver):
    hh = household(
        account_ids=("tax", "ira"), account_type=[TAXABLE, TRADITIONAL],
        security_ids=("MO", "VTI"), asset_class=[0, 0], price=[50.0, 100.0],
        sector=("tobacco", None), classes=("stocks", "cash"), target=[1.0, 0.0],
        lot_ids=("t", "i"), lot_account=[0, 1], lot_security=[0, 0], quantity=[100.0, 40.0],
        cost_basis=[1_000.0, 1_000.0], restrictions=(Restriction("no_hold", sector="tobacco"),))
    out = solve_household(hh, S, solver)
    assert out.proposal.sell.tolist() == pytest.approx([100.0, 40.0])
    assert 0 not in out.proposal.buy_security.tolist()


def test_menu_limits_what_an_account_buys(household, solver):
    hh = household(
        account_ids=("401k",), account_type=[TRADITIONAL], cash=[10_000.0],
        security_ids=("VTI", "FXAIX"), asset_class=[0, 0], price=[100.0, 50.0],
        classes=("stocks", "cash"), target=[1.0, 0.0], rank=[1, 2],
        menu=np.array([[False, True]]),
        lot_ids=(), lot_account=[], lot_security=[], quantity=[], cost_basis=[], acquired=[])
    p = solve_household(hh, S, solver).proposal
    assert p.buy_security.tolist() == [1]


def test_untradable_account_counts_toward_exposure_but_never_trades(household, solver):
    hh = household(
        account_ids=("tax", "held"), account_type=[TAXABLE, TAXABLE], cash=[10_000.0, 0.0],
        tradable=np.array([True, False]),
        security_ids=("STK", "BND"), asset_class=[0, 1], price=[100.0, 100.0],
        classes=("stocks", "bonds", "cash"), target=[0.5, 0.5, 0.0],
        lot_ids=("x",), lot_account=[1], lot_security=[0], quantity=[100.0], cost_basis=[1.0])
    p = solve_household(hh, S, solver).proposal
    assert p.sell[0] == 0.0
    assert p.buy_security.tolist() == [1]  # the new money goes to bonds only


def test_minimum_trade_size(household, solver):
    # $30 of new cash would buy two $15 slivers; with a $50 minimum nothing tiny is bought
    hh = household(
        account_ids=("tax",), account_type=[TAXABLE], cash=[30.0], contribution=[0.0],
        security_ids=("STK", "BND"), asset_class=[0, 1], price=[10.0, 10.0],
        classes=("stocks", "bonds", "cash"), target=[0.5, 0.5, 0.0],
        lot_ids=("a", "b"), lot_account=[0, 0], lot_security=[0, 1], quantity=[5.0, 2.0],
        cost_basis=[50.0, 20.0], drift_threshold=0.0)
    out = solve_household(hh, ModelSettings(min_trade_value=50.0), solver)
    p = out.proposal
    for q, s in zip(p.buy_quantity, p.buy_security):
        assert q * hh.price[s] >= 50.0 - 0.01
    sold = p.sell * hh.price[hh.lot_security]
    for l in np.flatnonzero(p.sell):
        assert sold[l] >= 50.0 - 0.01 or p.sell[l] == pytest.approx(hh.quantity[l])


def test_whole_shares(household, solver):
    hh = household(
        account_ids=("tax",), account_type=[TAXABLE], cash=[1_000.0],
        security_ids=("STK", "BND"), asset_class=[0, 1], price=[33.0, 70.0],
        classes=("stocks", "bonds", "cash"), target=[0.5, 0.5, 0.0],
        lot_ids=(), lot_account=[], lot_security=[], quantity=[], cost_basis=[], acquired=[])
    p = solve_household(hh, ModelSettings(whole_shares=True, min_trade_value=0.0), solver).proposal
    assert np.allclose(p.buy_quantity, np.round(p.buy_quantity))
    assert p.final_cash[0] >= 0.0


def test_lexicographic_holds_the_first_stage_drift(household, solver):
    # Only a big short-term gain lot can fix the drift: weighted mode balances tax
    # against drift, lexicographic fixes the drift first.
    kw = dict(account_ids=("tax",), account_type=[TAXABLE],
              security_ids=("STK", "BND"), asset_class=[0, 1], price=[100.0, 100.0],
              classes=("stocks", "bonds", "cash"), target=[0.5, 0.5, 0.0],
              lot_ids=("gain",), lot_account=[0], lot_security=[0], quantity=[100.0],
              cost_basis=[1_000.0], acquired=["2026-06-01"], drift_threshold=0.05)
    weighted = solve_household(household(**kw), ModelSettings(drift_weight_out=0.1), solver)
    lexi = solve_household(household(**kw), ModelSettings(drift_weight_out=0.1,
                                                          objective="lexicographic"), solver)
    assert weighted.proposal.sell[0] == pytest.approx(0.0)
    assert lexi.proposal.sell[0] == pytest.approx(45.0, abs=0.1)  # to the band's edge


def test_warm_start_changes_speed_not_the_answer(harvestable, solver):
    hh = harvestable(withdrawal=[500.0])
    cold = solve_household(hh, S, solver)
    assert cold.warm is not None and not cold.warm_started
    warm = solve_household(hh, S, solver, cold.warm)
    assert warm.warm_started
    assert warm.iterations <= cold.iterations
    assert np.allclose(warm.proposal.sell, cold.proposal.sell)
    assert np.allclose(warm.proposal.buy_quantity, cold.proposal.buy_quantity)


def test_a_warm_start_does_not_stop_on_the_wrong_side_of_a_tie_break():
    """Two interchangeable buys whose tie-break costs differ by 5e-8 a share (where two
    columns' quasi-random weights fall close): started from the dearer one basic, the
    solve must still end on the cheaper, as a cold start does (HiGHS's default dual
    tolerance of 1e-7 would call the dearer optimal and keep it)."""
    from hearth.model.highs import Solver
    from hearth.model.lp import Layout, LinearProgram
    from hearth.model.warm import BASIC, LOWER

    none = np.zeros(0, dtype=np.int64)
    lp = LinearProgram(cost=np.array([1.0, 1.0 + 5e-8]), lower=np.zeros(2),
                       upper=np.full(2, 100.0), row_lower=np.array([100.0]),
                       row_upper=np.array([100.0]), a_start=np.array([0, 1, 2], dtype=np.int32),
                       a_index=np.array([0, 0], dtype=np.int32), a_value=np.ones(2),
                       integrality=None,
                       layout=Layout(sell_lot=none, sell_mult=np.zeros(0), buy_account=none,
                                     buy_security=none, n_accounts=0, n_classes=0, rows={}))
    answers = []
    for basis in (None, (np.array([LOWER, BASIC], dtype=np.int8), np.array([LOWER], dtype=np.int8))):
        solver = Solver()
        solver.load(lp)
        if basis is not None:
            assert solver.set_basis(*basis)
        answers.append(solver.solve().x)
    assert answers[0] == pytest.approx([100.0, 0.0])
    assert answers[1] == pytest.approx([100.0, 0.0])


def test_review_routing():
    t = ReviewThresholds(turnover=0.2, tax_due=5_000, order_share=0.1)
    base = dict(status="traded", turnover=0.05, tax_due=100.0, largest_order=500.0,
                value=100_000.0, restricted_traded=False, t=t)
    assert review_reasons(**base) == []
    assert review_reasons(**{**base, "turnover": 0.3}) == ["turnover"]
    assert review_reasons(**{**base, "tax_due": 6_000.0}) == ["tax_due"]
    assert review_reasons(**{**base, "largest_order": 20_000.0}) == ["large_order"]
    assert review_reasons(**{**base, "restricted_traded": True}) == ["restricted_trade"]
    assert review_reasons(**{**base, "status": "infeasible"}) == ["status_infeasible"]


def test_derive_prices_short_and_long_lots(harvestable):
    d = derive(harvestable(), S)
    # VTI lot: short-term loss of $30/share: c = 0.37 - 0.20 * DISC
    assert d.tax_coef[0] == pytest.approx((0.37 - 0.20 * DISC) * -30.0)
    assert d.tax_coef[1] == 0.0  # bought at cost


def test_warm_start_by_identity_survives_a_new_lot_and_gives_the_cold_answer(harvestable, solver,
                                                                             household):
    cold = solve_household(harvestable(withdrawal=[500.0]), S, solver)
    changed = harvestable(withdrawal=[500.0], lot_ids=("vti", "bnd", "vti2"),
                          lot_account=[0, 0, 0], lot_security=[0, 3, 0],
                          quantity=[100.0, 100.0, 5.0], cost_basis=[13_000.0, 10_000.0, 400.0],
                          acquired=["2026-06-01", "2020-01-02", "2021-01-04"])
    out = solve_household(changed, S, solver, cold.warm)
    assert out.warm_started and out.status == "traded"  # the columns of vti and bnd are found
    again = solve_household(changed, S, solver)
    assert not again.warm_started
    assert np.allclose(out.proposal.sell, again.proposal.sell)
    assert np.allclose(out.proposal.buy_quantity, again.proposal.buy_quantity)
    # a basis none of whose keys exist tonight is no warm start
    stranger = solve_household(harvestable(withdrawal=[500.0], lot_ids=("x1", "x2")), S, solver,
                               dataclasses.replace(cold.warm, row_keys=("nope",)))
    assert stranger.status == "traded"


def test_an_lp_that_hits_its_time_limit_is_retried_cold_by_simplex_then_ipm(harvestable):
    from hearth.model.build import build
    from hearth.model.highs import Solver, SolveStatus

    hh = harvestable(withdrawal=[500.0])
    lp = build(hh, S, derive(hh, S))
    fine = Solver()
    fine.load(lp)
    r = fine.solve()
    assert r.status == SolveStatus.OPTIMAL and r.retried is None
    starved = Solver(time_limit=1e-12)
    starved.load(lp)
    r = starved.solve()
    assert r.status == SolveStatus.TIME_LIMIT and r.retried == "ipm"  # both retries ran


def test_warm_answers_checked_against_cold_ones(harvestable, solver):
    from hearth.model.solve import same_answer, warm_check_chosen

    ids = [f"H{i:07d}" for i in range(10_000)]
    chosen = sum(warm_check_chosen(h, 0.02) for h in ids)
    assert 150 <= chosen <= 250  # about the share asked for, the same ids every night
    assert [warm_check_chosen(h, 0.02) for h in ids[:50]] == [warm_check_chosen(h, 0.02) for h in ids[:50]]
    assert all(warm_check_chosen(h, 1.0) for h in ids[:10]) and not any(warm_check_chosen(h, 0.0) for h in ids[:10])

    hh = harvestable(withdrawal=[500.0])
    every = dataclasses.replace(S, warm_check_share=1.0)
    cold = solve_household(hh, every, solver)
    warm = solve_household(hh, every, solver, cold.warm)
    assert warm.warm_started and warm.warm_checked and not warm.warm_mismatch
    assert same_answer(warm, cold)
    p = cold.proposal
    nudged = dataclasses.replace(cold, proposal=dataclasses.replace(p, sell=p.sell + (p.sell > 0) * 1e-3))
    assert not same_answer(nudged, cold)  # a thousandth of a share is a different answer
