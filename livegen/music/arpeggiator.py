"""The algorithmic melody generator: a scale-constrained arpeggiator and random walk.

Performers use it on its own or beside the melody RNN. Hold notes on the controller and it
arpeggiates them; play nothing and it walks a chord progression in the patch's key. Its
rhythm is a one-bar motif (so it grooves rather than twitches) that is re-drawn every few
bars or on "mutate"; ``density`` is how many steps of the motif sound, ``rest`` how often
a whole bar breathes.
"""

from __future__ import annotations

import random
from typing import Sequence

from livegen.control.params import ParamSpec
from livegen.music.generator import GeneratorContext, Note, PlayedNote, register

PATTERNS = ("up", "down", "updown", "walk", "random")
# Chord roots (scale degrees) of the progression walked when the performer holds nothing.
PROGRESSION = (0, 5, 3, 4)
HELD_WINDOW_BEATS = 8.0  # performer notes this recent count as "held" when no duration known


@register("arpeggiator")
class Arpeggiator:
    kind = "arpeggiator"

    def __init__(self, name: str = "arp", seed: int | None = None, motif_bars: int = 4,
                 progression: Sequence[int] = PROGRESSION) -> None:
        self.name = name
        self.seed = seed
        self.motif_bars = int(motif_bars)
        self.progression = tuple(int(d) for d in progression)
        if not self.progression:
            raise ValueError("progression must name at least one scale degree")
        self.reset()

    def param_specs(self) -> list[ParamSpec]:
        return [
            ParamSpec("density", 0.75, 0.0, 1.0, doc="fraction of steps in the rhythm motif that sound"),
            ParamSpec("rest", 0.1, 0.0, 1.0, doc="chance that a bar is left silent"),
            ParamSpec("step", 0.25, 0.125, 2.0, unit="beats", doc="step length (0.25 = 16th notes)"),
            ParamSpec("pattern", 2, 0, len(PATTERNS) - 1, integer=True,
                      doc="0 up, 1 down, 2 up-down, 3 random walk, 4 random"),
            ParamSpec("low", 55, 21, 108, unit="midi", integer=True, doc="lowest pitch"),
            ParamSpec("high", 79, 21, 108, unit="midi", integer=True, doc="highest pitch"),
            ParamSpec("octaves", 2, 1, 4, integer=True, doc="octaves the arpeggio spans"),
            ParamSpec("gate", 0.6, 0.05, 1.0, doc="note length as a fraction of the step"),
            ParamSpec("velocity", 96, 1, 127, integer=True, doc="base velocity; downbeats are accented"),
            ParamSpec("swing", 0.0, 0.0, 0.75, doc="delay of every second step, as a fraction of a step"),
        ]

    def reset(self) -> None:
        self._index = 0  # position in the arpeggio
        self._walk_pitch: int | None = None
        self._motif: list[bool] = []
        self._motif_bar = -(10**9)
        self._silent_bar: tuple[int, bool] | None = None

    # -- the pieces ------------------------------------------------------------------
    def _chord(self, ctx: GeneratorContext, bar: int, low: int, high: int, octaves: int) -> list[int]:
        """Pitches to arpeggiate: the performer's held notes, else a triad of the progression."""
        held = _held_pitches(ctx.recent, ctx.start)
        if held:
            base = sorted(set(held))
            pitches = [p + 12 * o for o in range(octaves) for p in base]
        else:
            root = self.progression[bar % len(self.progression)]
            centre = low + max(0, (high - low) // 2 - 6)
            base_oct = 12 * ((centre - ctx.key.tonic) // 12)  # the C at or below the tonic nearest centre
            pitches = [ctx.key.degree_pitch(root + d + 7 * o, base_oct)
                       for o in range(octaves) for d in (0, 2, 4)]
        inside = sorted({p for p in pitches if low <= p <= high})
        if inside:
            return inside
        # Fold into the register rather than going silent when the range is narrow.
        folded = sorted({low + (p - low) % 12 for p in pitches if low + (p - low) % 12 <= high})
        return folded or [min(max(pitches[0], low), high)]

    def _next_pitch(self, ctx: GeneratorContext, chord: list[int], pattern: int, low: int, high: int) -> int:
        rng = ctx.rng
        kind = PATTERNS[pattern]
        n = len(chord)
        if kind == "up":
            p = chord[self._index % n]
        elif kind == "down":
            p = chord[-1 - self._index % n]
        elif kind == "updown":
            cycle = max(1, 2 * n - 2)
            i = self._index % cycle
            p = chord[i if i < n else cycle - i]
        elif kind == "random":
            p = rng.choice(chord)
        else:  # walk: step through the scale, pulled toward chord tones
            scale = ctx.key.pitches(low, high) or chord
            cur = self._walk_pitch if self._walk_pitch is not None else rng.choice(chord)
            cur = min(scale, key=lambda q: abs(q - cur))
            i = scale.index(cur) + rng.choice((-2, -1, -1, 1, 1, 2))
            if i < 0 or i >= len(scale):  # bounce off the register edges
                i = max(0, min(len(scale) - 1, scale.index(cur) - (i - scale.index(cur))))
            p = scale[i]
            if rng.random() < 0.3:
                p = min(chord, key=lambda q: abs(q - p))
            self._walk_pitch = p
        self._index += 1
        return p

    def _draw_motif(self, rng: random.Random, steps: int, density: float) -> list[bool]:
        count = max(1 if density > 0 else 0, round(density * steps))
        chosen = set(rng.sample(range(steps), min(steps, count)))
        if density > 0:
            chosen.add(0)  # the downbeat anchors the groove
        return [i in chosen for i in range(steps)]

    # -- the interface ---------------------------------------------------------------
    def generate(self, ctx: GeneratorContext) -> list[Note]:
        p = ctx.params
        step = float(p.get("step", 0.25))
        density = float(p.get("density", 0.75))
        low, high = int(p.get("low", 55)), int(p.get("high", 79))
        if low > high:
            low, high = high, low
        octaves = int(p.get("octaves", 2))
        gate, swing = float(p.get("gate", 0.6)), float(p.get("swing", 0.0))
        vel = int(p.get("velocity", 96))
        pattern = int(p.get("pattern", 2)) % len(PATTERNS)
        rest = float(p.get("rest", 0.1))
        bpb = ctx.beats_per_bar
        steps_per_bar = max(1, round(bpb / step))
        if "mutate" in ctx.triggers:
            self._motif_bar = -(10**9)

        notes: list[Note] = []
        k = int(-(-(ctx.start - 1e-9) // step))  # first grid index at or after start
        while k * step < ctx.end - 1e-9:
            beat = k * step
            bar = int(beat // bpb)
            if bar - self._motif_bar >= self.motif_bars or len(self._motif) != steps_per_bar:
                self._motif = self._draw_motif(ctx.rng, steps_per_bar, density)
                self._motif_bar = bar
            if self._silent_bar is None or self._silent_bar[0] != bar:
                self._silent_bar = (bar, ctx.rng.random() < rest)
            in_bar = int(round((beat - bar * bpb) / step)) % steps_per_bar
            if self._motif[in_bar] and not self._silent_bar[1]:
                chord = self._chord(ctx, bar, low, high, octaves)
                pitch = self._next_pitch(ctx, chord, pattern, low, high)
                start = beat + (swing * step if k % 2 == 1 else 0.0)
                accent = 1.0 if in_bar == 0 else (0.85 if (beat % 1.0) < 1e-9 else 0.7)
                velocity = max(1, min(127, round(vel * accent * (0.9 + 0.2 * ctx.rng.random()))))
                notes.append(Note(start, max(0.02, gate * step), pitch, velocity))
            k += 1
        return notes


def _held_pitches(recent: Sequence[PlayedNote], now_beat: float) -> list[int]:
    """Notes the performer is holding (or, without note-offs, played in the last few beats)."""
    out = []
    for n in recent:
        if n.duration is None:
            if now_beat - n.beat <= 64:
                out.append(n.pitch)
    return out
