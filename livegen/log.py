"""Logging set-up and rate-limited warnings for bad input.

A flood of junk (a flaky USB hub, a runaway OSC sender) must not flood the terminal or
slow the loop: each distinct problem is logged at most once per interval, with a count of
what was suppressed.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger("livegen")


class RateLimitedLog:
    """Log a warning per key at most once every ``interval`` seconds."""

    def __init__(self, logger: logging.Logger = log, interval: float = 2.0) -> None:
        self._logger = logger
        self._interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self.count = 0  # every problem reported, suppressed or not

    def warn(self, key: str, message: str, *args: object) -> None:
        self.count += 1
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        dropped = self._suppressed.pop(key, 0)
        if dropped:
            message += f" (and {dropped} more like it)"
        if len(self._last) > 1024:  # bound memory under adversarial keys
            self._last.clear()
        self._logger.warning(message, *args)


class _OneLine(logging.Formatter):
    """The terminal gets one line per problem; tracebacks go to the log file only."""

    def format(self, record: logging.LogRecord) -> str:
        line = " ".join(record.getMessage().split())
        if record.exc_info and record.exc_info[1] is not None:
            err = record.exc_info[1]
            line += f": {type(err).__name__}: {' '.join(str(err).split())}"
        return self._fmt % {"message": line} if self._fmt else line


def default_log_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    try:
        path = Path(base) / "livegen"
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        path = Path(tempfile.gettempdir())
    return path / "livegen.log"


def setup_logging(verbose: bool = False, log_file: Path | None = None) -> Path | None:
    """One-line messages on stderr; full details (tracebacks) in a log file."""
    root = logging.getLogger("livegen")
    root.setLevel(logging.DEBUG)
    for h in list(root.handlers):
        root.removeHandler(h)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.DEBUG if verbose else logging.INFO)
    console.setFormatter(_OneLine("livegen: %(message)s"))
    root.addHandler(console)
    path = log_file if log_file is not None else default_log_path()
    try:
        fh = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        return None
    fh.setLevel(logging.DEBUG)
    fh.setFormatter(logging.Formatter("%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s"))
    root.addHandler(fh)
    return path
