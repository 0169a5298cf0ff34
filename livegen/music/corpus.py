"""Melodies to learn from: the music21 corpus and the performer's own files.

The music21 wheel ships a corpus of real tunes: Essen folksongs, O'Neill's Music of Ireland
(1850), Ryan's Mammoth Collection, Aird's Airs, and the Bach chorales (their soprano line).
Users add folders of MIDI, ABC or MusicXML. Every tune becomes a ``Melody`` on the 16th grid
(see ``encoding``) or a skip with a reason; the split into train/valid/test is by tune name,
so it is the same on every machine and a tune never leaks across splits.

Parsing all five collections takes minutes (music21's parser), so the result is cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from livegen.music.encoding import STEPS_PER_BEAT, Melody, encode_events, fold_into_range, mode_index
from livegen.music.keyfinding import estimate_key, relative_keys

log = logging.getLogger("livegen.corpus")

COLLECTIONS = {  # name -> folder inside music21's corpus (bach is listed through its chorale iterator)
    "essen": "essenFolksong",
    "oneills": "oneills1850",
    "ryans": "ryansMammoth",
    "aird": "airdsAirs",
    "bach": "bach",
}
MIDI_SUFFIXES = {".mid", ".midi"}
SCORE_SUFFIXES = {".abc", ".xml", ".musicxml", ".mxl", ".krn"}
MIN_NOTES = 8
MAX_OFF_GRID = 0.2  # skip a tune when more of its onsets than this are off the 16th grid
CACHE_VERSION = 1
SPLITS = ("train", "valid", "test")


def split_of(name: str) -> str:
    """Deterministic split by tune name: 80% train, 10% valid, 10% test."""
    h = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) % 100
    return "train" if h < 80 else ("valid" if h < 90 else "test")


@dataclass
class LoadReport:
    """What was loaded and what was skipped, and why."""

    tunes: int = 0
    notes: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    examples: dict = field(default_factory=dict)  # reason -> one tune name

    def skip(self, name: str, reason: str) -> None:
        self.skipped[reason] += 1
        self.examples.setdefault(reason, name)

    def add(self, m: Melody) -> None:
        self.tunes += 1
        self.notes += m.notes

    def merge(self, other: "LoadReport") -> None:
        self.tunes += other.tunes
        self.notes += other.notes
        self.skipped.update(other.skipped)
        for k, v in other.examples.items():
            self.examples.setdefault(k, v)

    def as_dict(self) -> dict:
        return {"tunes": self.tunes, "notes": self.notes, "skipped": dict(self.skipped),
                "skipped_examples": dict(self.examples)}


# ---------------------------------------------------------------------------- events -> Melody
def melody_from_notes(name: str, collection: str, notes: list[tuple[float, float, int]], *,
                      bar_beats: float, pickup_beats: float = 0.0, key: tuple[int, int] | None = None,
                      sharps: int | None = None, source: str = "",
                      measures: list[tuple[float, float, float]] | None = None) -> Melody | str:
    """Notes as (onset, duration, pitch) in beats -> a Melody, or the reason it is skipped.

    ``measures`` (start, length, pickup) in beats gives bar positions when the metre changes;
    otherwise bars of ``bar_beats`` start ``pickup_beats`` before the first beat.
    """
    notes = sorted((float(o), float(d), int(p)) for o, d, p in notes if d > 0)
    if len(notes) < MIN_NOTES:
        return f"fewer than {MIN_NOTES} notes"
    off_grid = sum(1 for o, _, _ in notes if abs(o * STEPS_PER_BEAT - round(o * STEPS_PER_BEAT)) > 0.02)
    if off_grid > MAX_OFF_GRID * len(notes):
        return "rhythm finer than the 16th grid (triplets or free time)"
    # Monophonic line: notes sharing a start keep the highest (the skyline).
    events: list[list[int]] = []
    for o, d, p in notes:
        s = round(o * STEPS_PER_BEAT)
        e = max(s + 1, round((o + d) * STEPS_PER_BEAT))
        if events and events[-1][0] == s:
            if p > events[-1][2]:
                events[-1] = [s, e - s, p]
            continue
        if events and events[-1][0] + events[-1][1] > s:
            events[-1][1] = s - events[-1][0]  # overlap: the new note cuts the old one short
        events.append([s, e - s, p])
    first = events[0][0]
    pitches = fold_into_range([p for _, _, p in events])
    if pitches is None:
        return "pitch span wider than the model's range"
    if key is None:
        allowed = relative_keys(sharps) if sharps is not None else None
        est = estimate_key([p for _, _, p in events], [d for _, d, _ in events], allowed)
        if est is None:
            return "no pitched notes"
        key = (est.tonic, 0 if est.mode == "major" else 1)
    length = events[-1][0] + events[-1][1] - first
    tokens = encode_events([(s - first, d, p) for (s, d, _), p in zip(events, pitches)], length)
    bar_steps = max(1, round(bar_beats * STEPS_PER_BEAT))
    positions = np.empty(length, np.int64)
    if measures:
        positions[:] = -1
        for m_start, m_len, m_pad in measures:
            a = round(m_start * STEPS_PER_BEAT) - first
            n = round(m_len * STEPS_PER_BEAT)
            pad = round(m_pad * STEPS_PER_BEAT)
            lo, hi = max(0, a), min(length, a + n)
            if hi > lo:
                positions[lo:hi] = np.arange(lo - a, hi - a) + pad
        missing = positions < 0
        if missing.any():
            idx = np.nonzero(missing)[0]
            positions[idx] = (round(pickup_beats * STEPS_PER_BEAT) + idx + first) % bar_steps
    else:
        pad = round(pickup_beats * STEPS_PER_BEAT)
        positions[:] = (pad + first + np.arange(length)) % bar_steps
    positions = np.clip(positions, 0, 255).astype(np.uint8)
    return Melody(name, collection, tokens, positions, key[0] % 12, key[1], bar_steps, source)


# ---------------------------------------------------------------------------- readers
def _read_midi(path: Path, name: str, collection: str) -> list[Melody | tuple[str, str]]:
    import mido

    try:
        mf = mido.MidiFile(str(path))
    except Exception as exc:  # noqa: BLE001 - any malformed file is a skip, not a crash
        return [(name, f"unreadable MIDI file ({type(exc).__name__})")]
    tpb = mf.ticks_per_beat or 480
    bar_beats, sharps_key = None, None
    tracks: dict[tuple[int, int], list[tuple[float, float, int]]] = {}
    for ti, track in enumerate(mf.tracks):
        tick = 0
        on: dict[tuple[int, int], tuple[int, int]] = {}
        for msg in track:
            tick += msg.time
            if msg.type == "time_signature" and bar_beats is None:
                bar_beats = msg.numerator * 4.0 / msg.denominator
            elif msg.type == "key_signature" and sharps_key is None:
                sharps_key = msg.key
            elif msg.type == "note_on" and msg.velocity > 0:
                if msg.channel == 9:
                    continue  # drums
                on[(msg.channel, msg.note)] = (tick, msg.velocity)
            elif msg.type in ("note_off", "note_on"):
                start = on.pop((msg.channel, msg.note), None)
                if start is not None:
                    tracks.setdefault((ti, msg.channel), []).append(
                        (start[0] / tpb, (tick - start[0]) / tpb, msg.note))
    if not tracks:
        return [(name, "no notes")]
    notes = max(tracks.values(), key=len)  # the busiest track/channel carries the tune
    key = _midi_key(sharps_key)
    m = melody_from_notes(name, collection, notes, bar_beats=bar_beats or 4.0, key=key, source=str(path))
    return [m if isinstance(m, Melody) else (name, m)]


def _midi_key(name: str | None) -> tuple[int, int] | None:
    if not name:
        return None
    from livegen.music.scales import parse_tonic

    minor = name.endswith("m")
    try:
        return parse_tonic(name[:-1] if minor else name), 1 if minor else 0
    except ValueError:
        return None


def _read_score_file(path: Path, name: str, collection: str) -> list[Melody | tuple[str, str]]:
    from music21 import converter, stream

    try:
        parsed = converter.parse(str(path))
    except Exception as exc:  # noqa: BLE001
        return [(name, f"unreadable score ({type(exc).__name__})")]
    scores = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
    out: list[Melody | tuple[str, str]] = []
    for i, sc in enumerate(scores):
        tune = f"{name}#{i}" if len(scores) > 1 else name
        try:
            m = melody_from_score(sc, tune, collection, str(path))
        except Exception as exc:  # noqa: BLE001 - music21 trips on odd files; skip them
            m = f"could not read the tune ({type(exc).__name__})"
        out.append(m if isinstance(m, Melody) else (tune, m))
    return out


def melody_from_score(score, name: str, collection: str, source: str = "") -> Melody | str:
    """The first part of a music21 score (the soprano of a chorale) -> Melody or skip reason."""
    from music21 import key as m21key
    from music21 import meter

    parts = list(getattr(score, "parts", []))
    part = parts[0] if parts else score
    part = part.stripTies()
    tss = list(part.recurse().getElementsByClass(meter.TimeSignature))
    bar_beats = float(tss[0].barDuration.quarterLength) if tss else 4.0
    measures = []
    ts_now = bar_beats
    for j, m in enumerate(part.getElementsByClass("Measure")):
        if m.timeSignature is not None:
            ts_now = float(m.timeSignature.barDuration.quarterLength)
        length = float(m.duration.quarterLength)
        pad = float(m.paddingLeft or 0.0)
        if j == 0 and pad == 0.0 and 0 < length < ts_now:
            pad = ts_now - length  # an anacrusis music21 did not pad
        measures.append((float(m.offset), length, pad))
    notes = []
    flat = part.flatten()
    for n in flat.notes:
        d = float(n.duration.quarterLength)
        if d <= 0:
            continue  # grace notes
        if n.isChord:
            p = max(x.midi for x in n.pitches)
        else:
            p = n.pitch.midi
        notes.append((float(n.offset), d, int(p)))
    key = None
    sharps = None
    for k in part.recurse().getElementsByClass(m21key.KeySignature):
        if isinstance(k, m21key.Key) and k.mode != "major":
            key = (k.tonic.pitchClass, mode_index(k.mode))  # a named minor or mode ("K:Ador") is meant
        else:
            # A bare "K:G" (ABC's default is major) or a signature: which of the relative
            # major/minor pair the notes fit best (many Essen tunes in minor are written "K:G").
            sharps = int(k.sharps)
        break
    return melody_from_notes(name, collection, notes, bar_beats=bar_beats, key=key, sharps=sharps,
                             source=source, measures=measures or None)


def read_file(path: Path, collection: str, name: str | None = None) -> list[Melody | tuple[str, str]]:
    """Melodies in one file, or (tune name, skip reason) pairs."""
    name = name or f"{collection}/{path.name}"
    suffix = path.suffix.lower()
    if suffix in MIDI_SUFFIXES:
        return _read_midi(path, name, collection)
    if suffix in SCORE_SUFFIXES:
        return _read_score_file(path, name, collection)
    return [(name, f"not a MIDI, ABC or MusicXML file ({suffix or 'no suffix'})")]


def _read_job(job: tuple[str, str, str]) -> list[Melody | tuple[str, str]]:
    path, collection, name = job
    return read_file(Path(path), collection, name)


# ---------------------------------------------------------------------------- sources
def corpus_files(collection: str) -> list[tuple[str, str, str]]:
    """(path, collection, name) jobs for a music21 corpus collection."""
    from music21 import corpus

    if collection not in COLLECTIONS:
        raise ValueError(f"unknown collection {collection!r} (known: {', '.join(COLLECTIONS)})")
    if collection == "bach":
        from music21.corpus import chorales

        jobs = []
        for work in chorales.Iterator(returnType="filename"):
            p = corpus.getWork(work)
            if isinstance(p, list):
                p = p[0]
            jobs.append((str(p), collection, f"bach/{Path(str(p)).name}"))
        return sorted(set(jobs))
    folder = f"/{COLLECTIONS[collection]}/"
    return sorted((str(p), collection, f"{collection}/{Path(p).name}") for p in corpus.getPaths()
                  if folder in str(p))


def folder_files(root: Path) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    """Jobs for every music file under a file or folder; other files are skips."""
    root = Path(root)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    collection = root.stem if root.is_file() else root.name
    jobs, skips = [], []
    for p in files:
        rel = p.name if root.is_file() else p.relative_to(root).as_posix()
        name = f"{collection}/{rel}"
        if p.suffix.lower() in MIDI_SUFFIXES | SCORE_SUFFIXES:
            jobs.append((str(p), collection, name))
        else:
            skips.append((name, f"not a MIDI, ABC or MusicXML file ({p.suffix or 'no suffix'})"))
    if not files:
        skips.append((str(root), "no such file or folder" if not root.exists() else "empty folder"))
    return jobs, skips


def load_jobs(jobs: list[tuple[str, str, str]], workers: int | None = None,
              progress: bool = False, desc: str = "parsing") -> tuple[list[Melody], LoadReport]:
    """Parse files (in parallel processes when there are many), keeping input order."""
    report = LoadReport()
    melodies: list[Melody] = []
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc=desc, unit="file")
    slow = sum(1 for j in jobs if Path(j[0]).suffix.lower() in SCORE_SUFFIXES)  # music21 parses; mido is fast
    if workers > 1 and slow >= 8:
        ctx = multiprocessing.get_context("spawn")
        # The biggest files (opus collections of hundreds of tunes) first, for balance.
        order = sorted(range(len(jobs)), key=lambda i: -os.path.getsize(jobs[i][0]))
        with ctx.Pool(workers) as pool:
            results: dict[int, list] = {}
            for i, res in zip(order, pool.imap(_read_job, [jobs[i] for i in order])):
                results[i] = res
                if bar:
                    bar.update(1)
        ordered = [results[i] for i in range(len(jobs))]
    else:
        ordered = []
        for job in jobs:
            ordered.append(_read_job(job))
            if bar:
                bar.update(1)
    if bar:
        bar.close()
    for res in ordered:
        for item in res:
            if isinstance(item, Melody):
                melodies.append(item)
                report.add(item)
            else:
                report.skip(*item)
    return melodies, report


def load_paths(paths: Iterable[Path], workers: int | None = None,
               progress: bool = False) -> tuple[list[Melody], LoadReport]:
    """Melodies from user files and folders (MIDI, ABC, MusicXML)."""
    jobs: list[tuple[str, str, str]] = []
    pre = LoadReport()
    for p in paths:
        j, s = folder_files(Path(p))
        jobs += j
        for name, reason in s:
            pre.skip(name, reason)
    melodies, report = load_jobs(jobs, workers, progress)
    report.merge(pre)
    return melodies, report


# ---------------------------------------------------------------------------- cache
def cache_dir() -> Path:
    base = os.environ.get("LIVEGEN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "livegen")
    return Path(base) / "melody"


def save_melodies(path: Path, melodies: list[Melody], report: LoadReport | None = None) -> None:
    """npz without pickles: concatenated tokens/positions plus a JSON table of tunes."""
    from livegen.atomic import atomic_write

    lengths = np.array([len(m.tokens) for m in melodies], np.int64)
    table = [{"name": m.name, "collection": m.collection, "tonic": m.tonic, "mode": m.mode,
              "bar_steps": m.bar_steps, "source": m.source} for m in melodies]
    import io

    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        tokens=np.concatenate([m.tokens for m in melodies]) if melodies else np.zeros(0, np.uint8),
        positions=np.concatenate([m.positions for m in melodies]) if melodies else np.zeros(0, np.uint8),
        lengths=lengths,
        table=np.array(json.dumps({"version": CACHE_VERSION, "tunes": table,
                                   "report": report.as_dict() if report else None})),
    )
    with atomic_write(Path(path)) as f:
        f.write(buf.getvalue())


def load_melodies(path: Path) -> tuple[list[Melody], dict | None]:
    with np.load(Path(path), allow_pickle=False) as z:
        meta = json.loads(str(z["table"]))
        if meta.get("version") != CACHE_VERSION:
            raise ValueError(f"{path}: melody cache version {meta.get('version')} (expected {CACHE_VERSION})")
        tokens, positions, lengths = z["tokens"], z["positions"], z["lengths"]
    out = []
    o = 0
    for row, n in zip(meta["tunes"], lengths):
        out.append(Melody(row["name"], row["collection"], tokens[o:o + n].copy(), positions[o:o + n].copy(),
                          row["tonic"], row["mode"], row["bar_steps"], row.get("source", "")))
        o += n
    return out, meta.get("report")


def load_collections(names: Iterable[str], workers: int | None = None, progress: bool = True,
                     refresh: bool = False) -> tuple[list[Melody], dict[str, LoadReport]]:
    """Melodies of music21 corpus collections, parsed once and cached per collection."""
    import music21

    melodies: list[Melody] = []
    reports: dict[str, LoadReport] = {}
    for name in names:
        path = cache_dir() / f"{name}-v{CACHE_VERSION}-m21-{music21.__version__}.npz"
        if path.exists() and not refresh:
            try:
                ms, rep = load_melodies(path)
                r = LoadReport(len(ms), sum(m.notes for m in ms), Counter((rep or {}).get("skipped", {})),
                               dict((rep or {}).get("skipped_examples", {})))
                melodies += ms
                reports[name] = r
                continue
            except Exception as exc:  # noqa: BLE001 - a bad cache is re-made, not fatal
                log.warning("melody cache %s unreadable (%s); parsing again", path, exc)
        ms, r = load_jobs(corpus_files(name), workers, progress, desc=f"parsing {name}")
        path.parent.mkdir(parents=True, exist_ok=True)
        save_melodies(path, ms, r)
        melodies += ms
        reports[name] = r
    return melodies, reports


def manifest(melodies: list[Melody]) -> dict:
    """The split, tune by tune: what was trained, validated and tested on."""
    tunes = [{"name": m.name, "collection": m.collection, "split": split_of(m.name), "source": m.source,
              "steps": int(len(m.tokens)), "notes": m.notes, "tonic": m.tonic, "mode": m.mode,
              "bar_steps": m.bar_steps} for m in melodies]
    counts: dict = {}
    for t in tunes:
        c = counts.setdefault(t["collection"], {s: 0 for s in SPLITS})
        c[t["split"]] += 1
    return {"split_rule": "sha1(tune name) mod 100: <80 train, <90 valid, else test",
            "counts": counts, "tunes": tunes}


def by_split(melodies: list[Melody]) -> dict[str, list[Melody]]:
    out: dict[str, list[Melody]] = {s: [] for s in SPLITS}
    for m in melodies:
        out[split_of(m.name)].append(m)
    return out

