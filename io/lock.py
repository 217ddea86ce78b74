"""One run per output and run date: an exclusive lock file.

``OUTPUT/_runs/<run_date>/lock.json`` is created with O_CREAT | O_EXCL (atomic on
a local or network filesystem that honours it) and holds the holder's pid, host
and start time. A second run of the same output and date finds it and stops at
once with :class:`RunLocked`, naming the holder, before it reads the book or
touches staging. A lock is stale, and taken over, when its holder is on this
host and no longer alive, or when it is older than ``stale_after`` seconds
(another host that died cannot be asked). The holder removes it when it ends,
committed or not.
"""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import UTC, datetime
from typing import Any

from hearth.errors import RunLocked

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


class RunLock:
    """The lock of one output and run date; use as a context manager."""

    def __init__(self, output: str, run_date: str, stale_after: float = DEFAULT_STALE_AFTER) -> None:
        self.path = lock_path(output, run_date)
        self.run_date = run_date
        self.stale_after = stale_after
        self.held = False

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
                who = (f"pid {holder.get('pid')} on {holder.get('host')} since "
                       f"{holder.get('started')}" if holder else "a run that is starting")
                raise RunLocked(
                    f"another run holds {os.path.dirname(os.path.dirname(os.path.dirname(self.path)))}"
                    f" for {self.run_date}: {who}; wait for it to end (if that process is gone, "
                    f"remove {self.path})") from None
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
                f.flush()
                os.fsync(f.fileno())
            self.held = True
            return self
        raise RunLocked(f"could not take the lock {self.path}; remove it if no run is active")

    def release(self) -> None:
        if not self.held:
            return
        holder = _read(self.path)
        if holder is not None and holder.get("pid") == os.getpid():
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
        self.held = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
