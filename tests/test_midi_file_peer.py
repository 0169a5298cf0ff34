"""performance.mid read by programs that share no code with livegen or mido.

``livegen render`` writes a performance with a tempo change halfway (a script event), so a
reader that ignores the tempo map is caught. FluidSynth and TiMidity++ render it to audio:
not silent, as long as the performance plus the synth's tail, and with an onset at each
note's time (a rough energy-rise detector, the same one that finds the notes in livegen's
own performance.wav). TiMidity's event listing counts the note-ons its own MIDI parser
sees. Each program's test skips when it is not installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import wave
from pathlib import Path

import mido
import numpy as np
import pytest

from livegen.control.script import parse_script
from livegen.patch.loader import parse_patch
from livegen.render import render

SECONDS = 8.0
TEMPO_CHANGE_AT = 4.0  # 120 -> 60 BPM: 16ths every 125 ms, then every 250 ms
TAIL_SECONDS = 4.0     # the synths render their release and reverb after the last event
SOUNDFONTS = ("/usr/share/sounds/sf2/default-GM.sf2", "/usr/share/sounds/sf2/TimGM6mb.sf2",
              "/usr/share/sounds/sf2/FluidR3_GM.sf2")
TIMIDITY_CONFIGS = ("/etc/timidity/freepats.cfg", "/etc/timidity/timgm6mb.cfg", "/etc/timidity/fluidr3_gm.cfg")

PATCH = """
[clock]
bpm = 120
[key]
tonic = "C"
scale = "major"
[[generators]]
name = "arp"
kind = "arpeggiator"
seed = 4
[generators.params]
density = 1.0
rest = 0.0
gate = 0.5
swing = 0.0
[visuals]
enabled = false
"""


class Performance:
    """The rendered files, each note's start and the last event, in seconds."""

    def __init__(self, midi: Path, wav: Path, starts: list[float], end: float) -> None:
        self.midi, self.wav, self.starts, self.end = midi, wav, starts, end


@pytest.fixture(scope="module")
def performance(tmp_path_factory) -> Performance:
    out = tmp_path_factory.mktemp("render")
    events = parse_script(f"{TEMPO_CHANGE_AT} osc /livegen/tempo 60\n")
    res = render(parse_patch(PATCH), SECONDS, 4, out, events, visuals=False, progress=False)
    starts, t = [], 0.0
    for msg in mido.MidiFile(str(res.midi)):  # seconds through the tempo map
        t += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            starts.append(t)
    assert len(starts) > 30 and any(s > TEMPO_CHANGE_AT for s in starts)
    return Performance(res.midi, res.wav, starts, t)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Samples in -1..1 (frames x channels) and the rate."""
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2, "16-bit PCM expected"
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, w.getnchannels())
        return data / 32768.0, w.getframerate()


def onsets(audio: np.ndarray, sr: int, rise: float = 0.35, floor: float = 0.1,
           hop_s: float = 0.005, gap_s: float = 0.06) -> np.ndarray:
    """Times where the level jumps: the log RMS over 5 ms frames rising by more than ``rise``
    (natural log; 0.35 = 42 %) across 10 ms, at a local peak, in a frame louder than
    ``floor`` of the loudest (so reverb and sample-loop flutter in the quiet parts do not
    count), at least 60 ms apart."""
    hop = int(hop_s * sr)
    mono = audio.mean(axis=1)
    frames = mono[: len(mono) // hop * hop].reshape(-1, hop)
    rms = np.sqrt((frames ** 2).mean(axis=1))
    level = np.log(rms + 1e-6)
    flux = np.r_[0.0, 0.0, level[2:] - level[:-2]]
    loud = rms > floor * rms.max()
    found: list[float] = []
    for i in range(1, len(flux) - 1):
        if loud[i] and flux[i] > rise and flux[i] >= flux[i - 1] and flux[i] >= flux[i + 1]:
            t = (i - 2) * hop / sr
            if not found or t - found[-1] > gap_s:
                found.append(t)
    return np.array(found)


def onset_match(found: np.ndarray, starts: list[float], within: float = 0.03) -> tuple[list[float], int]:
    """(the note starts with an onset within ``within`` s, onsets near no note)."""
    notes = np.array(starts)
    hit = [s for s in starts if len(found) and np.abs(found - s).min() < within]
    extra = sum(1 for t in found if np.abs(notes - t).min() >= within)
    return hit, extra


def assert_plays_the_notes(audio: np.ndarray, sr: int, perf: Performance, who: str) -> None:
    """Sound where the notes are, an onset at (nearly) every note, few anywhere else."""
    seconds = len(audio) / sr
    assert perf.end <= seconds <= perf.end + TAIL_SECONDS, f"{who}: {seconds:.2f} s of audio for a {perf.end:.2f} s performance"
    rms = float(np.sqrt(np.mean(audio[: int(perf.end * sr)] ** 2)))
    assert rms > 1e-3, f"{who}: silent (RMS {rms:.2e})"
    hit, extra = onset_match(onsets(audio, sr), perf.starts)
    after = [s for s in perf.starts if s > TEMPO_CHANGE_AT]
    assert len(hit) >= 0.9 * len(perf.starts), f"{who}: onsets at {len(hit)} of {len(perf.starts)} notes"
    assert len([s for s in hit if s > TEMPO_CHANGE_AT]) >= 0.9 * len(after), f"{who}: lost the tempo change"
    assert extra <= 0.15 * len(perf.starts), f"{who}: {extra} onsets where no note starts"


def test_livegens_own_wav_has_the_notes_of_its_midi(performance):
    """The reference for the detector: it finds performance.mid's notes in performance.wav."""
    audio, sr = read_wav(performance.wav)
    assert len(audio) == int(SECONDS * sr)
    hit, extra = onset_match(onsets(audio, sr), performance.starts)
    assert len(hit) >= 0.9 * len(performance.starts) and extra <= 0.15 * len(performance.starts)


def test_fluidsynth_renders_performance_mid(performance, tmp_path):
    if not shutil.which("fluidsynth"):
        pytest.skip("fluidsynth not installed (apt-get install fluidsynth); .ci/run installs it")
    soundfont = next((f for f in SOUNDFONTS if Path(f).exists()), None)
    if soundfont is None:
        pytest.skip("no General MIDI soundfont (apt-get install timgm6mb-soundfont or fluid-soundfont-gm)")
    out = tmp_path / "fluidsynth.wav"
    run = subprocess.run(["fluidsynth", "-ni", "-F", str(out), "-r", "48000", soundfont, str(performance.midi)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    audio, sr = read_wav(out)
    assert sr == 48000
    assert_plays_the_notes(audio, sr, performance, "fluidsynth")


def test_timidity_counts_every_note_and_renders_them(performance, tmp_path):
    if not shutil.which("timidity"):
        pytest.skip("timidity not installed (apt-get install timidity freepats); .ci/run installs it")
    config = next((c for c in TIMIDITY_CONFIGS if Path(c).exists()), None)
    if config is None:
        pytest.skip("no TiMidity++ instrument set (apt-get install freepats)")
    # -Ol: TiMidity's own parser lists the instruments used and how many note-ons each got.
    listing = subprocess.run(["timidity", "-c", config, "-Ol", "-o", "-", str(performance.midi)],
                             capture_output=True, text=True, timeout=120)
    counts = [int(n) for n in re.findall(r"(\d+) times note on", listing.stdout + listing.stderr)]
    assert counts, listing.stdout + listing.stderr
    assert sum(counts) == len(performance.starts)
    out = tmp_path / "timidity.wav"
    run = subprocess.run(["timidity", "-c", config, "-Ow", "-s", "48000", "-o", str(out), str(performance.midi)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and out.exists(), run.stdout + run.stderr
    audio, sr = read_wav(out)
    assert sr == 48000
    assert_plays_the_notes(audio, sr, performance, "timidity")
