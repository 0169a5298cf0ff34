"""OSC out: notes, beats and parameter changes for TouchDesigner, Max, Pure Data, a VJ rig.

Installation tools follow the performance by listening to these messages: a visual that
flashes on the downbeat, a light desk that follows the bass line, a fader in TouchDesigner
that moves when a MIDI knob turns. ``send`` is called on the dispatch thread at each
event's time, so it only encodes and does one non-blocking ``sendto``; a full socket
buffer or an unreachable host loses that message, never the beat.

Messages (``prefix`` defaults to ``/livegen``)::

    <prefix>/note iii        pitch, velocity (0 = off), channel
    <prefix>/panic           all notes off
    <prefix>/beat iiif       beat, bar, beat_in_bar (0 = downbeat), bpm
    <prefix>/param/<name> f  the parameter's new value in its own units
    <prefix>/clock           one MIDI-clock pulse (24 per beat), only with "clock"
    <prefix>/transport si    start|stop|continue, song position, only with "transport"
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any, Iterable

from pythonosc.osc_message_builder import BuildError, OscMessageBuilder

from livegen.events import AllNotesOff, Beat, ClockTick, NoteOff, NoteOn, OutEvent, ParamChanged, Transport

log = logging.getLogger("livegen.osc")

SEND_KINDS = ("notes", "beats", "params", "clock", "transport")


def encode(address: str, *args: tuple[str, Any]) -> bytes:
    """An OSC message datagram from ``(type_tag, value)`` pairs, built by python-osc."""
    b = OscMessageBuilder(address)
    for tag, value in args:
        b.add_arg(value, tag)
    return b.build().dgram


class UdpSender:
    """One non-blocking UDP socket to one host and port; errors are counted, each kind logged once.

    Shared by the OSC and scsynth outputs. The address is resolved once here, so ``send``
    never does a DNS lookup on the dispatch thread.
    """

    def __init__(self, name: str, host: str, port: int) -> None:
        self.name = name
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        family, _, _, _, self.address = infos[0]
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self.errors = 0
        self.sent = 0
        self._seen: set[str] = set()
        self._closed = False

    def send(self, dgram: bytes) -> None:
        if self._closed:
            return
        try:
            self._sock.sendto(dgram, self.address)
            self.sent += 1
        except OSError as e:
            self.count_error(type(e).__name__ + (f"/{e.errno}" if e.errno else ""), f"sending to {self.address} failed: {e}")

    def count_error(self, kind: str, message: str) -> None:
        """Count a lost message; log the first of each kind only (the dispatch thread must not flood)."""
        self.errors += 1
        if kind not in self._seen:
            self._seen.add(kind)
            log.warning("%s: %s (further errors like this are only counted)", self.name, message)

    def close(self) -> None:
        self._closed = True
        self._sock.close()


class OscOutput:
    """Sends the performance as OSC to one host and port."""

    lead = 0.0

    def __init__(self, name: str, host: str, port: int, prefix: str = "/livegen",
                 send: Iterable[str] = ("notes", "beats", "params")) -> None:
        kinds = frozenset(send)
        unknown = kinds - set(SEND_KINDS)
        if unknown:
            raise ValueError(f"OSC output {name}: unknown send kinds {sorted(unknown)} (known: {', '.join(SEND_KINDS)})")
        if not prefix.startswith("/"):
            raise ValueError(f"OSC output {name}: prefix must start with '/', got {prefix!r}")
        self.name = name
        self.prefix = prefix.rstrip("/")
        self.kinds = kinds
        self._udp = UdpSender(name, host, port)
        self._param_addr: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def errors(self) -> int:
        """Messages lost to send errors."""
        return self._udp.errors

    def send(self, event: OutEvent) -> None:
        try:
            dgram = self._encode(event)
        except (BuildError, ValueError, TypeError, OverflowError) as e:  # e.g. a value that OSC cannot carry
            self._udp.count_error(f"encode/{type(event).__name__}", f"cannot encode {event!r}: {e}")
            return
        if dgram is not None:
            with self._lock:
                self._udp.send(dgram)

    def _encode(self, event: OutEvent) -> bytes | None:
        p = self.prefix
        if isinstance(event, NoteOn):
            if "notes" in self.kinds:
                return encode(f"{p}/note", ("i", int(event.pitch)), ("i", int(event.velocity)), ("i", int(event.channel)))
        elif isinstance(event, NoteOff):
            if "notes" in self.kinds:
                return encode(f"{p}/note", ("i", int(event.pitch)), ("i", 0), ("i", int(event.channel)))
        elif isinstance(event, AllNotesOff):
            if "notes" in self.kinds:
                return encode(f"{p}/panic")
        elif isinstance(event, Beat):
            if "beats" in self.kinds:
                return encode(f"{p}/beat", ("i", int(event.beat)), ("i", int(event.bar)),
                              ("i", int(event.beat_in_bar)), ("f", float(event.bpm)))
        elif isinstance(event, ParamChanged):
            if "params" in self.kinds:
                addr = self._param_addr.get(event.name)
                if addr is None:
                    addr = self._param_addr[event.name] = f"{p}/param/{event.name}"
                return encode(addr, ("f", float(event.value)))
        elif isinstance(event, ClockTick):
            if "clock" in self.kinds:
                return encode(f"{p}/clock")
        elif isinstance(event, Transport):
            if "transport" in self.kinds:
                return encode(f"{p}/transport", ("s", event.state), ("i", int(event.song_position)))
        return None

    def close(self) -> None:
        with self._lock:
            self._udp.close()
