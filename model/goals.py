"""Goals (contract 2.1, ``goals`` and ``goal_targets``): sleeves of a household's
accounts, each with target weights of its own (a 529 for tuition, a taxable account
saved for a home, a legacy bucket), measured and priced per goal as well as for the
household. ``goal_figures`` turns a household's goals into tonight's figures;
``hearth.model.build`` makes their rows (``rows_goal_exposure``), prices their drift
(``goal_drift_cost``) and blends their targets into the household's
(``target_dollars``).

- A goal's **value** V_g is its accounts' exposure dollars (holdings, cash,
  contribution - withdrawal, at each account's exposure weight); the cash its
  accounts keep for their own cash needs is left out of what its weights apply to
  and held as cash on top of them, as for the household (hearth.model.needs).
- Its **targets** are its weights (from ``goal_targets``, its model's glide path, or
  its model's targets: resolved by ``hearth.io``) times that value.
- **The glide** (``glide_weights``): a goal with a horizon date whose weights do not
  come from a glide path de-risks toward cash over its last ``goal_glide_years``:
  the invested (non-cash) share of its weights falls linearly from the weights' own
  to ``goal_glide_floor`` at the horizon (and stays there after it), every invested
  class scaled alike, the cash class taking the rest. hearth knows one class by name,
  cash, so that is where a built-in glide can go; a firm that wants bonds at the
  horizon gives the goal's model a glide path instead.
- **The household's target** is the blend: each goal's target dollars, plus the
  household's own weights times what no goal holds (held-away assets included). So
  the two levels never contradict: a household whose goals are each at target and
  whose other accounts are at its weights is at target.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hearth.model.household import Household

DAYS_PER_YEAR = 365.25


@dataclass(frozen=True, eq=False)
class GoalFigures:
    """A household's goals as tonight's model sees them (exposure dollars)."""

    account: np.ndarray  # [n_a] goal index of each account, -1 for none
    weights: np.ndarray  # [n_g, n_k] tonight's weights (the glide applied)
    value: np.ndarray  # [n_g] V_g: holdings + cash + contribution - withdrawal
    reserved: np.ndarray  # [n_g] cash its accounts keep for their own cash needs
    current: np.ndarray  # [n_g, n_k] holdings by class before trading (cash not included)
    start_cash: np.ndarray  # [n_g] cash + contribution - withdrawal
    target: np.ndarray  # [n_g, n_k] target dollars

    @property
    def n(self) -> int:
        return len(self.value)

    @property
    def any(self) -> bool:
        return self.n > 0


def glide_weights(weights: np.ndarray, cash_class: int, years_left: np.ndarray,
                  floor: float, years: float) -> np.ndarray:
    """Each goal's weights ``years_left`` before its horizon (nan: no horizon): the
    invested share s0 = 1 - cash weight goes to s = s0 - (s0 - floor) x p, p =
    1 - years_left / years clipped to [0, 1], every invested class scaled by s / s0
    and cash taking the rest. A goal already at or below the floor, with no horizon,
    or ``years`` 0, keeps its weights."""
    out = np.array(weights, dtype=np.float64, copy=True)
    if out.size == 0 or years <= 0:
        return out
    left = np.asarray(years_left, dtype=np.float64)
    progress = np.where(np.isnan(left), 0.0,
                        np.clip(1.0 - np.nan_to_num(left) / years, 0.0, 1.0))
    invested = 1.0 - out[:, cash_class]
    share = np.where(invested > floor, invested - (invested - floor) * progress, invested)
    scale = np.where(invested > 0, share / np.where(invested > 0, invested, 1.0), 1.0)
    cash = out[:, cash_class] + invested - share
    out *= scale[:, None]
    out[:, cash_class] = cash
    return out


def years_to_horizon(hh: Household) -> np.ndarray:
    """Years from the run date to each goal's horizon (nan: none)."""
    days = (hh.goal_horizon - hh.run_date).astype("timedelta64[D]").astype(np.float64)
    return np.where(np.isnat(hh.goal_horizon), np.nan, days / DAYS_PER_YEAR)


def goal_figures(hh: Household, floor: float, years: float, exposure_weight: np.ndarray,
                 held: np.ndarray, own_reserved: np.ndarray) -> GoalFigures:
    """The goals of ``hh`` tonight. ``held``: exposure dollars per lot; ``own_reserved``:
    cash each account keeps for its own cash needs (hearth.model.needs)."""
    n_g, n_k, n_a = len(hh.goal_ids), len(hh.classes), hh.n_accounts
    account = hh.goal_account if n_g else np.full(n_a, -1, dtype=np.int64)
    weights = glide_weights(hh.goal_target.reshape(n_g, n_k), hh.cash_class,
                            years_to_horizon(hh), floor, years)
    w = exposure_weight
    mine = account >= 0
    g_a = np.where(mine, account, 0)

    def by_goal(values: np.ndarray) -> np.ndarray:
        return np.bincount(g_a[mine], weights=values[mine], minlength=n_g).astype(np.float64)

    start_cash = by_goal(w * (hh.cash + hh.contribution - hh.withdrawal))
    reserved = by_goal(w * own_reserved)
    lot_goal = account[hh.lot_account] if n_a else np.zeros(0, dtype=np.int64)
    in_goal = lot_goal >= 0
    flat = np.zeros(n_g * n_k)
    if in_goal.any():
        key = lot_goal[in_goal] * n_k + hh.asset_class[hh.lot_security[in_goal]]
        flat = np.bincount(key, weights=held[in_goal], minlength=n_g * n_k).astype(np.float64)
    current = flat.reshape(n_g, n_k)
    value = current.sum(axis=1) + start_cash
    target = weights * np.maximum(value - reserved, 0.0)[:, None]
    if n_g:
        target[:, hh.cash_class] += reserved
    return GoalFigures(account=account, weights=weights, value=value, reserved=reserved,
                       current=current, start_cash=start_cash, target=target)


def goal_exposure(hh: Household, g: GoalFigures, exposure_weight: np.ndarray,
                  remaining: np.ndarray, buy_account: np.ndarray, buy_security: np.ndarray,
                  buy_quantity: np.ndarray, final_cash: np.ndarray) -> np.ndarray:
    """[n_g, n_k] exposure dollars of each goal after a proposal (shares left per lot,
    buy lines, final cash per account)."""
    n_k = len(hh.classes)
    w = exposure_weight
    out = np.zeros(g.n * n_k)
    if not g.any:
        return out.reshape(0, n_k)
    lot_goal = g.account[hh.lot_account]
    keep = lot_goal >= 0
    out += np.bincount(lot_goal[keep] * n_k + hh.asset_class[hh.lot_security[keep]],
                       weights=(remaining * hh.price[hh.lot_security]
                                * w[hh.lot_account])[keep], minlength=g.n * n_k)
    buy_goal = g.account[buy_account]
    keep_b = buy_goal >= 0
    out += np.bincount(buy_goal[keep_b] * n_k + hh.asset_class[buy_security[keep_b]],
                       weights=(buy_quantity * hh.price[buy_security] * w[buy_account])[keep_b],
                       minlength=g.n * n_k)
    mine = g.account >= 0
    out += np.bincount(g.account[mine] * n_k + hh.cash_class, weights=(w * final_cash)[mine],
                       minlength=g.n * n_k)
    return out.reshape(g.n, n_k)


def drift_before(hh: Household, g: GoalFigures) -> np.ndarray:
    """[n_g, n_k] exposure minus target dollars before trading."""
    exposure = g.current.copy()
    if g.any:
        exposure[:, hh.cash_class] += g.start_cash
    return exposure - g.target


def out_of_band(g: GoalFigures, dev: np.ndarray, band: float, tol: float) -> bool:
    """Whether any goal's class is further from its target than the band x V_g."""
    if not g.any:
        return False
    cap = band * np.maximum(g.value, 0.0)
    return bool((np.abs(dev) > cap[:, None] + tol).any())


def drift_share(g: GoalFigures, dev: np.ndarray) -> float | None:
    """The household's goal drift figure: the largest, over its goals, of the sum of
    absolute class drift over the goal's value (None without goals)."""
    if not g.any:
        return None
    share = np.abs(dev).sum(axis=1) / np.maximum(g.value, 1e-9)
    return float(share.max())
