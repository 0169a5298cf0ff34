"""Very short notes and panic on scsynth: no node is ever left on the server.

A note-off that reaches scsynth in the same control block as its ``/s_new`` never opens a
plain gated envelope (SuperCollider's stock ``default`` SynthDef, livegen's default
``synthdef``), so the node never ends. livegen sends notes as time-tagged bundles, never a
note-off less than ``MIN_GATE`` after its note-on ran, and panic frees nodes whose
``/s_new`` is still waiting on the server. The stock ``default`` is tests/data/sc_default.scsyndef
(written by sclang, see write_sc_default.scd beside it); the server is real scsynth on JACK.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from pathlib import Path

import pytest
from pythonosc.osc_message import OscMessage

from livegen.clock.dispatcher import Dispatcher
from livegen.events import AllNotesOff, NoteOff, NoteOn
from livegen.outputs.osc_out import encode
from livegen.outputs.supercollider import (
    FIRST_NODE_ID,
    MIN_GATE,
    PANIC_BACKSTOP,
    PANIC_RELEASE,
    RELEASE_TAIL,
    ScsynthOutput,
    prepare_server,
    timetag,
)
from test_scsynth_peer import HOST, free_udp_port, scsynth  # noqa: F401 (scsynth is a fixture)

STOCK_DEFAULT = Path(__file__).resolve().parent / "data" / "sc_default.scsyndef"


# ---------------------------------------------------------------------------------------
# what goes on the wire (no server)
# ---------------------------------------------------------------------------------------
def _parse(dgram: bytes) -> tuple[int | None, list[tuple[str, list]]]:
    """(time tag or None for a plain message, [(address, args)])."""
    if not dgram.startswith(b"#bundle\x00"):
        m = OscMessage(dgram)
        return None, [(m.address, list(m.params))]
    tag = struct.unpack(">Q", dgram[8:16])[0]
    out, i = [], 16
    while i < len(dgram):
        size = struct.unpack(">i", dgram[i:i + 4])[0]
        m = OscMessage(dgram[i + 4:i + 4 + size])
        out.append((m.address, list(m.params)))
        i += 4 + size
    return tag, out


class Wire:
    """A UDP socket standing in for scsynth; ``take()`` returns what arrived, parsed."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]

    def take(self, n: int) -> list[tuple[int | None, list]]:
        return [_parse(self.sock.recv(65536)) for _ in range(n)]

    def close(self) -> None:
        self.sock.close()


def _seconds(tag_a: int, tag_b: int) -> float:
    return (tag_a - tag_b) / 2**32


def test_notes_are_time_tagged_and_a_note_off_never_lands_with_its_note_on():
    wire = Wire()
    now = [100.0]
    out = ScsynthOutput(HOST, wire.port, "default", 1, clock=lambda: now[0])
    try:
        t_on = 100.0 + out.lead  # handed over `lead` early, as the dispatcher does
        out.send(NoteOn(t_on, 60, 127))
        out.send(NoteOff(t_on + 0.0001, 60))  # a 0.1 ms note
        (tag_on, [(a_on, args_on)]), (tag_off, [err, (a_off, args_off)]) = wire.take(2)
        assert err == ("/error", [-1])  # a panic may free the node before this runs: no console line
        assert a_on == "/s_new" and args_on[:4] == ["default", FIRST_NODE_ID, 0, 1]
        assert args_on[4:] == ["freq", pytest.approx(261.6256, rel=1e-5), "amp", 1.0, "gate", 1]
        assert abs(_seconds(tag_on, timetag(t_on))) < 1e-4  # its own time (wall clock read twice)
        assert a_off == "/n_set" and args_off == [FIRST_NODE_ID, "gate", 0]
        assert _seconds(tag_off, tag_on) == pytest.approx(MIN_GATE, abs=1e-4)

        # The performer's own note, due now: sent plain (it would only be late as a bundle);
        # its note-off waits until scsynth has surely run the /s_new, plus MIN_GATE.
        out.send(NoteOn(now[0], 62, 64, channel=3))
        out.send(NoteOff(now[0], 62, channel=3))
        (tag, [(a, _)]), (tag_off, [_, (a_off, args_off)]) = wire.take(2)
        assert tag is None and a == "/s_new"
        assert args_off == [FIRST_NODE_ID + 1, "gate", 0]
        assert _seconds(tag_off, timetag(now[0])) == pytest.approx(out.lead + MIN_GATE, abs=1e-4)
        # Long after: a plain note-off (a time tag in the past would be a "late" line there).
        out.send(NoteOn(now[0], 64, 64))
        now[0] += 1.0
        out.send(NoteOff(now[0], 64))
        (_, _), (tag, [(a, args)]) = wire.take(2)
        assert tag is None and a == "/n_set" and args == [FIRST_NODE_ID + 2, "gate", 0]
        assert out.live_nodes == [] and out.errors == 0
    finally:
        out.close()
        wire.close()


def test_panic_releases_running_nodes_frees_waiting_ones_and_backs_both_up():
    wire = Wire()
    now = [100.0]
    out = ScsynthOutput(HOST, wire.port, "default", 1, clock=lambda: now[0])
    try:
        out.send(NoteOn(now[0], 60, 100))  # running (sent plain)
        out.send(NoteOn(now[0] + 0.01, 64, 100))  # running by the time of the panic
        out.send(NoteOn(now[0] + 0.05, 67, 100))  # still waiting on the server at the panic
        out.send(NoteOn(now[0] + 0.05, 71, 100))  # the same time tag
        wire.take(4)
        now[0] += 0.02
        out.send(AllNotesOff(now[0]))
        got = wire.take(3)
        assert out.live_nodes == [] and out.panics == 1
        (tag_rel, release), (tag_free, free), (tag_back, back) = got
        # Running: a forced release (gate <= -1), in one bundle, after any queued /s_new.
        assert release[0] == ("/error", [-1])
        assert [(a, p[0], p[1]) for a, p in release[1:]] == [("/n_set", FIRST_NODE_ID, "gate"),
                                                             ("/n_set", FIRST_NODE_ID + 1, "gate")]
        assert all(p[2] == pytest.approx(-1.0 - PANIC_RELEASE) for _, p in release[1:])
        assert abs(_seconds(tag_rel, timetag(now[0]))) < 1e-4
        # Waiting: freed one tick after their /s_new's own tag, before they make a sound.
        assert free == [("/error", [-1]), ("/n_free", [FIRST_NODE_ID + 2]), ("/n_free", [FIRST_NODE_ID + 3])]
        assert abs(_seconds(tag_free, timetag(100.05))) < 1e-4
        # Then every one of them is freed for good, whatever its SynthDef does with gate.
        assert back[0] == ("/error", [-1]) and [p[0] for _, p in back[1:]] == list(range(FIRST_NODE_ID, FIRST_NODE_ID + 4))
        assert _seconds(tag_back, timetag(now[0])) == pytest.approx(PANIC_BACKSTOP, abs=1e-4)
        out.send(AllNotesOff(now[0]))  # nothing left: nothing sent
        with pytest.raises(socket.timeout):
            wire.sock.settimeout(0.1)
            wire.sock.recv(65536)
    finally:
        out.close()
        wire.close()


def test_panic_cuts_release_tails_too():
    """A note released just before the panic may ring on for its SynthDef's release: panic
    cuts it like the held ones (the built-in synth and MIDI's All Sound Off do the same)."""
    wire = Wire()
    now = [100.0]
    out = ScsynthOutput(HOST, wire.port, "default", 1, clock=lambda: now[0])
    try:
        out.send(NoteOn(now[0], 60, 100))
        now[0] += 1.0
        out.send(NoteOff(now[0], 60))  # releasing from here on
        out.send(NoteOn(now[0], 62, 100))  # held
        wire.take(3)
        now[0] += 0.1
        out.send(AllNotesOff(now[0]))
        (_, release), (_, back) = wire.take(2)
        assert [p[0] for a, p in release if a == "/n_set"] == [FIRST_NODE_ID + 1, FIRST_NODE_ID]
        assert sorted(p[0] for a, p in back if a == "/n_free") == [FIRST_NODE_ID, FIRST_NODE_ID + 1]
        # A note released longer ago than RELEASE_TAIL is left alone.
        out.send(NoteOn(now[0], 64, 100))
        out.send(NoteOff(now[0], 64))
        now[0] += RELEASE_TAIL + 1.0
        out.send(NoteOn(now[0], 65, 100))
        out.send(NoteOff(now[0] + 0.5, 65))  # time-tagged: releases 0.5 s from now
        wire.take(4)
        out.send(AllNotesOff(now[0]))
        (_, release), (_, back) = wire.take(2)
        assert [p[0] for a, p in release if a == "/n_set"] == [FIRST_NODE_ID + 3]
    finally:
        out.close()
        wire.close()


# ---------------------------------------------------------------------------------------
# with a real server and SuperCollider's stock default SynthDef
# ---------------------------------------------------------------------------------------
class Notifications:
    """A client registered with /notify 1: each synth node's /n_go and /n_end, with arrival times."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.connect((HOST, port))
        self.sock.settimeout(0.1)
        self.go: dict[int, float] = {}
        self.end: dict[int, float] = {}
        self.replies: list[tuple[str, list]] = []
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        self.sock.send(encode("/notify", ("i", 1)))
        self.wait(lambda: any(a == "/done" for a, _ in self.replies))

    def _read(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            t = time.monotonic()
            msg = OscMessage(data)
            with self._cond:
                if msg.address in ("/n_go", "/n_end") and msg.params[4] == 1:
                    pass  # a group (prepare_server makes group 1): synths are what sound
                elif msg.address == "/n_go":
                    self.go[msg.params[0]] = t
                elif msg.address == "/n_end":
                    self.end[msg.params[0]] = t
                else:
                    self.replies.append((msg.address, list(msg.params)))
                self._cond.notify_all()

    def wait(self, cond, timeout: float = 3.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not cond():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def group_size(self, group: int) -> int:
        with self._cond:
            n = len(self.replies)
        self.sock.send(encode("/g_queryTree", ("i", group), ("i", 0)))
        assert self.wait(lambda: any(a == "/g_queryTree.reply" for a, _ in self.replies[n:]))
        return next(p for a, p in self.replies[n:] if a == "/g_queryTree.reply")[2]

    def close(self) -> None:
        self._stop = True
        self._thread.join(1.0)
        self.sock.close()


@pytest.fixture
def stock_server(scsynth):  # noqa: F811 (the fixture imported above)
    prepare_server(HOST, scsynth.port, synthdef="default", synthdef_file=str(STOCK_DEFAULT), group=1)
    notes = Notifications(scsynth.port)
    yield scsynth, notes
    notes.close()


def test_the_stock_default_keeps_a_node_whose_gate_closes_in_its_first_block(stock_server):
    """The hazard is real on this server: /s_new then /n_set gate 0, untimed, leave nodes."""
    server, notes = stock_server
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for node in range(9000, 9005):
            s.sendto(encode("/s_new", ("s", "default"), ("i", node), ("i", 0), ("i", 1), ("s", "gate"), ("i", 1)),
                     (HOST, server.port))
            s.sendto(encode("/n_set", ("i", node), ("s", "gate"), ("i", 0)), (HOST, server.port))
        assert notes.wait(lambda: len(notes.go) == 5)
        time.sleep(1.0)  # far past the default's 0.3 s release
        assert notes.end == {} and notes.group_size(1) == 5
        s.sendto(encode("/g_freeAll", ("i", 1)), (HOST, server.port))
    assert notes.wait(lambda: len(notes.end) == 5)


def test_very_short_notes_on_the_stock_default_leave_no_node(stock_server):
    server, notes = stock_server
    out = ScsynthOutput(HOST, server.port, "default", 1)
    dispatcher = Dispatcher([out], priority=None)
    dispatcher.start()
    try:
        # Generated notes as the timing server plays them: handed over early, each one
        # 0 to 3 ms long (the engine's floor is 5 ms; a drum pattern may ask for less).
        t0 = time.monotonic() + 0.1
        lengths = [0.0, 0.0001, 0.0005, 0.001, 0.002, 0.003] * 4
        for i, length in enumerate(lengths):
            t = t0 + i * 0.013
            dispatcher.schedule(NoteOn(t, 48 + i, 100))
            dispatcher.schedule(NoteOff(t + length, 48 + i))
        # The performer's own notes: note-off right behind the note-on, both due now.
        for i in range(6):
            out.send(NoteOn(time.monotonic(), 84 + i, 100))
            out.send(NoteOff(time.monotonic(), 84 + i))
        played = len(lengths) + 6
        assert notes.wait(lambda: len(notes.go) == played, 5.0), f"{len(notes.go)} of {played} notes started"
        assert notes.wait(lambda: set(notes.end) >= set(notes.go), 3.0), \
            f"nodes left on the server: {sorted(set(notes.go) - set(notes.end))}"
        assert notes.group_size(1) == 0 and out.live_nodes == []
    finally:
        dispatcher.stop()
        out.close()
    assert out.errors == 0


def test_panic_frees_running_nodes_and_ones_still_scheduled_on_the_server(stock_server):
    server, notes = stock_server
    out = ScsynthOutput(HOST, server.port, "default", 1)
    try:
        now = time.monotonic()
        for i in range(4):  # sounding
            out.send(NoteOn(now, 60 + i, 100))
        assert notes.wait(lambda: len(notes.go) == 4)
        now = time.monotonic()
        for i in range(4):  # time-tagged into scsynth's queue: not started at the panic
            out.send(NoteOn(now + 0.012, 72 + i, 100))
        out.send(NoteOn(time.monotonic(), 80, 100))  # just sent, may not have run yet
        out.send(AllNotesOff(time.monotonic()))
        t_panic = time.monotonic()
        assert notes.wait(lambda: len(notes.go) == 9 and set(notes.end) >= set(notes.go), 2.0), \
            f"started {sorted(notes.go)}, ended {sorted(notes.end)}"
        # The forced release is PANIC_RELEASE long: every node is gone well before the
        # backstop (the default SynthDef's own release is 0.3 s).
        assert max(notes.end.values()) - t_panic < PANIC_BACKSTOP
        assert notes.group_size(1) == 0
    finally:
        out.close()
