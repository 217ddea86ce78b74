"""The one module that talks to HiGHS.

Everything outside speaks hearth's vocabulary: :class:`SolveStatus` and
:class:`SolverError`. One :class:`Solver` is reused for every household of a shard
(``passModel`` replaces the model; options are set once).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass
from enum import StrEnum

import highspy
import numpy as np

from hearth.errors import OptimizationError
from hearth.model.lp import LinearProgram


class SolveStatus(StrEnum):
    OPTIMAL = "optimal"
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    TIME_LIMIT = "time_limit"
    ERROR = "error"


_STATUS_MAP = {
    highspy.HighsModelStatus.kOptimal: SolveStatus.OPTIMAL,
    highspy.HighsModelStatus.kInfeasible: SolveStatus.INFEASIBLE,
    highspy.HighsModelStatus.kUnboundedOrInfeasible: SolveStatus.INFEASIBLE,
    highspy.HighsModelStatus.kUnbounded: SolveStatus.UNBOUNDED,
    highspy.HighsModelStatus.kTimeLimit: SolveStatus.TIME_LIMIT,
    highspy.HighsModelStatus.kIterationLimit: SolveStatus.TIME_LIMIT,
}

# status value -> HiGHS's enum (values 0..4), indexed by a whole status array at once
_BASIS_BY_INT = np.array(sorted(highspy.HighsBasisStatus.__members__.values(), key=int), dtype=object)


class SolverError(OptimizationError):
    """HiGHS refused the model or failed inside; the household gets status ``error``."""


# HiGHS treats costs of this magnitude as infinite; a NaN cost makes its simplex loop
# forever, deaf to time_limit and to interrupt callbacks (HiGHS 1.16), and a NaN matrix
# value gives a wrong "optimal". So no non-finite number ever reaches it: every entry
# point checks its arrays first and refuses them with a SolverError, which costs only
# the household and is what makes the time limit hold.
_INFINITE_COST = 1e20
# Reduced costs below this count as zero. HiGHS's default (1e-7) is coarser than the
# differences ``model.build.tie_break`` puts between interchangeable trades (about
# 1e-8 per share where two columns' quasi-random weights fall close), so a warm and a
# cold start could stop at different optima of one tie; at 1e-9 the tie-break decides.
DUAL_TOLERANCE = 1e-9


def _finite(what: str, values: np.ndarray, limit: float = np.inf) -> None:
    v = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(v) | (np.abs(v) >= limit)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise SolverError(f"refused a model with {int(bad.sum())} non-finite or out-of-range "
                          f"{what} (first: index {i} = {v[i]!r}); a NaN or infinite input "
                          "got past validation: check the household's numbers")


def _bounds(what: str, lower: np.ndarray, upper: np.ndarray) -> None:
    lo, up = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    bad = np.isnan(lo) | np.isnan(up) | (lo == np.inf) | (up == -np.inf)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise SolverError(f"refused {int(bad.sum())} {what} that are NaN or empty "
                          f"(first: index {i} = [{lo[i]!r}, {up[i]!r}]); a NaN or infinite "
                          "input got past validation: check the household's numbers")


@dataclass(frozen=True)
class SolveResult:
    status: SolveStatus
    x: np.ndarray
    objective: float
    iterations: int
    seconds: float
    mip: bool
    limited: bool = False  # a MIP stopped at its node limit with a feasible answer
    row_activity: np.ndarray | None = None  # A x, one value per row
    retried: str | None = None  # the algorithm of a cold retry after an error or time limit


def _pass(h: highspy.Highs, lp: LinearProgram, cost: np.ndarray, integrality: np.ndarray) -> None:
    """``lp`` under ``cost`` into ``h``."""
    status = h.passModel(lp.n_col, lp.n_row, len(lp.a_value), 1, 1, 0.0,
                         cost, lp.lower, lp.upper, lp.row_lower, lp.row_upper,
                         lp.a_start, lp.a_index, lp.a_value, integrality)
    if status == highspy.HighsStatus.kError:
        raise SolverError(f"HiGHS rejected a model of {lp.n_col} columns and {lp.n_row} rows")


def _instance(*, time_limit: float, presolve: bool, mip_rel_gap: float,
              mip_abs_gap: float, mip_max_nodes: int) -> highspy.Highs:
    """A single-threaded HiGHS instance with hearth's options."""
    h = highspy.Highs()
    h.silent()
    h.setOptionValue("threads", 1)
    h.setOptionValue("time_limit", float(time_limit))
    h.setOptionValue("presolve", "on" if presolve else "off")
    # The objective is in dollars: a MIP is solved when it is within a dollar of the
    # best bound; proving more only burns the nightly window. No relative gap: a
    # household's objective can run to millions of dollars it cannot avoid tonight
    # (penalties on a concentrated position, drift), and 0.01% of $19 million let a
    # MIP stop $1,911 from its bound.
    h.setOptionValue("mip_rel_gap", float(mip_rel_gap))
    h.setOptionValue("mip_abs_gap", float(mip_abs_gap))
    # A node limit (not a clock) bounds hard MIPs, so the answer is the same on
    # any machine; the best feasible answer at the limit is used and flagged.
    h.setOptionValue("mip_max_nodes", int(mip_max_nodes))
    # Household MIPs are tiny; symmetry detection cost about 15% of their time in
    # bench measurements and changed no answer.
    h.setOptionValue("mip_detect_symmetry", False)
    h.setOptionValue("random_seed", 0)
    h.setOptionValue("dual_feasibility_tolerance", DUAL_TOLERANCE)
    return h


class Solver:
    """A reusable single-threaded HiGHS instance, or two holding one model under two
    objectives (``load`` with ``second_cost``): every change to the model goes to
    both, and each re-solve starts from its own objective's last basis, so moving
    between the objectives never changes the costs an instance holds (a cost change
    on thousands of lot columns makes the dual simplex flip and walk back most of
    them, which cost more than the solve itself)."""

    def __init__(self, *, time_limit: float = 10.0, presolve: bool = False,
                 mip_rel_gap: float = 0.0, mip_abs_gap: float = 1.0,
                 mip_max_nodes: int = 1000) -> None:
        self._make = functools.partial(_instance, time_limit=time_limit, presolve=presolve,
                                       mip_rel_gap=mip_rel_gap, mip_abs_gap=mip_abs_gap,
                                       mip_max_nodes=mip_max_nodes)
        self._h = self._first = self._make()
        self._second: highspy.Highs | None = None  # made on the first two-objective model
        self._twin = False  # the model loaded has a second objective
        # the model loaded, as the second instance holds it: (lp, costs, integrality)
        self._second_model: tuple[LinearProgram, np.ndarray, np.ndarray] | None = None
        self._second_fresh = False  # ... whose instance has not solved since the load
        self._time_limit = float(time_limit)
        self._n_col = 0
        self._n_row = 0
        self._integer = False
        self._int_cols: list[int] = []

    def _instances(self) -> tuple[highspy.Highs, ...]:
        return (self._first, self._second) if self._twin and self._second else (self._first,)

    # -- model -------------------------------------------------------------------------
    def load(self, lp: LinearProgram, cost: np.ndarray | None = None,
             second_cost: np.ndarray | None = None) -> None:
        """``lp`` as the model, under ``cost`` (``lp.cost`` by default) and, given
        ``second_cost``, under that as well in a second instance (``objective``)."""
        cost = lp.cost if cost is None else cost
        _finite("costs", cost, _INFINITE_COST)
        if second_cost is not None:
            _finite("costs", second_cost, _INFINITE_COST)
        _finite("matrix values", lp.a_value)
        _bounds("column bounds", lp.lower, lp.upper)
        _bounds("row bounds", lp.row_lower, lp.row_upper)
        integrality = lp.integrality if lp.integrality is not None else np.zeros(
            lp.n_col, dtype=np.int32)
        self._twin = second_cost is not None
        if self._twin and self._second is None:
            self._second = self._make()
        self._h = self._first
        self._second_fresh = self._twin
        costs = [cost] if second_cost is None else [cost, second_cost]
        for h, c in zip(self._instances(), costs):
            h.clearSolver()  # nothing of the previous household may steer this one
            _pass(h, lp, c, integrality)
        self._second_model = None if second_cost is None else (lp, second_cost, integrality)
        self._n_col, self._n_row = lp.n_col, lp.n_row
        self._integer = bool(lp.integrality is not None and lp.integrality.any())
        self._int_cols = (list(np.flatnonzero(lp.integrality)) if lp.integrality is not None
                          else [])

    def objective(self, second: bool) -> None:
        """Solve under the second objective from now on (``second``), or the first.
        The second instance's first solve after a load (or ``restart_second``)
        starts from the first's basis (its last solve's) unless a basis was set on
        it (``set_basis``); later ones from its own."""
        if not second:
            self._h = self._first
            return
        if not self._twin or self._second is None:
            raise SolverError("no second objective was loaded")
        if self._second_fresh:
            self._second_fresh = False
            basis = self._first.getBasis()
            if basis.valid:
                self._second.setBasis(basis)
        self._h = self._second

    def restart_second(self) -> None:
        """The second instance's next solve starts from the first's basis again."""
        self._second_fresh = self._twin

    def set_basis(self, col_status: np.ndarray, row_status: np.ndarray,
                  second: bool = False) -> bool:
        """Install a saved basis in the first instance, or (``second``) in the second;
        False (and a cold start) when HiGHS rejects it. Right after ``load``, before
        any other change to the model."""
        model = self._second_model if self._twin else None
        if second and model is None:
            return False
        if len(col_status) != self._n_col or len(row_status) != self._n_row:
            return False
        basis = highspy.HighsBasis()
        basis.col_status = _BASIS_BY_INT[col_status].tolist()
        basis.row_status = _BASIS_BY_INT[row_status].tolist()
        if model is None or not second:
            return bool(self._first.setBasis(basis) == highspy.HighsStatus.kOk)
        # A new second instance: a basis set from outside on the reused one gave
        # answers that depended on the household it had solved before (one that needed
        # minimum-order binaries), clearSolver notwithstanding. A new instance costs
        # about 0.1 ms, and only a household with a saved location basis pays it.
        self._second = self._make()
        _pass(self._second, *model)
        ok = bool(self._second.setBasis(basis) == highspy.HighsStatus.kOk)
        self._second_fresh = not ok
        return ok

    def basic_variables(self) -> np.ndarray | None:
        """The basic variables of the last solve: a column's index, or -1 - i for
        row i's slack (one per row; tens of microseconds, where reading the whole
        basis back costs milliseconds on thousands of columns)."""
        status, basic = self._h.getBasicVariables()  # type: ignore[attr-defined]
        if status != highspy.HighsStatus.kOk:
            return None
        return np.asarray(basic, dtype=np.int64)

    def basis(self) -> tuple[np.ndarray, np.ndarray] | None:
        b = self._h.getBasis()
        if not b.valid:
            return None
        return np.array(b.col_status, dtype=np.int8), np.array(b.row_status, dtype=np.int8)

    def set_bounds(self, cols: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> None:
        _bounds("column bounds", lower, upper)
        if len(cols):
            cols = np.asarray(cols, dtype=np.int32)
            lower = np.asarray(lower, dtype=np.float64)
            upper = np.asarray(upper, dtype=np.float64)
            for h in self._instances():
                h.changeColsBounds(len(cols), cols, lower, upper)

    def set_row_bounds(self, row: int, lower: float, upper: float) -> None:
        _bounds("row bounds", np.array([lower]), np.array([upper]))
        for h in self._instances():
            h.changeRowBounds(int(row), float(lower), float(upper))

    @property
    def n_row(self) -> int:
        return self._n_row

    def col_bounds(self, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lp = self._first.getLp()
        lower = np.asarray(lp.col_lower_)[cols]
        upper = np.asarray(lp.col_upper_)[cols]
        return lower, upper

    def set_costs(self, cols: np.ndarray, cost: np.ndarray) -> None:
        """Costs of the objective being solved under (``objective``)."""
        _finite("costs", cost, _INFINITE_COST)
        if len(cols):
            self._h.changeColsCost(len(cols), np.asarray(cols, dtype=np.int32),
                                   np.asarray(cost, dtype=np.float64))

    def add_columns(self, cost: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                    integer: bool) -> np.ndarray:
        """Append empty columns; returns their indices."""
        n = len(cost)
        _finite("costs", cost, _INFINITE_COST)
        _bounds("column bounds", lower, upper)
        idx = np.arange(self._n_col, self._n_col + n, dtype=np.int32)
        for h in self._instances():
            h.addVars(n, np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64))
            h.changeColsCost(n, idx, np.asarray(cost, dtype=np.float64))
            if integer:
                h.changeColsIntegrality(n, idx, np.ones(n, dtype=np.uint8))
        if integer:
            self._integer = True
            self._int_cols.extend(idx.tolist())
        self._n_col += n
        return idx

    def add_rows(self, lower: np.ndarray, upper: np.ndarray, start: np.ndarray,
                 index: np.ndarray, value: np.ndarray) -> None:
        """Append rows given row-wise (``start`` has one entry per row)."""
        n = len(lower)
        if n == 0:
            return
        _finite("matrix values", value)
        _bounds("row bounds", lower, upper)
        for h in self._instances():
            h.addRows(n, np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64),
                      len(value), np.asarray(start, dtype=np.int32),
                      np.asarray(index, dtype=np.int32), np.asarray(value, dtype=np.float64))
        self._n_row += n

    def set_integer(self, cols: np.ndarray) -> None:
        if len(cols):
            for h in self._instances():
                h.changeColsIntegrality(len(cols), np.asarray(cols, dtype=np.int32),
                                        np.ones(len(cols), dtype=np.uint8))
            self._integer = True
            self._int_cols.extend(np.asarray(cols).tolist())

    def integer_columns(self) -> np.ndarray:
        return np.asarray(self._int_cols, dtype=np.int32)

    def start_from(self, x: np.ndarray) -> None:
        """The next solve of a MIP, under the objective being solved, starts with the
        answer ``x`` as its incumbent: HiGHS checks it and drops it where it is
        infeasible. Nothing for an LP, whose start is its basis."""
        if not self._integer or len(x) != self._n_col:
            return
        solution = highspy.HighsSolution()
        solution.col_value = np.asarray(x, dtype=np.float64).tolist()
        solution.value_valid = True
        self._h.setSolution(solution)

    # -- solve -------------------------------------------------------------------------
    def solve(self) -> SolveResult:
        """Solve from wherever the instance is (a hot start after a change). An LP
        that ends in error or at the time limit is retried cold, by the dual
        simplex and then by the interior-point method, before its status stands:
        HiGHS has open reports of hot starts that go wrong."""
        r = self._run()
        if self._integer or r.status not in (SolveStatus.ERROR, SolveStatus.TIME_LIMIT):
            return r
        spent_s, spent_it = r.seconds, r.iterations
        for algorithm in ("simplex", "ipm"):
            self._h.clearSolver()  # cold: no basis, no solution
            self._h.setOptionValue("solver", algorithm)
            try:
                r = self._run()
            finally:
                self._h.setOptionValue("solver", "choose")
            spent_s, spent_it = spent_s + r.seconds, spent_it + r.iterations
            if r.status not in (SolveStatus.ERROR, SolveStatus.TIME_LIMIT):
                break
        return dataclasses.replace(r, seconds=spent_s, iterations=spent_it,
                                   retried=algorithm)

    def _run(self) -> SolveResult:
        # HiGHS measures time_limit on the instance's cumulative run clock, so a
        # reused instance would run out after enough households: move the limit.
        self._h.setOptionValue("time_limit", self._h.getRunTime() + self._time_limit)
        t0 = time.perf_counter()
        run_status = self._h.run()
        seconds = time.perf_counter() - t0
        if run_status == highspy.HighsStatus.kError:
            model_status = self._h.getModelStatus()
            status = _STATUS_MAP.get(model_status, SolveStatus.ERROR)
        else:
            status = _STATUS_MAP.get(self._h.getModelStatus(), SolveStatus.ERROR)
        info = self._h.getInfo()
        iterations = max(int(info.simplex_iteration_count), 0)
        if self._integer:
            iterations = max(iterations, int(getattr(info, "mip_total_lp_iterations", 0) or 0))
        solution = self._h.getSolution()
        x = np.asarray(solution.col_value, dtype=np.float64)
        limited = False
        if (self._integer and self._h.getModelStatus() == highspy.HighsModelStatus.kSolutionLimit
                and info.primal_solution_status == 2 and len(x) == self._n_col):
            status, limited = SolveStatus.OPTIMAL, True
        if status == SolveStatus.OPTIMAL and len(x) != self._n_col:
            status = SolveStatus.ERROR
        return SolveResult(status=status, x=x, objective=float(info.objective_function_value),
                           iterations=iterations, seconds=seconds, mip=self._integer,
                           limited=limited,
                           row_activity=np.asarray(solution.row_value, dtype=np.float64))
