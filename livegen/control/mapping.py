"""Mappings from controller gestures (MIDI CC, pitch bend, OSC addresses) to parameters.

A mapping says which gesture drives which parameter, over what part of its range and along
which curve. Patches declare them; MIDI learn creates them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from livegen.control.params import ParamSpec

CURVES = ("linear", "exp", "log", "toggle", "invert")


def apply_curve(x: float, curve: str) -> float:
    """Shape a 0..1 control value. ``exp`` gives fine control at the low end (cutoffs, times)."""
    x = min(1.0, max(0.0, x))
    if curve == "linear":
        return x
    if curve == "exp":
        return (math.exp(4.0 * x) - 1.0) / (math.exp(4.0) - 1.0)
    if curve == "log":
        return math.log1p(x * (math.e**4 - 1.0)) / 4.0
    if curve == "toggle":
        return 1.0 if x >= 0.5 else 0.0
    if curve == "invert":
        return 1.0 - x
    raise ValueError(f"unknown curve {curve!r} (known: {', '.join(CURVES)})")


@dataclass(frozen=True)
class MidiMap:
    """A MIDI control driving a parameter.

    Exactly one of ``cc`` or ``pitchbend`` is set. With ``cc14`` the controller ``cc``
    (0..31) is the MSB of a 14-bit pair whose LSB is ``cc + 32``.
    """

    param: str
    cc: int | None = None
    cc14: bool = False
    pitchbend: bool = False
    channel: int | None = None  # 0..15; None = any channel
    min: float | None = None  # None = the parameter's own minimum
    max: float | None = None
    curve: str = "linear"


@dataclass(frozen=True)
class OscMap:
    """An OSC address (e.g. a TouchDesigner fader) driving a parameter with its first argument.

    The argument is taken as 0..1 unless ``raw`` is set, in which case it is the value itself.
    """

    address: str
    param: str
    min: float | None = None
    max: float | None = None
    curve: str = "linear"
    raw: bool = False


@dataclass(frozen=True)
class Trigger:
    """A pad, button or OSC address that fires an action.

    Actions: ``panic``, ``mutate``, ``answer``, ``tap`` (tap tempo), ``start``, ``stop``,
    ``scene:<name>``, ``learn:<param>``.
    """

    action: str
    note: int | None = None
    cc: int | None = None
    channel: int | None = None
    address: str | None = None


def mapped_value(spec: ParamSpec, x: float, lo: float | None, hi: float | None, curve: str) -> float:
    """The parameter value for control position ``x`` (0..1) through a mapping."""
    y = apply_curve(x, curve)
    lo = spec.min if lo is None else lo
    hi = spec.max if hi is None else hi
    return spec.clamp(lo + (hi - lo) * y)
