"""HiGHS presolve on and off, on the same household models (the first model of
each household that needs a solve).

    python bench/presolve.py --households 10000 --sample 2000
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import book  # noqa: E402
from throughput import sample_models  # noqa: E402

from hearth.batch.config import RunConfig  # noqa: E402
from hearth.model.highs import Solver  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--households", type=int, default=10_000)
    ap.add_argument("--sample", type=int, default=2000)
    args = ap.parse_args()
    models = sample_models(book(args.households), args.sample, RunConfig().model_settings())
    for presolve in (False, True):
        solver = Solver(presolve=presolve)
        total = 0.0
        for _, lp in models:
            solver.load(lp)
            total += solver.solve().seconds
        print(f"presolve {'on ' if presolve else 'off'}: {1e3 * total / len(models):.4f} ms "
              f"per model over {len(models)} models")


if __name__ == "__main__":
    main()
