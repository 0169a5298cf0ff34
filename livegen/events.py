"""The messages that flow from the engine to its outputs.

Every output (built-in synth, MIDI ports, OSC targets, scsynth, the visuals) receives the
same small immutable events, each stamped with the absolute time (seconds on the engine's
clock: ``time.monotonic()`` live, virtual seconds in ``livegen render``) at which it must
take effect. Outputs never call back into the engine: data flows one way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Union


@dataclass(frozen=True, slots=True)
class NoteOn:
    """``thru`` marks a note the performer played, passed through to be heard: MIDI ports
    skip those (the controller already sent them; echoing them back makes loops)."""

    time: float
    pitch: int
    velocity: int
    channel: int = 0
    voice: str = "lead"
    thru: bool = False


@dataclass(frozen=True, slots=True)
class NoteOff:
    time: float
    pitch: int
    channel: int = 0
    voice: str = "lead"
    thru: bool = False


@dataclass(frozen=True, slots=True)
class AllNotesOff:
    """Panic: silence everything this output is sounding."""

    time: float


@dataclass(frozen=True, slots=True)
class Beat:
    """A beat of the performance clock; ``beat_in_bar == 0`` is a downbeat."""

    time: float
    beat: int
    bar: int
    beat_in_bar: int
    bpm: float


@dataclass(frozen=True, slots=True)
class ClockTick:
    """One MIDI clock pulse (24 per quarter note) for devices that follow us."""

    time: float


@dataclass(frozen=True, slots=True)
class Transport:
    """Start / stop / continue of the performance clock, for MIDI clock followers."""

    time: float
    state: str  # "start" | "stop" | "continue"
    song_position: int = 0  # in MIDI beats (16th notes), for "continue"


@dataclass(frozen=True, slots=True)
class ParamChanged:
    time: float
    name: str
    value: float


OutEvent = Union[NoteOn, NoteOff, AllNotesOff, Beat, ClockTick, Transport, ParamChanged]


class Output(Protocol):
    """Something that sounds or shows the performance.

    ``lead`` is how many seconds before ``event.time`` the output wants to receive an
    event: 0 for outputs that act the instant they are called (MIDI ports), a few tens of
    milliseconds for outputs that place events themselves (the synth places notes at the
    exact sample). ``send`` must not block: it is called from the dispatch thread.

    An output that can fall silent with a write to memory alone (the synth: a counter its
    audio callback reads) may also have ``silence()``. A panic calls it before any
    all-notes-off goes out, as a pipe or port write lets other threads take Python's GIL
    for milliseconds before the next output's turn.
    """

    name: str
    lead: float

    def send(self, event: OutEvent) -> None: ...

    def close(self) -> None: ...
