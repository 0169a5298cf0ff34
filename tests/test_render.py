"""livegen render: files written, byte-identical for the same patch + seed + events."""

import subprocess
import sys
import wave
from pathlib import Path

import mido
import numpy as np

from livegen.control.script import parse_script
from livegen.patch.loader import load_patch, parse_patch
from livegen.render import render

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "patches" / "default.toml"


def wav_samples(path):
    with wave.open(str(path)) as w:
        assert w.getnchannels() == 2 and w.getframerate() == 48000
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)


def note_ons(path):
    return [m for m in mido.MidiFile(str(path)) if m.type == "note_on" and m.velocity > 0]


def test_same_seed_same_bytes_other_seed_other_music(tmp_path):
    patch = load_patch(DEFAULT)
    a = render(patch, 4.0, 7, tmp_path / "a", visuals=False, progress=False)
    b = render(patch, 4.0, 7, tmp_path / "b", visuals=False, progress=False)
    c = render(patch, 4.0, 8, tmp_path / "c", visuals=False, progress=False)
    assert a.midi.read_bytes() == b.midi.read_bytes()
    assert a.wav.read_bytes() == b.wav.read_bytes()
    assert a.midi.read_bytes() != c.midi.read_bytes()
    samples = wav_samples(a.wav)
    assert len(samples) == 4 * 48000
    assert np.abs(samples).max() > 1000  # it plays, and
    assert np.abs(samples).max() < 32767  # never clips
    ons = note_ons(a.midi)
    assert 10 < len(ons) <= a.notes  # notes scheduled in the look-ahead past the end are not played
    # Each note-on in the file is on the 16th-note grid of the patch's tempo.
    mid = mido.MidiFile(str(a.midi))
    ticks = []
    for track in mid.tracks[1:]:
        t = 0
        for m in track:
            t += m.time
            if m.type == "note_on" and m.velocity > 0:
                ticks.append(t)
    # Swing delays every second 16th (patch: swing 0.1 of a step = 12 ticks); the rest sit on the grid.
    assert all(tk % 120 == 0 or tk % 240 == 132 for tk in ticks)


def test_scripted_events_change_the_performance(tmp_path):
    patch = parse_patch("""
[clock]
bpm = 120
[[generators]]
name = "arp"
kind = "arpeggiator"
seed = 1
[generators.params]
density = 1.0
rest = 0.0
[visuals]
enabled = false
""", "t.toml")
    events = parse_script("""
1.0 osc /livegen/tempo 60
1.0 osc /livegen/param/arp.density 0.0
2.0 midi 90 30 64
2.5 midi 80 30 00
""")
    plain = render(patch, 3.0, 1, tmp_path / "plain", progress=False)
    scripted = render(patch, 3.0, 1, tmp_path / "scripted", events, progress=False)
    tempos = [m.tempo for m in mido.MidiFile(str(scripted.midi)) if m.type == "set_tempo"]
    assert tempos == [mido.bpm2tempo(120), mido.bpm2tempo(60)]
    # density 0 from t=1 s: only notes before (plus the performer's note 48) remain.
    pitches = [m.note for m in note_ons(scripted.midi)]
    assert 48 in pitches
    assert len(pitches) < len(note_ons(plain.midi))
    again = render(patch, 3.0, 1, tmp_path / "again", events, progress=False)
    assert again.wav.read_bytes() == scripted.wav.read_bytes()


def test_visuals_are_written(tmp_path):
    patch = load_patch(DEFAULT)
    res = render(patch, 1.0, 1, tmp_path / "v", progress=False, force_png=True)
    frames = sorted((tmp_path / "v" / "frames").glob("*.png"))
    assert res.frames == len(frames) == patch.visuals.fps
    res = render(patch, 1.0, 1, tmp_path / "m", progress=False)
    assert res.visuals is not None and res.visuals.exists() and res.visuals.stat().st_size > 1000


def test_render_cli_and_bad_input_messages(tmp_path):
    ev = tmp_path / "bad.events"
    ev.write_text("0 osc /livegen/tempo 100\nsoon osc /x 1\n")
    out = subprocess.run([sys.executable, "-m", "livegen", "--log-file", str(tmp_path / "log"), "render",
                          str(DEFAULT), "--seconds", "1", "--events", str(ev), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert f"{ev}:2: time" in out.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[clock]\nbpm = 900\n")
    out = subprocess.run([sys.executable, "-m", "livegen", "--log-file", str(tmp_path / "log"), "render", str(bad)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and f"{bad}:2: clock.bpm" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    out = subprocess.run([sys.executable, "-m", "livegen", "--log-file", str(tmp_path / "log"), "render", str(DEFAULT),
                          "--seconds", "1", "--no-visuals", "--out", str(tmp_path / "ok")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "ok" / "performance.mid").exists() and (tmp_path / "ok" / "performance.wav").exists()
