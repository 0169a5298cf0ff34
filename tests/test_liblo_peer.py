"""liblo, an independent OSC implementation in C, against livegen in both directions.

Into livegen: liblo's ``oscsend`` drives the real OSC server on a real engine (a parameter
store built from a patch) over UDP on 127.0.0.1. Out of livegen: ``OscOutput`` sends to
liblo's ``oscdump`` and its printed lines are checked. Replies (``/livegen/get``, ``dump``,
``ping``) go to the sender's port, which ``oscsend`` (a throwaway port) cannot read, so a
liblo server socket from pyliblo3 sends those and receives the replies.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import shlex
import shutil
import socket
import time
from typing import Any, Awaitable, Callable

import pytest

from livegen.control.mapping import mapped_value
from livegen.control.osc_server import OscServer
from livegen.engine import Engine
from livegen.events import AllNotesOff, Beat, ClockTick, NoteOff, NoteOn, ParamChanged, Transport
from livegen.outputs.osc_out import SEND_KINDS, OscOutput, encode
from livegen.patch.loader import parse_patch
from livegen.render import VirtualScheduler

HOST = "127.0.0.1"
OSCSEND, OSCDUMP = shutil.which("oscsend"), shutil.which("oscdump")
NO_LIBLO_TOOLS = "liblo-tools not installed (apt-get install liblo-tools); .ci/run installs it"

pytestmark = pytest.mark.skipif(OSCSEND is None or OSCDUMP is None, reason=NO_LIBLO_TOOLS)

PATCH = """
[clock]
bpm = 100

[[generators]]
name = "arp"
kind = "arpeggiator"
voice = "bass"

[midi]
inputs = []
virtual_output = false

[[osc.map]]
address = "/fader/1"
param = "arp.density"
min = 0.2
max = 0.6

[audio]
enabled = false

[visuals]
enabled = false
"""


def _engine() -> Engine:
    return Engine(parse_patch(PATCH), VirtualScheduler(), seed=0)


async def _until(cond: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout:g} s: {what}")
        await asyncio.sleep(0.002)


def _serve(test: Callable[[Engine, OscServer], Awaitable[None]]) -> Engine:
    """Run ``test(engine, server)`` with livegen's OSC server listening on a free port."""
    engine = _engine()

    async def main() -> None:
        server = OscServer(engine, HOST, 0, maps=engine.osc_maps, triggers=engine.osc_triggers,
                           specs=engine.store.spec)
        await server.start()
        try:
            await asyncio.wait_for(test(engine, server), 30)
        finally:
            server.close()

    asyncio.run(main())
    return engine


async def _oscsend(server: OscServer, address: str, types: str = "", *values: str) -> None:
    """One message sent by liblo's oscsend; returns once livegen has received it."""
    before = server.stats["received"]
    proc = await asyncio.create_subprocess_exec(OSCSEND, HOST, str(server.port), address, types, *values,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, (out + err).decode()
    await _until(lambda: server.stats["received"] > before, f"livegen received {address}")


# -- into livegen -------------------------------------------------------------------------
def test_oscsend_sets_parameters_tempo_and_a_mapped_address() -> None:
    async def t(engine: Engine, server: OscServer) -> None:
        await _oscsend(server, "/livegen/param/arp.gate", "f", "0.3")
        assert engine.get_param("arp.gate") == pytest.approx(0.3, abs=1e-6)  # float32 on the wire

        step = engine.store.spec("arp.step")
        await _oscsend(server, "/livegen/param/arp.step/unit", "f", "0.5")
        assert engine.get_param("arp.step") == pytest.approx(step.from_unit(0.5))

        await _oscsend(server, "/livegen/tempo", "i", "128")  # an int where the table says f
        assert engine.get_param("tempo") == 128.0
        assert engine.clock.bpm == 128.0

        density = engine.store.spec("arp.density")
        await _oscsend(server, "/fader/1", "f", "0.5")  # the patch's [[osc.map]]: 0..1 onto 0.2..0.6
        assert engine.get_param("arp.density") == pytest.approx(mapped_value(density, 0.5, 0.2, 0.6, "linear"))
        assert engine.get_param("arp.density") == pytest.approx(0.4)

        await _oscsend(server, "/livegen/note", "ff", "64", "90")  # Pd-style floats for ints
        await _until(lambda: any(n.pitch == 64 for n in engine.recent), "the note reached the engine")

        assert server.stats["rejected"] == 0 and server.stats["malformed"] == 0
        assert server.stats["applied"] == 5

    _serve(t)


def test_bad_messages_are_rejected_with_one_line_each_and_the_show_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="livegen")

    async def t(engine: Engine, server: OscServer) -> None:
        await _oscsend(server, "/livegen/nonsense", "f", "1.0")
        await _oscsend(server, "/livegen/tempo", "s", "fast")
        await _oscsend(server, "/livegen/param/arp.gate", "m", "00903c40")  # a MIDI packet for a float
        await _oscsend(server, "/livegen/param/arp.gate", "f", "0.7")
        assert engine.get_param("arp.gate") == pytest.approx(0.7, abs=1e-6)
        assert engine.get_param("tempo") == 100.0
        assert server.stats["rejected"] == 3 and server.stats["applied"] == 1

    _serve(t)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("livegen")]
    for needle in ("unknown address /livegen/nonsense", "/livegen/tempo", ",m"):
        assert len([line for line in lines if needle in line]) == 1, (needle, lines)
    assert len(lines) == 3, lines
    assert all("\n" not in line for line in lines)


# -- out of livegen ------------------------------------------------------------------------
def _parse_oscdump(line: str) -> tuple[str, str, list[Any]]:
    """``[timetag] /address tags values...`` as oscdump prints it (strings in double quotes)."""
    words = shlex.split(line)
    if words and not words[0].startswith("/"):
        words = words[1:]  # liblo 0.31 prints the timetag first
    address, tags = words[0], words[1] if len(words) > 1 else ""
    values: list[Any] = []
    for tag, text in zip(tags, words[2:]):
        values.append(int(text) if tag in "ih" else float(text) if tag in "fd" else text)
    return address, tags, values


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


async def _start_oscdump() -> tuple[asyncio.subprocess.Process, int]:
    """oscdump -L (line-buffered into our pipe) on a free port, once it prints what it receives."""
    for _ in range(5):
        port = _free_udp_port()
        proc = await asyncio.create_subprocess_exec(OSCDUMP, "-L", str(port), stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline and proc.returncode is None:
                probe.sendto(encode("/probe"), (HOST, port))
                try:
                    assert proc.stdout is not None
                    line = await asyncio.wait_for(proc.stdout.readline(), 0.1)
                except asyncio.TimeoutError:
                    continue
                if "/probe" in line.decode():
                    await asyncio.sleep(0.1)
                    while True:  # probes still on their way
                        try:
                            await asyncio.wait_for(proc.stdout.readline(), 0.05)
                        except asyncio.TimeoutError:
                            return proc, port
        finally:
            probe.close()
        await _stop(proc)  # the port was taken meanwhile: try another
    raise AssertionError("oscdump did not start")


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 3)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()


def test_osc_output_to_oscdump() -> None:
    events = [
        NoteOn(0.0, 60, 100, channel=2),
        NoteOff(0.0, 60, channel=2),
        Beat(0.0, beat=17, bar=4, beat_in_bar=1, bpm=126.5),
        ParamChanged(0.0, "synth.lead.cutoff", 880.5),
        AllNotesOff(0.0),
        ClockTick(0.0),
        Transport(0.0, "continue", 32),
    ]
    expected = [
        ("/livegen/note", "iii", [60, 100, 2]),
        ("/livegen/note", "iii", [60, 0, 2]),
        ("/livegen/beat", "iiif", [17, 4, 1, 126.5]),
        ("/livegen/param/synth.lead.cutoff", "f", [880.5]),
        ("/livegen/panic", "", []),
        ("/livegen/clock", "", []),
        ("/livegen/transport", "si", ["continue", 32]),
    ]

    async def main() -> list[tuple[str, str, list[Any]]]:
        proc, port = await _start_oscdump()
        out = OscOutput("oscdump", HOST, port, send=SEND_KINDS)
        try:
            for e in events:
                out.send(e)
            got = []
            assert proc.stdout is not None
            for _ in expected:
                line = await asyncio.wait_for(proc.stdout.readline(), 5)
                got.append(_parse_oscdump(line.decode()))
            assert out.errors == 0
            return got
        finally:
            out.close()
            await _stop(proc)

    got = asyncio.run(main())
    assert [(a, t) for a, t, _ in got] == [(a, t) for a, t, _ in expected]
    for (address, _, values), (_, _, want) in zip(got, expected):
        for v, w in zip(values, want, strict=True):
            assert v == (w if isinstance(w, str) else pytest.approx(w)), (address, values, want)


# -- replies, to a liblo server socket ---------------------------------------------------
def test_get_dump_and_ping_reply_to_the_sending_liblo_server() -> None:
    liblo = pytest.importorskip("pyliblo3", reason="pyliblo3 not installed (pip install pyliblo3)")
    replies: queue.Queue[tuple[str, list[Any], str]] = queue.Queue()

    def on_any(path: str, args: list[Any], types: str, src: Any) -> None:
        replies.put((path, list(args), types))

    peer = liblo.ServerThread()  # liblo's receive thread; we send from the same socket
    peer.add_method(None, None, on_any)
    peer.start()

    async def take(n: int, timeout: float = 5.0) -> list[tuple[str, list[Any], str]]:
        got: list[tuple[str, list[Any], str]] = []
        deadline = time.monotonic() + timeout
        while len(got) < n:
            try:
                got.append(replies.get_nowait())
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{len(got)} of {n} replies came back: {got}") from None
                await asyncio.sleep(0.002)
        return got

    async def t(engine: Engine, server: OscServer) -> None:
        livegen = liblo.Address(HOST, server.port, liblo.UDP)
        peer.send(livegen, "/livegen/get", ("s", "arp.gate"))
        [(path, args, types)] = await take(1)
        assert (path, types) == ("/livegen/value", "sf")
        assert args[0] == "arp.gate" and args[1] == pytest.approx(engine.get_param("arp.gate"))

        peer.send(livegen, "/livegen/get", ("s", "no.such"))
        [(path, args, types)] = await take(1)
        assert (path, types) == ("/livegen/error", "s") and "no.such" in args[0]

        peer.send(livegen, "/livegen/dump")
        names = engine.param_names()
        dumped = await take(len(names))
        assert {p for p, _, _ in dumped} == {"/livegen/value"}
        values = {a[0]: a[1] for _, a, _ in dumped}
        assert sorted(values) == names
        assert values == pytest.approx({n: engine.get_param(n) for n in names})

        peer.send(livegen, "/livegen/ping")
        assert [(p, t) for p, _, t in await take(1)] == [("/livegen/pong", "")]
        await asyncio.sleep(0.05)
        assert replies.empty()

    try:
        _serve(t)
    finally:
        peer.stop()
        peer.free()
