"""Writing outputs with the commit protocol of docs/operations.md.

Layout under ``<output>`` (``D`` is the run date, ``C`` a commit id such as
``0003-5a79e930``: a sequence number per run date and the run id's first 8 digits)::

    _staging/D/<run_id>/prep/...                     the sharded copy of the inputs
    _staging/D/<run_id>/<table>/part-NNNNN.parquet   a finished shard's rows
    _staging/D/<run_id>/_done/NNNNN.json             its marker: counts + every file
                                                     (rows, bytes, sha256)
    <table>/run_date=D/part-C-NNNNN.parquet          committed data files, immutable
    _state/warm/run_date=D/part-C-NNNNN.parquet      solver bases for tomorrow
    _runs/D/commit.json                              the journal of a commit in progress
    _runs/D/manifest.json                            the commit point

The manifest is the single commit point: it lists every data file of the night
(relative paths, rows, bytes, sha256) and is written last, atomically. A commit:

1. writes the journal (run id, commit id, every staged file -> final file, and
   the manifest to be written), atomically;
2. moves each staged file to its final, unique name (the previous commit's files
   stay where they are, so the previous manifest stays valid);
3. checks the files against the manifest (footer row counts per file, and the
   trades / exceptions / household counts), raising ``CommitError`` on a mismatch;
4. writes the manifest: from here on readers see the new night;
5. deletes every file of the run date's partitions that the manifest does not
   list (the previous night), the run date's staging, and last the journal.

The next run of the run date recovers from a kill at any point: a journal whose
manifest is already written is finished (step 5); a journal of the same run id is
rolled forward (a move whose staged file is gone and whose final file exists is
done; then 3-5), so the work is never redone; any other journal is rolled back
(its files not listed by the current manifest are deleted). Readers that go
through the manifest (``committed_files``) see the previous night or the new one,
never a mix; the Hive glob ``<table>/run_date=D/part-*.parquet`` sees exactly the
manifest's files whenever no journal is left.

A shard's files are written (temp + rename, fsynced) before its marker, and a
marker is trusted only while its files exist and match it (size, sha256, footer
rows), so a resumed run recomputes any shard whose files went missing.

An object-store OUTPUT (``s3://``, ``gs://``, ``abfs://``; ``hearth.io.fs``) keeps the
same layout and protocol with two differences. ``_staging`` lives in the OUTPUT's
local staging root (``hearth.io.fs.staging_root``), not in the store; the journal,
the data files and the manifest are in the store. Step 2 uploads (copies) instead of
renaming: an upload whose object is already there with its size is skipped, a kill
part-way leaves no object. The manifest is one PUT, so it is still the single commit
point, and anything in the run date's partitions it does not list (an interrupted
commit's uploads, the previous night) is deleted after it, or by the next run. The
previous night's warm state is downloaded into the run's staging before the shards
run, because workers read it locally.

Files per partition: a commit to an object store concatenates consecutive shards'
staged files into files of up to ``STORE_FILE_BYTES`` (row groups of up to
``ROW_GROUP_ROWS`` rows), so a night is a few large objects per table rather than
one per shard. A local OUTPUT keeps one file per shard (its commit is renames only)
unless ``RunWriter(file_bytes=...)`` asks for the same.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import signal
import socket
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from hearth.errors import CommitError, RunLocked
from hearth.io import fs
from hearth.io.contract import OUTPUT_SCHEMAS
from hearth.io.fs import is_remote
from hearth.io.lock import lock_path

WARM_SCHEMA = pa.schema([
    ("household_id", pa.string()),
    ("col_keys", pa.list_(pa.string())), ("col_status", pa.binary()),
    ("row_keys", pa.list_(pa.string())), ("row_status", pa.binary()),
    # the location stage's basis on the same rows (empty: none saved)
    ("location_col_keys", pa.list_(pa.string())), ("location_col_status", pa.binary()),
    ("location_row_status", pa.binary()),
])
TABLES = dict(OUTPUT_SCHEMAS, warm=WARM_SCHEMA)
# manifest count that each table's rows must add up to
COUNTED = {"trades": "trades", "exceptions": "exceptions", "household_results": "households"}
FAULT_ENV = "HEARTH_FAULT_KILL"
# an object store charges per request and lists slowly: a night is a few large
# objects per table (readers split them by row group), not one per shard
STORE_FILE_BYTES = 128 << 20
ROW_GROUP_ROWS = 122_880  # DuckDB's own row group size: its readers parallelize by them
ROW_GROUP_BYTES = 64 << 20  # in memory: a merge holds at most about this much at once


def fault_point(step: str) -> None:
    """Test hook: ``HEARTH_FAULT_KILL=<step>`` SIGKILLs this process when it reaches
    ``<step>``, so the kill tests stop a real run at a named point of the protocol.

    Steps: ``shard:N`` (after the N-th shard's marker), ``commit:journal``,
    ``commit:after_move:N`` (after the N-th move, an upload on an object store),
    ``commit:manifest``, ``commit:cleanup`` (previous
    files deleted), ``commit:staging`` (staging deleted, journal not yet),
    ``commit:done`` (journal deleted); ``recover:*`` are the same steps when the
    next run completes an interrupted commit, ``rollback:after_delete:N`` when it
    undoes one. One environment lookup when the variable is unset."""
    if os.environ.get(FAULT_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write_text(path: str, text: str) -> None:
    if is_remote(path):
        fs.write_bytes(path, text.encode())  # one PUT: the old object or the new one
        return
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(os.path.dirname(path))


def _read_json(path: str) -> dict[str, Any] | None:
    try:
        if is_remote(path):
            return json.loads(fs.read_bytes(path))
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def _exists(path: str) -> bool:
    return fs.exists(path) if is_remote(path) else os.path.exists(path)


def _remove(path: str) -> None:
    if is_remote(path):
        fs.remove(path)
    else:
        os.remove(path)


def _files_in(folder: str) -> list[str]:
    """Names of the files in a folder (a prefix of an object store); none if absent."""
    if is_remote(folder):
        return fs.listdir(folder, files_only=True)
    if not os.path.isdir(folder):
        return []
    return [n for n in os.listdir(folder) if os.path.isfile(os.path.join(folder, n))]


def _size_and_rows(path: str) -> tuple[int, int]:
    """A Parquet file's size and footer row count."""
    if is_remote(path):
        with fs.open_input(path) as f:
            return fs.size(path), pq.read_metadata(f).num_rows
    return os.path.getsize(path), pq.read_metadata(path).num_rows


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_parquet(table: pa.Table, path: str) -> dict[str, Any]:
    """Write ``table`` to ``path`` (temp + fsync + rename); its rows, bytes, sha256.
    The temp file is the writing process's own: a retried task's second attempt may
    write the same file while the first is still ending."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        pq.write_table(table, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return {"rows": table.num_rows, "bytes": os.path.getsize(path), "sha256": _sha256(path)}


def _merge_parquet(sources: list[str], path: str, schema: pa.Schema) -> dict[str, Any]:
    """Concatenate Parquet files (in order) into one at ``path`` (temp + fsync +
    rename), in row groups of up to ROW_GROUP_ROWS rows, holding about
    ROW_GROUP_BYTES in memory at most; its rows, bytes, sha256."""
    tmp = path + ".tmp"
    rows = 0
    with open(tmp, "wb") as f:
        with pq.ParquetWriter(f, schema) as out:
            pending: list[pa.Table] = []

            def flush() -> None:
                if pending:
                    out.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP_ROWS)
                    pending.clear()

            for src in sources:
                table = pq.read_table(src).cast(schema)
                rows += table.num_rows
                pending.append(table)
                if (sum(t.num_rows for t in pending) >= ROW_GROUP_ROWS
                        or sum(t.nbytes for t in pending) >= ROW_GROUP_BYTES):
                    flush()
            flush()
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return {"rows": rows, "bytes": os.path.getsize(path), "sha256": _sha256(path)}


def _file_matches(path: str, info: dict[str, Any], *, checksum: bool) -> bool:
    try:
        if os.path.getsize(path) != info["bytes"]:
            return False
        if checksum and _sha256(path) != info["sha256"]:
            return False
        return pq.read_metadata(path).num_rows == info["rows"]
    except (OSError, pa.ArrowException):
        return False


def _final_dir(output: str, table: str, run_date: str) -> str:
    if table == "warm":
        return os.path.join(output, "_state", "warm", f"run_date={run_date}")
    return os.path.join(output, table, f"run_date={run_date}")


def manifest_path(output: str, run_date: str) -> str:
    return os.path.join(output, "_runs", run_date, "manifest.json")


def journal_path(output: str, run_date: str) -> str:
    return os.path.join(output, "_runs", run_date, "commit.json")


def read_manifest(output: str, run_date: str) -> dict[str, Any] | None:
    """The committed manifest of a run date, or None if the date was never committed."""
    return _read_json(manifest_path(output, run_date))


def _listed(output: str, manifest: dict[str, Any] | None, table: str) -> list[str] | None:
    """Absolute paths of a table's committed files; None for a manifest written
    before manifests listed their files (the partition folder is the commit then)."""
    if manifest is None:
        return []
    if "files" not in manifest:
        return None
    return [os.path.join(output, e["path"]) for e in manifest["files"].get(table, [])]


def committed_files(output: str, run_date: str) -> dict[str, list[str]]:
    """Every committed data file of a run date per table (``trades``,
    ``household_results``, ``exceptions``, ``warm``), read through the manifest:
    what a reader should load, e.g. ``duckdb.read_parquet(files["trades"])``. For an
    object-store OUTPUT they are URIs (``s3://bucket/out/trades/run_date=D/part-...``).
    Raises FileNotFoundError when the run date has no committed manifest."""
    manifest = read_manifest(output, run_date)
    if manifest is None:
        raise FileNotFoundError(f"{manifest_path(output, run_date)}: run date {run_date} "
                                "has not been committed")
    out: dict[str, list[str]] = {}
    for table in TABLES:
        listed = _listed(output, manifest, table)
        if listed is None:  # a manifest of an older hearth: its partition folder as it is
            folder = _final_dir(output, table, run_date)
            listed = sorted(os.path.join(folder, n) for n in _files_in(folder)
                            if n.startswith("part-") and n.endswith(".parquet"))
        out[table] = listed
    return out


def verify(output: str, manifest: dict[str, Any]) -> dict[str, int]:
    """Check a manifest against its files: each listed file exists with its size and
    footer row count, and the rows of trades, exceptions and household_results add
    up to the manifest's counts. Returns rows per table; raises CommitError."""
    problems: list[str] = []
    rows: dict[str, int] = {}
    for table, entries in manifest["files"].items():
        rows[table] = 0
        for e in entries:
            path = os.path.join(output, e["path"])
            try:
                size, n = _size_and_rows(path)
            except (OSError, pa.ArrowException) as err:
                problems.append(f"{e['path']}: unreadable ({err})")
                continue
            if size != e["bytes"] or n != e["rows"]:
                problems.append(f"{e['path']}: {n} rows, {size} bytes on disk, the manifest "
                                f"says {e['rows']} rows, {e['bytes']} bytes")
            rows[table] += n
    for table, key in COUNTED.items():
        if rows.get(table, 0) != manifest[key]:
            problems.append(f"{table}: {rows.get(table, 0)} rows in the files, the run "
                            f"counted {manifest[key]} {key}")
    if problems:
        raise CommitError(f"commit {manifest.get('commit')} of {manifest['run_date']} does not "
                          f"match its files: " + "; ".join(problems[:5]) + "; nothing new was "
                          "made visible, re-run the same command to recompute the run date")
    return rows


_DEFAULT = object()


def _part(shard: int) -> str:
    """A shard's file stem; shard -1 holds the whole-book validation exceptions."""
    return "validation" if shard < 0 else f"{shard:05d}"


def stage_tables(staging: str, shard: int, tables: dict[str, pa.Table]) -> dict[str, dict[str, Any]]:
    """Write one shard's output tables into the run's staging folder (each file temp +
    fsync + rename); what ``RunWriter.record_shard`` needs of them: path (relative to
    staging), rows, bytes, sha256. Empty tables write nothing. Runs in the driver or
    in the worker that computed the shard (``staging`` must then be a folder both see,
    as the prepared book already is)."""
    files: dict[str, dict[str, Any]] = {}
    for name, table in tables.items():
        if table.num_rows == 0:
            continue
        os.makedirs(os.path.join(staging, name), exist_ok=True)
        rel = os.path.join(name, f"part-{_part(shard)}.parquet")
        files[name] = dict(_write_parquet(table.cast(TABLES[name]), os.path.join(staging, rel)),
                           path=rel)
    return files


class RunWriter:
    """One run's staging, shard markers and commit for one output and run date.
    Assumes one run per output and run date at a time.

    ``staging_dir``: where an object-store OUTPUT's local staging root is made
    (``hearth.io.fs.staging_root``); a local OUTPUT stages inside itself.
    ``file_bytes``: concatenate consecutive shards' files into committed files of
    up to this many bytes (None: one file per shard); by default STORE_FILE_BYTES
    for an object store, None for a local OUTPUT."""

    def __init__(self, output: str, run_date: str, run_id: str, *,
                 staging_dir: str | None = None, file_bytes: Any = _DEFAULT) -> None:
        self.output = output
        self.run_date = run_date
        self.run_id = run_id
        self.remote = is_remote(output)
        self.root = fs.staging_root(output, staging_dir)  # the output itself when local
        self.staging = os.path.join(self.root, "_staging", run_date, run_id)
        self.journal = journal_path(output, run_date)
        self.file_bytes: int | None = (STORE_FILE_BYTES if self.remote else None) \
            if file_bytes is _DEFAULT else file_bytes
        self._trusted: dict[int, dict[str, Any]] = {}  # markers whose files were checked
        self._shards_written = 0

    @property
    def prep_root(self) -> str:
        return os.path.join(self.staging, "prep")

    def prep_done(self) -> dict[str, Any] | None:
        return _read_json(os.path.join(self.staging, "prep.json"))

    def mark_prep_done(self, info: dict[str, Any]) -> None:
        os.makedirs(self.staging, exist_ok=True)
        _atomic_write_text(os.path.join(self.staging, "prep.json"), json.dumps(info))

    def _marker(self, shard: int) -> str:
        return os.path.join(self.staging, "_done", f"{_part(shard)}.json")

    def finished(self, shard: int) -> dict[str, Any] | None:
        """The shard's marker if its files are all there and match it, else None
        (the shard is recomputed)."""
        if shard in self._trusted:
            return self._trusted[shard]
        meta = _read_json(self._marker(shard))
        if meta is None or "files" not in meta:
            return None
        for name, info in meta["files"].items():
            if not _file_matches(os.path.join(self.staging, info["path"]), info, checksum=True):
                return None
            if name in ("trades", "exceptions") and name in meta and meta[name] != info["rows"]:
                return None
        self._trusted[shard] = meta
        return meta

    def write_shard(self, shard: int, tables: dict[str, pa.Table], meta: dict[str, Any]) -> None:
        """Write the shard's tables to staging, then its marker."""
        self.record_shard(shard, dict(meta, files=stage_tables(self.staging, shard, tables)))

    def record_shard(self, shard: int, meta: dict[str, Any]) -> None:
        """The shard's marker, once its files (``meta["files"]``, written by
        ``stage_tables``, here or in a worker) are in staging: from now on the shard
        counts as finished."""
        os.makedirs(os.path.dirname(self._marker(shard)), exist_ok=True)
        _atomic_write_text(self._marker(shard), json.dumps(meta))
        self._trusted[shard] = meta
        if shard >= 0:
            self._shards_written += 1
            fault_point(f"shard:{self._shards_written}")

    # -- commit ---------------------------------------------------------------

    def commit(self, manifest: dict[str, Any], shards: Iterable[int]) -> str:
        """Make the given shards' files the run date's committed night; returns the
        manifest path. Call ``recover`` first: a journal left here is an error."""
        if _exists(self.journal):
            raise CommitError(f"{self.journal}: an interrupted commit was not recovered")
        previous = read_manifest(self.output, self.run_date)
        seq = int((previous or {}).get("commit_seq", 0)) + 1
        if self.remote:
            present = [n for t in TABLES
                       for n in _files_in(_final_dir(self.output, t, self.run_date))]
            while any(n.startswith(f"part-{seq:04d}-") for n in present):
                seq += 1  # never reuse a name that is in the store, whatever put it there
        while not self.remote and any(glob.glob(os.path.join(
                _final_dir(self.output, t, self.run_date), f"part-{seq:04d}-*")) for t in TABLES):
            seq += 1  # never reuse a name that is on disk, whatever put it there
        commit_id = f"{seq:04d}-{self.run_id[:8]}"
        staged: dict[str, list[tuple[str, dict[str, Any]]]] = {t: [] for t in TABLES}
        for shard in shards:
            meta = self.finished(shard)
            if meta is None:
                raise CommitError(f"shard {shard} of run {self.run_id} has no valid marker")
            for name, info in meta["files"].items():
                staged[name].append((_part(shard), info))
        files: dict[str, list[dict[str, Any]]] = {}
        sources: dict[str, str] = {}
        for name, schema in TABLES.items():
            if not staged[name]:  # every table gets a partition, if only an empty file
                os.makedirs(os.path.join(self.staging, name), exist_ok=True)
                rel = os.path.join(name, "part-empty.parquet")
                info = dict(_write_parquet(schema.empty_table(), os.path.join(self.staging, rel)),
                            path=rel)
                staged[name].append(("empty", info))
            final = os.path.relpath(_final_dir(self.output, name, self.run_date), self.output)
            files[name] = []
            parts = sorted(staged[name], key=lambda s: s[0])
            if self.file_bytes is not None:
                parts = self._merge(name, parts)
            for stem, info in parts:
                dst = os.path.join(final, f"part-{commit_id}-{stem}.parquet")
                files[name].append({"path": dst, "rows": info["rows"], "bytes": info["bytes"],
                                    "sha256": info["sha256"]})
                sources[dst] = os.path.relpath(os.path.join(self.staging, info["path"]),
                                               self.root)
        manifest = dict(manifest, commit=commit_id, commit_seq=seq, files=files,
                        rows={t: sum(e["rows"] for e in es) for t, es in files.items()})
        journal = {"run_id": self.run_id, "commit": commit_id, "sources": sources,
                   "manifest": manifest}
        if not self.remote:
            os.makedirs(os.path.dirname(self.journal), exist_ok=True)
        _atomic_write_text(self.journal, json.dumps(journal, indent=1, default=str))
        fault_point("commit:journal")
        journal = json.loads(json.dumps(journal, default=str))  # what a recovery would read
        try:
            self._roll_forward(journal, "commit")
        except CommitError:
            self._discard(journal)
            raise
        return manifest_path(self.output, self.run_date)

    def _merge(self, table: str, parts: list[tuple[str, dict[str, Any]]]
               ) -> list[tuple[str, dict[str, Any]]]:
        """Runs of consecutive staged files of up to ``file_bytes`` in all, each
        concatenated into one staged file (a run of one is used as it is), stems
        ``00000``, ``00001``, ... in order: the rows and their order do not change."""
        assert self.file_bytes is not None
        groups: list[list[dict[str, Any]]] = []
        total = 0
        for _, info in parts:
            if not groups or total + info["bytes"] > self.file_bytes:
                groups.append([])
                total = 0
            groups[-1].append(info)
            total += info["bytes"]
        folder = os.path.join(self.staging, "_merged", table)
        shutil.rmtree(folder, ignore_errors=True)  # an earlier attempt's: rewritten alike
        merged: list[tuple[str, dict[str, Any]]] = []
        for g, group in enumerate(groups):
            if len(group) == 1:
                merged.append((f"{g:05d}", group[0]))
                continue
            os.makedirs(folder, exist_ok=True)
            rel = os.path.join("_merged", table, f"part-{g:05d}.parquet")
            info = _merge_parquet([os.path.join(self.staging, i["path"]) for i in group],
                                  os.path.join(self.staging, rel), TABLES[table])
            merged.append((f"{g:05d}", dict(info, path=rel)))
        return merged

    def _publish(self, src_abs: str, dst_abs: str, size: int) -> bool:
        """Put one staged file at its final name; False when it is neither staged nor
        there. Local: a rename. Object store: an upload, skipped when the object is
        already there with its size (a kill during an upload leaves no object; an
        error part-way a short one, which is uploaded again)."""
        if not self.remote:
            if os.path.exists(src_abs):
                os.makedirs(os.path.dirname(dst_abs), exist_ok=True)
                os.replace(src_abs, dst_abs)
                return True
            return os.path.exists(dst_abs)
        try:
            if fs.size(dst_abs) == size:
                return True
        except FileNotFoundError:
            pass
        if not os.path.exists(src_abs):
            return False
        fs.upload(src_abs, dst_abs)
        return True

    def _roll_forward(self, journal: dict[str, Any], step: str) -> None:
        """Moves (idempotent), check, manifest, clean-up. Raises FileNotFoundError
        when a file is neither staged nor in place (roll back instead)."""
        touched: set[str] = set()
        sizes = {e["path"]: e["bytes"] for es in journal["manifest"]["files"].values() for e in es}
        for n, (dst, src) in enumerate(journal["sources"].items(), start=1):
            src_abs, dst_abs = os.path.join(self.root, src), os.path.join(self.output, dst)
            if not self._publish(src_abs, dst_abs, sizes[dst]):
                raise FileNotFoundError(f"{src} is neither staged nor committed as {dst}")
            touched.add(os.path.dirname(dst_abs))
            fault_point(f"{step}:after_move:{n}")
        for folder in touched if not self.remote else ():
            _fsync_dir(folder)
        manifest = journal["manifest"]
        verify(self.output, manifest)
        if self.remote:
            self._check_lock_object()
        _atomic_write_text(manifest_path(self.output, self.run_date),
                           json.dumps(manifest, indent=2, sort_keys=True, default=str))
        fault_point(f"{step}:manifest")
        self._finish(journal, step, every_staging=True)

    def _check_lock_object(self) -> None:
        """Before an object-store commit point: the lock object, if there is one, must
        still be this process's. The lock object is check-then-write (``hearth.io.lock``),
        so two runs on two machines can both start; this keeps the one whose lock was
        overwritten from publishing a second manifest. Its uploads stay unlisted, for
        the next run to delete."""
        holder = _read_json(lock_path(self.output, self.run_date))
        if holder is not None and (holder.get("pid"), holder.get("host")) != (
                os.getpid(), socket.gethostname()):
            raise RunLocked(
                f"another run took {self.output} for {self.run_date} while this one ran (pid "
                f"{holder.get('pid')} on {holder.get('host')} since {holder.get('started')}); "
                "nothing was committed by this run: let that one finish")

    def _finish(self, journal: dict[str, Any], step: str, *, every_staging: bool) -> None:
        """After the manifest: delete what it does not list, the staging, the journal.
        On an object store, what the manifest in the store lists (the same one, unless
        a run on another machine committed meanwhile: then its files are kept)."""
        self._remove_unlisted(read_manifest(self.output, self.run_date) if self.remote
                              else journal["manifest"])
        fault_point(f"{step}:cleanup")
        day = os.path.join(self.root, "_staging", self.run_date)
        # a committed run date spends every staging folder of that date (a crashed
        # attempt on other inputs too); finishing another run's commit spends its own
        shutil.rmtree(day if every_staging else os.path.join(day, journal["run_id"]),
                      ignore_errors=True)
        fault_point(f"{step}:staging")
        self._remove_journal()
        fault_point(f"{step}:done")

    def _remove_journal(self) -> None:
        _remove(self.journal)
        if not self.remote:
            _fsync_dir(os.path.dirname(self.journal))

    def _roll_back(self, journal: dict[str, Any]) -> None:
        """Delete the journal's final files that the current manifest does not list."""
        current = read_manifest(self.output, self.run_date)
        keep: set[str] = set()
        for table in TABLES:
            keep.update(_listed(self.output, current, table) or [])
        n = 0
        for dst in journal["sources"]:
            path = os.path.join(self.output, dst)
            if path not in keep and _exists(path):
                _remove(path)
                n += 1
                fault_point(f"rollback:after_delete:{n}")
        self._remove_journal()

    def _discard(self, journal: dict[str, Any]) -> None:
        """A commit whose files do not match: undo it and drop this run's staging,
        whose markers cannot be trusted, so the retry recomputes."""
        self._roll_back(journal)
        shutil.rmtree(self.staging, ignore_errors=True)
        try:
            os.rmdir(os.path.dirname(self.staging))  # the run date's, if no other run's is there
        except OSError:
            pass
        self._trusted.clear()

    def _remove_unlisted(self, manifest: dict[str, Any] | None) -> None:
        """Delete, in the run date's partitions, every file the manifest does not
        list, and the ``.old-*`` folders older hearth versions left mid-swap."""
        for table in TABLES:
            final = _final_dir(self.output, table, self.run_date)
            parent, base = os.path.split(final)
            if not self.remote and os.path.isdir(parent):  # no older hearth wrote to a store
                for name in os.listdir(parent):
                    if name.startswith(base + ".old-"):
                        shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
            listed = _listed(self.output, manifest, table)
            if listed is None or manifest is None:
                continue  # no manifest of this protocol: nothing is known to be stale
            keep = set(listed)
            for name in _files_in(final):
                path = os.path.join(final, name)
                if path not in keep:
                    _remove(path)

    def recover(self) -> dict[str, Any] | None:
        """Finish or undo an interrupted commit of this run date, then remove files
        no manifest lists. Returns the manifest when that completed this run's own
        commit (nothing is left to do), else None."""
        runs = os.path.dirname(self.journal)
        if not self.remote and os.path.isdir(runs):  # a store's writes leave no temp objects
            for name in os.listdir(runs):
                if name.endswith(".tmp"):
                    os.remove(os.path.join(runs, name))
        journal = _read_json(self.journal)
        completed = None
        if journal is not None:
            current = read_manifest(self.output, self.run_date)
            mine = journal["run_id"] == self.run_id
            if current is not None and current.get("commit") == journal["commit"]:
                self._finish(journal, "recover", every_staging=mine)
                completed = current if mine else None
            elif mine:
                try:
                    self._roll_forward(journal, "recover")
                    completed = journal["manifest"]
                except FileNotFoundError:
                    self._roll_back(journal)  # resume: shards whose files are gone rerun
                except CommitError:
                    self._discard(journal)
                    raise
            else:
                self._roll_back(journal)
        self._remove_unlisted(read_manifest(self.output, self.run_date))
        return completed


def previous_warm_state(output: str, run_date: str, staging_dir: str | None = None) -> str | None:
    """The newest committed warm-state partition strictly before ``run_date``.

    None (a cold start) when that date's partition holds files its manifest does not
    list, i.e. a commit of that date was interrupted and not yet recovered: the
    reader globs the folder, and warm starts change speed, never the answer.

    For an object-store OUTPUT the partition's listed files are downloaded into the
    run date's local staging (``_staging/D/_warm/``, spent with it when the date
    commits) and that folder is returned: workers read warm state locally."""
    if is_remote(output):
        return _previous_warm_state_remote(output, run_date, staging_dir)
    root = os.path.join(output, "_state", "warm")
    if not os.path.isdir(root):
        return None
    for day in _dates_before(os.listdir(root), run_date):
        manifest = read_manifest(output, day)
        if manifest is None:
            continue  # never committed
        folder = os.path.join(root, f"run_date={day}")
        listed = _listed(output, manifest, "warm")
        if listed is not None:
            present = {os.path.join(folder, n) for n in os.listdir(folder)}
            if present != set(listed) or os.path.exists(journal_path(output, day)):
                return None
        return folder
    return None


def _dates_before(names: list[str], run_date: str) -> list[str]:
    """The run dates of ``run_date=D`` folder names before ``run_date``, newest first
    (a ``.tmp`` or ``.old`` folder is no partition)."""
    dates = [n.split("=", 1)[1] for n in names if n.startswith("run_date=")]
    return sorted((d for d in dates if "." not in d and d < run_date), reverse=True)


def _previous_warm_state_remote(output: str, run_date: str, staging_dir: str | None
                                ) -> str | None:
    root = os.path.join(output, "_state", "warm")
    for day in _dates_before(fs.listdir(root), run_date):
        manifest = read_manifest(output, day)
        if manifest is None:
            continue  # never committed
        if "files" not in manifest or _exists(journal_path(output, day)):
            return None  # a commit of that date is in progress or was interrupted
        local = os.path.join(fs.staging_root(output, staging_dir), "_staging", run_date, "_warm",
                             f"run_date={day}")
        os.makedirs(local, exist_ok=True)
        wanted = {os.path.basename(e["path"]): e for e in manifest["files"].get("warm", [])}
        for name in os.listdir(local):
            if name not in wanted:
                os.remove(os.path.join(local, name))  # another night's, or a partial one
        try:
            for name, e in wanted.items():
                path = os.path.join(local, name)
                if not os.path.exists(path) or os.path.getsize(path) != e["bytes"]:
                    fs.download(os.path.join(output, e["path"]), path)
        except FileNotFoundError:
            return None  # replaced by a re-run of that date meanwhile: start cold
        return local
    return None
