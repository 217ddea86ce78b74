"""The same inputs and configuration give the same outputs, bit for bit, however
the night is executed (docs/operations.md, "Re-runs" and "Executors"; the row order
of docs/data-contract.md).

On a realistic generated book (default profile, a share of households with bad data
on purpose, so ``exceptions`` has rows), every column of ``trades``,
``household_results`` and ``exceptions`` is compared, floats by their bits, rows in
the order the committed files give them (the manifest's file order: the contract
promises the same rows in the same order), across:

* the local executor with 1 and with 2 workers (4 and 8 shards);
* shard sizes (``shard_size = 7`` against the default);
* warm and cold starts: night 2 of ``bench/next_night.py`` run warm from night 1's
  bases and with ``warm_start = false``;
* the Ray executor on a local instance with 2 CPUs (``@pytest.mark.ray``).

What may differ, and only that: ``solve_ms`` always; ``run_id`` where the
configuration differs (it is derived from it: shard size, warm start);
``warm_started`` and ``iterations`` between warm and cold.
"""

from __future__ import annotations

import os
import shutil
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hearth.batch.config import RunConfig
from hearth.batch.generate import DEFAULT_AS_OF, generate
from hearth.batch.run import run_book
from hearth.cluster import executor_for
from hearth.cluster.local import LocalExecutor
from hearth.io.contract import OUTPUT_SCHEMAS
from hearth.io.write import committed_files, read_manifest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
from next_night import next_night  # noqa: E402

N = 50  # realistic households: ~150,000 lots, ~45,000 trades, a few seconds a run
SEED = 7
BAD = 0.1  # a few households with bad data on purpose: exceptions to compare
D = DEFAULT_AS_OF
TABLES = ("trades", "household_results", "exceptions")
ALWAYS = {"household_results": {"solve_ms"}}  # wall-clock, never the same


def night(out: str, run_date: str = D) -> dict[str, pa.Table]:
    """A committed night as a reader loads it: the manifest's files, in its order."""
    files = committed_files(out, run_date)
    out_tables = {}
    for t in TABLES:
        names = OUTPUT_SCHEMAS[t].names
        parts = [pq.read_table(f).select(names) for f in files[t]]
        out_tables[t] = pa.concat_tables(parts).combine_chunks()
    return out_tables


def _bits(col: pa.ChunkedArray) -> list:
    """A column's values as Python objects, floats as their 64 bits (so -0.0, NaN
    payloads and the last ulp count)."""
    a = col.combine_chunks()
    if pa.types.is_float64(a.type):
        a = a.view(pa.int64())
    return a.to_pylist()


def differences(a: dict[str, pa.Table], b: dict[str, pa.Table],
                ignore: dict[str, set[str]] | None = None) -> list[str]:
    """Every column (but the ignored ones) of every table, row by row; what differs."""
    said: list[str] = []
    for t in TABLES:
        skip = ALWAYS.get(t, set()) | (ignore or {}).get(t, set())
        x, y = a[t], b[t]
        assert x.schema.names == y.schema.names == OUTPUT_SCHEMAS[t].names, t
        if x.num_rows != y.num_rows:
            said.append(f"{t}: {x.num_rows} rows vs {y.num_rows}")
            continue
        hh = x.column("household_id").to_pylist()
        for name in x.column_names:
            if name in skip:
                continue
            cx, cy = _bits(x.column(name)), _bits(y.column(name))
            bad = [i for i, (p, q) in enumerate(zip(cx, cy)) if p != q]
            if bad:
                i = bad[0]
                said.append(f"{t}.{name}: {len(bad)} of {x.num_rows} rows differ, first row {i} "
                            f"(household {hh[i]}): {x.column(name)[i].as_py()!r} vs "
                            f"{y.column(name)[i].as_py()!r}")
    return said


def run(book: str, out: str, config: RunConfig | None = None, workers: int = 1,
        run_date: str = D):
    with LocalExecutor(workers=workers) as ex:
        return run_book(book, out, run_date, config or RunConfig(), ex, progress=False)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return str(tmp_path_factory.mktemp("determinism"))


@pytest.fixture(scope="module")
def book(work):
    path = os.path.join(work, "book")
    generate(path, N, seed=SEED, bad_fraction=BAD)  # profile realistic, the default
    return path


@pytest.fixture(scope="module")
def baseline(book, work):
    """One local worker, the default configuration: what every other run must match."""
    out = os.path.join(work, "one-worker")
    summary = run(book, out)
    return out, summary, night(out)


def test_the_baseline_has_something_to_compare(baseline):
    out, summary, rows = baseline
    manifest = read_manifest(out, D)
    assert summary.households == N
    assert manifest["shards"] >= 4  # at least 4 shards per worker: more than one file
    assert rows["trades"].num_rows > 1000
    assert rows["exceptions"].num_rows > 0, "no bad data: exceptions compares nothing"
    statuses = set(rows["household_results"].column("status").to_pylist())
    assert {"traded", "no_trade"} <= statuses and statuses - {"traded", "no_trade"}, statuses


def test_rows_are_in_the_documented_order(baseline):
    """Households by household_id; within one, sells by (account_id, lot_id), then
    buys by (account_id, security_id) (docs/data-contract.md)."""
    _, _, rows = baseline
    hh = rows["household_results"].column("household_id").to_pylist()
    assert hh == sorted(hh) and len(set(hh)) == len(hh) == N
    trades = rows["trades"].to_pylist()
    keys = [(r["household_id"], r["side"] != "sell", r["account_id"],
             r["lot_id"] if r["side"] == "sell" else r["security_id"]) for r in trades]
    assert keys == sorted(keys)
    exc_hh = [h for h in rows["exceptions"].column("household_id").to_pylist() if h is not None]
    assert exc_hh, "no exception names a household"


@pytest.fixture(scope="module")
def two_workers(book, work):
    out = os.path.join(work, "two-workers")
    return out, run(book, out, workers=2)


def test_one_and_two_local_workers_give_identical_rows(two_workers, baseline):
    out, summary = two_workers
    ref_out, ref, ref_rows = baseline
    assert read_manifest(out, D)["shards"] > read_manifest(ref_out, D)["shards"]
    assert summary.run_id == ref.run_id  # the worker count is no part of the configuration
    assert differences(ref_rows, night(out)) == []


def test_a_smaller_shard_size_gives_identical_rows(book, work, baseline):
    out = os.path.join(work, "shard-7")
    summary = run(book, out, RunConfig(shard_size=7))
    ref_out, ref, ref_rows = baseline
    assert read_manifest(out, D)["shards"] >= N // 7 > read_manifest(ref_out, D)["shards"]
    assert summary.run_id != ref.run_id  # the shard size is configuration: another run id
    rows = night(out)
    assert set(rows["trades"].column("run_id").to_pylist()) == {summary.run_id}
    assert differences(ref_rows, rows, {t: {"run_id"} for t in TABLES}) == []


def test_warm_and_cold_starts_give_identical_rows_on_night_two(book, work, baseline):
    ref_out, _, _ = baseline
    warm_out, cold_out = os.path.join(work, "warm"), os.path.join(work, "cold")
    shutil.copytree(ref_out, warm_out)  # night 1, committed, its bases saved
    shutil.copytree(ref_out, cold_out)
    book2 = os.path.join(work, "book2")
    nn = next_night(book, ref_out, D, book2, seed=3)
    assert nn.sells + nn.buys > 0
    warm = run(book2, warm_out, RunConfig(), run_date=nn.run_date)
    cold = run(book2, cold_out, RunConfig(warm_start=False), run_date=nn.run_date)
    assert read_manifest(warm_out, nn.run_date)["warm_state_from"] is not None
    assert read_manifest(cold_out, nn.run_date)["warm_state_from"] is None
    w, c = night(warm_out, nn.run_date), night(cold_out, nn.run_date)
    started = w["household_results"].column("warm_started").to_pylist()
    assert sum(started) >= N // 2, "night 2 hardly started warm: the comparison says little"
    assert not any(c["household_results"].column("warm_started").to_pylist())
    assert w["trades"].num_rows > 0 and w["exceptions"].num_rows > 0
    assert warm.run_id != cold.run_id
    ignore = {t: {"run_id"} for t in TABLES}
    ignore["household_results"] |= {"warm_started", "iterations"}
    assert differences(w, c, ignore) == []


@pytest.mark.ray
@pytest.mark.slow
def test_the_ray_executor_gives_identical_rows_and_files(book, work, baseline, two_workers,
                                                        monkeypatch):
    # hermetic, as tests/cluster/test_ray.py: no usage stats, no token left in ~/.ray
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    out = os.path.join(work, "ray")
    with executor_for("ray", workers=2) as ex:
        summary = run_book(book, out, D, RunConfig(), ex, progress=False)
    _, ref, ref_rows = baseline
    assert summary.run_id == ref.run_id
    assert read_manifest(out, D)["executor"] == "ray"
    assert differences(ref_rows, night(out)) == []
    # the same shard plan as two local workers (4 shards per worker): the same files,
    # byte for byte, but household_results (solve_ms)
    local, _ = two_workers
    files = {o: read_manifest(o, D)["files"] for o in (out, local)}
    for t in ("trades", "exceptions", "warm"):
        assert [(os.path.basename(e["path"]).split("-", 3)[-1], e["sha256"]) for e in files[out][t]] \
            == [(os.path.basename(e["path"]).split("-", 3)[-1], e["sha256"]) for e in files[local][t]], t
