"""How a melody becomes tokens the melody models read and write.

The encoding is MelodyRNN's: one token per 16th note. A token is ``HOLD`` (nothing new:
the sounding note, or the silence, goes on), ``REST`` (silence starts) or a note-on of a
pitch (which also ends the previous note). The grid makes the metric position of every
token explicit, so the model can be told where it is in the bar at each step, and so
generating "the next 16th" is exactly what the live engine asks for. Each step also has
conditioning the model reads beside the previous token: the position in the bar, the key
(tonic and major/minor) and the metre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STEPS_PER_BEAT = 4  # 16th notes
MIN_PITCH, MAX_PITCH = 36, 96  # C2..C7: every melody in the corpora fits after octave folding
HOLD, REST = 0, 1
NOTE_BASE = 2
VOCAB = NOTE_BASE + MAX_PITCH - MIN_PITCH + 1  # 63 output tokens
START = VOCAB  # input-only token: "nothing before this"
INPUT_VOCAB = VOCAB + 1
MAX_BAR_STEPS = 32  # positions in the bar the model distinguishes (8/4 at 16ths)
METERS = (8, 12, 16, 24)  # bar lengths in steps with their own input (2/4, 3/4 or 6/8, 4/4, 6/4 or 12/8); else "other"
MODES = ("major", "minor")
# What a token is relative to the key: a scale degree 0..11 for a note-on, then HOLD, REST, unknown.
DEG_HOLD, DEG_REST, DEG_NONE = 12, 13, 14
LOOKBACK_BARS = (1, 2)  # the token one and two bars back (MelodyRNN's "lookback": tunes repeat by the bar)
COND_DIM = MAX_BAR_STEPS + 12 + len(MODES) + len(METERS) + 1 + 13 + 15 * len(LOOKBACK_BARS)

# Scales of the live key map onto the two modes the corpora annotate, by their third.
MINOR_SCALES = {"minor", "harmonic_minor", "melodic_minor", "dorian", "phrygian", "locrian",
                "minor_pentatonic", "blues", "aeolian"}


def pitch_token(pitch: int) -> int:
    if not MIN_PITCH <= pitch <= MAX_PITCH:
        raise ValueError(f"pitch {pitch} outside the model's range {MIN_PITCH}..{MAX_PITCH}")
    return NOTE_BASE + pitch - MIN_PITCH


def token_pitch(token: int) -> int | None:
    """The pitch a note-on token starts, or None for HOLD/REST."""
    return MIN_PITCH + token - NOTE_BASE if token >= NOTE_BASE else None


def mode_index(scale: str) -> int:
    return 1 if scale in MINOR_SCALES else 0


def meter_index(bar_steps: int) -> int:
    return METERS.index(bar_steps) if bar_steps in METERS else len(METERS)


def token_degrees(tokens: np.ndarray, tonic: int) -> np.ndarray:
    """Each token as a degree relative to the tonic (0..11), or DEG_HOLD / DEG_REST."""
    t = np.asarray(tokens, np.int64)
    deg = np.where(t >= NOTE_BASE, (t - NOTE_BASE + MIN_PITCH - tonic) % 12, DEG_HOLD)
    return np.where(t == REST, DEG_REST, deg)


def _static(c: np.ndarray, positions: np.ndarray, tonic: int, mode: int, bar_steps: int) -> int:
    n = len(c)
    c[np.arange(n), np.minimum(positions, MAX_BAR_STEPS - 1)] = 1.0
    o = MAX_BAR_STEPS
    c[:, o + tonic % 12] = 1.0
    o += 12
    c[:, o + mode] = 1.0
    o += len(MODES)
    c[:, o + meter_index(bar_steps)] = 1.0
    return o + len(METERS) + 1


def condition(tokens: np.ndarray, positions: np.ndarray, tonic: int, mode: int, bar_steps: int) -> np.ndarray:
    """Conditioning rows for every step of a tune; row t reads only ``tokens[:t]``.

    One-hot each: position in the bar, tonic, mode, metre; the degree of the last note
    sounded before t (or none); the tokens one and two bars back as degrees (or hold, rest,
    none). The live improviser builds the same row for one step with ``condition_step``.
    """
    n = len(tokens)
    c = np.zeros((n, COND_DIM), np.float32)
    o = _static(c, np.asarray(positions, np.int64), tonic, mode, bar_steps)
    deg = token_degrees(tokens, tonic)
    is_note = np.asarray(tokens) >= NOTE_BASE
    # Last note before t: forward-fill the note-on degrees, shifted by one step.
    idx = np.where(is_note, np.arange(n), -1)
    idx = np.maximum.accumulate(idx) if n else idx
    last = np.full(n, 12, np.int64)
    if n > 1:
        prev_idx = idx[:-1]
        last[1:] = np.where(prev_idx >= 0, deg[np.maximum(prev_idx, 0)], 12)
    c[np.arange(n), o + last] = 1.0
    o += 13
    for bars in LOOKBACK_BARS:
        lag = bars * bar_steps
        back = np.full(n, DEG_NONE, np.int64)
        if lag < n:
            back[lag:] = deg[: n - lag]
        c[np.arange(n), o + back] = 1.0
        o += 15
    return c


def condition_step(history, position: int, tonic: int, mode: int, bar_steps: int) -> np.ndarray:
    """The conditioning row of one step, given the tokens before it (oldest first; None where
    unknown). Equal to ``condition(...)[t]`` for ``history = tokens[:t]``."""
    c = np.zeros((1, COND_DIM), np.float32)
    o = _static(c, np.array([position]), tonic, mode, bar_steps)
    last = 12
    for tok in reversed(history):
        if tok is None:
            break
        if tok >= NOTE_BASE:
            last = (tok - NOTE_BASE + MIN_PITCH - tonic) % 12
            break
    c[0, o + last] = 1.0
    o += 13
    for bars in LOOKBACK_BARS:
        lag = bars * bar_steps
        tok = history[-lag] if lag <= len(history) else None
        if tok is None:
            d = DEG_NONE
        elif tok >= NOTE_BASE:
            d = (tok - NOTE_BASE + MIN_PITCH - tonic) % 12
        else:
            d = DEG_REST if tok == REST else DEG_HOLD
        c[0, o + d] = 1.0
        o += 15
    return c[0]


@dataclass
class Melody:
    """A monophonic tune on the 16th grid, with its key and metre."""

    name: str  # unique id, e.g. "essen/altdeu10.abc#3"
    collection: str
    tokens: np.ndarray  # uint8, one per step
    positions: np.ndarray  # uint8, step's position in its bar (0 = downbeat)
    tonic: int
    mode: int  # index into MODES
    bar_steps: int
    source: str = ""

    @property
    def notes(self) -> int:
        return int(np.count_nonzero(self.tokens >= NOTE_BASE))

    def pitches(self) -> np.ndarray:
        t = self.tokens[self.tokens >= NOTE_BASE].astype(np.int64)
        return t - NOTE_BASE + MIN_PITCH

    def transposable(self) -> tuple[int, int]:
        """The transpositions (semitones down, up) that keep every pitch in range."""
        p = self.pitches()
        if len(p) == 0:
            return (0, 0)
        return (int(p.min()) - MIN_PITCH, MAX_PITCH - int(p.max()))

    def transposed(self, semitones: int) -> "Melody":
        if semitones == 0:
            return self
        down, up = self.transposable()
        if not -down <= semitones <= up:
            raise ValueError(f"{self.name}: transposing by {semitones} leaves the pitch range")
        t = self.tokens.astype(np.int16)
        t = np.where(t >= NOTE_BASE, t + semitones, t).astype(np.uint8)
        return Melody(self.name, self.collection, t, self.positions, (self.tonic + semitones) % 12, self.mode,
                      self.bar_steps, self.source)

    def conditioning(self) -> np.ndarray:
        return condition(self.tokens, self.positions.astype(np.int64), self.tonic, self.mode, self.bar_steps)

    def inputs(self) -> np.ndarray:
        """The token each step sees as "previous": START, then the tune shifted by one."""
        x = np.empty(len(self.tokens), np.int64)
        x[0] = START
        x[1:] = self.tokens[:-1]
        return x


def fold_into_range(pitches: list[int]) -> list[int] | None:
    """Shift a melody by octaves so it fits MIN..MAX; None if its span is too wide."""
    if not pitches:
        return pitches
    lo, hi = min(pitches), max(pitches)
    if hi - lo > MAX_PITCH - MIN_PITCH:
        return None
    shift = 0
    while lo + shift < MIN_PITCH:
        shift += 12
    while hi + shift > MAX_PITCH:
        shift -= 12
    if lo + shift < MIN_PITCH:
        return None
    return [p + shift for p in pitches]


def encode_events(events: list[tuple[int, int, int]], length: int) -> np.ndarray:
    """(start_step, duration_steps, pitch) notes, in order and not overlapping -> tokens.

    A note that starts before the previous one ends cuts it short (the line stays monophonic).
    """
    tokens = np.full(length, HOLD, np.uint8)
    if length == 0:
        return tokens
    tokens[0] = REST
    end_prev = 0
    for start, dur, pitch in events:
        if start >= length:
            break
        if start > end_prev and end_prev < length:
            tokens[end_prev] = REST  # a gap before this note is a rest
        tokens[start] = pitch_token(pitch)
        end_prev = max(start + max(1, dur), start + 1)
    if end_prev < length:
        tokens[end_prev] = REST
    return tokens


def decode_tokens(tokens, first_step: int = 0) -> list[tuple[int, int, int]]:
    """Tokens -> (start_step, duration_steps, pitch) notes. A note lasts until the next non-HOLD token."""
    out: list[tuple[int, int, int]] = []
    cur: tuple[int, int] | None = None
    n = len(tokens)
    for i, tok in enumerate(tokens):
        tok = int(tok)
        if tok == HOLD:
            continue
        if cur is not None:
            out.append((cur[0], first_step + i - cur[0], cur[1]))
            cur = None
        p = token_pitch(tok)
        if p is not None:
            cur = (first_step + i, p)
    if cur is not None:
        out.append((cur[0], first_step + n - cur[0], cur[1]))
    return out
