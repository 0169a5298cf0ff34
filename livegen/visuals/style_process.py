"""The style network in a process of its own: the show's default worker.

A thread shares the main process's GIL with the scene renderer, the dispatch thread and
the event loop. Measured in the rig (``livegen bench timing --style``, 1 torch thread,
320x240): as a thread the network took 52.6 ms a frame (18 styled frames/s) and one
note-on was 3.2 ms late; as a process 36.2 ms (25.7 frames/s) and no note-on was late by
more than 0.3 ms. In its own process it has its own interpreter, and a crash there
(a driver, a broken model) cannot take the show down: the process is restarted and frames
pass unstyled meanwhile.

Frames travel through shared memory (two input and two output slots of the frame size,
alternating, so a slot is never written while it is read); a pipe carries the small
messages. The interface is :class:`~livegen.visuals.style_worker.StyleWorker`'s:
``submit`` never blocks and replaces the frame waiting, ``latest`` returns the newest
result.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import threading
import time
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np

from livegen.visuals.style_worker import StyledFrame, StyleResults
from livegen.visuals.stylizer import StyleSettings

log = logging.getLogger("livegen.visuals")

RESTARTS = 3  # after this many crashes the frames stay unstyled (and the log says so)


def _child(conn, model: str, threads: int, compile_: bool, shape: tuple[int, int, int], names: list[str],
           nice: int) -> None:
    """The worker process: load, warm up, then stylise the newest frame, forever."""
    from livegen.realtime import lower_process_priority

    lower_process_priority(nice)  # the music's processes come first
    import torch

    torch.set_num_threads(max(1, threads))
    from livegen.visuals.style_net import load_style_net
    from livegen.visuals.stylizer import Stylizer

    shms = [shared_memory.SharedMemory(name=n) for n in names]
    slots = [np.ndarray(shape, np.uint8, buffer=s.buf) for s in shms]
    try:
        stylizer = Stylizer(load_style_net(model), compile=compile_)
        warm = StyleSettings([1.0] + [0.0] * (len(stylizer.styles) - 1))
        for _ in range(2):
            stylizer(np.zeros(shape, np.uint8), warm)
        conn.send(("ready", stylizer.compiled))
        while True:
            msg = conn.recv()
            while conn.poll():  # only the newest frame matters
                msg = conn.recv()
            if msg[0] == "stop":
                return
            _, seq, submitted, weights, intensity, colour = msg
            frame = slots[seq % 2].copy()
            t0 = time.perf_counter()
            out = stylizer(frame, StyleSettings(list(weights), intensity, colour))
            run_ms = (time.perf_counter() - t0) * 1000.0
            slots[2 + seq % 2][...] = out
            conn.send(("done", seq, submitted, run_ms))
    except (EOFError, KeyboardInterrupt, BrokenPipeError):
        return
    except Exception as e:  # reported to the parent, which shows frames unstyled
        try:
            conn.send(("error", " ".join(str(e).split())[:200]))
        except Exception:
            pass
    finally:
        for s in shms:
            s.close()


class StyleProcess(StyleResults):
    """Runs the style network in a child process (see the module docstring)."""

    def __init__(self, model: str | Path, styles: list[str], size: tuple[int, int], threads: int = 1,
                 compile: bool = False, nice: int = 10) -> None:
        super().__init__()
        self.model = str(model)
        self.styles = list(styles)
        self.height, self.width = size
        self.threads = threads
        self.compile = compile
        self.nice = nice
        self.compiled = False
        self._shape = (self.height, self.width, 3)
        nbytes = self.height * self.width * 3
        self._shms = [shared_memory.SharedMemory(create=True, size=nbytes) for _ in range(4)]
        self._slots = [np.ndarray(self._shape, np.uint8, buffer=s.buf) for s in self._shms]
        self._conn = None
        self._proc = None
        self._reader: threading.Thread | None = None
        self._busy = False  # a frame was sent and its result is not back yet
        self._stopping = False
        self.restarts = 0
        self.stylizer = self  # what reports read: .styles, .compiled

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> "StyleProcess":
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe(duplex=True)
        self._proc = ctx.Process(target=_child, name="livegen-style", daemon=True,
                                 args=(child, self.model, self.threads, self.compile, self._shape,
                                       [s.name for s in self._shms], self.nice))
        self._proc.start()
        child.close()
        self._conn = parent
        self._reader = threading.Thread(target=self._read, name="livegen-style-results", daemon=True)
        self._reader.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the process to finish, join it (kill it if it will not), free the memory."""
        self._stopping = True
        if self._conn is not None:
            try:
                self._conn.send(("stop",))
            except (OSError, BrokenPipeError):
                pass
        if self._proc is not None:
            self._proc.join(timeout)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(5)
            self._proc = None
        if self._reader is not None:
            self._reader.join(5)
            self._reader = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        for s in self._shms:
            s.close()
            try:
                s.unlink()
            except FileNotFoundError:
                pass
        self._shms = []

    # -- frames ----------------------------------------------------------------------------
    def submit(self, frame: np.ndarray, settings: StyleSettings) -> int:
        """Offer a frame (never blocks); frames of another size pass through unstyled."""
        with self._cond:
            self._seq += 1
            seq = self._seq
            self.submitted += 1
        if frame.shape != self._shape or not self.ready.is_set() or self._conn is None:
            return seq
        self._slots[seq % 2][...] = frame
        if self._busy:
            self.dropped += 1  # the process is busy: this one replaces whatever waits
        self._busy = True
        try:
            self._conn.send(("frame", seq, time.monotonic(), list(settings.weights), settings.intensity,
                             settings.preserve_colour))
        except (OSError, BrokenPipeError):
            pass  # the reader thread notices and restarts the process
        return seq

    def stats(self) -> dict[str, float]:
        return {**super().stats(), "restarts": self.restarts}

    # -- results -------------------------------------------------------------------------------
    def _read(self) -> None:
        conn = self._conn
        while True:
            try:
                msg = conn.recv()  # type: ignore[union-attr]
            except (EOFError, OSError):
                break
            kind = msg[0]
            if kind == "ready":
                self.compiled = bool(msg[1])
                self.ready.set()
            elif kind == "done":
                _, seq, submitted, run_ms = msg
                self._busy = False
                out = self._slots[2 + seq % 2].copy()
                self._publish(StyledFrame(out, seq, submitted, time.monotonic(), True), run_ms)
            elif kind == "error":
                self.errors += 1
                log.warning("style network process failed: %s; frames are shown unstyled", msg[1])
                break
        if self._stopping:
            return
        self._restart()

    def _restart(self) -> None:
        self.ready.clear()
        self._busy = False
        if self._proc is not None:
            self._proc.join(2)
            code = self._proc.exitcode
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(5)
        else:
            code = None
        if self.restarts >= RESTARTS:
            log.warning("style network process stopped (exit code %s) %d times; the visuals stay unstyled",
                        code, self.restarts + 1)
            return
        self.restarts += 1
        log.warning("style network process ended (exit code %s); restarting it (frames unstyled meanwhile)", code)
        if self._conn is not None:
            self._conn.close()
        self.start()
