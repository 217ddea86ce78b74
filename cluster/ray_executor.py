"""The Ray executor: connects to a running cluster (``--address``) or starts a
local one; one task per shard (never per household: a task costs about a
millisecond), the configuration put in the object store once, at most a few
tasks in flight per CPU, results handled in completion order with ``ray.wait``.

Workers read their shard from the prepared folder, so every node must see the
run's output path (a shared filesystem or an object-store URI).
"""

from __future__ import annotations

from collections.abc import Callable

import ray

from hearth.batch.config import RunConfig
from hearth.batch.pipeline import ShardOutput, run_shard
from hearth.batch.run import ShardTask
from hearth.errors import ExecutionError


@ray.remote(num_cpus=1, max_retries=2)
def _shard_task(task: ShardTask, config: RunConfig) -> ShardOutput:
    out = run_shard(task.prep_root, task.shard, task.run_id, task.run_date, config,
                    task.warm_root)
    out.worker = ray.get_runtime_context().get_node_id()
    return out


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None,
                 in_flight_per_cpu: int = 2) -> None:
        self.address = address
        self.workers = workers
        self.in_flight_per_cpu = in_flight_per_cpu
        self.nodes_used: set[str] = set()

    def run(self, tasks: list[ShardTask], config: RunConfig,
            on_result: Callable[[ShardOutput], None]) -> None:
        started_here = False
        if not ray.is_initialized():
            kwargs = {"address": self.address} if self.address else {
                "num_cpus": self.workers, "include_dashboard": False}
            ray.init(log_to_driver=False, configure_logging=False, **kwargs)
            started_here = True
        try:
            cpus = int(ray.cluster_resources().get("CPU", 1))
            limit = max(1, (self.workers or cpus) * self.in_flight_per_cpu)
            config_ref = ray.put(config)
            queue = list(tasks)
            pending: list = []
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
        finally:
            if started_here:
                ray.shutdown()
