"""The nightly job: read and validate the book, shard it, hand the shards to an
executor, write each finished shard to staging, and commit.

The executor is passed in (``hearth.cluster`` provides them), so this module
depends only on io and model; results are identical whichever executor runs the
shards and whatever the shard size, because every shard's rows are a pure
function of its households and the configuration.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import duckdb
import numpy as np

import hearth
from hearth.batch.config import RunConfig
from hearth.batch.lineage import Lineage, lineage_for
from hearth.batch.log import get as get_logger
from hearth.batch.log import is_terminal
from hearth.batch.pipeline import STAGES, ShardOutput, run_shard, staged
from hearth.batch.report import write_report
from hearth.errors import ExecutionError, InputError
from hearth.io.lock import RunLock
from hearth.io.read import fingerprints, open_book
from hearth.io.shards import LotPiece, ShardPlan, copy_lot_piece, prepare
from hearth.io.validate import exceptions_table, unkeyed_rows, validate
from hearth.io.write import RunWriter, manifest_path, previous_warm_state

VALIDATION = -1  # the pseudo-shard that carries the whole-book validation exceptions
# In the driver: "prepare" (read, validate, shard) is wall-clock seconds; the shard
# stages, writing the shard's files to staging last, are measured in each worker and
# summed over all of them.
DRIVER_STAGES = ("prepare",)
log = get_logger("run")


@dataclass(frozen=True)
class ShardTask:
    prep_root: str
    shard: int
    run_id: str
    run_date: str
    warm_root: str | None
    n_households: int
    staging: str | None = None  # the worker writes the shard's files here (None: the driver)


@dataclass(frozen=True)
class LotPieceTask:
    """Partition one range of the book's lots into the shards (before any shard runs)."""

    piece: LotPiece


@dataclass
class PieceOutput:
    index: int
    seconds: float
    worker: str = ""  # where it ran (the executor fills it in)


Task = ShardTask | LotPieceTask


def run_task(task: Task, config: RunConfig) -> ShardOutput | PieceOutput:
    """What an executor runs for one task, in a worker: a range of the lots
    partitioned; or a shard, then its files written to staging when the task names
    a staging folder."""
    if isinstance(task, LotPieceTask):
        t0 = time.perf_counter()
        copy_lot_piece(task.piece)
        return PieceOutput(task.piece.index, time.perf_counter() - t0)
    out = run_shard(task.prep_root, task.shard, task.run_id, task.run_date, config,
                    task.warm_root)
    return staged(out, task.staging) if task.staging else out


class Executor(Protocol):
    name: str

    def run(self, tasks: Sequence[Task], config: RunConfig,
            on_result: Callable[[Any], None], *, more: bool = False) -> None:
        """Run every task (``run_task``), calling ``on_result`` in the driver with
        each one's output as it finishes. ``more``: another ``run`` follows at once,
        so workers the executor would end after this one are kept for it."""


@dataclass
class RunSummary:
    run_id: str
    run_date: str
    output: str
    manifest: str
    households: int
    statuses: dict[str, int]
    trades: int
    exceptions: int
    seconds: float
    stage_seconds: dict[str, float]
    median_model_cols: float
    exit_code: int
    resumed_shards: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        rate = self.households / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"hearth run {self.run_id} for {self.run_date}: {self.households} households in "
            f"{self.seconds:.1f}s ({rate:,.0f} households/s)",
            "  status: " + ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items())),
            f"  trades: {self.trades}   exceptions: {self.exceptions}   "
            f"median model size: {self.median_model_cols:.0f} columns",
            "  wall (s): " + ", ".join([f"run {self.seconds:.2f}", *(
                f"{k} {v:.2f}" for k, v in self.stage_seconds.items() if k in DRIVER_STAGES)]),
            "  summed over workers (s, about CPU): " + ", ".join(
                f"{k} {v:.2f}" for k, v in self.stage_seconds.items() if k not in DRIVER_STAGES),
            f"  outputs: {self.output}/{{trades,household_results,exceptions}}/"
            f"run_date={self.run_date}/",
            f"  manifest: {self.manifest}",
        ]
        totals = self.extra.get("totals")
        if totals:
            lines.insert(3, "  dollars: tax savings estimate ${:,.0f}, tax due ${:,.0f}, losses "
                         "harvested ${:,.0f}, traded ${:,.0f}".format(
                             totals["tax_savings_estimate"], totals["tax_due_estimate"],
                             totals["tlh_losses"], totals["traded_value"]))
        unkeyed = self.extra.get("unkeyed_rows")
        if unkeyed:
            lines.append("  unkeyed rows: " + ", ".join(f"{t} {n}" for t, n in unkeyed.items())
                         + " (they belong to no household; see exceptions codes "
                           "missing_household_id / unknown_household)")
        if "recovered_commit" in self.extra:
            lines.append(f"  recovered: completed the interrupted commit "
                         f"{self.extra['recovered_commit']}; nothing was recomputed")
        elif self.resumed_shards:
            lines.append(f"  resumed: {self.resumed_shards} shard(s) reused from staging")
        return "\n".join(lines)


class Progress:
    """Households done, rate and time left: a live line on a terminal, a ``progress``
    log event (at most every few seconds) otherwise; nothing while the ``hearth``
    logger is not enabled for INFO (``-q``, or a program that configured no logging)."""

    def __init__(self, total: int, stream=None, every: float = 5.0, run_id: str | None = None,
                 logger: logging.Logger | None = None) -> None:
        stream = stream if stream is not None else sys.stderr  # the stream of now, not of import
        self.total, self.done, self.stream, self.every = total, 0, stream, every
        self.t0 = time.perf_counter()
        self.last = 0.0
        self.run_id = run_id
        self.log = logger if logger is not None else log
        self.on = self.log.isEnabledFor(logging.INFO)
        self.tty = is_terminal(stream)

    def advance(self, n: int) -> None:
        self.done += n
        if not self.on:
            return
        now = time.perf_counter()
        elapsed = now - self.t0
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        if self.tty:
            eta = f"{left:,.0f}s left" if left == left else "starting"
            self.stream.write(f"\r{self.done:,}/{self.total:,} households  {rate:,.0f}/s  "
                              f"{eta}   ")
            if self.done >= self.total:
                self.stream.write("\n")
            self.stream.flush()
        elif now - self.last >= self.every or self.done >= self.total:
            self.last = now
            self.log.info("%d/%d households", self.done, self.total, extra={
                "event": "progress", "run_id": self.run_id, "done": self.done,
                "total": self.total, "per_s": round(rate, 1),
                "eta_s": round(left, 1) if left == left else None})


def make_run_id(run_date: str, prints: dict[str, Any], config: RunConfig) -> str:
    h = hashlib.sha256()
    h.update(run_date.encode())
    h.update(json.dumps(prints, sort_keys=True).encode())
    h.update(config.fingerprint().encode())
    return h.hexdigest()[:16]


def rules_version(config: RunConfig) -> str:
    """The rules a night ran under, for audit: the contract's major version and the
    first 12 hex digits of the configuration's fingerprint (every key, as in the run
    id), e.g. ``"2:1f9fc0783a4b"``. Nights run under the same contract and
    configuration share it whatever their inputs; changing any key changes it."""
    return f"{hearth.CONTRACT_VERSION}:{config.fingerprint()[:12]}"


def run_book(input_root: str, output: str, run_date: str, config: RunConfig,
             executor: Executor, *, progress: bool = True,
             shard_filter: Callable[[Iterable[ShardTask]], list[ShardTask]] | None = None
             ) -> RunSummary:
    """Run the nightly job; raises InputError for unreadable input and RunLocked when
    another run holds this output and run date."""
    np.datetime64(run_date, "D")  # raises on a malformed date before any work
    with RunLock(output, run_date):
        lineage = lineage_for(config.openlineage_url, config.openlineage_namespace,
                              input_root, output, run_date)
        try:
            summary = _run_locked(input_root, output, run_date, config, executor,
                                  progress=progress, shard_filter=shard_filter,
                                  lineage=lineage)
        except BaseException as e:
            if lineage is not None:
                lineage.fail(e)
            raise
        if lineage is not None:
            lineage.complete({"trades": summary.trades,
                              "household_results": summary.households,
                              "exceptions": summary.exceptions})
        return summary


def _run_locked(input_root: str, output: str, run_date: str, config: RunConfig,
                executor: Executor, *, progress: bool,
                shard_filter: Callable[[Iterable[ShardTask]], list[ShardTask]] | None,
                lineage: Lineage | None = None) -> RunSummary:
    t_start = time.perf_counter()
    con = duckdb.connect(config={"memory_limit": config.duckdb_memory_limit,
                                 "preserve_insertion_order": False})
    open_book(input_root, con)
    prints = fingerprints(con)
    run_id = make_run_id(run_date, prints, config)
    log.info("run %s for %s: %s -> %s", run_id, run_date, input_root, output,
             extra={"event": "start", "run_id": run_id, "executor": executor.name})
    if lineage is not None:
        lineage.start(run_id, prints)
    writer = RunWriter(output, run_date, run_id)
    done = writer.recover()  # an interrupted commit of this date is finished or undone first
    if done is not None:  # it was this run's own: the night is committed, nothing to redo
        con.close()
        log.info("completed the interrupted commit %s", done.get("commit"),
                 extra={"event": "recovered", "run_id": run_id})
        _report(output, run_date, run_id)
        _sink(output, run_date, config)
        return _recovered_summary(done, output, config, time.perf_counter() - t_start)
    spill = os.path.join(writer.staging, "duckdb.tmp")
    os.makedirs(writer.staging, exist_ok=True)  # DuckDB creates only the last folder of it
    con.execute(f"SET temp_directory = '{spill}'")  # past the memory cap DuckDB spills here
    prep_info = writer.prep_done()
    t_prep = time.perf_counter()
    if prep_info is None or writer.finished(VALIDATION) is None:
        shutil.rmtree(writer.prep_root, ignore_errors=True)  # a half-written earlier attempt
        try:
            validate(con, run_date)
            exc = exceptions_table(con, run_id)
            unkeyed = unkeyed_rows(con)
            plan = prepare(con, writer.prep_root, config.shard_size,
                           workers=int(getattr(executor, "workers", None) or os.cpu_count() or 1),
                           run_pieces=lambda pieces: executor.run(
                               [LotPieceTask(p) for p in pieces], config, _ignore, more=True))
        except duckdb.IOException as e:  # writing the prepared book or spilling: the disk
            raise ExecutionError(f"I/O error while preparing the book in {writer.staging}: "
                                 f"{str(e).splitlines()[0]}") from e
        writer.write_shard(VALIDATION, {"exceptions": exc}, {"validation_exceptions": exc.num_rows})
        prep_info = {"shards": list(plan.shards),
                     "households_per_shard": list(plan.households_per_shard),
                     "cost_per_shard": list(plan.cost_per_shard),
                     "validation_exceptions": exc.num_rows, "unkeyed_rows": unkeyed}
        writer.mark_prep_done(prep_info)
    con.close()
    prep_seconds = time.perf_counter() - t_prep
    plan = ShardPlan(writer.prep_root, tuple(prep_info["shards"]),
                     tuple(prep_info["households_per_shard"]),
                     tuple(prep_info.get("cost_per_shard", ())))
    warm_root = previous_warm_state(output, run_date) if config.warm_start else None

    tasks, done_meta = [], []
    for shard, n in zip(plan.shards, plan.households_per_shard):
        meta = writer.finished(shard)
        if meta is not None:
            done_meta.append(meta)
        else:
            tasks.append(ShardTask(plan.root, shard, run_id, run_date, warm_root, n,
                                   writer.staging))
    # costliest shards first (longest processing time first): the last to finish are small
    cost = dict(zip(plan.shards, plan.cost_per_shard))
    tasks.sort(key=lambda t: (-cost.get(t.shard, 0), t.shard))
    if shard_filter is not None:
        tasks = shard_filter(tasks)
    resumed = len(done_meta)
    log.info("%d households in %d shards; %d shard(s) finished in staging are reused",
             plan.n_households, len(plan.shards), resumed,
             extra={"event": "shards", "run_id": run_id, "shards": len(plan.shards),
                    "resumed": resumed, "households": plan.n_households})

    bar = Progress(plan.n_households, run_id=run_id) if progress else None
    if bar:
        bar.advance(sum(m["households"] for m in done_meta))
    metas = list(done_meta)

    def on_result(out: ShardOutput) -> None:
        t0 = time.perf_counter()
        meta = {"shard": out.shard, "households": out.n_households, "statuses": out.statuses,
                "seconds": out.seconds, "trades": out.rows["trades"],
                "exceptions": out.rows["exceptions"],
                "model_cols": out.model_cols, "solved": out.solved, "totals": out.totals}
        if out.files is None:  # an executor that hands the tables back
            writer.write_shard(out.shard, out.tables, meta)
            meta["seconds"] = dict(out.seconds, write=time.perf_counter() - t0)
        else:
            writer.record_shard(out.shard, dict(meta, files=out.files))
        metas.append(meta)
        log.debug("shard done: %d households", out.n_households,
                  extra={"event": "shard", "run_id": run_id, "shard": out.shard,
                         "statuses": out.statuses, "worker": out.worker})
        if bar:
            bar.advance(out.n_households)

    executor.run(tasks, config, on_result)
    missing = [s for s in plan.shards if writer.finished(s) is None]
    if missing:
        raise ExecutionError(f"{len(missing)} shard(s) did not finish (first: {missing[0]}); "
                             "re-run the same command to resume")

    statuses: dict[str, int] = {}
    stage = dict.fromkeys(("prepare", *STAGES, "write"), 0.0)
    stage["prepare"] = prep_seconds
    cols: list[int] = []
    n_trades = n_exc = n_solved = 0
    for m in metas:
        n_solved += m.get("solved", 0)
        for k, v in m["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
        for k, v in m["seconds"].items():
            stage[k] = stage.get(k, 0.0) + v
        cols.extend(m.get("model_cols", []))
        n_trades += m["trades"]
        n_exc += m["exceptions"]
    n_exc += prep_info["validation_exceptions"]
    totals: dict[str, float] = {}
    for m in metas:
        for k, v in m.get("totals", {}).items():
            totals[k] = totals.get(k, 0.0) + v
    totals = {k: round(v, 2) for k, v in totals.items()}
    unkeyed = prep_info.get("unkeyed_rows", {})
    households = sum(statuses.values())
    failed = statuses.get("error", 0) + statuses.get("infeasible", 0)
    elapsed = time.perf_counter() - t_start
    manifest = {
        "run_id": run_id, "run_date": run_date, "contract_version": hearth.CONTRACT_VERSION,
        "rules_version": rules_version(config),
        "hearth_version": hearth.__version__, "config": config.model_dump(),
        "inputs": prints, "households": households, "households_solved": n_solved,
        "statuses": statuses,
        "trades": n_trades, "exceptions": n_exc,
        "stage_seconds": {k: round(v, 4) for k, v in stage.items()},
        "shards": len(plan.shards), "shard_size": config.shard_size,
        "executor": executor.name, "warm_state_from": warm_root,
        "failure_rate": failed / households if households else 0.0,
        "median_model_cols": float(np.median(cols)) if cols else 0.0,
        "totals": totals, "unkeyed_rows": unkeyed,
        "status": "committed",
    }
    path = writer.commit(manifest, [VALIDATION, *plan.shards])
    log.info("committed %d households, %d trades: %s", households, n_trades, path,
             extra={"event": "committed", "run_id": run_id, "statuses": statuses})
    _report(output, run_date, run_id)
    _sink(output, run_date, config)
    return RunSummary(run_id=run_id, run_date=run_date, output=output, manifest=path,
                      households=households, statuses=statuses, trades=n_trades,
                      exceptions=n_exc, seconds=elapsed, stage_seconds=stage,
                      median_model_cols=manifest["median_model_cols"],
                      exit_code=_exit_code(statuses, config), resumed_shards=resumed,
                      extra={"totals": totals, "unkeyed_rows": unkeyed})


def _ignore(out: object) -> None:
    """A lots range's output: its files are in the prepared folder."""


def _sink(output: str, run_date: str, config: RunConfig) -> None:
    """The committed night copied into Delta Lake tables, when configured. A failure
    is transient (exit 5): the night stands, and the copy replaces only its date."""
    if not config.delta_target:
        return
    from hearth.io.delta import write_delta

    try:
        write_delta(output, run_date, config.delta_target)
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - the night is committed; the copy can be redone
        raise ExecutionError(f"the night is committed, but copying it to the Delta tables at "
                             f"{config.delta_target} failed: {type(e).__name__}: {e}") from e


def _report(output: str, run_date: str, run_id: str) -> None:
    """The night's HTML report beside its manifest. The night is committed before
    it is written, so a report that fails costs a warning, never the run."""
    try:
        where = write_report(output, run_date)
    except Exception as e:  # noqa: BLE001 - the outputs are committed; say so and go on
        log.warning("the run report could not be written: %s: %s", type(e).__name__, e,
                    extra={"event": "report_failed", "run_id": run_id})
        return
    log.info("report: %s", where, extra={"event": "report", "run_id": run_id})


def _exit_code(statuses: dict[str, int], config: RunConfig) -> int:
    households = sum(statuses.values())
    failed = statuses.get("error", 0) + statuses.get("infeasible", 0)
    return 3 if households and failed / households > config.failure_rate_limit else 0


def _recovered_summary(manifest: dict[str, Any], output: str, config: RunConfig,
                       seconds: float) -> RunSummary:
    """The summary of a run whose commit a previous, killed attempt had begun and
    this one completed: every figure comes from the manifest."""
    statuses = manifest["statuses"]
    return RunSummary(run_id=manifest["run_id"], run_date=manifest["run_date"], output=output,
                      manifest=manifest_path(output, manifest["run_date"]),
                      households=manifest["households"], statuses=statuses,
                      trades=manifest["trades"], exceptions=manifest["exceptions"],
                      seconds=seconds, stage_seconds=manifest["stage_seconds"],
                      median_model_cols=manifest.get("median_model_cols", 0.0),
                      exit_code=_exit_code(statuses, config), resumed_shards=manifest["shards"],
                      extra={"recovered_commit": manifest["commit"],
                             "totals": manifest.get("totals", {}),
                             "unkeyed_rows": manifest.get("unkeyed_rows", {})})
