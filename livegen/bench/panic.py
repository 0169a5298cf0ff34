"""``livegen bench panic``: how soon a panic silences every output of a playing livegen.

A real ``livegen play`` (a subprocess, as on stage) plays dense 16ths on every output: the
built-in synth on JACK, its virtual MIDI port, an OSC target, and scsynth on JACK when it
is installed. The benchmark fires panic ``--count`` times from OSC (a ``/livegen/panic``
datagram) and as many times from a CC trigger (``[[midi.triggers]] cc = 20``, sent
through a JACK MIDI port as a controller's button would be), alternating, and measures
each output from outside livegen, from the moment the panic was sent:

* synth: livegen's JACK audio ports recorded by a JACK client here
  (:mod:`livegen.bench.jack_probe`); latency to the first sample after which the output
  stays below -60 dBFS for 30 ms. Times are when the samples enter the JACK graph; the
  sound card plays them ``playback latency`` later (stated in the report);
* MIDI: the virtual port heard by the same JACK client; latency to the first message of
  the panic's burst and to its last (CC 120 on channel 16, after every note-off and CC 123);
* the controller's CC itself, heard by the same client on a second port: in which period it
  reached livegen's MIDI input, so each output's period can be counted from there too;
* OSC: the target's UDP socket; latency to ``/livegen/panic`` (kernel receive time);
* scsynth: its JACK ports recorded like the synth's, and a client registered with
  ``/notify 1``: latency to the ``/n_end`` of every node that was sounding or scheduled.

Each figure is given in ms and in audio blocks (livegen's 256 frames at 48 kHz =
5.33 ms), against the goal "within one audio block". For the outputs heard in the JACK
graph it also says in which JACK period after the send the output was silent: a period
that began before the panic reached livegen cannot change, so the first period after it is
the soonest any output can be (the probe dates a period when its own callback runs, a
little after the period began). A panic that found an output silent (rare: the notes are
dense) is left out of that output's figures and counted.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from pythonosc.osc_message import OscMessage, ParseError

from livegen.bench.jack_probe import JackProbe, JackUnavailable
from livegen.bench.timing import _ensure_jack, _jack_mode, _jack_running, _pct
from livegen.bench.udp_stamps import open_stamped, receive
from livegen.outputs.osc_out import encode

log = logging.getLogger("livegen")

HOST = "127.0.0.1"
SAMPLE_RATE = 48000
BLOCK = 256  # livegen's audio block at SAMPLE_RATE: the goal's unit
TRIGGER_CC = 20
QUIET = 1e-3  # -60 dBFS: silent
LOUD = 1e-2  # -40 dBFS: an output sounding at the panic (20 ms before it)
HOLD = 0.03  # s: silence must last this long to count (the next notes come a lookahead later)
DEFAULT_SYNTHDEF_FILE = Path(__file__).resolve().parents[2] / "examples" / "supercollider" / "livegen.scsyndef"

PATCH = """
[patch]
name = "bench-panic"
[clock]
bpm = {bpm}
[audio]
device = "JACK"
sample_rate = {sr}
blocksize = {block}
[[generators]]
name = "arp"
kind = "arpeggiator"
[generators.params]
density = 1.0
rest = 0.0
gate = 1.0
[midi]
inputs = ["{pad}"]
virtual_output = true
client_name = "{client}"
[[midi.triggers]]
cc = {cc}
action = "panic"
[osc]
port = {osc_port}
[[osc.targets]]
name = "bench"
port = {target_port}
send = ["notes"]
{supercollider}
{visuals}
"""
NO_VISUALS = """[visuals]
enabled = false
"""
# --visuals: the show's picture too (a window on SDL's dummy driver, the shipped style net in
# two processes), so the main process draws frames while the panics come.
VISUALS = """[visuals]
enabled = true
width = 320
height = 240
fps = 30
source = "ripples"
style = true
style_processes = 2
style_threads = 1
style_compile = false
"""
SUPERCOLLIDER = """[supercollider]
enabled = true
port = {port}
synthdef = "{synthdef}"
synthdef_file = "{file}"
group = 1
"""


class BenchError(RuntimeError):
    """Why the benchmark cannot run here, in one line."""


def add_arguments(parser: Any) -> None:
    """The options of ``livegen bench panic``."""
    parser.add_argument("--count", type=int, default=20, help="panics from each source (OSC, CC trigger)")
    parser.add_argument("--bpm", type=float, default=150.0, help="tempo of the dense 16ths played meanwhile")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between panics (the music resumes)")
    parser.add_argument("--no-scsynth", action="store_true", help="leave scsynth out even when installed")
    parser.add_argument("--synthdef-file", type=Path, default=None,
                        help="compiled SynthDef for scsynth (default: examples/supercollider/livegen.scsyndef)")
    parser.add_argument("--visuals", action="store_true",
                        help="with the picture too (window on SDL's dummy driver, styled frames): panics under a busy show")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")


class UdpLog:
    """A UDP socket keeping every OSC message with its kernel receive time (monotonic)."""

    def __init__(self, connect_port: int | None = None) -> None:
        self.sock, self.kernel_times = open_stamped(connect_port)
        self.port = self.sock.getsockname()[1]
        self.messages: list[tuple[float, str, list]] = []
        self._stop = False
        self._thread = threading.Thread(target=self._read, name="bench-panic-udp", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                got = receive(self.sock)
            except OSError:
                return
            if got is None:
                continue
            data, t = got
            try:
                m = OscMessage(data)
            except ParseError:
                continue
            self.messages.append((t, m.address, list(m.params)))

    def send(self, address: str, *args: tuple[str, object]) -> None:
        self.sock.send(encode(address, *args))

    def wait_for(self, address: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(a == address for _, a, _ in list(self.messages)):
                return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self._stop = True
        self._thread.join(1.0)
        self.sock.close()


class _Lines:
    """livegen's stderr, read on a thread (so its pipe never fills) and kept."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in iter(stream.readline, ""):
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float, proc: subprocess.Popen) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(re.search(pattern, ln) for ln in list(self.lines)):
                return
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        tail = " | ".join(self.lines[-8:])
        raise BenchError(f"livegen did not log {pattern!r} within {timeout:g} s: {tail}")


# ---------------------------------------------------------------------------------------
# analysis of one panic
# ---------------------------------------------------------------------------------------
def silence_after(probe: JackProbe, channels: list[int], p: float) -> tuple[float | None, str]:
    """(seconds from ``p`` until the recorded channels fall silent, or None and why not)."""
    first, times = probe.span(p - 0.03, p + 0.6)
    if len(times) == 0:
        return None, "not recorded"
    level = np.abs(probe.audio[channels, first:first + len(times)]).max(axis=0)
    before = level[(times >= p - 0.02) & (times < p)]
    if len(before) == 0 or before.max() < LOUD:
        return None, "silent at the panic"
    after = np.flatnonzero(times >= p)
    hold = int(HOLD * probe.sample_rate)
    loud = np.flatnonzero(level[after] >= QUIET)
    # The first gap between loud samples that is at least HOLD long (or silence to the end).
    edges = np.concatenate(([-1], loud, [len(after)]))
    gaps = np.flatnonzero(np.diff(edges) > hold)
    if len(gaps) == 0:
        return None, "never silent for 30 ms"
    onset = after[0] + edges[gaps[0]] + 1
    return float(times[min(onset, len(times) - 1)] - p), ""


def midi_after(probe: JackProbe, p: float) -> tuple[float | None, float | None, bool]:
    """(seconds to the panic burst's first MIDI message, to its last (CC 120, channel 16),
    whether a note was held at the panic)."""
    held: dict[tuple[int, int], int] = {}
    first = last = None
    for port, t, data in list(probe.midi):
        if port != 0 or len(data) < 3:  # livegen's output only (1 is the controller's)
            continue
        status, a, b = data[0] & 0xF0, data[1], data[2]
        if t < p:
            key = (data[0] & 0x0F, a)
            if status == 0x90 and b > 0:
                held[key] = held.get(key, 0) + 1
            elif status in (0x80, 0x90) and held.get(key):
                held[key] -= 1
            continue
        if first is None:
            first = t - p
        if data[0] == 0xBF and a == 120:
            last = t - p
            break
    return first, last, any(held.values())


def cc_arrival(probe: JackProbe, p: float) -> float | None:
    """Seconds from ``p`` until the controller's trigger CC was in the JACK graph (the probe
    hears the controller's port too): livegen's MIDI input reads it in that same period."""
    for port, t, data in list(probe.midi):
        if port == 1 and t >= p and len(data) == 3 and data[0] & 0xF0 == 0xB0 and data[1] == TRIGGER_CC and data[2] >= 64:
            return t - p
    return None


def nodes_after(watch: UdpLog, p: float) -> tuple[float | None, int, int]:
    """(seconds until every node sounding or scheduled at ``p`` sent /n_end, nodes, stuck)."""
    go: dict[int, float] = {}
    end: dict[int, float] = {}
    for t, a, params in list(watch.messages):
        if a in ("/n_go", "/n_end") and len(params) > 4 and params[4] == 0:
            (go if a == "/n_go" else end).setdefault(params[0], t)
    # Sounding at p, or started within the send-ahead of the panic (already on the server).
    nodes = [n for n, t in go.items() if t < p + 0.05 and end.get(n, p) >= p]
    if not nodes:
        return None, 0, 0
    stuck = [n for n in nodes if n not in end]
    if stuck:
        return None, len(nodes), len(stuck)
    return max(end[n] for n in nodes) - p, len(nodes), 0


# ---------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------
def _start_scsynth(workdir: Path, synthdef_file: Path) -> tuple[subprocess.Popen, int, str, str]:
    from livegen.bench.scsynth import _start_scsynth as start
    from livegen.outputs.supercollider import synthdef_file_header

    try:
        _, name = synthdef_file_header(synthdef_file.read_bytes())
    except (OSError, ValueError) as e:
        raise BenchError(f"--synthdef-file {synthdef_file}: {e}") from None
    proc, port, _ = start(workdir)
    return proc, port, f"livegen_bench{port}", name


def _portaudio_clients(probe: JackProbe) -> set[str]:
    return {name.split(":")[0] for name in probe.ports(r"^PortAudio")}


def _connect_synth(probe: JackProbe, before: set[str], timeout: float = 10.0) -> str:
    """Our synth_1/2 inputs fed from livegen's audio process: the PortAudio client that was
    not in the graph before livegen started (JACK 2's libjack cannot tell a client's pid)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = _portaudio_clients(probe) - before
        if len(new) > 1:
            raise BenchError(f"several new PortAudio clients in the JACK graph ({', '.join(sorted(new))}): "
                             "cannot tell which is livegen's; run the benchmark on a JACK server of its own")
        if new:
            client = new.pop()
            for i, port in enumerate(sorted(probe.ports(f"^{re.escape(client)}:"))[:2]):
                probe.connect(port, f"synth_{i + 1}")
            return client
        time.sleep(0.1)
    raise BenchError("livegen's audio process has no JACK ports (is the synth on JACK?)")


def measure(count: int = 20, bpm: float = 150.0, interval: float = 1.0, use_scsynth: bool = True,
            synthdef_file: Path | None = None, visuals: bool = False) -> dict:
    """Run livegen, fire ``count`` panics from OSC and ``count`` from a CC trigger; the figures."""
    if not shutil.which("jack_lsp"):
        raise BenchError("JACK not installed (apt-get install jackd2)")
    jack = _ensure_jack()
    if not _jack_running():
        raise BenchError("no JACK server running and none could be started")
    if not os.path.exists("/dev/snd/seq"):
        os.environ.setdefault("MIDO_BACKEND", "mido.backends.rtmidi/UNIX_JACK")
    import mido

    mido.set_backend(os.environ.get("MIDO_BACKEND"), load=True)
    workdir = Path(tempfile.mkdtemp(prefix="livegen-bench-panic-"))
    sc = None
    target = watch = probe = pad = proc = None
    try:
        synthdef_file = synthdef_file or DEFAULT_SYNTHDEF_FILE
        sc_why = ""
        if not use_scsynth:
            sc_why = "left out (--no-scsynth)"
        elif not shutil.which("scsynth"):
            sc_why = "not installed (apt-get install supercollider-server)"
        else:
            sc = _start_scsynth(workdir, synthdef_file)
        target = UdpLog()
        probe = JackProbe("lgbench-probe", ["synth_1", "synth_2", "sc_1", "sc_2"], ["midi_in", "pad_in"],
                          seconds=2 * count * (interval + 0.3) + 60)
        if probe.sample_rate != SAMPLE_RATE:
            raise BenchError(f"the JACK server runs at {probe.sample_rate} Hz; the benchmark wants {SAMPLE_RATE}")
        pad_client = f"lgbench-ctl{os.getpid()}"
        pad = mido.open_output("lgbench pad", virtual=True, client_name=pad_client)
        client = f"lgbench{os.getpid()}"
        osc_port = _free_port()
        sc_toml = SUPERCOLLIDER.format(port=sc[1], synthdef=sc[3], file=synthdef_file.as_posix()) if sc else ""
        patch = workdir / "panic.toml"
        patch.write_text(PATCH.format(bpm=bpm, sr=SAMPLE_RATE, block=BLOCK, pad="lgbench pad", client=client,
                                      cc=TRIGGER_CC, osc_port=osc_port, target_port=target.port,
                                      supercollider=sc_toml, visuals=VISUALS if visuals else NO_VISUALS))
        before = _portaudio_clients(probe)
        env = dict(os.environ)
        if visuals:
            env["SDL_VIDEODRIVER"] = "dummy"
        proc = subprocess.Popen([sys.executable, "-m", "livegen", "--log-file", str(workdir / "livegen.log"),
                                 "play", str(patch), *([] if visuals else ["--no-window"]), "--no-reload", "--seed", "1"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        lines = _Lines(proc.stderr)
        lines.wait_for(r"playing ", 180 if visuals else 60, proc)
        lines.wait_for(r"MIDI input .*lgbench pad.* connected", 10, proc)
        if sc:
            watch = UdpLog(sc[1])
            watch.send("/notify", ("i", 1))
            if not watch.wait_for("/done", 2.0):
                raise BenchError(f"scsynth on port {sc[1]} did not answer /notify")
            for i, port in enumerate([f"{sc[2]}:out_1", f"{sc[2]}:out_2"]):
                probe.connect(port, f"sc_{i + 1}")
        synth_client = _connect_synth(probe, before)
        midi_ports = probe.ports(f"^{re.escape(client)}:", midi=True)
        if not midi_ports:
            raise BenchError(f"livegen's virtual MIDI port ({client}:livegen out) is not in the JACK graph")
        probe.connect(midi_ports[0], "midi_in")
        pad_ports = probe.ports(f"^{re.escape(pad_client)}:", midi=True)
        if not pad_ports:
            raise BenchError(f"the benchmark's controller port ({pad_client}:lgbench pad) is not in the JACK graph")
        probe.connect(pad_ports[0], "pad_in")
        probe.recording.set()
        time.sleep(2.0)
        panics: list[tuple[str, float]] = []  # (source, sent at)
        rng = random.Random(1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as osc:
            dgram = encode("/livegen/panic")
            for i in range(2 * count):
                time.sleep(interval + rng.uniform(0.0, 0.25))  # the music back, at any phase of a period
                source = "osc" if i % 2 == 0 else "cc"
                t = time.monotonic()
                if source == "osc":
                    osc.sendto(dgram, (HOST, osc_port))
                else:
                    pad.send(mido.Message("control_change", control=TRIGGER_CC, value=127))
                panics.append((source, t))
                if source == "cc":
                    time.sleep(0.05)
                    pad.send(mido.Message("control_change", control=TRIGGER_CC, value=0))  # the button let go
        time.sleep(1.0)
        probe.recording.clear()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as osc:
            osc.sendto(encode("/livegen/quit"), (HOST, osc_port))
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        logged = sum(1 for ln in lines.lines if re.search(r"panic \((osc:|MIDI )", ln))
        report = _analyse(panics, probe, target, watch)
        report.update({
            "machine": f"{os.cpu_count()} cores, python {sys.version.split()[0]}",
            "jack_server": _jack_mode(), "jack_started_here": jack is not None,
            "jack_period_frames": probe.period, "jack_sample_rate": probe.sample_rate,
            "playback_latency_ms": probe.playback_latency() * 1e3,
            "block_ms": BLOCK / SAMPLE_RATE * 1e3, "bpm": bpm, "count": count, "visuals": visuals,
            "panics_sent": len(panics), "panics_logged_by_livegen": logged,
            "synth_jack_client": synth_client, "probe_errors": probe.errors,
            "osc_arrival": "kernel receive timestamp" if target.kernel_times else "reader thread",
            "scsynth": f"synthdef {sc[3]!r} from {synthdef_file.name}" if sc else sc_why,
            "livegen_exit_code": proc.returncode,
        })
        return report
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)
        for thing in (probe, watch, target, pad):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # noqa: BLE001 - closing what is left; the figures or the error matter
                    log.debug("closing %r failed", thing, exc_info=True)
        if sc is not None:
            from livegen.bench.scsynth import _stop_scsynth

            _stop_scsynth(sc[0], sc[1])
        shutil.rmtree(workdir, ignore_errors=True)
        if jack is not None:
            jack.terminate()
            jack.wait(5)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


OUTPUTS = ("synth audio silent", "MIDI first message", "MIDI burst done (CC 120 ch 16)", "OSC /panic",
           "scsynth audio silent", "scsynth every /n_end")


# Outputs measured at the JACK graph: for these the report also says in which JACK period
# after the panic's send the output was silent (or its message there). No output can change
# a period that began before the panic reached it, so "the first" is the best there is.
IN_GRAPH = ("synth audio silent", "MIDI first message", "MIDI burst done (CC 120 ch 16)", "scsynth audio silent")


def period_of(probe: JackProbe, p: float, latency: float) -> int:
    """Which JACK period after ``p`` the time ``p + latency`` fell in: 1 = the first that began after ``p``."""
    starts = [start for _pos, start, _n in probe.cycles if p < start <= p + latency + 1e-6]
    return max(1, len(starts))


def lead_to_period(probe: JackProbe, p: float) -> float:
    """Seconds from ``p`` to the start of the first JACK period after it (nan if none was recorded)."""
    return next((start - p for _pos, start, _n in probe.cycles if start > p), float("nan"))


def _analyse(panics: list[tuple[str, float]], probe: JackProbe, target: UdpLog,
             watch: UdpLog | None) -> dict:
    per: dict[str, dict[str, list[float]]] = {s: {o: [] for o in OUTPUTS} for s in ("osc", "cc")}
    periods: dict[str, dict[str, list[int]]] = {s: {o: [] for o in IN_GRAPH} for s in ("osc", "cc")}
    # For the panics an output answered in a later period than the soonest: how long before
    # that soonest period began the panic was sent (was there time for livegen to see it?).
    leads: dict[str, dict[str, list[float]]] = {s: {o: [] for o in IN_GRAPH} for s in ("osc", "cc")}
    # A CC: in which period it reached livegen's input, and each output's period counted from
    # there (1 = the period after the one the CC came in: the soonest any output can change).
    arrived: list[int] = []
    after_arrival: dict[str, list[int]] = {o: [] for o in IN_GRAPH}
    skipped: dict[str, dict[str, int]] = {s: {o: 0 for o in OUTPUTS} for s in ("osc", "cc")}
    stuck = 0
    each: list[dict] = []  # one record per panic: what it took, output by output
    for source, p in panics:
        got: dict[str, float | None] = {}
        got["synth audio silent"], _ = silence_after(probe, [0, 1], p)
        first, last, _held = midi_after(probe, p)
        got["MIDI first message"], got["MIDI burst done (CC 120 ch 16)"] = first, last
        osc = [t for t, a, _ in list(target.messages) if a == "/livegen/panic" and t >= p]
        got["OSC /panic"] = min(osc) - p if osc else None
        if watch is not None:
            got["scsynth audio silent"], _ = silence_after(probe, [2, 3], p)
            done, _n, left = nodes_after(watch, p)
            got["scsynth every /n_end"] = done
            stuck += left
        record = {"source": source, "sent": p, "lead_to_period_ms": lead_to_period(probe, p) * 1e3,
                  "ms": {o: (None if v is None else v * 1e3) for o, v in got.items()},
                  "jack_period": {o: period_of(probe, p, v) for o, v in got.items() if o in IN_GRAPH and v is not None}}
        if source == "cc":
            a = cc_arrival(probe, p)
            record["cc_in_graph_ms"] = None if a is None else a * 1e3
            if a is not None:
                k_a = period_of(probe, p, a)
                arrived.append(k_a)
                record["jack_period_after_arrival"] = {o: k - k_a for o, k in record["jack_period"].items()}
                for o, k in record["jack_period_after_arrival"].items():
                    after_arrival[o].append(k)
        each.append(record)
        for o in OUTPUTS:
            v = got.get(o)
            if v is None:
                if o in got:
                    skipped[source][o] += 1
            else:
                per[source][o].append(v * 1e3)
                if o in IN_GRAPH:
                    k = period_of(probe, p, v)
                    periods[source][o].append(k)
                    if k > (1 if source == "osc" else 2):  # a CC crosses a JACK MIDI port first: a period
                        leads[source][o].append(lead_to_period(probe, p) * 1e3)
    block_ms = BLOCK / SAMPLE_RATE * 1e3
    figures = {}
    for source in ("osc", "cc"):
        figures[source] = {}
        for o in OUTPUTS:
            ms = per[source][o]
            figures[source][o] = {
                "n": len(ms), "left_out": skipped[source][o],
                "median_ms": _pct(ms, 0.5), "max_ms": max(ms) if ms else float("nan"),
                "median_blocks": _pct(ms, 0.5) / block_ms, "max_blocks": (max(ms) / block_ms) if ms else float("nan"),
                "within_one_block": sum(1 for v in ms if v <= block_ms),
            }
            if o in IN_GRAPH:
                seen = periods[source][o]
                figures[source][o]["jack_period"] = {"first": seen.count(1), "second": seen.count(2),
                                                     "later": sum(1 for k in seen if k > 2),
                                                     "late_ones_sent_before_a_period_ms": leads[source][o]}
    for o in IN_GRAPH:
        seen = after_arrival[o]
        if o in figures["cc"] and seen:
            figures["cc"][o]["jack_period_after_arrival"] = {"first": seen.count(1), "second": seen.count(2),
                                                             "later": sum(1 for k in seen if k > 2)}
    return {"figures": figures, "scsynth_nodes_stuck": stuck, "panics": each,
            "cc_in_graph_period": {"first": arrived.count(1), "second": arrived.count(2),
                                   "later": sum(1 for k in arrived if k > 2), "not_seen": len(
                                       [1 for s_, _ in panics if s_ == "cc"]) - len(arrived)}}


def _periods_text(f: dict) -> str:
    jp = f["jack_period"]
    text = f"; JACK period after the send: 1st {jp['first']}, 2nd {jp['second']}, later {jp['later']}"
    leads = jp.get("late_ones_sent_before_a_period_ms") or []
    if leads:
        text += f" (the later ones sent {min(leads):.2f}-{max(leads):.2f} ms before a period began)"
    ja = f.get("jack_period_after_arrival")
    if ja:
        text += f"; after the CC reached livegen: 1st {ja['first']}, 2nd {ja['second']}, later {ja['later']}"
    return text


def format_report(r: dict) -> str:
    lines = [
        f"livegen bench panic: {r['count']} panics from OSC and {r['count']} from a CC trigger, over dense 16ths "
        f"at {r['bpm']:g} BPM on every output{' with the picture (styled frames) drawn meanwhile' if r.get('visuals') else ''} "
        f"({r['machine']})",
        f"JACK {r['jack_period_frames']} frames at {r['jack_sample_rate']} Hz (server {r['jack_server']}"
        f"{', started here' if r['jack_started_here'] else ''}); goal: within one audio block = {r['block_ms']:.2f} ms; "
        f"audio times are at the JACK graph, the sound card plays them {r['playback_latency_ms']:.2f} ms later",
        f"scsynth: {r['scsynth']}; livegen logged {r['panics_logged_by_livegen']} of {r['panics_sent']} panics",
        "latency from the panic's send (median / max, ms and blocks; n measured, left out):",
    ]
    for source, label in (("osc", "OSC /livegen/panic"), ("cc", f"CC {TRIGGER_CC} trigger")):
        lines.append(f"  {label}:")
        for o, f in r["figures"][source].items():
            if f["n"] == 0 and f["left_out"] == 0:
                continue
            lines.append(f"    {o:32s} {f['median_ms']:7.2f} / {f['max_ms']:7.2f} ms   "
                         f"{f['median_blocks']:5.2f} / {f['max_blocks']:5.2f} blocks   "
                         f"n={f['n']}, within one block {f['within_one_block']}/{f['n']}"
                         + (f", left out {f['left_out']}" if f["left_out"] else "")
                         + (_periods_text(f) if "jack_period" in f else ""))
    arr = r.get("cc_in_graph_period")
    if arr:
        lines.append(f"  the CC in the JACK graph (livegen's input reads it then), period after its send: 1st {arr['first']}, "
                     f"2nd {arr['second']}, later {arr['later']}" + (f", not seen {arr['not_seen']}" if arr["not_seen"] else ""))
    if r.get("scsynth_nodes_stuck"):
        lines.append(f"  scsynth nodes that never ended: {r['scsynth_nodes_stuck']}")
    return "\n".join(lines)


def main(args: Any) -> int:
    """``livegen bench panic``; 0 when every panic silenced every output, 1 when not, 2 when it cannot run."""
    try:
        report = measure(args.count, args.bpm, args.interval, not args.no_scsynth, args.synthdef_file, args.visuals)
    except (BenchError, JackUnavailable) as e:
        log.error("bench panic: %s", e)
        return 2
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    f = report["figures"]
    reached = all(f[s]["OSC /panic"]["n"] == args.count and f[s]["MIDI burst done (CC 120 ch 16)"]["n"] == args.count
                  for s in f)
    ok = reached and report["scsynth_nodes_stuck"] == 0 and report["panics_logged_by_livegen"] == report["panics_sent"]
    return 0 if ok else 1
