"""Which key a phrase is in: the Krumhansl-Schmuckler algorithm.

Call-and-response answers the performer in the key of their call, and melodies loaded from
MIDI files carry no key, so both estimate it: the duration-weighted pitch-class histogram is
correlated with the Krumhansl-Kessler probe-tone profiles of all 24 major and minor keys,
and the best-correlated key wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

# Krumhansl & Kessler (1982) probe-tone ratings, C major and C minor.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def _profiles() -> np.ndarray:
    """24 x 12: rows 0..11 major keys on C..B, rows 12..23 minor keys, each centred."""
    rows = [np.roll(MAJOR_PROFILE, t) for t in range(12)] + [np.roll(MINOR_PROFILE, t) for t in range(12)]
    m = np.array(rows)
    m = m - m.mean(axis=1, keepdims=True)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


_PROFILES = _profiles()


@dataclass(frozen=True)
class KeyEstimate:
    tonic: int  # pitch class
    mode: str  # "major" or "minor"
    correlation: float  # of the winner, -1..1
    margin: float  # winner minus runner-up: how sure

    def __str__(self) -> str:
        from livegen.music.scales import NOTE_NAMES

        return f"{NOTE_NAMES[self.tonic]} {self.mode} (r={self.correlation:.2f})"


def pitch_class_histogram(pitches: Iterable[int], weights: Iterable[float] | None = None) -> np.ndarray:
    h = np.zeros(12)
    if weights is None:
        for p in pitches:
            h[int(p) % 12] += 1.0
    else:
        for p, w in zip(pitches, weights):
            h[int(p) % 12] += max(0.0, float(w))
    return h


def key_correlations(histogram: np.ndarray) -> np.ndarray:
    """Correlation of a pitch-class histogram with each of the 24 keys (see ``_profiles``)."""
    h = np.asarray(histogram, float) - np.mean(histogram)
    n = np.linalg.norm(h)
    if n == 0:
        return np.zeros(24)
    return _PROFILES @ (h / n)


def estimate_key(pitches: Iterable[int], weights: Iterable[float] | None = None,
                 allowed: Iterable[int] | None = None) -> KeyEstimate | None:
    """Best key for the notes (weights: durations). ``allowed`` restricts to key indices
    (0..11 major, 12..23 minor), e.g. the two keys a key signature permits. None if no notes."""
    hist = pitch_class_histogram(pitches, weights)
    if hist.sum() <= 0:
        return None
    r = key_correlations(hist)
    idx = np.arange(24) if allowed is None else np.array(sorted(set(allowed)))
    order = idx[np.argsort(-r[idx])]
    best = int(order[0])
    margin = float(r[best] - r[order[1]]) if len(order) > 1 else 1.0
    return KeyEstimate(best % 12, "major" if best < 12 else "minor", float(r[best]), margin)


def relative_keys(sharps: int) -> tuple[int, int]:
    """The major and the relative minor key indices a key signature (sharps > 0, flats < 0) allows."""
    major = (7 * sharps) % 12
    return major, 12 + (major + 9) % 12
