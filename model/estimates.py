"""Model figures reported next to the trades: harvested losses, location drag and
the tax-savings estimate.

Method (a model estimate, not a tax calculation; the README and docs say the same):

``tax_savings_estimate`` is the present value of taxes saved or deferred by this
run versus a **naive baseline**: every tradable account rebalanced on its own to
the household's target weights, selling lots first-in-first-out, buying each
class's primary (rank 1) security, never harvesting. It is the sum of

1. realized-tax difference: the baseline's priced tax on what it sells minus this
   run's, both priced the same way, gains and losses alike, at the household's tax
   position (``priced_tax_per_share``: c_l = r_now - r_lt (1 + d)^-H per dollar of
   gain, r_now the carryforward's value where the household has a loss pool). A
   loss that the baseline realizes too is no saving of this run. It is split into
   ``harvest_value`` (the loss side) and ``gains_deferred`` (the gain side);
2. location gain: (drag of today's holdings - drag after the proposal) x A, with
   drag the annual tax drag tau[a, s] x dollars held and A the H-year annuity
   factor at rate d: measured from the pre-trade holdings, not from a
   hypothetical relocation.

A household that trades nothing has an estimate of 0. Restrictions, menus and
wash-sale rules are not applied to the baseline; it is the yardstick a client
would get from an account-by-account rebalancer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hearth.model.build import Derived, rate_at_position
from hearth.model.household import Household
from hearth.model.lp import ModelSettings


@dataclass(frozen=True)
class Estimates:
    tlh_losses: float
    location_drag_before: float
    location_drag_after: float
    tax_savings_estimate: float
    harvest_value: float
    gains_deferred: float
    location_gain: float


def holdings_dollars(hh: Household, remaining: np.ndarray) -> np.ndarray:
    """[n_a, n_s] dollars held, from shares remaining per lot."""
    return hh.by_position(remaining * hh.price[hh.lot_security])


def naive_baseline(hh: Household, d: Derived, before: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(shares sold per lot, [n_a, n_s] dollars held after) of the naive rebalance."""
    n_k = len(hh.classes)
    k_cash = hh.cash_class
    before = holdings_dollars(hh, hh.quantity) if before is None else before
    held_k = before @ np.eye(n_k)[hh.asset_class]  # dollars per account x class
    wealth = held_k.sum(axis=1) + hh.cash + hh.contribution - hh.withdrawal
    target = np.maximum(wealth, 0.0)[:, None] * hh.target[None, :]
    excess = np.where(hh.tradable[:, None], held_k - target, 0.0)
    excess[:, k_cash] = 0.0
    # FIFO within each account x class: a lot is sold as far as the class's excess
    # is not yet covered by older lots.
    lot_class = hh.asset_class[hh.lot_security]
    group = hh.lot_account * n_k + lot_class
    # ties in acquired date go by lot position (the contract's lot order, by lot id)
    order = np.lexsort((np.arange(hh.n_lots), hh.acquired, group))
    value = hh.quantity[order] * d.lot_price[order]
    g = group[order]
    cum = np.cumsum(value)
    new_group = np.empty(len(g), dtype=bool)
    new_group[:1] = True
    np.not_equal(g[1:], g[:-1], out=new_group[1:])
    # total value of the earlier lots of the same group = running sum - value - group start
    first = np.maximum.accumulate(np.where(new_group, cum - value, 0.0)) if len(g) else cum
    before_lot = cum - value - first
    need = np.maximum(excess.reshape(-1)[g], 0.0)
    sold_value = np.clip(need - before_lot, 0.0, value)
    sell = np.zeros(hh.n_lots)
    sell[order] = sold_value / d.lot_price[order]
    after = holdings_dollars(hh, hh.quantity - sell)
    listed = np.flatnonzero(hh.rank == 1)
    primary = np.full(n_k, -1)
    primary[hh.asset_class[listed[::-1]]] = listed[::-1]  # first listed primary per class
    short = np.where(hh.tradable[:, None], np.maximum(target - held_k, 0.0), 0.0)
    short[:, k_cash] = 0.0
    a_idx, k_idx = np.nonzero((short > 0.01) & (primary >= 0)[None, :])
    np.add.at(after, (a_idx, primary[k_idx]), short[a_idx, k_idx])
    return sell, after


def priced_tax_per_share(hh: Household, d: Derived, s: ModelSettings) -> np.ndarray:
    """Objective-style priced tax per share sold of each taxable lot, gains and losses
    alike, at the household's tax position (hearth.model.build.tax_on_realized
    before its no-credit rules)."""
    c = rate_at_position(hh, d, s) - hh.lt_rate * s.discount
    return np.where(d.lot_taxable, c * d.gain_per_share, 0.0)


def estimate(hh: Household, d: Derived, s: ModelSettings, sell: np.ndarray,
             buy_account: np.ndarray, buy_security: np.ndarray,
             buy_quantity: np.ndarray) -> Estimates:
    taxable = d.lot_taxable
    gain = sell * d.gain_per_share
    loss = taxable & (gain < 0)
    tlh_losses = float(-gain[loss].sum())
    before = holdings_dollars(hh, hh.quantity)
    after = holdings_dollars(hh, hh.quantity - sell)
    np.add.at(after, (buy_account, buy_security), buy_quantity * hh.price[buy_security])
    drag_before = float((d.tau * before).sum())
    drag_after = float((d.tau * after).sum())
    if not ((sell > 0).any() or len(buy_quantity)):
        return Estimates(tlh_losses=0.0, location_drag_before=drag_before,
                         location_drag_after=drag_before, tax_savings_estimate=0.0,
                         harvest_value=0.0, gains_deferred=0.0, location_gain=0.0)

    per_share = priced_tax_per_share(hh, d, s)
    base_sell, _ = naive_baseline(hh, d, before)
    run_priced = per_share * sell
    base_priced = per_share * base_sell
    losses, gains = per_share < 0, per_share > 0
    harvest_value = float(base_priced[losses].sum() - run_priced[losses].sum())
    gains_deferred = float(base_priced[gains].sum() - run_priced[gains].sum())
    location_gain = (drag_before - drag_after) * s.annuity
    return Estimates(
        tlh_losses=tlh_losses,
        location_drag_before=drag_before,
        location_drag_after=drag_after,
        tax_savings_estimate=harvest_value + gains_deferred + location_gain,
        harvest_value=harvest_value,
        gains_deferred=gains_deferred,
        location_gain=location_gain,
    )
