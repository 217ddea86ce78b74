"""The savings estimate against the naive baseline, with hand-computed figures."""

from __future__ import annotations

import numpy as np
import pytest

from hearth.model.build import derive
from hearth.model.estimates import estimate, naive_baseline
from hearth.model.household import TAXABLE, TRADITIONAL
from hearth.model.lp import ModelSettings

S = ModelSettings()
C_LT = 0.20 - 0.20 * 1.05 ** -10  # c_l of a long-term lot with the default H and d


@pytest.fixture
def hh(household):
    # taxable $10,000 all stock: an old gain lot (60 sh, +$50/sh) and a newer loss
    # lot (40 sh, -$25/sh), both long-term; target 50/50 stock/bonds
    return household(
        account_ids=("tax",), account_type=[TAXABLE],
        security_ids=("STK", "BND"), asset_class=[0, 1], price=[100.0, 100.0],
        classes=("stocks", "bonds", "cash"), target=[0.5, 0.5, 0.0],
        lot_ids=("old", "new"), lot_account=[0, 0], lot_security=[0, 0],
        quantity=[60.0, 40.0], cost_basis=[3_000.0, 5_000.0],
        acquired=["2018-03-01", "2025-06-01"])


def test_naive_baseline_sells_first_in_first_out(hh):
    sell, after = naive_baseline(hh, derive(hh, S))
    assert sell.tolist() == pytest.approx([50.0, 0.0])  # $5,000 from the oldest lot
    assert after[0].tolist() == pytest.approx([5_000.0, 5_000.0])  # buys the bond primary


def test_savings_are_harvest_plus_gains_deferred_plus_location(hh):
    # hearth sells the loss lot first: 40 sh of "new" and 10 of "old", buys 50 BND
    est = estimate(hh, derive(hh, S), S, np.array([10.0, 40.0]), np.array([0]), np.array([1]),
                   np.array([50.0]))
    assert est.tlh_losses == pytest.approx(1_000.0)
    assert est.harvest_value == pytest.approx(C_LT * 1_000.0)
    assert est.gains_deferred == pytest.approx(C_LT * (2_500.0 - 500.0))
    assert est.location_gain == pytest.approx(0.0)  # same holdings as the baseline
    assert est.tax_savings_estimate == pytest.approx(C_LT * 3_000.0)


def growth_tax(g: float) -> float:
    """Taxable drag of price growth g: the eventual LT tax on 10 years of it,
    discounted and spread over the horizon (docs/model.md, objective)."""
    return 0.20 * ((1 + g) ** 10 - 1) * 1.05 ** -10 / S.annuity


def test_location_gain_is_drag_difference_times_annuity(household):
    # IRA and taxable, $1,000 each, half stock half bonds. Drag per dollar:
    # taxable stock = growth tax on 7% (no income); taxable bonds = 3.5% x 0.37
    # (their 3.5% return is all income: no growth); IRA = expected return x 0.37.
    # The proposal moves every bond to the IRA and every stock to taxable; the
    # gain is measured from today's holdings.
    hh = household(
        account_ids=("tax", "ira"), account_type=[TAXABLE, TRADITIONAL],
        security_ids=("STK", "BND"), asset_class=[0, 1], price=[100.0, 100.0],
        classes=("stocks", "bonds", "cash"), target=[0.5, 0.5, 0.0],
        lot_ids=("ts", "tb", "is", "ib"), lot_account=[0, 0, 1, 1], lot_security=[0, 1, 0, 1],
        quantity=[5.0, 5.0, 5.0, 5.0], cost_basis=[500.0] * 4,
        income_yield=[0.0, 0.035], qualified_fraction=[1.0, 0.0], expected_return=[0.07, 0.035])
    d = derive(hh, S)
    est = estimate(hh, d, S, np.array([0.0, 5.0, 5.0, 0.0]), np.array([0, 1]), np.array([0, 1]),
                   np.array([5.0, 5.0]))
    stock_tax, bond_tax = growth_tax(0.07), 0.035 * 0.37
    drag_before = 500 * stock_tax + 500 * bond_tax + 500 * 0.07 * 0.37 + 500 * 0.035 * 0.37
    drag_after = 1000 * stock_tax + 1000 * 0.035 * 0.37
    assert est.location_drag_before == pytest.approx(drag_before)
    assert est.location_drag_after == pytest.approx(drag_after)
    assert est.location_gain == pytest.approx((drag_before - drag_after) * S.annuity)
    assert est.location_gain > 0


def test_a_household_that_does_not_trade_estimates_zero(hh):
    est = estimate(hh, derive(hh, S), S, np.zeros(2), np.zeros(0, dtype=np.int64),
                   np.zeros(0, dtype=np.int64), np.zeros(0))
    assert est.tax_savings_estimate == 0.0 and est.location_gain == 0.0


def test_a_loss_the_baseline_also_sells_is_no_saving(household):
    # One loss lot, overweight: both the baseline and the run sell all 10 shares
    # (-$500 long-term); the run's estimate credits nothing for it.
    hh = household(
        account_ids=("tax",), account_type=[TAXABLE],
        security_ids=("STK", "BND"), asset_class=[0, 1], price=[100.0, 100.0],
        classes=("stocks", "bonds", "cash"), target=[0.0, 1.0, 0.0],
        lot_ids=("loss",), lot_account=[0], lot_security=[0], quantity=[10.0],
        cost_basis=[1_500.0], acquired=["2020-01-02"])
    d = derive(hh, S)
    base_sell, _ = naive_baseline(hh, d)
    assert base_sell.tolist() == pytest.approx([10.0])
    est = estimate(hh, d, S, np.array([10.0]), np.array([0]), np.array([1]), np.array([10.0]))
    assert est.tlh_losses == pytest.approx(500.0)
    assert est.harvest_value == pytest.approx(0.0)
    assert est.tax_savings_estimate == pytest.approx(est.location_gain)
