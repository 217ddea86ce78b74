"""Executing shards: in-process (``local``) or on a Ray cluster (``ray``).

Only this package imports Ray. Every executor is a context manager: entering it
starts its workers (the local pool) or connects (Ray, bounded by
``connect_timeout``), leaving it ends every worker it started, whatever the reason
for leaving (a finished run, an error, SIGTERM/SIGINT)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from hearth.batch.config import RunConfig
    from hearth.batch.run import Task

# Seconds to reach a Ray cluster at --address: long enough for a head node that is
# still starting (schedulers often start the cluster and the job together), short
# enough that a wrong address fails the job (exit code 5) well within a nightly window.
DEFAULT_CONNECT_TIMEOUT = 30.0


class ManagedExecutor(Protocol):
    """``hearth.batch.run.Executor`` that owns its workers: ``start`` them (or
    connect), ``close`` them; a context manager doing both."""

    name: str

    def run(self, tasks: Sequence[Task], config: RunConfig,
            on_result: Callable[[Any], None], *, more: bool = False) -> None: ...

    def start(self) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> ManagedExecutor: ...

    def __exit__(self, *exc: object) -> None: ...


def executor_for(name: str, *, workers: int | None = None, address: str | None = None,
                 connect_timeout: float | None = None) -> ManagedExecutor:
    if name == "local":
        from hearth.cluster.local import LocalExecutor

        return LocalExecutor(workers=workers)
    if name == "ray":
        from hearth.cluster.ray_executor import RayExecutor

        return RayExecutor(address=address, workers=workers,
                           connect_timeout=DEFAULT_CONNECT_TIMEOUT if connect_timeout is None
                           else connect_timeout)
    raise ValueError(f"unknown executor {name!r}; use local or ray")
