"""``livegen bench faults``: how fast the show gets over device faults.

Every fault is real and made a few times over: a MIDI controller's JACK client closed and
reopened (``MidiInput.watch`` notices and reconnects), a MIDI destination's JACK client
closed and reopened (the timing server's port watcher), ``jackd`` killed under a live
rig's synth and started again (the rig's audio watcher), a style-network process killed
(``StyleProcess`` restarts it; each kill counts as a first crash, so the quick restart is
timed, not the back-off after several in a row). Times are ``time.monotonic()`` from the
fault (or the device's return) to livegen's own report of it; for the style process also
how many frames the screen showed unstyled meanwhile.

The JACK servers are private (``jackd -n livegen-faults-<pid>-...`` on the dummy driver),
so killing one disturbs no other program. Expected from the code: a MIDI port gone or back
is seen by the next rescan (every 0.5 s); a lost audio device is looked for every 0.5 s
by a new audio process started as soon as the loss is seen.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger("livegen")

FAULTS = ("midi-in", "midi-out", "audio", "audio-start", "style")
JACK_ARGS = ("--no-realtime", "-d", "dummy", "-r", "48000", "-p", "256")


class BenchError(RuntimeError):
    """Why the benchmark cannot run here, in one line."""


class PrivateJack:
    """A JACK server of our own (``jackd -n NAME``) that can be killed and started again.

    Clients find it through ``JACK_DEFAULT_SERVER``: :meth:`env` for a subprocess, or
    :meth:`use` to point this process's future clients (and processes it spawns) at it.
    """

    def __init__(self, name: str) -> None:
        if not shutil.which("jackd"):
            raise BenchError("jackd not installed (apt-get install jackd2)")
        self.name = name
        self.proc: subprocess.Popen | None = None

    def env(self, base: dict | None = None) -> dict:
        return dict(os.environ if base is None else base, JACK_DEFAULT_SERVER=self.name)

    def use(self) -> None:
        os.environ["JACK_DEFAULT_SERVER"] = self.name

    def restore(self, previous: str | None) -> None:
        """Undo :meth:`use`: ``previous`` is what ``JACK_DEFAULT_SERVER`` was before it."""
        if previous is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = previous

    def running(self) -> bool:
        try:
            return subprocess.run(["jack_lsp"], env=self.env(), capture_output=True, timeout=5).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def ports(self, connections: bool = False) -> str:
        """``jack_lsp`` (with ``-c``: each port's connections) on this server."""
        args = ["jack_lsp", "-c"] if connections else ["jack_lsp"]
        return subprocess.run(args, env=self.env(), capture_output=True, text=True, timeout=5).stdout

    def start(self, timeout: float = 15.0) -> float:
        """Start jackd and wait until it answers; returns when it did (``time.monotonic()``)."""
        self.proc = subprocess.Popen(["jackd", "-n", self.name, *JACK_ARGS], env=self.env(),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self.running():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise BenchError(f"jackd -n {self.name} did not start")
            time.sleep(0.05)
        return time.monotonic()

    def kill(self, sig: int = signal.SIGKILL) -> float:
        """Kill jackd (as a crash would); returns when (``time.monotonic()``)."""
        assert self.proc is not None
        t = time.monotonic()
        self.proc.send_signal(sig)
        self.proc.wait(10)
        self.proc = None
        return t

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


def _wait_for(pred: Callable[[], Any], timeout: float, step: float = 0.005) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(step)
    return pred()


_rng = random.Random(7)


def _pause(gap: float) -> float:
    """``gap`` plus up to half a second, so faults fall anywhere in the watchers' 0.5 s scans."""
    return gap + _rng.uniform(0.0, 0.5)


def _first_after(events: list[tuple[str, float]], what: str, after: float) -> float | None:
    for kind, t in list(events):
        if kind == what and t >= after:
            return t
    return None


# -- MIDI ---------------------------------------------------------------------------------


def _use_jack_midi() -> None:
    import mido

    os.environ["MIDO_BACKEND"] = "mido.backends.rtmidi/UNIX_JACK"
    mido.set_backend("mido.backends.rtmidi/UNIX_JACK", load=True)


def measure_midi_in(repeats: int, gap: float) -> dict[str, list[float]]:
    """A controller's JACK client closed, then reopened: noticed and reconnected after (s)."""
    from livegen.control import midi_ports
    from livegen.control.midi_in import MidiDecoder, MidiInput

    client = f"faultctl{os.getpid()}"
    name = f"{client}:ctl"
    out: dict[str, list[float]] = {"noticed": [], "reconnected": []}

    async def run() -> None:
        loop = asyncio.get_running_loop()
        events: list[tuple[str, float]] = []
        ctl = midi_ports.open_virtual_output("ctl", client_name=client)
        mi = MidiInput([name], lambda *a: None, loop, MidiDecoder(), client_name="livegen-bench")
        mi.on_change = lambda what, n: events.append((what, time.monotonic()))
        watcher = asyncio.create_task(mi.watch())
        try:
            for _ in range(repeats):
                await asyncio.sleep(_pause(gap))
                t0 = time.monotonic()
                await asyncio.to_thread(ctl.close)
                while _first_after(events, "disappeared", t0) is None and time.monotonic() - t0 < 10:
                    await asyncio.sleep(0.002)
                seen = _first_after(events, "disappeared", t0)
                await asyncio.sleep(_pause(gap))
                t1 = time.monotonic()
                ctl = await asyncio.to_thread(midi_ports.open_virtual_output, "ctl", client_name=client)
                while _first_after(events, "connected", t1) is None and time.monotonic() - t1 < 10:
                    await asyncio.sleep(0.002)
                back = _first_after(events, "connected", t1)
                if seen is None or back is None:
                    raise BenchError(f"MIDI input {name!r} was not followed (events: {events})")
                out["noticed"].append(seen - t0)
                out["reconnected"].append(back - t1)
        finally:
            mi.close()
            await asyncio.wait_for(watcher, 5)
            ctl.close()

    asyncio.run(run())
    return out


def measure_midi_out(repeats: int, gap: float) -> dict[str, list[float]]:
    """A synth's JACK client closed, then reopened: noticed, reconnected, and its first note
    after the reconnection (s); notes keep coming every 20 ms all along."""
    from livegen.clock.timing_server import TimingServer
    from livegen.control import midi_ports
    from livegen.events import NoteOff, NoteOn

    client = f"faultsynth{os.getpid()}"
    name = f"{client}:synth in"
    out: dict[str, list[float]] = {"noticed": [], "reconnected": [], "first note": []}
    events: list[tuple[str, float]] = []
    notes: list[float] = []

    def heard(msg) -> None:
        if msg.type == "note_on":
            notes.append(time.monotonic())

    def open_synth():
        return midi_ports.open_virtual_input("synth in", heard, client_name=client)

    synth = open_synth()
    server = TimingServer([("midi", name, "livegen-bench")])
    server.on_port = lambda what, n, t: events.append((what, t))
    stop = threading.Event()

    def feed() -> None:
        k, t0 = 0, time.monotonic() + 0.1
        while not stop.is_set():
            t = t0 + k * 0.02
            server.send(NoteOn(t, 40 + k % 40, 90))
            server.send(NoteOff(t + 0.01, 40 + k % 40))
            k += 1
            time.sleep(max(0.0, t - 0.05 - time.monotonic()))

    server.start()
    feeder = threading.Thread(target=feed, name="bench-feed", daemon=True)
    feeder.start()
    try:
        if server.missing:
            raise BenchError("; ".join(server.missing))
        for _ in range(repeats):
            time.sleep(_pause(gap))
            t0 = time.monotonic()
            synth.close()
            seen = _wait_for(lambda: _first_after(events, "disappeared", t0), 10)
            time.sleep(_pause(gap))
            t1 = time.monotonic()
            synth = open_synth()
            back = _wait_for(lambda: _first_after(events, "connected", t1), 10)
            first = _wait_for(lambda: next((t for t in list(notes) if t > t1), None), 10)
            if not (seen and back and first):
                raise BenchError(f"MIDI output {name!r} was not followed (events: {events})")
            out["noticed"].append(seen - t0)
            out["reconnected"].append(back - t1)
            out["first note"].append(first - t1)
    finally:
        stop.set()
        feeder.join(2)
        server.close()
        synth.close()
    return out


# -- audio ------------------------------------------------------------------------------------

AUDIO_PATCH = """
[patch]
name = "faults-bench"
[clock]
bpm = 150
[audio]
device = "JACK"
[[generators]]
name = "arp"
kind = "arpeggiator"
[generators.params]
density = 1.0
rest = 0.0
[midi]
inputs = []
virtual_output = false
[osc]
enabled = false
[[osc.targets]]
name = "probe"
host = "127.0.0.1"
port = {port}
prefix = "/bench"
send = ["notes"]
[visuals]
enabled = false
"""


def _audio_rig(patch) -> tuple[Any, list[tuple[str, float]]]:
    """A live rig with the synth, and the list its audio changes ("lost", "back") go to."""
    from livegen.play import LiveRig, RigOptions

    rig = LiveRig(patch, RigOptions(window=False, audio=True, watch_patch=False, seed=1))
    events: list[tuple[str, float]] = []
    rig.on_audio = lambda what, t: events.append((what, t))
    return rig, events


async def _sounding(rig, timeout: float = 10.0) -> float | None:
    """When the rig's synth was first heard (its peak level above silence), or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and rig.synth is not None:
        stats = await asyncio.to_thread(rig.synth.stats)
        if stats["peak"] > 0.001:
            return time.monotonic()
        await asyncio.sleep(0.02)
    return None


def measure_audio(repeats: int, outage: float) -> dict[str, list[float]]:
    """jackd killed under a live rig, started again ``outage`` s later: audio reported lost,
    the synth reopened and sounding again (s); notes out over OSC during the outage."""
    from livegen.patch.loader import parse_patch

    jack = PrivateJack(f"livegen-faults-{os.getpid()}-audio")
    jack.start()
    previous = os.environ.get("JACK_DEFAULT_SERVER")
    jack.use()  # the synth process and its retries are spawned with this environment
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(0.05)
    notes: list[float] = []
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            try:
                rx.recv(1024)
                notes.append(time.monotonic())
            except OSError:
                continue

    listener = threading.Thread(target=listen, name="bench-osc-rx", daemon=True)
    listener.start()
    out: dict[str, list[float]] = {"lost": [], "reopened": [], "sounding": [], "notes during outage": []}
    patch = parse_patch(AUDIO_PATCH.format(port=rx.getsockname()[1]), "faults-bench.toml")

    async def run() -> None:
        rig, events = _audio_rig(patch)
        await rig.start()
        try:
            if rig.synth is None:
                raise BenchError(f"the synth did not open on the private JACK server: {rig.missing}")
            for _ in range(repeats):
                await asyncio.sleep(2.0)
                t0 = await asyncio.to_thread(jack.kill)
                while _first_after(events, "lost", t0) is None and time.monotonic() - t0 < 15:
                    await asyncio.sleep(0.002)
                lost = _first_after(events, "lost", t0)
                await asyncio.sleep(outage)
                t1 = await asyncio.to_thread(jack.start)
                n_out = sum(1 for t in notes if t0 + 0.5 < t < t1)
                while _first_after(events, "back", t1) is None and time.monotonic() - t1 < 30:
                    await asyncio.sleep(0.005)
                back = _first_after(events, "back", t1)
                if lost is None or back is None:
                    raise BenchError(f"the audio watcher did not follow jackd (events: {events})")
                sounding = await _sounding(rig)
                out["lost"].append(lost - t0)
                out["reopened"].append(back - t1)
                if sounding is not None:
                    out["sounding"].append(sounding - t1)
                out["notes during outage"].append(float(n_out))
        finally:
            await rig.close()

    try:
        asyncio.run(run())
    finally:
        stop.set()
        listener.join(2)
        rx.close()
        jack.stop()
        jack.restore(previous)
    return out


def measure_audio_at_start(repeats: int, wait: float) -> dict[str, list[float]]:
    """A live rig started with no JACK server, jackd started ``wait`` s later: the synth
    found (opened on it) and sounding (s after jackd answered)."""
    from livegen.bench.timing import _free_port
    from livegen.patch.loader import parse_patch

    jack = PrivateJack(f"livegen-faults-{os.getpid()}-audio-start")
    previous = os.environ.get("JACK_DEFAULT_SERVER")
    jack.use()
    out: dict[str, list[float]] = {"found": [], "sounding": []}
    patch = parse_patch(AUDIO_PATCH.format(port=_free_port()), "faults-bench.toml")

    async def once() -> None:
        rig, events = _audio_rig(patch)
        await rig.start()
        try:
            if rig.synth is not None:
                raise BenchError("the synth opened although no JACK server was running")
            await asyncio.sleep(wait)
            t1 = await asyncio.to_thread(jack.start)
            while _first_after(events, "back", t1) is None and time.monotonic() - t1 < 30:
                await asyncio.sleep(0.005)
            found = _first_after(events, "back", t1)
            if found is None or rig.synth is None:
                raise BenchError(f"the synth did not open when jackd started (events: {events})")
            sounding = await _sounding(rig)
            out["found"].append(found - t1)
            if sounding is not None:
                out["sounding"].append(sounding - t1)
        finally:
            await rig.close()
            jack.stop()

    try:
        for _ in range(repeats):
            asyncio.run(once())
    finally:
        jack.stop()
        jack.restore(previous)
    return out


# -- style process ------------------------------------------------------------------------------


def measure_style(repeats: int, size: tuple[int, int], fps: int) -> dict[str, list[float]]:
    """A style process killed (SIGKILL) while frames run at ``fps``: its restart, the first
    freshly styled frame shown (s), and the frames shown unstyled meanwhile."""
    from livegen.patch.schema import VisualsConfig
    from livegen.visuals.pipeline import build_pipeline

    h, w = size
    v = VisualsConfig(width=w, height=h, fps=fps, style=True, style_processes=1, sources=("ripples",))
    pipeline = build_pipeline(v, seed=1, worker=True)
    proc = pipeline.worker
    params = {s.name: s.default for s in pipeline.param_specs()}
    out: dict[str, list[float]] = {"restarted": [], "styling again": [], "unstyled frames": [], "stale frames": []}
    period = 1.0 / fps

    def frame() -> tuple[bool, int]:
        """One frame: (shown styled, the styled result's frame number or -1)."""
        shown = pipeline.frame(time.monotonic(), params)
        result = proc.latest()
        styled = shown is not pipeline.last_source
        return styled, (result.seq if styled and result is not None else -1)

    try:
        if not proc.ready.wait(120):
            raise BenchError("the style process did not start in 120 s")
        for _ in range(repeats):
            t_end = time.monotonic() + 2.0
            while time.monotonic() < t_end:  # styled frames flowing
                frame()
                time.sleep(period)
            lane = proc.lanes[0]
            # Each kill here is one crash, not a crash storm: without this the fourth kill
            # within HEALTHY_SECONDS would wait RESTART_BACKOFF (as a show's would).
            lane.in_a_row = 0
            restarts = proc.restarts
            cut = proc.last_seq
            t0 = time.monotonic()
            os.kill(lane.proc.pid, signal.SIGKILL)
            unstyled = stale = 0
            restarted = again = None
            deadline = t0 + 120
            while again is None and time.monotonic() < deadline:
                styled, seq = frame()
                now = time.monotonic()
                if restarted is None and proc.restarts > restarts and lane.ready.is_set():
                    restarted = now
                if styled and seq > cut:
                    again = now
                elif styled:
                    stale += 1  # the last picture before the crash, still fresh enough to show
                else:
                    unstyled += 1
                time.sleep(max(0.0, period - (time.monotonic() - now)))
            if again is None:
                raise BenchError("the style process did not style frames again within 120 s")
            out["restarted"].append((restarted or again) - t0)
            out["styling again"].append(again - t0)
            out["unstyled frames"].append(float(unstyled))
            out["stale frames"].append(float(stale))
    finally:
        pipeline.close()
    return out


# -- report ------------------------------------------------------------------------------------

ROWS = (
    ("midi-in", "noticed", "MIDI input port gone -> noticed", "s"),
    ("midi-in", "reconnected", "MIDI input port back -> reconnected", "s"),
    ("midi-out", "noticed", "MIDI output destination gone -> noticed", "s"),
    ("midi-out", "reconnected", "MIDI output destination back -> reconnected", "s"),
    ("midi-out", "first note", "MIDI output destination back -> first note there", "s"),
    ("audio", "lost", "jackd killed -> audio reported lost", "s"),
    ("audio", "reopened", "jackd back -> synth reopened", "s"),
    ("audio", "sounding", "jackd back -> synth sounding again", "s"),
    ("audio", "notes during outage", "notes out over OSC while audio was gone", "notes"),
    ("audio-start", "found", "no jackd at start, then started -> synth opened", "s"),
    ("audio-start", "sounding", "no jackd at start, then started -> synth sounding", "s"),
    ("style", "restarted", "style process killed -> restarted", "s"),
    ("style", "styling again", "style process killed -> styled frames again", "s"),
    ("style", "unstyled frames", "unstyled frames shown meanwhile", "frames"),
    ("style", "stale frames", "last styled frame shown again meanwhile", "frames"),
)


def summarise(results: dict[str, dict[str, list[float]]]) -> list[dict]:
    rows = []
    for fault, key, label, unit in ROWS:
        values = results.get(fault, {}).get(key)
        if not values:
            continue
        rows.append({"fault": fault, "measure": key, "label": label, "unit": unit, "n": len(values),
                     "median": statistics.median(values), "max": max(values), "values": values})
    return rows


def format_table(rows: list[dict]) -> str:
    width = max((len(r["label"]) for r in rows), default=10)
    lines = [f"{'fault':<{width}}  {'n':>3}  {'median':>8}  {'max':>8}  unit"]
    for r in rows:
        if r["unit"] == "s":
            med, mx = f"{r['median']:.3f}", f"{r['max']:.3f}"
        else:
            med, mx = f"{r['median']:.0f}", f"{r['max']:.0f}"
        lines.append(f"{r['label']:<{width}}  {r['n']:>3}  {med:>8}  {mx:>8}  {r['unit']}")
    return "\n".join(lines)


def add_arguments(parser: Any) -> None:
    """The options of ``livegen bench faults``."""
    parser.add_argument("--repeats", type=int, default=5, help="times each fault is made")
    parser.add_argument("--only", action="append", choices=FAULTS,
                        help="measure only this fault (repeatable; default: all)")
    parser.add_argument("--outage", type=float, default=3.0,
                        help="seconds jackd stays dead before it is restarted (audio-start: before it is started)")
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between a MIDI port's changes")
    parser.add_argument("--style-size", default="120x160", help="style frames, HEIGHTxWIDTH")
    parser.add_argument("--fps", type=int, default=30, help="frame rate while the style process is killed")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")


def main(args: Any) -> int:
    """``livegen bench faults``: 0 when every fault was recovered from, 2 when it cannot run."""
    faults = args.only or list(FAULTS)
    results: dict[str, dict[str, list[float]]] = {}
    midi_jack = None
    try:
        if "midi-in" in faults or "midi-out" in faults:
            midi_jack = PrivateJack(f"livegen-faults-{os.getpid()}-midi")
            midi_jack.start()
            midi_jack.use()
            _use_jack_midi()
            if "midi-in" in faults:
                results["midi-in"] = measure_midi_in(args.repeats, args.gap)
            if "midi-out" in faults:
                results["midi-out"] = measure_midi_out(args.repeats, args.gap)
            from livegen.control.midi_ports import close_listers

            close_listers()  # before their server goes
            midi_jack.stop()
            midi_jack = None
        if "audio" in faults:
            results["audio"] = measure_audio(args.repeats, args.outage)
        if "audio-start" in faults:
            results["audio-start"] = measure_audio_at_start(args.repeats, args.outage)
        if "style" in faults:
            h, w = (int(x) for x in args.style_size.lower().split("x"))
            results["style"] = measure_style(args.repeats, (h, w), args.fps)
    except BenchError as e:
        log.error("bench faults: %s", e)
        return 2
    finally:
        if midi_jack is not None:
            midi_jack.stop()
    rows = summarise(results)
    print(format_table(rows))
    if args.json:
        args.json.write_text(json.dumps({"repeats": args.repeats, "outage_s": args.outage, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":  # python -m livegen.bench.faults, until the CLI has it
    import argparse

    from livegen.log import setup_logging

    setup_logging()
    ap = argparse.ArgumentParser(prog="livegen bench faults")
    add_arguments(ap)
    raise SystemExit(main(ap.parse_args()))
