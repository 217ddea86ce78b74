"""The tax code as hearth reports it: holding periods and capital-gain netting.

This is deliberately separate from the optimization: the model prices trades with
marginal rates, while the figures written to ``household_results`` follow the
netting rules here (IRC §1222 character, §1211(b) ordinary offset, §1212(b)
carryforwards keeping their character).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import numpy as np

ORDINARY_OFFSET_LIMIT = {"married_separate": 1_500.0}
DEFAULT_ORDINARY_OFFSET = 3_000.0


def long_term(acquired: np.ndarray, run_date: np.datetime64) -> np.ndarray:
    """True where a lot sold on ``run_date`` is held more than one year.

    The anniversary itself is still short-term. A lot bought on Feb 29 has its
    anniversary on Feb 28 of the next year, so it turns long-term on Mar 1.

    Anniversaries never decrease as the acquisition date grows, so a lot is
    long-term exactly when it was acquired before the first date whose anniversary
    is not before the run date: one date per run, then a vectorized comparison.
    """
    run = datetime.date.fromisoformat(
        str(np.datetime_as_string(np.asarray(run_date, dtype="datetime64[D]"))))
    try:
        cutoff = run.replace(year=run.year - 1)
    except ValueError:  # run date Feb 29: Feb 28's anniversary is before it, Mar 1's is not
        cutoff = datetime.date(run.year - 1, 3, 1)
    return np.asarray(acquired, dtype="datetime64[D]") < np.datetime64(cutoff, "D")


@dataclass(frozen=True)
class TaxYear:
    """Result of netting one year's capital gains."""

    taxable_st: float  # net short-term gain taxed at st_rate
    taxable_lt: float  # net long-term gain taxed at lt_rate
    ordinary_offset: float  # net loss deducted against ordinary income
    carryforward_st: float  # loss left for next year, short-term character
    carryforward_lt: float
    tax: float


def net_capital_gains(
    st_gain: float,
    lt_gain: float,
    *,
    carryforward_st: float,
    carryforward_lt: float,
    st_rate: float,
    lt_rate: float,
    ordinary_rate: float,
    filing_status: str,
) -> TaxYear:
    """Net a year's gains (negative = loss) the way Schedule D does."""
    st = st_gain - carryforward_st
    lt = lt_gain - carryforward_lt
    limit = ORDINARY_OFFSET_LIMIT.get(filing_status, DEFAULT_ORDINARY_OFFSET)
    taxable_st = taxable_lt = 0.0
    loss_st = loss_lt = 0.0  # net losses after cross-netting, by character
    if st >= 0 and lt >= 0:
        taxable_st, taxable_lt = st, lt
    elif st < 0 and lt < 0:
        loss_st, loss_lt = -st, -lt
    elif st < 0:  # short-term loss against long-term gain
        net = lt + st
        if net >= 0:
            taxable_lt = net
        else:
            loss_st = -net
    else:  # long-term loss against short-term gain
        net = st + lt
        if net >= 0:
            taxable_st = net
        else:
            loss_lt = -net
    # The ordinary offset uses short-term losses first (Schedule D worksheet).
    offset = min(loss_st + loss_lt, limit)
    used_st = min(loss_st, offset)
    used_lt = offset - used_st
    tax = taxable_st * st_rate + taxable_lt * lt_rate - offset * ordinary_rate
    return TaxYear(
        taxable_st=taxable_st,
        taxable_lt=taxable_lt,
        ordinary_offset=offset,
        carryforward_st=loss_st - used_st,
        carryforward_lt=loss_lt - used_lt,
        tax=tax,
    )


def tax_due(
    *,
    ytd_st: float,
    ytd_lt: float,
    run_st: float,
    run_lt: float,
    carryforward_st: float,
    carryforward_lt: float,
    st_rate: float,
    lt_rate: float,
    ordinary_rate: float,
    filing_status: str,
) -> float:
    """Extra tax this year caused by this run: tax(ytd + run) - tax(ytd)."""
    common = dict(
        carryforward_st=carryforward_st, carryforward_lt=carryforward_lt, st_rate=st_rate,
        lt_rate=lt_rate, ordinary_rate=ordinary_rate, filing_status=filing_status,
    )
    after = net_capital_gains(ytd_st + run_st, ytd_lt + run_lt, **common)  # type: ignore[arg-type]
    before = net_capital_gains(ytd_st, ytd_lt, **common)  # type: ignore[arg-type]
    return after.tax - before.tax


def sold_gain(sell: np.ndarray, quantity: np.ndarray, cost_basis: np.ndarray,
              price: np.ndarray) -> np.ndarray:
    """Gain realized per lot by selling ``sell`` of its ``quantity`` shares at ``price``:
    sale value minus the basis of the shares sold (basis shared pro rata per share;
    trading costs are not deducted). An empty lot realizes nothing."""
    held = quantity > 0
    basis_sold = np.where(held, cost_basis * sell / np.where(held, quantity, 1.0), 0.0)
    return sell * price - basis_sold


def gains_by_term(gain: np.ndarray, is_long: np.ndarray,
                  disallowed_loss: np.ndarray | None = None) -> tuple[float, float]:
    """A run's realized (short-term, long-term) gains from per-lot gains (give zero for
    lots in tax-advantaged accounts).

    A loss that a wash sale disallows (``disallowed_loss``, positive dollars per lot) is
    not realized (IRC 1091: it moves into the replacement's basis), so it is added back,
    never more than the lot's own loss.
    """
    gain = np.asarray(gain, dtype=np.float64)
    if disallowed_loss is not None:
        gain = gain + np.clip(disallowed_loss, 0.0, np.maximum(-gain, 0.0))
    is_long = np.asarray(is_long, dtype=bool)
    return float(gain[~is_long].sum()), float(gain[is_long].sum())
