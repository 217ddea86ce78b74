"""Whole shares against the continuous solve, on the same households.

    python bench/whole_shares.py --households 1000

Whole shares are solved by rounding the continuous answer and re-solving what is
left (cash and drift) with every trade fixed; the MIP runs only where rounding
breaks a rule. Prints, per mode, solve milliseconds per solved household (median,
p99, max), how many needed the MIP, how many stopped at the MIP node limit, and how
many proposals the checker rejected (must be 0); then the MIP-only figures for the
same households (``--mip`` forces the MIP everywhere, as before), and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

sys.path.insert(0, __import__("os").path.dirname(__file__))
from common import book, book_households  # noqa: E402

from hearth.batch.config import RunConfig  # noqa: E402
from hearth.model import solve as solve_module  # noqa: E402
from hearth.model.checker import check_proposal  # noqa: E402
from hearth.model.highs import Solver  # noqa: E402
from hearth.model.solve import solve_household  # noqa: E402


def measure(hhs, config: RunConfig, force_mip: bool = False) -> dict:
    s = config.model_settings()
    rules = config.check_rules()
    solver = Solver(time_limit=config.time_limit)
    original = solve_module.round_whole_shares
    if force_mip:
        solve_module.round_whole_shares = lambda *a, **k: None  # type: ignore[assignment]
    ms, mip, limited, rejected, errors = [], 0, 0, 0, 0
    t0 = time.perf_counter()
    try:
        for hh in hhs:
            o = solve_household(hh, s, solver)
            if o.status == "error":
                errors += 1
            if not o.solves:
                continue
            ms.append(o.solve_seconds * 1e3)
            mip += o.whole_shares_mip or (force_mip and s.whole_shares)
            limited += o.mip_limited
            p = o.proposal
            if o.status == "traded" and check_proposal(
                    hh, p.sell, p.buy_account, p.buy_security, p.buy_quantity, p.final_cash,
                    rules, disallowed_loss=p.disallowed_loss):
                rejected += 1
    finally:
        solve_module.round_whole_shares = original
    t = np.array(ms) if ms else np.zeros(1)
    return {"solved": len(ms), "median_ms": round(float(np.median(t)), 3),
            "p99_ms": round(float(np.percentile(t, 99)), 2), "max_ms": round(float(t.max()), 1),
            "needed_mip": mip, "at_node_limit": limited, "rejected": rejected, "errors": errors,
            "wall_s": round(time.perf_counter() - t0, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--households", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mip-sample", type=int, default=150,
                    help="households for the MIP-everywhere comparison (it is slow)")
    args = ap.parse_args()
    hhs = [h.household for h in book_households(book(args.households, args.seed))
           if h.household is not None]
    base = RunConfig()
    rows = {
        "continuous": measure(hhs, base),
        "whole shares (round, repair, MIP where that fails)":
            measure(hhs, base.model_copy(update={"whole_shares": True})),
        f"whole shares, first {args.mip_sample} (round, repair, MIP where that fails)":
            measure(hhs[: args.mip_sample], base.model_copy(update={"whole_shares": True})),
        f"whole shares, first {args.mip_sample} (MIP everywhere)":
            measure(hhs[: args.mip_sample], base.model_copy(update={"whole_shares": True}),
                    force_mip=True),
    }
    print(f"{'mode':52} {'solved':>7} {'median ms':>10} {'p99 ms':>8} {'max ms':>8} "
          f"{'MIP':>6} {'node limit':>10} {'rejected':>9} {'errors':>7}")
    for name, r in rows.items():
        print(f"{name:52} {r['solved']:7d} {r['median_ms']:10.3f} {r['p99_ms']:8.2f} "
              f"{r['max_ms']:8.1f} {r['needed_mip']:6d} {r['at_node_limit']:10d} "
              f"{r['rejected']:9d} {r['errors']:7d}")
    print(json.dumps({"households": len(hhs), **rows}))


if __name__ == "__main__":
    main()
