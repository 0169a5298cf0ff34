"""Panic from every source reaches every output and leaves nothing sounding.

Sources: OSC ``/livegen/panic`` over UDP to the rig's real server, a ``[[midi.triggers]]``
CC and a controller's own All Notes Off (CC 123) through a real JACK MIDI port, and the
Space key through the window's action path (a real pygame window on Xvfb). Outputs, each
watched from outside: the built-in synth on JACK (its audio process's active voices), the
virtual MIDI port heard by a JACK MIDI listener, an OSC target (a UDP socket), and scsynth
on JACK with SuperCollider's stock ``default`` SynthDef (every node ended) when installed.
No timing is asserted here: ``livegen bench panic`` measures how fast.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
import threading
import time
import warnings
from collections import Counter
from pathlib import Path

import mido
import pytest
from pythonosc.osc_message import OscMessage, ParseError

from livegen.clock.dispatcher import Dispatcher
from livegen.control.midi_in import ControlInput
from livegen.control.urgent import UrgentPanic
from livegen.engine import PANIC_ECHO_SECONDS, Engine
from livegen.events import AllNotesOff, NoteOff, NoteOn
from livegen.patch.loader import parse_patch
from test_scsynth_short_notes import STOCK_DEFAULT, Notifications

HOST = "127.0.0.1"
CLIENT = "lgpanic"  # the rig's JACK MIDI client: its virtual port is "lgpanic:livegen out"
PAD = "panic pad"  # the performer's controller, a virtual JACK MIDI port made here
TRIGGER_CC = 20

PATCH = """
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
gate = 0.95
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
name = "probe"
port = {target_port}
send = ["notes"]
{supercollider}
[visuals]
{visuals}
"""
SUPERCOLLIDER = """[supercollider]
enabled = true
port = {port}
synthdef = "default"
synthdef_file = "{file}"
group = 1
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------
# no servers: the engine's rules
# ---------------------------------------------------------------------------------------
class Sink:
    """A scheduler that keeps what the engine asks of it."""

    def __init__(self) -> None:
        self.panics: list[float | None] = []
        self.quiet: list[bool] = []  # each panic's unless_quiet (the loop's share of an urgent one)

    def schedule(self, event, outputs=None) -> None:
        pass

    def panic(self, t=None, unless_quiet=False) -> bool:
        self.panics.append(t)
        self.quiet.append(unless_quiet)
        return True


def _engine(extra: str = "") -> tuple[Engine, Sink, list[float]]:
    now = [10.0]
    sink = Sink()
    patch = parse_patch(f"[midi]\ninputs = []\n{extra}", "<test>")
    return Engine(patch, sink, now=lambda: now[0]), sink, now


def test_a_controllers_all_notes_off_panics_once_per_burst():
    eng, sink, now = _engine()
    for channel in range(16):  # a panic button: CC 123 then CC 120 on every channel
        for cc in (123, 120):
            eng.handle_midi(ControlInput("cc", channel, cc, 0.0, 0), now[0], "pads")
    assert len(sink.panics) == 1
    now[0] += PANIC_ECHO_SECONDS + 0.01
    eng.handle_midi(ControlInput("cc", 3, 120, 0.0, 0), now[0], "pads")  # All Sound Off alone
    assert len(sink.panics) == 2
    now[0] += 0.1  # our own all-notes-off coming back through a synth's MIDI thru: no loop
    eng.handle_midi(ControlInput("cc", 0, 123, 0.0, 0), now[0], "synth thru")
    assert len(sink.panics) == 2
    eng.handle_midi(ControlInput("cc", 0, 74, 1.0, 127), now[0], "pads")  # other CCs are not panics
    assert len(sink.panics) == 2


def test_all_notes_off_panic_can_be_switched_off_and_a_cc_trigger_still_works():
    eng, sink, now = _engine(f"panic_on_all_notes_off = false\n[[midi.triggers]]\ncc = {TRIGGER_CC}\naction = \"panic\"")
    assert eng.patch.midi.panic_on_all_notes_off is False
    eng.handle_midi(ControlInput("cc", 0, 123, 0.0, 0), now[0], "daw")
    assert sink.panics == []
    eng.handle_midi(ControlInput("cc", 0, TRIGGER_CC, 1.0, 127), now[0], "pads")
    assert len(sink.panics) == 1
    eng, _, _ = _engine()
    assert eng.patch.midi.panic_on_all_notes_off is True  # on unless the patch says otherwise


def test_a_window_of_notes_being_generated_at_the_panic_is_dropped():
    eng, sink, _ = _engine()
    fut = _Done()
    eng._inflight.append(fut)
    placed = []
    eng._place = lambda *a: placed.append(a)  # the engine's own step, watched
    eng.panic("test")
    eng._collect()
    assert placed == [] and not eng._inflight and len(sink.panics) == 1


class _Done:
    window_start = 0.0

    def done(self) -> bool:
        return True

    def result(self):
        return []


class _Recorder:
    name = "rec"
    lead = 0.05

    def __init__(self) -> None:
        self.events: list = []
        self.dispatcher: Dispatcher | None = None

    def send(self, event) -> None:
        self.events.append(event)
        if len(self.events) == 1:  # a panic comes in while the batch is being sent
            self.t_panic = time.monotonic()
            self.dispatcher.panic()


def test_a_panic_during_a_batch_drops_the_rest_of_its_notes():
    out = _Recorder()
    d = Dispatcher([out], priority=None)
    out.dispatcher = d
    t = time.monotonic() + 0.05
    for pitch in (60, 64, 67):  # one chord: one batch
        d.schedule(NoteOn(t, pitch, 100))
    d.start()
    try:
        deadline = time.monotonic() + 2
        while not any(isinstance(e, AllNotesOff) for e in out.events) and time.monotonic() < deadline:
            time.sleep(0.005)
    finally:
        d.stop()
    kinds = [type(e).__name__ for e in out.events]
    assert kinds == ["NoteOn", "AllNotesOff"], kinds
    # Dated `lead` ahead: the output drops the notes it was handed early along with the rest.
    assert out.events[1].time == pytest.approx(out.t_panic + out.lead, abs=0.005)


def test_a_note_handed_to_the_synth_early_does_not_start_after_the_panic(jack_server):
    """The synth gets each note ``lead`` early; one due just after the panic is already in its
    audio process, and its note-off (still in the dispatcher) is dropped by the panic. The
    panic must take that note too, or it would start and hold for good."""
    from livegen.sound.server import AudioUnavailable, SynthOutput

    synth = SynthOutput(device="JACK")
    try:
        synth.start()
    except AudioUnavailable as e:
        pytest.skip(f"no JACK audio device: {e}")
    d = Dispatcher([synth], priority=None)
    handed = threading.Event()
    d.on_emit = lambda out, ev, *_: handed.set() if isinstance(ev, NoteOn) else None
    d.start()
    try:
        t = time.monotonic() + synth.lead / 2 + 0.1
        d.schedule(NoteOn(t, 60, 100))
        d.schedule(NoteOff(t + 1.0, 60))
        assert handed.wait(1.0)
        d.panic()  # the note is due in lead/2: handed over, not started
        time.sleep(t - time.monotonic() + 0.2)
        assert synth.stats()["active_voices"] == 0
    finally:
        d.stop()
        synth.close()


# ---------------------------------------------------------------------------------------
# the live rig with real servers
# ---------------------------------------------------------------------------------------
class OscTarget:
    """The patch's OSC target: a UDP socket; every message kept with its arrival time."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.messages: list[tuple[float, str, list]] = []
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                m = OscMessage(data)
            except ParseError:
                continue
            self.messages.append((time.monotonic(), m.address, list(m.params)))

    def close(self) -> None:
        self._stop = True
        self._thread.join(1.0)
        self.sock.close()


class MidiListener:
    """A JACK MIDI client on the rig's virtual output: every message with its arrival time."""

    def __init__(self) -> None:
        from livegen.control.midi_ports import open_input

        self.messages: list[tuple[float, object]] = []
        self.port = open_input(f"{CLIENT}:livegen out", lambda m: self.messages.append((time.monotonic(), m)),
                               client_name="panic-listener")

    def sounding(self) -> Counter:
        """(channel, note) -> note-ons not yet matched by a note-off (no CC counted)."""
        c: Counter = Counter()
        for _, m in list(self.messages):
            if m.type == "note_on" and m.velocity > 0:
                c[(m.channel, m.note)] += 1
            elif m.type in ("note_on", "note_off") and c[(m.channel, m.note)] > 0:
                c[(m.channel, m.note)] -= 1
        return +c

    def close(self) -> None:
        self.port.close()


class Rig:
    """The live rig and its watchers, for one test."""

    def __init__(self, rig, target: OscTarget, listener: MidiListener, sc: Notifications | None,
                 osc_port: int) -> None:
        self.rig, self.target, self.listener, self.sc, self.osc_port = rig, target, listener, sc, osc_port

    async def until(self, cond, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.02)

    async def playing_everywhere(self) -> None:
        """Generation on, and notes sounding on every output at once."""
        self.rig.engine.slots["arp"].enabled = True
        t = time.monotonic()
        await self.until(lambda: self.rig.synth.stats()["active_voices"] > 0, 5, "the synth to sound")
        await self.until(lambda: self.listener.sounding(), 5, "a note held on the MIDI port")
        await self.until(lambda: any(ts > t and a == "/livegen/note" and p[1] > 0
                                     for ts, a, p in self.target.messages), 5, "an OSC note")
        if self.sc is not None:
            await self.until(lambda: set(self.sc.go) - set(self.sc.end), 5, "a node sounding on scsynth")

    async def check_silent_after(self, source: str, t_panic: float) -> None:
        """Nothing sounding anywhere, and each output got the panic after ``t_panic``."""
        await asyncio.sleep(0.5)  # the forced releases, the backstop (0.1 s), the MIDI burst
        synth = self.rig.synth.stats()
        assert synth["active_voices"] == 0, f"{source}: the synth still sounds {synth['active_voices']} voices"
        assert not self.listener.sounding(), f"{source}: MIDI notes still held: {self.listener.sounding()}"
        cc123 = {m.channel for ts, m in list(self.listener.messages)
                 if ts > t_panic and m.type == "control_change" and m.control == 123}
        assert cc123 == set(range(16)), f"{source}: CC 123 heard on channels {sorted(cc123)}"
        panics = [ts for ts, a, _ in list(self.target.messages) if ts > t_panic and a == "/livegen/panic"]
        assert panics, f"{source}: the OSC target got no /livegen/panic"
        late = [(a, p) for ts, a, p in list(self.target.messages) if ts > panics[0] and a == "/livegen/note" and p[1] > 0]
        assert not late, f"{source}: OSC notes started after the panic: {late}"
        if self.sc is not None:
            left = set(self.sc.go) - set(self.sc.end)
            assert not left, f"{source}: scsynth nodes left: {sorted(left)}"
            assert self.sc.group_size(1) == 0, f"{source}: scsynth's group 1 is not empty"

    async def panic_by(self, source: str, fire) -> None:
        await self.playing_everywhere()
        self.rig.engine.slots["arp"].enabled = False  # nothing new after the panic: "silent" is checkable
        t_panic = time.monotonic()
        fire()
        await self.check_silent_after(source, t_panic)


def _start_scsynth(workdir: Path):
    """scsynth on JACK, or None (with the reason) when it is not installed."""
    if not shutil.which("scsynth"):
        return None, "scsynth not installed (apt-get install supercollider-server)"
    from livegen.bench.scsynth import _start_scsynth as start

    proc, port, _ = start(workdir)
    return (proc, port), ""


def _run_rig(jack_midi, tmp_path: Path, visuals: str, body) -> None:
    """A rig playing on every output (scsynth when installed); ``body(rig, pad)`` fires the panics."""
    from livegen.bench.scsynth import _stop_scsynth
    from livegen.play import LiveRig, RigOptions

    pad = jack_midi.open_output(PAD, virtual=True, client_name="panic-controller")
    sc, why = _start_scsynth(Path(tempfile.mkdtemp(dir=tmp_path)))
    target = OscTarget()
    osc_port = free_port()
    sc_toml = SUPERCOLLIDER.format(port=sc[1], file=STOCK_DEFAULT.as_posix()) if sc else ""
    patch_file = tmp_path / "panic.toml"
    patch_file.write_text(PATCH.format(pad=PAD, client=CLIENT, cc=TRIGGER_CC, osc_port=osc_port,
                                       target_port=target.port, supercollider=sc_toml, visuals=visuals))
    notes = Notifications(sc[1]) if sc else None

    async def main() -> None:
        from livegen.patch.loader import load_patch

        window = "enabled = true" in visuals
        rig = LiveRig(load_patch(patch_file), RigOptions(window=window, audio=True, seed=7, watch_patch=False))
        await rig.start()
        listener = None
        try:
            assert rig.synth is not None and rig.timing is not None, rig.missing
            assert not [m for m in rig.missing if "scsynth" in m or "MIDI" in m or "OSC" in m], rig.missing
            listener = MidiListener()
            r = Rig(rig, target, listener, notes, osc_port)
            await r.until(lambda: rig.midi_in is not None and rig.midi_in.ports, 5, "the rig to open the pad's port")
            await body(r, pad)
        finally:
            await rig.close()
            if listener is not None:
                listener.close()

    try:
        asyncio.run(main())
    finally:
        pad.close()
        target.close()
        if notes is not None:
            notes.close()
        if sc:
            _stop_scsynth(*sc)
    if why:
        warnings.warn(f"scsynth not checked: {why}", stacklevel=2)


def test_osc_a_cc_trigger_and_a_controllers_all_notes_off_silence_every_output(jack_midi, tmp_path, caplog):
    import mido

    async def body(r: Rig, pad) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            await r.panic_by("OSC /livegen/panic", lambda: s.sendto(_osc("/livegen/panic"), (HOST, r.osc_port)))
        await r.panic_by(f"[[midi.triggers]] cc = {TRIGGER_CC}",
                         lambda: pad.send(mido.Message("control_change", control=TRIGGER_CC, value=127)))
        pad.send(mido.Message("control_change", control=TRIGGER_CC, value=0))  # the button let go
        await asyncio.sleep(PANIC_ECHO_SECONDS)
        await r.panic_by("CC 123 from the controller",
                         lambda: pad.send(mido.Message("control_change", channel=5, control=123, value=0)))

    with caplog.at_level("INFO", logger="livegen"):
        _run_rig(jack_midi, tmp_path, "enabled = false", body)
    # One log line per panic, naming where it came from (then the shutdown's own).
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("panic (")]
    assert len(lines) == 4 and lines[3] == "panic (shutdown)", lines
    assert lines[0].startswith("panic (osc:127.0.0.1"), lines
    assert lines[1].startswith("panic (MIDI ") and PAD in lines[1], lines
    assert PAD in lines[2] and "CC 123 All Notes Off, channel 6" in lines[2], lines


def test_the_space_key_in_the_window_silences_every_output(jack_midi, xvfb_display, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("DISPLAY", xvfb_display)
    monkeypatch.setenv("SDL_VIDEODRIVER", "x11")
    import pygame

    async def body(r: Rig, pad) -> None:
        assert r.rig.window is not None, r.rig.missing
        await r.panic_by("the Space key",
                         lambda: pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_SPACE, mod=0,
                                                                      unicode=" ", scancode=44)))

    with caplog.at_level("INFO", logger="livegen"):
        _run_rig(jack_midi, tmp_path, "enabled = true\nwidth = 64\nheight = 48\nfps = 30\nscale = 1", body)
    assert any(r.getMessage() == "panic (key)" for r in caplog.records)


def _osc(address: str, *args) -> bytes:
    from pythonosc.osc_message_builder import OscMessageBuilder

    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


def test_the_panic_bench_says_in_which_jack_period_an_output_went_silent():
    """``period_of`` counts the JACK periods begun between a panic's send and its effect."""
    from types import SimpleNamespace

    from livegen.bench.panic import period_of

    period = 256 / 48000
    probe = SimpleNamespace(cycles=[(i * 256, 10.0 + i * period, 256) for i in range(10)])
    p = 10.0 + 2 * period + 0.001  # sent 1 ms into period 2
    assert period_of(probe, p, period - 0.001 + 0.0005) == 1  # silent within period 3, the first after
    assert period_of(probe, p, 2 * period) == 2
    assert period_of(probe, p, 0.0002) == 1  # before any period began: still the first
    assert period_of(probe, p, 4.5 * period) == 4
    from livegen.bench.panic import lead_to_period

    assert lead_to_period(probe, p) == pytest.approx(period - 0.001)
    assert lead_to_period(probe, 99.0) != lead_to_period(probe, 99.0)  # nan: no period after it


def test_the_panic_bench_patch_parses_with_and_without_the_picture():
    """``livegen bench panic [--visuals]`` writes its patch from a template: both forms are
    patches livegen accepts, with the picture (styled) only under --visuals."""
    from livegen.bench.panic import NO_VISUALS, PATCH, VISUALS

    fill = dict(bpm=150, sr=48000, block=256, pad="lgbench pad", client="lgbench1", cc=20, osc_port=9100,
                target_port=9101, supercollider="")
    plain = parse_patch(PATCH.format(**fill, visuals=NO_VISUALS), "<bench>")
    shown = parse_patch(PATCH.format(**fill, visuals=VISUALS), "<bench>")
    assert not plain.visuals.enabled
    assert shown.visuals.enabled and shown.visuals.style and shown.visuals.style_processes == 2
    assert [t.cc for t in shown.midi.triggers if t.action == "panic"] == [20]


def test_the_panic_bench_tells_the_controllers_cc_from_livegens_midi():
    """The probe hears livegen's MIDI out on port 0 and the controller on port 1: the burst
    is timed on port 0 only, the CC's arrival on port 1 only."""
    from types import SimpleNamespace

    from livegen.bench.panic import TRIGGER_CC, cc_arrival, midi_after

    p = 100.0
    probe = SimpleNamespace(midi=[
        (1, 100.004, bytes([0xB0, TRIGGER_CC, 127])),  # the controller's button, in the graph
        (0, 100.006, bytes([0xB0, 123, 0])),  # livegen's burst begins
        (1, 100.050, bytes([0xB0, TRIGGER_CC, 0])),  # the button let go
        (0, 100.007, bytes([0xBF, 120, 0])),  # ...and ends
    ])
    assert cc_arrival(probe, p) == pytest.approx(0.004)
    first, last, _ = midi_after(probe, p)
    assert first == pytest.approx(0.006) and last == pytest.approx(0.007)
    assert cc_arrival(probe, 100.01) is None  # only the release after it: not a press


# -- a panic heard off the loop (livegen.control.urgent), then the loop's share --------------
def test_the_loops_panic_after_an_urgent_one_silences_only_what_came_since() -> None:
    eng, sink, now = _engine()
    assert eng.urgent_panic("osc:x")
    now[0] += 0.002
    eng.panic("osc:x")  # the same message, reaching the loop
    assert sink.panics == [10.0, 10.002] and sink.quiet == [False, True]
    now[0] += 1.0
    eng.panic("osc:y")  # a panic of its own, long after
    assert sink.panics[-1] == 11.002 and sink.quiet[-1] is False


def test_a_controllers_panic_burst_fires_once_off_the_loop_and_once_on_it() -> None:
    eng, sink, now = _engine()
    u = UrgentPanic(eng.urgent_panic)
    for channel in range(16):  # CC 123 then CC 120 on every channel: first the MIDI thread...
        for cc in (123, 120):
            u.midi(mido.Message("control_change", channel=channel, control=cc, value=0), "pads")
    assert sink.panics == [10.0] and sink.quiet == [False] and u.fired == 1
    now[0] += 0.003
    for channel in range(16):  # ...then the loop, message by message
        for cc in (123, 120):
            eng.handle_midi(ControlInput("cc", channel, cc, 0.0, 0), now[0], "pads")
    assert sink.panics == [10.0, 10.003] and sink.quiet == [False, True]


def test_channel_mode_panic_switched_off_in_the_patch_is_not_urgent_either() -> None:
    eng, sink, _ = _engine("panic_on_all_notes_off = false")
    u = UrgentPanic(eng.urgent_panic)
    assert not u.midi(mido.Message("control_change", control=123, value=0), "pads")
    assert sink.panics == []
