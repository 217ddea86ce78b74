"""The local executor: shards in this process, or in a pool of worker processes
(one per core by default) with a bounded number of shards in flight.

The pool is started when the executor is made, so the workers import numpy,
DuckDB and HiGHS while the driver is still reading and sharding the book. A worker
that dies ends the run with :class:`hearth.errors.ExecutionError` (retryable: exit
code 5); every shard finished before it stays in staging for the resume."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from hearth.batch.config import RunConfig
from hearth.batch.pipeline import ShardOutput, run_shard
from hearth.batch.run import ShardTask
from hearth.errors import ExecutionError

# A worker killed (OOM killer, SIGKILL) breaks the whole pool; the finished shards are
# in staging, so the same command picks up where this one stopped.
WORKER_DIED = "a worker process died; re-run the same command to resume"


def _run(task: ShardTask, config: RunConfig) -> ShardOutput:
    return run_shard(task.prep_root, task.shard, task.run_id, task.run_date, config,
                     task.warm_root)


def _ready() -> int:
    return os.getpid()  # importing this module in the worker is the warm-up


class LocalExecutor:
    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers if workers is not None else (os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = None
        if self.workers > 1:
            self._start()

    def _start(self) -> ProcessPoolExecutor:
        if self._pool is None:
            ctx = mp.get_context("spawn")  # no fork of a process holding DuckDB threads
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
            for _ in range(self.workers):
                self._pool.submit(_ready)
        return self._pool

    def run(self, tasks: list[ShardTask], config: RunConfig,
            on_result: Callable[[ShardOutput], None]) -> None:
        if self.workers <= 1:
            for t in tasks:
                on_result(_run(t, config))
            return
        pool = self._start()
        try:
            pending: set[Future] = set()
            queue = list(tasks)
            while queue or pending:
                while queue and len(pending) < 2 * self.workers:  # backpressure
                    pending.add(pool.submit(_run, queue.pop(0), config))  # raises once broken
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                lost: BrokenProcessPool | None = None
                for f in done:
                    try:
                        out = f.result()
                    except BrokenProcessPool as e:  # the other finished shards are still kept
                        lost = e
                        continue
                    on_result(out)
                if lost is not None:
                    raise lost
        except BrokenProcessPool as e:
            raise ExecutionError(WORKER_DIED) from e
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
