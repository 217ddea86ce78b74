"""The ``hearth`` command.

This is the composition root: it is the one place in ``batch`` that reaches up to
``hearth.cluster`` (to pick an executor), so the rest of the package keeps its
imports pointing down.

Exit codes (``docs/operations.md``):

====  ==========================================================================
0     committed (``validate``: no problems found)
1     a bug: report it (``HEARTH_DEBUG=1`` shows the traceback)
2     bad usage, or input or output that cannot be used (a missing table or
      column, OUTPUT a file or not writable, a bad configuration), found before
      the book is read where possible
3     ``run``: committed, but the share of households in error/infeasible exceeded
      ``failure_rate_limit``; ``validate``: problems found (exceptions listed)
4     another run holds this output and run date: wait, do not retry at once
5     transient (``retryable``): a worker died, the Ray cluster was unreachable
      within the connect timeout or went away, an I/O error; staging is kept and
      the same command resumes
130   stopped by SIGINT; 143 stopped by SIGTERM: every worker ended, finished
      shards kept in staging, the same command resumes
====  ==========================================================================
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import tempfile
import threading
import time
from types import FrameType

import hearth
from hearth.batch import log as hlog
from hearth.errors import HearthError, InputError, Stopped

log = hlog.get("cli")
PROBLEMS_FOUND = 3  # validate: exceptions found (a run never reaches this code for that)


def _cmd_generate(args: argparse.Namespace) -> int:
    from hearth.batch.generate import generate

    t0 = time.perf_counter()
    stats = generate(args.output, args.households, seed=args.seed, as_of=args.as_of,
                     bad_fraction=args.bad_fraction, profile=args.profile)
    print(f"generated {stats.households} households, {stats.accounts} accounts, {stats.lots} lots "
          f"in {time.perf_counter() - t0:.1f}s -> {stats.path}")
    return 0


def check_output(output: str) -> None:
    """Raise InputError unless OUTPUT is (or can be made) a folder this process can
    write: checked before the book is read, so a bad OUTPUT costs no preparation.
    An object-store URI: the store, its bucket, a probe write, its local staging."""
    if "://" in output:
        from hearth.io.fs import check_output as check_store_output

        check_store_output(output)
        return
    path = os.path.abspath(output)
    if os.path.exists(path) and not os.path.isdir(path):
        raise InputError(f"OUTPUT {output} is a file; give a folder (it is created if missing)")
    probe = path
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise InputError(f"OUTPUT {output} cannot be created: {probe} is a file")
    try:  # a real write: permission bits say nothing for root or on a read-only mount
        fd, name = tempfile.mkstemp(prefix=".hearth-write-check-", dir=probe)
        os.close(fd)
        os.remove(name)
    except OSError as e:
        raise InputError(f"OUTPUT {output} cannot be written ({e.strerror}: {probe}); "
                         "give a folder this user can write") from e


def _run(input_root: str, output: str, run_date: str, config_path: str | None,
         executor_name: str, address: str | None, workers: int | None,
         connect_timeout: float | None = None) -> int:
    from hearth.batch.config import load_config
    from hearth.batch.run import run_book
    from hearth.cluster import executor_for

    check_output(output)
    config = load_config(config_path)
    # connect (Ray) or start the pool before the book is read; leaving the block, for
    # whatever reason, ends every worker this run started
    with executor_for(executor_name, workers=workers, address=address,
                      connect_timeout=connect_timeout) as executor:
        summary = run_book(input_root, output, run_date, config, executor)
    print(summary.text())
    if summary.exit_code == 3:
        log.warning("failure rate above the configured limit (%.1f%%); see household_results "
                    "and exceptions", 100 * config.failure_rate_limit,
                    extra={"event": "failure_rate", "run_id": summary.run_id})
    return summary.exit_code


def _cmd_run(args: argparse.Namespace) -> int:
    return _run(args.input, args.output, args.run_date, args.config, args.executor,
                args.address, args.workers, args.connect_timeout)


def _cmd_validate(args: argparse.Namespace) -> int:
    from hearth.io.read import open_book
    from hearth.io.validate import exceptions_table, unkeyed_rows, validate

    con = open_book(args.input)
    validate(con, args.run_date)
    table = exceptions_table(con, "validate")
    if args.output:
        import pyarrow.parquet as pq

        pq.write_table(table, args.output)
        print(f"{table.num_rows} exception(s) written to {args.output}")
    else:
        for row in table.to_pylist():
            print(json.dumps({k: v for k, v in row.items() if k != "run_id"}))
    bad = con.execute("SELECT count(*) FROM bad_households").fetchone()[0]  # type: ignore[index]
    total = con.execute("SELECT count(DISTINCT household_id) FROM in_households").fetchone()[0]  # type: ignore[index]
    unkeyed = unkeyed_rows(con)
    loose = (f"; {sum(unkeyed.values())} row(s) belong to no household ("
             + ", ".join(f"{t} {n}" for t, n in unkeyed.items()) + ")") if unkeyed else ""
    problems = table.num_rows > 0
    (log.warning if problems else log.info)(
        "%d exception(s); %d of %d households would be set aside%s", table.num_rows, bad, total,
        loose, extra={"event": "validated", "exceptions": table.num_rows, "bad_households": bad})
    return PROBLEMS_FOUND if problems else 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from hearth.batch.generate import DEFAULT_AS_OF, generate

    root = args.dir or os.path.join(tempfile.gettempdir(), "hearth-demo")
    book = os.path.join(root, "book")
    out = os.path.join(root, "output")
    check_output(out)
    stats = generate(book, args.households, seed=args.seed, profile=args.profile)
    print(f"demo book: {stats.households} households, {stats.accounts} accounts, "
          f"{stats.lots} lots in {book}")
    return _run(book, out, DEFAULT_AS_OF, args.config, args.executor, None, args.workers)


def _date(text: str) -> str:
    """An ISO date (YYYY-MM-DD); argparse turns a bad one into exit code 2."""
    import datetime

    try:
        return datetime.date.fromisoformat(text).isoformat()
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from e


def _positive_int(text: str) -> int:
    """A whole number of at least 1; argparse turns anything else into exit code 2."""
    try:
        n = int(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from e
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {n})")
    return n


def _seconds(text: str) -> float:
    try:
        s = float(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from e
    if not s > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds (got {text})")
    return s


def _verbosity_options(p: argparse.ArgumentParser, default: object) -> None:
    p.add_argument("-q", "--quiet", action="count", default=default,
                   help="warnings and errors only (no progress)")
    p.add_argument("-v", "--verbose", action="count", default=default,
                   help="one log event per shard as well")


def parser() -> argparse.ArgumentParser:
    from hearth.batch.generate import PROFILES
    from hearth.cluster import DEFAULT_CONNECT_TIMEOUT

    p = argparse.ArgumentParser(prog="hearth", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version",
                   version=f"hearth {hearth.__version__} (data contract {hearth.CONTRACT_VERSION})")
    _verbosity_options(p, 0)
    sub = p.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    _verbosity_options(common, argparse.SUPPRESS)  # -q/-v after the command too

    g = sub.add_parser("generate", parents=[common],
                       help="write a synthetic book in the input contract")
    g.add_argument("output")
    g.add_argument("--households", type=_positive_int, required=True)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--as-of", default="2026-11-20", type=_date,
                   help="the run date the book is made for")
    g.add_argument("--bad-fraction", type=float, default=0.002,
                   help="share of households given bad data on purpose")
    g.add_argument("--profile", choices=list(PROFILES), default="realistic",
                   help="realistic (the default) or small (a handful of lots per position)")
    g.set_defaults(fn=_cmd_generate)

    r = sub.add_parser("run", parents=[common], help="run the nightly job")
    r.add_argument("input")
    r.add_argument("output")
    r.add_argument("--run-date", required=True, type=_date)
    r.add_argument("--config")
    r.add_argument("--executor", choices=["local", "ray"], default="local")
    r.add_argument("--address", help="Ray cluster address (ray executor)")
    r.add_argument("--workers", type=_positive_int,
                   help="worker processes / Ray CPUs (default: all cores)")
    r.add_argument("--connect-timeout", type=_seconds, default=DEFAULT_CONNECT_TIMEOUT,
                   help="seconds to reach the Ray cluster at --address before giving up "
                        f"with exit code 5 (default {DEFAULT_CONNECT_TIMEOUT:.0f})")
    r.set_defaults(fn=_cmd_run)

    v = sub.add_parser("validate", parents=[common],
                       help="run the data checks alone (exit code 3 when they find problems)")
    v.add_argument("input")
    v.add_argument("--run-date", type=_date)
    v.add_argument("--output", help="write exceptions to this Parquet file instead of stdout")
    v.set_defaults(fn=_cmd_validate)

    d = sub.add_parser("demo", parents=[common], help="generate a book, run it, print the summary")
    d.add_argument("--households", type=_positive_int, default=1000)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--profile", choices=list(PROFILES), default="realistic")
    d.add_argument("--dir", help="where to put the book and outputs (default: a temp folder)")
    d.add_argument("--config")
    d.add_argument("--executor", choices=["local", "ray"], default="local")
    d.add_argument("--workers", type=_positive_int)
    d.set_defaults(fn=_cmd_demo)
    return p


def _command_line(argv: list[str] | None) -> str:
    args = sys.argv[1:] if argv is None else argv
    return shlex.join(["hearth", *args])


class _StopSignals:
    """SIGTERM and SIGINT raise :class:`Stopped` in the main thread, once: a repeat
    (a scheduler that signals the whole process group, an impatient second Ctrl-C)
    is ignored, so it cannot cut short the ending of the workers. Restores the
    previous handlers on exit (``main`` is also called in-process, by tests)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.received: int | None = None
        self._old: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            return
        self.received = signum
        raise Stopped(signum)

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)  # type: ignore[arg-type]


def _resume_hint(argv: list[str] | None) -> str:
    return f"resume with `{_command_line(argv)}`"


def _fail(e: BaseException, argv: list[str] | None, verbosity: int, command: str) -> int:
    """The one line (and exit code) for an error that ends the command."""
    if isinstance(e, Stopped):
        if command in ("run", "demo"):
            log.warning("%s: every worker ended, finished shards kept in staging; %s", e,
                        _resume_hint(argv), extra={"event": "stopped", "signal": e.signum})
        else:
            log.warning("%s; re-run `%s`", e,
                        _command_line(argv), extra={"event": "stopped", "signal": e.signum})
        return e.exit_code
    if isinstance(e, HearthError) and not e.retryable:
        log.error("%s", e, extra={"event": "failed", "exit_code": e.exit_code})
        return e.exit_code
    if isinstance(e, HearthError) or isinstance(e, OSError):  # retryable, or I/O
        what = f"I/O error: {e}" if isinstance(e, OSError) else str(e)
        log.error("%s (transient: finished shards are kept in staging; %s)", what,
                  _resume_hint(argv), extra={"event": "failed", "exit_code": 5})
        return 5
    terminal = hlog.is_terminal(sys.stderr)
    log.error("a bug: %s: %s; please report it with the command line%s", type(e).__name__, e,
              "" if terminal and verbosity <= 0 else " and the traceback below",
              exc_info=e if not terminal or verbosity > 0 else None,
              extra={"event": "failed", "exit_code": 1})
    return 1


def main(argv: list[str] | None = None) -> int:
    with _StopSignals() as stop:
        try:
            args = parser().parse_args(argv)
        except Stopped as e:
            return e.exit_code
        verbosity = args.verbose - args.quiet
        hlog.setup(verbosity)
        try:
            return int(args.fn(args))
        except Stopped as e:
            return _fail(e, argv, verbosity, args.command)
        except Exception as e:  # noqa: BLE001 - the exit code contract of the table above
            if stop.received is not None:
                # the stop came through as another error: raised inside a C extension
                # (Ray's wait gives SystemError), or a worker that died of the same signal
                return _fail(Stopped(stop.received), argv, verbosity, args.command)
            if os.environ.get("HEARTH_DEBUG") and not isinstance(e, HearthError | OSError):
                raise
            return _fail(e, argv, verbosity, args.command)


if __name__ == "__main__":
    sys.exit(main())
