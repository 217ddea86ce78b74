"""Wash-sale rule W3 two ways, on the same households: detect-forbid-resolve from
the previous basis versus a MIP with a binary per wash group that could conflict.

    python bench/wash_sales.py --households 2000

Prints, per method, the median / mean / p99 solve milliseconds per household
(all solved households, and those where W3 mattered), the first solve alone (the
time without wash-sale handling), and how many households each method left
with a W3 conflict (must be 0).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

sys.path.insert(0, __import__("os").path.dirname(__file__))
from common import book, book_households  # noqa: E402

from hearth.batch.config import RunConfig  # noqa: E402
from hearth.model.checker import check_proposal  # noqa: E402
from hearth.model.highs import Solver  # noqa: E402
from hearth.model.solve import solve_household  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--households", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    hhs = [h.household for h in book_households(book(args.households, args.seed))
           if h.household is not None]
    rows = []
    for method in ("resolve", "mip"):
        config = RunConfig(wash_sale_method=method)
        s = config.model_settings()
        solver = Solver()
        total, first, mattered, conflicts = [], [], [], 0
        for hh in hhs:
            o = solve_household(hh, s, solver)
            if not o.solves:
                continue
            total.append(o.solve_seconds * 1e3)
            first.append(o.first_solve_seconds * 1e3)
            if o.wash_conflicts:
                mattered.append(o.solve_seconds * 1e3)
            p = o.proposal
            v = check_proposal(hh, p.sell, p.buy_account, p.buy_security, p.buy_quantity,
                               p.final_cash, config.check_rules())
            conflicts += any(x.rule == "wash_sale_w3" for x in v)
        rows.append((method, total, first, mattered, conflicts))
    print(f"{'method':8} {'solved':>7} {'median ms':>10} {'mean ms':>8} {'p99 ms':>7} "
          f"{'first-solve median':>19} {'W3 households':>14} {'their median ms':>16} "
          f"{'left in conflict':>17}")
    for method, total, first, mattered, conflicts in rows:
        t = np.array(total)
        print(f"{method:8} {len(t):7d} {np.median(t):10.3f} {t.mean():8.3f} "
              f"{np.percentile(t, 99):7.2f} {np.median(first):19.3f} {len(mattered):14d} "
              f"{(np.median(mattered) if mattered else 0):16.3f} {conflicts:17d}")


if __name__ == "__main__":
    main()
