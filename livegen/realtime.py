"""Asking the OS to run the time-critical threads first.

The dispatch thread and the audio callback have deadlines measured in milliseconds while
the style network may keep every core busy. Where the OS lets us (root, or an rtprio
limit as audio users on Linux usually have), they run SCHED_FIFO; otherwise they ask for
a higher nice priority; otherwise they stay as they are. Both steps are best effort.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger("livegen")


def raise_thread_priority(fifo_priority: int, nice: int = -10) -> str:
    """Raise the calling thread's priority; returns what was granted ("fifo", "nice" or "none")."""
    try:  # Linux: pid 0 means the calling thread
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(fifo_priority))
        return "fifo"
    except (AttributeError, OSError):
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        return "nice"
    except (AttributeError, OSError):
        return "none"


def lower_process_priority(nice: int = 10) -> None:
    """For workers that must yield to the music (the style network, benchmarks' load)."""
    try:
        os.nice(nice)
    except OSError:
        pass


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

    def __init__(self, fifo_priority: int = 25) -> None:
        self.priority = fifo_priority
        self.promoted: list[int] = []

    def __enter__(self) -> "PromoteNewThreads":
        self._before = thread_ids()
        return self

    def __exit__(self, *exc: object) -> None:
        for tid in sorted(thread_ids() - self._before):
            try:
                os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(self.priority))
                self.promoted.append(tid)
            except (AttributeError, OSError):
                pass
