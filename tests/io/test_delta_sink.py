"""The Delta Lake sink (``hearth.io.delta.write_delta``) on real nights of a
generated book, written with the real ``deltalake`` and read back independently.

Two nights go into a local Delta target, then the first night is re-run with
another configuration (another commit, other rows) and sunk again: each Delta
table then holds exactly the committed Parquet rows of both nights, the first
night once and as re-run, the second untouched.

Read back three ways where the machine allows: DuckDB's ``delta`` extension
(``delta_scan``) when it can be loaded (it is downloaded from DuckDB's extension
repository, which an offline machine cannot reach: then that reader is skipped and
says so), deltalake's own ``DeltaTable(...).to_pyarrow_table()``, and DuckDB's plain
Parquet reader over the table's current add-files taken from the Delta log (with
each file's ``run_date`` partition value from the log, as the files do not hold it).
"""

from __future__ import annotations

import datetime
import glob
import importlib.util
import math
import os

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hearth.batch.config import RunConfig
from hearth.batch.generate import DEFAULT_AS_OF, generate
from hearth.batch.run import run_book
from hearth.cluster.local import LocalExecutor
from hearth.errors import InputError
from hearth.io.delta import DELTA_TABLES, write_delta
from hearth.io.write import committed_files, read_manifest

deltalake = pytest.importorskip("deltalake", reason="pip install 'hearth[delta]' (in the dev extras)")

NIGHT0, D = "2026-11-19", DEFAULT_AS_OF
N0, N1 = 24, 30
CONFIG = RunConfig(shard_size=8)  # several shards: several committed files per table locally
OTHER = RunConfig(shard_size=8, drift_threshold=0.05)  # the re-run: other rows for NIGHT0


def _run(book: str, out: str, day: str, config: RunConfig = CONFIG):
    return run_book(book, out, day, config, LocalExecutor(workers=1), progress=False)


def _norm(value):
    """A value comparable with ``==`` and sortable (NaN equal to NaN, None first)."""
    if isinstance(value, float) and math.isnan(value):
        return ("nan",)
    if isinstance(value, list):
        return tuple(_norm(v) for v in value)
    return value


def _rows(table: pa.Table, columns: list[str]) -> list[tuple]:
    """Rows as sorted tuples of ``columns`` (readers need not keep the write order)."""
    rows = [tuple(_norm(r[c]) for c in columns) for r in table.select(columns).to_pylist()]
    return sorted(rows, key=repr)


def _parquet(out: str, day: str, table: str) -> pa.Table:
    """The night's committed rows as the outputs hold them, through the manifest."""
    parts = [pq.read_table(p) for p in committed_files(out, day)[table]]
    return pa.concat_tables(parts) if parts else None


def _expected(out: str, table: str, days: tuple[str, ...]) -> tuple[list[str], list[tuple]]:
    columns: list[str] = []
    rows: list[tuple] = []
    for day in days:
        t = _parquet(out, day, table)
        columns = t.column_names
        rows += [(*r, datetime.date.fromisoformat(day)) for r in _rows(t, columns)]
    return columns + ["run_date"], sorted(rows, key=repr)


def _delta_extension() -> duckdb.DuckDBPyConnection | str:
    """A DuckDB connection with the delta extension loaded, or why there is none."""
    con = duckdb.connect()
    try:
        con.execute("LOAD delta")  # already installed on this machine
        return con
    except duckdb.Error:
        pass
    try:
        con.execute("INSTALL delta")
        con.execute("LOAD delta")
        return con
    except duckdb.Error as e:
        return f"{type(e).__name__}: {str(e).splitlines()[0]}"


def _by_log(uri: str) -> pa.Table:
    """The table's current rows read with DuckDB's Parquet reader, file by file as
    the Delta log lists them (add actions), run_date from each file's partition value."""
    dt = deltalake.DeltaTable(uri)
    adds = pa.table(dt.get_add_actions(flatten=True))
    con = duckdb.connect()
    parts = []
    for path, day in zip(adds.column("path").to_pylist(), adds.column("partition.run_date").to_pylist()):
        full = os.path.join(uri, path)
        # the file itself holds no run_date (Delta keeps partition values in the log);
        # hive_partitioning off, so none is taken from its folder's name either
        assert "run_date" not in pq.read_schema(full).names
        parts.append(con.sql("SELECT *, ?::DATE AS run_date FROM read_parquet(?, hive_partitioning = false)",
                             params=[day, full]).to_arrow_table())
    assert sorted(os.path.join(uri, p) for p in adds.column("path").to_pylist()) == sorted(dt.file_uris())
    return pa.concat_tables(parts) if parts else None


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    """Two committed nights into one output, sunk into a Delta target after each
    commit; then NIGHT0 re-run with another configuration and sunk again."""
    root = tmp_path_factory.mktemp("delta")
    first, second, out, target = (str(root / n) for n in ("book0", "book1", "out", "lake"))
    generate(first, N0, seed=31, as_of=NIGHT0, profile="small", bad_fraction=0.1)
    generate(second, N1, seed=32, profile="small", bad_fraction=0.1)
    results = {}
    _run(first, out, NIGHT0)
    results["night0"] = write_delta(out, NIGHT0, target)
    before_rerun = {t: _parquet(out, NIGHT0, t) for t in DELTA_TABLES}
    _run(second, out, D)
    results["d"] = write_delta(out, D, target)
    _run(first, out, NIGHT0, OTHER)
    results["rerun"] = write_delta(out, NIGHT0, target)
    return {"out": out, "target": target, "results": results, "before_rerun": before_rerun}


def test_the_rerun_changed_the_first_night(nights):
    """So that replacing it means something: another commit with other rows."""
    out, before = nights["out"], nights["before_rerun"]
    assert read_manifest(out, NIGHT0)["commit_seq"] == 2
    now = _parquet(out, NIGHT0, "household_results")
    cols = [c for c in now.column_names if c != "solve_ms"]
    assert _rows(now, cols) != _rows(before["household_results"], cols)
    for table in DELTA_TABLES:
        assert _parquet(out, D, table).num_rows > 0 and _parquet(out, NIGHT0, table).num_rows > 0


def test_deltalake_reads_back_the_parquet_rows_of_both_nights_once(nights):
    out, target = nights["out"], nights["target"]
    for table in DELTA_TABLES:
        columns, expected = _expected(out, table, (NIGHT0, D))
        got = deltalake.DeltaTable(os.path.join(target, table)).to_pyarrow_table()
        assert got.column_names == columns
        assert got.schema.field("run_date").type == pa.date32()
        assert _rows(got, columns) == expected, table
        counts = dict(duckdb.sql("SELECT run_date::VARCHAR, count(*) FROM got GROUP BY 1").fetchall())
        assert counts == {NIGHT0: _parquet(out, NIGHT0, table).num_rows,
                          D: _parquet(out, D, table).num_rows}


def test_duckdb_over_the_logs_add_files_reads_the_same_rows(nights):
    out, target = nights["out"], nights["target"]
    for table in DELTA_TABLES:
        columns, expected = _expected(out, table, (NIGHT0, D))
        got = _by_log(os.path.join(target, table))
        assert _rows(got, columns) == expected, table
        # the replaced night's files stay in the folder until a VACUUM: a glob of it
        # would read NIGHT0 twice, the log lists it once
        on_disk = glob.glob(os.path.join(target, table, f"run_date={NIGHT0}", "*.parquet"))
        adds = pa.table(deltalake.DeltaTable(os.path.join(target, table)).get_add_actions(flatten=True))
        listed = adds.column("partition.run_date").to_pylist().count(datetime.date.fromisoformat(NIGHT0))
        assert len(on_disk) > listed >= 1


def test_duckdb_delta_extension_reads_the_same_rows(nights):
    con = _delta_extension()
    if isinstance(con, str):
        pytest.skip(f"DuckDB's delta extension cannot be loaded on this machine ({con}); "
                    "the deltalake and add-file readers checked the tables")
    out, target = nights["out"], nights["target"]
    for table in DELTA_TABLES:
        columns, expected = _expected(out, table, (NIGHT0, D))
        got = con.sql("SELECT * FROM delta_scan(?)", params=[os.path.join(target, table)]).to_arrow_table()
        assert _rows(got, columns) == expected, table


def test_each_delta_commit_names_the_hearth_commit_it_copied(nights):
    out, target, results = nights["out"], nights["target"], nights["results"]
    manifest = read_manifest(out, NIGHT0)
    assert results["rerun"]["commit"] == manifest["commit"] != results["night0"]["commit"]
    for table in DELTA_TABLES:
        dt = deltalake.DeltaTable(os.path.join(target, table))
        info = results["rerun"]["tables"][table]
        assert info["uri"] == os.path.join(target, table)
        assert info["version"] == dt.version() == 2  # three writes: versions 0, 1, 2
        assert info["rows"] == _parquet(out, NIGHT0, table).num_rows
        latest = dt.history(1)[0]
        assert latest["hearth.commit"] == manifest["commit"]
        assert latest["hearth.run_date"] == NIGHT0 and latest["hearth.commit_seq"] == "2"
        assert latest["operationParameters"]["predicate"].startswith(f"run_date = '{NIGHT0}'")


def test_sinking_a_night_again_changes_nothing_but_the_version(nights, tmp_path):
    out, target = nights["out"], nights["target"]
    lake = str(tmp_path / "lake")
    write_delta(out, D, lake)
    first = {t: _rows(deltalake.DeltaTable(os.path.join(lake, t)).to_pyarrow_table(),
                      _expected(out, t, (D,))[0]) for t in DELTA_TABLES}
    again = write_delta(out, D, lake)
    for t in DELTA_TABLES:
        dt = deltalake.DeltaTable(os.path.join(lake, t))
        assert again["tables"][t]["version"] == dt.version() == 1
        assert _rows(dt.to_pyarrow_table(), _expected(out, t, (D,))[0]) == first[t] == \
            _expected(out, t, (D,))[1]
    assert os.path.isdir(target)


def test_an_uncommitted_or_malformed_run_date_is_refused_and_writes_nothing(nights, tmp_path):
    out = nights["out"]
    lake = str(tmp_path / "lake")
    with pytest.raises(FileNotFoundError, match="has not been committed"):
        write_delta(out, "2026-11-21", lake)
    for bad in ("2026-11-20' OR true OR run_date = '", "2026-02-30", "20261120"):
        with pytest.raises(InputError, match="run date"):
            write_delta(out, bad, lake)
    assert not os.path.exists(lake)


# -- an object-store OUTPUT: the committed files read through hearth.io.fs ------------------

def _object_store_tests():
    path = os.path.join(os.path.dirname(__file__), "test_object_store.py")
    spec = importlib.util.spec_from_file_location("_hearth_test_object_store_delta", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except pytest.skip.Exception:  # no moto[server]: only the S3 test is skipped
        return None
    return module


_store = _object_store_tests()
if _store is not None:
    server, bucket = _store.server, _store.bucket


@pytest.mark.skipif(_store is None, reason="moto[server] is not installed")
def test_a_night_on_s3_sinks_the_same_rows(request, tmp_path):
    request.getfixturevalue("server")
    name = request.getfixturevalue("bucket")
    book = str(tmp_path / "book")
    generate(book, N1, seed=32, profile="small", bad_fraction=0.1)
    local, remote = str(tmp_path / "out"), f"s3://{name}/out"
    _run(book, local, D)
    _run(book, remote, D)
    assert all(p.startswith("s3://") for ps in committed_files(remote, D).values() for p in ps)
    lakes = {}
    for key, out in (("local", local), ("s3", remote)):
        lake = str(tmp_path / f"lake-{key}")
        write_delta(out, D, lake)
        lakes[key] = lake
    for table in DELTA_TABLES:
        columns, expected = _expected(local, table, (D,))
        drop = [c for c in columns if c != "solve_ms"]  # two runs: only solve_ms may differ
        for lake in lakes.values():
            got = deltalake.DeltaTable(os.path.join(lake, table)).to_pyarrow_table()
            want = [tuple(v for c, v in zip(columns, r) if c != "solve_ms") for r in expected]
            assert _rows(got, drop) == sorted(want, key=repr), table


def test_a_run_with_delta_target_copies_its_night_and_a_failed_copy_exits_5(tmp_path):
    from deltalake import DeltaTable

    from hearth.errors import ExecutionError

    book, out, lake = (str(tmp_path / n) for n in ("book", "out", "lake"))
    generate(book, 30, seed=33, profile="small")
    run_book(book, out, DEFAULT_AS_OF, CONFIG.model_copy(update={"delta_target": lake}),
             LocalExecutor(workers=1), progress=False)
    rows = DeltaTable(os.path.join(lake, "household_results")).to_pyarrow_table().num_rows
    assert rows == read_manifest(out, DEFAULT_AS_OF)["households"] == 30
    # a target that cannot be a folder: the night is committed, the run says retry
    blocked = str(tmp_path / "a-file")
    open(blocked, "w").close()
    with pytest.raises(ExecutionError, match="night is committed"):
        run_book(book, str(tmp_path / "out2"), DEFAULT_AS_OF,
                 CONFIG.model_copy(update={"delta_target": blocked}), LocalExecutor(workers=1),
                 progress=False)
    assert read_manifest(str(tmp_path / "out2"), DEFAULT_AS_OF) is not None
