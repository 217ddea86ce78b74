"""Wash sales as the model applies them (IRC 1091, Rev. Rul. 2008-5, Rev. Rul. 56-602).

The window is ``wash_sale_days`` (W, 30) before the run date; the scope is every
account of the household, tax-advantaged ones included (an IRA repurchase loses
the loss for good).

- **Loss sale**: a sale of a lot in a taxable account whose gain per share is < 0.
- **Replacement pool** of a wash group: the shares of its lots acquired in the
  window that are still held after the proposal, plus today's buys of the group.
  The shares of the lot being sold, its unsold remainder included, are never its
  own replacement (Rev. Rul. 56-602): selling a whole position bought 20 days ago
  at a loss is not a wash sale.
- **Matching**: loss sales in order of (acquired date, lot position), replacement
  shares in order of (acquired date, lot position), today's buys last; every
  replacement share is used once. The disallowed loss of a sale is its loss per
  share times its washed shares, so never more than its realized loss.
- **W1** (``w1_blocked_lots``): a loss sale that would be washed is allowed only
  where cash needs force it (a ``no_hold`` lot, or an account that must raise
  cash today). Elsewhere the model either leaves the loss lot alone or clears the
  pool (sells the group's recent lots too), whichever the objective prefers.
- **W2** (``recent_loss_groups``): a group with a loss sale in the window
  (``realized_gain`` < 0, or null: an unknown gain counts as a loss) is not bought.
- **W3**: today's proposal never both sells a group at a loss and buys it; the
  solve enforces it (``hearth.model.solve``).

The compliance checker re-derives all of this on its own; this module is the
model's side only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hearth.model.household import TAXABLE, Household
from hearth.model.tolerances import DEFAULT_DUST_SHARES

GAIN_EPS = 1e-9  # gain per share below which a lot counts as a loss


def window_start(hh: Household, days: int) -> np.datetime64:
    return hh.run_date - np.timedelta64(days, "D")


def loss_lots(hh: Household, gain_per_share: np.ndarray) -> np.ndarray:
    """Lots whose sale is a loss sale: taxable account, gain per share below zero."""
    return (hh.account_type[hh.lot_account] == TAXABLE) & (gain_per_share < -GAIN_EPS)


def recent_lots(hh: Household, days: int) -> np.ndarray:
    """Lots acquired in the window: the replacement pool before today's trades."""
    return (hh.acquired >= window_start(hh, days)) & (hh.acquired <= hh.run_date)


def recent_loss_groups(hh: Household, days: int) -> np.ndarray:
    """W2: per wash group, a loss sale (or a sale of unknown gain) in the window."""
    start = window_start(hh, days)
    out = np.zeros(len(hh.wash_groups), dtype=bool)
    in_window = (hh.txn_date >= start) & (hh.txn_date <= hh.run_date) & ~hh.txn_buy
    gain = hh.txn_realized_gain
    loss = in_window & ((gain < 0) | np.isnan(gain))
    out[hh.txn_group[loss]] = True
    return out


def recent_purchase_groups(hh: Household, days: int) -> np.ndarray:
    """Per wash group, a purchase in the window (a transaction or a lot)."""
    start = window_start(hh, days)
    out = np.zeros(len(hh.wash_groups), dtype=bool)
    buys = (hh.txn_date >= start) & (hh.txn_date <= hh.run_date) & hh.txn_buy
    out[hh.txn_group[buys]] = True
    out[hh.wash_group[hh.lot_security[recent_lots(hh, days)]]] = True
    return out


def w1_blocked_lots(hh: Household, gain_per_share: np.ndarray, days: int,
                    dust_shares: float = DEFAULT_DUST_SHARES) -> np.ndarray:
    """Loss lots that would be washed if sold while today's holdings stay as they are:
    their group has replacement shares other than the lot itself (another recent
    lot), or a purchase in the window that no recent lot records."""
    group = hh.wash_group[hh.lot_security]
    n_g = len(hh.wash_groups)
    recent = recent_lots(hh, days) & (hh.quantity > dust_shares)
    n_recent = np.bincount(group[recent], minlength=n_g)
    others = n_recent[group] - recent.astype(np.int64)  # recent lots besides this one
    txn_only = unrecorded_purchase_groups(hh, days, dust_shares)
    return loss_lots(hh, gain_per_share) & ((others > 0) | txn_only[group])


def unrecorded_purchase_groups(hh: Household, days: int,
                               dust_shares: float = DEFAULT_DUST_SHARES) -> np.ndarray:
    """Per wash group, a purchase in the window's transactions that no lot acquired
    in the window records: replacement shares the model cannot see to sell."""
    group = hh.wash_group[hh.lot_security]
    recent = recent_lots(hh, days) & (hh.quantity > dust_shares)
    n_recent = np.bincount(group[recent], minlength=len(hh.wash_groups))
    start = window_start(hh, days)
    buys = (hh.txn_date >= start) & (hh.txn_date <= hh.run_date) & hh.txn_buy
    out = np.zeros(len(hh.wash_groups), dtype=bool)
    out[hh.txn_group[buys]] = True
    return out & (n_recent == 0)


@dataclass(frozen=True, eq=False)
class WashFigures:
    washed_shares: np.ndarray  # per lot
    disallowed_loss: np.ndarray  # per lot, positive dollars

    @property
    def any(self) -> bool:
        return bool((self.disallowed_loss > 0).any())


def disallowed_losses(hh: Household, gain_per_share: np.ndarray, sell: np.ndarray,
                      buy_security: np.ndarray, buy_quantity: np.ndarray, days: int
                      ) -> WashFigures:
    """Per lot, the shares of today's loss sales that replacement shares wash, and
    the loss they disallow (module docstring: pool, self-exclusion, matching)."""
    n = hh.n_lots
    washed = np.zeros(n)
    sold_loss = np.flatnonzero(loss_lots(hh, gain_per_share) & (sell > 0))
    if len(sold_loss) == 0:
        return WashFigures(washed, np.zeros(n))
    group = hh.wash_group[hh.lot_security]
    recent = np.flatnonzero(recent_lots(hh, days))
    remaining = hh.quantity - sell
    buy_group = hh.wash_group[buy_security]
    bought = np.zeros(len(hh.wash_groups))
    np.add.at(bought, buy_group, buy_quantity)
    for g in np.unique(group[sold_loss]):
        pool_lots = recent[group[recent] == g]
        if len(pool_lots) == 0 and bought[g] <= 0:
            continue  # no replacement shares in the group: nothing is washed
        sales = sold_loss[group[sold_loss] == g]
        sales = sales[np.lexsort((sales, hh.acquired[sales]))]
        pool_lots = pool_lots[np.lexsort((pool_lots, hh.acquired[pool_lots]))]
        # replacement shares: (lot index or -1 for today's buys, shares left to match)
        pool = [[int(l), float(max(remaining[l], 0.0))] for l in pool_lots]
        pool.append([-1, float(bought[g])])
        for l in sales:
            need = float(sell[l])
            for entry in pool:
                if need <= 0:
                    break
                if entry[0] == l or entry[1] <= 0:
                    continue  # never its own replacement
                take = min(need, entry[1])
                entry[1] -= take
                need -= take
                washed[l] += take
    return WashFigures(washed, washed * np.maximum(-gain_per_share, 0.0))
