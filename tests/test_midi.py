"""MIDI in and out: decoding, mappings, learn, triggers, and real JACK MIDI ports."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time

import mido
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livegen.control import midi_ports
from livegen.control.learn import MidiLearn, MidiMapper
from livegen.control.mapping import MidiMap, Trigger, apply_curve
from livegen.control.midi_in import ClockInput, ControlInput, MidiDecoder, MidiInput, NoteInput
from livegen.control.params import ParamSpec, UnknownParameter
from livegen.events import AllNotesOff, Beat, ClockTick, NoteOff, NoteOn, ParamChanged, Transport
from livegen.outputs.midi_out import MidiOutput

# -- decoder -----------------------------------------------------------------------------


def cc(control: int, value: int, channel: int = 0) -> mido.Message:
    return mido.Message("control_change", control=control, value=value, channel=channel)


def test_seven_bit_cc():
    assert MidiDecoder().decode(cc(7, 64, channel=2)) == [ControlInput("cc", 2, 7, 64 / 127, 64)]
    assert MidiDecoder().decode(cc(74, 127))[0].value == 1.0


def test_fourteen_bit_pair_gives_fourteen_bit_resolution():
    dec = MidiDecoder(cc14={1})
    # LSB before any MSB would snap the value to ~0: ignored.
    assert dec.decode(cc(33, 5)) == []
    seen = set()
    for raw in (0, 1, 127, 128, 5000, 8191, 8192, 16382, 16383):
        msb, lsb = raw >> 7, raw & 0x7F
        first = dec.decode(cc(1, msb))
        assert len(first) == 1 and first[0].kind == "cc14" and first[0].number == 1
        ev = dec.decode(cc(33, lsb))
        assert ev == [ControlInput("cc14", 0, 1, raw / 16383, raw)]
        seen.add(ev[0].value)
    assert len(seen) == 9  # values between 7-bit steps are distinguished
    # The MSB alone updates at once, keeping the last LSB.
    dec.decode(cc(1, 10))
    dec.decode(cc(33, 3))
    assert dec.decode(cc(1, 11)) == [ControlInput("cc14", 0, 1, (11 << 7 | 3) / 16383, 11 << 7 | 3)]
    # Pairs are per channel, and other controllers stay 7-bit.
    assert dec.decode(cc(33, 9, channel=4)) == []
    assert dec.decode(cc(2, 9)) == [ControlInput("cc", 0, 2, 9 / 127, 9)]
    assert MidiDecoder().decode(cc(33, 9))[0].kind == "cc"


def test_pitch_bend_extremes_and_centre():
    dec = MidiDecoder()
    lo = dec.decode(mido.Message("pitchwheel", pitch=-8192, channel=3))[0]
    hi = dec.decode(mido.Message("pitchwheel", pitch=8191))[0]
    mid = dec.decode(mido.Message("pitchwheel", pitch=0))[0]
    assert (lo.kind, lo.channel, lo.value, lo.raw) == ("pitchbend", 3, 0.0, 0)
    assert (hi.value, hi.raw) == (1.0, 16383)
    assert mid.value == pytest.approx(0.5, abs=1e-4) and mid.raw == 8192


def test_notes_program_aftertouch_clock():
    dec = MidiDecoder()
    assert dec.decode(mido.Message("note_on", note=60, velocity=100, channel=9)) == [NoteInput(60, 100, 9, True)]
    assert dec.decode(mido.Message("note_on", note=60, velocity=0)) == [NoteInput(60, 0, 0, False)]
    assert dec.decode(mido.Message("note_off", note=61, velocity=30)) == [NoteInput(61, 30, 0, False)]
    assert dec.decode(mido.Message("program_change", program=5, channel=1)) == [ControlInput("program", 1, 5, 5 / 127, 5)]
    assert dec.decode(mido.Message("aftertouch", value=127)) == [ControlInput("aftertouch", 0, 0, 1.0, 127)]
    assert dec.decode(mido.Message("clock")) == [ClockInput("tick")]
    assert dec.decode(mido.Message("start")) == [ClockInput("start")]
    assert dec.decode(mido.Message("stop")) == [ClockInput("stop")]
    assert dec.decode(mido.Message("continue")) == [ClockInput("continue")]
    assert dec.decode(mido.Message("songpos", pos=32)) == [ClockInput("songpos", 32)]
    assert dec.decode(mido.Message("active_sensing")) == []


def test_sysex_and_junk_bytes_are_ignored():
    dec = MidiDecoder()
    assert dec.decode(mido.Message("sysex", data=[1, 2, 3])) == []
    data = bytes([0x42, 0x13,                      # stray data bytes
                  0xF0, 0x7E, 0x01, 0xF7,          # sysex
                  0xF4, 0xFD,                      # undefined status bytes
                  0xB0, 7, 100,                    # CC 7 = 100
                  0x90, 60])                       # truncated note on
    assert dec.decode_bytes(data) == [ControlInput("cc", 0, 7, 100 / 127, 100)]
    assert dec.decode_bytes(b"") == []
    assert dec.decode_bytes(bytes([0x90, 60, 0x7F, 0xF8, 0x80, 60, 0])) == [
        NoteInput(60, 127, 0, True), ClockInput("tick"), NoteInput(60, 0, 0, False)]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.sets(st.integers(0, 31), max_size=4))
def test_random_bytes_never_raise(data, pairs):
    out = MidiDecoder(cc14=pairs).decode_bytes(data)
    for ev in out:
        assert isinstance(ev, (NoteInput, ControlInput, ClockInput))
        if isinstance(ev, ControlInput):
            assert 0.0 <= ev.value <= 1.0


# -- mapper, triggers, learn --------------------------------------------------------------

SPECS = {
    "cutoff": ParamSpec("cutoff", 1000.0, 20.0, 20000.0, unit="Hz"),
    "density": ParamSpec("density", 0.5),
    "steps": ParamSpec("steps", 8, 1, 16, integer=True),
}


def spec(name: str) -> ParamSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise UnknownParameter(name) from None


def ctl(kind: str, number: int, value: float, channel: int = 0) -> ControlInput:
    return ControlInput(kind, channel, number, value, round(value * 127))


def test_mapper_curves_ranges_and_channels():
    m = MidiMapper([
        MidiMap("cutoff", cc=74, curve="exp"),
        MidiMap("density", cc=1, channel=2, min=0.2, max=0.6),
        MidiMap("steps", pitchbend=True),
    ], spec)
    [(name, v)] = m.apply(ctl("cc", 74, 0.5))
    assert name == "cutoff" and v == pytest.approx(20 + 19980 * apply_curve(0.5, "exp"))
    assert v < 0.2 * 20000  # exp: the lower half of the knob is the low end of the range
    assert m.apply(ctl("cc", 1, 1.0, channel=2)) == [("density", pytest.approx(0.6))]
    assert m.apply(ctl("cc", 1, 0.0, channel=2)) == [("density", pytest.approx(0.2))]
    assert m.apply(ctl("cc", 1, 1.0, channel=3)) == []  # wrong channel
    assert m.apply(ctl("cc", 2, 1.0)) == []
    assert m.apply(ControlInput("pitchbend", 5, 0, 0.75, 12287)) == [("steps", 12.0)]  # any channel, integer
    assert m.apply(NoteInput(74, 100, 0, True)) == []


def test_mapper_cc14_unknown_param_and_replace():
    m = MidiMapper([MidiMap("cutoff", cc=1, cc14=True), MidiMap("ghost", cc=7)], spec)
    assert m.cc14_numbers() == {1}
    assert m.apply(ctl("cc", 1, 1.0)) == []  # a 14-bit map ignores plain 7-bit events
    [(_, v)] = m.apply(ControlInput("cc14", 0, 1, 8192 / 16383, 8192))
    assert v == pytest.approx(20 + 19980 * 8192 / 16383)
    assert m.apply(ctl("cc", 7, 0.5)) == []  # unknown parameter: skipped, logged
    m.add(MidiMap("density", cc=1))  # same controller, same channel: replaces the cutoff map
    assert m.cc14_numbers() == set()
    assert m.apply(ctl("cc", 1, 1.0)) == [("density", 1.0)]
    m.add(MidiMap("cutoff", cc=1, channel=0))  # a channel-specific map is a different one
    assert sorted(n for n, _ in m.apply(ctl("cc", 1, 1.0))) == ["cutoff", "density"]
    assert len(m.maps) == 3


def test_triggers_fire_on_rising_edges_only():
    m = MidiMapper([], spec)
    trig = [Trigger("panic", note=36), Trigger("tap", cc=64, channel=0), Trigger("mutate", cc=20),
            Trigger("osc only", address="/x")]
    assert m.match_triggers(trig, NoteInput(36, 90, 4, True)) == ["panic"]
    assert m.match_triggers(trig, NoteInput(36, 0, 4, False)) == []
    assert m.match_triggers(trig, NoteInput(37, 90, 0, True)) == []
    fired = [m.match_triggers(trig, ctl("cc", 64, v)) for v in (0.0, 1.0, 1.0, 0.6, 0.2, 0.8, 0.49, 0.5)]
    assert fired == [[], ["tap"], [], [], [], ["tap"], [], ["tap"]]
    assert m.match_triggers(trig, ctl("cc", 64, 1.0, channel=1)) == []  # channel filter (its own edge)
    assert m.match_triggers(trig, ctl("cc", 20, 1.0, channel=7)) == ["mutate"]


def test_learn_binds_first_moved_controller():
    learn = MidiLearn()
    assert learn.offer(ctl("cc", 74, 0.3)) is None  # not armed
    learn.arm("cutoff")
    assert learn.armed == "cutoff"
    assert learn.offer(NoteInput(60, 100, 0, True)) is None
    assert learn.offer(ControlInput("program", 0, 3, 3 / 127, 3)) is None
    assert learn.armed == "cutoff"
    m = learn.offer(ctl("cc", 74, 0.3, channel=5))
    assert m == MidiMap("cutoff", cc=74, channel=5)
    assert learn.armed is None and learn.offer(ctl("cc", 75, 0.3)) is None
    learn.arm("density")
    assert learn.offer(ControlInput("cc14", 1, 2, 0.5, 8192)) == MidiMap("density", cc=2, cc14=True, channel=1)
    learn.arm("steps")
    learn.cancel()
    assert learn.offer(ctl("cc", 1, 0.1)) is None
    learn.arm("steps")
    assert learn.offer(ControlInput("pitchbend", 0, 0, 0.5, 8192)) == MidiMap("steps", pitchbend=True, channel=0)
    assert [x.param for x in learn.learned] == ["cutoff", "density", "steps"]
    # A learned map works in the mapper straight away.
    mapper = MidiMapper([], spec)
    mapper.add(learn.learned[0])
    assert mapper.apply(ctl("cc", 74, 1.0, channel=5)) == [("cutoff", 20000.0)]


# -- MIDI out (recording port) ----------------------------------------------------------


class RecordingPort:
    def __init__(self, fail: bool = False) -> None:
        self.msgs: list[mido.Message] = []
        self.fail = fail
        self.closed = False

    def send(self, msg: mido.Message) -> None:
        if self.fail:
            raise OSError("device unplugged")
        self.msgs.append(msg)

    def close(self) -> None:
        self.closed = True


def sounding_after(msgs: list[mido.Message]) -> set[tuple[int, int]]:
    """What a synth receiving ``msgs`` would still be sounding (honouring CC 123)."""
    on: set[tuple[int, int]] = set()
    for m in msgs:
        if m.type == "note_on" and m.velocity > 0:
            on.add((m.channel, m.note))
        elif m.type in ("note_off", "note_on"):
            on.discard((m.channel, m.note))
    return on


def test_midi_output_messages_and_panic():
    port = RecordingPort()
    out = MidiOutput(port, "synth", channels_map={"bass": 1})
    assert out.lead == 0.0
    out.send(NoteOn(0.0, 60, 200))                 # velocity clamped to 127
    out.send(NoteOn(0.0, 130, 0, channel=3))      # pitch clamped to 127, velocity to 1
    out.send(NoteOn(0.0, 40, 90, voice="bass"))   # voice -> channel 1
    out.send(NoteOn(0.0, 62, 90))
    out.send(NoteOff(0.0, 62))
    out.send(Beat(0.0, 0, 0, 0, 120.0))
    out.send(ParamChanged(0.0, "cutoff", 1.0))
    assert [(m.type, m.channel, m.note, m.velocity) for m in port.msgs] == [
        ("note_on", 0, 60, 127), ("note_on", 3, 127, 1), ("note_on", 1, 40, 90),
        ("note_on", 0, 62, 90), ("note_off", 0, 62, 0)]
    assert sounding_after(port.msgs) == {(0, 60), (3, 127), (1, 40)}
    port.msgs.clear()
    out.send(AllNotesOff(1.0))
    assert sounding_after([mido.Message("note_on", channel=c, note=n, velocity=9)
                           for c, n in [(0, 60), (3, 127), (1, 40)]] + port.msgs) == set()
    ccs = {(m.channel, m.control) for m in port.msgs if m.type == "control_change"}
    assert ccs == {(c, n) for c in range(16) for n in (120, 123)}
    assert not out.sounding
    port.msgs.clear()
    out.send(ClockTick(2.0))
    out.send(Transport(2.0, "start"))
    out.send(Transport(2.0, "stop"))
    out.send(Transport(2.0, "continue", song_position=32))
    assert [m.type for m in port.msgs] == ["clock", "start", "stop", "songpos", "continue"]
    assert port.msgs[3].pos == 32
    out.send(NoteOn(3.0, 50, 80))
    port.msgs.clear()
    out.close()
    assert port.closed and ("note_off", 50) in [(m.type, getattr(m, "note", None)) for m in port.msgs]
    n = len(port.msgs)
    out.send(NoteOn(4.0, 50, 80))  # after close: nothing
    out.close()
    assert len(port.msgs) == n


def test_midi_output_survives_a_vanished_port():
    out = MidiOutput(RecordingPort(fail=True), "gone")
    for i in range(50):
        out.send(NoteOn(float(i), 60, 100))  # must not raise
    out.send(AllNotesOff(0.0))
    out.close()
    assert out.errors >= 50


# -- real JACK MIDI ---------------------------------------------------------------------

# The JACK server may be shared with other test runs: our fake controller's client name is
# unique, and patterns name it, so we never listen to somebody else's "test ctl".
FAKE = f"fakectl{os.getpid()}"
CTL = f"{FAKE}:test ctl"


def _wait(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.005)
    return pred()


def test_port_names_and_errors(jack_midi):
    ctl_port = jack_midi.open_output("test ctl", virtual=True, client_name=FAKE)
    try:
        assert CTL in midi_ports.input_names()
        assert midi_ports.match_port(["a:Test Ctl 2", CTL], "TEST CTL") == "a:Test Ctl 2"
        assert midi_ports.match_port(["a:x", CTL], CTL) == CTL
        with pytest.raises(midi_ports.MidiPortError, match=r"nope.*available:.*" + CTL):
            midi_ports.open_input("nope", lambda m: None)
    finally:
        ctl_port.close()


def test_midi_input_over_jack(jack_midi):
    async def main():
        loop = asyncio.get_running_loop()
        got: asyncio.Queue = asyncio.Queue()
        ctl_port = jack_midi.open_output("test ctl", virtual=True, client_name=FAKE)
        own = midi_ports.open_virtual_output("livegen out", client_name="livegen")
        mi = MidiInput(["*"], lambda ev, t, name: name == CTL and got.put_nowait((ev, t, name)), loop,
                       MidiDecoder(cc14={1}))
        try:
            assert CTL in mi.ports
            assert not any("livegen" in n for n in mi.ports)  # never listen to ourselves
            for msg, want in [
                (cc(74, 100, channel=2), ControlInput("cc", 2, 74, 100 / 127, 100)),
                (mido.Message("note_on", note=60, velocity=99), NoteInput(60, 99, 0, True)),
                (cc(1, 64), ControlInput("cc14", 0, 1, (64 << 7) / 16383, 64 << 7)),
                (cc(33, 3), ControlInput("cc14", 0, 1, (64 << 7 | 3) / 16383, 64 << 7 | 3)),
            ]:
                sent = time.monotonic()
                ctl_port.send(msg)
                ev, t, name = await asyncio.wait_for(got.get(), 0.1)
                assert ev == want and name == CTL
                assert 0 <= t - sent < 0.1
        finally:
            mi.close()
            own.close()
            ctl_port.close()

    asyncio.run(main())


def test_midi_output_over_jack_no_stuck_notes(jack_midi):
    ours = f"livegen{os.getpid()}"
    out_port = midi_ports.open_virtual_output("livegen out", client_name=ours)
    received: list[mido.Message] = []
    lock = threading.Lock()

    def collect(msg):
        with lock:
            received.append(msg)

    listener = midi_ports.open_input(f"{ours}:livegen out", collect, client_name="listener")
    out = MidiOutput(out_port, "jack")
    try:
        for p in (60, 64, 67):
            out.send(NoteOn(0.0, p, 100, channel=1))
        out.send(NoteOn(0.0, 60, 100, channel=1))  # the same key twice
        out.send(NoteOff(0.0, 64, channel=1))
        assert _wait(lambda: len(received) >= 5, 1.0)
        with lock:
            assert [(m.type, m.note) for m in received] == [
                ("note_on", 60), ("note_on", 64), ("note_on", 67), ("note_on", 60), ("note_off", 64)]
            assert sounding_after(received) == {(1, 60), (1, 67)}
        out.send(AllNotesOff(1.0))
        n_ccs = 32
        assert _wait(lambda: sum(m.type == "control_change" for m in received) >= n_ccs, 1.0)
        with lock:
            assert sounding_after(received) == set()
            offs = [(m.channel, m.note) for m in received[5:] if m.type == "note_off"]
            assert sorted(offs) == [(1, 60), (1, 60), (1, 67)]
            assert {(m.channel, m.control) for m in received if m.type == "control_change"} == {
                (c, n) for c in range(16) for n in (120, 123)}
    finally:
        out.close()
        listener.close()


def test_input_vanishes_and_reconnects(jack_midi, caplog):
    caplog.set_level(logging.INFO, logger="livegen")
    changes: list[tuple[str, str, float]] = []

    async def main():
        loop = asyncio.get_running_loop()
        got: asyncio.Queue = asyncio.Queue()
        ctl_port = jack_midi.open_output("test ctl", virtual=True, client_name=FAKE)
        mi = MidiInput([CTL], lambda ev, t, name: got.put_nowait(ev), loop, MidiDecoder())
        mi.on_change = lambda what, name: changes.append((what, name, time.monotonic()))
        watcher = asyncio.create_task(mi.watch())
        try:
            ctl_port.send(cc(7, 1))
            assert (await asyncio.wait_for(got.get(), 0.2)).raw == 1

            ctl_port.close()  # the controller's JACK client goes away
            gone = time.monotonic()
            while not changes and time.monotonic() - gone < 2.0:
                await asyncio.sleep(0.01)
            assert changes and changes[0][0] == "disappeared" and changes[0][2] - gone < 1.0
            await asyncio.sleep(0.7)  # a further rescan or two: still reported only once
            assert [c[0] for c in changes] == ["disappeared"]

            ctl_port = jack_midi.open_output("test ctl", virtual=True, client_name=FAKE)
            back = time.monotonic()
            while len(changes) < 2 and time.monotonic() - back < 2.0:
                await asyncio.sleep(0.01)
            assert [c[:2] for c in changes] == [("disappeared", CTL), ("connected", CTL)]
            assert changes[1][2] - back < 2.0
            ctl_port.send(cc(7, 2))
            assert (await asyncio.wait_for(got.get(), 0.2)).raw == 2
        finally:
            mi.close()
            await asyncio.wait_for(watcher, 2.0)
            ctl_port.close()

    asyncio.run(main())
    text = caplog.text
    assert text.count(f"MIDI input '{CTL}' disappeared; will reconnect") == 1
    assert text.count(f"MIDI input '{CTL}' connected") == 2  # at start and on return
