"""The ``hearth`` command.

This is the composition root: it is the one place in ``batch`` that reaches up to
``hearth.cluster`` (to pick an executor), so the rest of the package keeps its
imports pointing down.

Exit codes: 0 committed; 2 bad usage or unreadable input; 3 committed, but the
share of households in error/infeasible exceeded ``failure_rate_limit``; 5 transient
(an error whose ``retryable`` is true: a worker died, the cluster went away; staging
is kept and the same command resumes); 1 anything else (a bug).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

from hearth.errors import InputError, RunLocked


def _cmd_generate(args: argparse.Namespace) -> int:
    from hearth.batch.generate import generate

    t0 = time.perf_counter()
    stats = generate(args.output, args.households, seed=args.seed, as_of=args.as_of,
                     bad_fraction=args.bad_fraction)
    print(f"generated {stats.households} households, {stats.accounts} accounts, {stats.lots} lots "
          f"in {time.perf_counter() - t0:.1f}s -> {stats.path}")
    return 0


def _run(input_root: str, output: str, run_date: str, config_path: str | None,
         executor_name: str, address: str | None, workers: int | None) -> int:
    from hearth.batch.config import load_config
    from hearth.batch.run import run_book
    from hearth.cluster import executor_for

    config = load_config(config_path)
    executor = executor_for(executor_name, workers=workers, address=address)
    summary = run_book(input_root, output, run_date, config, executor)
    print(summary.text())
    if summary.exit_code == 3:
        print(f"warning: failure rate above the configured limit "
              f"({config.failure_rate_limit:.1%}); see household_results and exceptions",
              file=sys.stderr)
    return summary.exit_code


def _cmd_run(args: argparse.Namespace) -> int:
    return _run(args.input, args.output, args.run_date, args.config, args.executor,
                args.address, args.workers)


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
    print(f"{table.num_rows} exception(s); {bad} of {total} households would be set aside{loose}",
          file=sys.stderr)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from hearth.batch.generate import DEFAULT_AS_OF, generate

    root = args.dir or os.path.join(tempfile.gettempdir(), "hearth-demo")
    book = os.path.join(root, "book")
    out = os.path.join(root, "output")
    stats = generate(book, args.households, seed=args.seed)
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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hearth", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="write a synthetic book in the input contract")
    g.add_argument("output")
    g.add_argument("--households", type=int, required=True)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--as-of", default="2026-11-20", type=_date,
                   help="the run date the book is made for")
    g.add_argument("--bad-fraction", type=float, default=0.002,
                   help="share of households given bad data on purpose")
    g.set_defaults(fn=_cmd_generate)

    r = sub.add_parser("run", help="run the nightly job")
    r.add_argument("input")
    r.add_argument("output")
    r.add_argument("--run-date", required=True, type=_date)
    r.add_argument("--config")
    r.add_argument("--executor", choices=["local", "ray"], default="local")
    r.add_argument("--address", help="Ray cluster address (ray executor)")
    r.add_argument("--workers", type=int, help="worker processes / Ray CPUs (default: all cores)")
    r.set_defaults(fn=_cmd_run)

    v = sub.add_parser("validate", help="run the data checks alone")
    v.add_argument("input")
    v.add_argument("--run-date", type=_date)
    v.add_argument("--output", help="write exceptions to this Parquet file instead of stdout")
    v.set_defaults(fn=_cmd_validate)

    d = sub.add_parser("demo", help="generate a book, run it, print the summary")
    d.add_argument("--households", type=int, default=1000)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--dir", help="where to put the book and outputs (default: a temp folder)")
    d.add_argument("--config")
    d.add_argument("--executor", choices=["local", "ray"], default="local")
    d.add_argument("--workers", type=int)
    d.set_defaults(fn=_cmd_demo)
    return p


def _command_line(argv: list[str] | None) -> str:
    import shlex

    args = sys.argv[1:] if argv is None else argv
    return shlex.join(["hearth", *args])


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except InputError as e:
        print(f"hearth: {e}", file=sys.stderr)
        return 2
    except RunLocked as e:
        print(f"hearth: {e}", file=sys.stderr)
        return 4
    except Exception as e:  # noqa: BLE001 - the exit code contract: 5 transient, 1 a bug
        if getattr(e, "retryable", False):
            print(f"hearth: {e} (transient: finished shards are kept in staging; resume with "
                  f"`{_command_line(argv)}`)", file=sys.stderr)
            return 5
        if os.environ.get("HEARTH_DEBUG"):
            raise
        print(f"hearth: {type(e).__name__}: {e}", file=sys.stderr)
        return 1

if __name__ == "__main__":
    sys.exit(main())
