"""A panic acts on the thread that hears it, not when the event loop gets to it.

The OSC receiver thread and each MIDI port's callback ask UrgentPanic first; the dispatcher
silences every output from the caller's thread; the loop's own panic that follows silences
again only what it scheduled meanwhile. Real UDP on 127.0.0.1 for the OSC side.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import mido
import pytest

from livegen.clock.dispatcher import Dispatcher
from livegen.control import osc_server
from livegen.control.mapping import OscMap, Trigger
from livegen.control.osc_server import OscServer
from livegen.control.urgent import UrgentPanic
from livegen.events import AllNotesOff, NoteOff, NoteOn

from test_osc import Client, FakeSurface, msg, run, until

HOST = "127.0.0.1"


class Fired:
    """Records each fire with the thread it came on; ``answer`` is what fire returns."""

    def __init__(self, answer: bool = True) -> None:
        self.calls: list[tuple[str, bool, str]] = []
        self.answer = answer

    def __call__(self, source: str, channel_mode: bool) -> bool:
        self.calls.append((source, channel_mode, threading.current_thread().name))
        return self.answer


# -- UrgentPanic: what counts as a panic ----------------------------------------------------
def test_osc_panic_addresses_for_all_and_for_this_instance() -> None:
    fired = Fired()
    u = UrgentPanic(fired, instance="left")
    assert u.osc("/livegen/panic", "osc:a")
    assert u.osc("/livegen/left/panic", "osc:b")
    assert not u.osc("/livegen/right/panic", "osc:c")  # another livegen's
    assert not u.osc("/livegen/quit", "osc:d")
    assert [c[0] for c in fired.calls] == ["osc:a", "osc:b"] and u.fired == 2


def test_midi_trigger_note_and_cc_press_fire_release_does_not() -> None:
    fired = Fired()
    u = UrgentPanic(fired, [Trigger("panic", cc=20), Trigger("panic", note=36, channel=9),
                            Trigger("mutate", cc=21), Trigger("panic", address="/x")])
    cc = lambda n, v, ch=0: mido.Message("control_change", channel=ch, control=n, value=v)  # noqa: E731
    assert u.midi(cc(20, 127), "pads")
    assert not u.midi(cc(20, 127), "pads")  # held: fires once
    assert not u.midi(cc(20, 0), "pads")  # released
    assert u.midi(cc(20, 100), "pads")  # pressed again
    assert u.midi(cc(20, 127), "keys")  # another port keeps its own state
    assert not u.midi(cc(20, 63), "other")  # below the middle
    assert not u.midi(cc(21, 127), "pads")  # a trigger for something else
    assert not u.midi(mido.Message("note_on", channel=0, note=36, velocity=100), "pads")  # wrong channel
    assert not u.midi(mido.Message("note_on", channel=9, note=36, velocity=0), "pads")  # a release
    assert u.midi(mido.Message("note_on", channel=9, note=36, velocity=100), "pads")
    assert not u.midi(mido.Message("note_off", channel=9, note=36), "pads")
    assert [c[1] for c in fired.calls] == [False] * 4


def test_channel_mode_messages_fire_as_channel_mode_and_reload_changes_triggers() -> None:
    fired = Fired()
    u = UrgentPanic(fired, [Trigger("panic", cc=20)])
    assert u.midi(mido.Message("control_change", channel=3, control=123, value=0), "pads")
    assert fired.calls[-1][:2] == ("MIDI pads CC 123, channel 4", True)
    u.set_triggers([Trigger("panic", cc=22)])
    assert not u.midi(mido.Message("control_change", control=20, value=127), "pads")
    assert u.midi(mido.Message("control_change", control=22, value=127), "pads")


def test_a_failing_or_refusing_fire_is_not_counted() -> None:
    def broken(source: str, channel_mode: bool) -> bool:
        raise RuntimeError("engine bug")

    u = UrgentPanic(broken)
    assert not u.osc("/livegen/panic", "osc:a") and u.fired == 0
    u = UrgentPanic(Fired(answer=False))
    assert not u.osc("/livegen/panic", "osc:a") and u.fired == 0


# -- the dispatcher silences from the caller's thread ---------------------------------------
class Recorder:
    """An output keeping what it was sent; with ``delay`` each send takes that long (a port
    write), and what was sent counts from when the send ends."""

    def __init__(self, name: str = "rec", lead: float = 0.0, delay: float = 0.0) -> None:
        self.name, self.lead, self.delay = name, lead, delay
        self.got: list[tuple[object, str]] = []

    def send(self, event) -> None:
        if self.delay:
            time.sleep(self.delay)
        self.got.append((event, threading.current_thread().name))


def test_panic_reaches_every_output_in_the_callers_thread_without_the_dispatch_thread() -> None:
    a, b = Recorder("a"), Recorder("b", lead=0.03)
    d = Dispatcher([a, b], clock=lambda: 100.0)  # never started: only the caller can send
    d.schedule(NoteOn(101.0, 60, 100))
    d.schedule(NoteOff(101.5, 60))
    assert d.panic(100.0)
    assert [type(e) for e, _ in a.got] == [AllNotesOff] and a.got[0][1] == threading.current_thread().name
    assert b.got[0][0].time == pytest.approx(100.03)  # dated its lead ahead: its early notes go too
    assert d.pending() == 0  # the notes were dropped


def test_outputs_that_fall_silent_by_memory_go_first_and_get_their_all_notes_off_last() -> None:
    order: list[str] = []

    class Port(Recorder):
        def send(self, event) -> None:
            order.append(f"{self.name}:{type(event).__name__}")

    class Synthish(Port):
        def silence(self) -> None:
            order.append(f"{self.name}:silence")

    d = Dispatcher([Synthish("synth"), Port("timing"), Synthish("other")], clock=lambda: 1.0)
    d.panic()
    assert order == ["synth:silence", "other:silence", "timing:AllNotesOff", "synth:AllNotesOff",
                     "other:AllNotesOff"]


def test_the_synths_silence_bumps_the_shared_counter_once_per_panic() -> None:
    import multiprocessing

    from livegen.sound.server import SynthOutput

    out = SynthOutput()  # not started: the counter set by hand, events go nowhere
    out._panic_flag = multiprocessing.get_context("spawn").RawValue("L", 0)
    out.silence()
    assert out._panic_flag.value == 1  # the callback sees the change at its next period
    out.send(AllNotesOff(1.0))  # the same panic's all-notes-off: no second fade
    assert out._panic_flag.value == 1
    out.send(AllNotesOff(2.0))  # a panic without silence() first (another caller)
    assert out._panic_flag.value == 2


def test_panic_unless_quiet_repeats_only_when_notes_were_scheduled_since() -> None:
    a = Recorder()
    d = Dispatcher([a], clock=lambda: 100.0)
    assert d.panic(100.0)
    assert not d.panic(100.0, unless_quiet=True)  # nothing could sound: nothing sent
    assert len(a.got) == 1
    d.schedule(NoteOn(100.5, 60, 100))  # the loop scheduled a note meanwhile
    assert d.panic(100.0, unless_quiet=True)
    assert len(a.got) == 2 and d.pending() == 0


def test_no_note_on_reaches_an_output_after_the_panic_that_dropped_its_note_off() -> None:
    """The dispatch thread sends due notes while other threads panic: no stuck note, ever."""
    out = Recorder(delay=0.0002)
    d = Dispatcher([out], spin=0.0, priority=None)
    d.start()
    try:
        for round_ in range(40):
            t0 = time.monotonic()
            for i in range(30):  # due now and in the next few ms, with their note-offs later
                d.schedule(NoteOn(t0 + i * 0.0002, 60 + i % 12, 100))
                d.schedule(NoteOff(t0 + 0.5 + i * 0.0002, 60 + i % 12))
            time.sleep(0.002 + 0.0001 * (round_ % 10))
            d.panic()
            time.sleep(0.001)
    finally:
        d.stop(flush=False)
    # Every note was scheduled before the panic of its round, and that panic dropped its
    # note-off: a note-on sent after that panic's all-notes-off would be stuck.
    last_panic = -1.0
    for event, _thread in out.got:
        if isinstance(event, AllNotesOff):
            last_panic = event.time
        elif isinstance(event, NoteOn):
            assert event.time > last_panic, "a note-on taken before a panic was sent after it"
    assert sum(isinstance(e, NoteOn) for e, _ in out.got) > 0  # notes did play between the panics


def test_a_panic_during_a_note_send_waits_for_it_to_finish() -> None:
    """The note-on the dispatch thread is sending when a panic comes reaches the output
    before the all-notes-off, never after it (it would then sound with no note-off)."""
    panicked: list[threading.Thread] = []

    class PanicMidway(Recorder):
        def send(self, event) -> None:
            if isinstance(event, NoteOn) and not panicked:  # another thread panics meanwhile
                th = threading.Thread(target=d.panic, name="panicker")
                panicked.append(th)
                th.start()
                time.sleep(0.05)
            super().send(event)

    out = PanicMidway()
    d = Dispatcher([out], spin=0.0, priority=None)
    d.start()
    try:
        d.schedule(NoteOn(time.monotonic(), 60, 100))
        d.schedule(NoteOff(time.monotonic() + 5.0, 60))
        deadline = time.monotonic() + 2.0
        while len(out.got) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
    finally:
        d.stop(flush=False)
        for th in panicked:
            th.join(1.0)
    assert [(type(e).__name__, who) for e, who in out.got] == [("NoteOn", "livegen-dispatch"),
                                                                ("AllNotesOff", "panicker")]
    assert d.pending() == 0  # the note-off went with the panic


# -- the OSC server: received on its own thread, urgent there, handled on the loop ----------
def test_osc_panic_fires_on_the_receiver_thread_while_the_loop_is_busy() -> None:
    fired = Fired()

    async def t(server: OscServer, client: Client, surface: FakeSurface) -> None:
        client.send(msg("/livegen/panic"))
        deadline = time.monotonic() + 2.0
        while not fired.calls and time.monotonic() < deadline:
            time.sleep(0.001)  # the loop is blocked here: only the receiver thread can fire
        assert fired.calls and fired.calls[0][2] == "livegen-osc-in"
        assert surface.calls == []  # the loop has not had it yet...
        await until(lambda: surface.calls == [("panic",)])  # ...and then does its share

    run(t, urgent=UrgentPanic(fired))


def test_osc_urgent_ignores_blocked_senders_wrong_arguments_and_taken_over_addresses() -> None:
    fired = Fired()

    async def blocked(server: OscServer, client: Client, surface: FakeSurface) -> None:
        client.send(msg("/livegen/panic"))
        await until(lambda: server.stats["blocked"] == 1)

    run(blocked, urgent=UrgentPanic(fired), allow=["10.0.0.1"])
    assert fired.calls == []

    async def odd(server: OscServer, client: Client, surface: FakeSurface) -> None:
        client.send(msg("/livegen/panic", ("i", 1)))  # the loop refuses arguments here
        client.send(b"/livegen/panic\x00\x00,i\x00\x00")  # truncated: malformed
        client.send(msg("/livegen/quit"))
        await until(lambda: server.stats["received"] == 3)
        await asyncio.sleep(0.05)
        assert server.stats["rejected"] == 1 and server.stats["malformed"] == 1

    run(odd, urgent=UrgentPanic(fired))
    assert fired.calls == []

    async def taken(server: OscServer, client: Client, surface: FakeSurface) -> None:
        client.send(msg("/livegen/panic"))  # the patch maps this address to a fader
        await until(lambda: server.stats["received"] == 1)
        await asyncio.sleep(0.05)

    run(taken, urgent=UrgentPanic(fired), maps=[OscMap("/livegen/panic", "synth.cutoff")],
         specs=lambda name: None)
    assert fired.calls == []


def test_a_flood_while_the_loop_is_stuck_is_capped_counted_and_said_once(monkeypatch, caplog) -> None:
    monkeypatch.setattr(osc_server, "MAX_QUEUED", 50)

    async def t(server: OscServer, client: Client, surface: FakeSurface) -> None:
        for i in range(200):
            client.send(msg("/livegen/tempo", ("f", 100.0 + i)))
        time.sleep(0.5)  # the loop stuck; the receiver keeps reading and drops past the cap
        await until(lambda: server.stats["overflow"] > 0 and server.stats["received"] == 50)
        await asyncio.sleep(0.05)
        assert server.stats["received"] + server.stats["overflow"] == 200
        await Client.ping(client)  # and the server goes on

    run(t)
    assert "datagrams dropped" in caplog.text


def test_close_joins_the_receiver_thread() -> None:
    async def main() -> None:
        server = OscServer(FakeSurface(), HOST, 0)
        await server.start()
        port = server.port
        server.close()
        assert not any(th.name == "livegen-osc-in" for th in threading.enumerate())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((HOST, port))  # the port is free again

    asyncio.run(main())
