"""Interchangeable lots pooled into one column (hearth.model.pool): the same optimum
and the same trades as one column per lot, on a fraction of the columns."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hearth.model.build import build, derive, tie_break
from hearth.model.household import ROTH, TAXABLE, TRADITIONAL
from hearth.model.lp import ModelSettings
from hearth.model.pool import pool_untaxed_lots
from hearth.model.solve import _solve, solve_household
from hearth.model.warm import column_key

S = ModelSettings(min_trade_value=0.0)


@pytest.fixture
def monthly_ira(household):
    """A taxable account (two VTI lots, one at a loss) and an IRA that bought VTI every
    month for four years (48 lots, the last one 10 days ago: a possible wash
    replacement) and holds 40 BND lots; the household is 80/20 against a 50/50
    target, so the IRA sells VTI and buys BND."""
    def make(**kw):
        n_vti, n_bnd = 48, 40
        days = np.datetime64("2026-11-10") - 30 * np.arange(n_vti)[::-1]
        ira_lots = [f"ira-vti-{i:02d}" for i in range(n_vti)] + [f"ira-bnd-{i:02d}"
                                                                 for i in range(n_bnd)]
        base = dict(
            account_ids=("tax", "ira"), account_type=[TAXABLE, TRADITIONAL], cash=[0.0, 500.0],
            security_ids=("VTI", "ITOT", "BND"), asset_class=[0, 0, 1],
            price=[100.0, 50.0, 100.0], classes=("stocks", "bonds", "cash"),
            target=[0.5, 0.5, 0.0], rank=[1, 2, 1],
            lot_ids=("tax-vti-gain", "tax-vti-loss", *ira_lots),
            lot_account=[0, 0] + [1] * (n_vti + n_bnd),
            lot_security=[0, 0] + [0] * n_vti + [2] * n_bnd,
            quantity=[60.0, 40.0] + [10.5] * n_vti + [5.0] * n_bnd,
            cost_basis=[3_000.0, 5_000.0] + [900.0] * n_vti + [520.0] * n_bnd,
            acquired=["2019-03-01", "2026-02-01"] + [str(d) for d in days]
            + ["2020-01-02"] * n_bnd)
        base.update(kw)
        return household(**base)
    return make


def test_the_pooled_model_has_one_column_per_position_and_the_same_optimum(monthly_ira, solver):
    hh = monthly_ira()
    pools = pool_untaxed_lots(hh, S.wash_sale_days, S.whole_shares)
    assert pools is not None
    # 2 taxable lots, VTI in the IRA: 47 pooled + the recent lot, BND: 40 pooled
    assert pools.household.n_lots == 2 + 1 + 1 + 1
    assert pools.household.quantity.sum() == pytest.approx(hh.quantity.sum())
    per_lot = _solve(hh, derive(hh, S), S, solver, None)
    d_pooled = derive(pools.household, S)
    pooled = _solve(pools.household, d_pooled, S, solver, None)
    assert pooled.n_col == per_lot.n_col - (47 - 1) - (40 - 1)
    # the same objective once the tie-breaking cost (which differs by column) is taken out
    lp_a, lp_b = build(hh, S, derive(hh, S)), build(pools.household, S, d_pooled)
    values = []
    for h, d, lp in ((hh, derive(hh, S), lp_a), (pools.household, d_pooled, lp_b)):
        solver.load(lp)
        r = solver.solve()
        tb = tie_break(h, d, lp.layout)
        values.append(r.objective - float(tb @ r.x[: len(tb)]))
    assert values[0] == pytest.approx(values[1], abs=1e-6 * max(1.0, abs(values[0])))


def test_a_pooled_sale_takes_the_lots_in_their_stable_order(monthly_ira, solver):
    hh = monthly_ira()
    out = solve_household(hh, S, solver)
    assert out.status == "traded"
    sell = out.proposal.sell
    ira_vti = np.flatnonzero((hh.lot_account == 1) & (hh.lot_security == 0))
    sold = sell[ira_vti[:-1]]  # the recent lot (last) is apart from the pool
    assert sold.sum() > 0
    # whole lots first, then one partial lot, then nothing: the order of the book
    whole = np.isclose(sold, hh.quantity[ira_vti[:-1]])
    k = int(np.argmin(whole)) if not whole.all() else len(sold)
    assert whole[:k].all()
    assert (sold[k + 1:] == 0).all()
    # the same lines and quantities as one column per lot (canonical_untaxed_sells)
    per_lot = _solve(hh, derive(hh, S), S, solver, None)
    assert out.proposal.sell == pytest.approx(per_lot.proposal.sell, abs=1e-6)
    assert out.proposal.buy_quantity == pytest.approx(per_lot.proposal.buy_quantity, abs=1e-6)
    assert out.proposal.final_cash == pytest.approx(per_lot.proposal.final_cash, abs=1e-6)
    # the proposal is for the household's own lots, with its own derived arrays
    assert len(sell) == hh.n_lots and out.derived.lot_price.shape == (hh.n_lots,)


def test_nothing_pools_under_whole_shares_or_in_taxable_accounts(monthly_ira, household):
    hh = monthly_ira()
    assert pool_untaxed_lots(hh, 30, whole_shares=True) is None
    taxable = dataclasses.replace(hh, account_type=np.array([TAXABLE, TAXABLE], dtype=np.int8))
    assert pool_untaxed_lots(taxable, 30, whole_shares=False) is None
    roth = dataclasses.replace(hh, account_type=np.array([TAXABLE, ROTH], dtype=np.int8))
    assert pool_untaxed_lots(roth, 30, whole_shares=False) is not None
    # a few lots: the smaller model would not pay for pooling (MIN_COLUMNS_SAVED)
    few = monthly_ira(lot_ids=hh.lot_ids[:12], lot_account=hh.lot_account[:12],
                      lot_security=hh.lot_security[:12], quantity=hh.quantity[:12],
                      cost_basis=hh.cost_basis[:12], acquired=[str(d) for d in hh.acquired[:12]])
    assert pool_untaxed_lots(few, 30, whole_shares=False) is None


def test_spread_fills_in_order_and_sells_whole_lots_whole(monthly_ira):
    hh = monthly_ira()
    pools = pool_untaxed_lots(hh, 30, whole_shares=False)
    bnd_pool = int(pools.pool_of[np.flatnonzero(hh.lot_security == 2)[0]])
    pooled_sell = np.zeros(pools.household.n_lots)
    pooled_sell[bnd_pool] = 5.0 * 3 + 2.25  # three lots and a quarter of... 2.25 shares
    out = pools.spread(hh, pooled_sell)
    bnd = np.flatnonzero(hh.lot_security == 2)
    assert out[bnd[:3]].tolist() == [5.0, 5.0, 5.0]
    assert out[bnd[3]] == pytest.approx(2.25)
    assert (out[bnd[4:]] == 0).all() and (out[hh.lot_security != 2] == 0).all()
    # the whole pool: every lot exactly, not a float's breadth short
    pooled_sell[bnd_pool] = pools.household.quantity[bnd_pool]
    out = pools.spread(hh, pooled_sell)
    assert np.array_equal(out[bnd], hh.quantity[bnd])


def test_a_pools_warm_start_key_survives_selling_its_first_lots(monthly_ira):
    hh = monthly_ira()
    s = ModelSettings()
    pools = pool_untaxed_lots(hh, s.wash_sale_days, s.whole_shares)
    lp = build(pools.household, s, derive(pools.household, s))
    keys = {column_key(pools.household, lp, j) for j in range(lp.layout.n_sell)}
    # the next night: the first ten BND lots sold
    bnd = np.flatnonzero(hh.lot_security == 2)
    keep = np.setdiff1d(np.arange(hh.n_lots), bnd[:10])
    later = dataclasses.replace(
        hh, lot_ids=tuple(hh.lot_ids[i] for i in keep), lot_account=hh.lot_account[keep],
        lot_security=hh.lot_security[keep], quantity=hh.quantity[keep],
        cost_basis=hh.cost_basis[keep], acquired=hh.acquired[keep])
    pools2 = pool_untaxed_lots(later, s.wash_sale_days, s.whole_shares)
    lp2 = build(pools2.household, s, derive(pools2.household, s))
    keys2 = {column_key(pools2.household, lp2, j) for j in range(lp2.layout.n_sell)}
    assert keys2 == keys
