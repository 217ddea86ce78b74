"""Lots the model cannot tell apart, solved as one.

In a tax-advantaged account every share of a security is worth the same to sell:
no gain is taxed, no term matters, and the lots differ only by when they were
bought. A household whose 401(k) took a purchase every month for fifteen years
holds 180 such lots of one fund, and a per-lot model gives the solver 180 columns
whose only difference is the tie-breaking cost, which costs time in every ratio
test and decides nothing (``hearth.model.solve.canonical_untaxed_sells`` lays the
sale out over the lots in their stable order afterwards anyway).

``pool_untaxed_lots`` merges them, per account x security, into one lot of their
total quantity and basis; lots bought inside the wash-sale window stay apart
(which replacement shares are sold matters to W3), as do taxable lots and every
lot under whole shares (an integer per lot is not an integer per pool).
``LotPools.spread`` gives a pool's sale back to its lots in their stable order,
the order ``canonical_untaxed_sells`` uses, so the trades are the ones the per-lot
model would write.
"""

from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass

import numpy as np

from hearth.model import wash
from hearth.model.household import TAXABLE, Household


@dataclass(frozen=True, eq=False)
class LotPools:
    household: Household  # the household with each pool as one lot
    pool_of: np.ndarray  # [original lot] -> its lot in ``household``

    def spread(self, original: Household, pooled_sell: np.ndarray) -> np.ndarray:
        """Shares sold per original lot: each pool's sale filled over its lots in
        their stable order; a lot filled to within rounding of whole is sold whole."""
        q = original.quantity
        order = np.argsort(self.pool_of, kind="stable")  # lots by pool, stable within
        pools = self.pool_of[order]
        q_sorted = q[order]
        before = np.cumsum(q_sorted) - q_sorted  # quantity ahead of each lot, book-wide
        first = np.searchsorted(pools, pools)  # each pool's first position in ``order``
        ahead = before - before[first]  # ... from its own pool's start
        filled = np.clip(pooled_sell[pools] - ahead, 0.0, q_sorted)
        whole = (filled > 0) & (q_sorted - filled <= 1e-9 * np.maximum(q_sorted, 1.0))
        filled = np.where(whole, q_sorted, filled)
        out = np.zeros(original.n_lots)
        out[order] = filled
        return out


# Pooling costs a second ``derive`` and the spreading back, about 0.3 ms in all; below
# this many columns saved the smaller model does not pay for it (a household of the
# small generated profile, 18 lots, took 2.45 ms pooled and 2.15 ms not).
MIN_COLUMNS_SAVED = 32


def pool_untaxed_lots(hh: Household, wash_days: int, whole_shares: bool) -> LotPools | None:
    """The household with its interchangeable lots pooled, or None when pooling would
    save fewer than ``MIN_COLUMNS_SAVED`` columns."""
    if whole_shares or hh.n_lots <= MIN_COLUMNS_SAVED:
        return None
    poolable = ((hh.account_type[hh.lot_account] != TAXABLE)
                & ~wash.recent_lots(hh, wash_days))
    if poolable.sum() <= MIN_COLUMNS_SAVED:
        return None
    position = hh.lot_account.astype(np.int64) * hh.n_securities + hh.lot_security
    key = np.where(poolable, position, -1 - np.arange(hh.n_lots))  # unpoolable: their own
    _, first, pool_of = np.unique(key, return_index=True, return_inverse=True)
    if hh.n_lots - len(first) < MIN_COLUMNS_SAVED:
        return None
    # pools in the order of their first lot, so the pooled household keeps the book's order
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    pool_of = rank[pool_of.ravel()]
    n = len(first)
    rep = np.sort(first)  # each pool's first lot
    acquired = np.full(n, np.datetime64("9999-12-31"), dtype="datetime64[D]")
    np.minimum.at(acquired, pool_of, hh.acquired.astype("datetime64[D]"))
    # a pool's id names its position, which survives the night (its first lot may
    # not: sales take the lots in order), so a saved basis finds the column again
    size = np.bincount(pool_of, minlength=n)
    ids = [hh.lot_ids[i] for i in rep] if n == 1 else list(operator.itemgetter(*rep)(hh.lot_ids))
    for p in np.flatnonzero(size > 1).tolist():
        i = rep[p]
        ids[p] = (f"{hh.security_ids[hh.lot_security[i]]} in "
                  f"{hh.account_ids[hh.lot_account[i]]} (pooled)")
    pooled = dataclasses.replace(
        hh,
        lot_ids=tuple(ids),
        lot_account=hh.lot_account[rep],
        lot_security=hh.lot_security[rep],
        quantity=np.bincount(pool_of, weights=hh.quantity, minlength=n),
        cost_basis=np.bincount(pool_of, weights=hh.cost_basis, minlength=n),
        acquired=acquired,
    )
    return LotPools(household=pooled, pool_of=pool_of)
