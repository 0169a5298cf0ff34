"""The style network's own thread: newest frame in, newest stylised frame out.

The music must never wait on the picture, and a late picture is worse than a skipped one.
So the worker holds at most one pending frame: :meth:`StyleWorker.submit` replaces
whatever was waiting (counted as dropped) and returns at once, and :meth:`latest` hands
back the most recent result without waiting. torch lets go of the GIL inside its
kernels, so the thread runs beside the scene renderer and the timing thread; its torch
thread budget is set once (``torch.set_num_threads``) because the budget is per process.

A failing network (a bad frame size, a broken model) does not stop the show: the error
is logged once per kind, the frame is passed through unstyled, and the worker carries on.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from livegen.realtime import lower_thread_priority
from livegen.visuals.stylizer import StyleSettings, Stylizer

log = logging.getLogger("livegen.visuals")


@dataclass(frozen=True)
class StyledFrame:
    frame: np.ndarray
    seq: int              # the submitted frame's number
    submitted: float      # time.monotonic() at submit
    done: float           # time.monotonic() when the result was ready
    styled: bool          # False when passed through (no style, or an error)

    @property
    def latency(self) -> float:
        return self.done - self.submitted


class StyleResults:
    """What both workers (thread and process) share: numbering the submitted frames,
    keeping the newest result, waiting for one, and the counts a benchmark reports."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._latest: StyledFrame | None = None
        self._seq = 0
        self.submitted = 0
        self.dropped = 0          # replaced by a newer frame before the worker took it
        self.done = 0
        self.errors = 0
        self.ready = threading.Event()  # set once warmed up (compiled, if compiling)
        self._latencies: deque[float] = deque(maxlen=600)
        self._run_ms: deque[float] = deque(maxlen=600)
        self._intervals: deque[float] = deque(maxlen=600)  # between styled results, seconds
        self._last_styled: float | None = None

    @property
    def last_seq(self) -> int:
        """The number given to the most recent submission (0 before the first)."""
        return self._seq

    def latest(self) -> StyledFrame | None:
        """The most recent result, or None before the first."""
        return self._latest

    def wait_for(self, seq: int, timeout: float = 5.0) -> StyledFrame | None:
        """Block until the result for ``seq`` (or a later one) is in; tests and renders."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._latest is None or self._latest.seq < seq:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return self._latest

    def stats(self) -> dict[str, float]:
        lat, run = list(self._latencies), list(self._run_ms)
        return {
            "submitted": self.submitted, "done": self.done, "dropped": self.dropped, "errors": self.errors,
            "latency_ms_median": statistics.median(lat) * 1000 if lat else float("nan"),
            "run_ms_median": statistics.median(run) if run else float("nan"),
            "interval_ms_median": statistics.median(self._intervals) * 1000 if self._intervals else float("nan"),
        }

    def _publish(self, result: StyledFrame, run_ms: float) -> None:
        """Make ``result`` the newest and wake whoever waits for it."""
        with self._cond:
            self._latest = result
            self.done += 1
            if result.styled:
                self._run_ms.append(run_ms)
                if self._last_styled is not None:
                    self._intervals.append(result.done - self._last_styled)
                self._last_styled = result.done
            self._latencies.append(result.latency)
            self._cond.notify_all()


class StyleWorker(StyleResults):
    """Runs a :class:`Stylizer` on a thread of its own (see the module docstring)."""

    def __init__(self, stylizer: Stylizer, threads: int | None = 1, warm_up: tuple[int, int] | None = None,
                 nice: int = 10) -> None:
        super().__init__()
        self.stylizer = stylizer
        self.nice = nice
        self.threads = threads
        self.warm_up_size = warm_up  # (height, width) to run once before the first frame
        self._pending: tuple[np.ndarray, StyleSettings, int, float] | None = None
        self._stop = False
        self._thread: threading.Thread | None = None
        self._warned: set[str] = set()

    def start(self) -> "StyleWorker":
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="livegen-style", daemon=False)
            self._thread.start()
        return self

    def submit(self, frame: np.ndarray, settings: StyleSettings) -> int:
        """Offer a frame (never blocks); returns its sequence number."""
        with self._cond:
            self._seq += 1
            if self._pending is not None:
                self.dropped += 1
            self._pending = (frame, settings, self._seq, time.monotonic())
            self.submitted += 1
            self._cond.notify()
            return self._seq

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the frame in hand and join the thread (never leave torch mid-kernel)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _warn_once(self, key: str, msg: str) -> None:
        self.errors += 1
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s", msg)

    def _loop(self) -> None:
        lower_thread_priority(self.nice)  # the music first: this thread takes what is left
        if self.threads:
            torch.set_num_threads(int(self.threads))
        if self.warm_up_size is not None:
            h, w = self.warm_up_size
            try:
                s = StyleSettings([1.0] + [0.0] * (len(self.stylizer.styles) - 1))
                for _ in range(2):
                    self.stylizer(np.zeros((h, w, 3), np.uint8), s)
            except Exception as e:
                self._warn_once("warm-up", f"style network warm-up failed: {' '.join(str(e).split())[:160]}")
        self.ready.set()
        while True:
            with self._cond:
                while self._pending is None and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                frame, settings, seq, submitted = self._pending  # type: ignore[misc]
                self._pending = None
            t0 = time.perf_counter()
            styled = settings.amount() > 0.0
            try:
                out = self.stylizer(frame, settings) if styled else frame
            except Exception as e:
                self._warn_once(type(e).__name__, "style network failed on a "
                                f"{frame.shape[1]}x{frame.shape[0]} frame ({' '.join(str(e).split())[:160]}); "
                                "showing frames unstyled")
                out, styled = frame, False
            run_ms = (time.perf_counter() - t0) * 1000.0
            self._publish(StyledFrame(out, seq, submitted, time.monotonic(), styled), run_ms)
