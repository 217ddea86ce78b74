"""OpenLineage run events: START when a run has read its book, COMPLETE once the
night is committed, FAIL when it stops on an error, so a lineage service (Marquez,
DataHub, an Airflow/Dagster integration) sees which book went into which night.

Sent only when ``openlineage_url`` is set: an ``http(s)://`` endpoint receives each
event as a JSON POST (``OPENLINEAGE_API_KEY``, when set, as a bearer token); a
``file://`` URL or a plain path gets one JSON line per event appended. Lineage is
an observer: an event that cannot be delivered is a logged warning, never the run.

Event layout (OpenLineage 2-0-2 ``RunEvent``): the run's UUID is derived from
hearth's ``run_id`` (``uuid5``), so the three events of one run share it and a
re-run of the same night with the same inputs and settings reuses it; the job is
``<openlineage_namespace>`` / ``hearth.run``; inputs are the book's tables that have rows, outputs
the three committed tables (row counts on COMPLETE), named as OpenLineage names datasets (``file`` + the
absolute path; ``s3://bucket`` + the key prefix)."""

from __future__ import annotations

import datetime as dt
import json
import os
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

import hearth
from hearth.batch.log import get as get_logger
from hearth.io.contract import INPUT_TABLES

SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/definitions/RunEvent"
PRODUCER = f"urn:hearth:{hearth.__version__}"
JOB_NAME = "hearth.run"
OUTPUT_TABLES = ("trades", "household_results", "exceptions")
TIMEOUT = 5.0  # seconds per HTTP delivery
log = get_logger("lineage")


def dataset(location: str, table: str) -> dict[str, str]:
    """An OpenLineage dataset id for ``table`` under ``location`` (a path or a URI)."""
    if "://" in location and not location.startswith("file://"):
        scheme, rest = location.split("://", 1)
        bucket, _, prefix = rest.partition("/")
        name = "/".join(p for p in (prefix.strip("/"), table) if p)
        return {"namespace": f"{scheme}://{bucket}", "name": name}
    path = location.removeprefix("file://")
    return {"namespace": "file", "name": os.path.join(os.path.abspath(path), table)}


def run_uuid(run_id: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:hearth:run:{run_id}"))


@dataclass
class Lineage:
    """The events of one run; :meth:`start` is called once its ``run_id`` is known."""

    url: str
    namespace: str
    input_root: str
    output: str
    run_date: str
    run_id: str | None = None
    inputs: list[str] = field(default_factory=list)

    def start(self, run_id: str, inputs: dict[str, Any]) -> None:
        self.run_id = run_id
        self.inputs = [t for t in INPUT_TABLES if (inputs.get(t) or {}).get("rows", 0)]
        self._emit("START", {})

    def complete(self, rows: dict[str, int]) -> None:
        self._emit("COMPLETE", {}, rows)

    def fail(self, error: BaseException) -> None:
        self._emit("FAIL", {"errorMessage": self._facet(
            "ErrorMessageRunFacet", message=f"{type(error).__name__}: {error}",
            programmingLanguage="python")})

    def _facet(self, kind: str, **values: Any) -> dict[str, Any]:
        return {"_producer": PRODUCER,
                "_schemaURL": f"https://openlineage.io/spec/facets/1-0-0/{kind}.json",
                **values}

    def event(self, kind: str, run_facets: dict[str, Any],
              rows: dict[str, int] | None = None) -> dict[str, Any]:
        # a run that failed before reading its book has no run_id: its own id, once
        run_id = self.run_id or f"unstarted:{self.output}:{self.run_date}:{uuid.uuid4()}"
        outputs = []
        for t in OUTPUT_TABLES:
            out: dict[str, Any] = dataset(self.output, t)
            if rows is not None and t in rows:
                out["outputFacets"] = {"outputStatistics": self._facet(
                    "OutputStatisticsOutputDatasetFacet", rowCount=int(rows[t]))}
            outputs.append(out)
        return {
            "eventType": kind,
            "eventTime": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            "producer": PRODUCER,
            "schemaURL": SCHEMA_URL,
            "run": {"runId": run_uuid(run_id), "facets": {
                **run_facets,
                "hearth": self._facet("HearthRunFacet", run_id=self.run_id,
                                      run_date=self.run_date,
                                      contract_version=hearth.CONTRACT_VERSION)}},
            "job": {"namespace": self.namespace, "name": JOB_NAME},
            "inputs": [dataset(self.input_root, t) for t in self.inputs],
            "outputs": outputs,
        }

    def _emit(self, kind: str, run_facets: dict[str, Any],
              rows: dict[str, int] | None = None) -> None:
        body = json.dumps(self.event(kind, run_facets, rows), sort_keys=True)
        try:
            deliver(self.url, body)
        except (OSError, urllib.error.URLError, ValueError) as e:
            log.warning("the OpenLineage %s event could not be sent to %s: %s", kind, self.url,
                        e, extra={"event": "lineage_failed", "run_id": self.run_id})


def deliver(url: str, body: str) -> None:
    if url.startswith(("http://", "https://")):
        headers = {"Content-Type": "application/json"}
        key = os.environ.get("OPENLINEAGE_API_KEY")
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(url, data=body.encode(), headers=headers,
                                         method="POST")
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            response.read()
        return
    path = url.removeprefix("file://")
    with open(path, "a", encoding="utf-8") as f:
        f.write(body + "\n")


def lineage_for(url: str, namespace: str, input_root: str, output: str,
                run_date: str) -> Lineage | None:
    return Lineage(url, namespace, input_root, output, run_date) if url else None
