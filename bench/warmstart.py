"""Warm starts on a real next night: what they save, and whether they change the answer.

    python bench/warmstart.py [--households N] [--profile realistic|small] [--workers K]
                              [--book DIR --run-date D] [--seed S] [--work DIR] [--nights N]

Night 1 runs on a book (generated, or ``--book``); ``next_night.py`` executes its
proposals, moves prices and pays income; night 2 then runs twice on that book:
**warm** into night 1's OUTPUT (so it reads night 1's saved bases) and **cold**
into a copy of it with ``warm_start = false``. A generated book has never been
optimized, so most of its households trade on night 1 and start night 2 with
thousands of lots sold and bought; ``--nights 3`` measures the night after that
instead (night 2 runs warm once, then night 3 warm and cold), the way a book
looks once hearth has run on it. Reported per household and in total:

* simplex iterations warm vs cold over every solve of the household (the
  ``iterations`` column), and of the first solve alone, stage one's, which the
  saved stage-one basis starts (measured in process on the same households and
  bases, below; the location stage starts from its own saved basis);
* solve seconds (``solve_ms``) and end-to-end seconds of each run;
* the share of households that warm-started;
* the **answer check** (HiGHS has open reports of wrong objectives after hot
  starts, ERGO-Code/HiGHS #3194 and #3294): household by household the same
  trades (same lots and order lines, quantities within 1e-6 relative), the same
  ``household_results`` (every column but ``run_id``, ``solve_ms``,
  ``iterations`` and ``warm_started``; money to a cent, fractions to 1e-9) and the
  same objective: each household solved again in process from the same basis and
  without it, its benefit over doing nothing (objective dollars; the do-nothing
  objective is the same for both, so equal benefits are equal objectives) within
  1e-6 relative. Every household that differs is listed with what differs.

The last line is one JSON object with the totals and the differing households.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from next_night import next_night  # noqa: E402

from hearth.batch.config import RunConfig  # noqa: E402
from hearth.batch.generate import DEFAULT_AS_OF, generate  # noqa: E402
from hearth.batch.run import RunSummary, run_book  # noqa: E402
from hearth.cluster.local import LocalExecutor  # noqa: E402
from hearth.io.households import households, reference  # noqa: E402
from hearth.io.read import open_book  # noqa: E402
from hearth.io.shards import prepare, read_shard  # noqa: E402
from hearth.io.validate import validate  # noqa: E402
from hearth.io.warm import read_warm  # noqa: E402
from hearth.io.write import committed_files  # noqa: E402
from hearth.model.highs import Solver, SolveResult  # noqa: E402
from hearth.model.solve import solve_household  # noqa: E402

QTY_REL = 1e-6  # trade quantities: relative
MONEY_ABS = 0.01  # the contract's money tolerance
FRACTION_ABS = 1e-9  # drift, turnover
BENEFIT_REL = 1e-6
MONEY_COLUMNS = ("value", "realized_st_gain", "realized_lt_gain", "tax_due_estimate", "tlh_losses",
                 "tax_savings_estimate", "location_drag_before", "location_drag_after")
IGNORED = ("run_id", "solve_ms", "iterations", "warm_started")


@dataclass
class Nights:
    book: str
    book2: str
    out_warm: str
    out_cold: str
    run_date: str
    run_date2: str
    night1: RunSummary
    warm: RunSummary
    cold: RunSummary
    next_night: dict


def run_nights(book: str, work: str, run_date: str, config: RunConfig, workers: int,
               seed: int = 0, nights: int = 2) -> Nights:
    """Night 1, then each next night's book and its night warm (into night 1's
    output), up to the night measured (``nights``): that one runs warm and also
    cold (into a copy of the output before it, warm_start off)."""
    out_warm, out_cold = os.path.join(work, "out"), os.path.join(work, "out-cold")
    with LocalExecutor(workers=workers) as ex:
        n1 = run_book(book, out_warm, run_date, config, ex, progress=False)
    before, before_date = book, run_date
    for k in range(2, nights + 1):
        book_k = os.path.join(work, f"book{k}")
        nn = next_night(before, out_warm, before_date, book_k, seed=seed + k - 2, force=True)
        if k == nights:
            break
        with LocalExecutor(workers=workers) as ex:
            run_book(book_k, out_warm, nn.run_date, config, ex, progress=False)
        before, before_date = book_k, nn.run_date
    shutil.rmtree(out_cold, ignore_errors=True)
    shutil.copytree(out_warm, out_cold)
    with LocalExecutor(workers=workers) as ex:
        warm = run_book(book_k, out_warm, nn.run_date, config, ex, progress=False)
    cold_config = config.model_copy(update={"warm_start": False})
    with LocalExecutor(workers=workers) as ex:
        cold = run_book(book_k, out_cold, nn.run_date, cold_config, ex, progress=False)
    return Nights(before, book_k, out_warm, out_cold, before_date, nn.run_date, n1, warm, cold,
                  asdict(nn))


# -- the answer check on the outputs -----------------------------------------------------------

def _read(output: str, run_date: str, table: str) -> pa.Table:
    files = committed_files(output, run_date)[table]
    return pa.concat_tables([pq.read_table(f) for f in files])


def _read_households(output: str, run_date: str, table: str, ids: set[str]) -> pa.Table:
    t = _read(output, run_date, table)
    return t.filter(pc.is_in(t.column("household_id"), pa.array(sorted(ids), pa.string())))


def trade_differing_households(out_warm: str, out_cold: str, run_date: str) -> set[str]:
    """The households whose trades differ between the two runs, as ``trade_differences``
    judges them (the same keys, quantities within QTY_REL, the same reason, wash-sale
    flag and term), found by a join in DuckDB."""
    files = {k: committed_files(out, run_date)["trades"]
             for k, out in (("w", out_warm), ("c", out_cold))}
    con = duckdb.connect()
    try:
        if not files["w"] or not files["c"]:  # one run traded nothing: all the other's differ
            fs = files["w"] or files["c"]
            return {h for (h,) in con.execute("SELECT DISTINCT household_id FROM read_parquet(?)",
                                               [fs]).fetchall()} if fs else set()
        for k, fs in files.items():
            con.read_parquet(fs).create_view(k)
        got = con.execute(f"""
            SELECT DISTINCT coalesce(w.household_id, c.household_id)
            FROM w FULL OUTER JOIN c
              ON w.household_id = c.household_id AND w.side = c.side
             AND w.account_id = c.account_id AND w.security_id = c.security_id
             AND coalesce(w.lot_id, '') = coalesce(c.lot_id, '')
            WHERE w.household_id IS NULL OR c.household_id IS NULL
               OR abs(w.quantity - c.quantity) > {QTY_REL} * greatest(abs(w.quantity), abs(c.quantity))
               OR w.reason IS DISTINCT FROM c.reason OR w.wash_sale IS DISTINCT FROM c.wash_sale
               OR w.term IS DISTINCT FROM c.term""").fetchall()
    finally:
        con.close()
    return {h for (h,) in got}


def _by_household(t: pa.Table) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in t.to_pylist():
        out.setdefault(row["household_id"], []).append(row)
    return out


def _trade_key(r: dict) -> tuple:
    return (r["side"], r["account_id"], r["security_id"], r["lot_id"] or "")


def trade_differences(warm: list[dict], cold: list[dict]) -> list[str]:
    """What differs between two households' trades, in words (empty: the same)."""
    w = {_trade_key(r): r for r in warm}
    c = {_trade_key(r): r for r in cold}
    said = []
    for k in sorted(set(w) | set(c)):
        what = f"{k[0]} {k[2]} in {k[1]}" + (f" lot {k[3]}" if k[3] else "")
        if k not in c:
            said.append(f"{what}: warm only ({w[k]['quantity']:g} shares)")
        elif k not in w:
            said.append(f"{what}: cold only ({c[k]['quantity']:g} shares)")
        else:
            qw, qc = w[k]["quantity"], c[k]["quantity"]
            if abs(qw - qc) > QTY_REL * max(abs(qw), abs(qc)):
                said.append(f"{what}: {qw:.6f} warm vs {qc:.6f} cold shares")
            for col in ("reason", "wash_sale", "term"):
                if w[k][col] != c[k][col]:
                    said.append(f"{what}: {col} {w[k][col]} warm vs {c[k][col]} cold")
    return said


def _close(a, b, tol: float) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, float) and (math.isnan(a) or math.isnan(b)):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tol


def result_differences(w: dict, c: dict) -> list[str]:
    """What differs between two household_results rows (solve bookkeeping aside)."""
    said = []
    for col, vw in w.items():
        if col in IGNORED:
            continue
        vc = c[col]
        if isinstance(vw, float) or isinstance(vc, float):
            tol = MONEY_ABS if col in MONEY_COLUMNS else FRACTION_ABS
            if not _close(vw, vc, tol):
                said.append(f"{col} {vw!r} warm vs {vc!r} cold")
        elif vw != vc:
            said.append(f"{col} {vw!r} warm vs {vc!r} cold")
    return said


@dataclass
class HouseholdRow:
    household_id: str
    status: str
    warm_started: bool
    iterations_warm: int
    iterations_cold: int
    solve_ms_warm: float
    solve_ms_cold: float
    first_iterations_warm: int | None = None
    first_iterations_cold: int | None = None
    benefit_warm: float | None = None
    benefit_cold: float | None = None
    differences: list[str] = field(default_factory=list)


def compare_outputs(out_warm: str, out_cold: str, run_date: str) -> dict[str, HouseholdRow]:
    rw = {r["household_id"]: r for r in _read(out_warm, run_date, "household_results").to_pylist()}
    rc = {r["household_id"]: r for r in _read(out_cold, run_date, "household_results").to_pylist()}
    # millions of trade rows on a big book: DuckDB finds the households whose trades
    # differ; only theirs are read into Python to say what differs
    differ = trade_differing_households(out_warm, out_cold, run_date)
    tw = _by_household(_read_households(out_warm, run_date, "trades", differ))
    tc = _by_household(_read_households(out_cold, run_date, "trades", differ))
    rows = {}
    for h in sorted(set(rw) | set(rc)):
        if h not in rw or h not in rc:
            rows[h] = HouseholdRow(h, "missing", False, 0, 0, 0.0, 0.0,
                                   differences=[f"only in the {'warm' if h in rw else 'cold'} run"])
            continue
        w, c = rw[h], rc[h]
        row = HouseholdRow(h, w["status"], bool(w["warm_started"]), int(w["iterations"]),
                           int(c["iterations"]), float(w["solve_ms"]), float(c["solve_ms"]))
        row.differences = (result_differences(w, c)
                           + trade_differences(tw.get(h, []), tc.get(h, [])))
        rows[h] = row
    return rows


# -- the objective check, in process ----------------------------------------------------------

class CountingSolver(Solver):
    """hearth's solver, keeping each solve's iterations (the first is the one a
    saved basis starts)."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.log: list[int] = []

    def solve(self) -> SolveResult:
        r = super().solve()
        self.log.append(r.iterations)
        return r


def compare_objectives(book2: str, out_warm: str, run_date: str, run_date2: str,
                       config: RunConfig, rows: dict[str, HouseholdRow]) -> None:
    """Each household of ``book2`` solved from the night before's saved bases and without them
    (as the pipeline does, the checker aside); fills the rows' first-solve
    iterations and benefits, and a difference where the benefits differ."""
    warm_root = os.path.join(out_warm, "_state", "warm", f"run_date={run_date}")
    settings = config.model_settings()
    prep = tempfile.mkdtemp(prefix="warmstart-prep-")
    try:
        con = open_book(book2)
        validate(con, run_date2)
        plan = prepare(con, prep, config.shard_size)
        day = np.datetime64(run_date2, "D")
        solver = CountingSolver(time_limit=config.time_limit, presolve=config.presolve)
        for shard in plan.shards:
            data = read_shard(prep, shard)
            ids = data.tables["households"].column("household_id").to_pylist()
            saved = read_warm(duckdb.connect(), warm_root, ids) if ids else {}
            for item in households(data, day, reference(data.tables, config.default_cost_bps)):
                row = rows.get(item.household_id)
                if item.household is None or row is None:
                    continue
                got = {}
                for kind, basis in (("cold", None), ("warm", saved.get(item.household_id))):
                    solver.log = []
                    outcome = solve_household(item.household, settings, solver, basis)
                    got[kind] = (outcome.benefit, solver.log[0] if solver.log else 0)
                row.benefit_warm, row.first_iterations_warm = got["warm"]
                row.benefit_cold, row.first_iterations_cold = got["cold"]
                bw, bc = got["warm"][0], got["cold"][0]
                if abs(bw - bc) > BENEFIT_REL * max(abs(bw), abs(bc), 1.0):
                    row.differences.append(f"benefit {bw:.6f} warm vs {bc:.6f} cold "
                                           "(objective dollars, in process)")
        con.close()
    finally:
        shutil.rmtree(prep, ignore_errors=True)


# -- the report ---------------------------------------------------------------------------------

def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b else None


def totals(nights: Nights, rows: dict[str, HouseholdRow]) -> dict:
    hh = list(rows.values())
    solved = [r for r in hh if r.iterations_cold or r.iterations_warm]
    it_w, it_c = sum(r.iterations_warm for r in hh), sum(r.iterations_cold for r in hh)
    first_w = sum(r.first_iterations_warm or 0 for r in hh)
    first_c = sum(r.first_iterations_cold or 0 for r in hh)
    ms_w, ms_c = sum(r.solve_ms_warm for r in hh), sum(r.solve_ms_cold for r in hh)
    differ = {r.household_id: r.differences for r in hh if r.differences}
    return {
        "households": len(hh), "households_solved": len(solved),
        "warm_started": sum(r.warm_started for r in hh),
        "warm_started_share": round(sum(r.warm_started for r in hh) / max(len(solved), 1), 4),
        "warm_started_share_all": round(sum(r.warm_started for r in hh) / max(len(hh), 1), 4),
        "statuses": {s: sum(r.status == s for r in hh) for s in sorted({r.status for r in hh})},
        "iterations_warm": it_w, "iterations_cold": it_c, "iterations_ratio": _ratio(it_w, it_c),
        "first_solve_iterations_warm": first_w, "first_solve_iterations_cold": first_c,
        "first_solve_iterations_ratio": _ratio(first_w, first_c),
        "solve_seconds_warm": round(ms_w / 1000, 3), "solve_seconds_cold": round(ms_c / 1000, 3),
        "solve_ratio": _ratio(ms_w, ms_c),
        "end_to_end_seconds_warm": round(nights.warm.seconds, 3),
        "end_to_end_seconds_cold": round(nights.cold.seconds, 3),
        "night1_seconds": round(nights.night1.seconds, 3),
        "run_date": nights.run_date, "run_date2": nights.run_date2,
        "next_night": {k: v for k, v in nights.next_night.items() if k != "path"},
        "answers_identical": not differ, "households_differing": len(differ),
        "differences": differ,
    }


def print_table(rows: dict[str, HouseholdRow], limit: int) -> None:
    head = (f"{'household':<14}{'status':<10}{'warm':>5}{'iter w':>9}{'iter c':>9}{'1st w':>8}"
            f"{'1st c':>8}{'ms w':>9}{'ms c':>9}  answer")
    print(head)
    print("-" * len(head))
    shown = sorted(rows.values(), key=lambda r: (not r.differences, r.household_id))[:limit]
    for r in shown:
        first = (f"{r.first_iterations_warm if r.first_iterations_warm is not None else '-':>8}"
                 f"{r.first_iterations_cold if r.first_iterations_cold is not None else '-':>8}")
        verdict = "same" if not r.differences else "DIFFERS: " + "; ".join(r.differences[:3]) + (
            f" (+{len(r.differences) - 3} more)" if len(r.differences) > 3 else "")
        print(f"{r.household_id:<14}{r.status:<10}{'yes' if r.warm_started else 'no':>5}"
              f"{r.iterations_warm:>9}{r.iterations_cold:>9}{first}"
              f"{r.solve_ms_warm:>9.1f}{r.solve_ms_cold:>9.1f}  {verdict}")
    if len(rows) > limit:
        print(f"... {len(rows) - limit} more households (differing ones first; --show N)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--households", type=int, default=100)
    p.add_argument("--profile", choices=("realistic", "small"), default="realistic")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--seed", type=int, default=0, help="book and next-night seed")
    p.add_argument("--book", help="use this book (night 1) instead of generating one")
    p.add_argument("--run-date", default=DEFAULT_AS_OF, help="night 1's run date")
    p.add_argument("--work", help="keep the books and outputs here (default: a temporary folder)")
    p.add_argument("--nights", type=int, default=2,
                   help="the night measured: 2 is the night after the book's first (where most "
                        "households trade on a generated book); 3 and on, nights after warm ones")
    p.add_argument("--show", type=int, default=40, help="households in the table")
    p.add_argument("--no-objective-check", action="store_true",
                   help="skip the in-process re-solve (benefits, first-solve iterations)")
    a = p.parse_args(argv)
    if a.households < 1 or a.workers < 1:
        p.error("--households and --workers must be at least 1")
    if a.nights < 2:
        p.error("--nights must be at least 2 (night 1 has no saved basis to start from)")
    work = a.work or tempfile.mkdtemp(prefix="warmstart-")
    os.makedirs(work, exist_ok=True)
    try:
        book = a.book
        if book is None:
            book = os.path.join(work, "book")
            shutil.rmtree(book, ignore_errors=True)
            t0 = time.perf_counter()
            generate(book, a.households, seed=a.seed, profile=a.profile, as_of=a.run_date)
            print(f"generated {a.households} {a.profile} households in "
                  f"{time.perf_counter() - t0:.1f}s", file=sys.stderr)
        for out in ("out", "out-cold", *(f"book{k}" for k in range(2, a.nights + 1))):
            shutil.rmtree(os.path.join(work, out), ignore_errors=True)
        config = RunConfig()
        nights = run_nights(book, work, a.run_date, config, a.workers, seed=a.seed,
                            nights=a.nights)
        rows = compare_outputs(nights.out_warm, nights.out_cold, nights.run_date2)
        if not a.no_objective_check:
            compare_objectives(nights.book2, nights.out_warm, nights.run_date, nights.run_date2,
                               config, rows)
        print_table(rows, a.show)
        t = totals(nights, rows)
        print()
        print(f"night {a.nights} ({t['run_date2']}): {t['households']} households, "
              f"{t['households_solved']} solved, {t['warm_started']} warm-started "
              f"({t['warm_started_share']:.0%} of solved, {t['warm_started_share_all']:.0%} of all)")
        print(f"  iterations, every solve: warm {t['iterations_warm']:,} vs cold "
              f"{t['iterations_cold']:,} (ratio {t['iterations_ratio']})")
        if not a.no_objective_check:
            print(f"  iterations, first solve: warm {t['first_solve_iterations_warm']:,} vs cold "
                  f"{t['first_solve_iterations_cold']:,} (ratio {t['first_solve_iterations_ratio']})")
        print(f"  solve seconds: warm {t['solve_seconds_warm']} vs cold {t['solve_seconds_cold']}; "
              f"end to end: warm {t['end_to_end_seconds_warm']} vs cold "
              f"{t['end_to_end_seconds_cold']}")
        print("  answers: " + ("identical in every household" if t["answers_identical"] else
                               f"{t['households_differing']} household(s) differ (listed above)"))
        print(json.dumps(t, sort_keys=True))
        return 0 if t["answers_identical"] else 1
    finally:
        if a.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
