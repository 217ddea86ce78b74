"""Writing outputs with the commit protocol of operations.md.

Layout under ``<output>``::

    _staging/<run_date>/<run_id>/prep/...            the sharded copy of the inputs
    _staging/<run_date>/<run_id>/<table>/part-NNNNN.parquet
    _staging/<run_date>/<run_id>/_done/NNNNN.json    one completion marker per shard
    <table>/run_date=<run_date>/part-NNNNN.parquet   committed outputs
    _state/warm/run_date=<run_date>/part-NNNNN.parquet  solver bases for tomorrow
    _runs/<run_date>/manifest.json                   written last: the commit point

A shard's parts are written before its marker, and a marker is written atomically
(temp file + rename), so a crashed run resumes with the finished shards as they
are. Commit removes the previous manifest of the run date, swaps each table's
partition folder in with one rename, then writes the new manifest: a consumer that
loads a run date once its manifest says ``committed`` never sees half a run.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from hearth.io.contract import OUTPUT_SCHEMAS

WARM_SCHEMA = pa.schema([
    ("household_id", pa.string()), ("structure", pa.string()),
    ("col_status", pa.binary()), ("row_status", pa.binary()),
])
TABLES = dict(OUTPUT_SCHEMAS, warm=WARM_SCHEMA)


def _atomic_write_text(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _final_dir(output: str, table: str, run_date: str) -> str:
    if table == "warm":
        return os.path.join(output, "_state", "warm", f"run_date={run_date}")
    return os.path.join(output, table, f"run_date={run_date}")


def manifest_path(output: str, run_date: str) -> str:
    return os.path.join(output, "_runs", run_date, "manifest.json")


class RunWriter:
    def __init__(self, output: str, run_date: str, run_id: str) -> None:
        self.output = output
        self.run_date = run_date
        self.run_id = run_id
        self.staging = os.path.join(output, "_staging", run_date, run_id)
        os.makedirs(os.path.join(self.staging, "_done"), exist_ok=True)

    @property
    def prep_root(self) -> str:
        return os.path.join(self.staging, "prep")

    def prep_done(self) -> dict[str, Any] | None:
        path = os.path.join(self.staging, "prep.json")
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f)
        return None

    def mark_prep_done(self, info: dict[str, Any]) -> None:
        _atomic_write_text(os.path.join(self.staging, "prep.json"), json.dumps(info))

    @staticmethod
    def _part(shard: int) -> str:
        """A shard's file stem; shard -1 holds the whole-book validation exceptions."""
        return "validation" if shard < 0 else f"{shard:05d}"

    def _marker(self, shard: int) -> str:
        return os.path.join(self.staging, "_done", f"{self._part(shard)}.json")

    def finished(self, shard: int) -> dict[str, Any] | None:
        path = self._marker(shard)
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f)
        return None

    def write_shard(self, shard: int, tables: dict[str, pa.Table], meta: dict[str, Any]) -> None:
        for name, table in tables.items():
            if table.num_rows == 0:
                continue
            folder = os.path.join(self.staging, name)
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, f"part-{self._part(shard)}.parquet")
            pq.write_table(table.cast(TABLES[name]), path + ".tmp")
            os.replace(path + ".tmp", path)
        _atomic_write_text(self._marker(shard), json.dumps(meta))

    def commit(self, manifest: dict[str, Any]) -> str:
        """Swap every table's partition in, then write the manifest (the commit point)."""
        mpath = manifest_path(self.output, self.run_date)
        if os.path.exists(mpath):
            os.remove(mpath)  # during the swap no committed manifest claims the run date
        for name, schema in TABLES.items():
            src = os.path.join(self.staging, name)
            if not os.path.isdir(src):
                os.makedirs(src)
                pq.write_table(schema.empty_table(), os.path.join(src, "part-00000.parquet"))
            final = _final_dir(self.output, name, self.run_date)
            os.makedirs(os.path.dirname(final), exist_ok=True)
            old = final + f".old-{self.run_id}"
            if os.path.exists(final):
                os.replace(final, old)
            os.replace(src, final)
            if os.path.exists(old):
                shutil.rmtree(old)
        os.makedirs(os.path.dirname(mpath), exist_ok=True)
        _atomic_write_text(mpath, json.dumps(manifest, indent=2, sort_keys=True, default=str))
        # the run date is committed: this run's staging and any other run's for the
        # same date (a crashed attempt on other inputs) are spent
        shutil.rmtree(os.path.dirname(self.staging), ignore_errors=True)
        return mpath


def previous_warm_state(output: str, run_date: str) -> str | None:
    """The newest committed warm-state partition strictly before ``run_date``."""
    root = os.path.join(output, "_state", "warm")
    if not os.path.isdir(root):
        return None
    dates = sorted(d.split("=", 1)[1] for d in os.listdir(root)
                   if d.startswith("run_date=") and "." not in d.split("=", 1)[1])
    earlier = [d for d in dates if d < run_date]
    return os.path.join(root, f"run_date={earlier[-1]}") if earlier else None
