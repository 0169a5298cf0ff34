"""The 2-minute soak: the default patch under random control input stays up and bounded.

The soak's timing targets (0 underruns, no note late by > 3 ms) are the benchmark's to
report, on an idle machine; this test checks what must hold on any machine: the show ran
the whole time, the storm of control input was applied, notes and frames kept coming,
nothing failed inside, and memory did not run away.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.jack
def test_two_minute_soak_of_the_default_patch(jack_server, tmp_path):
    report_path, log_path = tmp_path / "soak.json", tmp_path / "soak.log"
    env = dict(os.environ, MIDO_BACKEND="mido.backends.rtmidi/UNIX_JACK", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "livegen", "--log-file", str(log_path), "soak",
                           str(ROOT / "patches" / "default.toml"), "--minutes", "2", "--sample-seconds", "10",
                           "--json", str(report_path)],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Traceback" not in log_path.read_text()
    r = json.loads(report_path.read_text())
    print(proc.stdout)

    assert r["minutes"] >= 1.95
    assert len(r["samples"]) >= 12
    c = r["controller"]
    assert c["osc"] > 15000 and c["midi"] > 3000  # ~200 OSC and ~50 MIDI messages a second
    # Everything not junk is valid: most of it arrives and is applied (UDP on loopback may
    # drop a few when the machine is busy).
    assert r["osc"]["applied"] > 0.8 * (c["osc"] - c["osc_junk"])
    assert r["osc"]["malformed"] > 0 and r["osc"]["rejected"] > 0  # the junk was seen, and refused
    assert r["midi_received"] > 0.8 * c["midi"], "livegen did not hear the controller's MIDI"
    assert r["notes"]["notes"] > 100, "the music stopped"
    audio = r["audio"]
    assert isinstance(audio, dict) and audio["callbacks"] > 0.9 * 120 * 48000 / 256
    # Counted, not judged (timing is the benchmark's): late starts nest, the stolen time is read.
    lags = audio["callbacks_started_late_ms"]
    assert list(lags) == [">0.5", ">1", ">2", ">3"] and lags[">0.5"] >= lags[">1"] >= lags[">2"] >= lags[">3"] >= 0
    assert r["cpu_stolen_s"] >= 0.0 and "CPU time stolen" in proc.stdout
    # Each underrun is given its time, and the machine was watched for stalls on every core.
    # (the synth keeps its last 64; the soak gathers them at every reading)
    assert min(audio["underruns"], 64) <= len(audio["underruns_at_s"]) <= audio["underruns"]
    assert all(0.0 <= t <= r["minutes"] * 60 + 0.6 for t in audio["underruns_at_s"])  # (minutes: to 0.01)
    assert len(audio["machine_stall_ms_at_underrun"]) == len(audio["underruns_at_s"])
    ms = r["machine_stalls"]
    assert ms["probes"] == len(os.sched_getaffinity(0)) and "machine stalls" in proc.stdout
    assert ms["stalls"] == len(ms["stalls_at_s"]) and ms["max_late_ms"] >= 0.0
    f = r["frames"]
    assert f["shown"] > 0.5 * f["asked"] and f["styled"] > 0, "the visuals stopped"
    assert f["style_errors"] == 0 and f["style_restarts"] == 0
    assert r["engine"]["generator_errors"] == 0
    assert r["alive_at_end"] == {"audio": True, "timing": True}
    m = r["rss_mb"]
    assert m["all_max"] - m["all_start"] < 50.0, f"memory grew {m['all_max'] - m['all_start']:.1f} MB in 2 minutes"
    assert {"main", "audio", "timing", "style-0", "style-1"} <= set(m["per_process_end"])
