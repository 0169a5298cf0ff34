"""Asking the OS to run the time-critical threads first.

The dispatch thread and the audio callback have deadlines measured in milliseconds while
the style network may keep every core busy. Where the OS lets us (root, or an rtprio
limit as audio users on Linux usually have), they run SCHED_FIFO; otherwise they ask for
a higher nice priority; otherwise they stay as they are. Both steps are best effort.

JACK comes first: its server thread (10 by default) and every client's process thread
(libjack gives them the server's priority less 5). Every client must finish each period or
the whole graph misses it (an xrun, a click for every client), and their work takes
microseconds. Our own real-time threads therefore sit below the clients: the timing
server's dispatch thread, which spins for up to 2 ms before each deadline, then the synth's
render thread, whose 16 ms of blocks rendered ahead absorb any wait, then the main
process's dispatch thread. (A 30-minute soak once had a MIDI lister and the controller's
port, both at JACK's client priority, miss a period, jackd's own thread on time; those
threads were above them then, which could hold both cores. Not caught in the act; with the
order below, the next 30-minute soak had no xrun.) The audio callback is a JACK client thread itself, raised to
``JACK_CLIENT`` where JACK left it lower.

A real-time Python thread still needs the GIL. In the audio and timing processes every
other Python thread that can hold it runs real-time too (``GIL_HOLDER``, the lowest
real-time priority there is): an ordinary thread holding the GIL can be pre-empted by the
rest of the show for a whole scheduler slice (milliseconds), and the audio callback or the
dispatch thread waits that long for it (a priority inversion). Measured in 4-minute soaks:
note-ons late by more than 1 ms went from 2 to 0 (the latest from 1.08 ms to 0.11 ms), and
audio callbacks that began more than 3 ms late from 3 to 0.

The main process's control input threads (``CONTROL_IN``) share that lowest priority: a
panic acts on them, and a busy show must not keep them waiting for a core.
"""


from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger("livegen")

JACK_CLIENT = 8  # the audio callback and MIDI ports' JACK threads, when JACK did not set one
TIMING_DISPATCH = 4  # the timing server's dispatch thread (MIDI/OSC out), below JACK's clients (5 under a default server)
RENDER = 3  # the synth's render-ahead thread: below the dispatch thread, its render-ahead absorbs a 2 ms spin
DISPATCH = 2  # the main process's dispatch thread (events to the synth, 30 ms ahead)
GIL_HOLDER = 1  # the other Python threads of the audio and timing processes (see above)
# The main process's OSC receiver and MIDI poll threads, where a panic acts (livegen.control.urgent):
# they wake for a datagram or once a millisecond and hold the GIL for microseconds each time.
CONTROL_IN = 1


def _set_fifo(tid: int, priority: int) -> bool:
    """SCHED_FIFO at ``priority`` for thread ``tid`` (0 = this one), never lowering a
    real-time priority someone (JACK) already gave it."""
    try:
        if os.sched_getscheduler(tid) in (os.SCHED_FIFO, os.SCHED_RR) and os.sched_getparam(tid).sched_priority >= priority:
            return True
        os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(priority))
        return True
    except (AttributeError, OSError):
        return False


def raise_thread_priority(fifo_priority: int, nice: int = -10) -> str:
    """Raise the calling thread's priority; returns what was granted ("fifo", "nice" or "none")."""
    if _set_fifo(0, fifo_priority):  # Linux: 0 means the calling thread
        return "fifo"
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        return "nice"
    except (AttributeError, OSError):
        return "none"


def lower_process_priority(nice: int = 10, idle: bool = False) -> None:
    """For workers that must yield to the music (the style network, benchmarks' load).

    ``idle`` also puts the process in Linux's SCHED_IDLE class: it runs only on CPU time
    nothing else wants, so it never delays a woken audio or timing thread. Measured with
    two style processes on this 2-core machine (``livegen bench timing --style``): at nice
    10, 2 of 3 one-minute runs had an audio underrun; in SCHED_IDLE, none of 8 did, at the
    same styled frame rate (29.6-30.0 frames/s).
    """
    try:
        os.nice(nice)
    except OSError:
        pass
    if idle and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except OSError:
            pass


def lower_thread_priority(nice: int = 10) -> bool:
    """Make the calling thread yield to the music (Linux: nice is per thread); best effort."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        return True
    except (AttributeError, OSError):
        return False


def thread_ids() -> set[int]:
    """Native ids of this process's threads (Linux); empty where /proc is not available."""
    try:
        return {int(t) for t in os.listdir("/proc/self/task")}
    except OSError:
        return set()


class PromoteNewThreads:
    """Give real-time priority to the threads a library starts inside the ``with`` block.

    A MIDI port on JACK is a JACK client whose process thread must finish every period or
    the whole graph misses it (an xrun: a click in everyone's audio). JACK gives that
    thread real-time priority only when the server itself runs real-time; this does it in
    any case, where the OS allows.
    """

    def __init__(self, fifo_priority: int = JACK_CLIENT) -> None:
        self.priority = fifo_priority
        self.promoted: list[int] = []

    def __enter__(self) -> "PromoteNewThreads":
        self._before = thread_ids()
        return self

    def __exit__(self, *exc: object) -> None:
        # Only threads the library started: a Python thread another part of the program
        # started meanwhile (a worker, a renderer) must not become real-time.
        python_threads = {t.native_id for t in threading.enumerate()}
        for tid in sorted(thread_ids() - self._before - python_threads):
            if _set_fifo(tid, self.priority):
                self.promoted.append(tid)
