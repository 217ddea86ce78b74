"""One shard end to end: read -> assemble -> build and solve -> check -> report.

``run_shard`` is what every executor calls; it is a plain function of its
arguments (paths, ids, configuration), returns Arrow tables and never raises for
a single household: a crash in one household becomes that household's ``error``
row and an ``exceptions`` row.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import traceback
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute

from hearth.batch.config import RunConfig
from hearth.io.contract import EXCEPTIONS_SCHEMA, HOUSEHOLD_RESULTS_SCHEMA, TRADES_SCHEMA
from hearth.io.households import households, reference
from hearth.io.shards import read_shard
from hearth.io.warm import read_warm
from hearth.io.write import WARM_SCHEMA, stage_tables
from hearth.model.build import Derived, concentration_shift, derive
from hearth.model.checker import check_proposal
from hearth.model.estimates import estimate
from hearth.model.goals import drift_before as goal_drift_before
from hearth.model.goals import drift_share, goal_exposure, out_of_band
from hearth.model.highs import Solver
from hearth.model.household import TAXABLE, Household
from hearth.model.lp import ModelSettings
from hearth.model.review import ReviewThresholds, review_reasons
from hearth.model.solve import Outcome, Proposal, drift_by_class, realized_by_term, solve_household
from hearth.model.tax import tax_due
from hearth.model.tolerances import MONEY_TOL

log = logging.getLogger("hearth.pipeline")

STAGES = ("read", "assemble", "build", "solve", "check", "report")


@dataclass
class ShardOutput:
    shard: int
    tables: dict[str, pa.Table]  # empty once ``staged``: the files are in staging
    seconds: dict[str, float]
    statuses: dict[str, int]
    n_households: int
    model_cols: list[int] = field(default_factory=list)
    worker: str = ""  # where it ran (the executor fills it in)
    solved: int = 0  # households that needed at least one solve
    totals: dict[str, float] = field(default_factory=dict)  # dollar totals of the shard
    rows: dict[str, int] = field(default_factory=dict)  # rows per table
    files: dict[str, dict] | None = None  # set by ``staged``: io.write.stage_tables's answer

    def __post_init__(self) -> None:
        if not self.rows:
            self.rows = {name: t.num_rows for name, t in self.tables.items()}


def staged(out: ShardOutput, staging: str) -> ShardOutput:
    """``out`` with its tables written to the run's staging folder by this process
    (the worker that computed them), so that only the file list goes back to the
    driver, which records the shard as finished (``RunWriter.record_shard``)."""
    t0 = time.perf_counter()
    files = stage_tables(staging, out.shard, out.tables)
    seconds = dict(out.seconds, write=out.seconds.get("write", 0.0) + time.perf_counter() - t0)
    return dataclasses.replace(out, tables={}, files=files, seconds=seconds)


DOLLAR_TOTALS = ("tax_savings_estimate", "tax_due_estimate", "tlh_losses", "realized_st_gain",
                 "realized_lt_gain")


def dollar_totals(results: pa.Table, trades: pa.Table) -> dict[str, float]:
    """The shard's dollar figures for the summary and the manifest."""
    out = {name: float(pa.compute.sum(results.column(name)).as_py() or 0.0)
           for name in DOLLAR_TOTALS}
    out["traded_value"] = float(pa.compute.sum(trades.column("notional")).as_py() or 0.0)
    return out


class _Columns:
    """Row-wise appends into column lists, for one Arrow table."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.cols: dict[str, list] = {n: [] for n in schema.names}

    def add(self, **row: object) -> None:
        for name, values in self.cols.items():
            values.append(row.get(name))

    def extend(self, n: int, **cols: object) -> None:
        """Append ``n`` rows at once; a scalar is repeated, a list or array taken as is."""
        for name, values in self.cols.items():
            v = cols.get(name)
            if isinstance(v, np.ndarray):
                values.extend(v.tolist())
            elif isinstance(v, list):
                values.extend(v)
            else:
                values.extend([v] * n)

    def __len__(self) -> int:
        return len(next(iter(self.cols.values())))

    def truncate(self, n: int) -> None:
        """Drop rows appended after the table had ``n`` rows (a household that failed)."""
        for values in self.cols.values():
            del values[n:]

    def table(self) -> pa.Table:
        return pa.table({n: pa.array(v, type=self.schema.field(n).type)
                         for n, v in self.cols.items()}, schema=self.schema)


class _Chunks:
    """Column-wise appends into one Arrow table: a household's order lines (up to
    thousands of rows) go in as numpy arrays (numbers; NaN is null) and lists
    (words), and each column is joined and converted once per shard."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.chunks: dict[str, list] = {n: [] for n in schema.names}
        self.sizes: list[int] = []
        self.n = 0

    def extend(self, n: int, **cols: object) -> None:
        """Append ``n`` rows; a column is a numpy array (of a number column: NaN is
        null), a list, or a scalar repeated (None: null)."""
        for f in self.schema:
            v = cols.get(f.name)
            if not isinstance(v, (np.ndarray, list)):
                if pa.types.is_string(f.type):
                    v = [v] * n
                else:
                    v = np.full(n, np.nan if v is None else v, dtype=f.type.to_pandas_dtype())
            self.chunks[f.name].append(v)
        self.sizes.append(n)
        self.n += n

    def __len__(self) -> int:
        return self.n

    def truncate(self, n: int) -> None:
        """Drop the rows appended after the table had ``n`` rows (whole appends)."""
        while self.n > n:
            self.n -= self.sizes.pop()
            for chunks in self.chunks.values():
                chunks.pop()
        assert self.n == n, "truncate to an append boundary"

    def table(self) -> pa.Table:
        arrays = []
        for f in self.schema:
            chunks = self.chunks[f.name]
            if pa.types.is_string(f.type):
                words: list = []
                for c in chunks:
                    words.extend(c)
                arrays.append(pa.array(words, type=f.type))
            elif not chunks:
                arrays.append(pa.array([], type=f.type))
            else:
                arrays.append(pa.array(np.concatenate(chunks), type=f.type, from_pandas=True))
        return pa.Table.from_arrays(arrays, schema=self.schema)


def _class_holdings(hh: Household, d: Derived, remaining: np.ndarray, buy_account: np.ndarray,
                    buy_security: np.ndarray, buy_quantity: np.ndarray) -> np.ndarray:
    """Exposure dollars per class after the trades (``Derived.exposure_weight``)."""
    w = d.exposure_weight
    dollars = remaining * hh.price[hh.lot_security] * w[hh.lot_account]
    # (bincount of an empty index is int64 whatever the weights: force float)
    out = np.bincount(hh.asset_class[hh.lot_security], weights=dollars,
                      minlength=len(hh.classes)).astype(np.float64)
    out += np.bincount(hh.asset_class[buy_security],
                       weights=buy_quantity * hh.price[buy_security] * w[buy_account],
                       minlength=len(hh.classes))
    return out


# the trades table's words, taken by index (a household writes up to thousands of lines)
_SELL_REASONS = np.array(["restriction", "tax_loss_harvest", "cash_raise", "asset_location",
                          "rebalance"], dtype=object)
_BUY_REASONS = np.array(["cash_invest", "tax_loss_harvest", "asset_location", "rebalance"],
                        dtype=object)
_TERMS = np.array([None, "short", "long"], dtype=object)  # untaxed, short, long


def _reasons(hh: Household, d: Derived, p: Proposal, class_change: np.ndarray,
             class_traded: np.ndarray) -> tuple[list[str], list[str]]:
    """Main driver of each sell (per lot) and each buy line, first match wins:
    sells restriction, tax_loss_harvest, cash_raise, asset_location, rebalance;
    buys cash_invest, tax_loss_harvest (a substitute in a harvested class),
    asset_location, rebalance. A trade that moves its goal's class exposure is no
    relocation, even where the household's is unchanged."""
    relocation = class_traded > 0
    relocation &= np.abs(class_change) <= 0.05 * np.maximum(class_traded, 1e-9)
    moved = _goal_class_moved(hh, d, p)  # a trade that moves its goal's class rebalances
    needs_cash = (hh.withdrawal > 0) | (hh.cash < hh.min_cash) | (d.cash_need > 0)  # needs due
    new_cash = (hh.contribution > 0) | (hh.cash > hh.max_cash)
    lots = np.flatnonzero(p.sell > 0)
    a, sec = hh.lot_account[lots], hh.lot_security[lots]
    k = hh.asset_class[sec]
    harvest = d.lot_taxable[lots] & (d.gain_per_share[lots] < 0) & bool(hh.tlh_enabled)
    sells = _SELL_REASONS[np.select(
        [d.no_hold[a, sec], harvest, needs_cash[a], relocation[k] & ~moved[a, k]],
        np.arange(4), default=4)].tolist()
    harvested = np.zeros(len(hh.classes), dtype=bool)
    harvested[k[harvest & ~d.no_hold[a, sec]]] = True
    kb = hh.asset_class[p.buy_security]
    buys = _BUY_REASONS[np.select(
        [new_cash[p.buy_account], harvested[kb] & (hh.rank[p.buy_security] > 1),
         relocation[kb] & ~moved[p.buy_account, kb]],
        np.arange(3), default=3)].tolist()
    return sells, buys


def _goal_class_moved(hh: Household, d: Derived, p: Proposal) -> np.ndarray:
    """[n_a, n_k] bool: the account is in a goal (hearth.model.goals) whose exposure to
    the class the proposal changes by more than 5% of what it trades there: such a
    trade rebalances the goal, even where the household's class is unchanged."""
    n_k = len(hh.classes)
    g = d.goals
    if g is None or not g.any:
        return np.zeros((hh.n_accounts, n_k), dtype=bool)
    remaining = hh.quantity - p.sell
    held = goal_exposure(hh, g, d.exposure_weight, remaining, p.buy_account, p.buy_security,
                         p.buy_quantity, np.zeros(hh.n_accounts))
    change = held - g.current
    lot_goal = g.account[hh.lot_account]
    traded = np.zeros(g.n * n_k)
    sold = (lot_goal >= 0) & (p.sell > 0)
    np.add.at(traded, lot_goal[sold] * n_k + hh.asset_class[hh.lot_security[sold]],
              (p.sell * d.lot_price)[sold])
    buy_goal = g.account[p.buy_account]
    bought = buy_goal >= 0
    np.add.at(traded, buy_goal[bought] * n_k + hh.asset_class[p.buy_security[bought]],
              (p.buy_quantity * hh.price[p.buy_security])[bought])
    moved = np.abs(change) > 0.05 * np.maximum(traded.reshape(g.n, n_k), 1e-9)
    out = np.zeros((hh.n_accounts, n_k), dtype=bool)
    mine = g.account >= 0
    out[mine] = moved[g.account[mine]]
    return out


def _derive_or_none(hh: Household, settings) -> Derived | None:
    try:
        return derive(hh, settings)
    except Exception:  # noqa: BLE001 - the caller reports the original error
        return None


def run_shard(prep_root: str, shard: int, run_id: str, run_date: str, config: RunConfig,
              warm_root: str | None = None) -> ShardOutput:
    seconds = dict.fromkeys(STAGES, 0.0)
    t0 = time.perf_counter()
    con = duckdb.connect()
    data = read_shard(prep_root, shard, con)
    ids = data.tables["households"].column("household_id").to_pylist()
    warm = read_warm(con, warm_root, ids) if (warm_root and config.warm_start and ids) else {}
    con.close()
    seconds["read"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ref = reference(data.tables, config.default_cost_bps)
    day = np.datetime64(run_date, "D")
    inputs = list(households(data, day, ref))
    seconds["assemble"] = time.perf_counter() - t0

    settings = config.model_settings()
    rules = config.check_rules()
    thresholds = config.review_thresholds()
    solver = Solver(time_limit=config.time_limit, presolve=config.presolve)
    trades = _Chunks(TRADES_SCHEMA)
    results = _Columns(HOUSEHOLD_RESULTS_SCHEMA)
    exceptions = _Columns(EXCEPTIONS_SCHEMA)
    warm_out = _Columns(WARM_SCHEMA)
    statuses: dict[str, int] = {}
    model_cols: list[int] = []
    solved = 0

    for item in inputs:
        hid = item.household_id
        hh = item.household
        for notice in item.overrides.expired:  # noted, never costing the household
            exceptions.add(run_id=run_id, source_table=notice.source_table, household_id=hid,
                           account_id=notice.account_id, record_id=notice.record_id,
                           code=notice.code, message=notice.message)
        applied = list(item.overrides.applied)
        if hh is None:
            results.add(run_id=run_id, household_id=hid, status="error", message=item.error,
                        review_reasons=["status_error"], needs_review=True, n_trades=0,
                        solve_ms=0.0, iterations=0, warm_started=False, overrides_applied=[])
            if item.code is not None:
                exceptions.add(run_id=run_id, source_table="households", household_id=hid,
                               record_id=hid, code=item.code, message=item.error)
            statuses["error"] = statuses.get("error", 0) + 1
            continue
        t_h = time.perf_counter()
        crashed = False
        skip = item.overrides.skip
        try:
            outcome = (solve_household(hh, settings, solver, warm.get(hid)) if skip is None
                       else Outcome("no_trade", skip, Proposal.empty(hh), derived=derive(hh, settings)))
        except Exception as e:  # one household's crash never stops the shard
            crashed = True
            outcome = Outcome("error", f"internal error while solving: {type(e).__name__}: {e}",
                              Proposal.empty(hh), derived=_derive_or_none(hh, settings))
            exceptions.add(run_id=run_id, source_table="households", household_id=hid,
                           record_id=hid, code="solver_error",
                           message=f"{type(e).__name__}: {e}; "
                                   f"{traceback.format_exc(limit=2).splitlines()[-1]}")
            solver = Solver(time_limit=config.time_limit, presolve=config.presolve)
        spent = time.perf_counter() - t_h
        if outcome.warm_mismatch:
            log.warning("household %s: the warm-started answer differed from a cold solve; "
                        "the cold answer is written", hid,
                        extra={"event": "warm_mismatch", "run_id": run_id, "shard": shard,
                               "household_id": hid})
        seconds["solve"] += outcome.solve_seconds
        seconds["build"] += spent - outcome.solve_seconds
        if outcome.n_col:
            model_cols.append(outcome.n_col)
        solved += outcome.solves > 0
        if (w := outcome.warm) is not None:
            warm_out.add(household_id=hid, col_keys=list(w.col_keys),
                         col_status=w.col_status.tobytes(), row_keys=list(w.row_keys),
                         row_status=w.row_status.tobytes(),
                         location_col_keys=list(w.location_col_keys),
                         location_col_status=w.location_col_status.tobytes(),
                         location_row_status=w.location_row_status.tobytes())

        t_c = time.perf_counter()
        p = outcome.proposal
        status, message = outcome.status, outcome.message
        n_trades_before, n_results_before = len(trades), len(results)
        try:
            if status in ("traded", "no_trade"):
                violations = check_proposal(hh, p.sell, p.buy_account, p.buy_security,
                                            p.buy_quantity, p.final_cash, rules,
                                            disallowed_loss=p.disallowed_loss)
                if violations:
                    said = "; ".join(str(v) for v in violations[:5]) + (
                        f" (+{len(violations) - 5} more)" if len(violations) > 5 else "")
                    if status == "traded":
                        status = "rejected"
                        message = "proposal failed the compliance check: " + said
                    else:  # doing nothing breaks a hard rule (cash below its minimum, ...)
                        status = "infeasible"
                        message = (f"{skip}, and " if skip else "no proposal was found and ") \
                            + "trading nothing breaks: " + said
                    p = Proposal.empty(hh)
            seconds["check"] += time.perf_counter() - t_c
            t_r = time.perf_counter()
            if outcome.derived is None:
                raise RuntimeError(message or "the household's inputs could not be derived")
            _report(hh, outcome, status, message, p, run_id, settings, thresholds, trades,
                    results, applied)
        except Exception as e:  # a failure in checking or reporting costs this household only
            trades.truncate(n_trades_before)
            results.truncate(n_results_before)
            status = "error"
            message = message if crashed else f"internal error while reporting: {type(e).__name__}: {e}"
            results.add(run_id=run_id, household_id=hid, status="error", message=message,
                        review_reasons=["status_error"], needs_review=True, n_trades=0,
                        solve_ms=outcome.solve_seconds * 1000.0, iterations=outcome.iterations,
                        warm_started=outcome.warm_started, overrides_applied=applied)
            if not crashed:
                exceptions.add(run_id=run_id, source_table="households", household_id=hid,
                               record_id=hid, code="internal_error", message=message)
                crashed = True
            t_r = time.perf_counter()
        if status in ("infeasible", "rejected") or (status == "error" and not crashed):
            exceptions.add(run_id=run_id, source_table="households", household_id=hid, record_id=hid,
                           code="solver_error" if status == "error" else status,
                           message=message or status)
        statuses[status] = statuses.get(status, 0) + 1
        seconds["report"] += time.perf_counter() - t_r

    tables = {"trades": trades.table(), "household_results": results.table(),
              "exceptions": exceptions.table(), "warm": warm_out.table()}
    return ShardOutput(
        shard=shard, tables=tables, seconds=seconds, statuses=statuses,
        n_households=len(inputs), model_cols=model_cols, solved=solved,
        totals=dollar_totals(tables["household_results"], tables["trades"]),
    )


def _report(hh: Household, outcome: Outcome, status: str, message: str | None, p: Proposal,
            run_id: str, settings: ModelSettings, thresholds: ReviewThresholds, trades: _Chunks,
            results: _Columns, overrides_applied: list[str]) -> None:
    d = outcome.derived
    assert d is not None
    hid = hh.household_id
    value = d.value
    base = max(d.target_value, 1e-9)
    before = drift_by_class(hh, d, d.current_by_class, d.start_cash)
    after_hold = _class_holdings(hh, d, hh.quantity - p.sell, p.buy_account, p.buy_security,
                                 p.buy_quantity)
    after = drift_by_class(hh, d, after_hold, float((d.exposure_weight * p.final_cash).sum()))
    goal_before = goal_after = None
    goal_out = False
    if d.goals is not None and d.goals.any:
        g_after = goal_exposure(hh, d.goals, d.exposure_weight, hh.quantity - p.sell,
                                p.buy_account, p.buy_security, p.buy_quantity,
                                p.final_cash) - d.goals.target
        goal_before = drift_share(d.goals, goal_drift_before(hh, d.goals))
        goal_after = drift_share(d.goals, g_after)
        goal_out = out_of_band(d.goals, g_after, d.band, MONEY_TOL)
    sell_value = p.sell * d.lot_price
    buy_value = p.buy_quantity * hh.price[p.buy_security]
    turnover = float((sell_value.sum() + buy_value.sum()) / 2 / value) if value > 0 else 0.0
    disallowed = (p.disallowed_loss if p.disallowed_loss is not None
                  else np.zeros(hh.n_lots))
    st, lt = realized_by_term(hh, d, p.sell, disallowed)
    due = tax_due(ytd_st=hh.ytd_st_gain, ytd_lt=hh.ytd_lt_gain, run_st=st, run_lt=lt,
                  carryforward_st=hh.loss_carryforward_st,
                  carryforward_lt=hh.loss_carryforward_lt, st_rate=hh.st_rate,
                  lt_rate=hh.lt_rate, ordinary_rate=hh.ordinary_rate,
                  filing_status=hh.filing_status)
    est = estimate(hh, d, settings, p.sell, p.buy_account, p.buy_security,
                   p.buy_quantity)
    # order lines: sells summed per account x security, buys per line
    lines = hh.by_position(sell_value)
    largest = float(max(lines.max(initial=0.0), buy_value.max(initial=0.0)))
    restricted = bool((d.no_hold[hh.lot_account, hh.lot_security] & (p.sell > 0)).any()
                      or (d.no_sell[hh.lot_account, hh.lot_security] & (p.sell > 0)).any())
    why = review_reasons(status=status, turnover=turnover, tax_due=due, largest_order=largest,
                         value=value, restricted_traded=restricted, t=thresholds,
                         budget_overrun=bool(outcome.budget_overrun) and status == "traded",
                         solver_limit=outcome.mip_limited and status == "traded",
                         min_trade_fallback=outcome.min_trade_fallback and status == "traded",
                         wash_sale=bool((disallowed > 0).any()) and status == "traded",
                         concentration=concentration_shift(hh, d, p.sell, p.buy_account,
                                                           p.buy_security, p.buy_quantity),
                         goal_drift=goal_out and status in ("traded", "no_trade"))

    sold = np.flatnonzero(p.sell > 0)
    class_change = after_hold - d.current_by_class
    traded_by_class = (np.bincount(hh.asset_class[hh.lot_security], weights=sell_value,
                                   minlength=len(hh.classes))
                       + np.bincount(hh.asset_class[p.buy_security], weights=buy_value,
                                     minlength=len(hh.classes)))
    sell_reasons, buy_reasons = _reasons(hh, d, p, class_change, traded_by_class)
    basis = np.where(hh.quantity > 0, hh.cost_basis * p.sell / hh.quantity, 0.0)
    account_ids = np.asarray(hh.account_ids, dtype=object)
    security_ids = np.asarray(hh.security_ids, dtype=object)
    if len(sold):
        a, s = hh.lot_account[sold], hh.lot_security[sold]
        untaxed = hh.account_type[a] != TAXABLE
        gain = sell_value[sold] - basis[sold]
        trades.extend(
            len(sold), run_id=run_id, household_id=hid,
            account_id=account_ids[a].tolist(), security_id=security_ids[s].tolist(),
            side="sell", lot_id=[hh.lot_ids[i] for i in sold], quantity=p.sell[sold],
            price=hh.price[s], notional=sell_value[sold],
            realized_gain=np.where(untaxed, np.nan, gain),
            term=_TERMS[np.where(untaxed, 0, 1 + d.is_long[sold])].tolist(),
            wash_sale=(disallowed[sold] > 0),
            disallowed_loss=np.where(disallowed[sold] > 0, disallowed[sold], np.nan),
            reason=sell_reasons)
    if len(buy_reasons):
        trades.extend(
            len(buy_reasons), run_id=run_id, household_id=hid,
            account_id=account_ids[p.buy_account].tolist(),
            security_id=security_ids[p.buy_security].tolist(), side="buy",
            quantity=p.buy_quantity, price=hh.price[p.buy_security], notional=buy_value,
            wash_sale=False, reason=buy_reasons)
    results.add(
        run_id=run_id, household_id=hid, status=status, message=message, value=value,
        drift_before=float(np.abs(before).sum() / base),
        drift_after=float(np.abs(after).sum() / base),
        max_drift_before=float(np.abs(before).max(initial=0.0) / base),
        max_drift_after=float(np.abs(after).max(initial=0.0) / base),
        n_trades=p.n_trades, turnover=turnover, realized_st_gain=st, realized_lt_gain=lt,
        tax_due_estimate=due, tlh_losses=est.tlh_losses,
        tax_savings_estimate=est.tax_savings_estimate,
        location_drag_before=est.location_drag_before,
        location_drag_after=est.location_drag_after,
        needs_review=bool(why), review_reasons=why,
        solve_ms=outcome.solve_seconds * 1000.0, iterations=outcome.iterations,
        warm_started=outcome.warm_started, overrides_applied=overrides_applied,
        goal_drift_before=goal_before, goal_drift_after=goal_after,
    )
