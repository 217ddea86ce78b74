"""One run per output and run date: an exclusive lock file.

``OUTPUT/_runs/<run_date>/lock.json`` is created with O_CREAT | O_EXCL (atomic on
a local or network filesystem that honours it) and holds the holder's pid, host
and start time. A second run of the same output and date finds it and stops at
once with :class:`RunLocked`, naming the holder, before it reads the book or
touches staging. A lock is stale, and taken over, when its holder is on this
host and no longer alive, or when it is older than ``stale_after`` seconds
(another host that died cannot be asked). The holder removes it when it ends,
committed or not.

An object-store OUTPUT (``hearth.io.fs``) has no exclusive create that pyarrow
exposes, so its lock has two halves. The lock file above, in the OUTPUT's local
staging root, excludes every other run that shares that staging root (this
machine, or every machine that mounts it). Then a lock object
``OUTPUT/_runs/<run_date>/lock.json`` with the same holder fields and a random
token is checked (a live holder refuses the run, by the same staleness rules),
written and read back. That catches a second run from another machine that
starts while the first one runs, but it is check-then-write, not a compare-and-swap:
two runs on different machines starting within the same moment can both go on.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from hearth.errors import RunLocked
from hearth.io import fs

DEFAULT_STALE_AFTER = 24 * 3600.0  # seconds: no nightly run lives this long


def lock_path(output: str, run_date: str) -> str:
    return os.path.join(output, "_runs", run_date, "lock.json")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def _read(path: str) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _stale(holder: dict[str, Any] | None, path: str, stale_after: float) -> bool:
    try:
        age = time.time() - os.path.getmtime(path)
    except OSError:
        return True  # gone already
    if holder is None:
        return age > 60.0  # a lock file being written right now is given a minute
    if holder.get("host") == socket.gethostname():
        return not _alive(int(holder.get("pid", -1)))
    return age > stale_after


def _read_remote(uri: str) -> tuple[dict[str, Any] | None, float | None]:
    """A lock object's holder (None if unreadable) and age in seconds (None if absent)."""
    written = fs.mtime(uri)
    if written is None:
        return None, None
    try:
        holder = json.loads(fs.read_bytes(uri))
    except FileNotFoundError:
        return None, None
    except ValueError:
        holder = None
    return holder, time.time() - written


def _holder_text(holder: dict[str, Any] | None) -> str:
    return (f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('started')}"
            if holder else "a run that is starting")


class RunLock:
    """The lock of one output and run date; use as a context manager. For an
    object-store OUTPUT, the lock file is in its local staging root (``staging_dir``,
    ``hearth.io.fs.staging_root``) and a lock object is kept in the store as well."""

    def __init__(self, output: str, run_date: str, stale_after: float = DEFAULT_STALE_AFTER,
                 staging_dir: str | None = None) -> None:
        self.path = lock_path(fs.staging_root(output, staging_dir), run_date)
        self.remote = lock_path(output, run_date) if fs.is_remote(output) else None
        self.output = output
        self.run_date = run_date
        self.stale_after = stale_after
        self.held = False
        self._token: str | None = None

    def acquire(self) -> RunLock:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.now(UTC).isoformat(timespec="seconds")}
        for _ in range(2):  # a stale lock is removed once, then taken like a free one
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = _read(self.path)
                if _stale(holder, self.path, self.stale_after):
                    try:
                        os.remove(self.path)
                    except FileNotFoundError:
                        pass
                    continue
                who = _holder_text(holder)
                where = self.output if self.remote else os.path.dirname(
                    os.path.dirname(os.path.dirname(self.path)))
                raise RunLocked(
                    f"another run holds {where}"
                    f" for {self.run_date}: {who}; wait for it to end (if that process is gone, "
                    f"remove {self.path})") from None
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
                f.flush()
                os.fsync(f.fileno())
            self.held = True
            if self.remote is not None:
                try:
                    self._acquire_remote(me)
                except BaseException:
                    self._release_local()
                    raise
            return self
        raise RunLocked(f"could not take the lock {self.path}; remove it if no run is active")

    def _acquire_remote(self, me: dict[str, Any]) -> None:
        """Check, write and read back the lock object (see the module docstring for
        what this does and does not exclude)."""
        assert self.remote is not None
        holder, age = _read_remote(self.remote)
        if age is not None:
            if holder is None:
                stale = age > 60.0
            elif holder.get("host") == socket.gethostname():
                stale = not _alive(int(holder.get("pid", -1)))
            else:
                stale = age > self.stale_after
            if not stale:
                raise RunLocked(
                    f"another run holds {self.output} for {self.run_date}: {_holder_text(holder)}; "
                    f"wait for it to end (if that process is gone, delete {self.remote})")
        self._token = uuid.uuid4().hex
        fs.write_bytes(self.remote, json.dumps(dict(me, token=self._token)).encode())
        holder, _ = _read_remote(self.remote)
        if holder is None or holder.get("token") != self._token:
            self._token = None
            raise RunLocked(f"another run took {self.output} for {self.run_date} at the same "
                            f"moment: {_holder_text(holder)}; wait for it to end")

    def release(self) -> None:
        if not self.held:
            return
        if self.remote is not None and self._token is not None:
            try:
                holder, _ = _read_remote(self.remote)
                if holder is not None and holder.get("token") == self._token:
                    fs.remove(self.remote)
            except OSError:
                pass  # the store is unreachable: the lock object goes stale with its holder
            self._token = None
        self._release_local()

    def _release_local(self) -> None:
        holder = _read(self.path)
        if holder is not None and holder.get("pid") == os.getpid():
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
            if self.remote is not None:  # a staging root keeps no folder per night
                try:
                    os.rmdir(os.path.dirname(self.path))
                except OSError:
                    pass
        self.held = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
