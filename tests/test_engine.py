"""The engine on a virtual clock: generation ahead, scheduling, control, no stuck notes."""

import pytest

from livegen.control.midi_in import ClockInput, ControlInput, NoteInput
from livegen.engine import Engine
from livegen.events import AllNotesOff, Beat, NoteOff, NoteOn, ParamChanged
from livegen.patch.loader import parse_patch
from livegen.render import VirtualScheduler

PATCH = """
[clock]
bpm = 120
[key]
tonic = "A"
scale = "minor"
[[generators]]
name = "arp"
kind = "arpeggiator"
seed = 5
[generators.params]
density = 1.0
rest = 0.0
low = 57
high = 81
[[midi.map]]
cc = 74
param = "arp.density"
[[midi.map]]
cc = 1
cc14 = true
param = "tempo"
min = 60
max = 180
[[midi.triggers]]
note = 36
action = "scene:calm"
[[midi.triggers]]
note = 37
action = "panic"
[scenes.calm]
"arp.density" = 0.25
bpm = 90
"""


class Sink:
    name = "sink"
    lead = 0.0

    def __init__(self):
        self.events = []

    def send(self, e):
        self.events.append(e)

    def close(self):
        pass


def make(text=PATCH):
    t = [0.0]
    sink = Sink()
    sched = VirtualScheduler([sink])
    eng = Engine(parse_patch(text, "test.toml"), sched, now=lambda: t[0], seed=1)
    return eng, sched, sink, t


def run(eng, sched, t, until, step=0.01):
    while t[0] < until:
        eng.advance()
        sched.deliver_until(t[0] + step)
        t[0] += step


def notes(sink, kind=NoteOn):
    return [e for e in sink.events if isinstance(e, kind)]


def test_generates_ahead_and_every_note_is_released():
    eng, sched, sink, t = make()
    run(eng, sched, t, 4.0)
    ons, offs = notes(sink), notes(sink, NoteOff)
    assert len(ons) >= 30  # 16ths at 120 bpm
    assert len(ons) - len(offs) <= 2  # only the notes sounding right now lack their note-off
    # Every note-on is scheduled on the 16th grid: 0.125 s at 120 bpm.
    assert all(abs(e.time / 0.125 - round(e.time / 0.125)) < 1e-6 for e in ons)
    beats = [e for e in sink.events if isinstance(e, Beat)]
    assert [b.beat for b in beats[:5]] == [0, 1, 2, 3, 4] and beats[4].beat_in_bar == 0 and beats[4].bar == 1
    eng.panic("test")
    sched.deliver_until(t[0] + 10)
    sounding = {}
    for e in sink.events:
        if isinstance(e, NoteOn):
            sounding[e.pitch] = sounding.get(e.pitch, 0) + 1
        elif isinstance(e, NoteOff) and sounding.get(e.pitch):
            sounding[e.pitch] -= 1
        elif isinstance(e, AllNotesOff):
            sounding.clear()
    assert not any(sounding.values())


def test_cc_moves_a_parameter_and_14bit_sets_tempo():
    eng, sched, sink, t = make()
    eng.handle_midi(ControlInput("cc", 0, 74, 0.5, 64), 0.0, "ctl")
    assert eng.store.get("arp.density") == pytest.approx(0.5)
    eng.handle_midi(ControlInput("cc14", 0, 1, 0.5, 8192), 0.0, "ctl")
    assert eng.clock.bpm == pytest.approx(120.0, abs=0.01)
    sched.deliver_until(1.0)
    assert any(isinstance(e, ParamChanged) and e.name == "arp.density" and e.value == 0.5 for e in sink.events)


def test_pads_fire_scene_and_panic_and_are_not_played():
    eng, sched, sink, t = make()
    run(eng, sched, t, 1.0)
    eng.handle_midi(NoteInput(36, 100, 0, True), t[0], "pads")
    assert eng.store.get("arp.density") == 0.25 and eng.clock.bpm == 90
    eng.handle_midi(NoteInput(37, 100, 0, True), t[0], "pads")
    sched.deliver_until(t[0] + 0.001)
    assert any(isinstance(e, AllNotesOff) for e in sink.events)
    assert not [e for e in notes(sink) if e.pitch in (36, 37)]


def test_performer_notes_sound_and_reach_the_generator():
    eng, sched, sink, t = make()
    eng.handle_midi(NoteInput(60, 90, 0, True), 0.0, "keys")
    sched.deliver_until(0.001)
    assert notes(sink)[-1].pitch == 60 and notes(sink)[-1].voice == "pluck"
    assert eng.recent[-1].pitch == 60 and eng.recent[-1].duration is None
    t[0] = 0.5
    eng.handle_midi(NoteInput(60, 0, 0, False), 0.5, "keys")
    sched.deliver_until(0.6)
    assert eng.recent[-1].duration == pytest.approx(1.0)
    assert notes(sink, NoteOff)[-1].pitch == 60


def test_midi_learn_binds_the_next_moved_knob():
    eng, sched, sink, t = make()
    assert eng.learn("arp.gate", "test")
    eng.handle_midi(ControlInput("cc", 2, 21, 0.9, 114), 0.0, "ctl")
    assert eng.store.get("arp.gate") != pytest.approx(0.05 + 0.95 * 0.2)  # the learning move itself is consumed
    eng.handle_midi(ControlInput("cc", 2, 21, 0.0, 0), 0.0, "ctl")
    assert eng.store.get("arp.gate") == pytest.approx(0.05)
    assert not eng.learn("no.such.param", "test")


def test_follows_external_midi_clock():
    from livegen.clock.midi_clock import ClockFollower

    eng, sched, sink, t = make(PATCH.replace("bpm = 120\n", 'bpm = 120\nsource = "midi"\n', 1))
    follower = ClockFollower()
    eng.handle_midi(ClockInput("start"), 1.0, "clock", follower)
    period = 60.0 / 100 / 24  # 100 bpm
    for i in range(24 * 8):
        tt = 1.0 + i * period
        eng.handle_midi(ClockInput("tick"), tt, "clock", follower)
    assert eng.clock.bpm == pytest.approx(100.0, abs=0.5)
    assert eng.clock.beat_at(1.0 + 8 * 0.6) == pytest.approx(8.0, abs=0.05)
    eng.handle_midi(ClockInput("stop"), 6.0, "clock", follower)
    assert not eng.clock.running


def test_tap_tempo_and_unknowns_are_reported(caplog):
    eng, sched, sink, t = make()
    for i in range(4):
        t[0] = i * 0.5
        eng.trigger("tap", "test")
    assert eng.clock.bpm == pytest.approx(120.0)
    assert not eng.scene("nope", "test")
    assert not eng.trigger("explode", "test")
    assert "unknown scene" in caplog.text and "unknown trigger" in caplog.text


def test_live_reload_keeps_playing_and_applies_changes():
    eng, sched, sink, t = make()
    run(eng, sched, t, 1.0)
    before = len(notes(sink))
    eng.apply_patch(parse_patch(PATCH.replace("bpm = 120", "bpm = 100").replace('tonic = "A"', 'tonic = "C"'), "test.toml"))
    assert eng.clock.bpm == 100 and eng.key.tonic == 0
    run(eng, sched, t, 3.0)
    assert len(notes(sink)) > before


def test_a_failing_generator_skips_a_window_not_the_show(caplog):
    eng, sched, sink, t = make()
    slot = eng.slots["arp"]
    real = slot.generator.generate
    calls = {"n": 0}

    def flaky(ctx):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("boom")
        return real(ctx)

    slot.generator.generate = flaky
    run(eng, sched, t, 2.0)
    assert eng.stats.generator_errors == 1 and len(notes(sink)) > 10


def test_program_change_recalls_scenes_in_file_order():
    eng, sched, sink, t = make()
    eng.handle_midi(ControlInput("program", 0, 0, 0.0, 0), 0.0, "ctl")
    assert eng.store.get("arp.density") == 0.25 and eng.clock.bpm == 90
    eng.handle_midi(ControlInput("program", 0, 5, 5 / 127, 5), 0.0, "ctl")  # no 6th scene: reported, ignored
    assert eng.store.get("arp.density") == 0.25


def test_a_stalled_loop_drops_past_notes_and_says_when():
    eng, sched, sink, t = make()
    run(eng, sched, t, 1.0)
    assert eng.stats.notes_dropped_late == 0 and eng.stats.dropped_late_at == []
    t[0] += 0.4  # the loop was held (a blocking wait): nothing generated or sent meanwhile
    stalled_at = t[0]
    run(eng, sched, t, 2.0)
    assert eng.stats.notes_dropped_late >= 1  # notes already due are dropped, not sent late
    assert len(eng.stats.dropped_late_at) == eng.stats.notes_dropped_late
    assert all(abs(x - stalled_at) < 1e-9 for x in eng.stats.dropped_late_at)
