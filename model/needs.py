"""Cash needs (contract 2.1, ``cash_needs``): dollars a household must pay out on a
date, from a named account or, where ``account_id`` is null, from whichever of its
accounts the model chooses. ``need_windows`` turns a household's needs into what
today's model must respect; ``hearth.model.build`` makes its rows
(``rows_cash_needs``) and the exposure targets of it (``target_dollars``).

Each need falls in one window, by the days from the run date to its due date (a
date already past counts as due today):

- **lead** (at most ``cash_need_lead_days``): the amount must be in cash after
  today's trades, on top of the account's min_cash. Sales are forced as for a
  withdrawal (the budgets give way, a washed loss sale is allowed).
- **reserve** (at most ``cash_reserve_days``): nothing is forced; the cash already
  there (today's contribution included, withdrawals taken out) is kept, up to the
  amount, so it is not invested today only to be sold before the date. A lot about
  to turn long-term can wait: the sale happens on the run where the need enters the
  lead window.
- **later**: nothing today.

A household-level need is funded from the household's tradable **taxable**
accounts: the model picks the account and the lots with the lowest tax cost. Cash
out of a traditional IRA, an HSA or an education account is a taxable (often
penalized) distribution, and out of a Roth it may be, none of which the model
prices; a need to be paid from one of those names its account.

The cash held for needs (``reserved``) is no longer part of the invested portfolio:
the exposure targets apply to the household's dollars less it, and the cash class
holds it on top of its target weight. So the reserve is not idle cash that drift
would invest, and the rest of the household is held at its targets. The accounts
holding it may go above max_cash by it (``cap_raise``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hearth.model.household import TAXABLE, Household


@dataclass(frozen=True, eq=False)
class NeedWindows:
    """A household's cash needs as today's model sees them, dollars."""

    lead_account: np.ndarray  # [n_a] account-named needs due within the lead window
    reserve_account: np.ndarray  # [n_a] account-named needs due after it, within the reserve
    lead_pool: float  # household-level needs due within the lead window
    reserve_pool: float  # household-level needs due after it, within the reserve
    funds_pool: np.ndarray  # [n_a] bool: may fund a household-level need (tradable taxable)
    own_reserved: np.ndarray  # [n_a] cash each account keeps for its own needs
    pool_reserved: float  # cash the funding accounts keep together for household-level needs
    floor: np.ndarray  # [n_a] final cash at least: min_cash + own_reserved
    pool_floor: float  # final cash of the funding accounts together at least
    pool_short: float  # dollars the funding accounts must raise today for household-level needs

    @property
    def reserved(self) -> float:
        """Cash held for needs after today's trades, household-wide."""
        return float(self.own_reserved.sum() + self.pool_reserved)

    @property
    def cap_raise(self) -> np.ndarray:
        """How far each account's cash may exceed max_cash: the cash it holds for needs
        (a household-level reserve may sit in any funding account)."""
        return self.own_reserved + np.where(self.funds_pool, self.pool_reserved, 0.0)

    @property
    def any(self) -> bool:
        return bool(self.own_reserved.any() or self.pool_reserved > 0)


def need_windows(hh: Household, lead_days: int, reserve_days: int) -> NeedWindows:
    """The needs of ``hh`` in today's windows (module docstring)."""
    n_a = hh.n_accounts
    days = (hh.need_due - hh.run_date).astype(np.int64)
    lead = days <= lead_days
    reserve = ~lead & (days <= max(reserve_days, lead_days))
    own = hh.need_account >= 0
    amount = hh.need_amount

    def by_account(mask: np.ndarray) -> np.ndarray:
        return np.bincount(hh.need_account[mask], weights=amount[mask],
                           minlength=n_a).astype(np.float64)

    lead_account, reserve_account = by_account(own & lead), by_account(own & reserve)
    lead_pool = float(amount[~own & lead].sum())
    reserve_pool = float(amount[~own & reserve].sum())
    funds = (hh.account_type == TAXABLE) & hh.tradable
    avail = hh.cash + hh.contribution - hh.withdrawal  # the cash before any trade
    spare = np.maximum(avail - hh.min_cash, 0.0)
    own_reserved = np.where(lead_account + reserve_account > 0,
                            np.maximum(lead_account,
                                       np.minimum(spare, lead_account + reserve_account)), 0.0)
    floor = hh.min_cash + own_reserved
    pool_spare = float(np.maximum(avail - floor, 0.0)[funds].sum())
    pool_reserved = (max(lead_pool, min(pool_spare, lead_pool + reserve_pool))
                     if lead_pool + reserve_pool > 0 else 0.0)
    return NeedWindows(
        lead_account=lead_account, reserve_account=reserve_account, lead_pool=lead_pool,
        reserve_pool=reserve_pool, funds_pool=funds, own_reserved=own_reserved,
        pool_reserved=pool_reserved, floor=floor,
        pool_floor=float(floor[funds].sum()) + pool_reserved,
        pool_short=max(lead_pool - pool_spare, 0.0),
    )
