"""Solving one household, as a short sequence of named stages:

1. ``blocking_conflicts``: restrictions no trade can satisfy -> ``infeasible``.
2. ``no_trade_is_provable``: skip the solve only where nothing can pay (drift,
   cash flows, no_hold, harvests and location gain all bounded below the minimum
   benefit) -> ``no_trade`` with the bound in words.
3. ``first_solve``: every solve is staged (``_Run``): class exposures are fixed
   by drift, tax and trading cost without the location term, then location
   chooses which accounts hold them (hot-started); in lexicographic mode the
   out-of-band drift is minimized before both.
4. ``clear_w1_pools``: where W1 blocks a harvest, try clearing the group's
   recent lots instead (nothing left to wash the loss) and keep what pays.
5. ``resolve_either_or``: W3 (a loss sale and a buy of one wash group) and round
   trips (a buy and a sell of one account x security): detect, forbid one side,
   re-solve from the basis, keep the side that makes the budgets give way less, then
   the cheaper (``_either_or``).
6. ``enforce_min_trade``: binaries only for the order lines below the minimum;
   when they do not converge, a rounded answer (those lines fixed at zero) is
   used and routed to review.
7. ``settle_tax_budget``: the netted tax (``tax_due``) is checked exactly and the
   budget row tightened until it holds.
8. ``extract``: broker-ready quantities (multiples of the share increment, or
   exact integers), final cash recomputed from them, washed sales measured.
9. ``worth_trading``: a discretionary proposal must beat doing nothing by the
   minimum benefit, otherwise ``no_trade`` with the best benefit found.

Either/or rules are enforced inside the optimization, never by editing its answer.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field

import numpy as np

from hearth.model import goals, wash
from hearth.model.build import (
    DRIFT_TIE_BREAK,
    Derived,
    build,
    derive,
    idle_concentration_cost,
    target_dollars,
)
from hearth.model.highs import Solver, SolverError, SolveResult, SolveStatus
from hearth.model.household import TAXABLE, Household
from hearth.model.lp import LinearProgram, ModelSettings
from hearth.model.pool import LotPools, pool_untaxed_lots
from hearth.model.tax import tax_due
from hearth.model.tolerances import MONEY_TOL, QTY_RTOL
from hearth.model.warm import WarmStart, basis_statuses, map_bases, save_basis
from hearth.model.wash import GAIN_EPS

DUST = 0.005  # dollars: solver noise below half a cent is not a trade
# Loop limits, each with its reason:
MAX_EITHER_OR_ROUNDS = 24  # one conflict is settled per round; households have few groups
MIN_TRADE_REPAIR_ROUNDS = 8  # LP rounds before binaries: each costs two cheap re-solves
TAX_BUDGET_ROUNDS = 3  # tightening the budget row converges in one or two
MIN_TRADE_SETTLE_ROUNDS = 2  # a minimum-order repair after the budget, then the budget again
W1_CLEARING_TRIALS = 4  # groups per household whose pool is worth a trial solve
PIN_TOLERANCE = 1e-3  # dollars: a bound set on an answer's value, loosened for a retry


@dataclass(frozen=True, eq=False)
class Proposal:
    """The trades of one household: shares sold per lot, shares bought per
    (account, security), and the final cash of every account."""

    sell: np.ndarray  # per lot
    buy_account: np.ndarray
    buy_security: np.ndarray
    buy_quantity: np.ndarray
    final_cash: np.ndarray
    disallowed_loss: np.ndarray | None = None  # per lot: loss washed by replacement shares

    @property
    def n_trades(self) -> int:
        return int((self.sell > 0).sum() + len(self.buy_quantity))

    @staticmethod
    def empty(hh: Household) -> Proposal:
        z = np.zeros(0, dtype=np.int64)
        return Proposal(sell=np.zeros(hh.n_lots), buy_account=z, buy_security=z.copy(),
                        buy_quantity=np.zeros(0),
                        final_cash=hh.cash + hh.contribution - hh.withdrawal,
                        disallowed_loss=np.zeros(hh.n_lots))


@dataclass(eq=False)
class Outcome:
    status: str  # traded | no_trade | infeasible | error (rejected is the checker's)
    message: str | None
    proposal: Proposal
    solve_seconds: float = 0.0
    iterations: int = 0
    warm_started: bool = False
    n_col: int = 0
    n_row: int = 0
    solves: int = 0
    wash_conflicts: int = 0
    min_trade_binaries: int = 0
    warm: WarmStart | None = None
    budget_overrun: dict[str, float] = field(default_factory=dict)  # family -> dollars over
    first_solve_seconds: float = 0.0  # the first solve alone, before either/or handling
    mip_limited: bool = False  # a MIP stopped at its node limit (feasible, maybe not optimal)
    min_trade_fallback: bool = False  # minimum-trade binaries gave way to a rounded answer
    whole_shares_mip: bool = False  # whole shares needed the MIP (rounding did not hold)
    benefit: float = 0.0  # objective dollars the proposal beats doing nothing by
    warm_checked: bool = False  # the warm answer was compared with a cold solve
    warm_mismatch: bool = False  # ... and differed: this is the cold answer
    derived: Derived | None = field(default=None, repr=False)


# -- deciding whether to solve --------------------------------------------------------------

def blocking_conflicts(hh: Household, d: Derived) -> str | None:
    """Rules that no trade can satisfy, said in words: cash below its minimum in an
    account nothing may be traded in, and restrictions that contradict each other."""
    stuck_cash = ~hh.tradable & (hh.cash + hh.contribution - hh.withdrawal
                                 < hh.min_cash - MONEY_TOL)
    if stuck_cash.any():
        a = int(np.flatnonzero(stuck_cash)[0])
        have = float(hh.cash[a] + hh.contribution[a] - hh.withdrawal[a])
        return (f"account {hh.account_ids[a]} is not tradable and its cash ${have:,.2f} is below "
                f"its min_cash ${hh.min_cash[a]:,.2f}: short by ${hh.min_cash[a] - have:,.2f}; "
                f"make the account tradable, lower min_cash or add cash")
    unfunded = unfundable_needs(hh, d)
    if unfunded:
        return unfunded
    held = hh.quantity > 0
    must_sell = d.no_hold[hh.lot_account, hh.lot_security] & held
    stuck = must_sell & ~d.lot_tradable
    if stuck.any():
        l = int(np.flatnonzero(stuck)[0])
        return (f"no_hold restriction on {hh.security_ids[hh.lot_security[l]]} cannot be met: "
                f"lot {hh.lot_ids[l]} is in account {hh.account_ids[hh.lot_account[l]]}, "
                f"which is not tradable; lift the restriction or make the account tradable")
    both = must_sell & d.no_sell[hh.lot_account, hh.lot_security]
    if both.any():
        l = int(np.flatnonzero(both)[0])
        return (f"restrictions conflict on lot {hh.lot_ids[l]} "
                f"({hh.security_ids[hh.lot_security[l]]}): no_hold requires selling it and "
                f"no_sell/no_trade forbids it; remove one of the two restrictions")
    return None


def unfundable_needs(hh: Household, d: Derived) -> str | None:
    """Cash needs due within the lead window that no trade can fund: named from an
    account nothing may be traded in and whose cash falls short, or household-level
    with no tradable taxable account to fund them."""
    n = d.needs
    avail = hh.cash + hh.contribution - hh.withdrawal
    stuck = ~hh.tradable & (n.lead_account > 0) & (avail < n.floor - MONEY_TOL)
    if stuck.any():
        a = int(np.flatnonzero(stuck)[0])
        return (f"cash need(s) of ${n.lead_account[a]:,.2f} due within the lead window from "
                f"account {hh.account_ids[a]} cannot be met: the account is not tradable and "
                f"its cash ${avail[a]:,.2f} (min_cash ${hh.min_cash[a]:,.2f}) falls short by "
                f"${n.floor[a] - avail[a]:,.2f}; make it tradable or name another account")
    if n.lead_pool > 0 and not n.funds_pool.any():
        return (f"household-level cash need(s) of ${n.lead_pool:,.2f} due within the lead "
                f"window have no tradable taxable account to fund them; name the account "
                f"(account_id) in cash_needs")
    return None


def drift_by_class(hh: Household, d: Derived, holdings_by_class: np.ndarray,
                   cash: float) -> np.ndarray:
    """Exposure minus target, dollars per class."""
    exposure = holdings_by_class + hh.held_away
    exposure[hh.cash_class] += cash
    return exposure - target_dollars(hh, d)


def goal_out_of_band(hh: Household, d: Derived) -> bool:
    """Whether a goal's class is outside the band before trading (hearth.model.goals)."""
    g = d.goals
    return g is not None and goals.out_of_band(g, goals.drift_before(hh, g), d.band, MONEY_TOL)


def material_cash_flow(hh: Household, d: Derived, s: ModelSettings) -> bool:
    """A contribution large enough to be an order of its own (a $1 contribution
    changes no decision), a withdrawal, or cash outside its bounds by any amount:
    cash above max_cash breaks a hard rule even by a few dollars of dividends, and
    the minimum order then invests a little more than the excess."""
    tr = hh.tradable
    size = max(s.min_trade_value, MONEY_TOL)
    outside = np.maximum(hh.cash + hh.contribution - hh.max_cash - d.needs.cap_raise, 0.0)
    return bool(((hh.contribution >= size) & tr).any() or (hh.withdrawal > 0).any()
                or (d.cash_need > 0).any() or (outside[tr] > MONEY_TOL).any())


def must_trade(hh: Household, d: Derived, s: ModelSettings) -> list[str]:
    """Reasons that oblige a trade whatever it is worth: out-of-band drift (of the
    household, or of a goal whose drift is priced), a material cash flow, a no_hold
    position, a position above the concentration limit that can be sold."""
    why: list[str] = []
    dev = drift_by_class(hh, d, d.current_by_class, d.start_cash)
    if ((np.abs(dev) > d.band * d.target_value + MONEY_TOL).any()
            or (s.drift_weight_goal > 0 and goal_out_of_band(hh, d))):
        why.append("drift")
    if material_cash_flow(hh, d, s):
        why.append("cash_flow")
    if (d.no_hold[hh.lot_account, hh.lot_security] & (hh.quantity > s.dust_shares)).any():
        why.append("no_hold")
    if (d.concentrated[hh.lot_security] & d.lot_tradable
            & ~d.no_sell[hh.lot_account, hh.lot_security]).any():
        why.append("concentration")
    return why


def minimum_benefit(d: Derived, s: ModelSettings) -> float:
    """Dollars a discretionary proposal must beat doing nothing by."""
    return max(s.min_benefit_dollars, s.min_benefit_share * d.value)


def benefit_bounds(hh: Household, d: Derived, s: ModelSettings) -> dict[str, float]:
    """Upper bounds, in objective dollars, on what trading could gain: removing all
    in-band drift, harvesting every eligible loss, and moving every holding to the
    account where its class has the least drag."""
    dev = drift_by_class(hh, d, d.current_by_class, d.start_cash)
    drift = float(np.abs(dev).sum() * s.drift_weight_in)
    if d.goals is not None and d.goals.any:
        drift += float(np.abs(goals.drift_before(hh, d.goals)).sum()
                       * s.drift_weight_in * s.drift_weight_goal)
    sellable = d.lot_tradable & ~d.no_sell[hh.lot_account, hh.lot_security]
    # (W1-blocked lots count: clearing their group's recent lots may free them)
    harvest = float((np.maximum(-d.tax_coef, 0.0) * hh.quantity)[sellable].sum() * s.tax_weight)
    n_k = len(hh.classes)
    best = np.full(n_k, np.inf)
    a_b, s_b = np.nonzero(d.buyable)
    np.minimum.at(best, hh.asset_class[s_b], d.tau[a_b, s_b])
    held = hh.quantity * d.lot_price
    tau_l = d.tau[hh.lot_account, hh.lot_security]
    best_l = best[hh.asset_class[hh.lot_security]]
    gain = np.where(np.isfinite(best_l) & sellable, np.maximum(tau_l - best_l, 0.0), 0.0)
    location = float((gain * held).sum() * s.annuity * s.location_weight)
    return {"drift": drift, "harvest": harvest, "location": location}


def no_trade_is_provable(hh: Household, d: Derived, s: ModelSettings) -> str | None:
    """The ``no_trade`` message when no proposal can be worth the minimum benefit
    (so the solve is skipped), else None."""
    if must_trade(hh, d, s):
        return None
    bounds = benefit_bounds(hh, d, s)
    need = minimum_benefit(d, s)
    if sum(bounds.values()) >= need:
        return None
    return (f"inside its band and nothing can be worth its cost: at most "
            f"${bounds['drift']:,.2f} from drift, ${bounds['harvest']:,.2f} from harvesting and "
            f"${bounds['location']:,.2f} from location, below the minimum benefit ${need:,.2f}")


# kept for callers of the earlier name: the reasons a household may need trades
def reasons_to_trade(hh: Household, d: Derived, s: ModelSettings) -> list[str]:
    why = must_trade(hh, d, s)
    if not why and no_trade_is_provable(hh, d, s) is None:
        why.append("benefit")
    return why


# -- the solve ------------------------------------------------------------------------------

def location_term(lp: LinearProgram, s: ModelSettings) -> np.ndarray | None:
    """The location term's costs where a location stage follows stage one, else None."""
    loc = lp.location if lp.location is not None else np.zeros(lp.n_col)
    return loc if (s.location_stage and np.abs(loc).max(initial=0.0) > 0) else None


def load_model(solver: Solver, lp: LinearProgram, s: ModelSettings) -> None:
    """The household's model into the solver: under stage one's objective and, where
    a location stage follows, under the whole one too, each in its own instance
    (``Solver.objective``; measured faster than changing the costs between the
    stages on the realistic and the small generated books alike)."""
    loc = location_term(lp, s)
    if loc is None:
        solver.load(lp)
    else:
        solver.load(lp, lp.cost - loc, lp.cost)


class _Run:
    """Bookkeeping over the solves of one household, and the staging of every
    solve: (lexicographic only) out-of-band drift alone, then drift, tax, trading
    cost and preference with that drift capped; then, with every class exposure
    fixed at that answer, the location term added (the solver's second objective,
    ``load_model``), hot-started. Every re-solve
    (wash-sale, minimum-trade, budget handling) runs all stages, so the caps stay
    right when the feasible set changes."""

    def __init__(self, solver: Solver, lp: LinearProgram, s: ModelSettings, value: float,
                 location_warm: bool = False) -> None:
        self.solver = solver
        self.settings = s
        self.seconds = 0.0
        self.iterations = 0
        self.solves = 0
        self.limited = False
        self.lp = lp
        self.cap_row: int | None = None
        lay = lp.layout
        self.drift = np.arange(lay.drift0, lay.n_base)
        self.location = location_term(lp, s)
        self.exposure_slack = s.location_exposure_tolerance * max(value, 1.0)
        self.first_basis: tuple[np.ndarray, np.ndarray] | None = None  # saved for tomorrow
        self.location_basis: tuple[np.ndarray, np.ndarray] | None = None  # the same
        # the location stage's instance holds last night's location basis, mapped
        # (``_solve_stages``), for its first solve
        self.location_warm = location_warm
        self.minimum_rows: list[int] = []  # rows raising sell lines to the minimum order
        self.tax_budget_bound: float | None = None  # the budget row as settled so far
        # stage one's costs (the first instance's, ``load_model``) and the costs it holds
        self.stage_one_cost = lp.cost if self.location is None else lp.cost - self.location
        self.cost = self.stage_one_cost
        # the last solve's objective before location: either/or choices are made on it,
        # so location cannot change how much of a class is held through them either
        self.exposure_objective = 0.0
        if s.objective == "lexicographic":
            self.out_cols = np.concatenate([lay.drift_cols(1), lay.drift_cols(3),
                                            lay.goal_drift_cols(1), lay.goal_drift_cols(3)])
            self.slack = s.lexicographic_tolerance * max(value, 1.0)
            self.cap_row = lp.n_row
            solver.add_rows(np.array([-np.inf]), np.array([np.inf]), np.array([0], dtype=np.int32),
                            self.out_cols.astype(np.int32), np.ones(len(self.out_cols)))

    def reload(self, lower: np.ndarray, upper: np.ndarray) -> None:
        """The household's model again without any binaries added since, with the
        column bounds the stages have set (``lower``, ``upper``)."""
        load_model(self.solver, self.lp, self.settings)
        self.minimum_rows = []
        self.cost = self.stage_one_cost
        if self.tax_budget_bound is not None:  # the budget as settled, not as built
            self.solver.set_row_bounds(self.lp.layout.rows["tax_budget"][0], -np.inf,
                                       self.tax_budget_bound)
        if self.cap_row is not None:
            self.solver.add_rows(np.array([-np.inf]), np.array([np.inf]),
                                 np.array([0], dtype=np.int32), self.out_cols.astype(np.int32),
                                 np.ones(len(self.out_cols)))
        cols = np.arange(self.lp.n_col)
        self.solver.set_bounds(cols, lower[cols], upper[cols])

    def _one(self) -> SolveResult:
        r = self.solver.solve()
        self.limited |= r.limited
        self.seconds += r.seconds
        self.iterations += r.iterations
        self.solves += 1
        return r

    def solve(self) -> SolveResult:
        r = self._staged()
        ints = self.solver.integer_columns()
        if r.status != SolveStatus.OPTIMAL or len(ints) == 0:
            return r
        # A MIP answer satisfies integrality only to a tolerance, and a binary at 1e-7
        # times a big-M bound is a sliver of a trade: fix every integer column at its
        # rounded value and solve once more, so the answer is exact.
        values = np.round(r.x[ints])
        if np.abs(r.x[ints] - values).max() <= 1e-12:
            return r  # already exact
        lo, up = self.solver.col_bounds(ints)
        self.solver.set_bounds(ints, values, values)
        polished = self._staged()
        self.solver.set_bounds(ints, lo, up)
        return polished if polished.status == SolveStatus.OPTIMAL else r

    def _staged(self) -> SolveResult:
        first = self._drift_stages(self.stage_one_cost)
        self._keep_basis(first)
        self.exposure_objective = first.objective
        if self.location is None or first.status != SolveStatus.OPTIMAL:
            return first
        # Location decides where the exposures sit, never how much of each class: no
        # class (cash included) may grow past where stage one put it, and each may
        # shrink only by a sliver of value, which is how a relocation pays its
        # trading costs (they are all that leaves the household's exposures).
        second = self._location_stage(first.x, 0.0)
        if second.status == SolveStatus.INFEASIBLE:
            # stage one's answer is feasible only to the solver's tolerances, and bounds
            # set exactly on it can leave an LP that one start solves and another calls
            # infeasible: once more with those bounds a tenth of a cent looser
            second = self._location_stage(first.x, PIN_TOLERANCE)
        if second.status != SolveStatus.OPTIMAL:
            return first
        return second

    def _location_stage(self, first: np.ndarray, pin: float) -> SolveResult:
        """The location stage's solve with every class exposure held where stage
        one's answer ``first`` puts it, loosened by ``pin`` dollars where it is held
        exactly. Its first solve starts from last night's location basis where there
        is one; should that end anywhere but optimal, it starts again from stage
        one's. A MIP (minimum-order binaries) takes stage one's answer, which lies in
        it, as its first incumbent, so HiGHS need not search for one."""
        fixed = first[self.drift]
        over = np.tile([True, True, False, False], len(fixed) // 4)
        lo = np.where(over, fixed - self.exposure_slack, fixed - pin)
        up = np.where(over, fixed + pin, fixed + self.exposure_slack)
        lo = np.maximum(self.lp.lower[self.drift], lo)
        up = np.minimum(self.lp.upper[self.drift], up)
        self.solver.set_bounds(self.drift, lo, np.maximum(lo, up))
        warm, self.location_warm = self.location_warm, False
        try:
            self.solver.objective(second=True)
            self.solver.start_from(first)
            second = self._one()
            if warm and second.status != SolveStatus.OPTIMAL:
                self.solver.restart_second()
                self.solver.objective(second=True)
                self.solver.start_from(first)
                second = self._one()
            self._keep_basis(second, location=True)
        finally:
            self.solver.objective(second=False)
        self.solver.set_bounds(self.drift, self.lp.lower[self.drift], self.lp.upper[self.drift])
        return second

    def _set_costs(self, cost: np.ndarray) -> None:
        """The solver's costs to ``cost``, passing only the columns that change."""
        changed = np.flatnonzero(cost != self.cost)
        if len(changed):
            self.solver.set_costs(changed, cost[changed])
            self.cost = cost.copy()

    def _keep_basis(self, r: SolveResult, location: bool = False) -> None:
        """The first LP answer's basis of stage one (or of the location stage),
        saved for tomorrow: it is where tomorrow's stage starts."""
        if ((self.location_basis if location else self.first_basis) is not None
                or r.status != SolveStatus.OPTIMAL or r.mip or r.row_activity is None):
            return
        basic = self.solver.basic_variables()
        if basic is None:
            return
        statuses = basis_statuses(self.lp, basic, r.x, r.row_activity)
        if location:
            self.location_basis = statuses
        else:
            self.first_basis = statuses

    def _drift_stages(self, cost: np.ndarray) -> SolveResult:
        n = self.lp.n_col
        if self.cap_row is None:
            self._set_costs(cost)
            return self._one()
        stage = np.zeros(n)
        stage[self.out_cols] = 1.0
        # budgets that give way (forced cash) keep their price in stage one too, or
        # it would buy drift with budget overruns that stage two must then keep
        for slack in self.lp.layout.elastic.values():
            stage[slack] = cost[slack]
        self.solver.set_row_bounds(self.cap_row, -np.inf, np.inf)
        self._set_costs(stage)
        first = self._one()
        self._set_costs(cost)
        if first.status != SolveStatus.OPTIMAL:
            return first
        self.solver.set_row_bounds(self.cap_row, -np.inf, first.objective + self.slack)
        return self._one()  # hot start from stage one's basis


def whole_lot_tolerance(s: ModelSettings) -> float:
    """Shares: a lot sold within this of whole is sold whole (``broker_quantities``)."""
    return 1e-6 if s.whole_shares else s.share_increment


def _round_down(x: np.ndarray, step: float) -> np.ndarray:
    return np.floor(x / step + 1e-6) * step


def broker_quantities(hh: Household, sell: np.ndarray, buy: np.ndarray, buy_security: np.ndarray,
                      s: ModelSettings) -> tuple[np.ndarray, np.ndarray]:
    """Order quantities a broker accepts: sells to the share increment (a lot sold
    within one increment of whole is sold whole, at its exact quantity), buys
    rounded down to it (never spending more than the solve did); under whole
    shares both are exact integers (or the whole lot)."""
    q = hh.quantity
    step = 1.0 if s.whole_shares else s.share_increment
    whole_lot = (sell > 0) & (q - sell <= whole_lot_tolerance(s) + QTY_RTOL * q)
    if s.whole_shares:
        rounded = np.round(sell)
        whole_lot |= (sell > 0) & (np.abs(sell - q) <= 1e-6)
    else:
        rounded = np.round(sell / step) * step
    sell = np.where(whole_lot, q, np.minimum(rounded, q))
    buy = np.round(buy) if s.whole_shares else _round_down(buy, step)
    return np.where(sell > 0, sell, 0.0), buy


def final_cash(hh: Household, sell: np.ndarray, buy_account: np.ndarray,
               buy_security: np.ndarray, buy_quantity: np.ndarray) -> np.ndarray:
    """Each account's cash after the trades, from the quantities as written."""
    price_l = hh.price[hh.lot_security]
    proceeds = np.bincount(hh.lot_account, minlength=hh.n_accounts,
                           weights=sell * price_l * (1 - hh.cost_rate[hh.lot_security]))
    spent = np.bincount(buy_account, minlength=hh.n_accounts,
                        weights=buy_quantity * hh.price[buy_security]
                        * (1 + hh.cost_rate[buy_security]))
    return hh.cash + hh.contribution - hh.withdrawal + proceeds - spent


def canonical_untaxed_sells(hh: Household, d: Derived, sell: np.ndarray,
                            wash_days: int) -> np.ndarray:
    """In a tax-advantaged account every lot of a security is worth the same to sell,
    so which lots the solver picked is an accident of its path: sell the same total
    from the lots in their stable order instead (a warm and a cold start then write
    the same rows). Recent lots (possible wash replacements) keep what the solve
    sells of them; the others are laid out around them."""
    untaxed = ~d.lot_taxable & (sell > 0)
    if not untaxed.any():
        return sell
    recent = wash.recent_lots(hh, wash_days)  # replacement shares: which are sold matters
    out = sell.copy()
    key = hh.lot_account * hh.n_securities + hh.lot_security
    for k in np.unique(key[untaxed]):
        lots = np.flatnonzero((key == k) & ~d.lot_taxable)
        if d.forced_sell[lots].any():
            continue  # no_hold sells them all anyway
        # a recent lot may be a wash replacement: what the solve sells of it stands, and
        # only the other lots' total is laid out in their stable order
        lots = lots[~recent[lots]]
        total = float(sell[lots].sum())
        filled = np.minimum(hh.quantity[lots], np.maximum(
            total - (np.cumsum(hh.quantity[lots]) - hh.quantity[lots]), 0.0))
        out[lots] = filled
    return out


def extract(hh: Household, d: Derived, lp: LinearProgram, x: np.ndarray, s: ModelSettings
            ) -> Proposal:
    lay = lp.layout
    sell = np.bincount(lay.sell_lot, weights=x[: lay.n_sell] * lay.sell_mult,
                       minlength=hh.n_lots).astype(np.float64, copy=False)
    q = hh.quantity
    sell = np.where(sell * hh.price[hh.lot_security] <= DUST, 0.0, sell)
    sell = np.where(np.abs(sell - q) <= QTY_RTOL * np.maximum(q, 1.0), q, sell)
    sell = np.minimum(sell, q)
    if not s.whole_shares:  # (whole shares keep the solver's integer lots)
        sell = canonical_untaxed_sells(hh, d, sell, s.wash_sale_days)
    return proposal_from(hh, d, s, sell, lay.buy_account, lay.buy_security,
                         x[lay.buy0: lay.cash0])


def proposal_from(hh: Household, d: Derived, s: ModelSettings, sell: np.ndarray,
                  buy_account: np.ndarray, buy_security: np.ndarray, buy: np.ndarray
                  ) -> Proposal:
    """The proposal as written: broker-ready quantities, buys worth less than dust
    dropped, final cash from the quantities, washed losses measured."""
    sell, buy = broker_quantities(hh, sell, buy, buy_security, s)
    price = hh.price[buy_security]
    keep = buy * price > DUST
    ba, bs, bq = buy_account[keep], buy_security[keep], buy[keep]
    washed = wash.disallowed_losses(hh, d.gain_per_share, sell, bs, bq, s.wash_sale_days)
    return Proposal(sell=sell, buy_account=ba, buy_security=bs, buy_quantity=bq,
                    final_cash=final_cash(hh, sell, ba, bs, bq),
                    disallowed_loss=washed.disallowed_loss)


def _loss_sell_cols(hh: Household, d: Derived, lp: LinearProgram) -> np.ndarray:
    lots = lp.layout.sell_lot
    return (d.lot_taxable[lots] & (d.gain_per_share[lots] < -GAIN_EPS))


def wash_conflicts(hh: Household, d: Derived, lp: LinearProgram, x: np.ndarray) -> np.ndarray:
    """Wash groups that the solution both sells at a loss (taxable) and buys anywhere."""
    lay = lp.layout
    n_g = len(hh.wash_groups)
    sold_value = x[: lay.n_sell] * lay.sell_mult * d.lot_price[lay.sell_lot]
    loss_cols = _loss_sell_cols(hh, d, lp) & (sold_value > DUST)
    sold = np.zeros(n_g, dtype=bool)
    sold[hh.wash_group[hh.lot_security[lay.sell_lot[loss_cols]]]] = True
    bought = np.zeros(n_g, dtype=bool)
    buy = x[lay.buy0: lay.cash0]
    bought[hh.wash_group[lay.buy_security[buy * hh.price[lay.buy_security] > DUST]]] = True
    return np.flatnonzero(sold & bought)


def _group_sides(hh: Household, d: Derived, lp: LinearProgram, g: int):
    lay = lp.layout
    loss = np.flatnonzero(_loss_sell_cols(hh, d, lp)
                          & (hh.wash_group[hh.lot_security[lay.sell_lot]] == g))
    buys = lay.buy0 + np.flatnonzero(hh.wash_group[lay.buy_security] == g)
    return loss, buys


def round_trips(hh: Household, lp: LinearProgram, x: np.ndarray) -> list[tuple[int, int]]:
    """(account, security) pairs the solution both buys and sells."""
    lay = lp.layout
    lots = lay.sell_lot
    n_s = hh.n_securities
    sold = np.bincount(hh.lot_account[lots] * n_s + hh.lot_security[lots],
                       weights=x[: lay.n_sell] * lay.sell_mult * hh.price[hh.lot_security[lots]],
                       minlength=hh.n_accounts * n_s).reshape(hh.n_accounts, n_s)
    buy = x[lay.buy0: lay.cash0] * hh.price[lay.buy_security]
    both = (buy > DUST) & (sold[lay.buy_account, lay.buy_security] > DUST)
    return [(int(a), int(s)) for a, s in zip(lay.buy_account[both], lay.buy_security[both])]


def elastic_use(lp: LinearProgram, x: np.ndarray) -> float:
    """Dollars by which an answer makes the budgets give way (the tax budget and the
    turnover limit's elastic slacks, there only under forced cash)."""
    return float(sum(x[c].sum() for c in lp.layout.elastic.values()))


def _either_or(run: _Run, lower: np.ndarray, upper: np.ndarray,
               sides: tuple[np.ndarray, np.ndarray]) -> SolveResult | None:
    """Forbid each side in turn, keep the cheaper optimal answer (its bounds stay).
    Cheaper means first the side that makes the budgets give way less (to the cent):
    they give way only as far as raising the cash needs requires, never to pay for
    the side an either/or rule leaves (whatever drift that side saves, which
    ELASTIC_PENALTY alone does not outweigh); then the objective without location
    (to the cent), then the full one."""
    trials, exposure = [], []
    for forbid in sides:
        saved_lo, saved_up = lower[forbid].copy(), upper[forbid].copy()
        run.solver.set_bounds(forbid, np.zeros(len(forbid)), np.zeros(len(forbid)))
        trials.append(run.solve())
        exposure.append(run.exposure_objective)
        run.solver.set_bounds(forbid, saved_lo, saved_up)
    ok = [i for i, t in enumerate(trials) if t.status == SolveStatus.OPTIMAL]
    if not ok:
        return None
    give_way = {i: round(elastic_use(run.lp, trials[i].x), 2) for i in ok}
    best = min(ok, key=lambda i: (give_way[i], round(exposure[i], 2), trials[i].objective, i))
    forbid = sides[best]
    lower[forbid] = 0.0
    upper[forbid] = 0.0
    run.solver.set_bounds(forbid, lower[forbid], upper[forbid])
    # The chosen trial's answer stands; the solver's basis may be the other trial's,
    # which only gives the next solve a different (still valid) start.
    return trials[best]


class Unresolvable(Exception):
    """An either/or rule that neither side can meet: the household is infeasible."""


def either_or_message(hh: Household, lp: LinearProgram, x: np.ndarray, groups: np.ndarray) -> str:
    if len(groups):
        g = hh.wash_groups[int(groups[0])]
        return (f"wash-sale rule W3 cannot be met for wash group {g}: the household must sell it "
                f"at a loss (cash needs or no_hold) and can only meet its other rules by buying "
                f"it (max_cash, menus or restrictions leave nothing else to buy); raise max_cash "
                f"or allow another security of the class")
    a, sec = round_trips(hh, lp, x)[0]
    return (f"account {hh.account_ids[a]} must both sell and buy {hh.security_ids[sec]}; "
            f"raise max_cash or allow another security of the class")


def resolve_either_or(run: _Run, hh: Household, d: Derived, lp: LinearProgram,
                      res: SolveResult, lower: np.ndarray, upper: np.ndarray
                      ) -> tuple[SolveResult, int]:
    """W3 and round trips: detect a conflict, forbid one side, re-solve from the
    basis (both sides tried, the cheaper kept), until none is left."""
    lay = lp.layout
    n = 0
    for _ in range(MAX_EITHER_OR_ROUNDS):
        if res.status != SolveStatus.OPTIMAL:
            return res, n
        groups = wash_conflicts(hh, d, lp, res.x)
        if len(groups):
            sides = _group_sides(hh, d, lp, int(groups[0]))
            sides = (sides[1], sides[0])  # forbid the buys first, then the loss sales
        else:
            trips = round_trips(hh, lp, res.x)
            if not trips:
                return res, n
            a, sec = trips[0]
            buy = lay.buy0 + np.flatnonzero((lay.buy_account == a) & (lay.buy_security == sec))
            position = ((hh.lot_account[lay.sell_lot] == a)
                        & (hh.lot_security[lay.sell_lot] == sec))
            forced = position & (lower[: lay.n_sell] > 0)
            if forced.any():
                # a sale another rule makes (no_hold, a cleared W1 pool) stays whatever the
                # other sells do: only the buy can go, or the trip comes back every round
                sides = (buy, buy)
            else:
                sides = (buy, np.flatnonzero(position))
        n += 1
        chosen = _either_or(run, lower, upper, sides)
        if chosen is None:
            raise Unresolvable(either_or_message(hh, lp, res.x, groups))
        res = chosen
    raise SolverError("either/or resolution (wash sales, round trips) did not converge")


def clear_w1_pools(run: _Run, hh: Household, d: Derived, s: ModelSettings, lp: LinearProgram,
                   res: SolveResult, lower: np.ndarray, upper: np.ndarray) -> SolveResult:
    """W1 the other way round: a loss sale is washed only by replacement shares still
    held, so selling the group's recent lots too (and buying none of it) frees the
    loss. Tried for the groups whose blocked harvest is worth the minimum, kept
    where the objective is lower."""
    if res.status != SolveStatus.OPTIMAL or not d.w1_groups.any():
        return res
    lay = lp.layout
    lots = lay.sell_lot
    group_l = hh.wash_group[hh.lot_security[lots]]
    recent = wash.recent_lots(hh, s.wash_sale_days)[lots]
    c = hh.lt_rate * s.discount
    worth = np.zeros(len(hh.wash_groups))
    loss_value = np.maximum(-(d.rate_now - c) * d.gain_per_share, 0.0) * hh.quantity
    np.add.at(worth, hh.wash_group[hh.lot_security], np.where(d.w1_blocked, loss_value, 0.0))
    unrecorded = wash.unrecorded_purchase_groups(hh, s.wash_sale_days, s.dust_shares)
    candidates = [g for g in np.argsort(-worth, kind="stable")
                  if d.w1_groups[g] and not unrecorded[g]
                  and worth[g] * s.tax_weight >= minimum_benefit(d, s)]
    current = run.exposure_objective  # of ``res``
    for g in candidates[:W1_CLEARING_TRIALS]:
        pool = np.flatnonzero((group_l == g) & recent)
        # the loss lots W1 alone blocks (pool: sold whole); a restriction still holds
        restricted = d.no_sell[hh.lot_account[lots], hh.lot_security[lots]]
        blocked = np.flatnonzero((group_l == g) & d.w1_blocked[lots] & ~recent & ~restricted)
        sellable = ~(d.no_sell[hh.lot_account[lots[pool]], hh.lot_security[lots[pool]]])
        if not d.lot_tradable[lots[pool]].all() or not sellable.all():
            continue  # a recent lot that cannot be sold keeps washing the loss
        if (wash.recent_lots(hh, s.wash_sale_days) & ~d.lot_tradable
                & (hh.wash_group[hh.lot_security] == g)).any():
            continue
        buys = lay.buy0 + np.flatnonzero(hh.wash_group[lay.buy_security] == g)
        lo_pool, up_pool = lower[pool].copy(), upper[pool].copy()
        lo_blk, up_blk = lower[blocked].copy(), upper[blocked].copy()
        lo_buy, up_buy = lower[buys].copy(), upper[buys].copy()
        full = hh.quantity[lots[pool]] / lay.sell_mult[pool]
        cleared_up = hh.quantity[lots[blocked]] / lay.sell_mult[blocked]
        run.solver.set_bounds(pool, full, full)
        run.solver.set_bounds(blocked, np.zeros(len(blocked)), cleared_up)
        run.solver.set_bounds(buys, np.zeros(len(buys)), np.zeros(len(buys)))
        trial = run.solve()
        if (trial.status == SolveStatus.OPTIMAL
                and run.exposure_objective < current - MONEY_TOL):
            current = run.exposure_objective
            lower[pool], upper[pool] = full, full
            lower[blocked], upper[blocked] = 0.0, cleared_up
            lower[buys], upper[buys] = 0.0, 0.0
            res = trial
        else:
            run.solver.set_bounds(pool, lo_pool, up_pool)
            run.solver.set_bounds(blocked, lo_blk, up_blk)
            run.solver.set_bounds(buys, lo_buy, up_buy)
    return res


def _rowwise(rows: list[tuple[np.ndarray, np.ndarray]]):
    start = np.zeros(len(rows), dtype=np.int32)
    idx, val = [], []
    n = 0
    for i, (c, v) in enumerate(rows):
        start[i] = n
        idx.append(c)
        val.append(v)
        n += len(c)
    return start, np.concatenate(idx).astype(np.int32), np.concatenate(val)


def _add_wash_binaries(run: _Run, hh: Household, d: Derived, lp: LinearProgram,
                       upper: np.ndarray) -> int:
    """MIP form of W3: y_g = 1 allows loss sales of group g, y_g = 0 allows its buys."""
    lay = lp.layout
    groups = []
    for g in np.unique(hh.wash_group[lay.buy_security]) if len(lay.buy_security) else []:
        loss, buys = _group_sides(hh, d, lp, int(g))
        loss = loss[upper[loss] > 0]
        buys = buys[upper[buys] > 0]
        if len(loss) and len(buys):
            groups.append((loss, buys))
    if not groups:
        return 0
    y = run.solver.add_columns(np.zeros(len(groups)), np.zeros(len(groups)),
                               np.ones(len(groups)), integer=True)
    rows, lo, up = [], [], []
    for (loss, buys), yg in zip(groups, y):
        mult = lay.sell_mult[loss]
        q_max = float((upper[loss] * mult).sum())
        rows.append((np.append(loss, yg), np.append(mult, -q_max)))
        lo.append(-np.inf)
        up.append(0.0)
        u_max = float(upper[buys].sum())
        rows.append((np.append(buys, yg), np.append(np.ones(len(buys)), u_max)))
        lo.append(-np.inf)
        up.append(u_max)
    start, idx, val = _rowwise(rows)
    run.solver.add_rows(np.array(lo), np.array(up), start, idx, val)
    return len(groups)


def min_trade_violations(hh: Household, lp: LinearProgram, x: np.ndarray, s: ModelSettings
                         ) -> tuple[list[np.ndarray], list[int]]:
    """Sell lines (columns per account x security) and buy columns below the minimum
    that do not close the position. A line within one share increment of the whole
    position closes it: ``broker_quantities`` sells each of its lots whole."""
    min_value = s.min_trade_value
    lay = lp.layout
    lots = lay.sell_lot
    n_pos = hh.n_accounts * hh.n_securities
    key = hh.lot_account[lots] * hh.n_securities + hh.lot_security[lots]
    shares = x[: lay.n_sell] * lay.sell_mult
    sold = np.bincount(key, weights=shares, minlength=n_pos)
    position = np.bincount(hh.lot_account * hh.n_securities + hh.lot_security,
                           weights=hh.quantity, minlength=n_pos)
    value = sold * np.tile(hh.price, hh.n_accounts)
    closes = np.abs(sold - position) <= whole_lot_tolerance(s) + QTY_RTOL * position
    bad = (value > DUST) & (value < min_value) & ~closes
    bad_sells = [np.flatnonzero(key == k) for k in np.flatnonzero(bad)]
    buy = x[lay.buy0: lay.cash0]
    bvalue = buy * hh.price[lay.buy_security]
    bad_buys = [int(lay.buy0 + j) for j in np.flatnonzero((bvalue > DUST) & (bvalue < min_value))]
    return bad_sells, bad_buys


def all_trade_lines(hh: Household, lp: LinearProgram, upper: np.ndarray
                    ) -> tuple[list[np.ndarray], list[int]]:
    """Every order line that can trade: sell columns grouped by account x security,
    and every buy column."""
    lay = lp.layout
    lots = lay.sell_lot
    key = hh.lot_account[lots] * hh.n_securities + hh.lot_security[lots]
    can_sell = upper[: lay.n_sell] > 0
    sells = [np.flatnonzero(key == k) for k in np.unique(key[can_sell])]
    buys = [int(lay.buy0 + j) for j in np.flatnonzero(upper[lay.buy0: lay.cash0] > 0)]
    return sells, buys


def _add_min_trade_binaries(run: _Run, hh: Household, lp: LinearProgram, upper: np.ndarray,
                            lower: np.ndarray, sells: list[np.ndarray], buys: list[int],
                            min_value: float) -> int:
    lay = lp.layout
    n = len(sells) + len(buys)
    if n == 0:
        return 0
    # two cents above the minimum: rounding quantities to the broker's increment and
    # the solver's tolerances then never take a line below it
    floor_value = min_value + 2 * MONEY_TOL
    z = run.solver.add_columns(np.zeros(n), np.zeros(n), np.ones(n), integer=True)
    rows, lo, up = [], [], []
    position = hh.by_position(hh.quantity).ravel()
    for cols, zj in zip(sells, z[: len(sells)]):
        l0 = lay.sell_lot[cols[0]]
        a, s = hh.lot_account[l0], hh.lot_security[l0]
        mult = lay.sell_mult[cols]
        q_max = float((upper[cols] * mult).sum())
        t = min(floor_value / hh.price[s], position[a * hh.n_securities + s])
        rows.append((np.append(cols, zj), np.append(mult, -q_max)))
        lo.append(-np.inf)
        up.append(0.0)
        rows.append((np.append(cols, zj), np.append(mult, -t)))
        lo.append(-1e-9)
        up.append(np.inf)
    for c, zj in zip(buys, z[len(sells):]):
        p = hh.price[lay.buy_security[c - lay.buy0]]
        rows.append((np.array([c, zj]), np.array([1.0, -upper[c]])))
        lo.append(-np.inf)
        up.append(0.0)
        rows.append((np.array([c, zj]), np.array([1.0, -floor_value / p])))
        lo.append(-1e-9)
        up.append(np.inf)
    start, idx, val = _rowwise(rows)
    run.solver.add_rows(np.array(lo), np.array(up), start, idx, val)
    return n


def explain_infeasible(hh: Household, d: Derived, s: ModelSettings, solver: Solver) -> str:
    """Re-solve with elastic slacks per family and say which family could not be met."""
    lp = build(hh, s, d, elastic=True)
    solver.load(lp)
    r = solver.solve()
    if r.status != SolveStatus.OPTIMAL:
        return f"infeasible, and the elastic re-solve ended {r.status.value}"
    lay = lp.layout
    x = r.x
    msgs = []
    short = x[lay.elastic["cash_short"]]
    excess = x[lay.elastic["cash_excess"]]
    sellable = np.zeros(hh.n_accounts)
    lots = lay.sell_lot
    np.add.at(sellable, hh.lot_account[lots],
              lp.upper[: lay.n_sell] * lay.sell_mult * d.lot_price[lots]
              * (1 - hh.cost_rate[hh.lot_security[lots]]))
    needs, pool_short = d.needs, 0.0
    for a in np.flatnonzero(short > MONEY_TOL):
        acct = hh.account_ids[a]
        avail = hh.cash[a] + hh.contribution[a]
        if not hh.tradable[a]:
            msgs.append(
                f"account {acct} is not tradable and its cash ${avail:,.2f} cannot cover the "
                f"withdrawal of ${hh.withdrawal[a]:,.2f}; make it tradable or move the withdrawal")
        elif needs.lead_account[a] > 0:
            msgs.append(
                f"cash needs of ${needs.lead_account[a]:,.2f} due within "
                f"{s.cash_need_lead_days} days from account {acct} cannot be raised: cash "
                f"${avail:,.2f} - withdrawal ${hh.withdrawal[a]:,.2f} + sellable value "
                f"${sellable[a]:,.2f} (after no_sell restrictions, wash-sale blocks and trading "
                f"costs) - min_cash ${hh.min_cash[a]:,.2f}; short by ${short[a]:,.2f}")
        elif needs.funds_pool[a] and needs.lead_pool > 0:
            pool_short += float(short[a])
        elif hh.withdrawal[a] > 0:
            msgs.append(
                f"withdrawal of ${hh.withdrawal[a]:,.2f} from account {acct} exceeds what can be "
                f"raised: cash ${avail:,.2f} + sellable value ${sellable[a]:,.2f} (after no_sell "
                f"restrictions, wash-sale blocks and trading costs) - min_cash "
                f"${hh.min_cash[a]:,.2f}; short by ${short[a]:,.2f}")
        else:
            msgs.append(
                f"min_cash ${hh.min_cash[a]:,.2f} of account {acct} cannot be met: cash "
                f"${avail:,.2f} + sellable value ${sellable[a]:,.2f}; short by ${short[a]:,.2f}")
    if pool_short > MONEY_TOL:
        funding = ", ".join(hh.account_ids[a] for a in np.flatnonzero(needs.funds_pool))
        msgs.append(
            f"household-level cash needs of ${needs.lead_pool:,.2f} due within "
            f"{s.cash_need_lead_days} days cannot be raised from the household's tradable "
            f"taxable accounts ({funding}): short by ${pool_short:,.2f}; name another account "
            f"in cash_needs or move the due date")
    for a in np.flatnonzero(excess > MONEY_TOL):
        msgs.append(
            f"cash of account {hh.account_ids[a]} stays ${excess[a]:,.2f} above max_cash "
            f"${hh.max_cash[a]:,.2f}: nothing can be bought there (menu, restrictions or "
            f"wash-sale blocks); raise max_cash or allow a security")
    if "tax_budget" in lay.elastic:
        over = float(x[lay.elastic["tax_budget"]].sum())
        if over > MONEY_TOL:
            msgs.append(f"tax budget of ${hh.tax_budget:,.2f} cannot be met: required sales "
                        f"(withdrawals, no_hold) realize ${over:,.2f} more tax than the budget")
    if "turnover" in lay.elastic:
        over = float(x[lay.elastic["turnover"]].sum())
        if over > MONEY_TOL:
            msgs.append(f"turnover limit {hh.turnover_limit:.2%} cannot be met: required trades "
                        f"exceed it by ${over / 2:,.2f}")
    return "; ".join(msgs) or "infeasible (no constraint family singled out by the elastic re-solve)"


def enforce_min_trade(run: _Run, hh: Household, d: Derived, s: ModelSettings,
                      lp: LinearProgram, res: SolveResult, lower: np.ndarray,
                      upper: np.ndarray) -> tuple[SolveResult, int, int, bool]:
    """Minimum order size. First without binaries (the hot path): lines the answer
    puts below the minimum are fixed at zero, or raised to the minimum where zero
    is infeasible, and the LP re-solved, a few rounds (``repair_small_lines``).
    Only where that leaves a small line, binaries for every line that can trade, in
    one MIP; where that MIP fails or still leaves a small line, the repaired answer
    with the lines that stay small zeroed stands (``min_trade_fallback``): routed to
    review, never a failed household. Returns (result, binaries, either/or
    conflicts, fell back).

    Every line at once, not first the lines below the minimum: such a first round
    settled 9 of the 53 slowest minimum-order households of the 20,000-household
    book's third night, and cost each of the other 44 a MIP pair. Without it that night
    took 15% less HiGHS time, and its slowest household 2.4 s instead of 4.9."""
    if res.status != SolveStatus.OPTIMAL:
        return res, 0, 0, False
    saved_lo, saved_up = lower.copy(), upper.copy()
    repaired, n_conflicts, ok = repair_small_lines(run, hh, d, s, lp, res, lower, upper)
    if ok:
        return repaired, 0, n_conflicts, False
    lower[:], upper[:] = saved_lo, saved_up  # back to the LP answer's bounds for the MIP
    cols = np.arange(lp.n_col)
    run.solver.set_bounds(cols, lower[cols], upper[cols])
    relax_minimum_rows(run)
    sells, buys = all_trade_lines(hh, lp, upper)
    n_binaries = _add_min_trade_binaries(run, hh, lp, upper, lower, sells, buys,
                                         s.min_trade_value)
    mip = run.solve()
    if s.wash_sale_method != "mip":
        mip, more = resolve_either_or(run, hh, d, lp, mip, lower, upper)
        n_conflicts += more
    if mip.status == SolveStatus.OPTIMAL:
        small_sells, small_buys = min_trade_violations(hh, lp, mip.x, s)
        if not small_sells and not small_buys:
            return mip, n_binaries, n_conflicts, False
    return min_trade_fallback(run, hh, d, s, lp, res, lower, upper, n_binaries, n_conflicts)


def repair_small_lines(run: _Run, hh: Household, d: Derived, s: ModelSettings,
                       lp: LinearProgram, res: SolveResult, lower: np.ndarray,
                       upper: np.ndarray) -> tuple[SolveResult, int, bool]:
    """Round and repair with the LP alone: every line below the minimum is fixed at
    zero and the LP re-solved; where zero is infeasible (a cash need the line
    serves), the lines are raised to the minimum instead. A few rounds, since a
    re-solve can put another line below the minimum. Returns (last feasible
    answer, either/or conflicts, no line left below the minimum)."""
    n_conflicts = 0
    for round_ in range(MIN_TRADE_REPAIR_ROUNDS):
        if res.status != SolveStatus.OPTIMAL:
            return res, n_conflicts, False
        sells, buys = min_trade_violations(hh, lp, res.x, s)
        if not sells and not buys:
            return res, n_conflicts, True
        cols = np.concatenate([np.concatenate(sells) if sells else np.zeros(0, dtype=np.int64),
                               np.asarray(buys, dtype=np.int64)]).astype(np.int64)
        cols = cols[lower[cols] <= 0]
        if len(cols) == 0:
            return res, n_conflicts, False
        # first zero the small lines; where that only moved a small need (a few dollars
        # of cash to raise) onto another line, raise the lines to the minimum instead
        if round_ == 0:
            saved_lo, saved_up = lower[cols].copy(), upper[cols].copy()
            lower[cols] = 0.0
            upper[cols] = 0.0
            run.solver.set_bounds(cols, lower[cols], upper[cols])
            trial = run.solve()
            trial, more = resolve_either_or(run, hh, d, lp, trial, lower, upper)
            n_conflicts += more
            if trial.status == SolveStatus.OPTIMAL:
                res = trial
                continue
            lower[cols], upper[cols] = saved_lo, saved_up  # those lines are needed
            run.solver.set_bounds(cols, saved_lo, saved_up)
        up_to = _lines_at_the_minimum(run, hh, lp, sells, buys, lower, upper,
                                      s.min_trade_value + 2 * MONEY_TOL)
        run.solver.set_bounds(up_to, lower[up_to], upper[up_to])
        raised = run.solve()
        if raised.status == SolveStatus.OPTIMAL:  # a raised line may meet a W3 or round trip
            raised, more = resolve_either_or(run, hh, d, lp, raised, lower, upper)
            n_conflicts += more
        if raised.status != SolveStatus.OPTIMAL:
            lower[up_to] = 0.0
            run.solver.set_bounds(up_to, lower[up_to], upper[up_to])
            relax_minimum_rows(run)
            return res, n_conflicts, False
        res = raised
    if res.status != SolveStatus.OPTIMAL:
        return res, n_conflicts, False
    sells, buys = min_trade_violations(hh, lp, res.x, s)
    return res, n_conflicts, not sells and not buys


def relax_minimum_rows(run: _Run) -> None:
    """Take back the rows that raised sell lines to the minimum (free rows)."""
    for r in run.minimum_rows:
        run.solver.set_row_bounds(r, -np.inf, np.inf)
    run.minimum_rows = []


def min_trade_fallback(run: _Run, hh: Household, d: Derived, s: ModelSettings,
                       lp: LinearProgram, res: SolveResult, lower: np.ndarray,
                       upper: np.ndarray, n_binaries: int, n_conflicts: int
                       ) -> tuple[SolveResult, int, int, bool]:
    """The LP again, without the minimum-trade binaries, repaired as far as it goes
    (``repair_small_lines``): the rounded answer the solve falls back to. The last
    feasible answer stands."""
    run.reload(lower, upper)
    res = run.solve()
    res, more = resolve_either_or(run, hh, d, lp, res, lower, upper)
    res, more_repair, _ = repair_small_lines(run, hh, d, s, lp, res, lower, upper)
    return res, n_binaries, n_conflicts + more + more_repair, True


def _lines_at_the_minimum(run: _Run, hh: Household, lp: LinearProgram, sells: list[np.ndarray],
                          buys: list[int], lower: np.ndarray, upper: np.ndarray,
                          floor_value: float) -> np.ndarray:
    """Raise each small line to the minimum order: a buy by its lower bound, a sell
    line (all its lots) by a row ``shares sold >= minimum / price``, so the solve
    picks the lots; a sell line whose lots cannot reach the minimum closes the
    position where they are all of it, and sells nothing where some of it may not
    be sold (a W1-blocked loss lot, say: selling the rest would be a small order that
    does not close the position); where another rule already sells some of them (a
    cleared W1 pool, no_hold), the lots an earlier repair zeroed are given back to
    reach the minimum, or short of it to close the position, as far as the model
    allows. Returns the columns whose bounds changed."""
    lay = lp.layout
    changed = []
    for c in buys:
        p = hh.price[lay.buy_security[c - lay.buy0]]
        lower[c] = min(floor_value / p, upper[c])
        changed.append(c)
    rows = []
    for group in sells:
        mult = lay.sell_mult[group]
        p = hh.price[hh.lot_security[lay.sell_lot[group[0]]]]
        reach = float((upper[group] * mult).sum())
        if reach * p < floor_value:  # the minimum is out of reach
            position = float(hh.quantity[np.unique(lay.sell_lot[group])].sum()) * (1 - QTY_RTOL)
            if reach >= position:
                lower[group] = upper[group]  # close the position
            elif (lower[group] > 0).any():
                # a lot another rule sells (a cleared W1 pool, no_hold) stays sold: the
                # lots an earlier repair zeroed are given back, to reach the minimum or,
                # short of it, to close the position, as far as the model lets them
                natural = float((lp.upper[group] * mult).sum())
                if natural * p >= floor_value:
                    upper[group] = np.maximum(upper[group], lp.upper[group])
                    rows.append((group, mult))
                elif natural >= position:
                    lower[group] = upper[group] = lp.upper[group]
                else:
                    lower[group] = upper[group]
            else:
                lower[group] = upper[group] = 0.0  # no sale
            changed.extend(group.tolist())
        else:
            rows.append((group, mult))
    if rows:
        start, idx, val = _rowwise(rows)
        lo = np.array([floor_value / hh.price[hh.lot_security[lay.sell_lot[g[0]]]] for g, _ in rows])
        run.minimum_rows.extend(range(run.solver.n_row, run.solver.n_row + len(rows)))
        run.solver.add_rows(lo, np.full(len(rows), np.inf), start, idx, val)
    return np.asarray(changed, dtype=np.int64)


def netted_tax(hh: Household, d: Derived, sell: np.ndarray,
               disallowed: np.ndarray | None = None) -> float:
    """tax_due of a proposal: tax(ytd + run) - tax(ytd), washed losses not realized."""
    st, lt = realized_by_term(hh, d, sell, disallowed)
    return tax_due(ytd_st=hh.ytd_st_gain, ytd_lt=hh.ytd_lt_gain, run_st=st, run_lt=lt,
                   carryforward_st=hh.loss_carryforward_st,
                   carryforward_lt=hh.loss_carryforward_lt, st_rate=hh.st_rate,
                   lt_rate=hh.lt_rate, ordinary_rate=hh.ordinary_rate,
                   filing_status=hh.filing_status)


def settle_tax_budget(run: _Run, hh: Household, d: Derived, s: ModelSettings,
                      lp: LinearProgram, res: SolveResult, lower: np.ndarray,
                      upper: np.ndarray) -> SolveResult:
    """The tax budget bounds the netted tax exactly: where the linear row lets the
    netted tax exceed the budget, tighten the row by the excess and re-solve; if
    that does not settle it, sell no gain lots at all (netted tax <= 0)."""
    if hh.tax_budget is None or "tax_budget" not in lp.layout.rows:
        return res
    row = lp.layout.rows["tax_budget"][0]
    # a second settling (after a minimum-order repair) goes on from where the first left
    # the row: from the model's own bound it would undo the first and run out of rounds
    bound = (run.tax_budget_bound if run.tax_budget_bound is not None
             else float(lp.row_upper[row]))
    slack = lp.layout.elastic.get("tax_budget")  # where forced cash lets the budget give way
    for _ in range(TAX_BUDGET_ROUNDS):
        if res.status != SolveStatus.OPTIMAL:
            return res
        p = extract(hh, d, lp, res.x, s)
        due = netted_tax(hh, d, p.sell, p.disallowed_loss)
        allowed = hh.tax_budget + (float(res.x[slack].sum()) if slack is not None else 0.0)
        if due <= allowed + MONEY_TOL:
            return res
        bound -= due - allowed
        run.solver.set_row_bounds(row, -np.inf, bound)
        run.tax_budget_bound = bound
        res = run.solve()
    lay = lp.layout
    gains = np.flatnonzero(d.lot_taxable[lay.sell_lot] & (d.gain_per_share[lay.sell_lot] > 0)
                           & (lower[: lay.n_sell] <= 0))
    lower[gains] = 0.0
    upper[gains] = 0.0
    run.solver.set_bounds(gains, lower[gains], upper[gains])
    return run.solve()


def do_nothing_cost(hh: Household, d: Derived, s: ModelSettings) -> float:
    """The objective of trading nothing: its drift, in and out of band, and its
    positions above the concentration limit (``idle_concentration_cost``)."""
    dev = drift_by_class(hh, d, d.current_by_class, d.start_cash)
    cap = d.band * max(d.target_value, 0.0)
    inside = np.minimum(np.abs(dev), cap)
    step = 1.0 + DRIFT_TIE_BREAK * np.arange(len(dev))  # as drift_cost prices each class
    return float(s.drift_weight_in * (step * inside).sum()
                 + s.drift_weight_out * (step * (np.abs(dev) - inside)).sum()
                 + idle_concentration_cost(d, s) + idle_goal_drift_cost(hh, d, s))


def idle_goal_drift_cost(hh: Household, d: Derived, s: ModelSettings) -> float:
    """What ``goal_drift_cost`` charges for trading nothing."""
    g = d.goals
    if g is None or not g.any:
        return 0.0
    dev = np.abs(goals.drift_before(hh, g))
    inside = np.minimum(dev, (d.band * np.maximum(g.value, 0.0))[:, None])
    step = 1.0 + DRIFT_TIE_BREAK * np.arange(dev.shape[1])
    return float(s.drift_weight_goal * (s.drift_weight_in * (step * inside).sum()
                                        + s.drift_weight_out * (step * (dev - inside)).sum()))


def proposal_cost(lp: LinearProgram, x: np.ndarray) -> float:
    return float(lp.cost @ x[: lp.n_col])


@dataclass(eq=False)
class _Stages:
    """What the solve stages leave: the answer, the run's bookkeeping, the bounds."""

    res: SolveResult
    run: _Run
    lower: np.ndarray
    upper: np.ndarray
    n_wash: int
    n_binaries: int
    fallback: bool
    warm_started: bool
    saved: WarmStart | None
    first_seconds: float
    early: bool = False  # stopped before the minimum order and the budget: not worth a trade


def not_worth_a_trade(hh: Household, d: Derived, s: ModelSettings, lp: LinearProgram,
                      res: SolveResult) -> bool:
    """The answer before the minimum order and the tax budget are settled is the
    best any answer can be (both only restrict it): when nothing obliges a trade
    and even it does not beat doing nothing by the minimum benefit, the household
    is ``no_trade`` and no more is solved (a MIP of hundreds of small lines was
    spent on such households)."""
    if res.status != SolveStatus.OPTIMAL or must_trade(hh, d, s):
        return False
    return do_nothing_cost(hh, d, s) - proposal_cost(lp, res.x) < minimum_benefit(d, s)


def _solve_stages(hh: Household, d: Derived, s: ModelSettings, solver: Solver,
                  lp: LinearProgram, warm: WarmStart | None) -> _Stages:
    """Stages 3 to 7 of the module docstring on one loaded model."""
    load_model(solver, lp, s)
    warm_started = False
    location_warm = False
    if warm is not None:
        first, location, matched = map_bases(hh, lp, warm)
        warm_started = matched > 0 and solver.set_basis(*first)
        location_warm = (warm_started and location is not None
                         and solver.set_basis(*location, second=True))
    run = _Run(solver, lp, s, d.target_value, location_warm)
    lower, upper = lp.lower.copy(), lp.upper.copy()
    n_wash = 0
    if s.wash_sale_method == "mip":
        n_wash = _add_wash_binaries(run, hh, d, lp, upper)
    res = run.solve()  # first solve
    if warm_started and res.status != SolveStatus.OPTIMAL:
        # a mapped basis must never change the answer: whatever went wrong from it
        # (HiGHS has open hot-start reports), the household is solved cold
        spent = (run.seconds, run.iterations, run.solves)
        load_model(solver, lp, s)
        warm_started = False
        run = _Run(solver, lp, s, d.target_value)
        run.seconds, run.iterations, run.solves = spent
        if s.wash_sale_method == "mip":
            n_wash = _add_wash_binaries(run, hh, d, lp, upper)
        res = run.solve()
    first_seconds = run.seconds
    saved = None
    if run.first_basis is not None and s.objective != "lexicographic":
        saved = save_basis(hh, lp, run.first_basis, run.location_basis)
    res = clear_w1_pools(run, hh, d, s, lp, res, lower, upper)
    if s.wash_sale_method != "mip":
        res, n_wash = resolve_either_or(run, hh, d, lp, res, lower, upper)
    n_binaries, fallback = 0, False
    if not_worth_a_trade(hh, d, s, lp, res):
        return _Stages(res, run, lower, upper, n_wash, 0, False, warm_started, saved,
                       first_seconds, early=True)
    if s.min_trade_value > 0:
        res, n_binaries, more, fallback = enforce_min_trade(run, hh, d, s, lp, res, lower, upper)
        n_wash += more
    res, more = settle_budget_and_either_or(run, hh, d, s, lp, res, lower, upper)
    n_wash += more
    for _ in range(MIN_TRADE_SETTLE_ROUNDS):
        if not (s.min_trade_value > 0 and res.status == SolveStatus.OPTIMAL
                and any(min_trade_violations(hh, lp, res.x, s))):
            break
        # the budget or either/or re-solves put a line below the minimum again; its
        # repair may move the tax by cents, so the budget is settled once more
        res, more_binaries, more, more_fallback = enforce_min_trade(run, hh, d, s, lp, res,
                                                                    lower, upper)
        n_binaries += more_binaries
        n_wash += more
        fallback |= more_fallback
        settled, more = settle_budget_and_either_or(run, hh, d, s, lp, res, lower, upper)
        n_wash += more
        if settled.status != SolveStatus.OPTIMAL:
            break  # the repaired lines leave no room: the checker judges the repair as is
        res = settled
    return _Stages(res, run, lower, upper, n_wash, n_binaries, fallback, warm_started, saved,
                   first_seconds)


def settle_budget_and_either_or(run: _Run, hh: Household, d: Derived, s: ModelSettings,
                                lp: LinearProgram, res: SolveResult, lower: np.ndarray,
                                upper: np.ndarray) -> tuple[SolveResult, int]:
    """Settling the budget re-solves, which may meet a new either/or conflict, whose
    resolution may move the tax again: alternate until neither changes anything.
    Returns (result, either/or conflicts met)."""
    n_wash = 0
    for _ in range(TAX_BUDGET_ROUNDS):
        res = settle_tax_budget(run, hh, d, s, lp, res, lower, upper)
        if s.wash_sale_method == "mip":
            res, decided = wash_binaries_within_budget(run, hh, d, lp, res, lower, upper)
            if not decided:
                break
            continue  # the side kept may move the tax: settle it again
        res, more = resolve_either_or(run, hh, d, lp, res, lower, upper)
        n_wash += more
        if not more:
            break
    return res, n_wash


def wash_binaries_within_budget(run: _Run, hh: Household, d: Derived, lp: LinearProgram,
                                res: SolveResult, lower: np.ndarray, upper: np.ndarray
                                ) -> tuple[SolveResult, int]:
    """The MIP form of W3 (``wash_sale_method = "mip"``) chooses each group's side on
    the objective, in which a budget giving way is only a price: where its answer makes
    the budgets give way, each group it trades is decided as ``_either_or`` decides
    (the side that gives way less first), and that side's bounds stay. Returns
    (result, groups decided)."""
    if res.status != SolveStatus.OPTIMAL or round(elastic_use(lp, res.x), 2) <= 0:
        return res, 0
    lay = lp.layout
    decided = 0
    for g in np.unique(hh.wash_group[lay.buy_security]) if len(lay.buy_security) else []:
        loss, buys = _group_sides(hh, d, lp, int(g))
        loss, buys = loss[upper[loss] > 0], buys[upper[buys] > 0]
        if not (len(loss) and len(buys)):
            continue  # no binary, or a side already decided
        sold = (res.x[loss] * lay.sell_mult[loss] * d.lot_price[lay.sell_lot[loss]]).sum()
        bought = (res.x[buys] * hh.price[lay.buy_security[buys - lay.buy0]]).sum()
        if sold <= DUST and bought <= DUST:
            continue  # the answer trades neither side: nothing to choose
        chosen = _either_or(run, lower, upper, (buys, loss))
        if chosen is None:
            break  # cannot happen (the answer in hand meets one side); keep it
        res = chosen
        decided += 1
        if round(elastic_use(lp, res.x), 2) <= 0:
            break
    return res, decided


def round_whole_shares(hh: Household, d: Derived, s: ModelSettings, lp: LinearProgram,
                       st: _Stages) -> SolveResult | None:
    """Whole shares without a MIP where rounding works: round the relaxation's
    answer (buys down to whole shares, sells to the nearest whole share, a lot's
    fractional rest only with all its whole shares), fix every trade there and
    re-solve the rest (cash and drift). None when that breaks a rule (cash, budgets,
    minimum trade): the caller then solves the MIP."""
    if st.res.status != SolveStatus.OPTIMAL:
        return None
    lay = lp.layout
    x = st.res.x
    n_int = lay.n_sell - int((lay.sell_mult != 1).sum())
    rest_cols = np.arange(n_int, lay.n_sell)
    int_of_rest = np.searchsorted(lay.sell_lot[:n_int], lay.sell_lot[rest_cols])
    buys = np.clip(np.floor(x[lay.buy0: lay.cash0] + 1e-9), st.lower[lay.buy0: lay.cash0],
                   st.upper[lay.buy0: lay.cash0])
    cols = np.arange(lay.cash0)
    res = None
    # sells to the nearest whole share; where that leaves cash short, up; where that
    # breaks a budget, down
    for rounding in (np.round, lambda v: np.ceil(v - 1e-9), lambda v: np.floor(v + 1e-9)):
        sells = np.clip(rounding(x[:n_int]), st.lower[:n_int], st.upper[:n_int])
        rest = np.where((x[rest_cols] > 0.5)
                        & (sells[int_of_rest] >= st.upper[int_of_rest] - 1e-9), 1.0, 0.0)
        rest = np.clip(rest, st.lower[rest_cols], st.upper[rest_cols])
        fixed = np.concatenate([sells, rest, buys])
        st.run.solver.set_bounds(cols, fixed, fixed)
        res = st.run.solve()
        if res.status == SolveStatus.OPTIMAL:
            break
    if res is None or res.status != SolveStatus.OPTIMAL:
        return None
    if s.min_trade_value > 0:
        bad_sells, bad_buys = min_trade_violations(hh, lp, res.x, s)
        if bad_sells or bad_buys:
            return None
    if len(wash_conflicts(hh, d, lp, res.x)) or round_trips(hh, lp, res.x):
        return None
    return res


def gives_way_further(lp: LinearProgram, a: SolveResult, b: SolveResult) -> bool:
    """Whether answer ``a`` makes the budgets give way further than ``b`` (to the
    cent): a whole-share rounding that does, against the relaxation, goes to the MIP."""
    return round(elastic_use(lp, a.x), 2) > round(elastic_use(lp, b.x), 2)


def solve_household(hh: Household, s: ModelSettings, solver: Solver,
                    warm: WarmStart | None = None) -> Outcome:
    d = derive(hh, s)
    conflict = blocking_conflicts(hh, d)
    if conflict:
        return Outcome("infeasible", conflict, Proposal.empty(hh), derived=d)
    if not s.always_solve:
        message = no_trade_is_provable(hh, d, s)
        if message is not None:
            return Outcome("no_trade", message, Proposal.empty(hh), derived=d)
    # Interchangeable lots (hearth.model.pool) are solved as one; their sales are
    # spread back over the lots before anything is written or checked.
    pools = pool_untaxed_lots(hh, s.wash_sale_days, s.whole_shares)
    if pools is None:
        return _solve(hh, d, s, solver, warm)
    out = _solve(pools.household, derive(pools.household, s), s, solver, warm)
    return unpool(hh, d, s, pools, out)


def unpool(hh: Household, d: Derived, s: ModelSettings, pools: LotPools, out: Outcome
           ) -> Outcome:
    """``out``, solved on the pooled household, for the household's own lots."""
    p = out.proposal
    if not p.sell.any() and not len(p.buy_quantity):
        proposal = dataclasses.replace(Proposal.empty(hh), final_cash=p.final_cash)
    else:
        proposal = proposal_from(hh, d, s, pools.spread(hh, p.sell), p.buy_account,
                                 p.buy_security, p.buy_quantity)
    return dataclasses.replace(out, proposal=proposal, derived=d)


def _solve(hh: Household, d: Derived, s: ModelSettings, solver: Solver,
           warm: WarmStart | None) -> Outcome:
    lp = build(hh, s, d)
    try:
        out = _solve_built(hh, d, s, solver, lp, warm)
        if out.warm_started and warm_check_chosen(hh.household_id, s.warm_check_share):
            out = cross_check_cold(hh, d, s, solver, lp, out)
        return out
    except Unresolvable as e:
        return Outcome("infeasible", str(e), Proposal.empty(hh), derived=d, n_col=lp.n_col,
                       n_row=lp.n_row, solves=1)


def warm_check_chosen(household_id: str, share: float) -> bool:
    """Whether this household's warm answer is checked against a cold solve: a
    stable hash of its id below ``share`` (the same households every night)."""
    if share <= 0:
        return False
    if share >= 1:
        return True
    h = int.from_bytes(hashlib.blake2b(household_id.encode(), digest_size=8).digest(), "big")
    return h / 2**64 < share


def same_answer(a: Outcome, b: Outcome) -> bool:
    """The same status and the same trades, quantities to the share increment."""
    pa, pb = a.proposal, b.proposal
    return (a.status == b.status and np.allclose(pa.sell, pb.sell, rtol=1e-9, atol=1e-6)
            and len(pa.buy_quantity) == len(pb.buy_quantity)
            and np.array_equal(pa.buy_account, pb.buy_account)
            and np.array_equal(pa.buy_security, pb.buy_security)
            and np.allclose(pa.buy_quantity, pb.buy_quantity, rtol=1e-9, atol=1e-6))


def cross_check_cold(hh: Household, d: Derived, s: ModelSettings, solver: Solver,
                     lp: LinearProgram, warm: Outcome) -> Outcome:
    """The household solved cold as well: where the answers differ, the cold one
    stands (warm starts change speed, never the answer) and ``warm_mismatch`` says
    so for the log."""
    cold = _solve_built(hh, d, s, solver, lp, None)
    if same_answer(warm, cold):
        return dataclasses.replace(warm, warm_checked=True)
    return dataclasses.replace(cold, warm_checked=True, warm_mismatch=True,
                               warm=warm.warm or cold.warm,
                               solve_seconds=warm.solve_seconds + cold.solve_seconds,
                               iterations=warm.iterations + cold.iterations)


def _solve_built(hh: Household, d: Derived, s: ModelSettings, solver: Solver,
                 lp: LinearProgram, warm: WarmStart | None) -> Outcome:
    extra_seconds, extra_iterations, extra_solves = 0.0, 0, 0
    used_mip = False
    if s.whole_shares and lp.integrality is not None:
        relaxed = dataclasses.replace(lp, integrality=None)
        st = _solve_stages(hh, d, s, solver, relaxed, warm)
        rounded = st.res if st.early else round_whole_shares(hh, d, s, relaxed, st)
        over = None  # a rounded answer that makes the budgets give way further
        if rounded is not None and not st.early and gives_way_further(relaxed, rounded, st.res):
            over, rounded = rounded, None
        if rounded is not None:
            st.res, lp = rounded, relaxed
        else:  # the MIP, where rounding does not hold
            extra_seconds, extra_iterations = st.run.seconds, st.run.iterations
            extra_solves = st.run.solves
            mip = _solve_stages(hh, d, s, solver, lp, warm)
            if over is not None and not (mip.res.status == SolveStatus.OPTIMAL
                                         and gives_way_further(lp, over, mip.res)):
                # the MIP found no whole-share answer that gives way less: the rounded
                # one stands (and the checker judges its overrun)
                st.res, lp = over, relaxed
                st.run.seconds += mip.run.seconds
                st.run.iterations += mip.run.iterations
                st.run.solves += mip.run.solves
                extra_seconds, extra_iterations, extra_solves = 0.0, 0, 0
            else:
                used_mip, st = True, mip
    else:
        st = _solve_stages(hh, d, s, solver, lp, warm)
    run, res = st.run, st.res
    n_wash, n_binaries, fallback = st.n_wash, st.n_binaries, st.fallback
    warm_started, saved, first_seconds = st.warm_started, st.saved, st.first_seconds
    run.seconds += extra_seconds
    run.iterations += extra_iterations
    run.solves += extra_solves

    common = dict(solve_seconds=run.seconds, iterations=run.iterations,
                  warm_started=warm_started, n_col=lp.n_col, n_row=lp.n_row, solves=run.solves,
                  wash_conflicts=n_wash, min_trade_binaries=n_binaries, derived=d, warm=saved,
                  first_solve_seconds=first_seconds, mip_limited=run.limited,
                  min_trade_fallback=fallback, whole_shares_mip=used_mip)
    if res.status == SolveStatus.INFEASIBLE:
        message = explain_infeasible(hh, d, s, solver)
        return Outcome("infeasible", message, Proposal.empty(hh), **common)  # type: ignore[arg-type]
    if res.status == SolveStatus.TIME_LIMIT:
        return Outcome("error", f"solver time limit of {s.time_limit:g}s reached; raise "
                       "time_limit or check the household's size", Proposal.empty(hh),
                       **common)  # type: ignore[arg-type]
    if res.status != SolveStatus.OPTIMAL:
        return Outcome("error", f"solver ended {res.status.value}", Proposal.empty(hh),
                       **common)  # type: ignore[arg-type]
    proposal = extract(hh, d, lp, res.x, s)
    overrun = {k: float(res.x[c].sum()) for k, c in lp.layout.elastic.items()
               if res.x[c].sum() > MONEY_TOL}
    benefit = do_nothing_cost(hh, d, s) - proposal_cost(lp, res.x)
    if not proposal.n_trades:
        message = worth_trading(hh, d, s, 0.0) or "the optimum is to trade nothing"
        return Outcome("no_trade", message, proposal, benefit=0.0,
                       budget_overrun=overrun, **common)  # type: ignore[arg-type]
    verdict = worth_trading(hh, d, s, benefit)
    if verdict is not None:
        return Outcome("no_trade", verdict, Proposal.empty(hh), benefit=benefit,
                       **common)  # type: ignore[arg-type]
    return Outcome("traded", None, proposal, budget_overrun=overrun, benefit=benefit,
                   **common)  # type: ignore[arg-type]


def worth_trading(hh: Household, d: Derived, s: ModelSettings, benefit: float) -> str | None:
    """None when the proposal may go ahead; else the ``no_trade`` message. Trades that
    out-of-band drift, a material cash flow or a no_hold rule oblige always go."""
    if must_trade(hh, d, s):
        return None
    need = minimum_benefit(d, s)
    if benefit >= need:
        return None
    return (f"inside its band and nothing worth its cost: the best proposal found beats "
            f"doing nothing by ${benefit:,.2f}, below the minimum benefit ${need:,.2f}")


def realized_by_term(hh: Household, d: Derived, sell: np.ndarray,
                     disallowed: np.ndarray | None = None) -> tuple[float, float]:
    """Realized (short-term, long-term) gains of taxable sells, dollars; a loss that
    a wash sale disallows is not realized (it moves to the replacement's basis)."""
    taxable = hh.account_type[hh.lot_account] == TAXABLE
    basis_sold = np.where(hh.quantity > 0, hh.cost_basis * sell / hh.quantity, 0.0)
    gain = np.where(taxable, sell * d.lot_price - basis_sold, 0.0)
    if disallowed is not None:
        gain = gain + np.where(taxable, disallowed, 0.0)
    return float(gain[~d.is_long].sum()), float(gain[d.is_long].sum())
