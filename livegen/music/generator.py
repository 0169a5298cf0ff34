"""The generator interface: what a melody generator is given and what it returns.

The engine asks each generator, a little ahead of the clock, for the notes that start in a
window of beats. A generator may be slow (the melody RNN runs torch): the engine calls
``generate`` on its generator thread, never on the event loop, and schedules what comes
back against absolute deadlines, so notes are never late as long as a window is produced
in less time than the look-ahead. In ``livegen render`` the same calls happen in order on a
virtual clock, so a seeded generator gives the same performance every time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Mapping, Protocol, Sequence

from livegen.control.params import ParamSpec
from livegen.music.scales import Key


@dataclass(frozen=True, slots=True)
class Note:
    """A note a generator wants played; times are in beats (quarter notes)."""

    start: float
    duration: float
    pitch: int
    velocity: int = 100
    voice: str = "lead"
    channel: int = 0


@dataclass(frozen=True, slots=True)
class PlayedNote:
    """A note the performer played (MIDI in or OSC ``/livegen/note``), in beats."""

    beat: float
    pitch: int
    velocity: int
    duration: float | None = None  # None while still held


@dataclass
class GeneratorContext:
    """Everything a generator may use for one window ``[start, end)`` in beats."""

    start: float
    end: float
    key: Key
    beats_per_bar: int
    bpm: float
    params: Mapping[str, float]  # this generator's params, names without the prefix
    recent: Sequence[PlayedNote] = field(default_factory=tuple)  # newest last
    rng: random.Random = field(default_factory=random.Random)
    triggers: Sequence[str] = field(default_factory=tuple)  # e.g. "mutate", "answer" since the last window

    def bar_position(self, beat: float) -> float:
        """Position within the bar, in beats (0 = downbeat)."""
        return beat % self.beats_per_bar


class Generator(Protocol):
    """A melody source. ``name`` prefixes its parameters in the store ("arp.density")."""

    name: str
    kind: str

    def param_specs(self) -> Sequence[ParamSpec]:
        """Live parameters, names without the prefix."""
        ...

    def generate(self, ctx: GeneratorContext) -> list[Note]:
        """Notes whose start lies in ``[ctx.start, ctx.end)``."""
        ...

    def reset(self) -> None:
        """Forget phrase state (stop/start of the transport)."""
        ...


_REGISTRY: dict[str, type] = {}


def register(kind: str):
    """Class decorator: make a generator available to patches as ``kind``."""

    def deco(cls: type) -> type:
        _REGISTRY[kind] = cls
        return cls

    return deco


def generator_kinds() -> list[str]:
    return sorted(_REGISTRY)


def create_generator(kind: str, name: str, seed: int | None = None, **options: object) -> Generator:
    """Build a generator of a registered kind. Unknown options raise TypeError."""
    if kind not in _REGISTRY:
        raise ValueError(f"unknown generator kind {kind!r} (known: {', '.join(generator_kinds())})")
    return _REGISTRY[kind](name=name, seed=seed, **options)
