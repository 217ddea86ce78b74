"""SIGKILL a real ``hearth run`` at random moments and at random named fault points,
seeded, into an OUTPUT that already holds another night and an earlier commit of
the same run date, and check what readers see, what the re-run does, and that no
process of the killed run is left.

Each seed picks the pool size (``--workers`` 1 or 2) at random and

- on odd seeds, kills the run's whole process group (what a scheduler does) at a
  random delay, measured from the process start (start-up, reading) or, on every
  other odd seed, from the moment the run takes its lock (reading, validating,
  preparing, shards, commit); a run that ends before its kill is checked as a
  complete run and started again with half the delay (up to 3 runs);
- on even seeds, sets ``HEARTH_FAULT_KILL`` to a random step of one kind, the kinds
  in turn (``shard:N``, ``commit:journal``, ``commit:after_move:N``,
  ``commit:manifest``, ``commit:cleanup``, ``commit:staging``, ``commit:done``):
  the driver kills itself, as the OOM killer would; what is left of its pool is
  then killed with the group.

After every kill: the reader through the manifest (``committed_files``) sees the
previous commit of the date or the whole new one, never a mix; the Hive glob
``<table>/run_date=*/part-*.parquet`` sees exactly that too whenever no commit
journal is left (with a journal, a commit was cut between its moves and its
clean-up, and the glob is documented to see both commits' files: tallied); the
other night is untouched; every process of the run's tree (walked from /proc while
it ran) is gone. Then the same command exits 0 with the rows of an uninterrupted
run (``solve_ms`` aside), every household exactly once, and nothing left over.

``test_commit_kills.py`` kills every commit step in turn on one pool size; this
file samples the whole run at random on both, with the process checks. The last
test kills the driver alone and checks its pool ends by itself. Run
with ``-s`` for the tally of kills, phases and outcomes.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from hearth.batch.config import load_config
from hearth.batch.generate import generate
from hearth.batch.run import run_book
from hearth.cluster.local import LocalExecutor
from hearth.io.lock import lock_path
from hearth.io.write import FAULT_ENV, committed_files, journal_path, read_manifest, verify

_spec = importlib.util.spec_from_file_location(
    "commit_kills", Path(__file__).with_name("test_commit_kills.py"))
_kills = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(_kills)  # type: ignore[union-attr]
view = _kills.view  # the reader through the manifest: table -> rows, solve_ms aside

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc")]

NIGHT0, D = "2026-11-19", "2026-11-20"
N = 120
SEEDS = range(20)
KILLED = -signal.SIGKILL
TIMEOUT = 120.0  # seconds any one command may take on a loaded machine
GONE_WITHIN = 10.0  # seconds the processes of a killed group have to disappear
ATTEMPTS = 3  # runs a delay seed gets (each with half the delay) to be killed before it ends
OUTPUT_TABLES = ("trades", "household_results", "exceptions")


# -- processes ----------------------------------------------------------------------------

# the /proc walk of tests/batch/test_signals.py: every process of a run, and which live on
_sig_spec = importlib.util.spec_from_file_location(
    "signals", Path(__file__).parents[1] / "batch" / "test_signals.py")
_signals = importlib.util.module_from_spec(_sig_spec)  # type: ignore[arg-type]
_sig_spec.loader.exec_module(_signals)  # type: ignore[union-attr]
process_tree, survivors = _signals.process_tree, _signals.survivors


def wait_gone(tree: dict[int, tuple[str, str]], within: float) -> dict[int, str]:
    deadline = time.monotonic() + within
    while survivors(tree) and time.monotonic() < deadline:
        time.sleep(0.05)
    return survivors(tree)


class Run:
    """One ``hearth`` command in its own session (its own process group), watched:
    its process tree is sampled from /proc until it ends or is killed."""

    def __init__(self, argv: list[str], log_dir: str, env: dict[str, str] | None = None) -> None:
        os.makedirs(log_dir, exist_ok=True)
        self.stdout_path = os.path.join(log_dir, "stdout")
        self.stderr_path = os.path.join(log_dir, "stderr")
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.p = subprocess.Popen(argv, stdout=out, stderr=err, env=env,
                                      start_new_session=True)
        self.t0 = time.monotonic()
        self.tree: dict[int, tuple[str, str]] = {}

    def watch(self, until=None, timeout: float = TIMEOUT) -> bool:
        """Sample the tree until the process ends (False) or ``until()`` holds (True)."""
        deadline = self.t0 + timeout
        while self.p.poll() is None:
            self.tree.update(process_tree(self.p.pid))
            if until is not None and until():
                self.tree.update(process_tree(self.p.pid))
                return True
            if time.monotonic() > deadline:
                self.kill_group()
                raise AssertionError(f"{' '.join(self.p.args)}: still running after {timeout:.0f}s")
            time.sleep(0.005)
        return False

    def kill_group(self) -> None:
        try:
            os.killpg(self.p.pid, signal.SIGKILL)  # the session this test started
        except ProcessLookupError:
            pass

    def wait(self) -> int:
        return self.p.wait(timeout=TIMEOUT)

    @property
    def stdout(self) -> str:
        return Path(self.stdout_path).read_text()

    @property
    def stderr(self) -> str:
        return Path(self.stderr_path).read_text()


# -- readers ------------------------------------------------------------------------------

def glob_view(out: str, run_date: str) -> dict[str, list[str]]:
    """What a reader of the Hive glob sees for one date: table -> rows (as sorted
    reprs: a multiset), solve_ms aside. Warm state included, like the manifest view."""
    con = duckdb.connect()
    got = {}
    for table in (*OUTPUT_TABLES, "warm"):
        root = os.path.join(out, "_state", "warm") if table == "warm" else os.path.join(out, table)
        pattern = os.path.join(root, "run_date=*", "part-*.parquet")
        if not glob.glob(pattern):
            got[table] = []
            continue
        drop = "solve_ms, run_date" if table == "household_results" else "run_date"
        rows = con.execute(f"SELECT * EXCLUDE ({drop}) FROM read_parquet(?, hive_partitioning = "
                           "true) WHERE CAST(run_date AS VARCHAR) = ?", [pattern, run_date]
                           ).fetchall()
        got[table] = sorted(map(repr, rows))
    return got


def as_multiset(v: dict[str, list[tuple]] | None) -> dict[str, list[str]] | None:
    return None if v is None else {t: sorted(map(repr, rows)) for t, rows in v.items()}


# -- the environment ----------------------------------------------------------------------

class Env:
    """The book, the two configurations, the starting output (night 0, and D under
    the other configuration), the reference views and fault steps per pool size."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.book = os.path.join(root, "book")
        generate(self.book, N, seed=3, bad_fraction=0.03, profile="small")  # a few exceptions
        self.new_cfg = os.path.join(root, "new.toml")
        self.old_cfg = os.path.join(root, "old.toml")
        Path(self.new_cfg).write_text("shard_size = 20\n")
        Path(self.old_cfg).write_text("shard_size = 20\ndrift_threshold = 0.05\n")
        self.base = os.path.join(root, "base")
        for day, cfg in ((NIGHT0, self.new_cfg), (D, self.old_cfg)):
            run_book(self.book, self.base, day, load_config(cfg), LocalExecutor(workers=1),
                     progress=False)
        self.night0 = view(self.base, NIGHT0)
        self.previous = view(self.base, D)
        self.households = sorted(duckdb.sql(
            f"SELECT household_id FROM '{self.book}/households.parquet'").fetchnumpy()[
                "household_id"].tolist())
        self.new: dict[int, dict] = {}
        self.seconds: dict[int, float] = {}
        self.start_up: dict[int, float] = {}
        self.steps: dict[int, list[str]] = {}
        for workers in (1, 2):
            out = self.copy(f"reference-{workers}")
            run = Run(self.command(out, workers), os.path.join(root, "logs", f"ref-{workers}"))
            run.watch(until=lambda out=out: os.path.exists(lock_path(out, D)))
            self.start_up[workers] = time.monotonic() - run.t0
            run.watch()
            assert run.wait() == 0, run.stderr
            self.seconds[workers] = time.monotonic() - run.t0
            self.new[workers] = view(out, D)
            manifest = read_manifest(out, D)
            moves = sum(len(v) for v in manifest["files"].values())
            self.steps[workers] = (
                [f"shard:{i}" for i in range(1, manifest["shards"] + 1)] + ["commit:journal"]
                + [f"commit:after_move:{i}" for i in range(1, moves + 1)]
                + ["commit:manifest", "commit:cleanup", "commit:staging", "commit:done"])
        # the two states of D differ, and the pool size does not change the rows
        assert self.previous["trades"] != self.new[1]["trades"]
        assert {t: v for t, v in self.new[1].items() if t in OUTPUT_TABLES} == \
            {t: v for t, v in self.new[2].items() if t in OUTPUT_TABLES}
        self.tally: dict[str, int] = {}
        self.kills = self.seeds = 0

    def copy(self, name: str) -> str:
        out = os.path.join(self.root, name)
        shutil.copytree(self.base, out)
        return out

    def command(self, out: str, workers: int) -> list[str]:
        return [sys.executable, "-m", "hearth.batch.cli", "run", self.book, out, "--run-date", D,
                "--workers", str(workers), "--config", self.new_cfg]

    def count(self, key: str) -> None:
        self.tally[key] = self.tally.get(key, 0) + 1


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = Env(str(tmp_path_factory.mktemp("kill-anywhere")))
    yield e
    print(f"\nkill-anywhere: {e.seeds} seeds, {e.kills} kills; uninterrupted run "
          f"{e.seconds[1]:.1f}s (1 worker), {e.seconds[2]:.1f}s (2 workers)")
    for k, v in sorted(e.tally.items()):
        print(f"  {v:3d}  {k}")


def phase(out: str) -> str:
    """How far a killed run got, from what it left on disk."""
    if os.path.exists(journal_path(out, D)):
        return "commit"
    runs = glob.glob(os.path.join(out, "_staging", D, "*"))
    if not runs:
        if read_manifest(out, D)["commit_seq"] > 1:
            return "after the commit (report)"
        return "reading the book" if os.path.exists(lock_path(out, D)) else "start-up"
    if not os.path.exists(os.path.join(runs[0], "prep.json")):
        return "validating and preparing"
    return "shards"


def check_killed(env: Env, out: str) -> str:
    """The reader views right after a kill; returns what the manifest reader saw."""
    assert view(out, NIGHT0) == env.night0, "the other night changed"
    got = view(out, D)
    if got == env.previous:
        state = "previous"
    elif got in (env.new[1], env.new[2]):
        state = "new"
    else:
        raise AssertionError(f"{out}: the manifest reader sees neither the previous commit nor "
                             "the new one")
    g = glob_view(out, D)
    assert glob_view(out, NIGHT0) == as_multiset(env.night0)
    if not os.path.exists(journal_path(out, D)):
        assert g == as_multiset(got), "no journal left, yet the Hive glob differs from the manifest"
    else:
        seen = ("previous" if g == as_multiset(env.previous)
                else "new" if g == as_multiset(got) else "both commits' files")
        env.count(f"glob reader with a journal left: {seen}")
    return state


def check_at_rest(env: Env, out: str, workers: int) -> None:
    """After the re-run exited 0: the uninterrupted rows, each household once, both
    readers agree, nothing left over."""
    got = view(out, D)
    assert got == env.new[workers]
    assert view(out, NIGHT0) == env.night0
    assert glob_view(out, D) == as_multiset(got)
    ids = [r[1] for r in got["household_results"]]  # (run_id, household_id, ...)
    assert sorted(ids) == env.households, "a household lost or duplicated"
    manifest = read_manifest(out, D)
    assert verify(out, manifest)["household_results"] == manifest["households"] == N
    for table, listed in committed_files(out, D).items():
        root = os.path.join(out, "_state", "warm") if table == "warm" else os.path.join(out, table)
        assert sorted(glob.glob(os.path.join(root, f"run_date={D}", "*"))) == sorted(listed)
    assert not os.path.exists(journal_path(out, D))
    assert not os.path.exists(lock_path(out, D)), "the lock was not released"
    assert not os.listdir(os.path.join(out, "_staging")), "staging left behind"
    assert not [p for p in glob.glob(os.path.join(out, "**"), recursive=True)
                if p.endswith(".tmp")]


def test_the_reference_runs_agree(env):
    """Both pool sizes commit the same rows, and the previous commit of D differs."""
    assert len(env.new[1]["household_results"]) == N
    assert env.new[1]["exceptions"], "the book should carry some bad households"


def kill_once(env: Env, seed: int) -> dict:
    """One seed: start, kill, check the readers and the processes, re-run, check the
    rows. Raises AssertionError on a check that fails; returns what happened."""
    rng = random.Random(seed)
    workers = rng.choice((1, 2))
    out = env.copy(f"seed-{seed:04d}")
    logs = os.path.join(env.root, "logs", f"seed-{seed:04d}")
    environ = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    fault = None
    if seed % 2 == 0:
        # every kind of step in turn over the even seeds (there are many more moves than
        # other steps), a random one of that kind
        kinds = sorted({re.sub(r":\d+$", "", s) for s in env.steps[workers]})
        kind = kinds[(seed // 2) % len(kinds)]
        fault = rng.choice([s for s in env.steps[workers] if re.sub(r":\d+$", "", s) == kind])
        environ[FAULT_ENV] = fault
        how = "fault " + re.sub(r":\d+$", ":N", fault)
    else:
        from_lock = seed % 4 == 3
        # the whole run, or past its start-up (imports and the pool leave nothing on disk)
        span = env.seconds[workers] - (env.start_up[workers] if from_lock else 0.0)
        delay = rng.uniform(0.0, 0.9 * span)
        how = f"group kill {'after the lock' if from_lock else 'after start'}"
    record: dict = {"seed": seed, "workers": workers, "how": fault or how}
    env.seeds += 1
    for attempt in range(ATTEMPTS):
        run = Run(env.command(out, workers), os.path.join(logs, f"killed-{attempt}"), environ)
        if fault is None:
            record["delay"] = round(delay, 3)
            anchor = [None if from_lock else run.t0]

            def due(anchor=anchor, out=out, delay=delay) -> bool:
                if anchor[0] is None and os.path.exists(lock_path(out, D)):
                    anchor[0] = time.monotonic()
                return anchor[0] is not None and time.monotonic() - anchor[0] >= delay

            if run.watch(until=due):
                run.kill_group()
        else:
            run.watch()
        code = run.wait()
        if code == KILLED:
            break
        # it finished before the kill (this machine is faster now than when the
        # uninterrupted run was timed): a complete run, checked; then a shorter delay
        assert code == 0, run.stderr
        env.count(f"w{workers} {how}: finished first")
        check_at_rest(env, out, workers)
        shutil.rmtree(out)
        out = env.copy(f"seed-{seed:04d}")
        delay /= 2
    else:
        return dict(record, outcome="finished first")
    env.kills += 1
    if fault is not None:
        # the driver killed itself; what of its pool is still there a moment later
        orphans = wait_gone(run.tree, 1.0)
        record["orphans"] = len(orphans)
        if orphans:
            env.count(f"w{workers} fault kill: {len(orphans)} pool process(es) outlived the "
                      "driver, killed with the group")
        run.kill_group()
    left = wait_gone(run.tree, GONE_WITHIN)
    record["survivors"] = len(left)
    assert not left, f"left running after the group was killed: {left}"
    record["phase"] = phase(out)
    record["reader"] = check_killed(env, out)
    env.count(f"w{workers} {how} during {record['phase']} -> reader sees {record['reader']}")

    again = Run(env.command(out, workers), os.path.join(logs, "again"))
    again.watch()
    code = again.wait()
    if code == 4:
        holder = Path(lock_path(out, D)).read_text()
        raise AssertionError(f"the re-run found the killed run's lock {holder!r} and exited 4")
    assert code == 0, again.stderr
    assert not wait_gone(again.tree, GONE_WITHIN), "the re-run left processes behind"
    check_at_rest(env, out, workers)
    shutil.rmtree(out)
    return dict(record, outcome="killed", rerun=code)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_kill_at_a_random_moment_or_fault_point(env, seed):
    kill_once(env, seed)


def test_most_seeds_killed_the_run(env):
    if env.seeds < len(SEEDS):
        pytest.skip("only part of the seeds ran")
    assert env.kills >= 18, f"{env.kills} of {env.seeds} seeds killed the run before it ended"


def test_a_killed_drivers_pool_workers_end_by_themselves(env, tmp_path):
    """The driver SIGKILLed alone (the OOM killer picks the biggest process) with a
    pool of two, and nobody kills its group (cron does not): the re-run still
    commits the uninterrupted rows while what is left of the killed run ends by
    itself. Each pool worker holds both ends of the pool's pipes, so no EOF ever
    reaches it; it watches its parent instead (cluster/local.py) and exits within a
    second of losing it, and the resource tracker follows once no worker holds its
    pipe."""
    out = env.copy("orphans")
    environ = dict(os.environ, **{FAULT_ENV: "shard:2"})
    run = Run(env.command(out, 2), str(tmp_path / "killed"), environ)
    run.watch()
    assert run.wait() == KILLED
    try:
        workers = [c for _, c in run.tree.values() if "spawn_main" in c]
        assert len(workers) >= 2, run.tree  # the pool was running when the driver died
        again = Run(env.command(out, 2), str(tmp_path / "again"))
        again.watch()
        assert again.wait() == 0, again.stderr
        check_at_rest(env, out, 2)
        left = wait_gone(run.tree, 3.0)  # on top of the re-run's seconds
    finally:
        run.kill_group()
        assert not wait_gone(run.tree, GONE_WITHIN)
    assert not left, (f"{len(left)} process(es) of the killed driver still running after the "
                      "re-run and 3s more: " + "; ".join(sorted(
                          c.split(" -c ")[-1][:50] for c in left.values())))
