"""An optional Delta Lake sink: a committed night copied into Delta tables.

``write_delta(OUTPUT, D, TARGET)`` reads the night ``D`` of ``OUTPUT`` through its
manifest (``committed_files``: exactly what a warehouse would load, never a commit
in progress) and writes each output table into its own Delta table,
``TARGET/trades``, ``TARGET/household_results`` and ``TARGET/exceptions``, with the
``deltalake`` package (delta-rs; ``pip install 'hearth[delta]'``).

Each table is partitioned by ``run_date`` (a DATE column added to the rows: in the
Parquet outputs it is the ``run_date=D`` folder, not a column) and the write is a
predicate overwrite, ``run_date = 'D'``: one Delta commit per table that removes
whatever that table held for ``D`` and adds this night, atomically. Re-running a
night (or re-running the sink for it) replaces it; other nights stay as they are.
An empty table of a night (a night with no exceptions) leaves that date's
partition empty.

The removed files of a replaced night stay in the table's folder, as Delta keeps
them for time travel, until a ``VACUUM`` (``DeltaTable(...).vacuum()``) deletes
them: read the table through its log (any Delta reader), not by globbing its
folder. Each Delta commit carries the hearth commit it copied in its commit
metadata (``hearth.commit``, ``hearth.run_id``, ``hearth.run_date``,
``hearth.commit_seq``), so a reader can tell which hearth commit each table holds;
the three tables are three Delta commits, and a sink that failed part-way is put
right by running it again.

A column a later contract minor version adds is added to the Delta table
(``schema_mode="merge"``); older nights read it as null.

``OUTPUT`` may be an object-store URI (read through ``hearth.io.fs``). ``TARGET``
is a local folder or any URI delta-rs opens (``s3://``, ``gs://``, ``abfss://``),
configured by its environment or by ``storage_options`` (delta-rs' keys; an S3
target needs a safe commit mechanism there, e.g. ``conditional_put`` or a DynamoDB
lock, see the delta-rs documentation).
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from hearth.errors import InputError
from hearth.io import fs
from hearth.io.contract import OUTPUT_SCHEMAS
from hearth.io.write import committed_files, read_manifest

DELTA_TABLES = ("trades", "household_results", "exceptions")
PARTITION = "run_date"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _deltalake() -> Any:
    try:
        import deltalake
    except ImportError as e:
        raise InputError("a Delta Lake target needs the deltalake package: "
                         "pip install 'hearth[delta]'") from e
    return deltalake


@contextmanager
def _open(path: str) -> Iterator[pq.ParquetFile]:
    """A committed file, a local path or an object-store URI (through ``hearth.io.fs``)."""
    source = fs.open_input(path) if fs.is_remote(path) else open(path, "rb")
    try:
        yield pq.ParquetFile(source)
    finally:
        source.close()


def _schema(table: str, paths: list[str]) -> tuple[pa.Schema, int]:
    """The contract's columns, then any the files have beyond them, then run_date;
    and the files' rows (their footers)."""
    fields = list(OUTPUT_SCHEMAS[table])
    rows = 0
    for path in paths:
        with _open(path) as pf:
            rows += pf.metadata.num_rows
            names = {f.name for f in fields}
            fields += [f for f in pf.schema_arrow if f.name not in names]
    return pa.schema([*fields, pa.field(PARTITION, pa.date32())]), rows


def _batches(paths: list[str], schema: pa.Schema, day: datetime.date
             ) -> Iterator[pa.RecordBatch]:
    """The files' rows in manifest order, a batch at a time (one file open at once),
    in ``schema``."""
    for path in paths:
        with _open(path) as pf:
            for batch in pf.iter_batches():
                n = batch.num_rows
                columns = []
                for field in schema:
                    if field.name == PARTITION:
                        columns.append(pa.array([day] * n, pa.date32()))
                    elif field.name in batch.schema.names:
                        columns.append(batch.column(field.name).cast(field.type))
                    else:  # a column this file predates
                        columns.append(pa.nulls(n, field.type))
                yield pa.RecordBatch.from_arrays(columns, schema=schema)


def write_delta(output: str, run_date: str, target: str, *,
                storage_options: dict[str, str] | None = None) -> dict[str, Any]:
    """Copy the committed night ``run_date`` of ``output`` into the Delta tables
    under ``target`` (``target/<table>``), replacing that run date's partition of
    each. Returns what was written: ``{"run_date", "commit", "run_id", "tables":
    {table: {"uri", "rows", "version"}}}`` (``version``: the table's Delta version
    after the write). Raises FileNotFoundError when ``run_date`` has not been
    committed, InputError for a run date that is not an ISO date or when deltalake
    is not installed."""
    if not _DATE.match(run_date):
        raise InputError(f"run date {run_date!r}: give an ISO date, YYYY-MM-DD")
    try:
        day = datetime.date.fromisoformat(run_date)
    except ValueError as e:
        raise InputError(f"run date {run_date!r}: {e}") from e
    dl = _deltalake()
    files = committed_files(output, run_date)  # raises when the date is not committed
    manifest = read_manifest(output, run_date) or {}
    meta = {"hearth.commit": str(manifest.get("commit")), "hearth.run_id": str(manifest.get("run_id")),
            "hearth.run_date": run_date, "hearth.commit_seq": str(manifest.get("commit_seq"))}
    result: dict[str, Any] = {"run_date": run_date, "commit": manifest.get("commit"),
                              "run_id": manifest.get("run_id"), "tables": {}}
    for table in DELTA_TABLES:
        paths = files.get(table, [])
        schema, rows = _schema(table, paths)
        reader = pa.RecordBatchReader.from_batches(schema, _batches(paths, schema, day))
        uri = f"{target.rstrip('/')}/{table}" if fs.is_remote(target) else os.path.join(target, table)
        dl.write_deltalake(uri, reader, partition_by=[PARTITION], mode="overwrite",
                           predicate=f"{PARTITION} = '{run_date}'", schema_mode="merge",
                           storage_options=storage_options,
                           commit_properties=dl.CommitProperties(custom_metadata=meta))
        version = dl.DeltaTable(uri, storage_options=storage_options).version()
        result["tables"][table] = {"uri": uri, "rows": rows, "version": version}
    return result
