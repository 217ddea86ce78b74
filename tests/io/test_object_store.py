"""Outputs on an object store, against a real S3-compatible server: moto in server
mode, in a subprocess on 127.0.0.1, reached through the standard AWS environment
(``AWS_ENDPOINT_URL`` and friends), as a scheduler would set it.

A night run into ``s3://bucket/out`` reads back through its manifest (with pyarrow's
own S3 filesystem, not hearth's) as exactly the rows of the same night run into a
local folder; a re-run replaces the night and deletes the old objects; a second
night leaves the first readable and starts warm from it; a commit killed after an
upload or after the manifest is completed by the next run, one killed and followed
by another configuration is rolled back; the lock object refuses a second run and
is taken over from a dead holder; ``hearth run`` rejects an unusable URI with exit
code 2 before the book is read."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from hearth.batch.cli import check_output
from hearth.batch.config import RunConfig
from hearth.batch.generate import DEFAULT_AS_OF, generate
from hearth.batch.run import run_book
from hearth.cluster.local import LocalExecutor
from hearth.errors import InputError, RunLocked
from hearth.io import fs
from hearth.io.lock import RunLock, lock_path
from hearth.io.write import (
    FAULT_ENV,
    TABLES,
    committed_files,
    journal_path,
    read_manifest,
    verify,
)

try:  # moto's server mode needs its [server] extra (flask, werkzeug)
    import boto3
    import moto.server  # noqa: F401
except ImportError as e:  # pragma: no cover - the dev extras install it
    pytest.skip(f"moto[server] is not installed ({e}); pip install 'moto[server]' "
                "(it is in hearth's dev extras) to run the object-store tests",
                allow_module_level=True)

N = 60
CONFIG = RunConfig(shard_size=16)  # several shards: the commit merges them
OTHER = RunConfig(shard_size=16, drift_threshold=0.05)  # another night for the same date
NIGHT0, D = "2026-11-19", DEFAULT_AS_OF
KILLED = -signal.SIGKILL


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """moto's S3 server and the environment pointing at it (for this process and
    the ``hearth`` subprocesses the kill test starts)."""
    port = _free_port()
    log = open(tmp_path_factory.mktemp("moto") / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto's server did not start on {url} (see {log.name})")
            time.sleep(0.1)
    mp = pytest.MonkeyPatch()
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION"):
        mp.delenv(key, raising=False)
    mp.setenv("AWS_ACCESS_KEY_ID", "testing")
    mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    mp.setenv("AWS_REGION", "us-east-1")
    mp.setenv("AWS_ENDPOINT_URL", url)
    mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
    mp.setenv(fs.STAGING_ENV, str(tmp_path_factory.mktemp("staging")))
    yield url
    mp.undo()
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


@pytest.fixture
def bucket(server, request):
    """A fresh bucket per test; its name from the test's."""
    name = request.node.name.replace("_", "-")[5:40].strip("-").lower()
    boto3.client("s3", endpoint_url=server).create_bucket(Bucket=name)
    return name


def _keys(server: str, bucket: str, prefix: str = "", reports: bool = False) -> list[str]:
    """Every object in the bucket (zero-byte folder markers left out, and each
    night's report.html, written after the commit, unless ``reports``)."""
    s3 = boto3.client("s3", endpoint_url=server)
    out: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out += [o["Key"] for o in page.get("Contents", [])
                if not o["Key"].endswith("/")
                and (reports or not o["Key"].endswith("/report.html"))]
    return sorted(out)


def _read(paths: list[str], table: str, filesystem: pafs.FileSystem | None = None) -> list[tuple]:
    """The rows of a table's files, in the manifest's order (``solve_ms`` dropped:
    it is the one column that is not a function of the inputs)."""
    rows: list[tuple] = []
    for p in paths:
        t = pq.read_table(p.removeprefix("s3://"), filesystem=filesystem)
        if table == "household_results":
            t = t.drop_columns(["solve_ms"])
        rows += [tuple(r.values()) for r in t.to_pylist()]
    return rows


def _view(out: str, run_date: str, server: str | None = None) -> dict[str, list[tuple]] | None:
    """What a reader sees through the manifest. For an S3 URI, read with pyarrow's
    own S3 filesystem pointed at the server, independently of hearth.io.fs."""
    try:
        files = committed_files(out, run_date)
    except FileNotFoundError:
        return None
    s3 = pafs.S3FileSystem(endpoint_override=server, region="us-east-1") if server else None
    return {t: _read(f, t, s3) for t, f in files.items()}


def _run(book: str, out: str, config: RunConfig = CONFIG, run_date: str = D):
    return run_book(book, out, run_date, config, LocalExecutor(workers=1), progress=False)


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("book"))
    generate(root, N, seed=3, bad_fraction=0.05, profile="small")
    return root


@pytest.fixture(scope="module")
def local(book, tmp_path_factory):
    """The same nights into local folders: D alone, and NIGHT0 then D (warm)."""
    cold = str(tmp_path_factory.mktemp("local-cold"))
    _run(book, cold)
    warm = str(tmp_path_factory.mktemp("local-warm"))
    _run(book, warm, run_date=NIGHT0)
    _run(book, warm)
    return {"cold": _view(cold, D), "night0": _view(warm, NIGHT0), "warm": _view(warm, D),
            "files": committed_files(cold, D)}


def _at_rest(server: str, bucket: str, out: str, days: tuple[str, ...] = (D,)) -> None:
    """What a finished run leaves in the store and in its local staging: the
    partitions hold exactly the manifests' files, whose rows add up to the counts;
    no journal, no lock object, no staging of the date, no probe objects."""
    listed: list[str] = []
    for day in days:
        manifest = read_manifest(out, day)
        counted = verify(out, manifest)
        assert counted["household_results"] == manifest["households"] == N
        assert counted["trades"] == manifest["trades"]
        listed += [f"out/{e['path']}" for es in manifest["files"].values() for e in es]
        assert not fs.exists(journal_path(out, day))
        assert not fs.exists(lock_path(out, day))
        root = fs.staging_root(out)
        assert not os.path.exists(os.path.join(root, "_staging", day))
        assert not os.path.exists(lock_path(root, day))
    runs = [f"out/_runs/{d}/manifest.json" for d in days]
    assert _keys(server, bucket) == sorted(listed + runs)


def test_a_night_on_s3_reads_back_as_the_same_night_run_locally(
        server, bucket, book, local, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an s3:// OUTPUT once made a local folder named "s3:"
    out = f"s3://{bucket}/out"
    summary = _run(book, out)
    assert summary.manifest == f"{out}/_runs/{D}/manifest.json"
    files = committed_files(out, D)
    assert set(files) == set(TABLES)
    assert all(p.startswith(f"{out}/") for ps in files.values() for p in ps)
    assert _view(out, D, server) == local["cold"]
    # the same layout as a local night, the shards' files merged into one per table
    assert [os.path.relpath(p, out).rsplit("-", 1)[0] for p in files["trades"]] == \
        [f"trades/run_date={D}/part-0001-{summary.run_id[:8]}"]
    assert all(len(ps) == 1 for ps in files.values())
    assert len(local["files"]["trades"]) >= 2  # the local night is one file per shard
    _at_rest(server, bucket, out)
    assert os.listdir(tmp_path) == []


def test_a_rerun_replaces_the_night_and_deletes_the_old_objects(server, bucket, book, local):
    out = f"s3://{bucket}/out"
    _run(book, out, OTHER)
    first = committed_files(out, D)
    assert _view(out, D, server)["trades"] != local["cold"]["trades"]
    _run(book, out)
    assert _view(out, D, server) == local["cold"]
    assert not any(fs.exists(p) for ps in first.values() for p in ps)
    assert read_manifest(out, D)["commit_seq"] == 2
    _at_rest(server, bucket, out)


def test_a_second_night_leaves_the_first_readable_and_starts_warm_from_it(
        server, bucket, book, local):
    out = f"s3://{bucket}/out"
    _run(book, out, run_date=NIGHT0)
    night0 = committed_files(out, NIGHT0)
    _run(book, out)
    assert committed_files(out, NIGHT0) == night0
    assert _view(out, NIGHT0, server) == local["night0"]
    assert _view(out, D, server) == local["warm"]
    manifest = read_manifest(out, D)
    assert manifest["warm_state_from"] is not None  # NIGHT0's state, downloaded to staging
    started = pq.read_table(committed_files(out, D)["household_results"][0].removeprefix("s3://"),
                            filesystem=pafs.S3FileSystem(endpoint_override=server,
                                                         region="us-east-1"))
    assert any(started.column("warm_started").to_pylist())
    _at_rest(server, bucket, out, days=(NIGHT0, D))


def test_the_file_size_target_cuts_the_night_into_several_files(
        server, bucket, book, local, monkeypatch):
    import hearth.io.write as write

    sizes = [os.path.getsize(p) for p in local["files"]["trades"]]  # one per shard
    target = sizes[0] + sizes[1]  # bytes: the first two shards' trades share a file
    monkeypatch.setattr(write, "STORE_FILE_BYTES", target)
    out = f"s3://{bucket}/out"
    _run(book, out)
    manifest = read_manifest(out, D)
    trades = manifest["files"]["trades"]
    assert 1 < len(trades) < len(local["files"]["trades"])
    assert _view(out, D, server) == local["cold"]
    _at_rest(server, bucket, out)


class Cli:
    """``hearth run`` as a scheduler starts it, into an S3 OUTPUT."""

    def __init__(self, book: str, out: str, root: str) -> None:
        self.book, self.out = book, out
        self.configs = {}
        for name, text in (("new", "shard_size = 16\n"),
                           ("old", "shard_size = 16\ndrift_threshold = 0.05\n")):
            self.configs[name] = os.path.join(root, f"{name}.toml")
            with open(self.configs[name], "w") as f:
                f.write(text)

    def __call__(self, fault: str | None = None, config: str = "new"
                 ) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
        if fault:
            env[FAULT_ENV] = fault
        return subprocess.run([sys.executable, "-m", "hearth.batch.cli", "run", self.book,
                               self.out, "--run-date", D, "--workers", "1", "--config",
                               self.configs[config]],
                              env=env, capture_output=True, text=True, timeout=180)


def test_killed_commits_are_completed_or_rolled_back_by_the_next_run(
        server, bucket, book, local, tmp_path):
    out = f"s3://{bucket}/out"
    run = Cli(book, out, str(tmp_path))
    assert run(config="old").returncode == 0
    previous = _view(out, D, server)
    assert previous != local["cold"]

    # killed after the first upload: the previous night is what readers see, next
    # to an object no manifest lists and the journal; the next run completes the
    # commit from staging (no shard recomputed) and deletes what is unlisted
    assert run(fault="commit:after_move:1").returncode == KILLED
    assert _view(out, D, server) == previous
    manifest = read_manifest(out, D)
    assert fs.exists(journal_path(out, D))
    listed = {e["path"] for es in manifest["files"].values() for e in es}
    stray = [k for k in _keys(server, bucket, "out/") if "run_date=" in k
             and k.removeprefix("out/") not in listed]
    assert len(stray) == 1
    again = run()
    assert again.returncode == 0, again.stderr
    assert "nothing was recomputed" in again.stdout
    assert _view(out, D, server) == local["cold"]
    _at_rest(server, bucket, out)

    # killed right after the manifest: the new night is visible; the previous
    # night's objects are left until the next run deletes them
    assert run(config="old").returncode == 0
    old_files = committed_files(out, D)
    assert run(fault="commit:manifest").returncode == KILLED
    assert _view(out, D, server) == local["cold"]
    assert all(fs.exists(p) for ps in old_files.values() for p in ps)
    again = run()
    assert again.returncode == 0 and "nothing was recomputed" in again.stdout, again.stderr
    assert not any(fs.exists(p) for ps in old_files.values() for p in ps)
    _at_rest(server, bucket, out)

    # killed mid-commit, then a run of another configuration: it rolls the
    # interrupted commit back (deletes its uploads) and commits its own night
    assert run(fault="commit:after_move:2").returncode == KILLED
    other = run(config="old")
    assert other.returncode == 0, other.stderr
    assert _view(out, D, server) == previous
    _at_rest(server, bucket, out)


def test_the_lock_object_refuses_a_second_run_and_is_taken_over_from_a_dead_holder(
        server, bucket, book, tmp_path):
    out = f"s3://{bucket}/out"
    remote = lock_path(out, D)
    with RunLock(out, D):
        holder = json.loads(fs.read_bytes(remote))
        assert holder["pid"] == os.getpid() and holder["token"]
        # the same staging root: the local lock file refuses it
        with pytest.raises(RunLocked, match=f"pid {os.getpid()} on {socket.gethostname()}"):
            RunLock(out, D).acquire()
        # another staging root (another machine's): the lock object refuses it
        with pytest.raises(RunLocked, match=f"another run holds {out} for {D}: pid {os.getpid()}"):
            RunLock(out, D, staging_dir=str(tmp_path / "elsewhere")).acquire()
        # and a whole run is refused before it touches anything
        before = _keys(server, bucket)
        with pytest.raises(RunLocked):
            run_book(book, out, D, CONFIG, LocalExecutor(workers=1), progress=False)
        assert _keys(server, bucket) == before == [f"out/_runs/{D}/lock.json"]
        RunLock(out, NIGHT0).acquire().release()  # another date is free
    assert not fs.exists(remote)  # released

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    fs.write_bytes(remote, json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(),
                                       "started": "x"}).encode())
    with RunLock(out, D, staging_dir=str(tmp_path / "elsewhere")):
        assert json.loads(fs.read_bytes(remote))["pid"] == os.getpid()
    assert not fs.exists(remote)

    fs.write_bytes(remote, json.dumps({"pid": 1, "host": "elsewhere", "started": "x"}).encode())
    with pytest.raises(RunLocked, match="pid 1 on elsewhere"):
        RunLock(out, D).acquire()
    RunLock(out, D, stale_after=0.0).acquire().release()  # an old one is taken over


def test_an_unusable_uri_is_exit_code_2_before_the_book_is_read(server, bucket, tmp_path):
    check_output(f"s3://{bucket}/out")  # usable: and its probe object is gone
    assert _keys(server, bucket) == []
    fs.write_bytes(f"s3://{bucket}/a-file", b"x")
    for uri, says in ((f"s3://no-such-bucket-{bucket}/out", "does not exist"),
                      (f"s3://{bucket}/a-file", "is an object"),
                      (f"s3://{bucket}/out?region=x", "no query"),
                      ("nosuchscheme://x/out", "cannot open")):
        with pytest.raises(InputError, match=says):
            check_output(uri)
    done = subprocess.run([sys.executable, "-m", "hearth.batch.cli", "run",
                           str(tmp_path / "no-book"), f"s3://no-such-bucket-{bucket}/out",
                           "--run-date", D, "--workers", "1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "does not exist" in done.stderr


def test_a_run_whose_lock_object_was_taken_meanwhile_does_not_commit(server, bucket, book, local):
    """Two machines can both pass the check-then-write lock; the one whose lock object
    was overwritten stops before its commit point, and the next run cleans up."""
    out = f"s3://{bucket}/out"
    remote = lock_path(out, D)
    other = {"pid": 1, "host": "elsewhere", "started": "x", "token": "theirs"}

    def taken_meanwhile(tasks):
        fs.write_bytes(remote, json.dumps(other).encode())
        return tasks

    with pytest.raises(RunLocked, match="while this one ran .*pid 1 on elsewhere"):
        run_book(book, out, D, CONFIG, LocalExecutor(workers=1), progress=False,
                 shard_filter=taken_meanwhile)
    assert read_manifest(out, D) is None  # nothing committed
    assert json.loads(fs.read_bytes(remote)) == other  # and their lock left alone
    assert [k for k in _keys(server, bucket) if "run_date=" in k]  # its uploads, unlisted
    fs.remove(remote)  # that run ends
    _run(book, out)
    assert _view(out, D, server) == local["cold"]
    _at_rest(server, bucket, out)
