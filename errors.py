"""hearth's errors: one base, data problems apart from optimization problems.

They pickle cleanly (they cross process and Ray boundaries), say whether a retry
can help (``retryable``) and carry the ``hearth`` command's exit code for them
(``exit_code``, the table of ``docs/operations.md``).
"""

from __future__ import annotations

import signal


class HearthError(Exception):
    retryable = False
    exit_code = 1

    def __reduce__(self):
        return (type(self), self.args)


class InputError(HearthError):
    """Input or output that cannot be used at all (a missing table or column, an
    OUTPUT that is a file or cannot be written, a bad configuration): the run stops
    with exit code 2, before the book is read where possible. Problems with single
    records never raise; they become ``exceptions`` rows and cost only their
    household."""

    exit_code = 2


class OptimizationError(HearthError):
    """The solver failed on a household; that household gets status ``error``."""


class ExecutionError(HearthError):
    """A shard could not be executed (a worker died, the cluster went away or could
    not be reached within the connect timeout, an I/O error): exit code 5. Finished
    shards stay in staging; the same command resumes."""

    retryable = True
    exit_code = 5


class CommitError(ExecutionError):
    """The files of a commit do not match its manifest (a file missing, or row
    counts that differ from the shard markers). Nothing new is visible: the commit
    was rolled back and this run's staging discarded, so re-running the same command
    recomputes the run date."""


class RunLocked(HearthError):
    """Another run holds this output and run date (exit code 4): wait for it, do not
    retry at once."""

    exit_code = 4


class Stopped(BaseException):
    """SIGTERM or SIGINT stopped the run: exit code 128 + the signal (143 / 130).

    A ``BaseException`` like ``KeyboardInterrupt``, so no ``except Exception`` on the
    way out swallows it. Executors end their workers when it passes through them,
    the run lock is released, and finished shards stay in staging for the resume."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def __str__(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name}"
