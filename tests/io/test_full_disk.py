"""A full disk and an unreadable input part, with real ``hearth run`` processes.

**Full disk.** OUTPUT is on a small tmpfs (mounted here; the test needs root and
skips, saying why, where it cannot mount one). The book is read from the normal
disk; the run's staging lives under OUTPUT (``io/write.py``: a local OUTPUT stages
inside itself), so preparing, the shards' files and the commit all write to the
tmpfs. A filler file on the tmpfs, placed first, leaves just enough room for the run
to get to a chosen step and no further:

* ``prepare``: half of DuckDB's sharded copy of the book (``io/shards.py``, ``prepare``);
* ``shards``: the prepared book and about half of the finished shards' files;
* ``journal``: everything the commit writes before its journal, none of the journal;
* ``manifest``: the journal and the moves, all of the manifest (the commit point) but
  its last page.

What each part needs is measured first on the same tmpfs (tmpfs counts whole pages):
the same command killed (``HEARTH_FAULT_KILL``) after its last shard, then again once
its journal is written. ``household_results`` files vary by a few bytes from run to
run (``solve_ms``), so ``prepare`` and ``shards`` are fresh runs given room with a wide
margin, while the two commit steps start from those killed runs' states (every shard
finished; the journal written), where what the commit still writes is counted exactly:
the journal run fails at its commit's journal, the manifest run at its recovery's
manifest (the same ``_roll_forward`` as a first commit).

Expected (docs/operations.md): exit code 5 (transient I/O), the message says so and
how to resume; nothing is half committed: the output already holds another night
(the day before) and a commit of the same run date under another configuration, and
a reader through the manifest (``committed_files``) sees exactly those, their files
intact; the Hive glob sees exactly them too whenever no journal is left (when the
journal is left, what it sees beyond them is exactly the journal's files). Then the
filler is deleted and the same command completes, with the rows of an uninterrupted
run (``solve_ms`` aside), reusing what was finished, and leaves nothing behind.

**Unreadable input.** One Parquet part of ``lots/`` (a folder of parts) truncated,
or with a data page overwritten and its footer intact (root ignores ``chmod 000``,
so a part is made unreadable by its bytes): exit code 2 (or 5), the message names
the file, nothing is committed.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hearth.batch.config import RunConfig, load_config
from hearth.batch.run import run_book
from hearth.cluster.local import LocalExecutor
from hearth.io.contract import OUTPUT_SCHEMAS
from hearth.io.write import FAULT_ENV, committed_files, journal_path, read_manifest, verify

pytestmark = pytest.mark.slow

NIGHT0, D = "2026-11-19", "2026-11-20"
N = 300
PAGE = os.sysconf("SC_PAGE_SIZE")  # tmpfs counts whole pages
DISK = 32 << 20  # the tmpfs: room for the output that is there before the run, then filled
HEARTH = [sys.executable, "-m", "hearth.batch.cli"]
TIMEOUT = 300
TABLES = ("trades", "household_results", "exceptions", "warm")
KILLED = -9


def hearth(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in (FAULT_ENV, "HEARTH_DEBUG")}
    environ.update(env or {})
    return subprocess.run([*HEARTH, *args], capture_output=True, text=True, timeout=TIMEOUT,
                          env=environ)


def messages(stderr: str) -> list[str]:
    """The messages of the JSON log lines on stderr (off a terminal)."""
    out = []
    for line in stderr.splitlines():
        try:
            out.append(json.loads(line)["message"])
        except (ValueError, KeyError, TypeError):
            continue
    return out


def failure(done: subprocess.CompletedProcess) -> str:
    """The ``failed`` event's message and, for a bug, the traceback it carries."""
    for line in done.stderr.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "failed":
            return event["message"] + ("\n" + event["exception"] if "exception" in event else "")
    return done.stderr[-3000:]


def _rows(files: list[str], table: str) -> list[tuple]:
    schema = pa.schema([f for f in (OUTPUT_SCHEMAS.get(table) or pq.read_schema(files[0]))
                        if f.name != "solve_ms"])
    out: list[tuple] = []
    for f in files:
        t = pq.read_table(f).select(schema.names)
        out.extend(zip(*(c.to_pylist() for c in t.columns)))
    return out


def view(out: str, run_date: str) -> dict[str, list[tuple]] | None:
    """What a reader that goes through the manifest sees; None if nothing is committed."""
    try:
        files = committed_files(out, run_date)
    except FileNotFoundError:
        return None
    return {t: _rows(f, t) for t, f in files.items()}


def _table_root(out: str, table: str) -> str:
    return os.path.join(out, "_state", "warm") if table == "warm" else os.path.join(out, table)


def hive_glob(out: str, table: str) -> list[str]:
    """The documented glob, over every run date."""
    return sorted(glob.glob(os.path.join(_table_root(out, table), "run_date=*", "part-*.parquet")))


def where(out: str) -> tuple[str, int]:
    """How far a run got, from what it left: (step, shards finished)."""
    if os.path.exists(journal_path(out, D)):
        return "commit", -1
    runs = glob.glob(os.path.join(out, "_staging", D, "*"))
    if not runs:
        return "start-up", 0
    if not os.path.exists(os.path.join(runs[0], "prep.json")):
        return "preparing", 0
    return "shards", len(glob.glob(os.path.join(runs[0], "_done", "0*.json")))


# -- the tmpfs --------------------------------------------------------------------------

def _mount(path: str, size: int) -> None:
    os.makedirs(path, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size // 1024}k,mode=0755",
                           "tmpfs", path], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise OSError(done.stderr.strip() or f"mount exited {done.returncode}")


def _umount(path: str) -> None:
    if os.path.ismount(path):
        done = subprocess.run(["umount", path], capture_output=True, text=True, timeout=30)
        if done.returncode != 0:  # still busy: detach it, the kernel frees it when idle
            subprocess.run(["umount", "-l", path], capture_output=True, text=True, timeout=30)


def _used(path: str) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def _free(path: str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class Tmpfs:
    """A tmpfs mounted at one path (the same path every time, so every file that
    names OUTPUT has the same size) and a filler file on it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.filler = os.path.join(path, "filler")

    def __enter__(self) -> Tmpfs:
        _mount(self.path, DISK)
        return self

    def __exit__(self, *exc: object) -> None:
        _umount(self.path)

    def used(self) -> int:
        return _used(self.path)

    def leave_free(self, free: int) -> None:
        """Fill the tmpfs but ``free`` bytes (whole pages) with the filler."""
        assert free % PAGE == 0 and 0 <= free < _free(self.path), (free, _free(self.path))
        fd = os.open(self.filler, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        try:
            os.posix_fallocate(fd, 0, _free(self.path) - free)
        finally:
            os.close(fd)
        assert _free(self.path) == free

    def give_space_back(self) -> None:
        os.remove(self.filler)


@pytest.fixture(scope="module")
def mountpoint(tmp_path_factory):
    """Where the tmpfs goes; skips the module when no tmpfs can be mounted here."""
    path = str(tmp_path_factory.mktemp("fulldisk") / "disk")
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("the full-disk tests mount a tmpfs (mount -t tmpfs): they need root and "
                    "the mount command")
    try:
        _mount(path, 1 << 20)
    except OSError as e:
        pytest.skip(f"cannot mount a tmpfs at {path} ({e}): the full-disk tests need "
                    "permission to mount (root, or CAP_SYS_ADMIN in a container)")
    try:
        assert os.path.ismount(path)
    finally:
        _umount(path)
    return path


# -- the book, the nights before, the reference and the measurements -------------------

class Env:
    def __init__(self, root: str, mountpoint: str) -> None:
        self.root = root
        self.book = os.path.join(root, "book")
        done = hearth("generate", self.book, "--households", str(N), "--profile", "small")
        assert done.returncode == 0, done.stderr
        self.old_cfg = os.path.join(root, "old.toml")
        with open(self.old_cfg, "w") as f:
            f.write("drift_threshold = 0.05\n")
        # what OUTPUT holds before the run: the day before (the run's configuration),
        # then a commit of the run date under another configuration
        self.base = os.path.join(root, "base")
        for day, cfg in ((NIGHT0, RunConfig()), (D, load_config(self.old_cfg))):
            with LocalExecutor(workers=1) as ex:
                run_book(self.book, self.base, day, cfg, ex, progress=False)
        self.night0 = view(self.base, NIGHT0)
        self.previous = view(self.base, D)
        # an uninterrupted run of the command, on the normal disk
        ref = os.path.join(root, "reference")
        shutil.copytree(self.base, ref)
        with LocalExecutor(workers=1) as ex:
            self.reference = run_book(self.book, ref, D, RunConfig(), ex, progress=False)
        self.new = view(ref, D)
        assert self.previous["trades"] != self.new["trades"]  # the two states differ
        self.shards = read_manifest(ref, D)["shards"]
        self.disk = Tmpfs(mountpoint)
        self.out = os.path.join(mountpoint, "out")
        self._measure()

    def command(self) -> list[str]:
        return ["run", self.book, self.out, "--run-date", D, "--workers", "1"]

    def _measure(self) -> None:
        """On the tmpfs, the same command killed after its last shard, then again
        (it resumes) once its journal is written: the pages each part of the run
        writes, and those two states, kept on the normal disk as starting points."""
        with self.disk:
            shutil.copytree(self.base, self.out)
            before = self.disk.used()
            killed = hearth(*self.command(), env={FAULT_ENV: f"shard:{self.shards}"})
            assert killed.returncode == KILLED, killed.stderr
            assert where(self.out) == ("shards", self.shards)
            staged = self.disk.used()
            self.staged = shutil.copytree(self.out, os.path.join(self.root, "staged"))
            killed = hearth(*self.command(), env={FAULT_ENV: "commit:journal"})
            assert killed.returncode == KILLED, killed.stderr
            assert where(self.out)[0] == "commit"
            journaled = self.disk.used()
            self.journaled = shutil.copytree(self.out, os.path.join(self.root, "journaled"))
            with open(journal_path(self.out, D)) as f:
                journal = json.load(f)
            journal_pages = -(-os.path.getsize(journal_path(self.out, D)) // PAGE)
        manifest = journal["manifest"]
        assert manifest["run_id"] == self.reference.run_id
        shard_files = [e["bytes"] for es in manifest["files"].values() for e in es
                       if e["path"].rsplit("-", 1)[-1][:5].isdigit()]
        # each shard's files and its marker (a page); the rest of the staging is the
        # prepared book, the validation shard, prep.json and the lock
        self.shard_pages = sum(-(-b // PAGE) for b in shard_files) + self.shards
        self.prep_pages = (staged - before) // PAGE - self.shard_pages
        # what the commit writes before its journal: an empty file for a table
        # without rows (and the lock, taken over: a page freed, a page written)
        self.before_journal = journaled - staged - journal_pages * PAGE
        # the manifest that the commit writes is in the journal
        self.manifest_bytes = len(json.dumps(manifest, indent=2, sort_keys=True,
                                             default=str).encode())
        assert self.prep_pages > 8 and self.shard_pages > 2 * self.shards, vars(self)

    def start(self, stage: str) -> tuple[str, int]:
        """Where a stage's run starts from, and the bytes it is left: the run stops
        in the prepared book's files, among the shards' files, at the journal's first
        page or at the manifest's last. Shards' files vary by a few bytes between runs
        (``solve_ms``), so the commit steps start from a state the same command left
        when it was killed (every shard finished; the journal written) and are given
        space counted exactly."""
        if stage == "prepare":
            return self.base, PAGE * (self.prep_pages // 2)
        if stage == "shards":
            return self.base, PAGE * (self.prep_pages + self.shard_pages // 2)
        if stage == "journal":
            return self.staged, self.before_journal
        assert stage == "manifest"
        return self.journaled, PAGE * (-(-self.manifest_bytes // PAGE) - 1)


@pytest.fixture(scope="module")
def env(tmp_path_factory, mountpoint):
    return Env(str(tmp_path_factory.mktemp("fulldisk-env")), mountpoint)


def check_previous_nights_only(env: Env) -> None:
    """The reader sees the output as it was before the run, its files intact; the glob
    too, when no journal is left; beyond them only the journal's own files."""
    out = env.out
    assert view(out, NIGHT0) == env.night0, "the night before changed"
    assert view(out, D) == env.previous, "the reader sees something but the previous commit"
    for day in (NIGHT0, D):
        verify(out, read_manifest(out, day))
    listed = {t: committed_files(out, NIGHT0)[t] + committed_files(out, D)[t] for t in TABLES}
    extra: set[str] = set()
    if os.path.exists(journal_path(out, D)):  # a commit interrupted after its journal
        with open(journal_path(out, D)) as f:
            extra = {os.path.join(out, p) for p in json.load(f)["sources"]}
    for t in TABLES:
        seen = set(hive_glob(out, t))
        assert set(listed[t]) <= seen, t
        assert seen - set(listed[t]) <= extra, (t, sorted(seen - set(listed[t])))


def check_at_rest(env: Env) -> None:
    """After the run that completed: the new night, an uninterrupted run's rows, and
    nothing left over."""
    out = env.out
    assert view(out, D) == env.new
    assert view(out, NIGHT0) == env.night0
    manifest = read_manifest(out, D)
    assert manifest["run_id"] == env.reference.run_id
    rows = verify(out, manifest)
    assert rows["household_results"] == manifest["households"] == N
    for t in TABLES:
        assert hive_glob(out, t) == sorted(committed_files(out, NIGHT0)[t]
                                           + committed_files(out, D)[t]), t
    assert not os.path.exists(journal_path(out, D))
    assert not os.listdir(os.path.join(out, "_staging")), "staging left behind"
    assert not os.path.exists(os.path.join(out, "_runs", D, "lock.json"))
    assert not [p for p in glob.glob(os.path.join(out, "**"), recursive=True) if p.endswith(".tmp")]



@pytest.mark.parametrize("stage", ["prepare",
                                   "shards", "journal", "manifest"])
def test_a_full_disk_exits_5_commits_nothing_and_the_same_command_completes(env, stage):
    start, free = env.start(stage)
    with env.disk:
        shutil.copytree(start, env.out)
        env.disk.leave_free(free)
        done = hearth(*env.command())
        step, finished = where(env.out)
        said = failure(done)
        assert done.returncode == 5, f"exit {done.returncode} at {step}: {said}"
        assert "No space left on device" in said and "resume with `hearth" in said, said
        assert "a bug" not in said
        # it ran out where it was meant to
        if stage == "prepare":
            assert step in ("start-up", "preparing"), step
        elif stage == "shards":
            assert step == "shards" and finished < env.shards, (step, finished)
        elif stage == "journal":  # every shard finished, no journal
            assert (step, finished) == ("shards", env.shards)
            assert os.path.exists(journal_path(env.out, D) + ".tmp")  # begun, not finished
        else:  # the journal and the moves, no manifest
            assert step == "commit", (step, finished)
            assert os.path.exists(os.path.join(env.out, "_runs", D, "manifest.json.tmp"))
        check_previous_nights_only(env)
        assert not os.path.exists(os.path.join(env.out, "_runs", D, "lock.json"))

        env.disk.give_space_back()
        again = hearth(*env.command())
        assert again.returncode == 0, failure(again)
        if stage == "manifest":
            assert "recovered: completed the interrupted commit" in again.stdout, again.stdout
        elif stage == "journal":
            assert f"resumed: {env.shards} shard(s) reused" in again.stdout, again.stdout
        elif stage == "shards":
            assert f"resumed: {finished} shard(s) reused" in again.stdout, again.stdout
        check_at_rest(env)


# -- an unreadable input part -----------------------------------------------------------

def _truncate(path: str) -> None:
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])


def _overwrite_a_data_page(path: str) -> None:
    """Garbage over the first column chunk; the footer still reads."""
    with open(path, "rb") as f:
        data = bytearray(f.read())
    first = pq.ParquetFile(path).metadata.row_group(0).column(0)
    start = first.data_page_offset
    data[start:start + first.total_compressed_size] = b"\xff" * first.total_compressed_size
    with open(path, "wb") as f:
        f.write(bytes(data))
    pq.ParquetFile(path)  # the footer (the schema, the row groups) is intact


@pytest.fixture(scope="module")
def parts_book(env):
    """The book with ``lots`` as a folder of three Parquet parts."""
    book = os.path.join(env.root, "parts-book")
    shutil.copytree(env.book, book)
    lots = pq.read_table(os.path.join(book, "lots.parquet"))
    os.remove(os.path.join(book, "lots.parquet"))
    os.makedirs(os.path.join(book, "lots"))
    cut = [0, lots.num_rows // 3, 2 * lots.num_rows // 3, lots.num_rows]
    for i in range(3):
        pq.write_table(lots.slice(cut[i], cut[i + 1] - cut[i]),
                       os.path.join(book, "lots", f"part-{i}.parquet"))
    return book



@pytest.mark.parametrize("damage", ["truncated", "data page"])
def test_an_unreadable_input_part_stops_the_run_naming_the_file(env, parts_book, tmp_path,
                                                                damage):
    book = str(tmp_path / "book")
    shutil.copytree(parts_book, book)
    part = os.path.join(book, "lots", "part-1.parquet")
    (_truncate if damage == "truncated" else _overwrite_a_data_page)(part)
    out = str(tmp_path / "out")
    done = hearth("run", book, out, "--run-date", D, "--workers", "1")
    said = failure(done)
    assert done.returncode in (2, 5), f"exit {done.returncode}: {said}"
    assert "part-1.parquet" in said, said
    assert "a bug" not in said
    assert read_manifest(out, D) is None
    assert not os.path.exists(os.path.join(out, "_runs", D, "lock.json"))
