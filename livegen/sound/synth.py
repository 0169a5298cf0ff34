"""A deterministic polyphonic subtractive synth in numpy: the sound of ``livegen``.

Each voice is two detuned band-limited oscillators (wavetables, one per octave band, so
high notes do not alias), an ADSR amplitude envelope, and a resonant low-pass biquad whose
cutoff the same envelope sweeps (``env_amount`` octaves). Voices are panned and summed,
then a master gain and a peak limiter with a soft clipper keep the output inside ±1.0.

Work is vectorised across voices and samples per block; only the filter runs once per
voice (``scipy.signal.lfilter`` with carried state). Events carry a sample offset into the
next ``render`` call, so notes start and stop on the exact sample. There is no randomness:
the same calls give bit-identical output, live or in ``livegen render``.

This module imports nothing from livegen but ``livegen.log`` (``param_specs`` imports
``ParamSpec`` when called): the audio process must stay free of models and visuals.
"""

from __future__ import annotations

import heapq
import logging
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Iterable, Mapping

import numpy as np
from scipy.signal import lfilter

if TYPE_CHECKING:  # only for annotations: the audio process never imports the store
    from livegen.control.params import ParamSpec

log = logging.getLogger("livegen")

WAVEFORMS = ("saw", "square", "triangle", "sine")

# Live parameters per voice: (min, max, unit, smoothing seconds, doc).
VOICE_PARAMS: dict[str, tuple[float, float, str, float, str]] = {
    "cutoff": (20.0, 20000.0, "Hz", 0.03, "filter cutoff"),
    "resonance": (0.0, 1.0, "", 0.02, "filter resonance (0 = none, 1 = ringing)"),
    "attack": (0.001, 10.0, "s", 0.0, "envelope attack; applies from the next note"),
    "decay": (0.005, 10.0, "s", 0.0, "envelope decay; applies from the next note"),
    "sustain": (0.0, 1.0, "", 0.0, "envelope sustain level; applies from the next note"),
    "release": (0.005, 20.0, "s", 0.0, "envelope release; applies from the next note-off"),
    "gain": (0.0, 1.0, "", 0.02, "voice level"),
    "env_amount": (-4.0, 8.0, "", 0.02, "filter envelope depth in octaves"),
}
MASTER_PARAM = "synth.master"

_MAX_TABLE = 4096  # samples per wavetable cycle at most (sizes are powers of two: index wraps by mask)
_BANDS = 11  # band k holds harmonics 1..2**k
_START_PHASE = 0.25  # deterministic start phase (cycles), non-zero so the onset sample sounds
_KILL_SECONDS = 0.005  # all_notes_off / voice stealing fade
_FREE_LEVEL = 1e-4  # a released voice below this (-80 dB) is finished
_SMOOTH_SECONDS = 0.02  # live parameter smoothing inside the synth
_FILTER_SUB = 64  # filter coefficients are updated at most every this many samples
_FILTER_SPLIT_OCT = 0.05  # ...when the cutoff has moved this many octaves
_LIMIT_THRESHOLD = 0.89  # about -1 dBFS
_LIMIT_RELEASE = 0.15  # seconds
_MAX_BLOCK = 256  # render() works in blocks of at most this many frames


@dataclass(frozen=True)
class VoiceSpec:
    """One synth voice (a preset): oscillators, envelope, filter, level and position."""

    waveform: str = "saw"
    detune: float = 8.0  # cents between the two oscillators
    attack: float = 0.005
    decay: float = 0.3
    sustain: float = 0.7
    release: float = 0.25
    cutoff: float = 2000.0
    resonance: float = 0.2
    env_amount: float = 2.0  # octaves the envelope opens the filter
    gain: float = 0.4
    pan: float = 0.0

    def __post_init__(self) -> None:
        if self.waveform not in WAVEFORMS:
            raise ValueError(f"waveform {self.waveform!r} is not one of {', '.join(WAVEFORMS)}")
        for name, (lo, hi, *_rest) in VOICE_PARAMS.items():
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and lo <= v <= hi):
                raise ValueError(f"voice {name} {v!r} outside {lo:g}..{hi:g}")
        if not -1.0 <= self.pan <= 1.0:
            raise ValueError(f"voice pan {self.pan!r} outside -1..1")
        if not 0.0 <= self.detune <= 100.0:
            raise ValueError(f"voice detune {self.detune!r} outside 0..100 cents")


DEFAULT_VOICES: dict[str, VoiceSpec] = {
    # Bright detuned saw with a quick filter blip: cuts through as the melody.
    "lead": VoiceSpec("saw", detune=9.0, attack=0.004, decay=0.35, sustain=0.65, release=0.25,
                      cutoff=1600.0, resonance=0.35, env_amount=2.2, gain=0.45, pan=0.1),
    # Wide, slow, dark: chords that swell and linger.
    "pad": VoiceSpec("saw", detune=16.0, attack=0.6, decay=1.5, sustain=0.8, release=1.6,
                     cutoff=900.0, resonance=0.12, env_amount=1.0, gain=0.22, pan=-0.25),
    # Square through a closed filter that the envelope snaps open: short and percussive.
    "pluck": VoiceSpec("square", detune=5.0, attack=0.002, decay=0.22, sustain=0.0, release=0.15,
                       cutoff=450.0, resonance=0.3, env_amount=4.0, gain=0.4, pan=0.3),
    # Nearly unison saws, low cutoff, a little punch.
    "bass": VoiceSpec("saw", detune=4.0, attack=0.003, decay=0.4, sustain=0.55, release=0.1,
                      cutoff=320.0, resonance=0.3, env_amount=2.5, gain=0.5, pan=0.0),
    # Soft triangle keys.
    "keys": VoiceSpec("triangle", detune=6.0, attack=0.004, decay=0.9, sustain=0.3, release=0.45,
                      cutoff=3000.0, resonance=0.1, env_amount=1.0, gain=0.45, pan=-0.1),
}


def voices_with(overrides: Mapping[str, Mapping[str, object]]) -> dict[str, VoiceSpec]:
    """The preset voices with some fields replaced, and new voices based on ``lead``."""
    voices = dict(DEFAULT_VOICES)
    for name, fields in overrides.items():
        voices[name] = replace(voices.get(name, DEFAULT_VOICES["lead"]), **fields)
    return voices


def param_names(voice_names: Iterable[str]) -> set[str]:
    """Every parameter name a synth with these voices accepts in ``set_param``."""
    names = {MASTER_PARAM}
    for v in voice_names:
        names.update(f"synth.{v}.{f}" for f in VOICE_PARAMS)
    return names


def _table_size(band: int) -> int:
    """Samples per cycle for a band: 8 per cycle of its top harmonic (so linear interpolation
    is clean), at least 256, at most _MAX_TABLE. Small tables keep the working set small:
    the audio callback runs on cold caches."""
    return int(min(_MAX_TABLE, max(256, 8 * 2 ** band)))


def _harmonics(waveform: str, k: np.ndarray) -> np.ndarray:
    """Fourier sine amplitudes of each waveform at harmonic numbers ``k``."""
    kk = np.maximum(k, 1).astype(np.float64)
    odd = (k % 2 == 1)
    if waveform == "saw":
        amp = 1.0 / kk
    elif waveform == "square":
        amp = np.where(odd, 1.0 / kk, 0.0)
    elif waveform == "triangle":
        amp = np.where(odd, np.where((k // 2) % 2 == 0, 1.0, -1.0) / kk ** 2, 0.0)
    else:
        amp = (k == 1).astype(np.float64)
    return np.where(k > 0, amp, 0.0)


def _build_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Band-limited single-cycle tables, one per (waveform, band), in one flat complex64
    array holding value + 1j * (next value - value): one gather gives both for linear
    interpolation. Returns (flat, offsets[waveform, band], sizes[band])."""
    sizes = np.array([_table_size(b) for b in range(_BANDS)], dtype=np.int64)
    offsets = np.zeros((len(WAVEFORMS), _BANDS), dtype=np.int64)
    chunks: list[np.ndarray] = []
    at = 0
    for w, name in enumerate(WAVEFORMS):
        cycles = []
        for band, n in enumerate(sizes.tolist()):
            k = np.arange(n // 2 + 1)
            amp = np.where((k <= 2 ** band) & (k < n // 2), _harmonics(name, k), 0.0)
            # irfft of -j*a*n/2 at bin k gives sum_k a_k sin(2 pi k i / n).
            cycles.append(np.fft.irfft(-1j * amp * (n / 2), n))
        peak = np.max(np.abs(cycles[-1]))  # one scale per waveform: bands match in level
        for band, cycle in enumerate(cycles):
            cycle = cycle / peak
            offsets[w, band] = at
            chunks.append((cycle + 1j * (np.roll(cycle, -1) - cycle)).astype(np.complex64))
            at += len(cycle)
    return np.concatenate(chunks), offsets, sizes


_TABLES: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    global _TABLES
    if _TABLES is None:
        _TABLES = _build_tables()
    return _TABLES


def _pick_filter():
    """``filter(b, a, x, axis, zi) -> (y, zf)``: ``lfilter``'s own C routine when it matches
    ``lfilter`` exactly (it skips ~5 us of argument checking per call, most of the cost at
    256 samples), else ``lfilter`` itself."""
    try:
        from scipy.signal import _sigtools

        raw = _sigtools._linear_filter
        b, a = np.array([0.2, 0.3, 0.1]), np.array([1.0, -0.6, 0.25])
        x, zi = np.linspace(-1.0, 1.0, 37), np.array([0.1, -0.2])
        y1, z1 = raw(b, a, x, -1, zi)
        y2, z2 = lfilter(b, a, x, zi=zi)
        if np.array_equal(y1, y2) and np.array_equal(z1, z2):
            return raw
    except Exception:  # a private routine may change between scipy releases
        pass

    def public(b: np.ndarray, a: np.ndarray, x: np.ndarray, axis: int, zi: np.ndarray):
        return lfilter(b, a, x, axis=axis, zi=zi)

    return public


_filter = _pick_filter()


def _lowpass(octs: np.ndarray, q: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """RBJ resonant low-pass biquads for cutoffs ``2**octs`` Hz: (b, a), each shape (..., 3)."""
    w0 = (2.0 * math.pi / sr) * np.exp2(octs)
    cw = np.cos(w0)
    alpha = np.sin(w0) / (2.0 * q)
    inv_a0 = 1.0 / (1.0 + alpha)
    b = np.empty(octs.shape + (3,))
    a = np.empty(octs.shape + (3,))
    b[..., 0] = (1.0 - cw) * 0.5 * inv_a0
    b[..., 1] = 2.0 * b[..., 0]
    b[..., 2] = b[..., 0]
    a[..., 0] = 1.0
    a[..., 1] = -2.0 * cw * inv_a0
    a[..., 2] = (1.0 - alpha) * inv_a0
    return b, a


class Synth:
    """Polyphonic subtractive synth; call events with sample offsets, then ``render``.

    ``voices`` are added to (and may replace) ``DEFAULT_VOICES``. Events on the same sample
    apply in call order, so an off-then-on re-triggers and an on-then-off is a zero-length
    note. Envelope times and sustain apply from the next note so a sounding envelope never
    jumps; cutoff, resonance, env_amount, gain and the master level change live, smoothed.
    """

    def __init__(self, sample_rate: int = 48000, voices: Mapping[str, VoiceSpec] | None = None,
                 polyphony: int = 24, master_gain: float = 0.5) -> None:
        if sample_rate <= 0 or polyphony <= 0:
            raise ValueError("sample_rate and polyphony must be positive")
        self.sample_rate = int(sample_rate)
        self.polyphony = int(polyphony)
        self._specs: dict[str, VoiceSpec] = {**DEFAULT_VOICES, **(voices or {})}
        self._names: list[str] = list(self._specs)
        self._type_of = {n: i for i, n in enumerate(self._names)}
        self._fallback = "lead" if "lead" in self._specs else self._names[0]
        self._warned: set[str] = set()
        self._table, self._table_at, self._table_size = _tables()

        # Per voice type: live parameter targets and smoothed current values.
        self._target = {f: np.array([getattr(self._specs[n], f) for n in self._names], dtype=np.float64)
                        for f in ("cutoff", "resonance", "env_amount", "gain")}
        self._current = {f: a.copy() for f, a in self._target.items()}
        angle = (np.array([self._specs[n].pan for n in self._names]) + 1.0) * (math.pi / 4.0)
        # Constant-power pan, 1.0 on each side at the centre: shape (2, voice types).
        self._pan_lr = np.stack((np.cos(angle), np.sin(angle))) * math.sqrt(2.0)
        self._master_target = float(np.clip(master_gain, 0.0, 1.0))
        self._master = self._master_target
        self._settling = False  # some live parameter is still moving toward its target
        self._limit_gain = 1.0

        cap = 2 * self.polyphony  # room for voices fading out after being stolen
        self._active = np.zeros(cap, dtype=bool)
        self._type = np.zeros(cap, dtype=np.int64)
        self._pitch = np.zeros(cap, dtype=np.int64)
        self._chan = np.zeros(cap, dtype=np.int64)
        self._id = np.zeros(cap, dtype=np.int64)  # note-on order, for "oldest"
        self._onset = np.zeros(cap)  # absolute sample of the note-on
        self._release_at = np.full(cap, np.inf)  # absolute sample of the note-off
        self._release_level = np.zeros(cap)
        self._release_tau = np.ones(cap)  # samples
        self._kill_at = np.full(cap, np.inf)  # absolute sample where the fast fade starts
        self._attack = np.ones(cap)  # samples
        self._decay_tau = np.ones(cap)  # samples
        self._sustain = np.zeros(cap)
        self._amp = np.zeros(cap)
        self._vel_oct = np.zeros(cap)  # filter brightness from velocity
        self._base = np.zeros((cap, 2), dtype=np.int64)  # wavetable offsets per oscillator
        self._mask = np.zeros((cap, 2), dtype=np.int64)  # its size - 1
        self._size = np.ones((cap, 2))  # its size
        self._inc = np.zeros((cap, 2))  # table samples per output sample
        self._phase = np.zeros((cap, 2))  # table position at voice time max(block start, 0)
        self._zi = np.zeros((cap, 2))  # filter state

        self._pos = 0  # absolute sample index of the next render call
        self._seq = 0
        self._events: list[tuple[int, int, str, tuple]] = []  # (sample, seq, kind, args)
        self._ramp = np.arange(_MAX_BLOCK, dtype=np.float64)
        self._ramp32 = self._ramp.astype(np.float32)
        self._kill_len = max(1.0, _KILL_SECONDS * self.sample_rate)
        self._nan_warned = False

    # ------------------------------------------------------------------ events
    def _push(self, offset: int, kind: str, args: tuple) -> None:
        self._seq += 1
        heapq.heappush(self._events, (self._pos + max(0, int(offset)), self._seq, kind, args))

    def note_on(self, pitch: int, velocity: int, voice: str = "lead", channel: int = 0, offset: int = 0) -> None:
        """Start a note ``offset`` samples into the next render (velocity 0 = note off)."""
        if velocity <= 0:
            self.note_off(pitch, channel, offset)
            return
        if voice not in self._type_of:
            if voice not in self._warned and len(self._warned) < 64:
                self._warned.add(voice)
                log.warning("synth: unknown voice %r, playing it as %r", voice, self._fallback)
            voice = self._fallback
        self._push(offset, "on", (int(pitch), int(velocity), voice, int(channel)))

    def note_off(self, pitch: int, channel: int = 0, offset: int = 0) -> None:
        """Release every sounding note of this pitch and channel."""
        self._push(offset, "off", (int(pitch), int(channel)))

    def all_notes_off(self, offset: int = 0) -> None:
        """Panic: fade everything sounding to silence in about 5 ms."""
        self._push(offset, "kill", ())

    @property
    def sounding(self) -> list[tuple[int, int]]:
        """(pitch, channel) of each voice holding or releasing a note, oldest first."""
        v = np.nonzero(self._active & np.isinf(self._kill_at))[0]
        v = v[np.argsort(self._id[v], kind="stable")]
        return [(int(self._pitch[i]), int(self._chan[i])) for i in v]

    @property
    def active_voices(self) -> int:
        """Voices holding or releasing a note (not counting ones fading out after a panic or steal)."""
        return int(np.count_nonzero(self._active & np.isinf(self._kill_at)))

    # ------------------------------------------------------------------ parameters
    def set_param(self, name: str, value: float) -> bool:
        """Set ``synth.master`` or ``synth.<voice>.<field>``; False for unknown names or NaN."""
        try:
            value = float(value)
        except (TypeError, ValueError):
            return False
        if math.isnan(value):
            return False
        if name == MASTER_PARAM:
            self._master_target = min(1.0, max(0.0, value))
            self._settling = True
            return True
        parts = name.split(".")
        if len(parts) != 3 or parts[0] != "synth" or parts[1] not in self._type_of or parts[2] not in VOICE_PARAMS:
            return False
        voice, fld = parts[1], parts[2]
        lo, hi = VOICE_PARAMS[fld][:2]
        value = min(hi, max(lo, value))
        self._specs[voice] = replace(self._specs[voice], **{fld: value})
        if fld in self._target:
            self._target[fld][self._type_of[voice]] = value
            self._settling = True
        return True

    def param_specs(self) -> list["ParamSpec"]:
        """The live parameters this synth accepts, for the engine's parameter store."""
        from livegen.control.params import ParamSpec  # not imported in the audio process

        specs = [ParamSpec(MASTER_PARAM, self._master_target, 0.0, 1.0, "", 0.02, doc="synth master level")]
        for voice in self._names:
            spec = self._specs[voice]
            for fld, (lo, hi, unit, smooth, doc) in VOICE_PARAMS.items():
                specs.append(ParamSpec(f"synth.{voice}.{fld}", float(getattr(spec, fld)), lo, hi, unit, smooth,
                                       doc=f"{voice}: {doc}"))
        return specs

    @property
    def voices(self) -> dict[str, VoiceSpec]:
        """The current voice presets (after any ``set_param``)."""
        return dict(self._specs)

    # ------------------------------------------------------------------ applying events
    def _held_level(self, v: int, t: float) -> float:
        """Envelope before release at voice time ``t`` (samples since onset)."""
        if t < 0:
            return 0.0
        a = self._attack[v]
        if t < a:
            return (t + 1.0) / a
        s = self._sustain[v]
        return s + (1.0 - s) * math.exp(-(t - a) / self._decay_tau[v])

    def _apply(self, s: int, seq: int, kind: str, args: tuple) -> None:
        if kind == "on":
            self._start(s, seq, *args)
            return
        live = self._active & np.isinf(self._kill_at) & (self._onset <= s)
        if kind == "off":
            pitch, chan = args
            hit = np.nonzero(live & (self._pitch == pitch) & (self._chan == chan) & np.isinf(self._release_at))[0]
            for v in hit:
                spec = self._specs[self._names[self._type[v]]]
                self._release_level[v] = self._held_level(v, s - self._onset[v])
                self._release_tau[v] = max(1.0, spec.release * self.sample_rate / 6.9)  # -60 dB at `release`
                self._release_at[v] = s
        elif kind == "kill":
            self._kill_at[live] = s

    def _start(self, s: int, seq: int, pitch: int, velocity: int, voice: str, chan: int) -> None:
        alive = self._active & np.isinf(self._kill_at)
        cand = np.nonzero(alive & (self._onset <= s))[0]
        if np.count_nonzero(alive) >= self.polyphony and len(cand):  # steal: oldest released, else oldest
            released = cand[np.isfinite(self._release_at[cand])]
            pool = released if len(released) else cand
            key = self._release_at[pool] if len(released) else self._onset[pool]
            victim = pool[np.lexsort((self._id[pool], key))[0]]
            self._kill_at[victim] = s
        free = np.nonzero(~self._active)[0]
        if len(free):
            v = int(free[0])
        else:  # every slot is fading: reuse the one that started fading first
            v = int(np.lexsort((self._id, self._kill_at))[0])
        spec = self._specs[voice]
        sr = self.sample_rate
        pitch = min(127, max(0, pitch))
        vel = min(127, velocity) / 127.0
        self._active[v] = True
        self._type[v] = self._type_of[voice]
        self._pitch[v] = pitch
        self._chan[v] = chan
        self._id[v] = seq
        self._onset[v] = s
        self._release_at[v] = np.inf
        self._kill_at[v] = np.inf
        self._attack[v] = max(1.0, spec.attack * sr)
        self._decay_tau[v] = max(1.0, spec.decay * sr / 4.6)  # within 1% of sustain after `decay`
        self._sustain[v] = spec.sustain
        self._amp[v] = vel ** 1.5
        self._vel_oct[v] = 0.8 * (vel - 1.0)
        f0 = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
        w = WAVEFORMS.index(spec.waveform)
        for o, cents in enumerate((-spec.detune / 2.0, spec.detune / 2.0)):
            f = f0 * 2.0 ** (cents / 1200.0)
            band = int(min(_BANDS - 1, max(0, math.floor(math.log2(max(1.0, 0.45 * sr / f))))))
            size = int(self._table_size[band])
            self._base[v, o] = self._table_at[w, band]
            self._mask[v, o] = size - 1
            self._size[v, o] = size
            self._inc[v, o] = f / sr * size
            self._phase[v, o] = _START_PHASE * size
        self._zi[v] = 0.0

    # ------------------------------------------------------------------ rendering
    def render(self, frames: int) -> np.ndarray:
        """The next ``frames`` samples, float32 shape (frames, 2), always within ±1.0."""
        frames = int(frames)
        out = np.empty((max(0, frames), 2), dtype=np.float32)
        done = 0
        while done < frames:
            n = min(_MAX_BLOCK, frames - done)
            out[done:done + n] = self._block(n)
            done += n
        return out

    def _smooth(self, n: int) -> np.ndarray:
        """Move live parameters toward their targets; returns the gains before the move."""
        gain_before = self._current["gain"]
        if not self._settling:
            return gain_before
        gain_before = gain_before.copy()
        k = 1.0 - math.exp(-n / (_SMOOTH_SECONDS * self.sample_rate))
        settled = True
        for f, cur in self._current.items():
            tgt = self._target[f]
            cur += (tgt - cur) * k
            close = np.abs(tgt - cur) <= 1e-6 * (1.0 + np.abs(tgt))
            np.copyto(cur, tgt, where=close)
            settled = settled and bool(close.all())
        m = self._master + (self._master_target - self._master) * k
        self._master = self._master_target if abs(self._master_target - m) <= 1e-7 else m
        self._settling = not (settled and self._master == self._master_target)
        return gain_before

    def _block(self, n: int) -> np.ndarray:
        start = self._pos
        end = start + n
        while self._events and self._events[0][0] < end:
            s, seq, kind, args = heapq.heappop(self._events)
            self._apply(s, seq, kind, args)
        master0 = self._master
        gain_before = self._smooth(n)
        self._pos = end
        idx = np.nonzero(self._active)[0]
        if not len(idx) and self._limit_gain == 1.0:
            return np.zeros((n, 2))  # silence: nothing to mix, limit or clip
        ramp01 = self._ramp[:n] / n
        if len(idx):
            mix = self._voices(idx, start, n, ramp01, gain_before)
        else:
            mix = np.zeros((n, 2))
        if master0 != self._master:
            mix *= (master0 + (self._master - master0) * ramp01)[:, None]
        else:
            mix *= self._master
        return self._limit(mix, n, ramp01)

    def _voices(self, idx: np.ndarray, start: int, n: int, ramp01: np.ndarray,
                gain_before: np.ndarray) -> np.ndarray:
        f32 = np.float32
        nv = len(idx)
        sr = self.sample_rate
        ramp = self._ramp32[:n]
        onset = self._onset[idx]
        t0 = start - onset  # voice time (samples since onset) of the block's first sample

        # Envelope: attack ramp, exponential decay to sustain, exponential release. Work
        # only on the rows that need each segment; settled notes are a constant.
        a = self._attack[idx]
        sus = self._sustain[idx]
        dtau = self._decay_tau[idx]
        env = np.empty((nv, n), dtype=f32)
        env[:] = sus.astype(f32)[:, None]
        rows = np.nonzero(t0 - a < 16.0 * dtau)[0]  # decay not yet within 1e-7 of sustain
        if len(rows):
            u = (t0[rows] - a[rows]).astype(f32)[:, None] + ramp
            np.maximum(u, 0.0, out=u)
            u *= (-1.0 / dtau[rows]).astype(f32)[:, None]
            np.exp(u, out=u)
            u *= (1.0 - sus[rows]).astype(f32)[:, None]
            u += sus[rows].astype(f32)[:, None]
            env[rows] = u
        rows = np.nonzero(t0 < a)[0]  # attack (or not yet started) somewhere in this block
        if len(rows):
            tt = t0[rows].astype(f32)[:, None] + ramp
            att = np.maximum((tt + 1.0) * (1.0 / a[rows]).astype(f32)[:, None], 0.0)
            env[rows] = np.where(tt < a[rows].astype(f32)[:, None], att, env[rows])
        rel_t = self._release_at[idx] - onset
        rows = np.nonzero(np.isfinite(rel_t))[0]
        if len(rows):
            w = (t0[rows] - rel_t[rows]).astype(f32)[:, None] + ramp
            r = np.maximum(w, 0.0) * (-1.0 / self._release_tau[idx[rows]]).astype(f32)[:, None]
            np.exp(r, out=r)
            r *= self._release_level[idx[rows]].astype(f32)[:, None]
            env[rows] = np.where(w >= 0.0, r, env[rows])

        # Oscillators: wavetable lookup with linear interpolation, both oscillators at once.
        late = np.maximum(-t0, 0.0)  # samples of this block before the onset
        if late.any():
            adv = np.maximum(ramp - late.astype(f32)[:, None], 0.0)
        else:
            adv = ramp[None, :]
        phase = self._phase[idx]
        inc = self._inc[idx]
        pos = np.multiply(inc.T.astype(f32)[:, :, None], adv)  # (2, nv, n) table position
        pos += phase.T.astype(f32)[:, :, None]
        fl = np.floor(pos)
        pos -= fl  # now the fraction
        i = fl.astype(np.intp)
        i &= self._mask[idx].T[:, :, None]
        i += self._base[idx].T[:, :, None]
        c = self._table.take(i)
        osc = c.imag * pos
        osc += c.real
        osc = osc[0] + osc[1]
        steps = np.maximum(t0 + n, 0.0) - np.maximum(t0, 0.0)  # samples sounded in this block
        self._phase[idx] = (phase + inc * steps[:, None]) % self._size[idx]

        # Filter: resonant low-pass biquad, cutoff swept by the envelope.
        types = self._type[idx]
        q = 0.707 * 2.0 ** (4.0 * self._current["resonance"][types])
        osc *= env
        x = osc.astype(np.float64)
        x *= (self._amp[idx] * np.sqrt(0.707 / q))[:, None]
        # Coefficients come from the envelope at the start of each _FILTER_SUB-sample piece,
        # and change only when the cutoff has moved _FILTER_SPLIT_OCT since they were last
        # set: so they never depend on later samples, and a note-off or note-on at sample k
        # leaves every sample before k unchanged (sample-accurate, causal events).
        nsub = (n + _FILTER_SUB - 1) // _FILTER_SUB
        octs = (np.log2(self._current["cutoff"][types]) + self._vel_oct[idx])[:, None] + \
            self._current["env_amount"][types][:, None] * env[:, ::_FILTER_SUB]
        np.clip(octs, math.log2(20.0), math.log2(0.45 * sr), out=octs)
        held = octs[:, 0].copy()
        for k in range(1, nsub):
            moved = np.abs(octs[:, k] - held) >= _FILTER_SPLIT_OCT
            held[moved] = octs[moved, k]
            octs[:, k] = held
        split = (octs[:, 1:] != octs[:, :1]).any(axis=1).tolist()
        if any(split):  # a moving cutoff: new coefficients every _FILTER_SUB samples
            bs, as_ = _lowpass(octs, q[:, None], sr)
        else:
            bs = as_ = None
        b1, a1 = _lowpass(octs[:, 0], q, sr)
        y = np.empty_like(x)
        zi = self._zi
        filt = _filter
        for j, v in enumerate(idx.tolist()):
            if not split[j]:
                y[j], zi[v] = filt(b1[j], a1[j], x[j], -1, zi[v])
            else:
                z = zi[v]
                bj, aj, xj, yj = bs[j], as_[j], x[j], y[j]
                for k in range(nsub):
                    sl = slice(k * _FILTER_SUB, min(n, (k + 1) * _FILTER_SUB))
                    yj[sl], z = filt(bj[k], aj[k], xj[sl], -1, z)
                zi[v] = z

        # Fast fades (panic, stolen voices) after the filter, so no resonance rings on.
        level_end = env[:, -1].astype(np.float64)
        kill_t = self._kill_at[idx] - onset
        rows = np.nonzero(np.isfinite(kill_t))[0]
        if len(rows):
            w = (t0[rows] - kill_t[rows])[:, None] + self._ramp[:n]
            kg = np.clip(1.0 - w / self._kill_len, 0.0, 1.0)
            y[rows] *= kg
            level_end[rows] *= kg[:, -1]

        # Level and pan.
        g1 = self._current["gain"][types]
        g0 = gain_before[types]
        if np.any(g0 != g1):
            y *= g0[:, None] + (g1 - g0)[:, None] * ramp01
            gains = np.ones(nv)
        else:
            gains = g1
        lr = self._pan_lr[:, types] * gains  # (2, nv)
        mix = (lr @ y).T  # (n, 2)

        # Voices that have finished: past the attack and below -80 dB, or faded out.
        t_end = t0 + (n - 1)
        past_peak = (t_end >= a) | (t_end >= rel_t)
        done = (past_peak & (level_end < _FREE_LEVEL)) | (t_end >= kill_t + self._kill_len)
        if done.any():
            gone = idx[done]
            self._active[gone] = False
            self._zi[gone] = 0.0
        return mix

    def _limit(self, mix: np.ndarray, n: int, ramp01: np.ndarray) -> np.ndarray:
        """Peak limiter (instant attack over the block, slow release) then a soft clipper."""
        if not np.isfinite(mix).all():
            if not self._nan_warned:
                self._nan_warned = True
                log.warning("synth: non-finite samples; filters reset")
            mix = np.nan_to_num(mix, nan=0.0, posinf=0.0, neginf=0.0)
            self._zi[:] = 0.0
        peak = float(np.max(np.abs(mix))) if n else 0.0
        target = 1.0 if peak <= _LIMIT_THRESHOLD else _LIMIT_THRESHOLD / peak
        g0 = self._limit_gain
        if target < g0:
            g1 = target
        else:
            g1 = g0 + (target - g0) * (1.0 - math.exp(-n / (_LIMIT_RELEASE * self.sample_rate)))
            if target - g1 < 1e-6:
                g1 = target
        self._limit_gain = g1
        if g0 != 1.0 or g1 != 1.0:
            mix *= (g0 + (g1 - g0) * ramp01)[:, None]
        k = _LIMIT_THRESHOLD
        mag = np.abs(mix)
        over = mag > k
        if over.any():
            soft = k + (1.0 - k) * np.tanh((mag - k) / (1.0 - k))
            mix = np.where(over, np.copysign(soft, mix), mix)
        return np.clip(mix, -1.0, 1.0)


__all__ = ["DEFAULT_VOICES", "MASTER_PARAM", "VOICE_PARAMS", "WAVEFORMS", "Synth", "VoiceSpec", "param_names"]
