"""The style network in a process of its own: the show's default worker.

A thread shares the main process's GIL with the scene renderer, the dispatch thread and
the event loop. Measured in the rig (``livegen bench timing --style``, 1 torch thread,
320x240): as a thread the network took 52.6 ms a frame (18 styled frames/s) and one
note-on was 3.2 ms late; as a process 36.2 ms (25.7 frames/s) and no note-on was late by
more than 0.3 ms. In its own process it has its own interpreter, and a crash there
(a driver, a broken model) cannot take the show down: the process is restarted and frames
pass unstyled meanwhile. A show never gives up on it: ``QUICK_RESTARTS`` crashes in a row
are restarted at once, after that it is tried again every ``RESTART_BACKOFF`` seconds
(said in one line, and one more when it is back).

Frames travel through shared memory (two input and two output slots of the frame size,
alternating, so a slot is never written while it is read); a pipe carries the small
messages. The interface is :class:`~livegen.visuals.style_worker.StyleWorker`'s:
``submit`` never blocks and replaces the frame waiting, ``latest`` returns the newest
result.

``processes = 2`` (the default) runs two such children and hands each new frame to an
idle one, so two frames are styled at once: where the music's processes leave part of a
second core idle, that is nearly the frame rate of two networks at the latency of one.
Results are shown only when newer than the one on screen. Measured in the rig (same bench,
compiled, 1 thread each, 60 s runs): one process 28.2-28.5 styled frames/s; two 29.6-30.0
of the 30 rendered (one every 33.0-33.8 ms, eight runs). Two processes keep the machine busier, so they
also run in Linux's SCHED_IDLE class, where they never delay a woken audio or timing
thread (:func:`~livegen.realtime.lower_process_priority`); a single process stays at plain
nice, where it styled faster (eager: 27.7-28.1 frames/s at nice 10, 24.6-26.8 idle).
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

QUICK_RESTARTS = 3  # crashes in a row restarted at once; then one try every RESTART_BACKOFF seconds
RESTART_BACKOFF = 30.0  # seconds between tries once quick restarts did not help (a broken model, a driver)
HEALTHY_SECONDS = 60.0  # a process that styled this long before it crashed starts the count afresh


def _child(conn, model: str, threads: int, compile_: bool, shape: tuple[int, int, int], names: list[str],
           nice: int, idle: bool = False) -> None:
    """The worker process: load, warm up, then stylise the newest frame, forever."""
    from livegen.realtime import lower_process_priority

    lower_process_priority(nice, idle=idle)  # the music's processes come first
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
            _, seq, slot, submitted, weights, intensity, colour = msg
            frame = slots[slot].copy()
            t0 = time.perf_counter()
            out = stylizer(frame, StyleSettings(list(weights), intensity, colour))
            run_ms = (time.perf_counter() - t0) * 1000.0
            slots[2 + slot][...] = out
            conn.send(("done", seq, slot, submitted, run_ms))
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


class _Lane:
    """One child process: its pipe, its four shared-memory slots and its result reader."""

    def __init__(self, owner: "StyleProcess", index: int) -> None:
        self.owner = owner
        self.index = index
        nbytes = owner.height * owner.width * 3
        self.shms = [shared_memory.SharedMemory(create=True, size=nbytes) for _ in range(4)]
        self.slots = [np.ndarray(owner._shape, np.uint8, buffer=s.buf) for s in self.shms]
        self.conn = None
        self.proc = None
        self.reader: threading.Thread | None = None
        self.ready = threading.Event()
        self.busy_since: float | None = None  # a frame was sent and its result is not back yet
        self.queued = False  # and another waits in the pipe behind it
        self.next_slot = 0
        self.restarts = 0
        self.in_a_row = 0  # crashes since the process last ran HEALTHY_SECONDS
        self.ready_at: float | None = None
        self.frames = 0  # sent to this process

    def start(self) -> None:
        o = self.owner
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_child, name=f"livegen-style-{self.index}", daemon=True,
                                args=(child, o.model, o.threads, o.compile, o._shape,
                                      [s.name for s in self.shms], o.nice, len(o.lanes) > 1))
        self.proc.start()
        child.close()
        self.conn = parent
        self.reader = threading.Thread(target=self._read, name=f"livegen-style-results-{self.index}", daemon=True)
        self.reader.start()

    def send(self, frame: np.ndarray, seq: int, settings: StyleSettings) -> None:
        slot = self.next_slot
        self.next_slot ^= 1
        self.frames += 1
        self.slots[slot][...] = frame
        if self.busy_since is None:
            self.busy_since = time.monotonic()
        else:
            if self.queued:
                self.owner.dropped += 1  # the frame waiting here is replaced by this one
            self.queued = True
        try:
            self.conn.send(("frame", seq, slot, time.monotonic(), list(settings.weights),  # type: ignore[union-attr]
                            settings.intensity, settings.preserve_colour))
        except (OSError, BrokenPipeError):
            pass  # the reader thread notices and restarts the process

    def stop(self, timeout: float) -> None:
        if self.conn is not None:
            try:
                self.conn.send(("stop",))
            except (OSError, BrokenPipeError):
                pass
        if self.proc is not None:
            self.proc.join(timeout)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join(5)
            self.proc = None
        if self.reader is not None:
            self.reader.join(5)
            self.reader = None
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        for s in self.shms:
            s.close()
            try:
                s.unlink()
            except FileNotFoundError:
                pass
        self.shms = []

    def _read(self) -> None:
        o = self.owner
        conn = self.conn
        while True:
            try:
                msg = conn.recv()  # type: ignore[union-attr]
            except (EOFError, OSError):
                break
            kind = msg[0]
            if kind == "ready":
                o.compiled = bool(msg[1])
                self.ready_at = time.monotonic()
                self.ready.set()
                o._lane_ready()
                if self.in_a_row > QUICK_RESTARTS:
                    log.info("style network process is back after %d tries; styling frames again", self.in_a_row)
            elif kind == "done":
                _, seq, slot, submitted, run_ms = msg
                # the child takes the newest frame waiting in the pipe next, if any
                self.busy_since = time.monotonic() if self.queued else None
                self.queued = False
                out = self.slots[2 + slot].copy()
                o._publish(StyledFrame(out, seq, submitted, time.monotonic(), True), run_ms)
            elif kind == "error":
                o.errors += 1
                log.log(logging.WARNING if self.in_a_row < QUICK_RESTARTS else logging.DEBUG,
                        "style network process failed: %s; frames are shown unstyled", msg[1])
                break
        if o._stopping:
            return
        self._restart()

    def _restart(self) -> None:
        o = self.owner
        self.ready.clear()
        o._lane_ready()
        self.busy_since = None
        self.queued = False
        if self.proc is not None:
            self.proc.join(2)
            code = self.proc.exitcode
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join(5)
        else:
            code = None
        if self.ready_at is not None and time.monotonic() - self.ready_at >= HEALTHY_SECONDS:
            self.in_a_row = 0
        self.ready_at = None
        self.in_a_row += 1
        if self.in_a_row <= QUICK_RESTARTS:
            log.warning("style network process ended (exit code %s); restarting it (frames unstyled meanwhile)", code)
        else:
            if self.in_a_row == QUICK_RESTARTS + 1:
                log.warning("style network process stopped (exit code %s) %d times in a row; trying it again every "
                            "%g s (%s meanwhile)", code, self.in_a_row, RESTART_BACKOFF,
                            "frames unstyled" if len(o.lanes) == 1 else "the other process styles the frames")
            else:
                log.debug("style network process stopped again (exit code %s); next try in %g s", code, RESTART_BACKOFF)
            if o._stop.wait(RESTART_BACKOFF):
                return
        if o._stopping:
            return
        self.restarts += 1
        o.restarts += 1
        if self.conn is not None:
            self.conn.close()
        self.start()


class StyleProcess(StyleResults):
    """Runs the style network in child processes (see the module docstring)."""

    def __init__(self, model: str | Path, styles: list[str], size: tuple[int, int], threads: int = 1,
                 compile: bool = False, nice: int = 10, processes: int = 2) -> None:
        super().__init__()
        if processes < 1:
            raise ValueError(f"processes must be at least 1, not {processes}")
        self.model = str(model)
        self.styles = list(styles)
        self.height, self.width = size
        self.threads = threads
        self.compile = compile
        self.nice = nice
        self.compiled = False
        self._shape = (self.height, self.width, 3)
        self._stopping = False
        self._stop = threading.Event()  # wakes a lane waiting to try its process again
        self.restarts = 0
        self.stale = 0  # results that came back after a newer frame's: not shown
        self.lanes = [_Lane(self, i) for i in range(processes)]
        self.stylizer = self  # what reports read: .styles, .compiled

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> "StyleProcess":
        for lane in self.lanes:
            lane.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the processes to finish, join them (kill any that will not), free the memory."""
        self._stopping = True
        self._stop.set()
        for lane in self.lanes:
            lane.stop(timeout)

    def _lane_ready(self) -> None:
        """``ready`` is set once every process is warmed up, and while any one is."""
        states = [lane.ready.is_set() for lane in self.lanes]
        if all(states) or (self.ready.is_set() and any(states)):
            self.ready.set()
        elif not any(states):
            self.ready.clear()

    # -- frames ----------------------------------------------------------------------------
    def submit(self, frame: np.ndarray, settings: StyleSettings) -> int:
        """Offer a frame (never blocks); frames of another size pass through unstyled.

        An idle process takes it; when all are busy, the one that has been busy longest
        (the first to be free) gets it in place of whatever waited there.
        """
        with self._cond:
            self._seq += 1
            seq = self._seq
            self.submitted += 1
        live = [lane for lane in self.lanes if lane.ready.is_set() and lane.conn is not None]
        if frame.shape != self._shape or not live:
            return seq
        idle = [lane for lane in live if lane.busy_since is None]
        if idle:
            lane = idle[0]
        else:
            lane = min(live, key=lambda ln: ln.busy_since or 0.0)
        lane.send(frame, seq, settings)
        return seq

    def _publish(self, result: StyledFrame, run_ms: float) -> None:
        with self._cond:  # re-entrant: the base class takes it again
            if self._latest is not None and result.seq < self._latest.seq:
                self.stale += 1  # a slower process finished an older frame: keep the newer picture
                return
            super()._publish(result, run_ms)

    def stats(self) -> dict[str, float]:
        return {**super().stats(), "restarts": self.restarts, "processes": len(self.lanes), "stale": self.stale}
