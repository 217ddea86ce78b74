"""Executing shards: in-process (``local``) or on a Ray cluster (``ray``).

Only this package imports Ray."""

from __future__ import annotations

from hearth.batch.run import Executor


def executor_for(name: str, *, workers: int | None = None, address: str | None = None) -> Executor:
    if name == "local":
        from hearth.cluster.local import LocalExecutor

        return LocalExecutor(workers=workers)
    if name == "ray":
        from hearth.cluster.ray_executor import RayExecutor

        return RayExecutor(address=address, workers=workers)
    raise ValueError(f"unknown executor {name!r}; use local or ray")
