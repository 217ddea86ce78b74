"""The whole nightly job on a book, with the floor and a modeling layer measured
in the same run.

    python bench/throughput.py --households 10000 [--profile realistic|small] [--seed S]
    python bench/throughput.py --book DIR [--run-date YYYY-MM-DD]
                               [--executor local|ray] [--workers K]

The book is generated (``hearth generate``, cached under bench/.books) unless
``--book`` names one: any book in the input contract, read as a run reads it and
never written to.

Prints where the time goes (read, assemble, build, solve, check, report, write),
households per second, model sizes, and, on the same households:

* the floor: HiGHS ``run()`` alone on each household's first model (passModel and
  everything around it excluded), on a sample of households that need a solve; the
  first model is the one hearth solves first: interchangeable lots pooled
  (``hearth.model.pool``), under stage one's objective (without the location term,
  which the location stage adds after it). Printed beside it: the per-lot model's
  bare solve, and the same model's under the whole objective, location included
  (one LP, as a modeling layer would solve it);
* per household, in this process on the floor sample: CPU from the household's
  arrays to its checked proposal (p50, p90, p99, max, HiGHS's share);
* cvxpy: the same models (the same constraint matrix, bounds and costs) built as
  cvxpy problems and solved with HiGHS, on a smaller sample;
* hearth in-process on those same households (model build, all solves including
  wash-sale and minimum-trade handling, and the compliance check).

Ratios (all CPU seconds per household, so they compare across worker counts):
``floor_ratio`` = end-to-end CPU per household / bare solve per household of the
book; ``cvxpy_ratio`` = cvxpy per household / hearth per household on the cvxpy
sample. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import book, book_households, book_shape  # noqa: E402

from hearth.batch.config import RunConfig  # noqa: E402
from hearth.batch.generate import DEFAULT_AS_OF, PROFILES  # noqa: E402
from hearth.batch.run import run_book  # noqa: E402
from hearth.cluster import executor_for  # noqa: E402
from hearth.model.build import build, derive  # noqa: E402
from hearth.model.checker import check_proposal  # noqa: E402
from hearth.model.highs import Solver  # noqa: E402
from hearth.model.pool import pool_untaxed_lots  # noqa: E402
from hearth.model.solve import (  # noqa: E402
    blocking_conflicts,
    location_term,
    reasons_to_trade,
    solve_household,
)


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024.0


def sample_models(path: str, n: int, settings, run_date: str = DEFAULT_AS_OF, *,
                  per_lot: bool = False, whole_objective: bool = False):
    """The first ``n`` households of the book that need a solve, with the first LP
    hearth solves for each: interchangeable lots pooled (``hearth.model.pool``), or
    with ``per_lot`` one column per lot as before pooling; under stage one's
    objective, or with ``whole_objective`` under the whole one (location included)."""
    out = []
    for item in book_households(path, run_date=run_date):
        hh = item.household
        if hh is None:
            continue
        d = derive(hh, settings)
        if blocking_conflicts(hh, d) or not reasons_to_trade(hh, d, settings):
            continue
        pools = None if per_lot else pool_untaxed_lots(hh, settings.wash_sale_days,
                                                       settings.whole_shares)
        model_hh = hh if pools is None else pools.household
        d_model = d if pools is None else derive(model_hh, settings)
        lp = build(model_hh, settings, d_model)
        loc = location_term(lp, settings)
        if loc is not None and not whole_objective:
            lp = dataclasses.replace(lp, cost=lp.cost - loc)
        out.append((hh, lp))
        if len(out) >= n:
            break
    return out


def bare_solve_seconds(models) -> float:
    if not models:
        return float("nan")
    solver = Solver()
    total = 0.0
    for _, lp in models:
        solver.load(lp)
        total += solver.solve().seconds
    return total / len(models)


def cvxpy_seconds(models) -> float:
    if not models:
        return float("nan")
    import cvxpy as cp
    import scipy.sparse as sp

    t0 = time.perf_counter()
    for _, lp in models:
        a = sp.csc_matrix((lp.a_value, lp.a_index, lp.a_start), shape=(lp.n_row, lp.n_col))
        x = cp.Variable(lp.n_col)
        eq = lp.row_lower == lp.row_upper
        cons = [x >= lp.lower, x <= np.where(np.isinf(lp.upper), 1e30, lp.upper)]
        if eq.any():
            cons.append(a[eq] @ x == lp.row_lower[eq])
        up = ~eq & np.isfinite(lp.row_upper)
        if up.any():
            cons.append(a[up] @ x <= lp.row_upper[up])
        lo = ~eq & np.isfinite(lp.row_lower)
        if lo.any():
            cons.append(a[lo] @ x >= lp.row_lower[lo])
        prob = cp.Problem(cp.Minimize(lp.cost @ x), cons)
        prob.solve(solver=cp.HIGHS)
        assert prob.status == "optimal", prob.status
    return (time.perf_counter() - t0) / len(models)


def hearth_household_seconds(models, config: RunConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per household, in this process: CPU seconds of everything hearth does between
    its inputs and its checked proposal (derive, pool, build, every solve, either/or
    and minimum-trade handling, extract, check), and HiGHS's share of it."""
    if not models:
        return np.zeros(0), np.zeros(0)
    solver = Solver()
    settings, rules = config.model_settings(), config.check_rules()
    cpu, highs = [], []
    for hh, _ in models:
        t0 = time.process_time()
        o = solve_household(hh, settings, solver)
        p = o.proposal
        check_proposal(hh, p.sell, p.buy_account, p.buy_security, p.buy_quantity,
                       p.final_cash, rules)
        cpu.append(time.process_time() - t0)
        highs.append(o.solve_seconds)
    return np.array(cpu), np.array(highs)


def _finite(x):
    """The JSON line without NaN (a measure with no household to measure is null)."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    return None if isinstance(x, float) and not np.isfinite(x) else x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--book", default=None,
                    help="an existing book (any in the input contract) instead of a generated one")
    ap.add_argument("--households", type=int, default=10_000, help="of the generated book")
    ap.add_argument("--profile", choices=PROFILES, default="realistic", help="of the generated book")
    ap.add_argument("--seed", type=int, default=0, help="of the generated book")
    ap.add_argument("--run-date", default=DEFAULT_AS_OF)
    ap.add_argument("--executor", choices=["local", "ray"], default="local")
    ap.add_argument("--address", default=None)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--shard-size", type=int, default=RunConfig().shard_size)
    ap.add_argument("--floor-sample", type=int, default=2000)
    ap.add_argument("--cvxpy-sample", type=int, default=200)
    ap.add_argument("--keep-output", action="store_true")
    args = ap.parse_args()

    path = args.book if args.book is not None else book(args.households, args.seed, args.profile)
    shape = book_shape(path)
    config = RunConfig(shard_size=args.shard_size)
    out = tempfile.mkdtemp(prefix="hearth-bench-")
    executor = executor_for(args.executor, workers=args.workers, address=args.address)
    t0 = time.perf_counter()
    summary = run_book(path, out, args.run_date, config, executor, progress=False)
    seconds = time.perf_counter() - t0
    rss = peak_rss_mb()
    manifest = json.load(open(summary.manifest))
    if not args.keep_output:
        shutil.rmtree(out, ignore_errors=True)

    settings = config.model_settings()
    floor_models = sample_models(path, args.floor_sample, settings, args.run_date)
    floor_per_solved = bare_solve_seconds(floor_models)
    per_lot_models = sample_models(path, args.floor_sample, settings, args.run_date,
                                   per_lot=True)
    per_lot_floor = bare_solve_seconds(per_lot_models)
    del per_lot_models
    whole = bare_solve_seconds(sample_models(path, args.floor_sample, settings, args.run_date,
                                             whole_objective=True))
    cvx_models = floor_models[: args.cvxpy_sample]
    cvx = cvxpy_seconds(cvx_models)
    hh_cpu, hh_highs = hearth_household_seconds(floor_models, config)
    hearth_sample = float(hh_cpu[: len(cvx_models)].mean()) if len(cvx_models) else float("nan")
    pct = {f"p{q}": round(1e3 * float(np.percentile(hh_cpu, q)), 2) for q in (50, 90, 99)} \
        if len(hh_cpu) else {}
    pct["max"] = round(1e3 * float(hh_cpu.max()), 2) if len(hh_cpu) else None

    n = summary.households
    solved_share = manifest["households_solved"] / n
    cpu_per_hh = seconds * args.workers / n
    floor_per_hh = floor_per_solved * solved_share
    cols = [lp.n_col for _, lp in floor_models] or [0]
    rows = [lp.n_row for _, lp in floor_models] or [0]
    floor_ratio = cpu_per_hh / floor_per_hh if floor_per_hh > 0 else float("nan")

    stage = {k: round(v, 3) for k, v in summary.stage_seconds.items()}
    print(f"\nhearth throughput: {n:,} households, executor {args.executor}, "
          f"{args.workers} worker(s), shards of {args.shard_size}")
    print(f"book: {path} ({'given' if args.book is not None else args.profile}): "
          f"{shape['accounts']:,} accounts, {shape['lots']:,} lots; lots per household median "
          f"{shape['lots_per_household_median']:,.0f}, p90 {shape['lots_per_household_p90']:,.0f}, "
          f"max {shape['lots_per_household_max']:,.0f}")
    print(f"{'stage':<10}{'seconds':>10}{'ms/household':>14}   (CPU seconds summed over workers)")
    for k, v in summary.stage_seconds.items():
        print(f"{k:<10}{v:10.2f}{1e3 * v / n:14.3f}")
    print(f"{'wall':<10}{seconds:10.2f}{1e3 * seconds / n:14.3f}   -> {n / seconds:,.0f} households/s")
    print(f"statuses: {summary.statuses}")
    print(f"model size (households needing a solve, sample of {len(cols)}): median "
          f"{np.median(cols):.0f} columns x {np.median(rows):.0f} rows, max {max(cols)} columns")
    print(f"floor: bare HiGHS run() {1e3 * floor_per_solved:.3f} ms per solved household; "
          f"{solved_share:.0%} of households need a solve -> {1e3 * floor_per_hh:.3f} ms per household")
    print(f"  (the same households' per-lot LPs, before pooling interchangeable lots: "
          f"{1e3 * per_lot_floor:.3f} ms per solved household; their first LPs under the whole "
          f"objective, location included: {1e3 * whole:.3f} ms)")
    print(f"hearth end to end: {1e3 * cpu_per_hh:.3f} CPU-ms per household -> "
          f"floor_ratio {floor_ratio:.2f}")
    if len(hh_cpu):
        print(f"per household in-process (derive to checked proposal), {len(hh_cpu)} households: "
              f"CPU ms p50 {pct['p50']}, p90 {pct['p90']}, p99 {pct['p99']}, max {pct['max']}; "
              f"HiGHS {hh_highs.sum() / hh_cpu.sum():.0%} of it; "
              f"over 100 ms: {int((hh_cpu > 0.1).sum())}, over 1 s: {int((hh_cpu > 1.0).sum())}")
    print(f"cvxpy + HiGHS on {len(cvx_models)} of the same models: {1e3 * cvx:.3f} ms per household; "
          f"hearth on them (build, all solves, check): {1e3 * hearth_sample:.3f} ms "
          f"-> cvxpy_ratio {cvx / hearth_sample:.1f}")
    print(f"peak RSS: {rss:.0f} MB")
    print(json.dumps(_finite({
        "households": n, "book": path, "profile": None if args.book is not None else args.profile,
        "book_shape": shape, "executor": args.executor, "workers": args.workers,
        "shard_size": args.shard_size, "seconds": round(seconds, 3),
        "households_per_s": round(n / seconds, 1), "stage_seconds": stage,
        "median_model_cols": float(np.median(cols)), "median_model_rows": float(np.median(rows)),
        "bare_solve_ms_per_solved_household": round(1e3 * floor_per_solved, 4),
        "solved_share": round(solved_share, 4),
        "floor_ratio": round(floor_ratio, 2),
        "bare_solve_ms_per_solved_household_per_lot_lp": round(1e3 * per_lot_floor, 4),
        "bare_solve_ms_per_solved_household_whole_objective": round(1e3 * whole, 4),
        "household_cpu_ms": pct,
        "household_highs_share": round(float(hh_highs.sum() / hh_cpu.sum()), 3)
        if len(hh_cpu) else None,
        "cvxpy_ms_per_household": round(1e3 * cvx, 3),
        "hearth_ms_per_household_on_cvxpy_sample": round(1e3 * hearth_sample, 3),
        "cvxpy_ratio": round(cvx / hearth_sample, 2),
        "peak_rss_mb": round(rss, 1),
    })))


if __name__ == "__main__":
    main()
