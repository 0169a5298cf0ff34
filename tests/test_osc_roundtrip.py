"""``livegen bench osc-roundtrip`` with a handful of beats: the echoes come back through each
real peer program, and every launcher stops what it started. No timing assertions (the
figures come from the benchmark command)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from livegen.bench import osc_roundtrip as bench
from livegen.outputs.osc_out import encode

REPO = Path(__file__).resolve().parent.parent
PD_PATCH = REPO / "examples" / "pd" / "livegen.pd"
BEATS = 12


def _skip_reason(kind: str) -> str | None:
    if kind == "liblo" and importlib.util.find_spec("pyliblo3") is None:
        return "pyliblo3 not installed (pip install pyliblo3)"
    if kind == "pd" and shutil.which("pd") is None:
        return "pd not installed (apt-get install puredata-core); .ci/run installs it"
    if kind == "pd" and not PD_PATCH.is_file():
        return f"{PD_PATCH.relative_to(REPO)} is missing"
    return None


def test_the_bench_gets_every_echo_back_from_the_python_peer(tmp_path: Path) -> None:
    out = tmp_path / "rt.json"
    proc = subprocess.run([sys.executable, "-m", "livegen", "--log-file", str(tmp_path / "log"), "bench",
                           "osc-roundtrip", "--peer", "python", "--beats", str(BEATS), "--interval-ms", "2",
                           "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    [r] = report["results"]
    assert r["peer"] == "python" and r["sent"] == BEATS
    assert r["echoed"] == BEATS and r["lost"] == 0 and r["duplicates"] == 0
    assert 0 < r["min_ms"] <= r["median_ms"] <= r["p99_ms"] <= r["max_ms"]
    assert "median" in proc.stdout and "python" in proc.stdout


@pytest.mark.parametrize("kind", bench.PEERS)
def test_each_peer_starts_echoes_and_stops(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    reason = _skip_reason(kind)
    if reason:
        pytest.skip(reason)
    started: list[bench.PeerProcess] = []
    real_make_peer = bench.make_peer

    def recording_make_peer(*args, **kwargs) -> bench.PeerProcess:
        peer = real_make_peer(*args, **kwargs)
        started.append(peer)
        return peer

    monkeypatch.setattr(bench, "make_peer", recording_make_peer)
    r = asyncio.run(bench.measure_peer(kind, BEATS, 0.003, PD_PATCH))
    assert r["echoed"] == BEATS and r["lost"] == 0, r
    [peer] = started
    assert peer.proc is not None and peer.proc.poll() is not None  # stopped, nothing left running


def test_a_missing_peer_is_reported_not_fatal(tmp_path: Path) -> None:
    r = bench.run(["pd"], beats=3, pd_patch=tmp_path / "nowhere.pd", log=lambda line: None)
    assert r["results"] == []
    assert "nowhere.pd" in r["skipped"]["pd"]
    assert "not measured" in bench.format_report(r)


def test_echoes_as_floats_count_like_pure_data_sends_them() -> None:
    listener = bench.EchoListener()
    listener.datagram_received(encode(bench.ECHO, ("f", 7.0)), ("127.0.0.1", 1))
    listener.datagram_received(encode(bench.ECHO, ("i", 8)), ("127.0.0.1", 1))
    listener.datagram_received(encode(bench.ECHO, ("i", 8)), ("127.0.0.1", 1))
    listener.datagram_received(encode(bench.ECHO, ("f", 9.5)), ("127.0.0.1", 1))  # not a beat number
    listener.datagram_received(b"junk", ("127.0.0.1", 1))
    assert sorted(listener.arrivals) == [7, 8]
    assert listener.duplicates == 1 and listener.other == 2
