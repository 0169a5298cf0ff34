"""``livegen bench link``: do two livegen instances on Ableton Link land their bars together?

Starts two ``livegen play`` processes on ``patches/link.toml``'s setup (clock source
``link``, no audio, no window), each sending its beats over OSC to this process with its
own prefix. Once the two have found each other, it times their downbeats as they arrive
here for some bars, then changes the tempo of instance A over OSC (``/livegen/tempo``) and
measures how long instance B takes to follow and the downbeat differences after the change.

A downbeat of A is paired with B's nearest one (their bar *numbers* may differ: each
instance counts its own bars; Link aligns where bars start). Both instances send beats
from their dispatch threads at the beat's time, so the differences include their dispatch
jitter, as an audience would hear it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from pythonosc.osc_message import OscMessage
from pythonosc.udp_client import SimpleUDPClient

PATCH = """[patch]
name = "link-bench-{tag}"
[clock]
bpm = {bpm}
beats_per_bar = {bpb}
source = "link"
[key]
tonic = "E"
scale = "minor"
[[generators]]
name = "arp"
kind = "arpeggiator"
voice = "pluck"
[audio]
enabled = false
[osc]
host = "127.0.0.1"
port = {port}
[[osc.targets]]
name = "bench"
host = "127.0.0.1"
port = {listen}
prefix = "/bench/{tag}"
send = ["beats"]
[visuals]
enabled = false
"""


@dataclass
class Downbeats:
    """Arrival times of each instance's downbeats, and the tempo each last reported."""

    times: dict[str, list[float]] = field(default_factory=lambda: {"a": [], "b": []})
    bpm: dict[str, float] = field(default_factory=dict)
    bpm_at: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: {"a": [], "b": []})


class _Listener(asyncio.DatagramProtocol):
    def __init__(self, beats: Downbeats) -> None:
        self.beats = beats

    def datagram_received(self, data: bytes, addr) -> None:
        t = time.monotonic()
        try:
            msg = OscMessage(data)
        except Exception:
            return
        parts = msg.address.split("/")  # "", "bench", tag, "beat"
        if len(parts) != 4 or parts[3] != "beat" or parts[2] not in ("a", "b"):
            return
        tag = parts[2]
        _beat, _bar, in_bar, bpm = msg.params
        if self.beats.bpm.get(tag) != bpm:
            self.beats.bpm_at[tag].append((t, float(bpm)))
        self.beats.bpm[tag] = float(bpm)
        if in_bar == 0:
            self.beats.times[tag].append(t)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pair_downbeats(a: list[float], b: list[float], bar_seconds: float, after: float = 0.0) -> list[float]:
    """B minus A (ms) for each downbeat of A after ``after`` that has one of B within half a bar."""
    out = []
    for ta in a:
        if ta < after or not b:
            continue
        tb = min(b, key=lambda x: abs(x - ta))
        if abs(tb - ta) < bar_seconds / 2:
            out.append((tb - ta) * 1000.0)
    return out


def _stats(diffs: list[float]) -> dict:
    if not diffs:
        return {"bars": 0}
    ab = sorted(abs(d) for d in diffs)
    return {"bars": len(diffs), "median_abs_ms": statistics.median(ab),
            "p99_abs_ms": ab[min(len(ab) - 1, int(round(0.99 * (len(ab) - 1))))],
            "max_abs_ms": ab[-1], "mean_ms": statistics.mean(diffs)}


async def measure(bpm: float = 120.0, new_bpm: float = 150.0, beats_per_bar: int = 4, bars: int = 16,
                  discover_s: float = 15.0) -> dict:
    loop = asyncio.get_running_loop()
    beats = Downbeats()
    listen = _free_udp_port()
    transport, _ = await loop.create_datagram_endpoint(lambda: _Listener(beats), local_addr=("127.0.0.1", listen))
    ports = {"a": _free_udp_port(), "b": _free_udp_port()}
    procs: dict[str, subprocess.Popen] = {}
    tmp = Path(tempfile.mkdtemp(prefix="livegen-link-"))
    logs = {}
    try:
        for tag in ("a", "b"):
            path = tmp / f"{tag}.toml"
            # B asks for another tempo: it must take the session's (A's) when it joins.
            path.write_text(PATCH.format(tag=tag, bpm=bpm if tag == "a" else bpm * 0.8, bpb=beats_per_bar,
                                         port=ports[tag], listen=listen))
            logs[tag] = open(tmp / f"{tag}.log", "w")
            procs[tag] = subprocess.Popen([sys.executable, "-m", "livegen", "play", str(path), "--no-window",
                                           "--no-audio", "--no-reload"], stdout=logs[tag], stderr=subprocess.STDOUT)
            await asyncio.sleep(1.0 if tag == "a" else 0.0)  # A starts the session
        bar_s = 60.0 / bpm * beats_per_bar
        t_up = time.monotonic()
        while not (beats.bpm.get("a") and beats.bpm.get("b")):  # both playing (startup takes seconds)
            if time.monotonic() - t_up > 60.0 or any(p.poll() is not None for p in procs.values()):
                return {"error": "the two instances did not start playing",
                        "logs": {t: (tmp / f"{t}.log").read_text()[-2000:] for t in ("a", "b")}}
            await asyncio.sleep(0.1)
        # Discovery: both sending downbeats at A's tempo, bars within a few ms.
        t0 = time.monotonic()
        found = None
        while time.monotonic() - t0 < discover_s:
            await asyncio.sleep(0.25)
            # One session: one tempo (whichever peer's Link kept: usually A's, it started first)
            # and downbeats together.
            session_bpm = beats.bpm.get("a")
            if session_bpm and beats.bpm.get("b") == session_bpm:
                bar_s = 60.0 / session_bpm * beats_per_bar
                recent = pair_downbeats(beats.times["a"], beats.times["b"], bar_s, after=time.monotonic() - 2 * bar_s)
                if recent and abs(recent[-1]) < 10.0:
                    found = time.monotonic()
                    break
        if found is None:
            return {"error": f"the two instances did not join one Link session within {discover_s:.0f} s "
                             f"(tempo a {beats.bpm.get('a')}, b {beats.bpm.get('b')}); multicast on this network?",
                    "logs": {t: (tmp / f"{t}.log").read_text()[-2000:] for t in ("a", "b")}}
        await asyncio.sleep(bars * bar_s)
        steady = pair_downbeats(beats.times["a"], beats.times["b"], bar_s, after=found)
        # Tempo change on A only.
        client = SimpleUDPClient("127.0.0.1", ports["a"])
        t_change = time.monotonic()
        client.send_message("/livegen/tempo", float(new_bpm))
        new_bar_s = 60.0 / new_bpm * beats_per_bar
        await asyncio.sleep(bars * new_bar_s + 1.0)
        followed = {tag: next((t - t_change for t, v in beats.bpm_at[tag] if t >= t_change and v == new_bpm), None)
                    for tag in ("a", "b")}
        after = pair_downbeats(beats.times["a"], beats.times["b"], new_bar_s, after=t_change + 0.5 * new_bar_s)
        first = after[:2]
        return {"bpm": session_bpm, "asked_bpm": {"a": bpm, "b": bpm * 0.8}, "new_bpm": new_bpm, "beats_per_bar": beats_per_bar,
                "discovery_s": found - t0, "steady": _stats(steady), "after_change": _stats(after),
                "first_bars_after_change_ms": first,
                "tempo_reached_s": followed, "final_bpm": dict(beats.bpm)}
    finally:
        for tag, p in procs.items():
            try:
                SimpleUDPClient("127.0.0.1", ports[tag]).send_message("/livegen/quit", [])
            except OSError:
                pass
        for p in procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        for f in logs.values():
            f.close()
        transport.close()


def report(r: dict) -> str:
    if "error" in r:
        return "livegen bench link: " + r["error"]
    s, a = r["steady"], r["after_change"]
    lines = [
        f"livegen bench link — two livegen instances (asking {r['asked_bpm']['a']:.0f} and "
        f"{r['asked_bpm']['b']:.0f} bpm) in one Ableton Link session "
        f"({r['beats_per_bar']} beats a bar), found each other {r['discovery_s']:.1f} s after both were playing",
        f"steady at the session's {r['bpm']:.0f} bpm: {s['bars']} bars, downbeat |B-A| median {s.get('median_abs_ms', 0):.2f} ms, "
        f"p99 {s.get('p99_abs_ms', 0):.2f} ms, max {s.get('max_abs_ms', 0):.2f} ms",
        f"tempo {r['new_bpm']:.0f} sent to A: A's beats at the new tempo after "
        f"{_ms(r['tempo_reached_s']['a'])}, B's after {_ms(r['tempo_reached_s']['b'])}",
        f"after the change: {a['bars']} bars, |B-A| median {a.get('median_abs_ms', 0):.2f} ms, "
        f"p99 {a.get('p99_abs_ms', 0):.2f} ms, max {a.get('max_abs_ms', 0):.2f} ms "
        f"(first bars: {', '.join(f'{d:+.2f}' for d in r['first_bars_after_change_ms'])} ms)",
        "goal: bars within 2 ms of each other",
    ]
    return "\n".join(lines)


def _ms(v: float | None) -> str:
    return "never" if v is None else f"{v * 1000:.0f} ms"


def main(args) -> int:
    try:
        import aalink  # noqa: F401
    except ImportError:
        print("livegen bench link: needs the optional aalink package: pip install 'livegen[link]'", file=sys.stderr)
        return 2
    r = asyncio.run(measure(args.bpm, args.new_bpm, args.beats_per_bar, args.bars))
    print(report(r))
    if args.json:
        args.json.write_text(json.dumps(r, indent=1))
    return 1 if "error" in r else 0
