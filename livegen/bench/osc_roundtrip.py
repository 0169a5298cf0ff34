"""``livegen bench osc-roundtrip``: how long an OSC message takes to reach a peer program
and come back, for the programs installations actually use beside livegen.

Beats leave through livegen's own :class:`~livegen.outputs.osc_out.OscOutput` (exactly the
``/livegen/beat iiif`` a ``[[osc.targets]]`` entry receives), each with a unique beat
number. The peer runs in *echo mode* (the contract shared with examples/pd/livegen.pd):
every ``/livegen/beat`` it receives is answered at once with ``/livegen/echo i <beat>``.
An asyncio listener parses the echoes with livegen's OSC server parser and times each from
just before ``send`` to its arrival. Reported per peer: median, p99 and max in ms, and
echoes lost.

Peers, each a separate program started, waited for (probe beats until one is echoed) and
stopped here:

- ``python``: python-osc's UDP server and client in a subprocess, the baseline;
- ``liblo``: liblo's C implementation (pyliblo3, ``pip install pyliblo3``) in a subprocess:
  liblo parses the beat and builds the echo;
- ``pd``: Pure Data (``apt-get install puredata-core``) running examples/pd/livegen.pd,
  switched into echo mode by its ``livegen-listen``, ``livegen-connect`` and
  ``livegen-echo`` receives.

The python peer and the Pd patch listen on 127.0.0.1; liblo's server listens on every
interface (pyliblo3 offers no choice), only for the seconds of its run.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import platform
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from livegen.control.osc_server import OscParseError, parse_packet
from livegen.events import Beat
from livegen.outputs.osc_out import OscOutput

HOST = "127.0.0.1"
BEAT = "/livegen/beat"
ECHO = "/livegen/echo"
PEERS = ("python", "liblo", "pd")
PROBE_BASE = 1_000_000  # probe beats are numbered from here (exact in Pd's 32-bit floats, up to 2**24)
REPO_ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_PD_PATCH = REPO_ROOT / "examples" / "pd" / "livegen.pd"
WARMUP_BEATS = 20
READY_TIMEOUT = 15.0
DRAIN_SECONDS = 1.0


class PeerUnavailable(RuntimeError):
    """A peer that cannot run on this machine; the message says why and how to get it."""


# -- the peers ---------------------------------------------------------------------------
@dataclass
class PeerProcess:
    """A peer program in a subprocess: started, asked for its port, stopped cleanly."""

    name: str
    describe: str
    command: list[str]
    port: int | None = None  # known in advance (pd), else read from the child's first line
    env: dict[str, str] | None = None
    proc: subprocess.Popen | None = None
    _stderr: Any = None

    def start(self, timeout: float = READY_TIMEOUT) -> int:
        """Start the program; its UDP port (for our own echo children: once they have bound it)."""
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._stderr, env=self.env, start_new_session=True)
        if self.port is not None:
            return self.port
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        words = self.proc.stdout.readline().decode("utf-8", "replace").split() if ready else []
        if len(words) != 2 or words[0] != "listening" or not words[1].isdigit():
            raise RuntimeError(f"{self.name} peer did not start: {self.stderr_tail() or 'no output'}")
        self.port = int(words[1])
        return self.port

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stderr_tail(self, limit: int = 400) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace").strip()
        return " ".join(text[-limit:].split())

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 3 s; the process group, so nothing is left behind."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(3)
            except ProcessLookupError:
                pass
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


def _child_env() -> dict[str, str]:
    """The child imports this module: make sure it finds the same livegen."""
    env = dict(os.environ)
    root = str(REPO_ROOT)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def make_peer(kind: str, reply_port: int, pd_patch: Path | None = None, pd_args: tuple[str, ...] = ()) -> PeerProcess:
    """The launcher for one peer kind, echoing to ``HOST:reply_port``; PeerUnavailable if it cannot run.

    ``pd_args`` are extra flags for pd (``-sleepgrain 0.1``: Pd looks at its sockets every
    sleepgrain ms when it runs without audio, which sets most of its round trip)."""
    if kind in ("python", "liblo"):
        if kind == "liblo" and importlib.util.find_spec("pyliblo3") is None:
            raise PeerUnavailable("pyliblo3 is not installed (pip install pyliblo3: liblo's C OSC "
                                  "implementation for Python, wheels bundle liblo)")
        from importlib.metadata import version

        lib = f"python-osc {version('python-osc')}" if kind == "python" else f"pyliblo3 {version('pyliblo3')}"
        cmd = [sys.executable, "-m", "livegen.bench.osc_roundtrip", "--echo", kind, "--reply", str(reply_port)]
        return PeerProcess(kind, f"{lib} echo in a subprocess", cmd, env=_child_env())
    if kind == "pd":
        exe = shutil.which("pd")
        if exe is None:
            raise PeerUnavailable("pd is not installed (apt-get install puredata-core)")
        patch = Path(pd_patch) if pd_patch is not None else DEFAULT_PD_PATCH
        if not patch.is_file():
            raise PeerUnavailable(f"the Pure Data patch {patch} does not exist")
        port = _free_udp_port()
        cmd = [exe, "-nogui", "-nosound", "-nomidi", "-noprefs", "-stderr", *pd_args, "-open", str(patch),
               "-send", f"livegen-listen {port}", "-send", f"livegen-connect {HOST} {reply_port}",
               "-send", "livegen-echo 1"]
        flags = f" {' '.join(pd_args)}" if pd_args else ""
        return PeerProcess("pd", f"{_pd_version(exe)}{flags} running {_shown(patch)}", cmd, port=port)
    raise ValueError(f"unknown peer {kind!r} (known: {', '.join(PEERS)})")


def _shown(path: Path) -> str:
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return path.as_posix()


def _pd_version(exe: str) -> str:
    try:
        out = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=10)
        words = (out.stdout + out.stderr).split()
        return words[0] if words else "Pure Data"
    except (OSError, subprocess.TimeoutExpired):
        return "Pure Data"


# -- the echo programs (run as ``python -m livegen.bench.osc_roundtrip --echo KIND``) --------
def _echo_python(reply_port: int) -> None:
    """python-osc: a blocking UDP server whose handler sends the echo with a UDP client."""
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import BlockingOSCUDPServer
    from pythonosc.udp_client import SimpleUDPClient

    client = SimpleUDPClient(HOST, reply_port)

    def on_beat(address: str, *args: Any) -> None:
        if args:
            client.send_message(ECHO, int(args[0]))

    dispatcher = Dispatcher()
    dispatcher.map(BEAT, on_beat)
    server = BlockingOSCUDPServer((HOST, 0), dispatcher)
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


def _echo_liblo(reply_port: int) -> None:
    """liblo (pyliblo3): liblo parses /livegen/beat iiif and sends the echo from its server socket."""
    import pyliblo3 as liblo

    server = liblo.Server()
    target = liblo.Address(HOST, reply_port, liblo.UDP)

    def on_beat(path: str, args: list[Any]) -> None:
        server.send(target, ECHO, ("i", int(args[0])))

    server.add_method(BEAT, "iiif", on_beat)
    print(f"listening {server.port}", flush=True)
    while True:
        server.recv(1000)


def _echo_main(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m livegen.bench.osc_roundtrip",
                                description="an OSC echo peer for livegen bench osc-roundtrip")
    p.add_argument("--echo", choices=("python", "liblo"), required=True)
    p.add_argument("--reply", type=int, required=True, help=f"port on {HOST} the echoes go to")
    a = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        (_echo_python if a.echo == "python" else _echo_liblo)(a.reply)
    except KeyboardInterrupt:
        pass
    return 0


# -- the listener and the measurement ------------------------------------------------------
@dataclass
class EchoListener(asyncio.DatagramProtocol):
    """Times every ``/livegen/echo`` arriving; anything else is counted, never fatal."""

    arrivals: dict[int, float] = field(default_factory=dict)
    duplicates: int = 0
    other: int = 0
    on_arrival: Callable[[int], None] | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        t = time.perf_counter()
        try:
            groups = parse_packet(data)
        except OscParseError:
            self.other += 1
            return
        for _, msgs in groups:
            for m in msgs:
                beat = _echo_beat(m.address, m.tags, m.args)
                if beat is None:
                    self.other += 1
                elif beat in self.arrivals:
                    self.duplicates += 1
                else:
                    self.arrivals[beat] = t
                    if self.on_arrival is not None:
                        self.on_arrival(beat)


def _echo_beat(address: str, tags: str, args: tuple[Any, ...]) -> int | None:
    """The beat number of an echo; a float holding a whole number counts (Pd's numbers are floats)."""
    if address != ECHO or len(tags) < 1:
        return None
    if tags[0] in "ih":
        return int(args[0])
    if tags[0] in "fd" and float(args[0]).is_integer():
        return int(args[0])
    return None


def _stats(ms: list[float]) -> dict[str, float]:
    import numpy as np

    a = np.array(ms)
    return {"median_ms": float(np.median(a)), "p99_ms": float(np.percentile(a, 99)), "max_ms": float(a.max()),
            "min_ms": float(a.min()), "mean_ms": float(a.mean())}


async def _wait_answering(out: OscOutput, listener: EchoListener, peer: PeerProcess, timeout: float) -> int:
    """Send probe beats until one comes back; the number of probes sent."""
    deadline = time.monotonic() + timeout
    k = 0
    while time.monotonic() < deadline:
        if not peer.running():
            raise RuntimeError(f"{peer.name} peer exited (code {peer.proc.returncode if peer.proc else '?'}): "
                               f"{peer.stderr_tail() or 'no output'}")
        out.send(Beat(0.0, PROBE_BASE + k, 0, 0, 120.0))
        k += 1
        await asyncio.sleep(0.05)
        if any(b >= PROBE_BASE for b in listener.arrivals):
            return k
    raise RuntimeError(f"{peer.name} peer did not echo within {timeout:g} s: {peer.stderr_tail() or 'no output'}")


async def measure_peer(kind: str, beats: int, interval: float, pd_patch: Path | None = None,
                       pd_args: tuple[str, ...] = ()) -> dict[str, Any]:
    """Bind the listener, start the peer echoing to it, time ``beats`` round trips, stop the peer."""
    loop = asyncio.get_running_loop()
    listener = EchoListener()
    transport, _ = await loop.create_datagram_endpoint(lambda: listener, local_addr=(HOST, 0))
    reply_port = transport.get_extra_info("sockname")[1]
    out = None
    peer: PeerProcess | None = None
    try:
        peer = make_peer(kind, reply_port, pd_patch, pd_args)
        port = await loop.run_in_executor(None, peer.start)
        out = OscOutput(f"bench-{peer.name}", HOST, port, send=("beats",))
        t_start = time.perf_counter()
        probes = await _wait_answering(out, listener, peer, READY_TIMEOUT)
        ready_s = time.perf_counter() - t_start
        for k in range(WARMUP_BEATS):  # first trips through fresh code paths and caches
            out.send(Beat(0.0, PROBE_BASE + probes + k, 0, 0, 120.0))
            await asyncio.sleep(interval)
        await asyncio.sleep(0.1)
        listener.arrivals.clear()
        listener.duplicates = listener.other = 0

        got_all = asyncio.Event()
        measured = [0]

        def arrived(beat: int) -> None:
            if beat < beats:
                measured[0] += 1
                if measured[0] == beats:
                    got_all.set()

        listener.on_arrival = arrived
        sent: dict[int, float] = {}
        t0 = time.perf_counter()
        for i in range(beats):
            delay = t0 + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            event = Beat(0.0, i, i // 4, i % 4, 120.0)
            sent[i] = time.perf_counter()
            out.send(event)  # encode + one non-blocking sendto, as on the dispatch thread
        try:
            await asyncio.wait_for(got_all.wait(), DRAIN_SECONDS)
        except asyncio.TimeoutError:
            pass
        rtts = [(listener.arrivals[i] - sent[i]) * 1e3 for i in range(beats) if i in listener.arrivals]
        result: dict[str, Any] = {
            "peer": peer.name, "describe": peer.describe, "sent": beats, "echoed": len(rtts),
            "lost": beats - len(rtts), "duplicates": listener.duplicates, "other": listener.other,
            "send_errors": out.errors, "ready_s": ready_s, "interval_ms": interval * 1e3,
        }
        if rtts:
            result.update(_stats(rtts))
        return result
    finally:
        if out is not None:
            out.close()
        transport.close()
        if peer is not None:
            await loop.run_in_executor(None, peer.stop)


def run(peers: list[str], beats: int = 1000, interval_ms: float = 3.0, pd_patch: Path | None = None,
        log: Callable[[str], None] = print, pd_args: tuple[str, ...] = ()) -> dict[str, Any]:
    """Measure each peer in turn (the same beats, one after the other) and return the figures."""
    if beats < 1 or beats >= PROBE_BASE:
        raise ValueError(f"--beats must be 1..{PROBE_BASE - 1}, got {beats}")
    if interval_ms <= 0:
        raise ValueError(f"--interval-ms must be positive, got {interval_ms}")
    results: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for kind in peers:
        try:
            results.append(asyncio.run(measure_peer(kind, beats, interval_ms / 1e3, pd_patch, pd_args)))
        except PeerUnavailable as e:
            skipped[kind] = str(e)
            log(f"{kind}: skipped, {e}")
        except RuntimeError as e:
            skipped[kind] = str(e)
            log(f"{kind}: failed, {e}")
    return {"beats": beats, "interval_ms": interval_ms, "warmup_beats": WARMUP_BEATS, "results": results,
            "skipped": skipped, "python": platform.python_version(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "kernel": platform.release()}


def format_report(r: dict[str, Any]) -> str:
    lines = [f"livegen bench osc-roundtrip — {r['beats']} beats {r['interval_ms']:g} ms apart per peer "
             f"(after {r['warmup_beats']} warm-up beats), livegen OscOutput -> peer echo -> asyncio listener, "
             f"127.0.0.1 UDP; Python {r['python']}, {r['cpus']} cores, Linux {r['kernel']}"]
    base = next((x for x in r["results"] if x["peer"] == "python" and x["echoed"]), None)
    for x in r["results"]:
        head = f"{x['peer']:<7} {x['describe']}"
        if not x["echoed"]:
            lines.append(f"{head}: no echo came back ({x['lost']} lost)")
            continue
        rel = ""
        if base is not None and x is not base:
            rel = f" ({x['median_ms'] / base['median_ms']:.2f}x python's median)"
        lines.append(f"{head}\n        median {x['median_ms']:.3f} ms, p99 {x['p99_ms']:.3f} ms, "
                     f"max {x['max_ms']:.3f} ms{rel}; {x['echoed']}/{x['sent']} echoed, {x['lost']} lost"
                     + (f", {x['duplicates']} duplicates" if x["duplicates"] else "")
                     + (f", {x['send_errors']} send errors" if x["send_errors"] else ""))
    for kind, why in r["skipped"].items():
        lines.append(f"{kind:<7} not measured: {why}")
    return "\n".join(lines)


def main(args: Any) -> int:
    import shlex

    peers = args.peer or list(PEERS)
    r = run(list(dict.fromkeys(peers)), args.beats, args.interval_ms, args.pd_patch, log=lambda s: None,
            pd_args=tuple(shlex.split(args.pd_args or "")))
    print(format_report(r))
    if args.json:
        args.json.write_text(json.dumps(r, indent=1))
    return 0 if r["results"] and all(x["echoed"] for x in r["results"]) else 1


if __name__ == "__main__":
    sys.exit(_echo_main(sys.argv[1:]))
