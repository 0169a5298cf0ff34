"""Machine stall probe: tells an underrun the machine caused from one livegen caused.

On a virtual machine the hypervisor sometimes takes a core away for milliseconds (the
"steal" of /proc/stat, counted only in 10 ms ticks). Then even JACK's own thread misses
its period, and no code of ours could have helped. To see it when it happens, one
process per core, pinned to it, wakes every millisecond at a real-time priority above
JACK's and everything of livegen, and notes each wake-up that came late by more than a
threshold. At that priority only the machine (the hypervisor, or the kernel with
interrupts off) can make it late; an underrun at a moment with no stall on any core is
ours to explain.

Each wake-up costs microseconds: about 1.5 % of a core per probe (both probes for 20 s
used 0.97 s of CPU, three Python start-ups included).

Run on its own: ``python -m livegen.bench.stall_probe [--seconds N]``; it prints one JSON
line per core when its stdin closes or time runs out.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import time
from typing import Callable

# Above JACK's server thread (10 by default) and all of livegen's (realtime.py): only the
# machine can keep a thread of this priority from running.
PRIORITY = 50
TICK = 0.001  # s between wake-ups
STALL_OVER = 0.002  # s late: a stall (an underrun needs a thread late by most of a 5.33 ms period)
LATE_EDGES = (0.0005, 0.001, 0.002, 0.005)  # s: counted, for the distribution
MAX_STALLS = 10_000  # kept, the earliest; more are counted only


def _watch(cpu: int, seconds: float, stopped: Callable[[], bool]) -> dict:
    """Wake every TICK on ``cpu`` until ``stopped()`` (asked ten times a second) or
    ``seconds``; what came late, and when."""
    pinned = policy = False
    try:
        os.sched_setaffinity(0, {cpu})
        pinned = True
    except (AttributeError, OSError):
        pass
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(PRIORITY))
        policy = True
    except (AttributeError, OSError):
        pass
    late_counts = [0] * len(LATE_EDGES)
    stalls: list[list[float]] = []
    n_stalls = wakeups = 0
    max_late = 0.0
    clock, sleep = time.monotonic, time.sleep
    start = clock()
    deadline = start + seconds
    target = start
    while wakeups % 100 or not stopped():
        target += TICK
        now = clock()
        if target > now:
            sleep(target - now)
            now = clock()
        late = now - target
        wakeups += 1
        if late > max_late:
            max_late = late
        if late > LATE_EDGES[0]:
            for i, edge in enumerate(LATE_EDGES):
                if late > edge:
                    late_counts[i] += 1
            if late > STALL_OVER:
                n_stalls += 1
                if len(stalls) < MAX_STALLS:
                    stalls.append([round(target, 4), round(late * 1e3, 2)])  # (monotonic s, ms late)
            if late > TICK:  # start the grid again from now: one stall counted once
                target = now
        if now >= deadline:
            break
    return {"cpu": cpu, "pinned": pinned, "fifo": policy, "priority": PRIORITY if policy else None,
            "seconds": round(clock() - start, 2), "wakeups": wakeups,
            "late_ms": {f">{e * 1e3:g}": n for e, n in zip(LATE_EDGES, late_counts)},
            "max_late_ms": round(max_late * 1e3, 3), "stalls": n_stalls, "stall_times": stalls}


def _stdin_closed() -> bool:
    """True once whoever started us closed our stdin (the way to stop a probe)."""
    try:
        if select.select([sys.stdin], [], [], 0)[0]:
            return not os.read(sys.stdin.fileno(), 4096)
    except (OSError, ValueError):
        return True
    return False


def _probe_main(cpu: int, seconds: float) -> None:
    result = _watch(cpu, seconds, _stdin_closed)
    try:
        print(json.dumps(result), flush=True)
    except BrokenPipeError:
        pass


class StallProbe:
    """One probe process per core, from ``start()`` to ``stop()``."""

    def __init__(self, seconds: float = 24 * 3600.0) -> None:
        self.seconds = seconds
        self.procs: list[subprocess.Popen] = []

    def start(self) -> "StallProbe":
        try:
            cpus = sorted(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cpus = list(range(os.cpu_count() or 1))
        for cpu in cpus:
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "livegen.bench.stall_probe", "--cpu", str(cpu), "--seconds", str(self.seconds)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE))
        return self

    @property
    def pids(self) -> set[int]:
        return {p.pid for p in self.procs}

    def stop(self) -> list[dict]:
        """Each core's report (an empty list when no probe ran)."""
        out = []
        for p in self.procs:
            try:
                text, _ = p.communicate(b"", timeout=10)
                lines = text.decode().strip().splitlines()
                if lines:
                    out.append(json.loads(lines[-1]))
            except (subprocess.TimeoutExpired, ValueError):
                p.kill()
                p.wait()
        self.procs = []
        return out


def stalls_near(times: list[float], probes: list[dict], within: float = 0.05) -> list[float | None]:
    """For each time, the longest machine stall (ms) on any core that began within ``within``
    seconds before it, or None: a stall explains an underrun that follows it closely."""
    found: list[float | None] = []
    stalls = [(t, ms) for p in probes for t, ms in p.get("stall_times", [])]
    for u in times:
        near = [ms for t, ms in stalls if -0.01 <= u - t <= within + ms / 1e3]
        found.append(max(near) if near else None)
    return found


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cpu", type=int, help="watch this core only (in this process)")
    p.add_argument("--seconds", type=float, default=24 * 3600.0, help="stop after this long")
    args = p.parse_args()
    if args.cpu is not None:
        _probe_main(args.cpu, args.seconds)
        return 0
    probe = StallProbe(args.seconds).start()
    try:
        if args.seconds < 24 * 3600.0:
            time.sleep(args.seconds + 1.0)
        else:
            sys.stdin.buffer.read()
    except KeyboardInterrupt:
        pass
    for r in probe.stop():
        print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
