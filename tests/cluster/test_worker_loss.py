"""A worker process SIGKILLed mid-run (the OOM killer's choice), on the local pool
and on a local Ray instance: the run either completes with every household exactly
once or exits 5 with its staging kept, and the same command then completes with
every household exactly once and the rows of an uninterrupted run.

``tests/batch/test_bad_input_runs.py`` kills one pool worker once, after two
shards, and checks the exit 5 message and the resumed rows. Here the moment is
seeded (while the pool warms up during preparation, or after a random number of
finished shards, with shards in flight), so is which worker dies and sometimes
both; each time the process tree (walked from /proc while the run goes) must be
gone when the run has exited, the lock released, the shards finished before the
kill kept and reused by the re-run (``resumed: N``, N the markers left), and every
household in ``household_results`` once. The Ray test kills the Ray worker
running a shard task: Ray retries the task (``max_retries=2``), so the run may
complete on its own.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import random
import re
import signal
import sys
from pathlib import Path

import duckdb
import pytest

from hearth.batch.generate import generate
from hearth.io.lock import lock_path
from hearth.io.write import read_manifest

_spec = importlib.util.spec_from_file_location(
    "kill_anywhere", Path(__file__).parents[1] / "io" / "test_kill_anywhere.py")
_ka = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(_ka)  # type: ignore[union-attr]
Run, survivors, wait_gone, view = _ka.Run, _ka.survivors, _ka.wait_gone, _ka.view

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc")]

D = "2026-11-20"
N = 120
SEEDS = range(6)
GONE_WITHIN = 15.0  # seconds the rest of a run has to disappear once it exited
OUTPUT_TABLES = ("trades", "household_results", "exceptions")
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("worker-loss")
    book = str(root / "book")
    generate(book, N, seed=4, bad_fraction=0.03, profile="small")
    config = root / "run.toml"
    config.write_text("shard_size = 5\n")  # 24 shards: most are still to come at a kill
    e = {"root": root, "book": book, "config": str(config), "tally": {}}
    ref = str(root / "reference")
    run = Run(command(e, ref, 2), str(root / "logs" / "reference"))
    run.watch()
    assert run.wait() == 0, run.stderr
    e["reference"] = outputs(ref)
    e["households"] = sorted(duckdb.sql(f"SELECT household_id FROM '{book}/households.parquet'"
                                        ).fetchnumpy()["household_id"].tolist())
    e["shards"] = read_manifest(ref, D)["shards"]
    yield e
    print("\nworker loss: " + "; ".join(f"{k}: {v}" for k, v in sorted(e["tally"].items())))


def command(env, out: str, workers: int, executor: str = "local") -> list[str]:
    return [sys.executable, "-m", "hearth.batch.cli", "run", env["book"], out, "--run-date", D,
            "--workers", str(workers), "--config", env["config"], "--executor", executor]


def outputs(out: str) -> dict[str, list[tuple]]:
    return {t: rows for t, rows in view(out, D).items() if t in OUTPUT_TABLES}


def markers(out: str) -> list[str]:
    """Finished shards' markers in staging (the validation pseudo-shard's aside)."""
    return glob.glob(os.path.join(out, "_staging", D, "*", "_done", "0*.json"))


def pool_workers(run) -> list[int]:
    return [pid for pid, (_, cmd) in _ka.process_tree(run.p.pid).items()
            if "spawn_main" in cmd and pid != run.p.pid]


def check_complete(env, out: str) -> None:
    got = outputs(out)
    ids = [r[1] for r in got["household_results"]]  # (run_id, household_id, ...)
    assert sorted(ids) == env["households"], "a household lost or duplicated"
    assert got == env["reference"]
    assert not os.path.exists(lock_path(out, D))
    assert not os.listdir(os.path.join(out, "_staging"))


def count(env, key: str) -> None:
    env["tally"][key] = env["tally"].get(key, 0) + 1


@pytest.mark.parametrize("seed", SEEDS)
def test_a_pool_worker_killed_mid_run(env, tmp_path, seed):
    rng = random.Random(seed)
    out = str(tmp_path / "out")
    # seed 0: while the pool warms up (the lock taken, no shard finished); else after a
    # random number of finished shards, with the rest in flight or queued
    after = None if seed == 0 else rng.randint(0, env["shards"] // 2)
    both = seed % 3 == 2  # both workers at once
    run = Run(command(env, out, 2), str(tmp_path / "killed"))

    def due() -> bool:
        if len(pool_workers(run)) < 2:
            return False
        if after is None:
            return os.path.exists(lock_path(out, D))
        return len(markers(out)) >= after

    victims: list[int] = []
    if run.watch(until=due):
        workers = pool_workers(run)
        victims = workers if both else [rng.choice(workers)]
        for pid in victims:
            os.kill(pid, signal.SIGKILL)  # a worker of the run this test started
    code = run.wait()
    assert not wait_gone(run.tree, GONE_WITHIN), "processes of the run left after it exited"
    assert victims, "the run finished before a worker could be killed"
    left = markers(out)
    when = "while warming up" if after is None else f"after {after} shard(s)"
    count(env, f"{'both workers' if both else 'one worker'} {when} -> exit {code}")
    if code == 0:  # the kill landed after the last shard was handed out and finished
        check_complete(env, out)
        return
    assert code == 5, run.stderr
    assert "a worker process died; re-run the same command to resume" in run.stderr
    assert not os.path.exists(lock_path(out, D)), "the lock was not released"
    assert read_manifest(out, D) is None, "nothing may be committed"
    staging = glob.glob(os.path.join(out, "_staging", D, "*"))
    assert len(staging) == 1 and (after is None or os.path.exists(
        os.path.join(staging[0], "prep.json"))), "staging was not kept"
    assert len(left) >= (after or 0), "finished shards were lost"

    again = Run(command(env, out, 2), str(tmp_path / "again"))
    again.watch()
    assert again.wait() == 0, again.stderr
    assert not wait_gone(again.tree, GONE_WITHIN)
    resumed = re.search(r"resumed: (\d+) shard", again.stdout)
    assert int(resumed.group(1) if resumed else 0) == len(left), again.stdout
    check_complete(env, out)


def _ray_tasks(run) -> list[int]:
    return [pid for pid, (_, cmd) in _ka.process_tree(run.p.pid).items()
            if "ray::_shard_task" in cmd]


@pytest.mark.ray
def test_a_ray_worker_killed_mid_run(env, tmp_path):
    """A local Ray instance of 2 CPUs; the Ray worker process running a shard is
    SIGKILLed once a few shards are finished. Ray re-runs the task elsewhere, so the
    run should commit by itself; exit 5 (staging kept) and a resume is allowed."""
    out = str(tmp_path / "out")
    environ = dict(os.environ, **RAY_ENV)
    run = Run(command(env, out, 2, "ray"), str(tmp_path / "killed"), environ)
    victims: list[int] = []
    if run.watch(until=lambda: len(markers(out)) >= 3 and bool(_ray_tasks(run))):
        tasks = _ray_tasks(run)
        victims = tasks[:1]
        os.kill(victims[0], signal.SIGKILL)  # a Ray worker of the instance this run started
    code = run.wait()
    assert victims, "the run finished before a Ray worker could be killed"
    assert not wait_gone(run.tree, GONE_WITHIN), \
        f"processes of the run left after it exited: {survivors(run.tree)}"
    count(env, f"ray worker killed -> exit {code}")
    if code != 0:
        assert code == 5, run.stderr
        again = Run(command(env, out, 2, "ray"), str(tmp_path / "again"), environ)
        again.watch()
        assert again.wait() == 0, again.stderr
        assert not wait_gone(again.tree, GONE_WITHIN)
    check_complete(env, out)
