"""The commit protocol in one process: the manifest lists exactly the files on disk,
a staged file that is missing or changed makes its shard be recomputed, a manifest
whose counts disagree with its files fails the commit with a retryable error and
leaves the previous night visible, and the layout older versions left (a
``.old-`` folder, files no manifest lists) is cleaned by the next run."""

from __future__ import annotations

import glob
import json
import os
import shutil

import duckdb
import pyarrow.parquet as pq
import pytest

from hearth.batch.config import RunConfig
from hearth.batch.generate import DEFAULT_AS_OF, generate
from hearth.batch.run import run_book
from hearth.cluster.local import LocalExecutor
from hearth.errors import CommitError, ExecutionError
from hearth.io.write import (
    TABLES,
    RunWriter,
    committed_files,
    journal_path,
    manifest_path,
    previous_warm_state,
    read_manifest,
    verify,
)

N = 60
CONFIG = RunConfig(shard_size=16)
OTHER = RunConfig(shard_size=16, drift_threshold=0.05)  # a different night for the same date
D = DEFAULT_AS_OF


def _run(book, out, config=CONFIG, run_date=D, **kw):
    return run_book(book, str(out), run_date, config, LocalExecutor(workers=1), progress=False, **kw)


def _rows(files: list[str], table: str) -> list[tuple]:
    drop = " EXCLUDE (solve_ms)" if table == "household_results" else ""
    return duckdb.connect().execute(f"SELECT *{drop} FROM read_parquet(?, hive_partitioning = false)", [files]).fetchall()


def _view(out, run_date=D) -> dict[str, list[tuple]]:
    return {t: _rows(f, t) for t, f in committed_files(str(out), run_date).items()}


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("book"))
    generate(root, N, seed=3, bad_fraction=0.05, profile="small")
    return root


@pytest.fixture(scope="module")
def reference(book, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    summary = _run(book, out)
    return str(out), summary, _view(out)


def _at_rest(out, run_date=D):
    """What every finished run leaves: the glob sees exactly the manifest's files,
    whose rows add up to the manifest's counts; no journal, staging or temp file."""
    manifest = read_manifest(str(out), run_date)
    files = committed_files(str(out), run_date)
    for table, listed in files.items():
        root = "_state/warm" if table == "warm" else table
        on_disk = glob.glob(os.path.join(str(out), root, f"run_date={run_date}", "*"))
        assert sorted(on_disk) == sorted(listed), table
        assert sorted(glob.glob(os.path.join(str(out), root, f"run_date={run_date}*"))) == [
            os.path.join(str(out), root, f"run_date={run_date}")]
    counted = verify(str(out), manifest)
    assert counted["trades"] == manifest["trades"] == len(_rows(files["trades"], "trades"))
    assert counted["household_results"] == manifest["households"]
    assert not os.path.exists(journal_path(str(out), run_date))
    assert not os.path.exists(os.path.join(str(out), "_staging", run_date))
    assert not [p for p in glob.glob(os.path.join(str(out), "**"), recursive=True)
                if p.endswith(".tmp")]


def test_manifest_lists_every_file_and_its_rows(reference):
    out, summary, view = reference
    manifest = read_manifest(out, D)
    assert manifest["status"] == "committed" and manifest["commit"].endswith(summary.run_id[:8])
    assert set(manifest["files"]) == set(TABLES)
    assert manifest["rows"]["household_results"] == N == len(view["household_results"])
    assert manifest["exceptions"] == len(view["exceptions"]) > 0  # the bad-on-purpose households
    assert len(view["trades"]) == summary.trades > 0
    _at_rest(out)
    # the Hive glob and a directory read give the same rows as the manifest, in order
    hive = pq.read_table(os.path.join(out, "trades", f"run_date={D}"))
    assert [tuple(r.values()) for r in hive.to_pylist()] == view["trades"]


def test_a_rerun_replaces_the_night_and_deletes_the_previous_files(book, reference, tmp_path):
    _run(book, tmp_path, OTHER)
    first = committed_files(str(tmp_path), D)
    other = _view(tmp_path)
    assert other["trades"] != reference[2]["trades"]
    _run(book, tmp_path)
    assert _view(tmp_path) == reference[2]
    assert not any(os.path.exists(p) for ps in first.values() for p in ps)
    assert read_manifest(str(tmp_path), D)["commit_seq"] == 2
    _at_rest(tmp_path)


def test_a_missing_or_changed_staged_file_makes_its_shard_recompute(book, reference, tmp_path):
    def half(tasks):
        return tasks[: len(tasks) // 2]

    with pytest.raises(ExecutionError, match="did not finish"):
        _run(book, tmp_path, shard_filter=half)
    run_id = reference[1].run_id
    writer = RunWriter(str(tmp_path), D, run_id)
    staged = [s for s in range(64) if writer.finished(s) is not None]
    assert len(staged) >= 2  # half of the shards ran
    first, second = staged[:2]
    stage = os.path.join(str(tmp_path), "_staging", D, run_id)
    # one shard: its trades file replaced by a valid Parquet file with one row fewer
    trades0 = next(os.path.join(stage, "trades", f"part-{s:05d}.parquet") for s in staged
                   if pq.read_metadata(os.path.join(stage, "trades", f"part-{s:05d}.parquet")).num_rows)
    t = pq.read_table(trades0)
    pq.write_table(t.slice(0, t.num_rows - 1), trades0)
    # another: its results file gone
    other = next(s for s in (first, second) if f"part-{s:05d}" not in trades0)
    os.remove(os.path.join(stage, "household_results", f"part-{other:05d}.parquet"))
    fresh = RunWriter(str(tmp_path), D, run_id)
    broken = int(os.path.basename(trades0)[5:10])
    assert fresh.finished(broken) is None and fresh.finished(other) is None

    summary = _run(book, tmp_path)
    assert summary.resumed_shards == 0  # both recomputed
    assert _view(tmp_path) == reference[2]
    _at_rest(tmp_path)


def test_an_intact_staged_shard_is_reused(book, reference, tmp_path):
    with pytest.raises(ExecutionError):
        _run(book, tmp_path, shard_filter=lambda tasks: tasks[:3])
    summary = _run(book, tmp_path)
    assert summary.resumed_shards == 3
    assert _view(tmp_path) == reference[2]


def test_counts_that_do_not_match_the_files_fail_the_commit_and_keep_the_night(book, reference,
                                                                              tmp_path):
    out = str(tmp_path)
    _run(book, out, OTHER)
    before = _view(out)
    before_manifest = read_manifest(out, D)
    # stage the reference night's rows as one shard, then claim one trade too many
    writer = RunWriter(out, D, "f" * 16)
    files = committed_files(reference[0], D)
    tables = {t: pq.read_table(files[t], partitioning=None) for t in ("trades", "household_results", "exceptions")}
    meta = {"trades": tables["trades"].num_rows, "exceptions": tables["exceptions"].num_rows}
    writer.write_shard(0, tables, meta)
    manifest = {"run_id": "f" * 16, "run_date": D, "households": N,
                "trades": tables["trades"].num_rows + 1,
                "exceptions": tables["exceptions"].num_rows, "status": "committed"}
    with pytest.raises(CommitError, match="trades: .* rows in the files") as err:
        writer.commit(manifest, [0])
    assert isinstance(err.value, ExecutionError) and err.value.retryable
    assert _view(out) == before and read_manifest(out, D) == before_manifest
    assert not os.path.exists(writer.staging)  # the retry recomputes
    _at_rest(out)
    # the same files with the right counts commit
    writer = RunWriter(out, D, "f" * 16)
    writer.write_shard(0, tables, meta)
    writer.commit(dict(manifest, trades=tables["trades"].num_rows), [0])
    assert _view(out)["trades"] == reference[2]["trades"]


def test_a_missing_committed_file_is_a_mismatch(reference, tmp_path):
    out = str(tmp_path / "out")
    shutil.copytree(reference[0], out)
    manifest = read_manifest(out, D)
    os.remove(os.path.join(out, manifest["files"]["household_results"][0]["path"]))
    with pytest.raises(CommitError, match="unreadable"):
        verify(out, manifest)


def test_the_layout_of_older_versions_is_cleaned_by_the_next_run(book, reference, tmp_path):
    """Before manifests listed files: ``part-NNNNN.parquet`` per partition, and a kill
    mid-swap left ``run_date=D.old-<run_id>`` next to it (matched by readers' globs)."""
    out = str(tmp_path / "out")
    _run(book, out, OTHER)
    manifest = read_manifest(out, D)
    for table in TABLES:
        for i, entry in enumerate(manifest["files"][table]):
            src = os.path.join(out, entry["path"])
            os.replace(src, os.path.join(os.path.dirname(src), f"part-{i:05d}.parquet"))
    old = os.path.join(out, "trades", f"run_date={D}.old-0123456789abcdef")
    os.makedirs(old)
    shutil.copy(os.path.join(out, "trades", f"run_date={D}", "part-00000.parquet"), old)
    legacy = {k: v for k, v in manifest.items() if k not in ("files", "rows", "commit", "commit_seq")}
    with open(manifest_path(out, D), "w") as f:
        json.dump(legacy, f)
    assert _view(out)["trades"] != reference[2]["trades"]  # readable as it is

    _run(book, out)
    assert not os.path.exists(old)
    assert _view(out) == reference[2]
    _at_rest(out)


def test_warm_state_is_not_read_from_a_partition_with_unlisted_files(book, reference, tmp_path):
    out = str(tmp_path / "out")
    shutil.copytree(reference[0], out)
    folder = os.path.join(out, "_state", "warm", f"run_date={D}")
    assert previous_warm_state(out, "2026-11-21") == folder
    assert previous_warm_state(out, D) is None  # strictly before
    stray = os.path.join(folder, "part-9999-00000000-00000.parquet")
    shutil.copy(committed_files(out, D)["warm"][0], stray)
    assert previous_warm_state(out, "2026-11-21") is None  # a cold start, not a mix
    os.remove(stray)
    os.remove(manifest_path(out, D))
    assert previous_warm_state(out, "2026-11-21") is None  # never committed


def test_committed_files_needs_a_manifest(tmp_path):
    with pytest.raises(FileNotFoundError, match="has not been committed"):
        committed_files(str(tmp_path), D)
