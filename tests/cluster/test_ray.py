"""A real two-node Ray cluster on this machine runs a generated book and gives the
same rows as the local executor."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from hearth.batch.config import RunConfig
from hearth.batch.generate import DEFAULT_AS_OF, generate
from hearth.batch.run import run_book
from hearth.cluster.local import LocalExecutor
from hearth.cluster.ray_executor import RayExecutor
from hearth.io import shards

pytestmark = [pytest.mark.ray, pytest.mark.slow]
RAY = os.path.join(os.path.dirname(sys.executable), "ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    port = _free_port()
    # Hermetic: no token auth (a token file left in ~/.ray by an earlier local
    # ray.init must not split the cluster), for the nodes and for this driver.
    overrides = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    env = dict(os.environ)
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    head = [RAY, "start", "--head", f"--port={port}", "--include-dashboard=false", *common]
    worker = [RAY, "start", f"--address=127.0.0.1:{port}", *common]
    def start(cmd: list[str]) -> None:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"

    try:
        start(head)
        start(worker)
        for _ in range(60):  # the second node takes a moment to register
            status = subprocess.run([RAY, "status", f"--address=127.0.0.1:{port}"], env=env,
                                    capture_output=True, text=True, timeout=60)
            if status.stdout.count(" node_") >= 2:
                break
            time.sleep(1.0)
        assert status.stdout.count(" node_") >= 2, status.stdout
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _tables(out: str) -> dict:
    return {name: pq.read_table(os.path.join(out, name, f"run_date={DEFAULT_AS_OF}"))
            for name in ("trades", "household_results", "exceptions")}


def test_ray_cluster_gives_the_local_executors_rows(ray_cluster, tmp_path, monkeypatch):
    book = str(tmp_path / "book")
    generate(book, 600, seed=11, profile="small")
    # lots in row groups of 1,000 and ranges of a few thousand rows: the Ray tasks
    # partition the lots into the shards too (hearth.io.shards.copy_lot_piece)
    lots = pq.read_table(os.path.join(book, "lots.parquet"))
    pq.write_table(lots, os.path.join(book, "lots.parquet"), row_group_size=1000)
    monkeypatch.setattr(shards, "LOT_PIECE_MIN_ROWS", 1)
    assert lots.num_rows > 4000
    config = RunConfig(shard_size=50)
    local_out, ray_out = str(tmp_path / "local"), str(tmp_path / "ray")
    local = run_book(book, local_out, DEFAULT_AS_OF, config, LocalExecutor(workers=1),
                     progress=False)
    executor = RayExecutor(address=ray_cluster)
    remote = run_book(book, ray_out, DEFAULT_AS_OF, config, executor, progress=False)
    assert len(executor.nodes_used) == 2  # both nodes of the cluster ran shards
    assert remote.run_id == local.run_id and remote.households == 600
    a, b = _tables(local_out), _tables(ray_out)
    assert a["trades"].equals(b["trades"])
    assert a["exceptions"].equals(b["exceptions"])
    assert a["household_results"].drop_columns(["solve_ms"]).equals(
        b["household_results"].drop_columns(["solve_ms"]))
    shutil.rmtree(tmp_path / "book")
