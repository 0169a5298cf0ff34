"""MIDI output: engine events to a MIDI port (a hardware synth, a DAW, a drum machine).

The port is opened by the caller (``livegen.control.midi_ports``), so the engine decides
which port and the tests can hand in a virtual one. ``send`` runs on the dispatch thread
at the event's deadline; it never blocks and never raises, because a synth unplugged
mid-set must not stop the other outputs. Every sounding note is tracked so that panic
(``AllNotesOff``) and ``close`` leave nothing stuck, even on devices that ignore CC 123.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Any, Mapping

import mido

from livegen.events import AllNotesOff, ClockTick, NoteOff, NoteOn, OutEvent, Transport
from livegen.log import RateLimitedLog

log = logging.getLogger("livegen.midi")

CC_ALL_SOUND_OFF = 120
CC_ALL_NOTES_OFF = 123
# What a panic sends on every channel, built once: making 32 mido messages took ~0.3 ms of
# every panic, and the outputs after this one waited for it.
PANIC_MESSAGES = tuple(mido.Message("control_change", channel=ch, control=cc, value=0)
                       for ch in range(16) for cc in (CC_ALL_NOTES_OFF, CC_ALL_SOUND_OFF))


def _clamp(v: int, lo: int, hi: int) -> int:
    return lo if v < lo else hi if v > hi else v


class MidiOutput:
    """An ``Output`` that plays notes, clock and transport on an open mido-style port.

    ``channels_map`` maps a voice name to a MIDI channel (0..15), overriding the channel
    on that voice's notes (e.g. ``{"bass": 1, "drums": 9}``); other voices keep theirs.
    """

    lead = 0.0

    def __init__(self, port: Any, name: str, channels_map: Mapping[str, int] | None = None) -> None:
        self.port = port
        self.name = name
        self.lead = 0.0
        self.channels_map = {k: _clamp(int(v), 0, 15) for k, v in (channels_map or {}).items()}
        self.sounding: Counter[tuple[int, int]] = Counter()
        self.errors = 0
        self.sent = 0
        self.problems = RateLimitedLog(log)
        self._lock = threading.Lock()  # send() on the dispatch thread, close() on the loop
        self._closed = False

    def _channel(self, channel: int, voice: str) -> int:
        ch = self.channels_map.get(voice)
        return _clamp(int(channel), 0, 15) if ch is None else ch

    def _out(self, msg: mido.Message) -> None:
        try:
            self.port.send(msg)
            self.sent += 1
        except Exception as exc:  # the port vanished, the device is gone, the pipe is full
            self.errors += 1
            self.problems.warn(f"midi-out:{self.name}", "MIDI output %r: cannot send (%s)", self.name, exc)

    def send(self, event: OutEvent) -> None:
        try:
            with self._lock:
                if self._closed:
                    return
                self._send(event)
        except Exception as exc:  # a malformed event must not kill the dispatch thread
            self.errors += 1
            self.problems.warn(f"midi-out-event:{self.name}", "MIDI output %r: bad event %r (%s)", self.name, event, exc)

    def _send(self, event: OutEvent) -> None:
        if isinstance(event, (NoteOn, NoteOff)) and event.thru:
            return  # the performer's own note: the controller already sent it
        if isinstance(event, NoteOn):
            ch = self._channel(event.channel, event.voice)
            pitch = _clamp(int(event.pitch), 0, 127)
            self._out(mido.Message("note_on", channel=ch, note=pitch, velocity=_clamp(int(event.velocity), 1, 127)))
            self.sounding[(ch, pitch)] += 1
        elif isinstance(event, NoteOff):
            ch = self._channel(event.channel, event.voice)
            pitch = _clamp(int(event.pitch), 0, 127)
            self._out(mido.Message("note_off", channel=ch, note=pitch, velocity=0))
            key = (ch, pitch)
            if self.sounding[key] > 1:
                self.sounding[key] -= 1
            else:
                self.sounding.pop(key, None)
        elif isinstance(event, AllNotesOff):
            self._all_notes_off()
        elif isinstance(event, ClockTick):
            self._out(mido.Message("clock"))
        elif isinstance(event, Transport):
            if event.state == "start":
                self._out(mido.Message("start"))
            elif event.state == "stop":
                self._out(mido.Message("stop"))
            elif event.state == "continue":
                self._out(mido.Message("songpos", pos=_clamp(int(event.song_position), 0, 16383)))
                self._out(mido.Message("continue"))
        # Beat and ParamChanged mean nothing to a MIDI device.

    def _all_notes_off(self) -> None:
        for (ch, pitch), count in sorted(self.sounding.items()):
            for _ in range(count):  # devices that stack voices per key need one off each
                self._out(mido.Message("note_off", channel=ch, note=pitch, velocity=0))
        self.sounding.clear()
        for msg in PANIC_MESSAGES:
            self._out(msg)

    def close(self) -> None:
        """Silence everything, then close the port; later ``send`` calls do nothing."""
        with self._lock:
            if self._closed:
                return
            self._all_notes_off()
            self._closed = True
        try:
            self.port.close()
        except Exception as exc:
            log.debug("closing MIDI output %r failed: %s", self.name, exc)

    def __repr__(self) -> str:
        return f"<MidiOutput {self.name!r} sounding={sum(self.sounding.values())} errors={self.errors}>"
