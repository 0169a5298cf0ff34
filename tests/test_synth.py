"""The numpy synth: sample-accurate events, envelopes, panic, limiter, stealing, determinism."""

from __future__ import annotations

import wave

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livegen.sound.synth import DEFAULT_VOICES, Synth, VoiceSpec
from livegen.sound.wav import write_wav

SR = 48000


def render(synth: Synth, seconds: float, block: int = 256) -> np.ndarray:
    n = int(round(seconds * SR))
    return np.concatenate([synth.render(min(block, n - i)) for i in range(0, n, block)])


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def test_onset_is_sample_accurate():
    s = Synth(SR)
    s.note_on(60, 100, "lead", offset=100)
    out = s.render(512)
    assert out.dtype == np.float32 and out.shape == (512, 2)
    assert not out[:100].any()
    assert np.abs(out[100]).max() > 0  # the very sample of the offset sounds
    assert rms(out[200:]) > 1e-3


def test_offsets_beyond_the_block_carry_into_later_blocks():
    s = Synth(SR)
    s.note_on(60, 100, "pluck", offset=300)
    first = s.render(256)
    second = s.render(256)
    assert not first.any()
    assert not second[:44].any()
    assert np.abs(second[44]).max() > 0


def test_events_are_causal_to_the_sample():
    """A note-off or a second note at sample k leaves every sample before k untouched."""
    def held() -> Synth:
        s = Synth(SR)
        s.note_on(60, 100, "pluck")
        s.note_on(48, 100, "lead")
        render(s, 0.05)
        return s

    plain, off, on = held(), held(), held()
    off.note_off(48, offset=150)
    on.note_on(67, 100, "pluck", offset=150)
    x, y, z = plain.render(512), off.render(512), on.render(512)
    assert np.array_equal(x[:151], y[:151]) and not np.array_equal(x[151:], y[151:])
    assert np.array_equal(x[:150], z[:150]) and not np.array_equal(x[150:], z[150:])


def test_release_decays_to_silence_after_note_off():
    s = Synth(SR)
    s.note_on(64, 110, "lead")
    held = render(s, 0.3)
    s.note_off(64)
    tail = render(s, 0.6)
    release = DEFAULT_VOICES["lead"].release
    assert rms(held[-2400:]) > 0.01
    assert rms(tail[:480]) > 0.3 * rms(held[-480:])  # a release, not a cut
    after = tail[int(1.4 * release * SR):]
    assert np.abs(after).max() < 1e-4
    assert s.active_voices == 0
    assert not render(s, 0.05).any()  # the voice is freed: exact silence


def test_note_off_only_releases_its_pitch_and_channel():
    s = Synth(SR)
    s.note_on(60, 100, "pad", channel=0)
    s.note_on(60, 100, "pad", channel=1)
    s.note_on(67, 100, "pad", channel=0)
    render(s, 0.1)
    s.note_off(60, channel=0)
    render(s, 3.0)
    assert sorted(s.sounding) == [(60, 1), (67, 0)]


def test_all_notes_off_silences_within_10_ms():
    s = Synth(SR)
    for p in (48, 55, 60, 64, 67, 72):
        s.note_on(p, 120, "pad")
    before = render(s, 1.0)
    assert np.abs(before[-4800:]).max() > 0.05
    s.all_notes_off(offset=0)
    out = s.render(480)
    assert np.abs(out[:24]).max() > 0  # a fade, not a click
    assert not out[int(0.0055 * SR):].any()
    assert s.active_voices == 0
    assert not s.render(256).any()


def test_limiter_keeps_64_loud_notes_inside_full_scale():
    s = Synth(SR, polyphony=64, master_gain=1.0)
    for i in range(64):
        s.note_on(24 + i, 127, ("lead", "pad", "bass", "pluck")[i % 4])
    out = render(s, 1.0)
    assert np.isfinite(out).all()
    assert np.abs(out).max() <= 1.0
    assert np.abs(out).max() > 0.5  # loud, limited, not muted


def test_voice_stealing_caps_polyphony_and_takes_released_voices_first():
    s = Synth(SR, polyphony=4)
    for p in (60, 62, 64, 65):
        s.note_on(p, 100, "pad")
    render(s, 0.1)
    s.note_off(62)
    render(s, 0.05)
    s.note_on(67, 100, "pad")
    render(s, 0.05)
    assert s.sounding == [(60, 0), (64, 0), (65, 0), (67, 0)]  # the released 62 was stolen
    for p in range(70, 90):
        s.note_on(p, 100, "pad")
    render(s, 0.05)
    assert s.active_voices == 4
    assert s.sounding == [(86, 0), (87, 0), (88, 0), (89, 0)]  # then the oldest


def test_same_calls_give_identical_output():
    def play() -> np.ndarray:
        s = Synth(SR)
        s.note_on(60, 90, "lead", offset=17)
        s.note_on(36, 120, "bass", offset=301)
        s.set_param("synth.lead.cutoff", 700.0)
        chunks = [s.render(256) for _ in range(40)]
        s.note_off(60, offset=5)
        s.note_on(72, 80, "pluck", channel=3, offset=200)
        chunks += [s.render(128) for _ in range(80)]
        return np.concatenate(chunks)

    a, b = play(), play()
    assert a.any()
    assert np.array_equal(a, b)


def test_lower_cutoff_removes_high_frequencies():
    def high_share(cutoff: float | None) -> float:
        s = Synth(SR)
        s.set_param("synth.lead.env_amount", 0.0)
        if cutoff is not None:
            assert s.set_param("synth.lead.cutoff", cutoff)
        render(s, 0.05)  # let the smoothing settle
        s.note_on(57, 110, "lead")
        x = render(s, 0.5)[:, 0].astype(np.float64)
        spec = np.abs(np.fft.rfft(x)) ** 2
        freqs = np.fft.rfftfreq(len(x), 1 / SR)
        return float(spec[freqs > 2000].sum() / spec.sum())

    bright, dark = high_share(8000.0), high_share(200.0)
    assert bright > 0.01
    assert dark < bright / 20


def test_set_param_rejects_unknown_names_and_master_scales_level():
    s = Synth(SR)
    assert not s.set_param("synth.lead.wobble", 1.0)
    assert not s.set_param("synth.nosuchvoice.cutoff", 1.0)
    assert not s.set_param("tempo", 120.0)
    assert not s.set_param("synth.lead.cutoff", float("nan"))
    loud = Synth(SR)
    quiet = Synth(SR)
    assert quiet.set_param("synth.master", 0.1)
    for x in (loud, quiet):
        x.note_on(60, 100, "keys")
    a, b = render(loud, 0.3), render(quiet, 0.3)
    assert rms(b[-4800:]) < 0.3 * rms(a[-4800:])


def test_param_specs_match_set_param():
    s = Synth(SR)
    specs = s.param_specs()
    names = {p.name for p in specs}
    assert "synth.master" in names and "synth.pad.cutoff" in names and "synth.bass.release" in names
    units = {p.name.rsplit(".", 1)[-1]: p.unit for p in specs}
    assert units["cutoff"] == "Hz" and units["attack"] == "s" and units["sustain"] == ""
    for p in specs:
        assert p.min <= p.default <= p.max
        assert 0.0 <= p.smoothing <= 0.05
        assert s.set_param(p.name, p.max)


def test_unknown_voice_plays_as_lead():
    a, b = Synth(SR), Synth(SR)
    a.note_on(60, 100, "no-such-voice")
    b.note_on(60, 100, "lead")
    x, y = render(a, 0.1), render(b, 0.1)
    assert x.any() and np.array_equal(x, y)


def test_velocity_zero_is_note_off():
    s = Synth(SR)
    s.note_on(60, 100, "pad")
    render(s, 0.1)
    s.note_on(60, 0, "pad")
    render(s, 3.0)
    assert s.active_voices == 0


def test_voices_sound_different_pluck_decays_faster_than_pad():
    def decay_ratio(voice: str) -> float:
        s = Synth(SR)
        s.note_on(60, 100, voice)
        x = render(s, 1.5)
        half = int(0.5 * SR)  # long windows: the detuned oscillators beat
        return rms(x[2 * half:]) / rms(x[:half])

    pluck, pad = decay_ratio("pluck"), decay_ratio("pad")
    assert pluck < 0.01
    assert pad > 0.5


def test_voice_spec_validates():
    with pytest.raises(ValueError):
        VoiceSpec(waveform="noise")
    with pytest.raises(ValueError):
        VoiceSpec(sustain=1.5)
    custom = Synth(SR, voices={"bell": VoiceSpec("sine", detune=0.0, attack=0.001, decay=0.5, sustain=0.0)})
    custom.note_on(72, 100, "bell")
    assert render(custom, 0.1).any()
    assert custom.set_param("synth.bell.cutoff", 5000.0)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["on", "off", "panic", "param"]), st.integers(0, 127),
                          st.integers(0, 127), st.sampled_from(list(DEFAULT_VOICES)), st.integers(0, 700),
                          st.one_of(st.floats(-1e6, 1e6), st.just(float("nan")))), max_size=40))
def test_any_event_sequence_stays_finite_and_in_range(events):
    s = Synth(SR, polyphony=6, master_gain=1.0)
    for kind, pitch, vel, voice, offset, value in events:
        if kind == "on":
            s.note_on(pitch, vel, voice, offset=offset)
        elif kind == "off":
            s.note_off(pitch, offset=offset)
        elif kind == "panic":
            s.all_notes_off(offset)
        else:
            s.set_param(f"synth.{voice}.{['cutoff', 'resonance', 'gain', 'env_amount'][pitch % 4]}", value)
    out = np.concatenate([s.render(256) for _ in range(6)])
    assert np.isfinite(out).all()
    assert np.abs(out).max() <= 1.0
    assert s.active_voices <= 6


def test_write_wav_round_trips(tmp_path):
    t = np.arange(4800) / SR
    x = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), np.full_like(t, 1.7)], axis=1).astype(np.float32)
    path = tmp_path / "out.wav"
    write_wav(path, x, SR)
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (2, 2, SR, 4800)
        pcm = np.frombuffer(w.readframes(4800), dtype="<i2").reshape(-1, 2)
    assert np.abs(pcm[:, 0] / 32767.0 - x[:, 0]).max() <= 1 / 32767
    assert (pcm[:, 1] == 32767).all()  # clipped, not wrapped
    first = path.read_bytes()
    write_wav(path, x, SR)  # overwrite: same bytes, and no temp file left behind
    assert path.read_bytes() == first
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]
