"""Logging set-up and rate-limited warnings for bad input.

A flood of junk (a flaky USB hub, a runaway OSC sender) must not flood the terminal or
slow the loop: each distinct problem is logged at most once per interval, with a count of
what was suppressed, and a few distinct problems per interval at most in all.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger("livegen")


MAX_KEY = 200  # characters of a RateLimitedLog key kept
MAX_ARG = 400  # characters of a string argument shown in a rate-limited warning


class RateLimitedLog:
    """Log a warning per key at most once every ``interval`` seconds, and at most ``burst``
    warnings per interval in all.

    Keys and arguments often hold what a peer sent (a scene name, a parameter name): a
    sender naming a new unknown scene in every message would get past a per-key limit, and a
    60 KB name would make a 60 KB line. So the total is capped too (what was held back is
    counted on the next line), string arguments are shortened and keys cut to a bounded size.
    """

    def __init__(self, logger: logging.Logger = log, interval: float = 2.0, burst: int = 20) -> None:
        self._logger = logger
        self._interval = interval
        self._burst = burst
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._window = (0.0, 0)  # (start, lines logged since)
        self._held_back = 0  # problems not shown because of the burst limit
        self.count = 0  # every problem reported, suppressed or not

    def warn(self, key: str, message: str, *args: object) -> None:
        self.count += 1
        key = key[:MAX_KEY]
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        start, lines = self._window
        if now - start >= self._interval:
            start, lines = now, 0
        if lines >= self._burst:
            self._held_back += 1
            return
        self._window = (start, lines + 1)
        self._last[key] = now
        dropped = self._suppressed.pop(key, 0)
        if dropped:
            message += f" (and {dropped} more like it)"
        if self._held_back:
            message += f" ({self._held_back} other problems not shown)"
            self._held_back = 0
        if len(self._last) > 1024:  # bound memory under adversarial keys
            self._last.clear()
            self._suppressed.clear()
        self._logger.warning(message, *(_shorten(a) for a in args))


def _shorten(arg: object) -> object:
    if isinstance(arg, (str, bytes)) and len(arg) > MAX_ARG:
        return arg[:MAX_ARG] + (b"..." if isinstance(arg, bytes) else "...")
    return arg


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
