"""MIDI input: raw messages decoded into small control events, and ports that come and go.

Decoding happens on the event loop (the MIDI thread only stamps the arrival time and
hands the message over), so the decoder's 14-bit CC state is never shared between threads.
A panic is the exception: the MIDI thread acts on it at once (livegen.control.urgent).
Controllers get unplugged mid-set: ``MidiInput.watch`` notices, says so once, and
reconnects when the port is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Collection, Iterable, Union

import mido

from livegen.control import midi_ports
from livegen.log import RateLimitedLog

if TYPE_CHECKING:
    from livegen.control.urgent import UrgentPanic

log = logging.getLogger("livegen.midi")


@dataclass(frozen=True)
class NoteInput:
    """A key or pad; ``on`` is False for note_off and for note_on with velocity 0."""

    pitch: int
    velocity: int
    channel: int
    on: bool


@dataclass(frozen=True)
class ControlInput:
    """A continuous control, normalised to ``value`` 0..1 with the device's ``raw`` number.

    ``kind``: ``cc`` (7-bit), ``cc14`` (``number`` is the MSB controller 0..31),
    ``pitchbend``, ``program`` (``number`` = program), ``aftertouch`` (channel pressure,
    ``number`` 0; polyphonic pressure has ``number`` = the key).
    """

    kind: str
    channel: int
    number: int
    value: float
    raw: int


@dataclass(frozen=True)
class ClockInput:
    """MIDI clock and transport: ``tick`` (24 per beat), start/stop/continue, ``songpos`` (16ths)."""

    kind: str
    value: int = 0


MidiEvent = Union[NoteInput, ControlInput, ClockInput]

_CLOCK_KINDS = {"clock": "tick", "start": "start", "stop": "stop", "continue": "continue"}


class MidiDecoder:
    """Turns mido messages into ``MidiEvent``s, pairing 14-bit CCs for the numbers in ``cc14``.

    For a 14-bit controller the MSB (cc 0..31) updates the value at once, combined with the
    last LSB seen, and the LSB (cc + 32) that follows refines it; both produce ``cc14``
    events with ``value = (msb << 7 | lsb) / 16383``.
    """

    def __init__(self, cc14: Iterable[int] = (), problems: RateLimitedLog | None = None) -> None:
        self.cc14: set[int] = {int(c) for c in cc14 if 0 <= int(c) < 32}
        self._msb: dict[tuple[int, int], int] = {}
        self._lsb: dict[tuple[int, int], int] = {}
        self.problems = problems or RateLimitedLog(log)

    def decode(self, msg: mido.Message) -> list[MidiEvent]:
        t = msg.type
        if t == "note_on":
            return [NoteInput(msg.note, msg.velocity, msg.channel, msg.velocity > 0)]
        if t == "note_off":
            return [NoteInput(msg.note, msg.velocity, msg.channel, False)]
        if t == "control_change":
            return self._cc(msg.channel, msg.control, msg.value)
        if t == "pitchwheel":
            raw = msg.pitch + 8192
            return [ControlInput("pitchbend", msg.channel, 0, raw / 16383, raw)]
        if t == "program_change":
            return [ControlInput("program", msg.channel, msg.program, msg.program / 127, msg.program)]
        if t == "aftertouch":
            return [ControlInput("aftertouch", msg.channel, 0, msg.value / 127, msg.value)]
        if t == "polytouch":
            return [ControlInput("aftertouch", msg.channel, msg.note, msg.value / 127, msg.value)]
        if t in _CLOCK_KINDS:
            return [ClockInput(_CLOCK_KINDS[t])]
        if t == "songpos":
            return [ClockInput("songpos", msg.pos)]
        if t == "sysex":
            self.problems.warn("midi:sysex", "ignoring MIDI sysex message (%d bytes)", len(msg.data) + 2)
        return []  # active sensing, reset, MTC quarter frames, tune request, ...

    def _cc(self, channel: int, control: int, value: int) -> list[MidiEvent]:
        if control in self.cc14:
            key = (channel, control)
            self._msb[key] = value
            raw = value << 7 | self._lsb.get(key, 0)
            return [ControlInput("cc14", channel, control, raw / 16383, raw)]
        if 32 <= control < 64 and control - 32 in self.cc14:
            key = (channel, control - 32)
            self._lsb[key] = value
            msb = self._msb.get(key)
            if msb is None:
                return []  # an LSB before any MSB would snap the value to almost 0
            raw = msb << 7 | value
            return [ControlInput("cc14", channel, control - 32, raw / 16383, raw)]
        return [ControlInput("cc", channel, control, value / 127, value)]

    def decode_bytes(self, data: bytes) -> list[MidiEvent]:
        """Decode a packet of raw MIDI bytes (OSC ``m`` args, network MIDI); junk is skipped."""
        try:
            parser = mido.Parser()
            parser.feed(bytes(data))
            msgs = list(parser)
        except Exception:
            self.problems.warn("midi:bytes", "ignoring undecodable MIDI bytes %r", bytes(data)[:16])
            return []
        out: list[MidiEvent] = []
        for m in msgs:
            out.extend(self.decode(m))
        return out


EventCallback = Callable[[MidiEvent, float, str], None]


class MidiInput:
    """Every MIDI source matching ``patterns``, decoded and delivered on the event loop.

    ``on_event(event, t, port_name)`` is called on ``loop`` with ``t`` the
    ``time.monotonic()`` arrival time stamped on the MIDI thread. ``"*"`` matches every
    port. Ports whose names contain ``client_name`` or any of ``exclude`` are skipped: they
    are our own outputs, and listening to them would feed our notes back into us.
    ``urgent`` (a :class:`~livegen.control.urgent.UrgentPanic`) sees each message first, on
    the MIDI thread, so a panic acts before the loop gets to it.
    """

    def __init__(
        self,
        patterns: list[str],
        on_event: EventCallback,
        loop: asyncio.AbstractEventLoop,
        decoder: MidiDecoder,
        client_name: str = "livegen",
        exclude: Collection[str] = ("livegen",),
    ) -> None:
        self.patterns = list(patterns)
        self.on_event = on_event
        self.loop = loop
        self.decoder = decoder
        self.client_name = client_name
        self.exclude = tuple(e.lower() for e in (*exclude, client_name) if e)
        self.ports: dict[str, object] = {}
        self.on_change: Callable[[str, str], None] | None = None  # ("connected"|"disappeared", name)
        self.urgent: UrgentPanic | None = None
        self.received = 0  # messages that reached the loop, from every port
        self.problems = RateLimitedLog(log)
        self._closed = False
        names = midi_ports.input_names()
        self._connect(names)
        self._log_unmatched(names)

    # -- port management ------------------------------------------------------------
    def wanted(self, name: str) -> bool:
        """Whether a port of this name should be listened to."""
        low = name.lower()
        if any(e in low for e in self.exclude):
            return False
        return any(p == "*" or p.lower() in low for p in self.patterns)

    def _open(self, name: str) -> object | None:
        try:
            return midi_ports.open_input(name, self._callback_for(name), self.client_name)
        except Exception as exc:
            self.problems.warn(f"open:{name}", "cannot open MIDI input %r: %s", name, exc)
            return None

    def _connect(self, names: list[str], opener: Callable[[str], object | None] | None = None) -> list[str]:
        opened = []
        for name in names:
            if name in self.ports or not self.wanted(name):
                continue
            port = (opener or self._open)(name)
            if port is None:
                continue
            if self._closed:
                port.close()  # type: ignore[attr-defined]
                break
            self.ports[name] = port
            opened.append(name)
            self._report("connected", name)
        return opened

    def _log_unmatched(self, names: list[str]) -> None:
        for p in self.patterns:
            if p != "*" and not any(p.lower() in n.lower() for n in self.ports):
                log.warning("MIDI input %r not found (available: %s); will connect when it appears",
                            p, ", ".join(names) or "none")

    def _report(self, what: str, name: str) -> None:
        if what == "connected":
            log.info("MIDI input '%s' connected", name)
        else:
            log.warning("MIDI input '%s' disappeared; will reconnect", name)
        if self.on_change is not None:
            try:
                self.on_change(what, name)
            except Exception:
                log.exception("MIDI input on_change callback failed")

    def _callback_for(self, name: str) -> Callable[[mido.Message], None]:
        loop = self.loop

        def on_message(msg: mido.Message) -> None:  # on the MIDI thread: stamp and hand over
            # Our rtmidi ports stamp the arrival time; other mido backends leave time at 0.
            t = msg.time if msg.time > 0 else time.monotonic()
            urgent = self.urgent
            if urgent is not None:  # a panic acts here, then goes to the loop like the rest
                try:
                    urgent.midi(msg, name)
                except Exception:
                    log.debug("urgent check of %r from %r failed", msg, name, exc_info=True)
            try:
                loop.call_soon_threadsafe(self._deliver, msg, t, name)
            except RuntimeError:
                pass  # the loop is closed: we are shutting down

        return on_message

    def _deliver(self, msg: mido.Message, t: float, name: str) -> None:
        if self._closed:
            return
        self.received += 1
        try:
            events = self.decoder.decode(msg)
        except Exception as exc:
            self.problems.warn("decode", "cannot decode MIDI %r from %r: %s", msg, name, exc)
            return
        for ev in events:
            try:
                self.on_event(ev, t, name)
            except Exception:
                log.exception("MIDI event handler failed on %r from %r", ev, name)

    async def rescan(self) -> None:
        """Drop ports that vanished (said once) and open ports that (re)appeared."""
        names = await asyncio.to_thread(midi_ports.input_names)  # port listing can block
        if self._closed:
            return
        present = set(names)
        for name in [n for n in self.ports if n not in present]:
            port = self.ports.pop(name)
            self._report("disappeared", name)
            await asyncio.to_thread(port.close)  # type: ignore[attr-defined]
        todo = [n for n in names if n not in self.ports and self.wanted(n)]
        for name in todo:
            port = await asyncio.to_thread(self._open, name)  # opening a JACK client takes ~50 ms
            if port is None:
                continue
            self._connect([name], opener=lambda _n, p=port: p)

    async def watch(self, interval: float = 0.5) -> None:
        """Rescan every ``interval`` seconds until ``close()``; run it as a task."""
        while not self._closed:
            try:
                await self.rescan()
            except Exception:
                log.exception("MIDI input rescan failed")
            await asyncio.sleep(interval)

    def close(self) -> None:
        """Close every port; events already queued on the loop are dropped."""
        self._closed = True
        ports, self.ports = self.ports, {}
        for port in ports.values():
            try:
                port.close()  # type: ignore[attr-defined]
            except Exception:
                log.debug("closing MIDI input failed", exc_info=True)
