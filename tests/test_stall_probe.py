"""The machine stall probe sees a core taken away, and places it next to an underrun."""

from __future__ import annotations

import os
import signal
import time

from livegen.bench.stall_probe import StallProbe, stalls_near


def test_a_probe_held_still_reports_the_stall_when_it_happened():
    probe = StallProbe(seconds=30).start()
    try:
        time.sleep(0.5)  # both started and ticking
        victim = probe.procs[0]
        stopped_at = time.monotonic()
        os.kill(victim.pid, signal.SIGSTOP)  # what a hypervisor taking the core looks like to it
        time.sleep(0.08)
        os.kill(victim.pid, signal.SIGCONT)
        time.sleep(0.3)
    finally:
        reports = probe.stop()
    assert len(reports) == len(os.sched_getaffinity(0))
    held = next(r for r in reports if r["cpu"] == min(os.sched_getaffinity(0)))
    assert held["pinned"] and held["wakeups"] > 500
    assert held["stalls"] >= 1 and held["max_late_ms"] >= 70
    t, late_ms = max(held["stall_times"], key=lambda s: s[1])
    assert abs(t - stopped_at) < 0.02 and 70 <= late_ms < 500
    assert held["late_ms"][">5"] >= 1
    # An underrun just after the stall is put down to it; one long after is not.
    assert stalls_near([t + late_ms / 1e3 + 0.006, t + 5.0], reports) == [late_ms, None]


def test_stalls_near_looks_only_just_before_each_time():
    probes = [{"stall_times": [[100.0, 6.0], [200.0, 3.0]]}, {"stall_times": [[200.001, 9.0]]}]
    assert stalls_near([100.02, 99.0, 200.01, 300.0], probes) == [6.0, None, 9.0, None]
