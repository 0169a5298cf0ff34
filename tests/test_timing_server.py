"""The timing-server process: MIDI and OSC outputs sent on time from their own process."""

import socket
import time

from pythonosc.osc_message import OscMessage

from livegen.clock.timing_server import TimingServer
from livegen.events import AllNotesOff, Beat, NoteOff, NoteOn


def test_notes_reach_a_jack_midi_input_on_time_and_panic_releases_them(jack_midi):
    from livegen.control.midi_ports import open_input

    got = []
    server = TimingServer([("midi-virtual", "ts out", "livegen-ts"), ("midi", "no such port", "livegen-ts")]).start()
    try:
        assert any("ts out" in line for line in server.opened)
        assert len(server.missing) == 1 and "no such port" in server.missing[0]  # reported, not fatal
        listener = open_input("ts out", lambda m: got.append((time.monotonic(), m)), client_name="ts-listen")
        time.sleep(0.3)
        server.record(True)
        t0 = time.monotonic() + 0.1
        for i in range(10):
            server.send(NoteOn(t0 + i * 0.05, 60 + i, 100))
            server.send(NoteOff(t0 + i * 0.05 + 0.02, 60 + i))
        server.send(NoteOn(t0, 40, 100, thru=True))  # a performer's note: not echoed to MIDI ports
        server.send(NoteOn(t0 + 1.0, 72, 100))  # left sounding...
        time.sleep(1.2)
        server.send(AllNotesOff(time.monotonic()))  # ...until panic
        time.sleep(0.2)
        stats = server.stats()
    finally:
        server.close()
    listener.close()
    assert not server.alive
    ons = [(t, m) for t, m in got if m.type == "note_on" and m.velocity > 0]
    assert [m.note for _, m in ons] == list(range(60, 70)) + [72]
    # Sent at the deadline: the recorded send times are within a few ms of schedule.
    lateness = [(sent - due) * 1e3 for due, sent in stats["note_on_times"]]
    assert len(lateness) == 11 and min(lateness) >= 0 and sorted(lateness)[5] < 2.0
    offs = [m.note for _, m in got if m.type == "note_off"]
    assert 72 in offs
    assert any(m.type == "control_change" and m.control == 123 for _, m in got)


def test_osc_target_in_the_timing_server():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(2.0)
    port = rx.getsockname()[1]
    server = TimingServer([("osc", "td", "127.0.0.1", port, "/show", ("notes", "beats"))]).start()
    try:
        t = time.monotonic() + 0.05
        server.send(Beat(t, 4, 1, 0, 120.0))
        server.send(NoteOn(t + 0.01, 64, 90, 2))
        first = OscMessage(rx.recv(1024))
        second = OscMessage(rx.recv(1024))
    finally:
        server.close()
        rx.close()
    assert (first.address, first.params) == ("/show/beat", [4, 1, 0, 120.0])
    assert (second.address, second.params) == ("/show/note", [64, 90, 2])
