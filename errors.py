"""hearth's errors: one base, data problems apart from optimization problems.

They pickle cleanly (they cross process and Ray boundaries) and say whether a
retry can help.
"""

from __future__ import annotations


class HearthError(Exception):
    retryable = False

    def __reduce__(self):
        return (type(self), self.args)


class InputError(HearthError):
    """Input that cannot be read at all (a missing table or column): the run stops
    with exit code 2. Problems with single records never raise; they become
    ``exceptions`` rows and cost only their household."""


class OptimizationError(HearthError):
    """The solver failed on a household; that household gets status ``error``."""


class ExecutionError(HearthError):
    """A shard could not be executed (a worker died, the cluster went away)."""

    retryable = True


class CommitError(ExecutionError):
    """The files of a commit do not match its manifest (a file missing, or row
    counts that differ from the shard markers). Nothing new is visible: the commit
    was rolled back and this run's staging discarded, so re-running the same command
    recomputes the run date."""


class RunLocked(HearthError):
    """Another run holds this output and run date (exit code 4): wait for it, do not
    retry at once."""

    exit_code = 4
