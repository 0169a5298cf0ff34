"""Keys and scales, by name, as pitch-class sets."""

from __future__ import annotations

from dataclasses import dataclass

SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
    "melodic_minor": (0, 2, 3, 5, 7, 9, 11),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "locrian": (0, 1, 3, 5, 6, 8, 10),
    "major_pentatonic": (0, 2, 4, 7, 9),
    "minor_pentatonic": (0, 3, 5, 7, 10),
    "blues": (0, 3, 5, 6, 7, 10),
    "whole_tone": (0, 2, 4, 6, 8, 10),
    "chromatic": tuple(range(12)),
}

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_FLATS = {"Db": 1, "Eb": 3, "Gb": 6, "Ab": 8, "Bb": 10, "Cb": 11, "Fb": 4}


def parse_tonic(name: str) -> int:
    """'C', 'F#', 'Bb' -> pitch class 0..11."""
    n = name.strip()
    if not n:
        raise ValueError("empty key name")
    n = n[0].upper() + n[1:]
    if n in NOTE_NAMES:
        return NOTE_NAMES.index(n)
    if n in _FLATS:
        return _FLATS[n]
    raise ValueError(f"unknown key {name!r} (expected one of {', '.join(NOTE_NAMES)} or a flat like Bb)")


@dataclass(frozen=True)
class Key:
    tonic: int = 0  # pitch class, 0 = C
    scale: str = "major"

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ValueError(f"unknown scale {self.scale!r} (known: {', '.join(SCALES)})")
        if not 0 <= self.tonic < 12:
            raise ValueError(f"tonic must be a pitch class 0..11, got {self.tonic}")

    @classmethod
    def parse(cls, tonic: str, scale: str = "major") -> "Key":
        return cls(parse_tonic(tonic), scale)

    @property
    def pitch_classes(self) -> frozenset[int]:
        return frozenset((self.tonic + i) % 12 for i in SCALES[self.scale])

    def contains(self, pitch: int) -> bool:
        return pitch % 12 in self.pitch_classes

    def pitches(self, low: int, high: int) -> list[int]:
        """All scale pitches in [low, high]."""
        pcs = self.pitch_classes
        return [p for p in range(max(0, low), min(127, high) + 1) if p % 12 in pcs]

    def degree_pitch(self, degree: int, octave_base: int) -> int:
        """Scale degree (any integer, may cross octaves) above the tonic in the octave starting at
        ``octave_base`` (a C: 48, 60, ...)."""
        steps = SCALES[self.scale]
        octave, idx = divmod(degree, len(steps))
        return octave_base + self.tonic + 12 * octave + steps[idx]

    def __str__(self) -> str:
        return f"{NOTE_NAMES[self.tonic]} {self.scale}"
