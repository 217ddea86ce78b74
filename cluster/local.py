"""The local executor: shards in this process, or in a pool of worker processes
(one per core by default) with a bounded number of shards in flight.

The pool is started when the executor is made, so the workers import numpy,
DuckDB and HiGHS while the driver is still reading and sharding the book. A worker
that dies ends the run with :class:`hearth.errors.ExecutionError` (retryable: exit
code 5); every shard finished before it stays in staging for the resume.

Stopping: anything that leaves :meth:`LocalExecutor.run` other than by finishing
(``Stopped`` from SIGTERM/SIGINT, ``KeyboardInterrupt``, a dead worker) ends every
worker at once (SIGTERM, then SIGKILL after a grace period) instead of waiting for
the shards in flight; :meth:`close` does the same for a pool that is still warming
up. The workers are started with SIGINT blocked, so a Ctrl-C that reaches the
whole process group stops only the driver, which then ends them: no worker prints a
``KeyboardInterrupt`` traceback, and no worker outlives the run. A driver killed
outright (SIGKILL, the OOM killer) cannot end anything: each worker watches its
parent and exits within :data:`PARENT_POLL` seconds of losing it."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from hearth.batch.config import RunConfig
from hearth.batch.run import Task, run_task
from hearth.errors import ExecutionError

# A worker killed (OOM killer, SIGKILL) breaks the whole pool; the finished shards are
# in staging, so the same command picks up where this one stopped.
WORKER_DIED = "a worker process died; re-run the same command to resume"
# Seconds a worker has between SIGTERM and SIGKILL: a shard in a worker holds no state
# worth saving (its files count only once the driver writes their marker), so this
# only covers a slow exit.
END_GRACE = 3.0
# Seconds between a worker's checks that its driver is still its parent.
PARENT_POLL = 0.5


def _exit_with_parent(driver: int) -> None:
    """Pool initializer: a daemon thread that ends this worker once the driver is gone
    (its parent pid changes when the driver dies and the worker is re-parented)."""

    def watch() -> None:
        while os.getppid() == driver:
            time.sleep(PARENT_POLL)
        os._exit(1)  # nothing to flush: a shard counts only once the driver has its marker

    threading.Thread(target=watch, name="hearth-parent-watch", daemon=True).start()


def _ready() -> int:
    return os.getpid()  # importing this module in the worker is the warm-up


def end_processes(procs: list[mp.process.BaseProcess], grace: float = END_GRACE) -> None:
    """SIGTERM every process, wait up to ``grace`` seconds, SIGKILL the rest, reap all."""
    for p in procs:
        if p.is_alive():
            try:
                p.terminate()
            except (OSError, ValueError):  # already gone / already closed
                pass
    for p in procs:
        try:
            p.join(grace)
            if p.is_alive():
                p.kill()
                p.join(grace)
        except (OSError, ValueError, AssertionError):
            pass


class LocalExecutor:
    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers if workers is not None else (os.cpu_count() or 1)
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1; got {self.workers}")
        self._pool: ProcessPoolExecutor | None = None
        if self.workers > 1:
            self._start()

    def _start(self) -> ProcessPoolExecutor:
        if self._pool is None:
            ctx = mp.get_context("spawn")  # no fork of a process holding DuckDB threads
            # Every worker is spawned by the submits below (3.11+ spawns one per submit up to
            # max_workers), from this thread, so they all inherit the blocked SIGINT; a
            # SIGINT that arrives meanwhile stays pending here and is handled on unblock.
            main = threading.current_thread() is threading.main_thread()
            old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if main else None
            try:
                self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx,
                                                 initializer=_exit_with_parent,
                                                 initargs=(os.getpid(),))
                for _ in range(self.workers):
                    self._pool.submit(_ready)
            finally:
                if old is not None:
                    signal.pthread_sigmask(signal.SIG_SETMASK, old)
        return self._pool

    def start(self) -> None:
        """Start the worker pool now (the constructor already does when workers > 1)."""
        if self.workers > 1:
            self._start()

    def worker_pids(self) -> list[int]:
        pool = self._pool
        procs = getattr(pool, "_processes", None) or {}
        return [p.pid for p in list(procs.values()) if p.pid is not None]

    def close(self) -> None:
        """End the pool's workers now (idempotent)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # No public way to stop running tasks before Python 3.14's terminate_workers():
        # the processes are ended directly, then the pool notices and shuts down.
        procs = list((getattr(pool, "_processes", None) or {}).values())
        end_processes(procs)
        # A worker ended while it was sending a shard's result leaves half a message in
        # the result pipe, and the pool's manager thread blocked reading the rest: this
        # process holds the pipe's other end, so no end-of-file would ever come and the
        # shutdown below (and the interpreter's exit) would wait for that thread forever.
        # Closing our end lets the read fail; the pool then counts itself broken and ends.
        writer = getattr(getattr(pool, "_result_queue", None), "_writer", None)
        if writer is not None:
            try:
                writer.close()
            except OSError:
                pass
        pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> LocalExecutor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, tasks: Sequence[Task], config: RunConfig,
            on_result: Callable[[Any], None], *, more: bool = False) -> None:
        if self.workers <= 1:
            for t in tasks:
                on_result(run_task(t, config))
            return
        pool = self._start()
        finished = False
        try:
            pending: set[Future] = set()
            queue = list(tasks)
            while queue or pending:
                while queue and len(pending) < 2 * self.workers:  # backpressure
                    pending.add(pool.submit(run_task, queue.pop(0), config))  # raises once broken
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
            finished = True
        except BrokenProcessPool as e:
            raise ExecutionError(WORKER_DIED) from e
        finally:
            if not finished:  # stopped, or a worker died: the shards in flight are not waited for
                self.close()
            elif not more:
                pool.shutdown(wait=True)
                self._pool = None
