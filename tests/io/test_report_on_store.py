"""The run report of a night run into an object store, against the real moto S3
server of ``test_object_store.py`` (its fixtures, imported): ``_runs/D/report.html``
is in the bucket after the run (no ``report_failed`` warning), its status counts
and totals are the committed tables' (read back with pyarrow's own S3 filesystem,
not hearth's), it is compared with the previous night found by listing the store,
and its figures equal those of the same two nights run into a local folder."""

from __future__ import annotations

import importlib.util
import logging
import os

import boto3
import duckdb
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from hearth.batch.config import RunConfig
from hearth.batch.generate import DEFAULT_AS_OF, generate
from hearth.batch.report import REPORT_NAME, previous_run_date, write_report
from hearth.batch.run import run_book
from hearth.cluster.local import LocalExecutor
from hearth.io.contract import OUTPUT_SCHEMAS
from hearth.io.write import committed_files, manifest_path


def _object_store_tests():
    """``tests/io/test_object_store.py`` as a module (the tests folder is no package);
    it skips this module too when moto[server] is not installed."""
    path = os.path.join(os.path.dirname(__file__), "test_object_store.py")
    spec = importlib.util.spec_from_file_location("_hearth_test_object_store", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_store = _object_store_tests()
server = _store.server  # moto's S3 server and the AWS environment pointing at it
bucket = _store.bucket  # a fresh bucket per test


def _keys(server: str, bucket: str, prefix: str = "") -> list[str]:
    """Every object in the bucket, reports included (test_object_store's own listing
    leaves report.html out: it checks the commit's objects)."""
    s3 = boto3.client("s3", endpoint_url=server)
    out: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out += [o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/")]
    return sorted(out)

N0, N1 = 24, 30  # households of the first and the second night (a later, bigger book)
NIGHT0, D = "2026-11-19", DEFAULT_AS_OF
CONFIG = RunConfig(shard_size=16)
TIMED = ("stage.", "stage_cpu.")  # figures that are clocks: they differ between any two runs


class Events(logging.Handler):
    """The ``event`` of every record the ``hearth`` logger emits while attached."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.events: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.events.append(getattr(record, "event", ""))


@pytest.fixture
def events():
    handler = Events()
    logger = logging.getLogger("hearth")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler.events
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture(scope="module")
def books(tmp_path_factory):
    root = tmp_path_factory.mktemp("books")
    first, second = str(root / "first"), str(root / "second")
    generate(first, N0, seed=21, as_of=NIGHT0, profile="small", bad_fraction=0.1)
    generate(second, N1, seed=22, profile="small", bad_fraction=0.1)
    return {NIGHT0: first, D: second}


def _run(books, out: str, day: str):
    return run_book(books[day], out, day, CONFIG, LocalExecutor(workers=1), progress=False)


@pytest.fixture(scope="module")
def local_pages(books, tmp_path_factory):
    """The same two nights into a local folder, and their reports."""
    out = str(tmp_path_factory.mktemp("local-out"))
    pages = {}
    for day in (NIGHT0, D):
        _run(books, out, day)
        path = os.path.join(os.path.dirname(manifest_path(out, day)), REPORT_NAME)
        with open(path, encoding="utf-8") as f:
            pages[day] = f.read()
    return pages


def _metrics(html: str):
    from html.parser import HTMLParser

    class Metrics(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.values: dict[str, str] = {}

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if "data-metric" in a:
                self.values[a["data-metric"]] = a["data-value"]

    m = Metrics()
    m.feed(html)
    return m.values


def _page(server: str, bucket: str, key: str) -> str:
    """The report object as the store holds it, fetched with boto3."""
    body = boto3.client("s3", endpoint_url=server).get_object(Bucket=bucket, Key=key)["Body"]
    return body.read().decode("utf-8")


def _results(server: str, out: str, day: str) -> duckdb.DuckDBPyConnection:
    """The night's committed tables, read through its manifest with pyarrow's own S3."""
    s3 = pafs.S3FileSystem(endpoint_override=server, region="us-east-1")
    con = duckdb.connect()
    for table, files in committed_files(out, day).items():
        if table in OUTPUT_SCHEMAS:
            parts = [pq.read_table(f.removeprefix("s3://"), filesystem=s3) for f in files]
            con.register(table, pa.concat_tables(parts) if parts
                         else OUTPUT_SCHEMAS[table].empty_table())
    return con


def test_a_night_on_s3_writes_its_report_into_the_bucket(server, bucket, books, local_pages,
                                                         events, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may land in a local folder named "s3:"
    out = f"s3://{bucket}/out"
    key0, key1 = (f"out/_runs/{day}/{REPORT_NAME}" for day in (NIGHT0, D))

    _run(books, out, NIGHT0)
    assert "report_failed" not in events and "report" in events
    assert key0 in _keys(server, bucket)
    first = _page(server, bucket, key0)
    assert "No earlier committed run date in this output." in first

    del events[:]
    _run(books, out, D)
    assert "report_failed" not in events and "report" in events
    keys = _keys(server, bucket, "out/_runs/")
    assert keys == sorted([f"out/_runs/{d}/{n}" for d in (NIGHT0, D)
                           for n in ("manifest.json", REPORT_NAME)])
    html = _page(server, bucket, key1)
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    m = _metrics(html)

    # the status counts are the committed household_results, read independently
    con = _results(server, out, D)
    counts = dict(con.execute("SELECT status, count(*) FROM household_results GROUP BY 1").fetchall())
    assert {"traded", "error"} <= counts.keys()  # both there, so the check means something
    assert {k.split(".", 1)[1]: int(v) for k, v in m.items() if k.startswith("status.")} == counts
    assert int(m["households"]) == sum(counts.values()) == N1
    assert int(m["trades"]) == con.execute("SELECT count(*) FROM trades").fetchone()[0] > 0
    assert int(m["exceptions"]) == con.execute("SELECT count(*) FROM exceptions").fetchone()[0] > 0
    total = con.execute("SELECT sum(tax_savings_estimate) FROM household_results").fetchone()[0]
    assert float(m["tax_savings_estimate"]) == pytest.approx(total, abs=0.01)

    # compared with the previous night, found by listing the store's _runs/
    assert previous_run_date(out, D) == NIGHT0
    assert previous_run_date(out, NIGHT0) is None
    assert f"Compared with <b>{NIGHT0}</b>" in html
    assert int(m["prev.households"]) == N0

    # every figure but the clocks is the same night's run into a local folder
    for day, page in ((NIGHT0, first), (D, html)):
        here = {k: v for k, v in _metrics(page).items() if not k.startswith(TIMED)}
        there = {k: v for k, v in _metrics(local_pages[day]).items() if not k.startswith(TIMED)}
        assert here == there, day
    assert os.listdir(tmp_path) == []


def test_a_rerun_replaces_the_report_and_an_uncommitted_date_is_refused(server, bucket, books):
    out = f"s3://{bucket}/out"
    key = f"out/_runs/{D}/{REPORT_NAME}"
    _run(books, out, D)
    alone = _page(server, bucket, key)
    assert "No earlier committed run date in this output." in alone
    _run(books, out, NIGHT0)  # an earlier night committed after the fact
    assert write_report(out, D) == f"{out}/_runs/{D}/{REPORT_NAME}"
    again = _page(server, bucket, key)
    assert f"Compared with <b>{NIGHT0}</b>" in again and int(_metrics(again)["prev.households"]) == N0
    assert [k for k in _keys(server, bucket) if k.endswith(".tmp")] == []
    with pytest.raises(FileNotFoundError, match="has not been committed"):
        write_report(out, "2026-11-21")
    assert f"out/_runs/2026-11-21/{REPORT_NAME}" not in _keys(server, bucket)
