"""OSC in and out over real UDP sockets on 127.0.0.1.

The server is driven the way TouchDesigner or Max drive it: datagrams from another socket,
replies read back on that socket. The fake surface records every call so each test says
exactly what reached the engine.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import struct
import time
from typing import Any, Awaitable, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.udp_client import SimpleUDPClient

from livegen.control.mapping import OscMap, Trigger, mapped_value
from livegen.control.osc_addresses import ADDRESSES, OscAddress, lookup, markdown_table
from livegen.control.osc_server import OscParseError, OscServer, parse_packet
from livegen.control.params import ParamSpec
from livegen.events import AllNotesOff, Beat, ClockTick, NoteOff, NoteOn, ParamChanged, Transport
from livegen.outputs.osc_out import OscOutput
from livegen.outputs.supercollider import ScsynthOutput

HOST = "127.0.0.1"


# -- helpers ------------------------------------------------------------------------------
class FakeSurface:
    """Records every call with the time it came; parameters live in a dict."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.times: list[float] = []
        self.sources: list[str] = []
        self.params = {"synth.cutoff": 1200.0, "gen.density": 0.5, "synth.master": 0.8}
        self.fail_on: str | None = None

    def _rec(self, *call: Any, source: str | None = None) -> None:
        if self.fail_on == call[0]:
            raise RuntimeError(f"engine bug in {call[0]}")
        self.calls.append(call)
        self.times.append(time.monotonic())
        if source is not None:
            self.sources.append(source)

    def set_param(self, name: str, value: float, source: str) -> bool:
        self._rec("set_param", name, value, source=source)
        return name in self.params

    def set_param_unit(self, name: str, x: float, source: str) -> bool:
        self._rec("set_param_unit", name, x, source=source)
        return name in self.params

    def get_param(self, name: str) -> float | None:
        self._rec("get_param", name)
        return self.params.get(name)

    def param_names(self) -> list[str]:
        self._rec("param_names")
        return sorted(self.params)

    def set_tempo(self, bpm: float, source: str) -> bool:
        self._rec("set_tempo", bpm, source=source)
        return True

    def play_note(self, pitch: int, velocity: int, source: str) -> None:
        self._rec("play_note", pitch, velocity, source=source)

    def scene(self, name: str, source: str) -> bool:
        self._rec("scene", name, source=source)
        return True

    def trigger(self, action: str, source: str) -> bool:
        self._rec("trigger", action, source=source)
        return True

    def panic(self, source: str) -> None:
        self._rec("panic", source=source)

    def quit(self, source: str) -> None:
        self._rec("quit", source=source)

    def screenshot(self, source: str) -> bool:
        self._rec("screenshot", source=source)
        return True

    def learn(self, param: str, source: str) -> bool:
        self._rec("learn", param, source=source)
        return True

    def save_learned(self, source: str) -> bool:
        self._rec("save_learned", source=source)
        return True

    def mutations(self) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] not in ("get_param", "param_names")]


def msg(address: str, *args: tuple[str, Any]) -> bytes:
    b = OscMessageBuilder(address)
    for tag, value in args:
        b.add_arg(value, tag)
    return b.build().dgram


def bundle(timestamp: float, *contents: bytes) -> bytes:
    b = OscBundleBuilder(timestamp)
    for c in contents:
        b.add_content(OscMessage(c) if c.startswith(b"/") else OscBundle(c))
    return b.build().dgram


def raw_bundle(timetag: bytes, *elements: bytes) -> bytes:
    return b"#bundle\x00" + timetag + b"".join(struct.pack(">i", len(e)) + e for e in elements)


class Client:
    """A peer socket: sends datagrams to the server and reads its replies."""

    def __init__(self, server_port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.setblocking(False)
        self.target = (HOST, server_port)

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def send(self, dgram: bytes) -> None:
        self.sock.sendto(dgram, self.target)

    async def recv(self, timeout: float = 2.0) -> OscMessage:
        deadline = time.monotonic() + timeout
        while True:
            try:
                data, _ = self.sock.recvfrom(65536)
                return OscMessage(data)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError("no reply from the OSC server") from None
                await asyncio.sleep(0.001)

    async def ping(self) -> None:
        """The server still answers: a /livegen/ping gets its /livegen/pong."""
        self.send(msg("/livegen/ping"))
        reply = await self.recv()
        assert reply.address == "/livegen/pong"

    def close(self) -> None:
        self.sock.close()


async def until(cond: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.001)


async def settle(server: OscServer, n: int, timeout: float = 2.0) -> None:
    """Wait until the server has received ``n`` datagrams in all."""
    await until(lambda: server.stats["received"] >= n, timeout)


def run(test: Callable[..., Awaitable[None]], **server_kw: Any) -> FakeSurface:
    """Run ``test(server, client, surface)`` against a started server on a free port."""
    surface = FakeSurface()

    async def main() -> None:
        server = OscServer(surface, HOST, 0, **server_kw)
        await server.start()
        client = Client(server.port)
        try:
            await asyncio.wait_for(test(server, client, surface), 20)
        finally:
            client.close()
            server.close()

    asyncio.run(main())
    return surface


# -- the address table --------------------------------------------------------------------
TABLE_CASES: list[tuple[str, tuple[tuple[str, Any], ...], tuple[Any, ...] | None]] = [
    ("/livegen/param/synth.cutoff", (("f", 880.0),), ("set_param", "synth.cutoff", 880.0)),
    ("/livegen/param/gen.density/unit", (("f", 0.25),), ("set_param_unit", "gen.density", 0.25)),
    ("/livegen/tempo", (("f", 128.0),), ("set_tempo", 128.0)),
    ("/livegen/note", (("i", 60), ("i", 100)), ("play_note", 60, 100)),
    ("/livegen/scene", (("s", "verse"),), ("scene", "verse")),
    ("/livegen/trigger", (("s", "mutate"),), ("trigger", "mutate")),
    ("/livegen/panic", (), ("panic",)),
    ("/livegen/quit", (), ("quit",)),
    ("/livegen/screenshot", (), ("screenshot",)),
    ("/livegen/get", (("s", "synth.cutoff"),), ("get_param", "synth.cutoff")),
    ("/livegen/dump", (), ("param_names",)),
    ("/livegen/learn", (("s", "synth.cutoff"),), ("learn", "synth.cutoff")),
    ("/livegen/learn/save", (), ("save_learned",)),
    ("/livegen/ping", (), None),
]


def test_cases_cover_the_whole_table() -> None:
    covered = {lookup(addr)[0].pattern for addr, _, _ in TABLE_CASES}  # type: ignore[index]
    covered.add("/livegen/record")  # needs the live rig's recorder: below and tests/test_recording.py
    covered.add("/livegen/stats")  # below: its reply would come before the pong these cases wait for
    assert covered == {a.pattern for a in ADDRESSES}


def test_record_address_calls_the_rigs_recorder() -> None:
    calls = []

    async def t(server: OscServer, client: Client, surface: FakeSurface) -> None:
        client.send(msg("/livegen/record", ("i", 1)))
        client.send(msg("/livegen/record", ("f", 0.0)))  # Pure Data sends floats
        await until(lambda: len(calls) == 2)
        assert server.stats["applied"] == 2 and surface.calls == []

    run(t, on_record=lambda on, source: calls.append((on, source)) or True)
    assert [on for on, _ in calls] == [True, False] and calls[0][1].startswith("osc:")


@pytest.mark.parametrize("address,args,expected", TABLE_CASES, ids=[c[0] for c in TABLE_CASES])
def test_table_address_reaches_the_surface(address: str, args: tuple, expected: tuple | None) -> None:
    async def t(server: OscServer, client: Client, surface: FakeSurface) -> None:
        client.send(msg(address, *args))
        if expected is None:
            await client.ping()  # /livegen/ping: the pong is the effect
            assert surface.calls == []
            return
        await until(lambda: len(surface.calls) > 0)
        await asyncio.sleep(0.01)
        assert surface.calls[0] == expected
        assert server.stats["applied"] == 1 and server.stats["rejected"] == 0
        if surface.sources:
            assert surface.sources[0] == f"osc:{HOST}:{client.port}"

    run(t)


def test_simple_udp_client_and_int_arguments_for_floats() -> None:
    """TouchDesigner and Max send ints for whole numbers; Pure Data sends floats for ints."""

    async def t(server: OscServer, client: Client, surface: FakeSurface) -> None:
        sc = SimpleUDPClient(HOST, server.port)
        sc.send_message("/livegen/tempo", 120)  # python-osc types this as ,i
        sc.send_message("/livegen/param/synth.cutoff", 440)
        sc.send_message("/livegen/note", [64.0, 90.0])  # ,ff: whole floats are fine for ints
        sc.send_message("/livegen/note", [64.5, 90.0])  # not a pitch
        await settle(server, 4)
        assert surface.calls == [("set_tempo", 120.0), ("set_param", "synth.cutoff", 440.0), ("play_note", 64, 90)]
        assert all(type(c[-1]) is float for c in surface.calls[:2])
        assert all(type(v) is int for v in surface.calls[2][1:])
        assert server.stats["rejected"] == 1

    run(t)


def test_get_replies_to_the_sender_with_the_value_or_an_error() -> None:
    async def t(server: OscServer, client: Client, surface: FakeSurface) -> None:
        client.send(msg("/livegen/get", ("s", "synth.cutoff")))
        reply = await client.recv()
        assert reply.address == "/livegen/value"
        assert reply.params == ["synth.cutoff", pytest.approx(1200.0)]
        client.send(msg("/livegen/get", ("s", "no.such")))
        reply = await client.recv()
        assert reply.address == "/livegen/error"
        assert "no.such" in reply.params[0]

    run(t)


def test_stats_replies_every_counter_and_the_bundles_waiting() -> None:
    async def t(server: OscServer, client: Client, surface: FakeSurface) -> None:
        client.send(b"junk")
        client.send(bundle(time.time() + 30, msg("/livegen/panic")))
        client.send(msg("/livegen/stats"))
        reply = await client.recv()
        assert reply.address == "/livegen/stats"
        got = dict(zip(reply.params[::2], reply.params[1::2]))
        assert set(got) == {*server.stats, "pending"} and got["pending"] == 1
        assert got["received"] == 3 and got["malformed"] == 1 and got["scheduled"] == 1 and got["errors"] == 0
        client.send(msg("/livegen/fuzz/stats"))
        assert (await client.recv()).address == "/livegen/fuzz/stats"  # an instance's own address

    run(t, instance="fuzz")


def test_dump_replies_one_value_per_parameter() -> None:
    async def t(server: OscServer, client: Client, surface: FakeSurface) -> None:
        client.send(msg("/livegen/dump"))
        got = {}
        for _ in surface.params:
            reply = await client.recv()
            assert reply.address == "/livegen/value"
            got[reply.params[0]] = reply.params[1]
        assert got == pytest.approx(surface.params)

    run(t)


def test_unknown_address_and_wrong_types_are_rejected_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="livegen")

    async def t(server: OscServer, client: Client, surface: FakeSurface) -> None:
        client.send(msg("/livegen/nonsense", ("f", 1.0)))
        client.send(msg("/livegen/tempo", ("s", "fast")))
        client.send(msg("/livegen/note", ("i", 60)))
        client.send(msg("/livegen/panic", ("i", 1)))
        client.send(msg("/livegen/tempo", ("f", math.inf)))
        client.send(msg("/livegen/note", ("i", 200), ("i", 100)))
        await settle(server, 6)
        await client.ping()
        assert surface.mutations() == []
        assert server.stats["rejected"] == 6
        assert server.stats["applied"] == 1  # the ping

    run(t)
    text = caplog.text
    assert "/livegen/nonsense" in text
    assert "/livegen/tempo" in text and "expected ,f, got ,s ('fast',)" in text
    assert "/livegen/note" in text and "expected ,ii" in text
    assert "expected no arguments" in text


def test_a_broken_engine_call_is_counted_and_the_server_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="livegen")

    async def t(server: OscServer, client: Client, surface: FakeSurface) -> None:
        surface.fail_on = "trigger"
        client.send(msg("/livegen/trigger", ("s", "mutate")))
        await settle(server, 1)
        await client.ping()
        assert server.stats["errors"] == 1
        surface.fail_on = None
        client.send(msg("/livegen/trigger", ("s", "mutate")))
        await until(lambda: surface.calls == [("trigger", "mutate")])

    run(t)
    assert "/livegen/trigger" in caplog.text


# -- malformed input ----------------------------------------------------------------------
MALFORMED = {
    "random bytes": bytes(range(7, 47)),
    "empty": b"",
    "truncated float": msg("/livegen/tempo", ("f", 120.0))[:-2],
    "truncated string": msg("/livegen/scene", ("s", "chorus"))[:-4],
    "unterminated address": b"/livegen/pi",
    "bad type tag": b"/livegen/tempo\x00\x00,x\x00\x00\x00\x00\x00\x01",
    "type tags without comma": b"/livegen/tempo\x00\x00f\x00\x00\x00B\xf0\x00\x00",
    "unbalanced array": b"/livegen/tempo\x00\x00,[f\x00B\xf0\x00\x00",
    "negative blob length": b"/livegen/scene\x00\x00,b\x00\x00\xff\xff\xff\xf0",
    "non-UTF-8 address": b"/livegen/\xff\xfe\x00\x00",
    "non-UTF-8 string arg": b"/livegen/scene\x00\x00,s\x00\x00\xc3\x28\x00\x00",
    "bundle header only": b"#bundle\x00\x00\x00",
    "bundle with huge length": b"#bundle\x00" + b"\x00" * 7 + b"\x01" + struct.pack(">i", 0x7FFFFFF0) + msg("/livegen/panic"),
    "bundle with negative length": b"#bundle\x00" + b"\x00" * 7 + b"\x01" + struct.pack(">i", -8) + msg("/livegen/panic"),
    "bundle element of junk": raw_bundle(b"\x00" * 7 + b"\x01", b"junk"),
    "bundle with a bad message": raw_bundle(b"\x00" * 7 + b"\x01", msg("/livegen/panic"), b"/livegen/\xff\x00\x00"),
}


def _deep_bundle(depth: int) -> bytes:
    inner = msg("/livegen/panic")
    for _ in range(depth):
        inner = raw_bundle(b"\x00" * 7 + b"\x01", inner)
    return inner


MALFORMED["deeply nested bundles"] = _deep_bundle(2000)
MALFORMED["nested one too deep"] = _deep_bundle(9)


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_datagram_is_counted_logged_and_harmless(name: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="livegen")
    data = MALFORMED[name]

    async def t(server: OscServer, client: Client, surface: FakeSurface) -> None:
        client.send(data)
        await settle(server, 1)
        await client.ping()
        assert server.stats["malformed"] == 1, server.stats
        assert server.stats["errors"] == 0
        assert surface.mutations() == []

    run(t)
    lines = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert len(lines) == 1 and f"{HOST}:" in lines[0].getMessage()


def test_bundles_nested_within_the_limit_are_applied() -> None:
    async def t(server: OscServer, client: Client, surface: FakeSurface) -> None:
        client.send(_deep_bundle(8))
        await until(lambda: surface.calls == [("panic",)])
        assert server.stats["malformed"] == 0

    run(t)


def _near_valid() -> st.SearchStrategy[bytes]:
    """Valid messages and bundles, then cut, flipped or spliced: the junk real senders make."""
    valid = st.sampled_from([
        msg("/livegen/tempo", ("f", 120.0)),
        msg("/livegen/note", ("i", 60), ("i", 100)),
        msg("/livegen/scene", ("s", "verse")),
        msg("/livegen/param/synth.cutoff/unit", ("f", 0.5)),
        raw_bundle(b"\x00" * 7 + b"\x01", msg("/livegen/trigger", ("s", "tap"))),
        _deep_bundle(3),
    ])

    def mangle(data: bytes, cut: int, pos: int, byte: int, tail: bytes) -> bytes:
        b = bytearray(data[: max(0, len(data) - cut)])
        if b:
            b[pos % len(b)] = byte
        return bytes(b) + tail

    return st.builds(mangle, valid, st.integers(0, 12), st.integers(0, 200), st.integers(0, 255), st.binary(max_size=12))


DATAGRAMS = st.one_of(
    st.binary(max_size=256),
    st.binary(max_size=64).map(lambda b: b"/livegen/" + b),
    st.binary(max_size=64).map(lambda b: b"#bundle\x00" + b),
    _near_valid(),
)


@settings(max_examples=400, deadline=None)
@given(DATAGRAMS)
def test_parse_packet_only_ever_raises_parse_errors(data: bytes) -> None:
    try:
        groups = parse_packet(data)
    except OscParseError:
        return
    for when, msgs in groups:
        assert when is None or isinstance(when, float)
        assert all(m.address.startswith("/") for m in msgs)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(DATAGRAMS, min_size=100, max_size=100))
def test_random_datagrams_never_kill_the_server(datagrams: list[bytes]) -> None:
    async def t(server: OscServer, client: Client, surface: FakeSurface) -> None:
        for i, d in enumerate(datagrams):
            client.send(d)
            if i % 20 == 0:
                await asyncio.sleep(0)
        await settle(server, len(datagrams), timeout=5)
        await client.ping()
        assert server.stats["errors"] == 0

    run(t)


# -- bundles and time ---------------------------------------------------------------------
def test_future_bundle_is_applied_at_its_time() -> None:
    async def t(server: OscServer, client: Client, surface: FakeSurface) -> None:
        sent = time.monotonic()
        client.send(bundle(time.time() + 0.2, msg("/livegen/tempo", ("f", 90.0)), msg("/livegen/panic")))
        await settle(server, 1)
        assert surface.calls == [] and server.pending == 2
        await until(lambda: len(surface.calls) == 2, timeout=1.0)
        assert surface.calls == [("set_tempo", 90.0), ("panic",)]
        late = surface.times[0] - sent
        assert 0.17 <= late <= 0.23, late
        assert server.pending == 0 and server.stats["scheduled"] == 2

    run(t)


def test_past_and_immediate_bundles_are_applied_now() -> None:
    async def t(server: OscServer, client: Client, surface: FakeSurface) -> None:
        sent = time.monotonic()
        client.send(bundle(time.time() - 5.0, msg("/livegen/tempo", ("f", 100.0))))
        client.send(bundle(IMMEDIATELY, msg("/livegen/tempo", ("f", 101.0))))
        await until(lambda: len(surface.calls) == 2)
        assert surface.calls == [("set_tempo", 100.0), ("set_tempo", 101.0)]
        assert surface.times[1] - sent < 0.05
        assert server.stats["scheduled"] == 0

    run(t)


def test_nested_future_bundle_inside_an_immediate_one() -> None:
    async def t(server: OscServer, client: Client, surface: FakeSurface) -> None:
        inner = bundle(time.time() + 0.1, msg("/livegen/scene", ("s", "drop")))
        client.send(bundle(IMMEDIATELY, msg("/livegen/panic"), inner))
        await until(lambda: surface.calls == [("panic",)])
        await until(lambda: len(surface.calls) == 2, timeout=1.0)
        assert surface.calls[1] == ("scene", "drop")
        assert 0.07 <= surface.times[1] - surface.times[0] <= 0.14

    run(t)


def test_more_than_max_pending_future_bundles_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="livegen")

    async def t(server: OscServer, client: Client, surface: FakeSurface) -> None:
        when = time.time() + 5.0
        for i in range(8):
            client.send(bundle(when, msg("/livegen/tempo", ("f", 100.0 + i))))
        await settle(server, 8)
        assert server.pending == 5
        assert server.stats["dropped_future"] == 3
        assert surface.calls == []

    run(t, max_pending=5)
    assert "max_pending 5" in caplog.text


def test_bundles_beyond_max_ahead_are_dropped() -> None:
    async def t(server: OscServer, client: Client, surface: FakeSurface) -> None:
        client.send(bundle(time.time() + 5.0, msg("/livegen/panic")))
        client.send(bundle(time.time() + 0.05, msg("/livegen/tempo", ("f", 99.0))))
        await until(lambda: surface.calls == [("set_tempo", 99.0)], timeout=1.0)
        assert server.stats["dropped_future"] == 1
        assert server.pending == 0

    run(t, max_ahead=1.0)


def test_close_cancels_waiting_bundles() -> None:
    async def t(server: OscServer, client: Client, surface: FakeSurface) -> None:
        client.send(bundle(time.time() + 0.05, msg("/livegen/panic")))
        await until(lambda: server.pending == 1)
        server.close()
        await asyncio.sleep(0.1)
        assert surface.calls == [] and server.pending == 0

    run(t)


def test_on_applied_hook_gets_the_receive_time() -> None:
    seen: list[float] = []

    async def t(server: OscServer, client: Client, surface: FakeSurface) -> None:
        before = time.monotonic()
        client.send(msg("/livegen/tempo", ("f", 120.0)))
        await until(lambda: len(seen) == 1)
        assert before <= seen[0] <= surface.times[0]
        assert server.last_applied_latency is not None and 0 <= server.last_applied_latency < 0.05

    run(t, on_applied=seen.append)


# -- patch mappings, triggers, allowlist --------------------------------------------------
CUTOFF = ParamSpec("synth.cutoff", 1200.0, 20.0, 20000.0, unit="Hz")


def test_osc_map_goes_through_curve_and_range() -> None:
    maps = [
        OscMap("/td/cutoff", "synth.cutoff", curve="exp"),
        OscMap("/td/cutoff_narrow", "synth.cutoff", min=200.0, max=2000.0),
        OscMap("/td/raw", "synth.cutoff", raw=True),
        OscMap("/livegen/tempo", "synth.cutoff", raw=True),  # a patch may take over a built-in address
    ]

    async def t(server: OscServer, client: Client, surface: FakeSurface) -> None:
        client.send(msg("/td/cutoff", ("f", 0.5)))
        client.send(msg("/td/cutoff_narrow", ("i", 1)))  # ints from TouchDesigner too
        client.send(msg("/td/raw", ("f", 333.0)))
        client.send(msg("/livegen/tempo", ("f", 444.0)))
        client.send(msg("/td/cutoff", ("s", "loud")))
        await settle(server, 5)
        await client.ping()
        assert surface.calls == [
            ("set_param", "synth.cutoff", pytest.approx(mapped_value(CUTOFF, 0.5, None, None, "exp"))),
            ("set_param", "synth.cutoff", pytest.approx(2000.0)),
            ("set_param", "synth.cutoff", pytest.approx(333.0)),
            ("set_param", "synth.cutoff", pytest.approx(444.0)),
        ]
        assert surface.calls[0][2] < 5000.0  # exp: mid-fader sits low in the range (linear: 10010)
        assert server.stats["rejected"] == 1

    run(t, maps=maps, specs={"synth.cutoff": CUTOFF}.__getitem__)


def test_osc_triggers_fire_on_press_only() -> None:
    triggers = [
        Trigger("scene:verse", address="/td/verse"),
        Trigger("panic", address="/td/panic"),
        Trigger("mutate", address="/td/mutate"),
        Trigger("learn:synth.cutoff", address="/td/learn"),
        Trigger("tap", note=36),  # a MIDI pad: not the OSC server's business
    ]

    async def t(server: OscServer, client: Client, surface: FakeSurface) -> None:
        client.send(msg("/td/verse", ("f", 1.0)))
        client.send(msg("/td/verse", ("f", 0.0)))  # release
        client.send(msg("/td/panic"))
        client.send(msg("/td/mutate", ("i", 1)))
        client.send(msg("/td/learn", ("T", True)))
        await settle(server, 5)
        await client.ping()
        assert surface.calls == [("scene", "verse"), ("panic",), ("trigger", "mutate"), ("learn", "synth.cutoff")]

    run(t, triggers=triggers)


def test_allowlist_blocks_other_senders(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="livegen")

    async def t(server: OscServer, client: Client, surface: FakeSurface) -> None:
        client.send(msg("/livegen/tempo", ("f", 99.0)))
        client.send(msg("/livegen/ping"))
        await settle(server, 2)
        await asyncio.sleep(0.05)
        assert surface.calls == []
        assert server.stats["blocked"] == 2 and server.stats["applied"] == 0
        with pytest.raises(BlockingIOError):
            client.sock.recvfrom(65536)

    run(t, allow=["10.0.0.1"])
    assert "allow list" in caplog.text


def test_allowlist_network_admits_its_members() -> None:
    async def t(server: OscServer, client: Client, surface: FakeSurface) -> None:
        client.send(msg("/livegen/tempo", ("f", 99.0)))
        await until(lambda: surface.calls == [("set_tempo", 99.0)])

    run(t, allow=["10.0.0.1", "127.0.0.0/8"])


def test_markdown_table_lists_every_address() -> None:
    table = markdown_table()
    for a in ADDRESSES:
        assert f"`{a.pattern}`" in table
    assert table.count("\n") == len(ADDRESSES) + 2
    assert lookup("/livegen/param/a.b/unit") == (ADDRESSES[1], "a.b")
    assert lookup("/livegen/param/a/b/c") is None
    assert isinstance(ADDRESSES[0], OscAddress)


# -- outputs ------------------------------------------------------------------------------
@pytest.fixture
def receiver():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    sock.settimeout(2.0)
    yield sock
    sock.close()


def _recv(sock: socket.socket) -> OscMessage:
    data, _ = sock.recvfrom(65536)
    return OscMessage(data)


def _nothing_waiting(sock: socket.socket) -> bool:
    sock.settimeout(0.05)
    try:
        sock.recvfrom(65536)
    except (TimeoutError, socket.timeout):
        return True
    finally:
        sock.settimeout(2.0)
    return False


def test_osc_output_sends_notes_beats_params(receiver: socket.socket) -> None:
    out = OscOutput("td", HOST, receiver.getsockname()[1])
    assert out.lead == 0.0 and out.name == "td"
    out.send(NoteOn(0.0, 60, 100, channel=2))
    out.send(NoteOff(0.1, 60, channel=2))
    out.send(AllNotesOff(0.2))
    out.send(Beat(0.3, beat=17, bar=4, beat_in_bar=1, bpm=126.5))
    out.send(ParamChanged(0.4, "synth.cutoff", 880.0))
    out.send(ClockTick(0.5))  # not asked for
    out.send(Transport(0.6, "start"))  # not asked for
    got = [_recv(receiver) for _ in range(5)]
    assert [(m.address, m.params) for m in got] == [
        ("/livegen/note", [60, 100, 2]),
        ("/livegen/note", [60, 0, 2]),
        ("/livegen/panic", []),
        ("/livegen/beat", [17, 4, 1, pytest.approx(126.5)]),
        ("/livegen/param/synth.cutoff", [pytest.approx(880.0)]),
    ]
    assert _nothing_waiting(receiver)
    out.close()
    out.send(NoteOn(1.0, 60, 100))  # after close: silently nothing
    assert out.errors == 0


def test_osc_output_prefix_and_kinds(receiver: socket.socket) -> None:
    out = OscOutput("vj", HOST, receiver.getsockname()[1], prefix="/show/", send=("clock", "transport"))
    out.send(NoteOn(0.0, 60, 100))
    out.send(ClockTick(0.0))
    out.send(Transport(0.0, "continue", 32))
    assert [(m.address, m.params) for m in (_recv(receiver), _recv(receiver))] == [
        ("/show/clock", []), ("/show/transport", ["continue", 32])]
    out.close()
    with pytest.raises(ValueError):
        OscOutput("bad", HOST, 9, send=("notes", "colours"))


def test_osc_output_send_errors_are_counted_and_logged_once(receiver: socket.socket, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="livegen")
    out = OscOutput("td", HOST, receiver.getsockname()[1])
    huge = "x" * 70000  # larger than any UDP datagram: sendto fails with EMSGSIZE
    out.send(ParamChanged(0.0, huge, 1.0))
    out.send(ParamChanged(0.0, huge, 2.0))
    assert out.errors == 2
    assert len([r for r in caplog.records if "td:" in r.getMessage()]) == 1
    out.send(NoteOn(0.0, 61, 90))  # still working
    assert _recv(receiver).params == [61, 90, 0]
    out.close()


def _recv_sc(sock: socket.socket) -> list[OscMessage]:
    """scsynth's messages in one datagram: a plain message, or a (time-tagged) bundle's,
    without the ``/error -1`` that switches error lines off inside it."""
    from pythonosc.osc_bundle import OscBundle

    data, _ = sock.recvfrom(65536)
    if not OscBundle.dgram_is_bundle(data):
        return [OscMessage(data)]
    return [m for m in OscBundle(data) if isinstance(m, OscMessage) and m.address != "/error"]


def test_scsynth_output_starts_and_releases_nodes(receiver: socket.socket) -> None:
    sc = ScsynthOutput(HOST, receiver.getsockname()[1], synthdef="pluck", group=7)
    assert sc.lead > 0.0  # notes go time-tagged, a little early (tests/test_scsynth_short_notes.py)
    sc.send(NoteOn(0.0, 69, 127))
    [m] = _recv_sc(receiver)
    assert m.address == "/s_new"
    synthdef, node, add_action, group, *controls = m.params
    assert (synthdef, add_action, group) == ("pluck", 0, 7)
    assert node >= 2000
    c = dict(zip(controls[::2], controls[1::2]))
    assert c["freq"] == pytest.approx(440.0) and c["amp"] == pytest.approx(1.0) and c["gate"] == 1
    sc.send(ParamChanged(0.1, "synth.master", 0.5))  # nothing for scsynth
    sc.send(NoteOff(0.5, 69))
    [off] = _recv_sc(receiver)
    assert (off.address, off.params) == ("/n_set", [node, "gate", 0])
    assert sc.live_nodes == []
    sc.close()


def test_scsynth_panic_and_close_release_every_node(receiver: socket.socket) -> None:
    sc = ScsynthOutput(HOST, receiver.getsockname()[1])
    for p in (60, 64, 60):
        sc.send(NoteOn(0.0, p, 100))
    nodes = [_recv_sc(receiver)[0].params[1] for _ in range(3)]
    assert len(set(nodes)) == 3 and nodes == sorted(nodes) and nodes[0] == 2000
    sc.send(NoteOff(0.1, 60))  # the oldest 60 first
    assert [m.params for m in _recv_sc(receiver)] == [[nodes[0], "gate", 0]]
    sc.send(AllNotesOff(0.2))
    released = {m.params[0] for m in _recv_sc(receiver) if m.address == "/n_set"}
    assert nodes[1] in released and nodes[2] in released and sc.live_nodes == []
    while not _nothing_waiting(receiver):  # the panic's free of queued nodes and its backstop
        pass
    sc.send(NoteOn(0.3, 72, 64))
    new = _recv_sc(receiver)[0].params
    assert new[1] == nodes[2] + 1 and dict(zip(new[4::2], new[5::2]))["freq"] == pytest.approx(440.0 * 2 ** 0.25)
    sc.close()
    closing = [m for m in _recv_sc(receiver) if m.address == "/n_set"]
    assert [m.params[0] for m in closing] == [new[1]] and closing[0].params[1] == "gate"


def test_scsynth_panic_forces_the_release_again_after_a_note_off_already_on_its_way(receiver: socket.socket) -> None:
    """A note-off sent time-tagged for just after the panic would set the gate to 0 over the
    panic's forced release (both in one control block: an ordinary, long release), so the
    panic says the forced release again right after it."""
    from livegen.outputs.supercollider import PANIC_RELEASE, timetag

    now = [time.monotonic()]
    sc = ScsynthOutput(HOST, receiver.getsockname()[1], clock=lambda: now[0])
    start = now[0]
    sc.send(NoteOn(start + 0.01, 60, 100))
    sc.send(NoteOn(start + 0.01, 64, 100))
    receiver.recvfrom(65536), receiver.recvfrom(65536)
    now[0] = start + 0.05
    sc.send(NoteOff(start + 0.2, 60))  # due after the panic: sent early, time-tagged
    off, _ = receiver.recvfrom(65536)
    off_tag = struct.unpack(">Q", off[8:16])[0]
    assert off_tag == pytest.approx(timetag(start + 0.2), abs=2**22)
    now[0] = start + 0.1
    sc.send(AllNotesOff(now[0]))
    receiver.settimeout(0.2)
    sent = []
    try:
        while True:
            sent.append(receiver.recvfrom(65536)[0])
    except (TimeoutError, socket.timeout):
        pass
    forced = -1.0 - PANIC_RELEASE
    again = [d for d in sent if OscBundle.dgram_is_bundle(d) and struct.unpack(">Q", d[8:16])[0] == off_tag + 1]
    assert len(again) == 1
    [m] = [m for m in OscBundle(again[0]) if isinstance(m, OscMessage) and m.address == "/n_set"]
    assert m.params[1] == "gate" and m.params[2] == pytest.approx(forced)


def test_dispatch_without_a_socket_for_scripted_renders() -> None:
    """``livegen render --events`` feeds OSC from a script on the virtual clock."""
    surface = FakeSurface()
    server = OscServer(surface, maps=[OscMap("/td/x", "gen.density")],
                       specs={"gen.density": ParamSpec("gen.density", 0.5)}.__getitem__)
    assert server.dispatch("/livegen/tempo", [132], sender=("script", 3))
    assert server.dispatch("/livegen/scene", ["chorus"])
    assert server.dispatch("/td/x", [0.25])
    assert server.dispatch("/livegen/get", ["synth.cutoff"])  # the reply goes nowhere
    assert not server.dispatch("/livegen/nope", [1])
    assert not server.dispatch("/livegen/tempo", [[1, 2]])
    assert surface.mutations() == [("set_tempo", 132.0), ("scene", "chorus"), ("set_param", "gen.density", 0.25)]
    assert surface.sources[0] == "osc:script:3"
    assert server.stats["rejected"] == 2 and server.stats["received"] == 0


def test_patch_send_kinds_are_the_outputs_kinds() -> None:
    from livegen.outputs.osc_out import SEND_KINDS
    from livegen.patch.schema import OSC_SEND_KINDS

    assert OSC_SEND_KINDS == SEND_KINDS  # a kind the output knows can be asked for in a patch
