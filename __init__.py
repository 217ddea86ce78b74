"""hearth: nightly household-level, tax-aware rebalancing across all of a household's accounts.

Subpackages (imports point down): ``cluster -> batch -> io -> model``.

From Python, :func:`run_book` runs one night as ``hearth run`` does::

    import hearth

    try:
        summary = hearth.run_book("/data/book", "/data/out", "2026-11-20", workers=4)
    except hearth.RunLocked:        # another run holds this output and date: wait
        ...
    except hearth.ExecutionError:   # transient (retryable): run the same call again
        ...
    print(summary.text())           # summary.exit_code is 0, or 3 over the failure limit

Importing ``hearth`` is cheap: the run's modules are loaded by the first call.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hearth.errors import ExecutionError, HearthError, InputError, RunLocked, Stopped

if TYPE_CHECKING:
    from hearth.batch.config import RunConfig
    from hearth.batch.run import RunSummary

__version__ = "0.1.0"
CONTRACT_VERSION = 2

__all__ = ["CONTRACT_VERSION", "ExecutionError", "HearthError", "InputError", "RunLocked",
           "Stopped", "__version__", "run_book"]


def _config(config: RunConfig | Mapping[str, Any] | str | os.PathLike[str] | None) -> RunConfig:
    from hearth.batch.config import RunConfig, load_config

    if config is None or isinstance(config, RunConfig):
        return config if config is not None else RunConfig()
    if isinstance(config, Mapping):
        try:
            return RunConfig(**config)
        except Exception as e:  # pydantic's message names every bad key
            raise InputError(f"config: {e}") from e
    return load_config(os.fspath(config))


def run_book(input: str, output: str, run_date: str,
             config: RunConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
             executor: str = "local", workers: int | None = None,
             address: str | None = None, connect_timeout: float | None = None) -> RunSummary:
    """Run the nightly job on the book at ``input`` into ``output`` for ``run_date``
    (``YYYY-MM-DD``) and return its :class:`~hearth.batch.run.RunSummary`.

    ``config`` is a ``RunConfig``, a mapping of its keys, or the path of a TOML
    file (``None``: every default). ``executor`` is ``"local"`` (a pool of
    ``workers`` processes, default one per core) or ``"ray"`` (the cluster at
    ``address``, reached within ``connect_timeout`` seconds, 30 by default, or a new
    local instance). Every worker is ended before this returns or raises, whatever
    the reason.

    Committed nights return: ``summary.exit_code`` is 0, or 3 when the share of
    households in ``error``/``infeasible`` exceeded ``failure_rate_limit``. Otherwise
    it raises, before the book is read where it can:

    - :class:`InputError`: bad arguments or configuration, an OUTPUT that is a file
      or cannot be written, an input that cannot be read (the CLI's exit code 2);
    - :class:`RunLocked`: another run holds this output and run date (4);
    - :class:`ExecutionError`: transient, ``retryable``: a worker died, the cluster
      was unreachable or went away, an I/O error (5). Finished shards stay in
      staging and the same call resumes.

    Signals are the calling program's: an exception raised from its handler (such
    as ``KeyboardInterrupt``) ends the workers and releases the lock on its way out,
    with finished shards kept for the next call. The run logs to the ``hearth``
    logger (progress at INFO); nothing is printed unless logging is configured.
    """
    from hearth.batch.cli import check_output
    from hearth.batch.run import run_book as run_night
    from hearth.cluster import executor_for

    if executor not in ("local", "ray"):
        raise InputError(f"executor must be 'local' or 'ray'; got {executor!r}")
    if workers is not None and workers < 1:
        raise InputError(f"workers must be at least 1; got {workers}")
    try:
        run_date = datetime.date.fromisoformat(run_date).isoformat()
    except (TypeError, ValueError) as e:
        raise InputError(f"run_date {run_date!r} is not a date (YYYY-MM-DD)") from e
    try:
        run_config = _config(config)
        check_output(output)
        with executor_for(executor, workers=workers, address=address,
                          connect_timeout=connect_timeout) as ex:
            return run_night(input, output, run_date, run_config, ex)
    except HearthError:
        raise
    except OSError as e:
        raise ExecutionError(f"I/O error: {e}; finished shards are kept in staging, "
                             "the same call resumes") from e
