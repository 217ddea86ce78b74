"""Kill ``hearth run`` (a real process, SIGKILL) at every step of the commit and at
random moments, and check what a reader sees.

The output already holds another night (the day before) and a commit of the same
run date made with another configuration, so the previous state is told apart from
the new one. After each kill the reader view through the manifest must be exactly
the previous night or exactly the new one (and the other night untouched); then
the same command is run again and must exit 0 with the rows of an uninterrupted
run, manifest counts equal to the rows on disk, and nothing left over: no journal,
staging, temp file, ``.old-`` folder or file that the manifest does not list.

Run with ``-s`` to see the tally of kills and outcomes.
"""

from __future__ import annotations

import glob
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import duckdb
import pytest

from hearth.batch.config import load_config
from hearth.batch.generate import generate
from hearth.batch.run import run_book
from hearth.cluster.local import LocalExecutor
from hearth.io.write import FAULT_ENV, committed_files, journal_path, read_manifest, verify

pytestmark = pytest.mark.slow

NIGHT0, D = "2026-11-19", "2026-11-20"
N = 60
KILLED = -signal.SIGKILL


def _rows(files: list[str], table: str) -> list[tuple]:
    drop = " EXCLUDE (solve_ms)" if table == "household_results" else ""
    return duckdb.connect().execute(
        f"SELECT *{drop} FROM read_parquet(?, hive_partitioning = false)", [files]).fetchall()


def view(out: str, run_date: str) -> dict[str, list[tuple]] | None:
    """What a reader that goes through the manifest sees; None if nothing is committed."""
    try:
        files = committed_files(out, run_date)
    except FileNotFoundError:
        return None
    return {t: _rows(f, t) for t, f in files.items()}


class Env:
    """The book, the configurations, the starting output and the reference views."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.book = os.path.join(root, "book")
        generate(self.book, N, seed=1, bad_fraction=0.05, profile="small")
        self.new_cfg = os.path.join(root, "new.toml")
        self.old_cfg = os.path.join(root, "old.toml")
        with open(self.new_cfg, "w") as f:
            f.write("shard_size = 30\n")
        with open(self.old_cfg, "w") as f:
            f.write("shard_size = 30\ndrift_threshold = 0.05\n")
        # the starting output: night 0, then a commit of D under the other configuration
        self.base = os.path.join(root, "base")
        for day, cfg in ((NIGHT0, self.new_cfg), (D, self.old_cfg)):
            run_book(self.book, self.base, day, load_config(cfg), LocalExecutor(workers=1),
                     progress=False)
        self.night0 = view(self.base, NIGHT0)
        self.previous = view(self.base, D)
        ref = self.copy("reference")
        run_book(self.book, ref, D, load_config(self.new_cfg), LocalExecutor(workers=1),
                 progress=False)
        self.new = view(ref, D)
        assert self.previous["trades"] != self.new["trades"]  # the two states differ
        self.files_per_table = {t: len(v) for t, v in read_manifest(ref, D)["files"].items()}
        self.moves = sum(self.files_per_table.values())
        self.n = 0
        self.tally: dict[str, int] = {}
        # the start of most commit kills: every shard of the new run finished in
        # staging (killed after its last shard, before the commit), so the killed run
        # goes straight to the commit
        self.staged = self.copy("staged")
        shards = read_manifest(ref, D)["shards"]
        assert self.run(self.staged, fault=f"shard:{shards}").returncode == KILLED
        assert view(self.staged, D) == self.previous

    def copy(self, name: str, start: str | None = None) -> str:
        out = os.path.join(self.root, name)
        shutil.copytree(start or self.base, out)
        return out

    def fresh(self, staged: bool = False) -> str:
        self.n += 1
        return self.copy(f"k{self.n:03d}", self.staged if staged else None)

    def command(self, out: str, cfg: str | None = None) -> list[str]:
        return [sys.executable, "-m", "hearth.batch.cli", "run", self.book, out, "--run-date", D,
                "--workers", "1", "--config", cfg or self.new_cfg]

    def run(self, out: str, fault: str | None = None, cfg: str | None = None,
            kill_after: float | None = None, from_work: bool = False
            ) -> subprocess.CompletedProcess:
        """Run the command; SIGKILL it ``kill_after`` seconds after it started (or,
        ``from_work``, after it began writing its staging: past the start-up)."""
        env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
        if fault:
            env[FAULT_ENV] = fault
        p = subprocess.Popen(self.command(out, cfg), env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        if from_work:
            self.start_up = self.wait_for_staging(p, out)
        if kill_after is not None:
            try:
                p.wait(timeout=kill_after)
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
        stdout, stderr = p.communicate(timeout=120)
        return subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr)

    @staticmethod
    def wait_for_staging(p: subprocess.Popen, out: str) -> float:
        t0 = time.perf_counter()
        while p.poll() is None and not glob.glob(os.path.join(out, "_staging", D, "*")):
            time.sleep(0.005)
        return time.perf_counter() - t0

    def count(self, key: str) -> None:
        self.tally[key] = self.tally.get(key, 0) + 1

    def check_view(self, out: str) -> str:
        """After a kill: the previous night or the new one, never a mix, never empty."""
        assert view(out, NIGHT0) == self.night0, "the other night changed"
        got = view(out, D)
        if got == self.previous:
            return "previous"
        if got == self.new:
            return "new"
        self.count("mixed or empty")
        pytest.fail(f"{out}: the reader sees neither the previous night nor the new one")

    @staticmethod
    def where(out: str) -> str:
        """How far a killed run got, from what it left on disk."""
        if os.path.exists(journal_path(out, D)):
            return "commit"
        runs = glob.glob(os.path.join(out, "_staging", D, "*"))
        if not runs:
            return "start-up"
        if not os.path.exists(os.path.join(runs[0], "prep.json")):
            return "preparing"
        return f"{len(glob.glob(os.path.join(runs[0], '_done', '0*.json')))} shard(s) done"

    def check_at_rest(self, out: str, reference: dict | None = None) -> None:
        """After a run that exited 0."""
        assert view(out, D) == (reference or self.new)
        assert view(out, NIGHT0) == self.night0
        manifest = read_manifest(out, D)
        rows = verify(out, manifest)
        files = committed_files(out, D)
        assert rows["trades"] == manifest["trades"] == len(_rows(files["trades"], "trades"))
        assert rows["household_results"] == manifest["households"] == N
        assert rows["exceptions"] == manifest["exceptions"]
        for table, listed in files.items():
            root = os.path.join("_state", "warm") if table == "warm" else table
            # the documented glob matches exactly the manifest's files, and nothing
            # else sits next to the partitions
            assert sorted(glob.glob(os.path.join(out, root, "run_date=*", "part-*.parquet"))) == \
                sorted(listed + committed_files(out, NIGHT0)[table]), table
            assert sorted(os.listdir(os.path.join(out, root))) == [
                f"run_date={NIGHT0}", f"run_date={D}"], table
            assert sorted(glob.glob(os.path.join(out, root, f"run_date={D}", "*"))) == sorted(listed)
        assert not os.path.exists(journal_path(out, D))
        assert not os.listdir(os.path.join(out, "_staging")), "staging left behind"
        assert not [p for p in glob.glob(os.path.join(out, "**"), recursive=True)
                    if p.endswith(".tmp") or ".old-" in p]

    def kill_then_resume(self, out: str, fault: str | None = None,
                         kill_after: float | None = None, from_work: bool = False
                         ) -> tuple[str, subprocess.CompletedProcess]:
        killed = self.run(out, fault=fault, kill_after=kill_after, from_work=from_work)
        if killed.returncode != KILLED:
            return "", killed
        state = self.check_view(out)
        self.phase = self.where(out)
        again = self.run(out)
        assert again.returncode == 0, again.stderr
        self.check_at_rest(out)
        return state, again


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = Env(str(tmp_path_factory.mktemp("kills")))
    yield e
    print(f"\nkill tally: {e.tally}")


def commit_steps(moves: int) -> list[str]:
    return (["commit:journal"] + [f"commit:after_move:{i}" for i in range(1, moves + 1)]
            + ["commit:manifest", "commit:cleanup", "commit:staging", "commit:done"])


def test_an_uninterrupted_command_gives_the_reference(env):
    out = env.fresh()
    t0 = time.perf_counter()
    done = env.run(out, from_work=True)
    env.seconds = time.perf_counter() - t0  # how long a run takes, and its start-up
    assert done.returncode == 0, done.stderr
    env.check_at_rest(out)


def test_kill_after_every_step_of_the_commit(env):
    steps = commit_steps(env.moves)
    # every table is moved, the sharded ones in several files
    assert min(env.files_per_table.values()) >= 1 and env.files_per_table["trades"] >= 2
    kills = 0
    for step in steps:
        for rep in range(3):
            out = env.fresh(staged=rep > 0)  # once after computing every shard in the same run
            state, again = env.kill_then_resume(out, fault=step)
            assert state, f"{step}: the run was not killed there"
            kills += 1
            # before the manifest the previous night is visible, from it on the new one
            before_manifest = step == "commit:journal" or step.startswith("commit:after_move")
            assert state == ("previous" if before_manifest else "new"), step
            # the retry completes the interrupted commit and recomputes nothing; only
            # after the journal is gone is there nothing to recover (a plain re-run)
            recovered = "nothing was recomputed" in again.stdout
            assert recovered == (step != "commit:done"), (step, again.stdout)
            env.count(f"commit kill -> {state}")
    env.count_commit = kills
    assert kills >= 30 and kills == 3 * len(steps)


def test_kill_during_the_recovery_of_an_interrupted_commit(env):
    """The retry itself is killed while it completes the commit; the one after it
    still finishes the same commit."""
    for second in (f"recover:after_move:{env.moves}", "recover:manifest", "recover:cleanup"):
        out = env.fresh(staged=True)
        assert env.run(out, fault="commit:after_move:2").returncode == KILLED
        assert env.check_view(out) == "previous"
        assert env.run(out, fault=second).returncode == KILLED, second
        state = env.check_view(out)
        assert state == ("previous" if "after_move" in second else "new"), second
        again = env.run(out)
        assert again.returncode == 0 and "nothing was recomputed" in again.stdout, again.stderr
        env.check_at_rest(out)
        env.count("recovery kill")


def test_another_configuration_rolls_back_an_interrupted_commit(env):
    """A commit interrupted by a kill, then a run of the same date with the other
    configuration (a different run id), itself killed while it undoes the stray
    files; run again, it finishes undoing them and commits its own night."""
    out = env.fresh(staged=True)
    assert env.run(out, fault=f"commit:after_move:{env.moves - 1}").returncode == KILLED
    assert env.run(out, fault="rollback:after_delete:1", cfg=env.old_cfg).returncode == KILLED
    assert env.check_view(out) == "previous"
    other = env.run(out, cfg=env.old_cfg)
    assert other.returncode == 0, other.stderr
    env.check_at_rest(out, reference=env.previous)
    again = env.run(out)  # and the first configuration again
    assert again.returncode == 0, again.stderr
    env.check_at_rest(out)
    env.count("rolled back")


def test_random_kills_across_the_whole_run(env):
    """Half the kills at a random moment of the whole run, half at a random moment
    after its start-up (imports, reading and fingerprinting the book take most of a
    small run's time and leave nothing on disk)."""
    rng = random.Random(20261120)
    whole = getattr(env, "seconds", 2.0)
    work = max(whole - getattr(env, "start_up", 0.0), 0.2)
    kills = attempts = 0
    while kills < 20:
        attempts += 1
        assert attempts <= 40, "most runs finished before their kill"
        out = env.fresh()
        from_work = attempts % 2 == 0
        delay = rng.uniform(0.0, work if from_work else whole)
        state, done = env.kill_then_resume(out, kill_after=delay, from_work=from_work)
        if not state:  # it finished first
            assert done.returncode == 0, done.stderr
            env.check_at_rest(out)
            continue
        kills += 1
        env.count(f"random kill -> {state}")
        env.count(f"random kill at: {env.phase}")
    assert kills >= 20
