"""Small melodies written as real MIDI files, for the melody-model tests.

The tunes are random walks on a scale with a few bar rhythms, so a model can learn something
(steps, not leaps; notes on the beat; the key) in seconds.
"""

from __future__ import annotations

import random
from pathlib import Path

import mido

from livegen.music.scales import Key

MAJOR_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")  # as MIDI key signatures spell them
MINOR_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")

RHYTHMS_4 = ([4, 4, 4, 4], [2, 2, 4, 4, 4], [4, 2, 2, 8], [8, 4, 4], [2, 2, 2, 2, 4, 4])
RHYTHMS_3 = ([4, 4, 4], [8, 4], [2, 2, 4, 4], [4, 2, 2, 4])


def tune_notes(rng: random.Random, key: Key, beats_per_bar: int, bars: int = 8) -> list[tuple[int, int, int]]:
    """(start_step, duration_steps, pitch) of a scale walk with bar rhythms; ends on the tonic."""
    scale = key.pitches(55, 84)
    i = min(range(len(scale)), key=lambda j: abs(scale[j] - 67))
    rhythms = RHYTHMS_4 if beats_per_bar == 4 else RHYTHMS_3
    out, step = [], 0
    for bar in range(bars):
        for d in rng.choice(rhythms):
            i = max(0, min(len(scale) - 1, i + rng.choice((-2, -1, -1, 1, 1, 2))))
            out.append((step, d, scale[i]))
            step += d
    last = out[-1]
    tonic = min((p for p in scale if p % 12 == key.tonic), key=lambda p: abs(p - last[2]))
    out[-1] = (last[0], last[1], tonic)
    return out


def write_midi(path: Path, notes: list[tuple[int, int, int]], key: Key | None, beats_per_bar: int = 4,
               tpb: int = 480) -> None:
    mf = mido.MidiFile(ticks_per_beat=tpb)
    tr = mido.MidiTrack()
    mf.tracks.append(tr)
    tr.append(mido.MetaMessage("time_signature", numerator=beats_per_bar, denominator=4, time=0))
    if key is not None:
        minor = key.scale == "minor"
        names = MINOR_NAMES if minor else MAJOR_NAMES
        tr.append(mido.MetaMessage("key_signature", key=names[key.tonic] + ("m" if minor else ""), time=0))
    events = []
    for s, d, p in notes:
        events.append((s * tpb // 4, 1, p))
        events.append(((s + d) * tpb // 4, 0, p))
    events.sort(key=lambda e: (e[0], e[1]))
    now = 0
    for t, on, p in events:
        tr.append(mido.Message("note_on" if on else "note_off", note=p, velocity=90 if on else 0, time=t - now))
        now = t
    mf.save(str(path))


def write_corpus(folder: Path, n: int = 60, seed: int = 0) -> Path:
    """n tunes in a folder (several keys, 4/4 and 3/4, some files without a key signature)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        key = Key(rng.randrange(12), rng.choice(("major", "minor")))
        bpb = rng.choice((4, 4, 3))
        write_midi(folder / f"tune{i:03d}.mid", tune_notes(rng, key, bpb), key if i % 4 else None, bpb)
    return folder
