"""OSC out: notes, beats and parameter changes for TouchDesigner, Max, Pure Data, a VJ rig.

Installation tools follow the performance by listening to these messages: a visual that
flashes on the downbeat, a light desk that follows the bass line, a fader in TouchDesigner
that moves when a MIDI knob turns. ``send`` is called on the dispatch thread at each
event's time, so it only encodes and does one non-blocking ``sendto``; a full socket
buffer or an unreachable host loses that message, never the beat.

The messages (address after the target's ``prefix``, ``/livegen`` by default; type tags;
the send kind that turns them on) are the table :data:`OUT_MESSAGES`: ``_encode`` builds
every datagram from it and docs/osc.md is generated from it, so the two cannot drift.
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from pythonosc.osc_message_builder import BuildError, OscMessageBuilder

from livegen.events import AllNotesOff, Beat, ClockTick, NoteOff, NoteOn, OutEvent, ParamChanged, Transport

log = logging.getLogger("livegen.osc")

SEND_KINDS = ("notes", "beats", "params", "clock", "transport")


@dataclass(frozen=True)
class OscOutMessage:
    """One message sent to OSC targets for one kind of output event.

    ``suffix`` follows the target's prefix (``<name>`` is the parameter's name); ``values``
    takes the event's argument values in the order of ``tags``; ``arguments`` says what each
    means, with units and range; ``kind`` is the target ``send`` entry that turns it on.
    """

    event: type
    suffix: str
    tags: str
    kind: str
    values: Callable[[Any], tuple[Any, ...]]
    arguments: tuple[str, ...]
    doc: str


OUT_MESSAGES: tuple[OscOutMessage, ...] = (
    OscOutMessage(NoteOn, "/note", "iii", "notes", lambda e: (e.pitch, e.velocity, e.channel),
                  ("pitch 0..127 (MIDI note number)", "velocity 1..127", "MIDI channel 0..15 (the generator's channel)"),
                  "A note starts: generated, or played by the performer (MIDI in, OSC `/livegen/note`)."),
    OscOutMessage(NoteOff, "/note", "iii", "notes", lambda e: (e.pitch, 0, e.channel),
                  ("pitch 0..127", "velocity: always 0, meaning note off", "MIDI channel 0..15"),
                  "A note ends."),
    OscOutMessage(AllNotesOff, "/panic", "", "notes", lambda e: (), (),
                  "Panic: every note off now (Space in the window, a panic trigger, `/livegen/panic`)."),
    OscOutMessage(Beat, "/beat", "iiif", "beats", lambda e: (e.beat, e.bar, e.beat_in_bar, e.bpm),
                  ("beat number on the performance clock (0 at the start)", "bar number (0 at the start)",
                   "beat in the bar, 0 = downbeat .. beats_per_bar - 1", "tempo in BPM"),
                  "Every beat of the performance clock, sent at the beat's time."),
    OscOutMessage(ParamChanged, "/param/<name>", "f", "params", lambda e: (e.value,),
                  ("the parameter's new value in its own units (see Live parameters)",),
                  "A parameter changed, from any source (MIDI, OSC, a scene, a patch reload); "
                  "`livegen play` also sends every parameter's starting value once at start."),
    OscOutMessage(ClockTick, "/clock", "", "clock", lambda e: (), (),
                  "One MIDI-clock pulse, 24 per beat; only while `[clock] send_clock = true`."),
    OscOutMessage(Transport, "/transport", "si", "transport", lambda e: (e.state, e.song_position),
                  ("state: start, stop or continue", "song position in 16th notes"),
                  "The performance clock started, stopped or continued."),
)
_MESSAGE_OF: dict[type, OscOutMessage] = {m.event: m for m in OUT_MESSAGES}
_CAST: dict[str, Callable[[Any], Any]] = {"i": int, "f": float, "s": str}


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
        self._address = {m.event: self.prefix + m.suffix for m in OUT_MESSAGES}
        self._named_addr: dict[tuple[type, str], str] = {}
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
        row = _MESSAGE_OF.get(type(event))
        if row is None or row.kind not in self.kinds:
            return None
        address = self._address[row.event]
        if "<name>" in row.suffix:  # one address per parameter, built once
            key = (row.event, getattr(event, "name"))
            named = self._named_addr.get(key)
            if named is None:
                named = self._named_addr[key] = address.replace("<name>", key[1])
            address = named
        values = row.values(event)
        return encode(address, *((tag, _CAST[tag](v)) for tag, v in zip(row.tags, values, strict=True)))

    def close(self) -> None:
        with self._lock:
            self._udp.close()
