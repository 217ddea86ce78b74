"""hearth's logs: the standard ``logging`` module, under the ``hearth`` logger.

The command configures it once (:func:`setup`): on a terminal, ``hearth: ...``
lines and a live progress line; off a terminal (a scheduler, a pipe, a file), one
JSON object per line on stderr: ``ts`` (ISO 8601, UTC), ``level``, ``logger``,
``message``, and ``run_id``, ``shard``, ``event`` and the event's figures where
they apply. ``-q`` leaves warnings and errors only; ``-v`` adds one event per
shard. A program that calls ``hearth.run_book`` configures ``logging`` as it likes;
nothing is printed unless it does.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

LOGGER = "hearth"
# attributes every LogRecord has; anything else on a record came in through ``extra``
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_FIRST = ("ts", "level", "logger", "run_id", "shard", "event", "message")


def is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class JsonFormatter(logging.Formatter):
    """One JSON object per record: timestamp, level, run id, shard, message, extras."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        extras = {k: v for k, v in vars(record).items()
                  if k not in _STANDARD and not k.startswith("_")}  # Ray adds _ray_timestamp_ns
        for k in _FIRST[3:6]:
            if k in extras:
                out[k] = extras.pop(k)
        out["message"] = record.getMessage()
        out.update(extras)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    """``hearth: message`` for a person at a terminal; erases a live progress line first."""

    def format(self, record: logging.LogRecord) -> str:
        shard = getattr(record, "shard", None)
        where = f"shard {shard}: " if shard is not None else ""
        text = f"\r\x1b[Khearth: {where}{record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _Handler(logging.StreamHandler):
    """The handler :func:`setup` installs (so a second call replaces it, not adds one)."""


def setup(verbosity: int = 0, stream: TextIO | None = None) -> logging.Logger:
    """Configure the ``hearth`` logger for the command line: ``verbosity`` is the
    count of ``-v`` minus the count of ``-q``. Returns the logger."""
    stream = stream if stream is not None else sys.stderr  # the stream of now, not of import
    tty = is_terminal(stream)
    logger = logging.getLogger(LOGGER)
    for h in [h for h in logger.handlers if isinstance(h, _Handler)]:
        logger.removeHandler(h)
    handler = _Handler(stream)
    handler.setFormatter(TextFormatter() if tty else JsonFormatter())
    logger.addHandler(handler)
    logger.propagate = False
    if verbosity < 0:
        level = logging.WARNING
    elif verbosity > 0:
        level = logging.DEBUG
    else:
        level = logging.INFO
    logger.setLevel(level)
    return logger


def get(name: str) -> logging.Logger:
    """The logger of one part of hearth (``hearth.<name>``)."""
    return logging.getLogger(f"{LOGGER}.{name}")
