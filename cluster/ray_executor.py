"""The Ray executor: connects to a running cluster (``--address``) or starts a
local one; one task per shard (never per household: a task costs about a
millisecond), the configuration put in the object store once, at most a few
tasks in flight per CPU, results handled in completion order with ``ray.wait``.

Workers read their shard from the prepared folder, so every node must see the
run's output path (a shared filesystem or an object-store URI).

Connecting comes first (:meth:`RayExecutor.start`, before the book is read) and is
bounded: an address that does not accept a connection within ``connect_timeout``
seconds is :class:`hearth.errors.ExecutionError` (retryable, exit code 5), and so is
a Ray that does not finish connecting in that time. Anything that leaves
:meth:`RayExecutor.run` other than by finishing (SIGTERM/SIGINT, a failed shard)
force-cancels the tasks in flight on a cluster, which ends the Ray worker processes
running them; a local Ray instance this executor started is shut down with all its
processes.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import ray

from hearth.batch.config import RunConfig
from hearth.batch.pipeline import ShardOutput
from hearth.batch.run import PieceOutput, Task, run_task
from hearth.cluster import DEFAULT_CONNECT_TIMEOUT
from hearth.errors import ExecutionError


@ray.remote(num_cpus=1, max_retries=2)
def _shard_task(task: Task, config: RunConfig) -> ShardOutput | PieceOutput:
    out = run_task(task, config)
    out.worker = ray.get_runtime_context().get_node_id()
    return out


def _host_port(address: str) -> tuple[str, int] | None:
    """``host:port`` of an address (``ray://`` prefix allowed); None for ``auto``/``local``."""
    rest = address.split("://", 1)[1] if "://" in address else address
    if rest in ("auto", "local") or ":" not in rest:
        return None
    host, _, port = rest.rpartition(":")
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        return None


def _wait_reachable(address: str, deadline: float) -> None:
    """Retry a TCP connect to the address until it is accepted or the deadline passes."""
    target = _host_port(address)
    if target is None:
        return
    last: OSError | None = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ExecutionError(
                f"the Ray cluster at {address} is unreachable ({last}); check --address and "
                "that the cluster is up, then re-run the same command")
        try:
            with socket.create_connection(target, timeout=min(left, 5.0)):
                return
        except OSError as e:
            last = e
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


def _init(*, local: bool, **kwargs: object) -> None:
    """``ray.init`` that leaves this process's SIGTERM handler as it was (Ray's own,
    ``sys.exit``, would skip ending the workers and the resume message), and without
    Ray's warning that it cannot set one from another thread.

    A ``local`` instance's processes (GCS, raylet, and the Ray workers the raylet
    starts) are started with SIGTERM blocked, as Ray itself blocks SIGINT for them:
    a SIGTERM sent to the whole process group then reaches only the driver, which
    shuts the instance down in order. Killed by the same signal instead, they left
    the driver's core worker waiting for a GCS that was gone, and it ended the
    process with exit code 1 before the run could stop cleanly."""
    in_main = threading.current_thread() is threading.main_thread()
    old = signal.getsignal(signal.SIGTERM) if in_main else None
    worker_log = logging.getLogger("ray._private.worker")
    level = worker_log.level
    if not in_main:
        worker_log.setLevel(logging.ERROR)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM}) if local else None
    try:
        ray.init(log_to_driver=False, configure_logging=False, **kwargs)  # type: ignore[arg-type]
    finally:
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a pending SIGTERM lands here
        worker_log.setLevel(level)
        if in_main and old is not None:
            signal.signal(signal.SIGTERM, old)


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None,
                 in_flight_per_cpu: int = 2,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT) -> None:
        self.address = address
        self.workers = workers
        self.in_flight_per_cpu = in_flight_per_cpu
        self.connect_timeout = connect_timeout
        self.nodes_used: set[str] = set()
        self._started_here = False

    def start(self) -> None:
        """Connect to ``address`` (or start a local Ray) unless Ray is up already."""
        if ray.is_initialized():
            return
        deadline = time.monotonic() + self.connect_timeout
        if self.address:
            _wait_reachable(self.address, deadline)
        failure: list[BaseException] = []
        if self.address:
            # ray.init retries a silent address for minutes: it runs in a daemon thread so
            # the wait for it is bounded (it starts no process here that could die with
            # that thread)
            def connect() -> None:
                try:
                    _init(local=False, address=self.address)
                except BaseException as e:  # noqa: BLE001 - handed to the waiting thread
                    failure.append(e)

            t = threading.Thread(target=connect, name="hearth-ray-connect", daemon=True)
            t.start()
            t.join(max(1.0, deadline - time.monotonic()))
            if t.is_alive():
                raise ExecutionError(
                    f"the Ray cluster at {self.address} did not answer within "
                    f"{self.connect_timeout:.0f}s; check --address, then re-run the same command")
        else:
            # in this thread: the local instance's processes die with the thread that
            # started them (Ray's fate sharing), so it must be the one that lives longest
            try:
                # "local": a new instance even when `ray start` left one on this machine
                _init(local=True, address="local", num_cpus=self.workers, include_dashboard=False)
            except Exception as e:  # noqa: BLE001 - reported as an ExecutionError below
                failure.append(e)
        if failure:
            cause = failure[0]
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray"
            raise ExecutionError(f"could not connect to {where}: {cause}") from cause
        self._started_here = True

    def close(self) -> None:
        """Disconnect from the cluster (a local instance started here ends with it)."""
        if self._started_here:
            self._started_here = False
            ray.shutdown()

    def __enter__(self) -> RayExecutor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, tasks: Sequence[Task], config: RunConfig,
            on_result: Callable[[Any], None], *, more: bool = False) -> None:
        self.start()
        pending: list = []
        finished = False
        try:
            cpus = int(ray.cluster_resources().get("CPU", 1))
            limit = max(1, (self.workers or cpus) * self.in_flight_per_cpu)
            config_ref = ray.put(config)
            queue = list(tasks)
            while queue or pending:
                while queue and len(pending) < limit:
                    pending.append(_shard_task.remote(queue.pop(0), config_ref))
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    try:
                        out = ray.get(ref)
                    except ray.exceptions.RayError as e:
                        raise ExecutionError(f"a shard failed on the Ray cluster: {e}") from e
                    self.nodes_used.add(out.worker)
                    on_result(out)
            finished = True
        finally:
            if not finished and not self._started_here:
                # On a cluster of its own, force-cancel ends the worker processes running
                # this run's tasks. A local instance started here is ended whole by close();
                # cancelling there as well races with workers that the same signal reached
                # through the process group and can abort Ray's core worker (a failed
                # check in its task manager) before the run can exit 143.
                for ref in pending:
                    try:
                        ray.cancel(ref, force=True)
                    except Exception:  # noqa: BLE001 - best effort on the way out
                        pass
            self.close()
