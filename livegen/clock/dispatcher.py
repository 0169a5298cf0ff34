"""The dispatch thread: hands events to outputs at their absolute deadlines.

The event loop computes *what* happens and *when*, a little ahead of time; this thread
makes it happen *on time*, whatever the loop is doing (drawing, parsing a burst of OSC,
reloading a patch). It sleeps until shortly before the next deadline, then spins to it:
OS timers and asyncio wake up about a millisecond late, the spin does not. Each output
gets each event ``output.lead`` seconds early (the synth places notes at the exact sample
itself), so one slow output cannot delay another: outputs must not block in ``send``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import sys
import threading
import time
from typing import Callable, Iterable, Sequence

from livegen.events import AllNotesOff, NoteOff, NoteOn, OutEvent, Output
from livegen import realtime
from livegen.realtime import raise_thread_priority

log = logging.getLogger("livegen")

# Wake this long before a deadline and spin the rest. Measured here (a VM): a real-time
# thread's timed wake-up is now and then late by 1-3 ms; a 2 ms spin hides most of that
# (probe: 1500 waits, p99 0.18 ms late with the spin, 0.9 ms without).
SPIN_SECONDS = 0.002
SWITCH_INTERVAL = 0.0001  # seconds: how long another thread may hold the GIL while we wait


class Dispatcher:
    """A deadline queue per output, served by one thread."""

    def __init__(self, outputs: Sequence[Output] = (), clock: Callable[[], float] = time.monotonic,
                 spin: float = SPIN_SECONDS, priority: int | None = realtime.DISPATCH) -> None:
        self._outputs: list[Output] = list(outputs)
        self._now = clock
        self._spin = spin
        self._heap: list[tuple[float, int, Output, OutEvent]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._running = False
        self._priority = priority
        self.on_emit: Callable[[Output, OutEvent, float, float], None] | None = None  # benchmarks: (output, event, send began, send ended)
        self.errors = 0
        self._panics = 0  # panics so far: a batch taken off the heap before one drops its notes
        self._send_lock = threading.RLock()  # held for each send: panic sends from the caller's thread
        self._notes_since_panic = True  # a note scheduled since the last panic (see panic's unless_quiet)

    # -- outputs ---------------------------------------------------------------------
    @property
    def outputs(self) -> list[Output]:
        return list(self._outputs)

    def add_output(self, output: Output) -> None:
        with self._cond:
            self._outputs.append(output)

    def replace_output(self, old: Output, new: Output) -> None:
        """Put ``new`` where ``old`` was (a device reopened): from now on it gets every event,
        and the events still pending for ``old`` go to ``new`` at its own lead. Safe from any
        thread; ``old`` gets nothing more (an event being sent to it right now excepted)."""
        with self._cond:
            self._outputs = [new if out is old else out for out in self._outputs]
            if new not in self._outputs:
                self._outputs.append(new)
            self._heap = [(e.time - new.lead, seq, new, e) if out is old else (due, seq, out, e)
                          for due, seq, out, e in self._heap]
            heapq.heapify(self._heap)
            self._cond.notify()

    # -- scheduling ------------------------------------------------------------------
    def schedule(self, event: OutEvent, outputs: Iterable[Output] | None = None) -> None:
        """Deliver ``event`` to every output (or the given ones) at ``event.time - lead``."""
        with self._cond:
            targets = self._outputs if outputs is None else outputs
            if isinstance(event, NoteOn):
                self._notes_since_panic = True
            for out in targets:
                heapq.heappush(self._heap, (event.time - out.lead, next(self._seq), out, event))
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def panic(self, t: float | None = None, unless_quiet: bool = False) -> bool:
        """Drop every pending note and silence every output now, from the caller's thread.

        Each output gets its all-notes-off right here rather than from the dispatch thread:
        waking that thread first cost a panic 0.3-1 ms, enough to miss an audio period.
        Outputs with ``silence()`` (see :class:`~livegen.events.Output`) are silenced first. The
        dispatch thread sends under the same lock, so the two never send to an output at
        once, and a note it took off the heap before the panic is either sent before the
        all-notes-off or not at all (a note-on after it would sound with its note-off gone).
        Each output's all-notes-off is dated ``lead`` ahead: the notes it was handed early, up
        to that time, are pending there and must go too (their note-offs were just dropped here).

        With ``unless_quiet`` it does nothing when no note was scheduled since the last panic
        (the loop's share of a panic heard off the loop: only what the loop scheduled
        meanwhile could sound). Returns whether it silenced the outputs.
        """
        now = self._now() if t is None else t
        with self._cond:
            if unless_quiet and not self._notes_since_panic:
                return False
            self._notes_since_panic = False
            self._panics += 1
            self._heap = [e for e in self._heap if not isinstance(e[3], (NoteOn, NoteOff))]
            heapq.heapify(self._heap)
            outputs = list(self._outputs)
        with self._send_lock:
            quiet = [out for out in outputs if callable(getattr(out, "silence", None))]
            for out in quiet:  # memory writes: silent before any pipe or port write below
                try:
                    out.silence()
                except Exception:
                    self.errors += 1
                    log.exception("output %s failed to fall silent", getattr(out, "name", out))
            for out in [o for o in outputs if o not in quiet] + quiet:  # the still sounding first
                self._send(out, AllNotesOff(now + max(0.0, out.lead)))
        return True

    def _send(self, out: Output, event: OutEvent) -> None:
        """Hand ``event`` to ``out`` (holding ``_send_lock``); an output failing must not stop the others."""
        t_send = self._now()
        try:
            out.send(event)
        except Exception:
            self.errors += 1
            log.exception("output %s failed on %s", getattr(out, "name", out), type(event).__name__)
        if self.on_emit is not None:
            self.on_emit(out, event, t_send, self._now())

    # -- the thread ------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        if sys.getswitchinterval() > SWITCH_INTERVAL:
            sys.setswitchinterval(SWITCH_INTERVAL)
        self._running = True
        self._thread = threading.Thread(target=self._run, name="livegen-dispatch", daemon=True)
        self._thread.start()

    def stop(self, flush: bool = True, timeout: float = 2.0) -> None:
        """Stop the thread; with ``flush`` deliver what is due within ``timeout`` first."""
        if self._thread is None:
            return
        if flush:
            deadline = self._now() + timeout
            while self._now() < deadline:
                with self._cond:
                    if not self._heap or self._heap[0][0] > deadline:
                        break
                time.sleep(0.005)
        with self._cond:
            self._running = False
            self._cond.notify()
        self._thread.join(timeout)
        self._thread = None

    def _raise_priority(self) -> None:
        if self._priority is not None:
            granted = raise_thread_priority(self._priority)
            log.debug("dispatch thread priority: %s", granted)

    def _run(self) -> None:
        self._raise_priority()
        now = self._now
        cond = self._cond
        while True:
            with cond:
                while self._running and (not self._heap or self._heap[0][0] - now() > self._spin):
                    timeout = None if not self._heap else self._heap[0][0] - now() - self._spin
                    cond.wait(timeout)
                if not self._running:
                    return
                due = self._heap[0][0]
            # Spin (outside the lock, so the loop can keep scheduling) to the deadline.
            while now() < due:
                pass
            with cond:
                batch = []
                t = now()
                panics = self._panics
                while self._heap and self._heap[0][0] <= t:
                    batch.append(heapq.heappop(self._heap))
            for _due, _seq, out, event in batch:
                with self._send_lock:
                    if self._panics != panics and isinstance(event, (NoteOn, NoteOff)):
                        continue  # a panic came in meanwhile and silenced the outputs: too late for it
                    self._send(out, event)
