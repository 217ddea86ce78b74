"""The naive baseline the simulator judges hearth against: each account on its own
rebalanced to the model weights, written here (numpy and Python), not with hearth.

Per account and run date, with V = holdings + cash + contribution − withdrawal:
- when any class (cash included) is more than ``band`` (absolute weight) off its
  target, every class goes back to target;
- otherwise, when money arrives or must be raised (a contribution, a withdrawal,
  cash below zero), only the cash moves: the surplus over the cash target is
  bought pro rata to the other targets, a shortfall is sold pro rata to them;
- sells are first-in-first-out within a class (primary and substitute alike),
  buys are primaries, orders under ``min_trade`` dollars are skipped, and it
  never harvests. Costs, taxes and wash sales are the simulator's, as for hearth.
"""

from __future__ import annotations

import numpy as np
from sim_book import CASH, Book
from sim_ledger import Ledger


def naive_orders(book: Book, ledger: Ledger, prices: np.ndarray, contribution: np.ndarray,
                 withdrawal: np.ndarray, band: float, min_trade: float = 25.0
                 ) -> tuple[list[tuple[int, float]], list[tuple[int, int, float]], np.ndarray]:
    """Sells (lot, shares), buys (account, security, shares) and the accounts that trade.
    ``ledger.cash`` must already include the contribution and exclude the withdrawal."""
    n_acct = len(book.acct_ids)
    k_risky = CASH
    sec_class = book.sec_class
    lot_val = ledger.lot_qty * prices[ledger.lot_sec]
    hold = np.bincount(ledger.lot_acct * k_risky + sec_class[ledger.lot_sec], weights=lot_val,
                       minlength=n_acct * k_risky).reshape(n_acct, k_risky)
    order = np.lexsort((ledger.lot_ids, ledger.lot_acquired, sec_class[ledger.lot_sec],
                        ledger.lot_acct))
    acct_sorted = ledger.lot_acct[order]
    starts = np.searchsorted(acct_sorted, np.arange(n_acct + 1))
    sells: list[tuple[int, float]] = []
    buys: list[tuple[int, int, float]] = []
    traded = np.zeros(n_acct, dtype=bool)
    cost = book.cost_bps / 1e4
    for a in range(n_acct):
        t = book.targets[book.model[book.acct_hh[a]]]
        cash = float(ledger.cash[a])
        V = float(hold[a].sum()) + cash
        if V <= 0:
            continue
        w = np.append(hold[a], cash) / V
        flow = contribution[a] > 0 or withdrawal[a] > 0 or cash < 0
        if np.abs(w - t).max() > band:
            trade = t[:k_risky] * V - hold[a]
        elif flow:
            delta = cash - t[CASH] * V
            trade = delta * t[:k_risky] / (1 - t[CASH])
        else:
            continue
        trade[np.abs(trade) < min_trade] = 0.0
        if not trade.any():
            continue
        traded[a] = True
        proceeds = 0.0
        lots = order[starts[a]:starts[a + 1]]
        for k in np.flatnonzero(trade < 0):
            need = -trade[k]
            for lot in lots[sec_class[ledger.lot_sec[lots]] == k]:  # oldest first
                if need <= 1e-6:
                    break
                p = prices[ledger.lot_sec[lot]]
                gross = need / (1 - cost[ledger.lot_sec[lot]])
                q = min(float(ledger.lot_qty[lot]), gross / p)
                sells.append((int(lot), q))
                proceeds += q * p * (1 - cost[ledger.lot_sec[lot]])
                need -= q * p * (1 - cost[ledger.lot_sec[lot]])
        want = np.flatnonzero(trade > 0)
        spend = trade[want] * (1 + cost[book.primary[want]])
        room = cash + proceeds  # buys never take cash below zero
        scale = min(1.0, room / spend.sum()) if spend.sum() > 0 else 0.0
        for k, amount in zip(want, trade[want] * max(scale, 0.0)):
            sec = int(book.primary[k])
            q = float(np.floor(amount / prices[sec] * 1e6) / 1e6)
            if q > 0:
                buys.append((a, sec, q))
    return sells, buys, traded
