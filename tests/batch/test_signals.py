"""SIGTERM and SIGINT stop a real ``hearth run`` mid-run: every process of the run
ends within seconds, the run exits 143 / 130 with one line saying how to resume,
the lock is released, finished shards stay in staging, and the same command then
commits exactly the rows of an uninterrupted run.

Each test starts the command as a real subprocess on a generated book cut into many
small shards, waits until shards are finished in staging, records the run's process
tree from /proc (the driver, its spawn workers, the multiprocessing resource
tracker; for Ray the raylet, the GCS and the Ray workers), sends the signal to the
driver alone or to its whole process group (what a scheduler or a terminal's Ctrl-C
does), and checks that none of those processes is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from hearth.batch.generate import generate
from hearth.io.lock import lock_path
from hearth.io.write import committed_files

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc")]

D = "2026-11-20"
HOUSEHOLDS = 3000
TIMEOUT = 300  # seconds any single command may take on a loaded machine
GONE_WITHIN = 60.0  # seconds every process of a stopped run has to disappear
HEARTH = [sys.executable, "-m", "hearth.batch.cli"]


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out  # the process is gone
    for task in tasks:
        try:  # a thread may end between the listing and the read
            out.extend(int(k) for k in (task / "children").read_text().split())
        except OSError:
            continue
    return out


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) of a process, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], fields[19]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def process_tree(root: int) -> dict[int, tuple[str, str]]:
    """Every live descendant of ``root`` (and root): pid -> (start time, command line)."""
    seen: dict[int, tuple[str, str]] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        st = _stat(pid)
        if pid in seen or st is None or st[0] == "Z":
            continue
        seen[pid] = (st[1], _cmdline(pid))
        todo.extend(_children(pid))
    return seen


def survivors(tree: dict[int, tuple[str, str]]) -> dict[int, str]:
    """The processes of ``tree`` still running (a zombie has ended; a pid reused by a
    new process, told apart by its start time, is not a survivor)."""
    left = {}
    for pid, (start, cmd) in tree.items():
        st = _stat(pid)
        if st is not None and st[0] != "Z" and st[1] == start:
            left[pid] = cmd
    return left


def _rows(out: str) -> dict[str, list[tuple]]:
    """Every committed row of the output tables, in order, through the manifest;
    solve_ms (timing) aside. (The warm-start bases are no output: they change speed,
    never the answer.)"""
    con = duckdb.connect()
    view = {}
    for table, files in committed_files(out, D).items():
        if table not in ("trades", "household_results", "exceptions"):
            continue
        drop = " EXCLUDE (solve_ms)" if table == "household_results" else ""
        view[table] = con.execute(f"SELECT *{drop} FROM read_parquet(?, hive_partitioning = false)",
                                  [files]).fetchall() if files else []
    return view


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("signals")
    book = str(root / "book")
    generate(book, HOUSEHOLDS, seed=7, profile="small")
    config = root / "run.toml"
    config.write_text("shard_size = 20\n")  # 150 shards: still running when the signal lands
    reference = str(root / "reference")
    done = subprocess.run([*HEARTH, "run", book, reference, "--run-date", D, "--config",
                           str(config), "--workers", "2"], capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    return {"root": root, "book": book, "config": str(config), "reference": _rows(reference)}


def _markers(out: Path) -> list[Path]:
    staging = out / "_staging" / D
    return list(staging.glob("*/_done/*.json")) if staging.exists() else []


def _stop_mid_run(env, out: Path, signum: int, *, group: bool, extra: tuple[str, ...] = (),
                  wait_for=None, environ=None):
    """Start the run, wait until ``wait_for`` (default: two shards finished in staging),
    record its processes, send the signal; returns (process, argv, tree, stdout, stderr,
    seconds from the signal until every process was gone)."""
    argv = ["run", env["book"], str(out), "--run-date", D, "--config", env["config"], *extra]
    p = subprocess.Popen([*HEARTH, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True, env=environ)
    wait_for = wait_for or (lambda: len(_markers(out)) >= 3)  # the validation marker + 2 shards
    tree: dict[int, tuple[str, str]] = {}
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline and p.poll() is None and not wait_for():
            tree.update(process_tree(p.pid))
            time.sleep(0.05)
        assert p.poll() is None, "the run ended before the signal could be sent"
        tree.update(process_tree(p.pid))
        t0 = time.monotonic()
        if group:
            os.killpg(p.pid, signum)  # the run's own session: never this test's group
        else:
            os.kill(p.pid, signum)
        stdout, stderr = p.communicate(timeout=TIMEOUT)
        exited_after = time.monotonic() - t0
        while survivors(tree) and time.monotonic() - t0 < GONE_WITHIN:
            time.sleep(0.05)
        gone_after = time.monotonic() - t0
    finally:
        if p.poll() is None:  # only on a failed test: leave nothing of this run behind
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    print(f"{signal.Signals(signum).name} to the {'group' if group else 'driver'}: "
          f"the driver exited after {exited_after:.2f}s, its {len(tree)} processes were all gone "
          f"after {gone_after:.2f}s")
    return p, argv, tree, stdout, stderr, gone_after


def _check_stopped(p, argv, tree, stderr, out: Path, signum: int) -> None:
    assert p.returncode == 128 + signum, stderr
    assert not survivors(tree), f"left running: {survivors(tree)}"
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    events = [json.loads(line) for line in stderr.splitlines()]  # off a terminal: JSON lines
    resume = [e for e in events if "resume with" in e["message"]]
    assert len(resume) == 1, stderr
    assert f"stopped by {signal.Signals(signum).name}" in resume[0]["message"]
    assert f"resume with `hearth {' '.join(argv)}`" in resume[0]["message"]
    assert all({"ts", "level", "message"} <= set(e) for e in events)
    assert not os.path.exists(lock_path(str(out), D)), "the lock was not released"


def _resume_gives_the_reference(env, argv, out: Path, environ=None, *, resumed=True) -> None:
    again = subprocess.run([*HEARTH, *argv], capture_output=True, text=True, timeout=TIMEOUT,
                           env=environ)
    assert again.returncode == 0, again.stderr
    assert ("resumed:" in again.stdout) == resumed, again.stdout
    assert _rows(str(out)) == env["reference"]


@pytest.mark.parametrize("signum,group", [
    (signal.SIGTERM, False), (signal.SIGTERM, True),
    (signal.SIGINT, False), (signal.SIGINT, True)],
    ids=["sigterm-driver", "sigterm-group", "sigint-driver", "sigint-group"])
def test_a_signal_mid_run_ends_every_worker_and_the_same_command_resumes(env, tmp_path,
                                                                         signum, group):
    out = tmp_path / "out"
    p, argv, tree, _, stderr, _ = _stop_mid_run(env, out, signum, group=group,
                                                extra=("--workers", "2"))
    workers = [c for c in (cmd for _, cmd in tree.values()) if "spawn_main" in c]
    assert len(workers) >= 2, tree  # the pool's workers were running and were seen
    _check_stopped(p, argv, tree, stderr, out, signum)
    assert len(_markers(out)) >= 3  # finished shards kept in staging
    _resume_gives_the_reference(env, argv, out)


def test_a_signal_while_the_book_is_prepared_ends_the_warming_pool(env, tmp_path):
    """Before any shard runs (the lock is held, the workers are still importing), the
    pool started for the run is ended too and the lock released."""
    out = tmp_path / "out"
    # the run's staging folder is made after the lock is taken, before the book is
    # validated and sharded
    p, argv, tree, _, stderr, _ = _stop_mid_run(
        env, out, signal.SIGTERM, group=False, extra=("--workers", "2"),
        wait_for=lambda: (out / "_staging" / D).exists())
    assert len(tree) >= 2, tree  # the driver and at least one worker or the tracker
    _check_stopped(p, argv, tree, stderr, out, signal.SIGTERM)
    assert len(_markers(out)) <= 1  # at most the validation marker: no shard had run
    _resume_gives_the_reference(env, argv, out, resumed=False)


@pytest.mark.ray
@pytest.mark.parametrize("group", [False, True], ids=["driver", "group"])
def test_sigterm_ends_a_local_ray_instance_and_its_tasks(env, tmp_path, group):
    environ = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    out = tmp_path / "out"
    p, argv, tree, _, stderr, _ = _stop_mid_run(
        env, out, signal.SIGTERM, group=group, extra=("--executor", "ray", "--workers", "2"),
        environ=environ)
    commands = " ".join(cmd for _, cmd in tree.values())
    assert "raylet" in commands and "ray::_shard_task" in commands, commands
    _check_stopped(p, argv, tree, stderr, out, signal.SIGTERM)
    _resume_gives_the_reference(env, argv, out, environ)
