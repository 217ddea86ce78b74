"""One run per output and run date: the lock file, its holder, stale locks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from hearth.errors import RunLocked
from hearth.io.lock import RunLock, lock_path


def test_a_second_run_of_the_same_date_is_refused_with_the_holder_named(tmp_path):
    out = str(tmp_path)
    with RunLock(out, "2026-11-20"):
        with pytest.raises(RunLocked) as e:
            RunLock(out, "2026-11-20").acquire()
        assert f"pid {os.getpid()} on {socket.gethostname()}" in str(e.value)
        assert "lock.json" in str(e.value)
        RunLock(out, "2026-11-21").acquire().release()  # another date is free
    assert not os.path.exists(lock_path(out, "2026-11-20"))  # released at the end
    RunLock(out, "2026-11-20").acquire().release()


def test_a_lock_whose_holder_died_is_taken_over(tmp_path):
    out = str(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    path = lock_path(out, "2026-11-20")
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        json.dump({"pid": int(dead.stdout), "host": socket.gethostname(), "started": "x"}, f)
    lock = RunLock(out, "2026-11-20").acquire()
    with open(path) as f:
        assert json.load(f)["pid"] == os.getpid()
    lock.release()


def test_another_hosts_lock_is_honoured_until_it_is_old(tmp_path):
    out = str(tmp_path)
    path = lock_path(out, "2026-11-20")
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        json.dump({"pid": 1, "host": "elsewhere", "started": "x"}, f)
    with pytest.raises(RunLocked, match="pid 1 on elsewhere"):
        RunLock(out, "2026-11-20").acquire()
    old = os.path.getmtime(path) - 2 * 24 * 3600
    os.utime(path, (old, old))
    RunLock(out, "2026-11-20").acquire().release()


def test_a_run_while_another_holds_the_date_exits_4_and_touches_nothing(tmp_path):
    from hearth.batch.generate import generate

    book, out = str(tmp_path / "book"), str(tmp_path / "out")
    generate(book, 20, seed=3, profile="small")
    with RunLock(out, "2026-11-20"):
        before = sorted(os.listdir(out))
        done = subprocess.run([sys.executable, "-m", "hearth.batch.cli", "run", book, out,
                               "--run-date", "2026-11-20", "--workers", "1"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 4, done.stderr
        assert f"pid {os.getpid()}" in done.stderr
        assert sorted(os.listdir(out)) == before  # no staging, no outputs
        assert os.listdir(os.path.join(out, "_runs", "2026-11-20")) == ["lock.json"]
