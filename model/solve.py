"""Solving one household: decide whether a solve is needed, solve, enforce the
either/or rules (wash sale W3, minimum trade), explain infeasibility, and turn the
solution into a :class:`Proposal`.

Either/or rules are enforced inside the optimization, never by editing its answer:
``resolve`` detects a W3 conflict, forbids one side and re-solves from the previous
basis (trying both sides, keeping the cheaper); ``mip`` gives every wash group that
could conflict a binary up front. Minimum trade sizes add binaries only for the
order lines the relaxation put below the minimum, re-solving until none is left.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hearth.model.build import GAIN_EPS, Derived, build, derive
from hearth.model.highs import Solver, SolverError, SolveResult, SolveStatus
from hearth.model.household import TAXABLE, Household
from hearth.model.lp import LinearProgram, ModelSettings

QTY_RTOL = 1e-9
MONEY_TOL = 0.01
MAX_ROUNDS = 6
DUST = 0.005  # dollars: solver noise below half a cent is not a trade


@dataclass(frozen=True, eq=False)
class Proposal:
    """The trades of one household: shares sold per lot, shares bought per
    (account, security), and the final cash of every account."""

    sell: np.ndarray  # per lot
    buy_account: np.ndarray
    buy_security: np.ndarray
    buy_quantity: np.ndarray
    final_cash: np.ndarray

    @property
    def n_trades(self) -> int:
        return int((self.sell > 0).sum() + len(self.buy_quantity))

    @staticmethod
    def empty(hh: Household) -> Proposal:
        z = np.zeros(0, dtype=np.int64)
        return Proposal(sell=np.zeros(hh.n_lots), buy_account=z, buy_security=z.copy(),
                        buy_quantity=np.zeros(0),
                        final_cash=hh.cash + hh.contribution - hh.withdrawal)


@dataclass(frozen=True)
class WarmStart:
    structure: str
    col_status: np.ndarray
    row_status: np.ndarray


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
    derived: Derived | None = field(default=None, repr=False)


# -- deciding whether to solve --------------------------------------------------------------

def blocking_conflicts(hh: Household, d: Derived) -> str | None:
    """Restrictions that no trade can satisfy, said in words."""
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


def drift_by_class(hh: Household, d: Derived, holdings_by_class: np.ndarray,
                   cash: float) -> np.ndarray:
    """Exposure minus target, dollars per class."""
    exposure = holdings_by_class + hh.held_away
    exposure[hh.cash_class] += cash
    return exposure - hh.target * d.target_value


def reasons_to_trade(hh: Household, d: Derived, s: ModelSettings) -> list[str]:
    """Why this household may need trades tonight; empty means ``no_trade`` without a solve."""
    why: list[str] = []
    dev = drift_by_class(hh, d, d.current_by_class,
                         float((hh.cash + hh.contribution - hh.withdrawal).sum()))
    if (np.abs(dev) > d.band * d.target_value + MONEY_TOL).any():
        why.append("drift")
    tr = hh.tradable
    if ((hh.contribution > 0) & tr).any() or (hh.withdrawal > 0).any():
        why.append("cash_flow")
    if ((hh.cash < hh.min_cash - MONEY_TOL) | (hh.cash > hh.max_cash + MONEY_TOL))[tr].any():
        why.append("cash_bounds")
    if (d.no_hold[hh.lot_account, hh.lot_security] & (hh.quantity > 0)).any():
        why.append("no_hold")
    if hh.tlh_enabled:
        blocked = d.w1_group[hh.wash_group[hh.lot_security]]
        benefit = -(d.tax_coef * hh.quantity) * s.tax_weight
        worth = (d.lot_taxable & d.lot_tradable & (d.gain_per_share < -GAIN_EPS) & ~blocked
                 & ~d.no_sell[hh.lot_account, hh.lot_security]
                 & (benefit > s.harvest_min_benefit))
        if worth.any():
            why.append("harvest")
    return why


# -- the solve ------------------------------------------------------------------------------

class _Run:
    """Bookkeeping over the solves of one household. In lexicographic mode every
    solve is two: out-of-band drift alone, then everything else with that drift
    capped (a row whose bound is set between the stages); the second starts from
    the first's basis. Doing both stages on every re-solve keeps the cap right
    when wash-sale or minimum-trade handling changes the feasible set."""

    def __init__(self, solver: Solver, lp: LinearProgram | None = None,
                 lexicographic: bool = False, value: float = 0.0, tol: float = 0.0) -> None:
        self.solver = solver
        self.seconds = 0.0
        self.iterations = 0
        self.solves = 0
        self.limited = False
        self.lp = lp
        self.cap_row: int | None = None
        if lexicographic and lp is not None:
            lay = lp.layout
            self.out_cols = np.concatenate([lay.drift_cols(1), lay.drift_cols(3)])
            self.slack = tol * max(value, 1.0)
            self.cap_row = lp.n_row
            solver.add_rows(np.array([-np.inf]), np.array([np.inf]), np.array([0], dtype=np.int32),
                            self.out_cols.astype(np.int32), np.ones(len(self.out_cols)))

    def _one(self) -> SolveResult:
        r = self.solver.solve()
        self.limited |= r.limited
        self.seconds += r.seconds
        self.iterations += r.iterations
        self.solves += 1
        return r

    def solve(self) -> SolveResult:
        r = self._solve()
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
        polished = self._solve()
        self.solver.set_bounds(ints, lo, up)
        return polished if polished.status == SolveStatus.OPTIMAL else r

    def _solve(self) -> SolveResult:
        if self.cap_row is None:
            return self._one()
        assert self.lp is not None
        n = self.lp.n_col
        cols = np.arange(n)
        stage = np.zeros(n)
        stage[self.out_cols] = 1.0
        self.solver.set_row_bounds(self.cap_row, -np.inf, np.inf)
        self.solver.set_costs(cols, stage)
        first = self._one()
        self.solver.set_costs(cols, self.lp.cost)
        if first.status != SolveStatus.OPTIMAL:
            return first
        self.solver.set_row_bounds(self.cap_row, -np.inf, first.objective + self.slack)
        return self._one()  # hot start from stage one's basis


def _extract(hh: Household, lp: LinearProgram, x: np.ndarray) -> Proposal:
    lay = lp.layout
    sell = np.zeros(hh.n_lots)
    np.add.at(sell, lay.sell_lot, x[: lay.n_sell] * lay.sell_mult)
    q = hh.quantity
    sell = np.where(sell * hh.price[hh.lot_security] <= DUST, 0.0, sell)
    sell = np.where(np.abs(sell - q) <= QTY_RTOL * np.maximum(q, 1.0), q, sell)
    sell = np.minimum(sell, q)
    buy = x[lay.buy0: lay.cash0]
    price = hh.price[lay.buy_security]
    keep = buy * price > DUST
    return Proposal(sell=sell, buy_account=lay.buy_account[keep],
                    buy_security=lay.buy_security[keep], buy_quantity=buy[keep],
                    final_cash=x[lay.cash0: lay.drift0].copy())


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


def _resolve_wash(run: _Run, hh: Household, d: Derived, lp: LinearProgram,
                  res: SolveResult, lower: np.ndarray, upper: np.ndarray
                  ) -> tuple[SolveResult, int]:
    """Detect W3 conflicts, forbid one side per group, re-solve from the basis."""
    n = 0
    for _ in range(MAX_ROUNDS * 4):
        if res.status != SolveStatus.OPTIMAL:
            return res, n
        groups = wash_conflicts(hh, d, lp, res.x)
        if len(groups) == 0:
            return res, n
        g = int(groups[0])
        n += 1
        loss, buys = _group_sides(hh, d, lp, g)
        trials = []
        for forbid in (buys, loss):
            saved_lo, saved_up = lower[forbid].copy(), upper[forbid].copy()
            run.solver.set_bounds(forbid, np.zeros(len(forbid)), np.zeros(len(forbid)))
            trials.append(run.solve())
            run.solver.set_bounds(forbid, saved_lo, saved_up)
        ok = [t for t in trials if t.status == SolveStatus.OPTIMAL]
        if not ok:
            return trials[0], n
        best = 0 if (trials[0].status == SolveStatus.OPTIMAL and
                     (trials[1].status != SolveStatus.OPTIMAL
                      or trials[0].objective <= trials[1].objective + 1e-9)) else 1
        forbid = (buys, loss)[best]
        lower[forbid] = 0.0
        upper[forbid] = 0.0
        run.solver.set_bounds(forbid, lower[forbid], upper[forbid])
        # The chosen trial's answer stands; the solver's basis may be the other trial's,
        # which only gives the next solve a different (still valid) start.
        res = trials[best]
    raise SolverError("wash-sale resolution did not converge")


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


def min_trade_violations(hh: Household, lp: LinearProgram, x: np.ndarray,
                         min_value: float) -> tuple[list[np.ndarray], list[int]]:
    """Sell lines (columns per account x security) and buy columns below the minimum
    that do not close the position."""
    lay = lp.layout
    lots = lay.sell_lot
    n_pos = hh.n_accounts * hh.n_securities
    key = hh.lot_account[lots] * hh.n_securities + hh.lot_security[lots]
    shares = x[: lay.n_sell] * lay.sell_mult
    sold = np.bincount(key, weights=shares, minlength=n_pos)
    position = np.bincount(hh.lot_account * hh.n_securities + hh.lot_security,
                           weights=hh.quantity, minlength=n_pos)
    value = sold * np.tile(hh.price, hh.n_accounts)
    closes = np.abs(sold - position) <= QTY_RTOL * np.maximum(position, 1.0)
    bad = (value > DUST) & (value < min_value - MONEY_TOL) & ~closes
    bad_sells = [np.flatnonzero(key == k) for k in np.flatnonzero(bad)]
    buy = x[lay.buy0: lay.cash0]
    bvalue = buy * hh.price[lay.buy_security]
    bad_buys = [int(lay.buy0 + j) for j in np.flatnonzero((bvalue > DUST) & (bvalue < min_value - MONEY_TOL))]
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
    z = run.solver.add_columns(np.zeros(n), np.zeros(n), np.ones(n), integer=True)
    rows, lo, up = [], [], []
    position = np.zeros(hh.n_accounts * hh.n_securities)
    np.add.at(position, hh.lot_account * hh.n_securities + hh.lot_security, hh.quantity)
    for cols, zj in zip(sells, z[: len(sells)]):
        l0 = lay.sell_lot[cols[0]]
        a, s = hh.lot_account[l0], hh.lot_security[l0]
        mult = lay.sell_mult[cols]
        q_max = float((upper[cols] * mult).sum())
        t = min(min_value / hh.price[s], position[a * hh.n_securities + s])
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
        rows.append((np.array([c, zj]), np.array([1.0, -min_value / p])))
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
    for a in np.flatnonzero(short > MONEY_TOL):
        acct = hh.account_ids[a]
        avail = hh.cash[a] + hh.contribution[a]
        if not hh.tradable[a]:
            msgs.append(
                f"account {acct} is not tradable and its cash ${avail:,.2f} cannot cover the "
                f"withdrawal of ${hh.withdrawal[a]:,.2f}; make it tradable or move the withdrawal")
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


def solve_household(hh: Household, s: ModelSettings, solver: Solver,
                    warm: WarmStart | None = None) -> Outcome:
    d = derive(hh, s)
    conflict = blocking_conflicts(hh, d)
    if conflict:
        return Outcome("infeasible", conflict, Proposal.empty(hh), derived=d)
    if not s.always_solve and not reasons_to_trade(hh, d, s):
        return Outcome("no_trade", None, Proposal.empty(hh), derived=d)

    lp = build(hh, s, d)
    solver.load(lp)
    structure = lp.structure_key(hh.lot_ids, hh.account_ids, hh.security_ids, hh.classes)
    warm_started = False
    if warm is not None and warm.structure == structure:
        warm_started = solver.set_basis(warm.col_status, warm.row_status)
    run = _Run(solver, lp, s.objective == "lexicographic", d.target_value,
               s.lexicographic_tolerance)
    lower, upper = lp.lower.copy(), lp.upper.copy()
    n_binaries = 0
    n_wash = 0
    if s.wash_sale_method == "mip":
        n_wash = _add_wash_binaries(run, hh, d, lp, upper)
    res = run.solve()
    first_seconds = run.seconds
    saved = None
    if res.status == SolveStatus.OPTIMAL and not res.mip:
        basis = solver.basis()
        if basis is not None and s.objective != "lexicographic":
            saved = WarmStart(structure, basis[0], basis[1])
    if s.wash_sale_method != "mip":
        res, n_wash = _resolve_wash(run, hh, d, lp, res, lower, upper)
    if s.min_trade_value > 0:
        covered_sells: set[int] = set()
        covered_buys: set[int] = set()
        for round_ in range(MAX_ROUNDS):
            if res.status != SolveStatus.OPTIMAL:
                break
            sells, buys = min_trade_violations(hh, lp, res.x, s.min_trade_value)
            if not sells and not buys:
                break
            if round_ >= 2:  # still new offenders: give every remaining line its binary
                sells, buys = all_trade_lines(hh, lp, upper)
            sells = [c for c in sells if int(c[0]) not in covered_sells]
            buys = [c for c in buys if c not in covered_buys]
            if not sells and not buys:
                raise SolverError("minimum-trade binaries did not converge")
            covered_sells.update(int(c[0]) for c in sells)
            covered_buys.update(buys)
            n_binaries += _add_min_trade_binaries(run, hh, lp, upper, lower, sells, buys,
                                                  s.min_trade_value)
            res = run.solve()
            if s.wash_sale_method != "mip":
                res, more = _resolve_wash(run, hh, d, lp, res, lower, upper)
                n_wash += more

    common = dict(solve_seconds=run.seconds, iterations=run.iterations,
                  warm_started=warm_started, n_col=lp.n_col, n_row=lp.n_row, solves=run.solves,
                  wash_conflicts=n_wash, min_trade_binaries=n_binaries, derived=d, warm=saved,
                  first_solve_seconds=first_seconds, mip_limited=run.limited)
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
    proposal = _extract(hh, lp, res.x[: lp.n_col])
    status = "traded" if proposal.n_trades else "no_trade"
    overrun = {k: float(res.x[c].sum()) for k, c in lp.layout.elastic.items()
               if res.x[c].sum() > MONEY_TOL}
    return Outcome(status, None, proposal, budget_overrun=overrun, **common)  # type: ignore[arg-type]


def realized_by_term(hh: Household, d: Derived, sell: np.ndarray) -> tuple[float, float]:
    """Realized (short-term, long-term) gains of taxable sells, dollars."""
    taxable = hh.account_type[hh.lot_account] == TAXABLE
    basis_sold = np.where(hh.quantity > 0, hh.cost_basis * sell / hh.quantity, 0.0)
    gain = np.where(taxable, sell * d.lot_price - basis_sold, 0.0)
    return float(gain[~d.is_long].sum()), float(gain[d.is_long].sum())
