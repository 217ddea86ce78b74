"""The measurements behind docs/scaling.md, repeatable.

    python bench/scaling.py watch [--interval S] [--json FILE] -- COMMAND ...
        run COMMAND and sample its whole process tree from /proc (the driver, a local
        pool's workers, a local Ray's raylet and workers): per process the peak VmHWM
        and CPU seconds, the tree's peak summed RSS, wall seconds, the load average
        before and after.
    python bench/scaling.py buckets BOOK OUTPUT [--run-date D] [--measure]
        households bucketed by lots (DuckDB over the book's lots and accounts joined
        to the night's household_results): median/p90/p99 solve_ms per bucket;
        --measure also solves every household again in this process and times the
        whole household (derive, build, every solve, check) with its model size.
    python bench/scaling.py shards BOOK [--shard-size N] [--workers K] [--run-date D]
        the shard plan a run would cut (households and estimated cost per shard) and,
        for a few shards, the Arrow bytes a worker reads and the bytes of its result
        (what a Ray task returns through the object store, pickled).
    python bench/scaling.py prep BOOK [--workers K] [--run-date D] [--memory-limit M]
        the driver's serial steps over the whole book as a run does them (DuckDB with
        the run's memory limit): open, fingerprint, validate, exceptions, prepare,
        each in wall and CPU seconds (CPU summed over DuckDB's threads).
    python bench/scaling.py sizes OUTPUT [--run-date D]
        bytes and files of the committed partitions per table, per household.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time

import duckdb
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import book_households  # noqa: E402

from hearth.batch.config import RunConfig  # noqa: E402
from hearth.batch.generate import DEFAULT_AS_OF  # noqa: E402

EDGES = (0, 500, 2000, 5000, 10000)
LABELS = ("<500", "500-2k", "2k-5k", "5k-10k", ">=10k")


def _bucket(n: int) -> str:
    return LABELS[int(np.searchsorted(EDGES, n, side="right")) - 1]


def _q(a: list[float], q: float) -> float:
    return float(np.quantile(a, q)) if a else float("nan")


# -- watch ------------------------------------------------------------------------------------

def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def _tree(root: int) -> list[int]:
    kids, out, todo = _children(), [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def _sample(pid: int) -> tuple[str, int, int, float] | None:
    """(name, VmHWM kB, VmRSS kB, CPU seconds) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / tick
    hwm = int(status.get("VmHWM", "0 kB").split()[0])
    rss = int(status.get("VmRSS", "0 kB").split()[0])
    return cmd[:120], hwm, rss, cpu


def watch(cmd: list[str], interval: float, json_path: str | None) -> None:
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    seen: dict[int, dict] = {}
    tree_peak = 0
    while proc.poll() is None:
        total = 0
        for pid in _tree(proc.pid):
            s = _sample(pid)
            if s is None:
                continue
            name, hwm, rss, cpu = s
            rec = seen.setdefault(pid, {"pid": pid, "name": name, "hwm_kb": 0, "cpu_s": 0.0,
                                        "first_s": time.perf_counter() - t0})
            if name:
                rec["name"] = name  # Ray workers retitle themselves (ray::IDLE, ray::_shard_task)
            rec["hwm_kb"] = max(rec["hwm_kb"], hwm)
            rec["cpu_s"] = max(rec["cpu_s"], cpu)
            rec["last_s"] = time.perf_counter() - t0
            total += rss
        tree_peak = max(tree_peak, total)
        time.sleep(interval)
    wall = time.perf_counter() - t0
    load1 = os.getloadavg()
    procs = sorted(seen.values(), key=lambda r: -r["cpu_s"])
    print(f"\nwatch: exit {proc.returncode}, wall {wall:.1f}s, load before "
          f"{load0[0]:.2f}/{load0[1]:.2f}/{load0[2]:.2f}, after {load1[0]:.2f}/{load1[1]:.2f}/"
          f"{load1[2]:.2f}")
    print(f"{'pid':>8} {'cpu_s':>8} {'VmHWM_MB':>9} {'alive_s':>8}  command")
    for r in procs:
        if r["cpu_s"] < 0.05 and r["hwm_kb"] < 20_000:
            continue
        print(f"{r['pid']:>8} {r['cpu_s']:8.1f} {r['hwm_kb'] / 1024:9.0f} "
              f"{r.get('last_s', 0) - r['first_s']:8.1f}  {r['name']}")
    cpu_total = sum(r["cpu_s"] for r in procs)
    print(f"process tree: CPU {cpu_total:.1f}s (sampled every {interval}s), "
          f"peak summed RSS {tree_peak / 1024:.0f} MB")
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"cmd": cmd, "exit": proc.returncode, "wall_s": wall, "load_before": load0,
                       "load_after": load1, "cpu_total_s": cpu_total,
                       "tree_peak_rss_mb": tree_peak / 1024, "processes": procs}, f, indent=1)
    sys.exit(proc.returncode)


# -- buckets ----------------------------------------------------------------------------------

def lots_per_household(book: str) -> dict[str, int]:
    con = duckdb.connect()
    rows = con.execute(f"""
        SELECT h.household_id, count(l.lot_id)
        FROM read_parquet('{book}/households.parquet') h
        LEFT JOIN read_parquet('{book}/accounts.parquet') a USING (household_id)
        LEFT JOIN read_parquet('{book}/lots.parquet') l USING (account_id)
        GROUP BY 1""").fetchall()
    return {str(h): int(n) for h, n in rows}


def _table(title: str, groups: dict[str, dict[str, list[float]]], cols: list[str]) -> None:
    print(f"\n{title}")
    head = f"{'lots':<8}{'households':>11}"
    for c in cols:
        head += f"  {c + ' med':>16}{'p90':>9}{'p99':>9}"
    print(head)
    for label in LABELS:
        g = groups.get(label)
        if not g:
            continue
        n = len(g[cols[0]])
        line = f"{label:<8}{n:>11}"
        for c in cols:
            a = g[c]
            line += f"  {_q(a, .5):16.1f}{_q(a, .9):9.1f}{_q(a, .99):9.1f}"
        print(line)


def buckets(book: str, output: str, run_date: str, measure: bool) -> None:
    lots = lots_per_household(book)
    con = duckdb.connect()
    glob = os.path.join(output, "household_results", f"run_date={run_date}", "*.parquet")
    rows = con.execute(f"SELECT household_id, solve_ms, iterations FROM "
                       f"read_parquet('{glob}')").fetchall()
    groups: dict[str, dict[str, list[float]]] = {}
    solved: dict[str, dict[str, list[float]]] = {}
    for hid, ms, it in rows:
        b = _bucket(lots.get(hid, 0))
        g = groups.setdefault(b, {"lots": [], "solve_ms": [], "iterations": []})
        g["lots"].append(lots.get(hid, 0))
        g["solve_ms"].append(ms or 0.0)
        g["iterations"].append(it or 0)
        if ms:
            s = solved.setdefault(b, {"solve_ms": []})
            s["solve_ms"].append(ms)
    print(f"{len(rows)} household_results rows, {sum(lots.values()):,} lots")
    _table("household_results, every household (solve_ms 0 when no solve was needed):",
           groups, ["lots", "solve_ms", "iterations"])
    _table("household_results, households with solve_ms > 0:", solved, ["solve_ms"])
    share = {b: len(solved.get(b, {"solve_ms": []})["solve_ms"]) / len(g["lots"])
             for b, g in groups.items()}
    print("share with a solve: " + ", ".join(f"{b} {share[b]:.0%}" for b in LABELS if b in share))
    total_ms = {b: sum(g["solve_ms"]) for b, g in groups.items()}
    all_ms = sum(total_ms.values()) or 1.0
    print("share of all solve_ms: " + ", ".join(
        f"{b} {total_ms[b] / all_ms:.0%}" for b in LABELS if b in total_ms))
    if not measure:
        return

    from hearth.model.checker import check_proposal
    from hearth.model.highs import Solver
    from hearth.model.solve import solve_household

    config = RunConfig()
    settings, rules = config.model_settings(), config.check_rules()
    solver = Solver(time_limit=config.time_limit, presolve=config.presolve)
    per: dict[str, dict[str, list[float]]] = {}
    t_all = time.perf_counter()
    cpu_all = time.process_time()
    n = 0
    for item in book_households(book, run_date=run_date):
        hh = item.household
        if hh is None:
            continue
        t, c = time.perf_counter(), time.process_time()
        o = solve_household(hh, settings, solver)
        p = o.proposal
        if o.status in ("traded", "no_trade"):
            check_proposal(hh, p.sell, p.buy_account, p.buy_security, p.buy_quantity,
                           p.final_cash, rules, disallowed_loss=p.disallowed_loss)
        ms = 1e3 * (time.perf_counter() - t)
        cpu_ms = 1e3 * (time.process_time() - c)
        n += 1
        g = per.setdefault(_bucket(hh.n_lots), {"household_ms": [], "cpu_ms": [], "solve_ms": [],
                                                "cols": [], "rows": []})
        g["household_ms"].append(ms)
        g["cpu_ms"].append(cpu_ms)
        g["solve_ms"].append(1e3 * o.solve_seconds)
        g["cols"].append(o.n_col)
        g["rows"].append(o.n_row)
    wall = time.perf_counter() - t_all
    cpu = time.process_time() - cpu_all
    print(f"\nmeasured again in this process: {n} households, {wall:.1f}s wall, {cpu:.1f}s CPU "
          f"(includes reading and preparing the book once)")
    _table("per household, derive + build + every solve + check (ms), model size (0 = no "
           "model built):", per, ["household_ms", "cpu_ms", "solve_ms", "cols", "rows"])
    tot = {b: sum(g["cpu_ms"]) for b, g in per.items()}
    print("mean CPU ms per household: " + ", ".join(
        f"{b} {tot[b] / len(per[b]['cpu_ms']):.1f}" for b in LABELS if b in tot)
        + f"; all {sum(tot.values()) / n:.1f}")
    whole = sum(tot.values()) or 1.0
    print("share of household CPU: " + ", ".join(
        f"{b} {tot[b] / whole:.0%}" for b in LABELS if b in tot))


# -- shards -----------------------------------------------------------------------------------

def shards(book: str, shard_size: int, workers: int, run_date: str, sample: int) -> None:
    from hearth.batch.pipeline import run_shard
    from hearth.io.read import open_book
    from hearth.io.shards import prepare, read_shard
    from hearth.io.validate import validate

    con = open_book(book)
    validate(con, run_date)
    with tempfile.TemporaryDirectory(prefix="hearth-scaling-prep-") as prep:
        t, c = time.perf_counter(), time.process_time()
        plan = prepare(con, prep, shard_size, workers=workers)
        prep_s, prep_cpu = time.perf_counter() - t, time.process_time() - c
        cost = np.array(plan.cost_per_shard)
        hh = np.array(plan.households_per_shard)
        print(f"{len(plan.shards)} shards for {workers} worker(s), shard_size {shard_size} "
              f"(prepare {prep_s:.1f}s wall, {prep_cpu:.1f}s CPU): households per shard min "
              f"{hh.min()} median {np.median(hh):.0f} max {hh.max()}; estimated cost per shard "
              f"min {cost.min():,} median {np.median(cost):,.0f} max {cost.max():,} (max/mean "
              f"{cost.max() / cost.mean():.2f})")
        du = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(prep) for f in fs)
        print(f"prepared copy: {du / 1e6:.1f} MB on disk")
        order = np.argsort(-cost, kind="stable")  # the order a run hands shards out
        pick = (list(order) if sample <= 0 else
                sorted({int(order[0]), int(order[len(order) // 2]), int(order[-1])})[:sample])
        config = RunConfig(shard_size=shard_size)
        cpu_of: dict[int, float] = {}
        for i in pick:
            s = plan.shards[i]
            data = read_shard(prep, s)
            in_bytes = sum(t.nbytes for t in data.tables.values())
            t, c = time.perf_counter(), time.process_time()
            out = run_shard(prep, s, "scaling", run_date, config)
            secs, cpu = time.perf_counter() - t, time.process_time() - c
            cpu_of[int(i)] = cpu
            out_bytes = sum(t.nbytes for t in out.tables.values())
            pickled = len(pickle.dumps(out, protocol=5))
            print(f"shard {s}: {hh[i]} households, cost {cost[i]:,}; Arrow read {in_bytes / 1e6:.1f} "
                  f"MB; result tables {out_bytes / 1e6:.2f} MB (pickled {pickled / 1e6:.2f} MB; "
                  + ", ".join(f"{k} {v.num_rows:,} rows" for k, v in out.tables.items())
                  + f"); {secs:.1f}s wall, {cpu:.1f}s CPU")
        if sample > 0:
            return
        cpus = np.array([cpu_of[int(i)] for i in range(len(plan.shards))])
        r = float(np.corrcoef(cost, cpus)[0, 1])
        print(f"all shards: {cpus.sum():.1f}s CPU; CPU per shard min {cpus.min():.2f} median "
              f"{np.median(cpus):.2f} max {cpus.max():.2f} (max/mean {cpus.max() / cpus.mean():.2f}); "
              f"correlation of estimated cost with CPU {r:.3f}")
        # the shards handed out costliest first to whichever worker is free first
        for k in range(1, workers + 1):
            free = [0.0] * k
            for i in order:
                j = int(np.argmin(free))
                free[j] += cpus[int(i)]
            span = max(free)
            print(f"  {k} worker(s), shards costliest first: busiest {span:.1f}s, least busy "
                  f"{min(free):.1f}s -> schedule efficiency {cpus.sum() / (k * span):.3f}")


# -- prep -------------------------------------------------------------------------------------

def prep(book: str, workers: int, run_date: str, memory_limit: str) -> None:
    from hearth.io.read import fingerprints, open_book
    from hearth.io.shards import prepare
    from hearth.io.validate import exceptions_table, unkeyed_rows, validate

    with tempfile.TemporaryDirectory(prefix="hearth-scaling-prep-") as root:
        con = duckdb.connect(config={"memory_limit": memory_limit,
                                     "preserve_insertion_order": False})
        con.execute(f"SET temp_directory = '{os.path.join(root, 'duckdb.tmp')}'")
        steps = [("open", lambda: open_book(book, con)), ("fingerprint", lambda: fingerprints(con)),
                 ("validate", lambda: validate(con, run_date)),
                 ("exceptions", lambda: (exceptions_table(con, "x"), unkeyed_rows(con))),
                 ("prepare", lambda: prepare(con, os.path.join(root, "prep"), RunConfig().shard_size,
                                             workers=workers))]
        total_w = total_c = 0.0
        line = []
        for name, fn in steps:
            t, c = time.perf_counter(), time.process_time()
            fn()
            w, cp = time.perf_counter() - t, time.process_time() - c
            total_w += w
            total_c += cp
            line.append(f"{name} {w:.2f}s/{cp:.2f}s")
        n = con.execute("SELECT count(*) FROM in_households").fetchone()[0]  # type: ignore[index]
        lots = con.execute("SELECT count(*) FROM in_lots").fetchone()[0]  # type: ignore[index]
        threads = con.execute("SELECT current_setting('threads')").fetchone()[0]  # type: ignore[index]
        print(f"{n:,} households, {lots:,} lots, DuckDB threads {threads}, memory_limit "
              f"{memory_limit}; wall/CPU: " + ", ".join(line)
              + f"; total {total_w:.2f}s wall, {total_c:.2f}s CPU -> {1e3 * total_w / n:.2f} ms wall, "
              f"{1e3 * total_c / n:.2f} ms CPU per household")


# -- sizes ------------------------------------------------------------------------------------

def sizes(output: str, run_date: str) -> None:
    con = duckdb.connect()
    glob = os.path.join(output, "household_results", f"run_date={run_date}", "*.parquet")
    n = con.execute(f"SELECT count(*) FROM read_parquet('{glob}')").fetchone()[0]  # type: ignore[index]
    total = files = 0
    for table in ("trades", "household_results", "exceptions", os.path.join("_state", "warm")):
        d = os.path.join(output, table, f"run_date={run_date}")
        fs = [os.path.join(d, f) for f in os.listdir(d)] if os.path.isdir(d) else []
        b = sum(os.path.getsize(f) for f in fs)
        rows = con.execute(f"SELECT count(*) FROM read_parquet('{d}/*.parquet')"
                           ).fetchone()[0] if fs else 0  # type: ignore[index]
        total += b
        files += len(fs)
        print(f"{table:<20}{len(fs):>6} files {b / 1e6:10.2f} MB {rows:>10,} rows "
              f"{b / n:10.0f} bytes/household")
    runs = os.path.join(output, "_runs", run_date)
    rb = sum(os.path.getsize(os.path.join(runs, f)) for f in os.listdir(runs))
    print(f"{'_runs/' + run_date:<20}{len(os.listdir(runs)):>6} files {rb / 1e6:10.2f} MB")
    print(f"{'total':<20}{files:>6} files {total / 1e6:10.2f} MB {'':>10} "
          f"{total / n:10.0f} bytes/household ({n:,} households)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("watch")
    w.add_argument("--interval", type=float, default=0.25)
    w.add_argument("--json", default=None)
    w.add_argument("command", nargs=argparse.REMAINDER)
    b = sub.add_parser("buckets")
    b.add_argument("book")
    b.add_argument("output")
    b.add_argument("--run-date", default=DEFAULT_AS_OF)
    b.add_argument("--measure", action="store_true")
    s = sub.add_parser("shards")
    s.add_argument("book")
    s.add_argument("--shard-size", type=int, default=RunConfig().shard_size)
    s.add_argument("--workers", type=int, default=1)
    s.add_argument("--run-date", default=DEFAULT_AS_OF)
    s.add_argument("--sample", type=int, default=3,
                   help="shards to run (the costliest, the median, the cheapest); 0: all, "
                        "and the schedule of them on 1..workers workers")
    r = sub.add_parser("prep")
    r.add_argument("book")
    r.add_argument("--workers", type=int, default=2)
    r.add_argument("--run-date", default=DEFAULT_AS_OF)
    r.add_argument("--memory-limit", default=RunConfig().duckdb_memory_limit)
    z = sub.add_parser("sizes")
    z.add_argument("output")
    z.add_argument("--run-date", default=DEFAULT_AS_OF)
    a = ap.parse_args()
    if a.cmd == "watch":
        cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
        watch(cmd, a.interval, a.json)
    elif a.cmd == "buckets":
        buckets(a.book, a.output, a.run_date, a.measure)
    elif a.cmd == "shards":
        shards(a.book, a.shard_size, a.workers, a.run_date, a.sample)
    elif a.cmd == "prep":
        prep(a.book, a.workers, a.run_date, a.memory_limit)
    else:
        sizes(a.output, a.run_date)


if __name__ == "__main__":
    main()
