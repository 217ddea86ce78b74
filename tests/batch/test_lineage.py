"""OpenLineage events of real runs, received by a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import http.server
import json
import logging
import os
import shutil
import threading
import uuid

import duckdb
import pytest

from hearth.batch.config import RunConfig
from hearth.batch.generate import generate
from hearth.batch.lineage import JOB_NAME, SCHEMA_URL, dataset
from hearth.batch.run import run_book
from hearth.cluster.local import LocalExecutor
from hearth.errors import InputError

D = "2026-11-20"


class Collector(http.server.ThreadingHTTPServer):
    def __init__(self) -> None:
        self.events: list[dict] = []
        self.paths: list[str] = []
        self.auth: list[str | None] = []
        super().__init__(("127.0.0.1", 0), Handler)


class Handler(http.server.BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.events.append(json.loads(body))
        self.server.paths.append(self.path)
        self.server.auth.append(self.headers.get("Authorization"))
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    srv = Collector()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("lineage") / "book")
    generate(path, households=40, seed=5, profile="small")
    return path


def _url(srv: Collector) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}/api/v1/lineage"


def test_a_committed_run_sends_start_then_complete_with_the_committed_row_counts(
        server, book, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENLINEAGE_API_KEY", "k-123")
    out = str(tmp_path / "out")
    config = RunConfig(openlineage_url=_url(server), openlineage_namespace="firm-nightly")
    summary = run_book(book, out, D, config, LocalExecutor(1), progress=False)
    assert summary.exit_code in (0, 3)
    assert [e["eventType"] for e in server.events] == ["START", "COMPLETE"]
    assert set(server.paths) == {"/api/v1/lineage"} and set(server.auth) == {"Bearer k-123"}
    start, done = server.events
    want_run = str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:hearth:run:{summary.run_id}"))
    for e in (start, done):
        assert e["run"]["runId"] == want_run
        assert e["run"]["facets"]["hearth"]["run_id"] == summary.run_id
        assert e["job"] == {"namespace": "firm-nightly", "name": JOB_NAME}
        assert e["schemaURL"] == SCHEMA_URL and e["producer"].startswith("urn:hearth:")
    names = {d["name"].rsplit("/", 1)[-1] for d in start["inputs"]}
    assert {"households", "accounts", "lots", "securities", "targets",
            "model_securities"} <= names
    assert all(d["namespace"] == "file" and d["name"].startswith(os.path.abspath(book))
               for d in start["inputs"])
    counts = {}
    for table in ("trades", "household_results", "exceptions"):
        glob = os.path.join(out, table, f"run_date={D}", "*.parquet")
        counts[table] = duckdb.connect().execute(
            f"SELECT count(*) FROM read_parquet('{glob}')").fetchone()[0]
    got = {d["name"].rsplit("/", 1)[-1]:
           d["outputFacets"]["outputStatistics"]["rowCount"] for d in done["outputs"]}
    assert got == counts and counts["household_results"] == 40 and counts["trades"] > 0
    assert "outputFacets" not in json.dumps(start["outputs"])


def test_a_run_that_fails_sends_fail_with_the_message(server, book, tmp_path):
    broken = str(tmp_path / "broken")
    shutil.copytree(book, broken)
    for name in os.listdir(broken):
        if name.startswith("lots"):
            p = os.path.join(broken, name)
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
    with pytest.raises(InputError, match="lots"):
        run_book(broken, str(tmp_path / "out"), D, RunConfig(openlineage_url=_url(server)),
                 LocalExecutor(1), progress=False)
    assert [e["eventType"] for e in server.events] == ["FAIL"]
    message = server.events[0]["run"]["facets"]["errorMessage"]["message"]
    assert message.startswith("InputError:") and "lots" in message


def test_an_unreachable_endpoint_is_a_warning_and_the_night_commits(book, tmp_path, caplog):
    with socket_nobody_listens_on() as port:
        config = RunConfig(openlineage_url=f"http://127.0.0.1:{port}/api/v1/lineage")
        with caplog.at_level(logging.WARNING, logger="hearth"):
            summary = run_book(book, str(tmp_path / "out"), D, config, LocalExecutor(1),
                               progress=False)
    assert summary.households == 40 and os.path.exists(summary.manifest)
    sent = [r for r in caplog.records if getattr(r, "event", None) == "lineage_failed"]
    assert len(sent) == 2  # START and COMPLETE, each a warning


def test_a_file_target_gets_one_json_line_per_event(book, tmp_path):
    target = tmp_path / "events.jsonl"
    out = str(tmp_path / "out")
    for _ in range(2):  # the same night twice: the same run id, four lines
        run_book(book, out, D, RunConfig(openlineage_url=f"file://{target}"),
                 LocalExecutor(1), progress=False)
    lines = [json.loads(x) for x in target.read_text().splitlines()]
    assert [e["eventType"] for e in lines] == ["START", "COMPLETE"] * 2
    assert len({e["run"]["runId"] for e in lines}) == 1


def test_datasets_are_named_as_openlineage_names_them():
    assert dataset("s3://bucket/nightly/out", "trades") == {
        "namespace": "s3://bucket", "name": "nightly/out/trades"}
    assert dataset("s3://bucket", "trades") == {"namespace": "s3://bucket", "name": "trades"}
    assert dataset("/data/book", "lots") == {"namespace": "file", "name": "/data/book/lots"}
    assert dataset("file:///data/book/", "lots") == {"namespace": "file",
                                                     "name": "/data/book/lots"}


class socket_nobody_listens_on:  # noqa: N801 - used as a context manager
    """A port that was bound and closed again: connecting to it is refused."""

    def __enter__(self) -> int:
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        return self.port

    def __exit__(self, *exc: object) -> None:
        pass
