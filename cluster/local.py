"""The local executor: shards in this process, or in a pool of worker processes
(one per core by default) with a bounded number of shards in flight."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from hearth.batch.config import RunConfig
from hearth.batch.pipeline import ShardOutput, run_shard
from hearth.batch.run import ShardTask


def _run(task: ShardTask, config: RunConfig) -> ShardOutput:
    return run_shard(task.prep_root, task.shard, task.run_id, task.run_date, config,
                     task.warm_root)


class LocalExecutor:
    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers if workers is not None else (os.cpu_count() or 1)

    def run(self, tasks: list[ShardTask], config: RunConfig,
            on_result: Callable[[ShardOutput], None]) -> None:
        if self.workers <= 1 or len(tasks) <= 1:
            for t in tasks:
                on_result(_run(t, config))
            return
        ctx = mp.get_context("spawn")  # no fork of a process holding DuckDB threads
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx) as pool:
            pending: set[Future] = set()
            queue = list(tasks)
            while queue or pending:
                while queue and len(pending) < 2 * self.workers:  # backpressure
                    pending.add(pool.submit(_run, queue.pop(0), config))
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    on_result(f.result())
