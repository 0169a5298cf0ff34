"""``livegen bench scsynth``: how long after its scheduled time a note starts on scsynth.

Notes go the way they go in a show: into the timing-server process (handed over ahead of
time over its pipe), out of its dispatch thread at their deadline through
``ScsynthOutput`` (``/s_new``), to a real ``scsynth`` on JACK started here with livegen's
SynthDef loaded by ``prepare_server``. A second client registered with ``/notify 1``
notes when each node's ``/n_go`` arrives; the latency of a note is that arrival minus the
time the dispatcher meant the note to start. Notes go as bundles time-tagged with their own
time, ``LEAD_SECONDS`` early, and scsynth computes one JACK period ahead of its output, so
a note's ``/n_go`` arrives before its time (negative figures; up to a period early, stated
in the report), and the note starts on its sample. Reported: median, p99 and max in ms,
and notes that never started.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from pythonosc.osc_message import OscMessage, ParseError

from livegen.bench.timing import _ensure_jack, _jack_mode, _pct
from livegen.events import NoteOff, NoteOn
from livegen.bench.udp_stamps import open_stamped, receive
from livegen.outputs.osc_out import encode
from livegen.outputs.supercollider import FIRST_NODE_ID, ScsynthSetupError, prepare_server

log = logging.getLogger("livegen")

HOST = "127.0.0.1"
SYNTHDEF = "livegen"
DEFAULT_SYNTHDEF_FILE = Path(__file__).resolve().parents[2] / "examples" / "supercollider" / "livegen.scsyndef"
FEED_AHEAD = 0.25  # notes are handed to the timing server this far ahead, as the engine's look-ahead does


class BenchError(RuntimeError):
    """Why the benchmark cannot run here, in one line."""


class NodeStarts:
    """A client registered for scsynth's notifications: the arrival time of each node's /n_go.

    Arrival is the kernel's receive timestamp of the datagram where Linux gives one
    (SO_TIMESTAMPNS), so how soon this reader thread wakes on a busy machine is not part of
    the figure; elsewhere it is the time the thread read it.
    """

    def __init__(self, port: int) -> None:
        self.sock, self.kernel_times = open_stamped(port)
        # Kernel stamps are wall-clock time. Linux switches stamping on a moment after the
        # first socket asks (the first datagrams carry the read time): the notes start later.
        self._wall_minus_mono = time.time() - time.monotonic()
        self.started: dict[int, float] = {}
        self.ended: set[int] = set()
        self.registered = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._read, name="bench-scsynth-notify", daemon=True)
        self._thread.start()
        self.sock.send(encode("/notify", ("i", 1)))
        if not self.registered.wait(2.0):
            self.close()
            raise BenchError(f"scsynth on {HOST}:{port} did not answer /notify")

    def _read(self) -> None:
        while not self._stop:
            try:
                got = receive(self.sock, self._wall_minus_mono)
            except OSError:
                return
            if got is None:
                continue
            data, t = got
            try:
                msg = OscMessage(data)
            except ParseError:
                continue
            if msg.address == "/n_go":
                self.started.setdefault(msg.params[0], t)
            elif msg.address == "/n_end":
                self.ended.add(msg.params[0])
            elif msg.address == "/done" and msg.params[:1] == ["/notify"]:
                self.registered.set()

    def close(self) -> None:
        self._stop = True
        self._thread.join(1.0)
        self.sock.close()


def _jack_period() -> tuple[int, int]:
    """(frames per period, sample rate) of the running JACK server."""
    frames = subprocess.run(["jack_bufsize"], capture_output=True, text=True, timeout=5).stdout.split()
    rate = subprocess.run(["jack_samplerate"], capture_output=True, text=True, timeout=5).stdout.split()
    if not frames or not rate or not frames[-1].isdigit() or not rate[-1].isdigit():
        raise BenchError("cannot read the JACK period (jack_bufsize / jack_samplerate)")
    return int(frames[-1]), int(rate[-1])


def _start_scsynth(workdir: Path) -> tuple[subprocess.Popen, int, Path]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        port = s.getsockname()[1]
    log_path = workdir / "scsynth.log"
    env = dict(os.environ, SC_JACK_DEFAULT_OUTPUTS="", SC_JACK_DEFAULT_INPUTS="")
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(["scsynth", "-u", str(port), "-i", "0", "-o", "2", "-R", "0", "-D", "0",
                                 "-H", f"livegen_bench{port}"], stdout=out, stderr=subprocess.STDOUT, env=env)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(0.2)
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                _stop_scsynth(proc, port)
                tail = " ".join(log_path.read_text(errors="replace").split()[-30:])
                raise BenchError(f"scsynth did not start on JACK: {tail}")
            probe.sendto(encode("/status"), (HOST, port))
            try:
                if OscMessage(probe.recv(4096)).address == "/status.reply":
                    return proc, port, log_path
            except OSError:
                time.sleep(0.1)


def _stop_scsynth(proc: subprocess.Popen, port: int) -> None:
    if proc.poll() is None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(encode("/quit"), (HOST, port))
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def measure(notes: int = 300, interval: float = 0.05, gate: float = 0.5,
            synthdef_file: Path = DEFAULT_SYNTHDEF_FILE) -> dict:
    """Play ``notes`` notes ``interval`` s apart through the timing server to scsynth; the figures."""
    from livegen.clock.timing_server import TimingServer

    if not shutil.which("scsynth"):
        raise BenchError("scsynth not installed (apt-get install supercollider-server)")
    if not shutil.which("jack_lsp"):
        raise BenchError("JACK not installed (apt-get install jackd2)")
    jack = _ensure_jack()
    workdir = Path(tempfile.mkdtemp(prefix="livegen-bench-scsynth-"))
    try:
        frames, rate = _jack_period()
        jack_mode = _jack_mode()
        proc, port, _ = _start_scsynth(workdir)
        try:
            prepare_server(HOST, port, synthdef=SYNTHDEF, synthdef_file=str(synthdef_file), group=1)
            watch = NodeStarts(port)
            server = TimingServer([("scsynth", HOST, port, SYNTHDEF, 1)])
            try:
                server.start()
                if server.missing:
                    raise BenchError("; ".join(server.missing))
                t0 = time.monotonic() + 1.0
                times = [t0 + i * interval for i in range(notes)]
                pitches = [57 + (i * 7) % 24 for i in range(notes)]  # a cycle of fifths over two octaves
                for i, (t, pitch) in enumerate(zip(times, pitches)):
                    while t - time.monotonic() > FEED_AHEAD:
                        time.sleep(0.005)
                    server.send(NoteOn(t, pitch, 80))
                    server.send(NoteOff(t + gate * interval, pitch))
                deadline = time.monotonic() + 3.0
                last = FIRST_NODE_ID + notes - 1
                while last not in watch.started and time.monotonic() < deadline:
                    time.sleep(0.05)
                deadline = time.monotonic() + 3.0  # every release ends (a node left = a stuck note)
                while set(watch.started) - watch.ended and time.monotonic() < deadline:
                    time.sleep(0.05)
            finally:
                server.close()
                watch.close()
            latencies = [(watch.started[FIRST_NODE_ID + i] - t) * 1000.0
                         for i, t in enumerate(times) if FIRST_NODE_ID + i in watch.started]
            version = subprocess.run(["scsynth", "-v"], capture_output=True, text=True).stdout.split("(")[0].strip()
        finally:
            _stop_scsynth(proc, port)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if jack is not None:
            jack.terminate()
            jack.wait(5)
    return {
        "notes": notes, "interval_ms": interval * 1000.0, "started": len(latencies),
        "ended": len(watch.ended), "lost": notes - len(latencies),
        "still_sounding": len(set(watch.started) - watch.ended),
        "median_ms": _pct(latencies, 0.5), "p99_ms": _pct(latencies, 0.99),
        "max_ms": max(latencies, default=float("nan")), "min_ms": min(latencies, default=float("nan")),
        "jack_period_frames": frames, "jack_sample_rate": rate, "jack_period_ms": frames / rate * 1000.0,
        "arrival": "kernel receive timestamp" if watch.kernel_times else "reader thread",
        "jack_server": jack_mode, "jack_started_here": jack is not None, "scsynth": version,
    }


def format_report(r: dict) -> str:
    return "\n".join([
        f"scsynth note latency (scheduled time -> /n_go at a notified client, {r['arrival']}), {r['notes']} notes "
        f"{r['interval_ms']:.0f} ms apart through the timing server:",
        f"  median {r['median_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, max {r['max_ms']:.2f} ms, "
        f"min {r['min_ms']:.2f} ms; {r['lost']} never started, {r['still_sounding']} still sounding 3 s after",
        f"  JACK period {r['jack_period_frames']} frames at {r['jack_sample_rate']} Hz = {r['jack_period_ms']:.2f} ms "
        f"(server {r['jack_server']}{', started for this run' if r['jack_started_here'] else ''}); {r['scsynth']}",
    ])


def main(args) -> int:
    try:
        report = measure(args.notes, args.interval_ms / 1000.0, synthdef_file=args.synthdef_file or DEFAULT_SYNTHDEF_FILE)
    except (BenchError, ScsynthSetupError) as e:
        log.error("bench scsynth: %s", e)
        return 2
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if report["lost"] == 0 and report["still_sounding"] == 0 else 1
