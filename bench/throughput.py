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
  everything around it excluded), on a sample of households that need a solve;
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
from hearth.model.solve import blocking_conflicts, reasons_to_trade, solve_household  # noqa: E402


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024.0


def sample_models(path: str, n: int, settings, run_date: str = DEFAULT_AS_OF):
    """The first ``n`` households of the book that need a solve, with their LPs."""
    out = []
    for item in book_households(path, run_date=run_date):
        hh = item.household
        if hh is None:
            continue
        d = derive(hh, settings)
        if blocking_conflicts(hh, d) or not reasons_to_trade(hh, d, settings):
            continue
        out.append((hh, build(hh, settings, d)))
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


def hearth_seconds(models, config: RunConfig) -> float:
    if not models:
        return float("nan")
    solver = Solver()
    settings, rules = config.model_settings(), config.check_rules()
    t0 = time.perf_counter()
    for hh, _ in models:
        o = solve_household(hh, settings, solver)
        p = o.proposal
        check_proposal(hh, p.sell, p.buy_account, p.buy_security, p.buy_quantity,
                       p.final_cash, rules)
    return (time.perf_counter() - t0) / len(models)


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
    cvx_models = floor_models[: args.cvxpy_sample]
    cvx = cvxpy_seconds(cvx_models)
    hearth_sample = hearth_seconds(cvx_models, config)

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
    print(f"hearth end to end: {1e3 * cpu_per_hh:.3f} CPU-ms per household -> "
          f"floor_ratio {floor_ratio:.2f}")
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
        "cvxpy_ms_per_household": round(1e3 * cvx, 3),
        "hearth_ms_per_household_on_cvxpy_sample": round(1e3 * hearth_sample, 3),
        "cvxpy_ratio": round(cvx / hearth_sample, 2),
        "peak_rss_mb": round(rss, 1),
    })))


if __name__ == "__main__":
    main()
