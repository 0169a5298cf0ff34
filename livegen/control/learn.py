"""MIDI learn, and applying MIDI mappings and triggers to decoded input.

Learn: arm a parameter, move a knob, and that knob drives the parameter from then on.
The mapper turns ``ControlInput`` events into parameter values through the patch's
``MidiMap``s; triggers turn pads and buttons into actions (panic, scenes, tap tempo...).
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

from livegen.control.mapping import MidiMap, Trigger, mapped_value
from livegen.control.midi_in import ControlInput, MidiEvent, NoteInput
from livegen.control.params import ParamSpec
from livegen.log import RateLimitedLog

log = logging.getLogger("livegen.midi")

_LEARNABLE = ("cc", "cc14", "pitchbend")


class MidiLearn:
    """Binds the next moved controller to the armed parameter."""

    def __init__(self) -> None:
        self._armed: str | None = None
        self.learned: list[MidiMap] = []

    def arm(self, param: str) -> None:
        """Wait for a controller to move; the next CC / 14-bit CC / pitch bend binds ``param``."""
        self._armed = param

    @property
    def armed(self) -> str | None:
        return self._armed

    def cancel(self) -> None:
        self._armed = None

    def offer(self, ev: MidiEvent) -> MidiMap | None:
        """Show learn an input event; returns the new mapping when this event completed a learn."""
        if self._armed is None or not isinstance(ev, ControlInput) or ev.kind not in _LEARNABLE:
            return None
        if ev.kind == "pitchbend":
            m = MidiMap(self._armed, pitchbend=True, channel=ev.channel)
        else:
            m = MidiMap(self._armed, cc=ev.number, cc14=ev.kind == "cc14", channel=ev.channel)
        self._armed = None
        self.learned.append(m)
        log.info("MIDI learn: %s", describe(m))
        return m


def describe(m: MidiMap) -> str:
    """A one-line description of a mapping for the log and the UI."""
    ctl = "pitch bend" if m.pitchbend else f"CC {m.cc}{' (14-bit)' if m.cc14 else ''}"
    ch = "any channel" if m.channel is None else f"channel {m.channel + 1}"
    return f"{ctl} on {ch} -> {m.param}"


def _controller(m: MidiMap) -> tuple[object, ...]:
    return ("pitchbend",) if m.pitchbend else ("cc", m.cc)


class MidiMapper:
    """Applies ``MidiMap``s to control events; also tracks button state for triggers.

    ``specs(name)`` returns the parameter's ``ParamSpec`` (``ParameterStore.spec``); a map
    naming an unknown parameter is reported (rate-limited) and skipped.
    """

    def __init__(self, maps: Sequence[MidiMap], specs: Callable[[str], ParamSpec]) -> None:
        self._maps: list[MidiMap] = []
        self._specs = specs
        self._cc_state: dict[tuple[int, int], bool] = {}
        self.problems = RateLimitedLog(log)
        for m in maps:
            self.add(m)

    @property
    def maps(self) -> list[MidiMap]:
        return list(self._maps)

    def add(self, m: MidiMap) -> None:
        """Add a mapping, replacing any other on the same controller and channel."""
        key = (_controller(m), m.channel)
        self._maps = [x for x in self._maps if (_controller(x), x.channel) != key]
        self._maps.append(m)

    def cc14_numbers(self) -> set[int]:
        """The MSB controllers the decoder must pair as 14-bit."""
        return {m.cc for m in self._maps if m.cc14 and m.cc is not None}

    @staticmethod
    def matches(m: MidiMap, ev: ControlInput) -> bool:
        if m.channel is not None and m.channel != ev.channel:
            return False
        if ev.kind == "pitchbend":
            return m.pitchbend
        if ev.kind == "cc14":
            return m.cc14 and not m.pitchbend and m.cc == ev.number
        if ev.kind == "cc":
            return not m.cc14 and not m.pitchbend and m.cc == ev.number
        return False

    def apply(self, ev: MidiEvent) -> list[tuple[str, float]]:
        """``(param, value)`` for every mapping this event drives."""
        if not isinstance(ev, ControlInput):
            return []
        out = []
        for m in self._maps:
            if not self.matches(m, ev):
                continue
            try:
                spec = self._specs(m.param)
            except KeyError:
                self.problems.warn(f"map:{m.param}", "MIDI mapping to unknown parameter %r (%s)", m.param, describe(m))
                continue
            try:
                out.append((m.param, mapped_value(spec, ev.value, m.min, m.max, m.curve)))
            except ValueError as exc:  # unknown curve in a hand-written patch
                self.problems.warn(f"curve:{m.param}", "MIDI mapping for %r: %s", m.param, exc)
        return out

    def match_triggers(self, triggers: Sequence[Trigger], ev: MidiEvent) -> list[str]:
        """Actions fired by this event: note-on of a trigger's note, or a CC crossing 0.5 upwards.

        CC state is kept per (channel, cc) for every CC seen, so a held button fires once
        and a knob fires each time it is turned past the middle.
        """
        if isinstance(ev, NoteInput):
            if not ev.on:
                return []
            return [t.action for t in triggers
                    if t.note == ev.pitch and (t.channel is None or t.channel == ev.channel)]
        if isinstance(ev, ControlInput) and ev.kind == "cc":
            key = (ev.channel, ev.number)
            high = ev.value >= 0.5
            rising = high and not self._cc_state.get(key, False)
            self._cc_state[key] = high
            if not rising:
                return []
            return [t.action for t in triggers
                    if t.cc == ev.number and (t.channel is None or t.channel == ev.channel)]
        return []
