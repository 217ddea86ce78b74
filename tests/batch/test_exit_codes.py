"""Every exit code of the table in docs/operations.md, from real ``hearth``
subprocesses.

0 committed; 1 a bug; 2 bad usage or unusable input/output (OUTPUT checked before
the book is read); 3 committed over the failure-rate limit, and ``validate`` when it
finds problems; 4 the lock is held; 5 transient (here: a Ray address that does not
answer within the connect timeout, found before any preparation). 130 / 143 are
tested in test_signals.py, and 5 for a worker killed mid-run in
test_bad_input_runs.py.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import hearth
from hearth.batch.generate import generate
from hearth.io.lock import lock_path

D = "2026-11-20"
HEARTH = [sys.executable, "-m", "hearth.batch.cli"]
TIMEOUT = 300


def hearth_cmd(*args: str, timeout: float = TIMEOUT, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*HEARTH, *args], capture_output=True, text=True, timeout=timeout, **kw)


def messages(stderr: str) -> list[str]:
    """The messages of the JSON log lines on stderr (off a terminal), or argparse's lines."""
    out = []
    for line in stderr.splitlines():
        try:
            out.append(json.loads(line)["message"])
        except (ValueError, KeyError):
            out.append(line)
    return out


@pytest.fixture(scope="module")
def books(tmp_path_factory):
    root = tmp_path_factory.mktemp("exitbooks")
    clean = str(root / "clean")
    generate(clean, 40, seed=2, bad_fraction=0.0, profile="small")
    bad = str(root / "bad")  # the clean book with one lot of negative quantity
    shutil.copytree(clean, bad)
    lots = pq.read_table(os.path.join(bad, "lots.parquet"))
    q = lots.column("quantity").to_pylist()
    q[0] = -abs(q[0]) - 1.0
    i = lots.schema.get_field_index("quantity")
    pq.write_table(lots.set_column(i, lots.schema.field(i), [q]), os.path.join(bad, "lots.parquet"))
    assert pc.min(pq.read_table(os.path.join(bad, "lots.parquet")).column("quantity")).as_py() < 0
    return {"clean": clean, "bad": bad}


def test_0_committed(books, tmp_path):
    out = tmp_path / "out"
    done = hearth_cmd("run", books["clean"], str(out), "--run-date", D, "--workers", "1")
    assert done.returncode == 0, done.stderr
    assert (out / "_runs" / D / "manifest.json").exists()


def test_version_names_hearth_and_the_data_contract():
    done = hearth_cmd("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == (f"hearth {hearth.__version__} "
                                   f"(data contract {hearth.CONTRACT_VERSION})")


# -- 2: bad usage, unusable input or output --------------------------------------------

def test_2_output_that_is_a_file_is_found_before_the_book_is_read(tmp_path):
    out = tmp_path / "out.parquet"
    out.write_bytes(b"not a folder")
    # the input does not exist either: the message about OUTPUT shows it was checked first
    done = hearth_cmd("run", str(tmp_path / "no-book"), str(out), "--run-date", D)
    assert done.returncode == 2, done.stderr
    [msg] = messages(done.stderr)
    assert f"OUTPUT {out} is a file" in msg and "no-book" not in msg
    assert out.read_bytes() == b"not a folder"


def test_2_output_in_a_read_only_folder_is_found_before_the_book_is_read(books):
    # root writes through permission bits, so as root the command runs as nobody
    as_root = os.geteuid() == 0
    base = tempfile.mkdtemp(prefix="hearth-ro-", dir="/tmp")
    try:
        os.chmod(base, 0o755)
        ro = os.path.join(base, "ro")
        os.mkdir(ro)
        os.chmod(ro, stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP
                 | stat.S_IROTH | stat.S_IXOTH)
        kw = {"user": 65534, "group": 65534} if as_root else {}
        for out in (ro, os.path.join(ro, "night", "out")):  # the folder itself, or below it
            done = hearth_cmd("run", os.path.join(base, "no-book"), out, "--run-date", D, **kw)
            assert done.returncode == 2, done.stderr
            [msg] = messages(done.stderr)
            assert f"OUTPUT {out} cannot be written" in msg and "no-book" not in msg
        assert os.listdir(ro) == []
    finally:
        os.chmod(os.path.join(base, "ro"), 0o755)
        shutil.rmtree(base)


@pytest.mark.parametrize("workers", ["0", "-2", "two"])
def test_2_workers_below_one_is_an_argparse_error(books, tmp_path, workers):
    done = hearth_cmd("run", books["clean"], str(tmp_path / "o"), "--run-date", D,
                      "--workers", workers)
    assert done.returncode == 2
    assert "argument --workers:" in done.stderr and "usage:" in done.stderr
    assert not (tmp_path / "o").exists()


def test_2_generate_zero_households_says_so(tmp_path):
    done = hearth_cmd("generate", str(tmp_path / "b"), "--households", "0")
    assert done.returncode == 2
    assert "argument --households: must be at least 1 (got 0)" in done.stderr
    assert not (tmp_path / "b").exists()


def test_2_missing_input_and_bad_date(tmp_path):
    done = hearth_cmd("run", str(tmp_path / "nope"), str(tmp_path / "o"), "--run-date", D)
    assert done.returncode == 2, done.stderr
    assert "nope" in messages(done.stderr)[-1]
    done = hearth_cmd("run", str(tmp_path), str(tmp_path / "o"), "--run-date", "2026-13-45")
    assert done.returncode == 2 and "is not a date" in done.stderr


# -- 3: committed over the limit; validate found problems ------------------------------

def test_3_failure_rate_above_the_limit_commits_and_says_so(books, tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text("failure_rate_limit = 0.0\n")
    out = tmp_path / "out"
    done = hearth_cmd("run", books["bad"], str(out), "--run-date", D, "--workers", "1",
                      "--config", str(cfg))
    assert done.returncode == 3, done.stderr
    assert (out / "_runs" / D / "manifest.json").exists()
    assert any("failure rate above" in m for m in messages(done.stderr))


def test_validate_exits_0_on_a_clean_book_and_3_on_problems(books):
    clean = hearth_cmd("validate", books["clean"], "--run-date", D)
    assert clean.returncode == 0, clean.stderr
    assert clean.stdout == ""
    bad = hearth_cmd("validate", books["bad"], "--run-date", D)
    assert bad.returncode == 3, bad.stderr
    codes = [json.loads(line)["code"] for line in bad.stdout.splitlines()]
    assert "negative_quantity" in codes
    assert any("1 of 40 households would be set aside" in m for m in messages(bad.stderr))


# -- 4: the lock ----------------------------------------------------------------------

def test_4_a_held_lock_stops_the_run_touching_nothing(books, tmp_path):
    out = tmp_path / "out"
    path = lock_path(str(out), D)
    os.makedirs(os.path.dirname(path))
    holder = {"pid": os.getpid(), "host": socket.gethostname(),  # this test: alive, here
              "started": datetime.now(UTC).isoformat(timespec="seconds")}
    with open(path, "w") as f:
        json.dump(holder, f)
    before = sorted(str(p) for p in out.rglob("*"))
    done = hearth_cmd("run", books["clean"], str(out), "--run-date", D, "--workers", "1")
    assert done.returncode == 4, done.stderr
    assert f"pid {os.getpid()}" in messages(done.stderr)[-1]
    assert sorted(str(p) for p in out.rglob("*")) == before
    with open(path) as f:
        assert json.load(f) == holder


# -- 5: transient ---------------------------------------------------------------------

@pytest.mark.ray
def test_5_an_unreachable_ray_address_fails_within_the_connect_timeout_before_preparing(
        books, tmp_path):
    out = tmp_path / "out"
    t0 = time.monotonic()
    done = hearth_cmd("run", books["clean"], str(out), "--run-date", D, "--executor", "ray",
                      "--address", "127.0.0.1:1", "--connect-timeout", "3", timeout=120)
    took = time.monotonic() - t0
    assert done.returncode == 5, done.stderr
    msg = messages(done.stderr)[-1]
    assert "the Ray cluster at 127.0.0.1:1 is unreachable" in msg
    assert "resume with `hearth run" in msg
    assert not out.exists()  # connected first: no lock, no staging, no preparation
    assert took >= 3.0  # it did retry for the whole timeout (a lower bound, not a speed)


def test_the_connect_timeout_must_be_positive(books, tmp_path):
    done = hearth_cmd("run", books["clean"], str(tmp_path / "o"), "--run-date", D,
                      "--executor", "ray", "--address", "127.0.0.1:1", "--connect-timeout", "0")
    assert done.returncode == 2 and "argument --connect-timeout" in done.stderr


# -- 1: a bug -------------------------------------------------------------------------

BUG = """
import sys
import hearth.batch.generate as g
def generate(*args, **kwargs):
    return {}["a key that is not there"]  # a bug
g.generate = generate
from hearth.batch.cli import main
sys.exit(main(["generate", sys.argv[1], "--households", "3"]))
"""


def test_1_a_bug_is_one_line_naming_it_and_the_traceback_off_a_terminal(tmp_path):
    """A bug cannot be produced on purpose through the real code paths, so this command
    runs hearth's own ``main`` with a generate that raises KeyError."""
    done = subprocess.run([sys.executable, "-c", BUG, str(tmp_path / "b")], capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert done.returncode == 1, done.stderr
    [line] = done.stderr.splitlines()  # one JSON line, the traceback inside it
    event = json.loads(line)
    assert event["level"] == "error" and event["exit_code"] == 1
    assert event["message"].startswith("a bug: KeyError:") and "report it" in event["message"]
    assert "Traceback" in event["exception"]


# -- the same outcomes from Python: hearth.run_book and its typed errors ----------------

def test_run_book_from_python_commits_and_resumes_nothing_twice(books, tmp_path):
    out = str(tmp_path / "out")
    summary = hearth.run_book(books["clean"], out, D, config={"shard_size": 10}, workers=1)
    assert summary.exit_code == 0 and summary.households == 40
    assert os.path.exists(summary.manifest)
    again = hearth.run_book(books["clean"], out, D, config={"shard_size": 10}, workers=1)
    assert again.run_id == summary.run_id and again.trades == summary.trades


def test_run_book_over_the_failure_limit_returns_3(books, tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text("failure_rate_limit = 0.0\n")
    summary = hearth.run_book(books["bad"], str(tmp_path / "out"), D, config=cfg, workers=1)
    assert summary.exit_code == 3 and summary.statuses.get("error", 0) == 1


@pytest.mark.parametrize("kwargs,says", [
    ({"workers": 0}, "workers must be at least 1"),
    ({"executor": "dask"}, "executor must be 'local' or 'ray'"),
    ({"config": {"drift_treshold": 0.05}}, "drift_treshold"),
    ({"run_date": "2026-13-45"}, "is not a date"),
])
def test_run_book_bad_arguments_are_input_errors(books, tmp_path, kwargs, says):
    args = {"input": books["clean"], "output": str(tmp_path / "out"), "run_date": D, **kwargs}
    with pytest.raises(hearth.InputError, match=says) as e:
        hearth.run_book(**args)
    assert e.value.exit_code == 2 and not e.value.retryable
    assert not (tmp_path / "out").exists()


def test_run_book_output_that_is_a_file_is_an_input_error(books, tmp_path):
    out = tmp_path / "out"
    out.write_text("x")
    with pytest.raises(hearth.InputError, match="is a file"):
        hearth.run_book(books["clean"], str(out), D, workers=1)


def test_run_book_held_lock_is_run_locked(books, tmp_path):
    out = tmp_path / "out"
    path = lock_path(str(out), D)
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started": "now"}, f)
    with pytest.raises(hearth.RunLocked) as e:
        hearth.run_book(books["clean"], str(out), D, workers=1)
    assert e.value.exit_code == 4


@pytest.mark.ray
def test_run_book_unreachable_ray_is_a_retryable_execution_error(books, tmp_path):
    with pytest.raises(hearth.ExecutionError, match="unreachable") as e:
        hearth.run_book(books["clean"], str(tmp_path / "out"), D, executor="ray",
                        address="127.0.0.1:1", connect_timeout=2.0)
    assert e.value.retryable and e.value.exit_code == 5
    assert not (tmp_path / "out").exists()


@pytest.mark.ray
def test_5_an_address_that_accepts_but_is_no_ray_cluster_fails_within_the_timeout(books, tmp_path):
    """A port that accepts connections and never answers (not a Ray head) is bounded by
    the same connect timeout: Ray alone would retry it for minutes."""
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        out = tmp_path / "out"
        done = hearth_cmd("run", books["clean"], str(out), "--run-date", D, "--executor", "ray",
                          "--address", f"127.0.0.1:{port}", "--connect-timeout", "4", timeout=120)
    finally:
        stop.set()
        t.join(5)
        server.close()
        for c in accepted:
            c.close()
    assert done.returncode == 5, done.stderr
    assert any(f"the Ray cluster at 127.0.0.1:{port} did not answer within 4s" in m
               for m in messages(done.stderr))
    assert not out.exists()
