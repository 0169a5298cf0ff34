"""Never stop the show: junk OSC and MIDI thrown at a real ``livegen play`` and at the engine.

The subprocess tests run the fuzz benchmark's own run (livegen.bench.fuzz) with a few
thousand datagrams and check the properties, not the speed. The in-process tests drive a
real Engine through a real OSC server with hypothesis-generated messages and bundles and
random MIDI bytes, and pin the log-flood fixes the fuzzing found.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import time
import types

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import livegen.log
from livegen.bench import fuzz
from livegen.bench.fuzz import (
    IMMEDIATELY,
    MIDI_WEIGHTS,
    OSC_WEIGHTS,
    FuzzOptions,
    ntp,
    osc_bundle,
    osc_message,
)
from livegen.clock.tempo import MAX_BPM, MIN_BPM
from livegen.control.osc_server import OscServer
from livegen.engine import Engine
from livegen.events import AllNotesOff, NoteOff, NoteOn
from livegen.log import MAX_ARG, MAX_KEY, RateLimitedLog
from livegen.patch.loader import parse_patch
from livegen.render import VirtualScheduler

HOST = "127.0.0.1"


# -- a real livegen play, fuzzed ---------------------------------------------------------------
def _assert_the_show_went_on(r: dict) -> None:
    props = r["properties"]
    assert props["process_up_throughout"], r["stderr"]["tail"]
    assert props["exit_code_0_after_quit"], (r["exit_code"], r["stderr"]["tail"])
    assert props["answers_ping_at_the_end"]
    assert props["no_traceback"], (r["stderr"], r["log"])
    assert props["no_handler_errors"], r["stats_after"]
    assert props["future_bundles_capped"], r["stats_after"]
    # memory, not time: the whole run may not grow livegen by 100 MB
    assert props["rss_growth_under_100_mb"], r["rss_mb"]
    d = r["stats_delta"]
    assert d["malformed"] > 0 and d["rejected"] > 0 and d["applied"] > 0
    assert d["dropped_future"] > 0  # far-future bundles were counted, not kept
    assert r["log"]["longest_line"] < 2000  # one short line per problem, whatever the junk held (was 60 KB)


def test_osc_junk_never_stops_livegen_play() -> None:
    r = fuzz.run(FuzzOptions(datagrams=3000, midi_messages=0, seed=2, jack=False))
    assert r["osc"]["sent"] == 3000 and set(r["osc"]["per_category"]) == set(OSC_WEIGHTS)
    _assert_the_show_went_on(r)
    assert r["midi"] == {"skipped": "no JACK"}


def test_midi_and_osc_junk_over_jack_leave_no_stuck_notes(jack_midi) -> None:
    r = fuzz.run(FuzzOptions(datagrams=1500, midi_messages=2000, seed=3, jack=True))
    _assert_the_show_went_on(r)
    m = r["midi"]
    assert m["wired"] and m["sent"] == 2000 and set(m["per_category"]) == set(MIDI_WEIGHTS), m
    assert r["properties"]["controller_heard_after_midi_junk"], m
    out = r["midi_out"]
    assert out["note_ons"] > 0, "livegen played nothing: the stuck-notes check would be empty"
    # every note-on ended by its note-off or an all-notes-off; not note-off by note-off: the
    # test's JACK server is not real time, and a JACK client then loses a period's MIDI now and then
    assert r["properties"]["no_stuck_notes"], out


# -- the same junk, in process: a real engine behind a real OSC server ------------------------
PATCH = """
[clock]
bpm = 120
[[generators]]
name = "arp"
kind = "arpeggiator"
seed = 5
[generators.params]
density = 1.0
rest = 0.0
[[midi.map]]
cc = 74
param = "arp.density"
[[midi.map]]
cc = 1
cc14 = true
param = "tempo"
[[midi.map]]
pitchbend = true
param = "synth.lead.cutoff"
curve = "exp"
[[midi.triggers]]
note = 36
action = "scene:calm"
[[midi.triggers]]
cc = 64
action = "tap"
[[osc.map]]
address = "/td/density"
param = "arp.density"
[[osc.map]]
address = "/td/tempo"
param = "tempo"
raw = true
[[osc.triggers]]
address = "/td/mutate"
action = "mutate"
[scenes.calm]
bpm = 90
"arp.density" = 0.25
"""


class Sink:
    name = "sink"
    lead = 0.0

    def __init__(self) -> None:
        self.events: list = []

    def send(self, e) -> None:
        self.events.append(e)

    def close(self) -> None:
        pass


NAMES = st.one_of(st.sampled_from(["tempo", "arp.density", "arp.gate", "arp.low", "synth.lead.cutoff",
                                   "synth.master", "swing", "visuals.hue"]),
                  st.text(max_size=12).map(lambda s: s.replace("/", "")))
NUMBER = st.one_of(
    st.tuples(st.just("f"), st.floats(width=32)),  # NaN and infinities included
    st.tuples(st.just("d"), st.floats()),
    st.tuples(st.just("i"), st.integers(-2**31, 2**31 - 1)),
    st.tuples(st.just("h"), st.integers(-2**63, 2**63 - 1)),
)
ARG = st.one_of(NUMBER, NUMBER, st.tuples(st.sampled_from("sS"), st.one_of(NAMES, st.text(max_size=30))),
                st.tuples(st.just("b"), st.binary(max_size=16)), st.tuples(st.sampled_from("TFN"), st.none()))
ADDRESS = st.one_of(
    NAMES.map(lambda n: f"/livegen/param/{n}"),
    NAMES.map(lambda n: f"/livegen/param/{n}/unit"),
    st.sampled_from(["/livegen/tempo", "/livegen/note", "/livegen/scene", "/livegen/trigger", "/livegen/panic",
                     "/livegen/screenshot", "/livegen/record", "/livegen/get", "/livegen/dump", "/livegen/learn",
                     "/livegen/learn/save", "/livegen/ping", "/livegen/stats", "/livegen/quit",
                     "/td/density", "/td/tempo", "/td/mutate", "/livegen/show/tempo", "/livegen/other/panic"]),
    st.text(max_size=20).map(lambda s: "/livegen/" + s),
)
MESSAGE = st.builds(lambda address, args: osc_message(address, *args), ADDRESS, st.lists(ARG, max_size=3))
WHEN = st.sampled_from(["immediately", "past", "1900", "soon", "later", "beyond max_ahead", "2036"])


def _timetag(when: str) -> int:
    ahead = {"past": -5.0, "soon": 0.02, "later": 30.0, "beyond max_ahead": 600.0}
    if when in ahead:
        return ntp(time.time() + ahead[when])
    return {"immediately": IMMEDIATELY, "1900": 0, "2036": 0xFFFFFFFFFFFFFFFF}[when]


BUNDLE = st.builds(lambda when, msgs: osc_bundle(_timetag(when), *msgs), WHEN, st.lists(MESSAGE, min_size=1, max_size=4))
DATAGRAM = st.one_of(MESSAGE, MESSAGE, BUNDLE, st.builds(lambda w, b: osc_bundle(_timetag(w), b), WHEN, BUNDLE))
MIDI_BYTES = st.one_of(
    st.binary(min_size=1, max_size=6),
    st.tuples(st.sampled_from([0x80, 0x90, 0xB0, 0xC0, 0xE0, 0xA0, 0xD0]), st.integers(0, 15),
              st.integers(0, 127), st.integers(0, 127)).map(lambda t: bytes([t[0] | t[1], t[2], t[3]])),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(DATAGRAM, min_size=1, max_size=40), st.lists(MIDI_BYTES, max_size=40))
def test_random_control_keeps_every_parameter_in_range_and_leaves_nothing_sounding(datagrams, midi) -> None:
    t = [0.0]
    sink = Sink()
    sched = VirtualScheduler([sink])
    engine = Engine(parse_patch(PATCH, "<fuzz>"), sched, now=lambda: t[0], seed=1)

    async def main() -> OscServer:
        server = OscServer(engine, HOST, 0, maps=engine.osc_maps, triggers=engine.osc_triggers,
                           specs=engine.store.spec, max_pending=16, instance="show")
        await server.start()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for i, d in enumerate(datagrams):
                sock.sendto(d, (HOST, server.port))
                if i % 10 == 9:
                    await asyncio.sleep(0)
            deadline = time.monotonic() + 5
            while server.stats["received"] < len(datagrams) and time.monotonic() < deadline:
                await asyncio.sleep(0.002)
            await asyncio.sleep(0.05)  # the "soon" bundles
            return server
        finally:
            sock.close()
            server.close()

    server = asyncio.run(main())
    for data in midi:  # a controller's junk, decoded as MidiInput does, with the generator playing
        for ev in engine.decoder.decode_bytes(data):
            engine.handle_midi(ev, t[0], "fuzz ctl")
        engine.advance()
        sched.deliver_until(t[0] + 0.02)
        t[0] += 0.02

    assert server.stats["received"] == len(datagrams)
    assert server.stats["errors"] == 0  # nothing raised in a handler or the engine
    assert server.pending <= 16
    for spec in engine.store.specs():
        v = engine.store.get(spec.name)
        assert math.isfinite(v) and spec.min <= v <= spec.max, (spec.name, v)
    assert math.isfinite(engine.clock.bpm) and MIN_BPM <= engine.clock.bpm <= MAX_BPM
    engine.panic("test")
    sched.deliver_until(t[0] + 60)
    sounding: dict[tuple, int] = {}
    for e in sink.events:
        key = (e.channel, e.pitch, e.voice) if isinstance(e, (NoteOn, NoteOff)) else None
        if isinstance(e, NoteOn):
            sounding[key] = sounding.get(key, 0) + 1
        elif isinstance(e, NoteOff) and sounding.get(key):
            sounding[key] -= 1
        elif isinstance(e, AllNotesOff):
            sounding.clear()
    assert not any(sounding.values())


# -- what the fuzzing found: the log ---------------------------------------------------------------
@pytest.fixture
def frozen_log_clock(monkeypatch):
    """livegen.log's clock, stopped (and moved by hand): rate limits without timing."""
    now = [1000.0]
    monkeypatch.setattr(livegen.log, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    return now


def test_distinct_problems_are_capped_per_interval_and_long_arguments_cut(frozen_log_clock, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="livegen")
    problems = RateLimitedLog(logging.getLogger("livegen.test"), interval=2.0, burst=20)
    for i in range(1000):  # a new, 60 KB scene name in every message
        name = f"{i}" + "x" * 60000
        problems.warn(f"scene:{name}", "unknown scene %r from %s", name, "osc:10.0.0.9:9000")
    assert len(caplog.records) == 20
    assert max(len(r.getMessage()) for r in caplog.records) < MAX_ARG + 100
    assert all(len(k) <= MAX_KEY for k in problems._last) and problems.count == 1000
    frozen_log_clock[0] += 2.0
    problems.warn("other", "something else")
    assert caplog.records[-1].getMessage() == "something else (980 other problems not shown)"


def test_the_same_problem_repeated_is_still_said_once_per_interval(frozen_log_clock, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="livegen")
    problems = RateLimitedLog(logging.getLogger("livegen.test"))
    for _ in range(50):
        problems.warn("k", "the same %s", "thing")
    frozen_log_clock[0] += 2.5
    problems.warn("k", "the same %s", "thing")
    assert [r.getMessage() for r in caplog.records] == ["the same thing", "the same thing (and 49 more like it)"]


def test_adversarial_keys_keep_the_limiter_small(frozen_log_clock) -> None:
    problems = RateLimitedLog(logging.getLogger("livegen.test"), burst=10**9)
    for i in range(5000):  # each key twice: the second is suppressed and remembered
        problems.warn(f"k{i}", "x")
        problems.warn(f"k{i}", "x")
    assert len(problems._last) <= 1025 and len(problems._suppressed) <= 1025


def test_a_sender_naming_new_things_does_not_flood_the_log(frozen_log_clock, caplog) -> None:
    caplog.set_level(logging.INFO, logger="livegen")
    engine = Engine(parse_patch(PATCH, "<fuzz>"), VirtualScheduler([Sink()]), now=lambda: 0.0, seed=1)
    server = OscServer(engine, HOST, 0, specs=engine.store.spec, instance="show")
    for i in range(300):
        long = f"{i}" + "n" * 50000
        server.dispatch("/livegen/scene", [long])
        server.dispatch("/livegen/trigger", [long])
        server.dispatch("/livegen/learn", [long])
        server.dispatch(f"/livegen/param/{long}", [0.5])
        server.dispatch(f"/livegen/{long}/tempo", [120.0])  # another instance's address
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) <= 2 * 20  # the engine's limiter and the server's
    assert max(len(r.getMessage()) for r in caplog.records) < 1000
    others = [r for r in caplog.records if "is for instance" in r.getMessage()]
    assert len(others) <= 64 and all(len(n) <= 70 for n in server._other_instances)
    assert server.stats["other_instance"] == 300 and server.stats["errors"] == 0
