"""The chaos soak: many more random kills and bad-input examples than CI runs, with
the same checks as ``tests/io/test_kill_anywhere.py`` and
``tests/io/test_fuzz_books.py`` (their code is loaded from there), tallied instead
of stopping at the first failure.

    python bench/chaos.py                         # 60 kill seeds, 300 fuzz examples, 20 full disks
    python bench/chaos.py --kills 200 --fuzz 0    # kills only
    python bench/chaos.py --kills 0 --fuzz 1000 --max-corruptions 6

Kills: each seed SIGKILLs a real ``hearth run`` (120 households, 1 or 2 workers) at a
random delay or at a random ``HEARTH_FAULT_KILL`` step, then checks the readers,
the processes left, and the re-run. Printed: kills tried and where they landed,
what the readers saw, processes that outlived the driver (before the group was
killed) and that survived the group kill, re-runs that failed, and any check that
did not hold, with its seed.

Fuzz: hypothesis draws one to ``--max-corruptions`` corruptions of a clean
60-household book per example and runs it in-process. Printed: the corruptions
tried by kind, exit codes, and each kind of problem (crash, household lost or
duplicated, untouched household changed, bad household not set aside or not
named, a problem validation did not catch, hang: a run over ``HANG`` seconds ends
the process with a traceback) with the corruptions that gave it.

Disk full: OUTPUT on a small tmpfs left a random amount of free space (a fresh run:
from none to twice what a whole run writes; every other trial starts with every
shard finished and gets up to a little more than the commit writes): a run
completes with an uninterrupted run's rows, or exits 5 with the nights before
intact, and completes once the space is back (``tests/io/test_full_disk.py``'s
checks; needs root to mount the tmpfs).

The last line is one JSON object of counts.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests" / "io"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, TESTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def soak_kills(seeds: range, work: str, verbose: bool) -> dict:
    ka = _load("test_kill_anywhere")
    t0 = time.perf_counter()
    env = ka.Env(os.path.join(work, "kills"))
    failures: list[str] = []
    records = []
    for seed in seeds:
        try:
            rec = ka.kill_once(env, seed)
        except AssertionError as e:
            rec = {"seed": seed, "failed": str(e).splitlines()[0][:300]}
            failures.append(f"seed {seed}: {rec['failed']}")
        records.append(rec)
        if verbose:
            print(f"[kill {seed:4d}] {json.dumps(rec)}", flush=True)
    counts = {
        "seeds": len(records),
        "kills": env.kills,
        "finished_before_the_kill": sum(r.get("outcome") == "finished first" for r in records),
        "outlived_the_driver": sum(r.get("orphans", 0) for r in records),
        "survived_the_group_kill": sum(r.get("survivors", 0) for r in records),
        "failed_checks": len(failures),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print("\nkills: where they landed and what the manifest reader saw")
    for k, v in sorted(env.tally.items()):
        print(f"  {v:4d}  {k}")
    for f in failures:
        print(f"  FAILED {f}")
    return counts


def soak_fuzz(examples: int, max_corruptions: int, work: str, verbose: bool) -> dict:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    fb = _load("test_fuzz_books")
    t0 = time.perf_counter()
    book = fb.Book(os.path.join(work, "fuzz"))
    kinds = fb.Kinds(book)
    tried: dict[str, int] = {}
    codes: dict[str, int] = {}
    problems: dict[str, list[str]] = {}
    n = [0]
    checked = {"untouched_households_compared": 0, "bad_households_checked": 0}

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def one(data) -> None:
        corruptions = data.draw(st.lists(kinds.any(), min_size=1, max_size=max_corruptions))
        n[0] += 1
        for c in corruptions:
            kind = re.sub(r"\[\d+\]", "", c.what.split("=")[0].split(" ")[0])
            tried[kind] = tried.get(kind, 0) + 1
        try:
            o = fb.check(book, corruptions)
        except Exception as e:  # noqa: BLE001 - the judge's own failure: tallied, not fatal
            problems.setdefault("harness error", []).append(f"{corruptions}: {e!r}")
            return
        codes[str(o.code)] = codes.get(str(o.code), 0) + 1
        checked["untouched_households_compared"] += o.compared
        checked["bad_households_checked"] += o.set_aside
        for kind, items in o.problems.items():
            problems.setdefault(kind, []).append(f"{corruptions}: {items[:2]}")
        if verbose:
            flag = ", ".join(f"{k} x{len(v)}" for k, v in o.problems.items()) or "ok"
            print(f"[fuzz {n[0]:4d}] exit {o.code}  {corruptions!s:.150}  {flag}", flush=True)

    one()
    print(f"\nfuzz: {n[0]} examples, {sum(tried.values())} corruptions")
    for k, v in sorted(tried.items(), key=lambda kv: -kv[1]):
        print(f"  {v:4d}  {k}")
    print(f"  exit codes: {dict(sorted(codes.items()))}")
    for kind, items in sorted(problems.items()):
        print(f"  PROBLEM {kind}: {len(items)} example(s)")
        for it in items[:5]:
            print(f"      {it[:400]}")
    counts = {"examples": n[0], "corruptions": sum(tried.values()),
              "exit_codes": dict(sorted(codes.items())), **checked,
              "seconds": round(time.perf_counter() - t0, 1)}
    for kind in ("crash", "lost household", "duplicated household", "untouched household changed",
                 "not set aside", "not named in exceptions", "not caught by validation"):
        counts[kind.replace(" ", "_")] = len(problems.get(kind, []))
    counts["other_problems"] = sum(len(v) for k, v in problems.items()
                                   if k.replace(" ", "_") not in counts)
    return counts


def soak_disk_full(trials: int, seed: int, work: str, verbose: bool) -> dict:
    """OUTPUT on a small tmpfs left a random number of free pages: a fresh run from
    none to twice what the whole run writes (preparing, the shards), or a run whose
    shards are all finished from none to a little more than its commit writes: the
    run exits 0 with an uninterrupted run's rows, or exits 5 leaving the nights before
    as they were, and the same command completes once the space is given back. The
    checks are ``tests/io/test_full_disk.py``'s."""
    import random

    fd = _load("test_full_disk")
    t0 = time.perf_counter()
    mountpoint = os.path.join(work, "disk")
    try:
        fd._mount(mountpoint, 1 << 20)
        fd._umount(mountpoint)
    except OSError as e:
        print(f"\ndisk full: skipped, no tmpfs can be mounted here ({e}); needs root")
        return {"trials": 0, "skipped": str(e)}
    env = fd.Env(os.path.join(work, "disk-env"), mountpoint)
    # what a whole run leaves on the disk (its staging is gone by then) and what the
    # measured parts add up to: every other trial is a fresh run given free space up to
    # twice the larger (running out while preparing, among the shards, or not at all);
    # the others start where every shard is finished and get up to a little more than
    # the commit writes (running out at its journal, among its moves, at its manifest)
    with env.disk:
        shutil.copytree(env.base, env.out)
        before = env.disk.used()
        done = fd.hearth(*env.command())
        assert done.returncode == 0, fd.failure(done)
        left = env.disk.used() - before
    total = max(left, (env.prep_pages + env.shard_pages) * fd.PAGE + env.before_journal
                + 2 * env.manifest_bytes)
    rng = random.Random(seed)
    tally = {"trials": 0, "completed_first_time": 0, "exit_5": 0, "other_exit": 0,
             "partial_states_seen": 0, "reruns_failed": 0, "rows_differ": 0}
    failures: list[str] = []
    for i in range(trials):
        if i % 2:  # a fresh run: anywhere, room enough included
            start, free = env.base, fd.PAGE * rng.randrange(0, 2 * total // fd.PAGE + 1)
        else:  # every shard finished (a run killed there): somewhere in the commit, or past it
            commit = env.before_journal + 2 * env.manifest_bytes
            start, free = env.staged, fd.PAGE * rng.randrange(0, commit // fd.PAGE + 8)
        tally["trials"] += 1
        step = "?"
        with env.disk:
            shutil.copytree(start, env.out)
            env.disk.leave_free(min(free, fd._free(env.out) - fd.PAGE))
            done = fd.hearth(*env.command())
            step, finished = fd.where(env.out)
            try:
                if done.returncode == 0:
                    tally["completed_first_time"] += 1
                elif done.returncode == 5:
                    tally["exit_5"] += 1
                    try:
                        fd.check_previous_nights_only(env)
                    except AssertionError:
                        tally["partial_states_seen"] += 1
                        raise
                    env.disk.give_space_back()
                    again = fd.hearth(*env.command())
                    if again.returncode != 0:
                        tally["reruns_failed"] += 1
                        raise AssertionError(f"re-run exit {again.returncode}: "
                                             f"{fd.failure(again)[:300]}")
                else:
                    tally["other_exit"] += 1
                    raise AssertionError(f"exit {done.returncode}: {fd.failure(done)[:300]}")
                try:
                    fd.check_at_rest(env)
                except AssertionError:
                    tally["rows_differ"] += 1
                    raise
            except AssertionError as e:
                failures.append(f"trial {i} ({free} bytes free, stopped at {step}): "
                                f"{str(e).splitlines()[0][:300]}")
        if verbose:
            print(f"[disk {i:4d}] {'fresh' if i % 2 else 'commit':6s} {free:>10,d} bytes free: "
                  f"exit {done.returncode} at "
                  f"{step} ({finished} shards)", flush=True)
    print(f"\ndisk full: {trials} trials on a {fd.DISK >> 20} MiB tmpfs, "
          f"{total:,d} bytes written by a whole run")
    for f in failures:
        print(f"  FAILED {f}")
    return {**tally, "failed_checks": len(failures), "seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=60, help="kill seeds (0: none)")
    ap.add_argument("--first-seed", type=int, default=1000,
                    help="the first kill seed (CI runs 0-19)")
    ap.add_argument("--fuzz", type=int, default=300, help="fuzz examples (0: none)")
    ap.add_argument("--max-corruptions", type=int, default=4)
    ap.add_argument("--disk-full", type=int, default=20,
                    help="full-disk trials on a tmpfs (0: none; needs root to mount)")
    ap.add_argument("--workdir", help="keep books and outputs here (default: a temp folder)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no line per seed or example")
    args = ap.parse_args()
    work = args.workdir or tempfile.mkdtemp(prefix="hearth-chaos-")
    report: dict = {}
    try:
        if args.kills:
            report["kills"] = soak_kills(range(args.first_seed, args.first_seed + args.kills),
                                         work, not args.quiet)
        if args.fuzz:
            report["fuzz"] = soak_fuzz(args.fuzz, args.max_corruptions, work, not args.quiet)
        if args.disk_full:
            report["disk_full"] = soak_disk_full(args.disk_full, args.first_seed, work,
                                                 not args.quiet)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
