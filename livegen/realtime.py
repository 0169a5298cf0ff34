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
