"""Music-reactive scenes: frame generators driven by the performance's events.

A scene hears the same events as every other output (notes, beats) through ``on_event``
and draws a frame for a moment ``t`` on the engine's clock with ``render``. Frames are
numpy ``uint8`` arrays of shape ``(height, width, 3)`` so that later stages (the style
network, the window, the video writer) can take them without conversion.

Scenes are deterministic: the output depends only on (width, height, seed), the events
received and the ``t`` values rendered, never on the wall clock or a global RNG, so
``livegen render`` gives the same video for the same patch and seed. Everything is
vectorised numpy in float32; a 320x240 frame takes a few milliseconds.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from typing import Mapping, Protocol, runtime_checkable

import numpy as np

from livegen.control.params import ParamSpec
from livegen.events import AllNotesOff, Beat, NoteOff, NoteOn, OutEvent

# Parameters shared by every scene (same name, same meaning).
BRIGHTNESS = ParamSpec("visuals.brightness", 0.9, 0.0, 1.0, smoothing=0.1,
                       doc="overall brightness; 0 is black")
DECAY = ParamSpec("visuals.decay", 0.6, 0.0, 1.0, smoothing=0.1,
                  doc="trail persistence: 0 = no trails, 1 = long trails (half-life 0.02..4 s)")
HUE = ParamSpec("visuals.hue", 0.0, 0.0, 1.0, smoothing=0.2,
                doc="rotates every colour round the colour wheel")
ZOOM = ParamSpec("visuals.zoom", 0.25, -1.0, 1.0, smoothing=0.2,
                 doc="feedback zoom speed (log scale per second); negative zooms out")

LOW_PITCH, HIGH_PITCH = 21, 108  # piano range maps onto the width of the frame


@runtime_checkable
class Scene(Protocol):
    """A music-reactive frame generator (see the module docstring)."""

    name: str
    width: int
    height: int

    def param_specs(self) -> list[ParamSpec]: ...

    def on_event(self, event: OutEvent) -> None: ...

    def render(self, t: float, params: Mapping[str, float]) -> np.ndarray: ...


def pitch_to_x(pitch: int, width: int, margin: float = 0.06) -> float:
    """Horizontal position of a pitch: low notes on the left, high on the right."""
    u = (min(HIGH_PITCH, max(LOW_PITCH, pitch)) - LOW_PITCH) / (HIGH_PITCH - LOW_PITCH)
    return (margin + (1.0 - 2.0 * margin) * u) * (width - 1)


def pitch_color(pitch: int, hue_shift: float, saturation: float = 0.85) -> np.ndarray:
    """RGB (float32, 0..1) for a pitch: hue by pitch class, so octaves share a colour."""
    # 7 semitones apart (a fifth) -> neighbouring hues: the circle of fifths round the wheel.
    h = ((pitch % 12) * 7 % 12) / 12.0 + hue_shift
    return np.array(colorsys.hsv_to_rgb(h % 1.0, saturation, 1.0), dtype=np.float32)


def decay_half_life(decay: float) -> float:
    """Trail half-life in seconds for the 0..1 ``visuals.decay`` parameter."""
    return 0.02 * 200.0 ** min(1.0, max(0.0, decay))


def _fade(dt: float, decay: float) -> float:
    return 0.5 ** (dt / decay_half_life(decay)) if dt > 0 else 1.0


def _to_uint8(planes: np.ndarray, brightness: float, scratch: np.ndarray) -> np.ndarray:
    """Planar float (3, h, w) in 0..1 -> interleaved uint8 (h, w, 3), the frame format.

    Scenes work on planes because numpy is several times faster on (h, w) arrays than on
    a trailing axis of 3; the interleave costs a fraction of a millisecond.
    """
    out = np.empty((planes.shape[1], planes.shape[2], 3), np.uint8)
    gain = np.float32(255.0 * brightness)
    for c in range(3):
        np.multiply(planes[c], gain, out=scratch)
        np.clip(scratch, 0.0, 255.0, out=scratch)
        out[..., c] = scratch
    return out


@dataclass
class _Voice:
    """A sounding note, drawn as a glow until released; then it fades."""

    pitch: int
    velocity: float
    x: float
    y: float
    t_on: float
    t_off: float = math.inf


class _SceneBase:
    """Shared bookkeeping: parameters, held voices, recent beats."""

    name = "base"
    RELEASE = 0.35  # seconds for a released note's glow to fade to ~1/e
    MAX_VOICES = 128

    def __init__(self, width: int, height: int, seed: int = 0) -> None:
        if width < 2 or height < 2:
            raise ValueError(f"scene size {width}x{height} is too small")
        self.width = int(width)
        self.height = int(height)
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._voices: dict[tuple[int, str, int], _Voice] = {}
        self._released: list[_Voice] = []
        self._beats: list[Beat] = []
        self._defaults = {s.name: s for s in self.param_specs()}

    def param_specs(self) -> list[ParamSpec]:
        return [BRIGHTNESS, DECAY, HUE]

    def _param(self, params: Mapping[str, float], name: str) -> float:
        spec = self._defaults[name]
        try:
            return spec.clamp(float(params.get(name, spec.default)))
        except (TypeError, ValueError):
            return spec.default

    # -- events ----------------------------------------------------------------------
    def on_event(self, event: OutEvent) -> None:
        """Take one engine event; unknown kinds (clock ticks, transport) are ignored."""
        if isinstance(event, NoteOn):
            if event.velocity <= 0:  # MIDI convention: NoteOn with velocity 0 is a NoteOff
                self._note_off(event.time, event.pitch, event.channel, event.voice)
            else:
                self._note_on(event)
        elif isinstance(event, NoteOff):
            self._note_off(event.time, event.pitch, event.channel, event.voice)
        elif isinstance(event, Beat):
            self._beats.append(event)
            del self._beats[:-4]
            self._beat(event)
        elif isinstance(event, AllNotesOff):
            for key in list(self._voices):
                self._note_off(event.time, key[0], key[2], key[1])

    def _note_on(self, ev: NoteOn) -> None:
        key = (ev.pitch, ev.voice, ev.channel)
        old = self._voices.pop(key, None)
        if old is not None:
            old.t_off = ev.time
            self._released.append(old)
        vel = ev.velocity / 127.0
        y = (0.25 + 0.5 * float(self._rng.random())) * (self.height - 1)
        voice = _Voice(ev.pitch, vel, pitch_to_x(ev.pitch, self.width), y, ev.time)
        self._voices[key] = voice
        if len(self._voices) > self.MAX_VOICES:  # stuck notes must not pile up forever
            oldest = next(iter(self._voices))
            self._note_off(ev.time, oldest[0], oldest[2], oldest[1])
        self._spawn(voice)

    def _note_off(self, time: float, pitch: int, channel: int, voice: str) -> None:
        v = self._voices.pop((pitch, voice, channel), None)
        if v is not None:
            v.t_off = max(time, v.t_on)
            self._released.append(v)
            del self._released[:-4 * self.MAX_VOICES]

    def _spawn(self, voice: _Voice) -> None:
        """Scene-specific reaction to a new note."""

    def _beat(self, beat: Beat) -> None:
        """Scene-specific reaction to a beat."""

    def _voice_level(self, v: _Voice, t: float) -> float:
        """Glow level of a voice at ``t``: velocity while held, fading after release."""
        if t < v.t_on:
            return 0.0
        if t < v.t_off:
            return v.velocity
        return v.velocity * math.exp(-(t - v.t_off) / self.RELEASE)

    def _live_voices(self, t: float) -> list[_Voice]:
        self._released = [v for v in self._released if t - v.t_off < 4 * self.RELEASE or t < v.t_off]
        return [*self._voices.values(), *self._released]

    def _pulse(self, t: float, tau: float = 0.15) -> float:
        """Beat pulse at ``t``: a jump on each beat, about twice as strong on a downbeat."""
        p = 0.0
        for b in self._beats:
            age = t - b.time
            if age >= 0:
                p += (1.0 if b.beat_in_bar == 0 else 0.45) * math.exp(-age / tau)
        return p

    @staticmethod
    def _glows(img: np.ndarray, xs: list[float], ys: list[float], radii: list[float],
               colors: list[np.ndarray]) -> None:
        """Add gaussian blobs to planar ``img`` (3, h, w), all at once.

        A sum of separable blobs is a low-rank product: per channel,
        ``(h x n profiles, scaled by colour) @ (n x w profiles)``: one small product per
        channel (~0.2 ms for 50 notes at 160x120), where drawing blobs one by one costs
        ~50 us of Python each.
        """
        if not xs:
            return
        h, w = img.shape[1], img.shape[2]
        r = np.maximum(np.asarray(radii, np.float32), np.float32(0.7))
        inv = np.float32(-0.5) / (r * r)
        dy = np.arange(h, dtype=np.float32)[:, None] - np.asarray(ys, np.float32)[None, :]
        dx = np.arange(w, dtype=np.float32)[:, None] - np.asarray(xs, np.float32)[None, :]
        gy = np.exp(dy * dy * inv)  # (h, n)
        gx_t = np.exp(dx * dx * inv).T  # (n, w)
        col = np.asarray(colors, np.float32).reshape(-1, 3)
        for c in range(3):
            if col[:, c].any():
                # einsum, not @: it stays on this thread (BLAS would wake its thread pool,
                # which stalls on a busy machine) and is as fast at these sizes
                img[c] += np.einsum("hn,nw->hw", gy * col[:, c], gx_t)


class RippleField(_SceneBase):
    """Expanding coloured rings and sparks per note over a fading, beat-pulsed background.

    Each note sends a ring out from its place (x by pitch, colour by pitch class, size and
    brightness by velocity), throws sparks that leave trails, and glows while held.
    Rings and sparks are drawn by splatting points (cost grows with a ring's
    circumference, not its area); rings are splatted at half resolution, which softens
    them and keeps a dozen large rings under a millisecond.
    """

    name = "ripples"
    RING_LIFE = 1.6  # seconds
    MAX_RINGS = 16
    SPARKS = 24  # per note at full velocity
    MAX_SPARKS = 2048
    SPARK_LIFE = 1.2
    SPEED = ParamSpec("visuals.ripple_speed", 0.5, 0.05, 2.0, smoothing=0.1,
                      doc="ring expansion speed, in frame widths per second")

    def __init__(self, width: int, height: int, seed: int = 0) -> None:
        super().__init__(width, height, seed)
        self._rings: list[tuple[float, float, float, float, int]] = []  # x, y, t0, amp, pitch
        n = self.MAX_SPARKS
        self._sp_pos = np.zeros((n, 2), np.float32)
        self._sp_vel = np.zeros((n, 2), np.float32)
        self._sp_t0 = np.full(n, -np.inf, np.float64)
        self._sp_amp = np.zeros(n, np.float32)
        self._sp_pitch = np.zeros(n, np.int16)
        self._sp_next = 0
        self._trail = np.zeros((3, height, width), np.float32)
        self._scratch = np.empty((height, width), np.float32)
        self._half_img = np.zeros((3, (height + 1) // 2, (width + 1) // 2), np.float32)
        self._img = np.empty((3, height, width), np.float32)
        self._last_t: float | None = None
        yy = np.linspace(0.0, 1.0, height, dtype=np.float32)
        self._bg_shape = (0.35 + 0.65 * (1.0 - yy) ** 2)[:, None]  # a vertical wash
        self._palette_hue: float | None = None
        self._palette_table = np.zeros((128, 3), np.float32)

    def param_specs(self) -> list[ParamSpec]:
        return [BRIGHTNESS, DECAY, HUE, self.SPEED]

    def _palette(self, hue: float) -> np.ndarray:
        """Colours of all 128 pitches for this hue shift (cached: hue rarely moves)."""
        if self._palette_hue != hue:
            self._palette_table = np.stack([pitch_color(p, hue) for p in range(128)])
            self._palette_hue = hue
        return self._palette_table

    def _spawn(self, voice: _Voice) -> None:
        self._rings.append((voice.x, voice.y, voice.t_on, 0.35 + 0.65 * voice.velocity, voice.pitch))
        del self._rings[:-self.MAX_RINGS]
        n = max(4, int(self.SPARKS * voice.velocity))
        ang = self._rng.random(n) * (2 * np.pi)
        speed = (0.05 + 0.25 * self._rng.random(n)) * self.width * (0.5 + voice.velocity)
        idx = (self._sp_next + np.arange(n)) % self.MAX_SPARKS
        self._sp_next = int((self._sp_next + n) % self.MAX_SPARKS)
        self._sp_pos[idx] = (voice.x, voice.y)
        self._sp_vel[idx, 0] = np.cos(ang) * speed
        self._sp_vel[idx, 1] = np.sin(ang) * speed
        self._sp_t0[idx] = voice.t_on
        self._sp_amp[idx] = 0.4 + 0.6 * voice.velocity
        self._sp_pitch[idx] = voice.pitch

    def _beat(self, beat: Beat) -> None:
        if beat.beat_in_bar == 0:  # a downbeat sends a pale ring from the centre
            self._rings.append(((self.width - 1) / 2, (self.height - 1) / 2, beat.time, 0.5, -1))
            del self._rings[:-self.MAX_RINGS]

    @staticmethod
    def _splat(img: np.ndarray, xs: np.ndarray, ys: np.ndarray, rgb: np.ndarray) -> None:
        """Add points to planar ``img`` (3, h, w) with bilinear weights; ``rgb`` is (n, 3).

        ``np.add.at`` on the touched pixels only: a bincount over the whole frame zeroes,
        converts and adds 3 frames' worth of memory for a few thousand points.
        """
        h, w = img.shape[1], img.shape[2]
        ok = (xs >= 0) & (xs < w - 1) & (ys >= 0) & (ys < h - 1)
        if not ok.any():
            return
        xs, ys, rgb = xs[ok], ys[ok], rgb[ok]
        x0 = xs.astype(np.intp)
        y0 = ys.astype(np.intp)
        fx = xs - x0.astype(np.float32)
        fy = ys - y0.astype(np.float32)
        base = y0 * w + x0
        idx = np.concatenate([base, base + 1, base + w, base + w + 1])
        wt = np.concatenate([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy])
        flat = img.reshape(3, -1)
        for c in range(3):
            np.add.at(flat[c], idx, wt * np.tile(rgb[:, c], 4))

    def render(self, t: float, params: Mapping[str, float]) -> np.ndarray:
        """Draw the frame for time ``t`` (engine seconds)."""
        brightness = self._param(params, "visuals.brightness")
        decay = self._param(params, "visuals.decay")
        hue = self._param(params, "visuals.hue")
        speed = self._param(params, "visuals.ripple_speed") * self.width
        dt = 0.0 if self._last_t is None else max(0.0, min(0.25, t - self._last_t))
        self._last_t = t
        palette = self._palette(hue)
        pale = np.array([0.8, 0.85, 1.0], np.float32)

        # Sparks leave trails: they are splatted into a buffer that fades with decay.
        self._trail *= np.float32(_fade(dt, decay))
        age = t - self._sp_t0
        alive = (age >= 0) & (age < self.SPARK_LIFE)
        if alive.any():
            a = age[alive].astype(np.float32)
            drag = np.float32(0.35)  # seconds: sparks slow down as they fly
            travel = drag * (1 - np.exp(-a / drag))
            pos = self._sp_pos[alive] + self._sp_vel[alive] * travel[:, None]
            pos[:, 1] += np.float32(0.15 * self.height) * a * a  # and fall a little
            fade = self._sp_amp[alive] * (1 - a / np.float32(self.SPARK_LIFE)) ** 2 * np.float32(0.8)
            rgb = palette[self._sp_pitch[alive]] * fade[:, None]
            self._splat(self._trail, pos[:, 0], pos[:, 1], rgb)
        np.clip(self._trail, 0.0, 3.0, out=self._trail)

        # Background: a hue-tinted wash that jumps on each beat, under the trails.
        pulse = self._pulse(t)
        bg = np.array(colorsys.hsv_to_rgb((hue + 0.62) % 1.0, 0.7, 1.0), np.float32)
        bg *= np.float32(0.05 + 0.22 * pulse)
        img = self._img
        for c in range(3):
            np.add(self._trail[c], self._bg_shape * bg[c], out=img[c])

        # Rings (half resolution): points round the circumference, fading as they grow.
        self._rings = [r for r in self._rings if t - r[2] < self.RING_LIFE]
        xs_all, ys_all, rgb_all = [], [], []
        for (x, y, t0, amp, pitch) in self._rings:
            age_r = t - t0
            if age_r < 0:
                continue
            level = amp * (1 - age_r / self.RING_LIFE) ** 1.5
            if level < 0.02:
                continue
            col = (pale if pitch < 0 else palette[pitch]) * np.float32(level)
            radius = 1.0 + 0.5 * speed * age_r  # half-resolution pixels
            for off, wgt in ((0.0, 1.0), (0.8 + 0.8 * age_r, 0.4)):
                rr = radius + off
                n = int(2 * np.pi * rr) + 8
                th = np.arange(n, dtype=np.float32) * np.float32(2 * np.pi / n)
                xs_all.append(np.float32(x / 2) + rr * np.cos(th))
                ys_all.append(np.float32(y / 2) + rr * np.sin(th))
                rgb_all.append(np.broadcast_to(col * np.float32(wgt), (n, 3)))
        # Held notes glow where they are; released ones fade.
        half = self._half_img
        half.fill(0.0)
        glow: tuple[list, list, list, list] = ([], [], [], [])
        for v in self._live_voices(t):
            level = self._voice_level(v, t)
            if level > 0.02:
                for lst, val in zip(glow, (v.x / 2, v.y / 2, 1.5 + 5 * v.velocity * (1 + 0.3 * pulse),
                                           palette[v.pitch] * np.float32(level))):
                    lst.append(val)
        self._glows(half, *glow)
        if xs_all:
            self._splat(half, np.concatenate(xs_all), np.concatenate(ys_all), np.concatenate(rgb_all))
        h2, w2 = self.height // 2, self.width // 2
        # Upsample by 2 as a broadcast add into 2x2 blocks (no upsampled copy); an odd
        # last row or column takes the nearest half-resolution pixel.
        img[:, :2 * h2, :2 * w2].reshape(3, h2, 2, w2, 2)[...] += half[:, :h2, None, :w2, None]
        if self.height % 2:
            img[:, -1, :2 * w2].reshape(3, w2, 2)[...] += half[:, -1, :w2, None]
        if self.width % 2:
            img[:, :, -1] += np.repeat(half[:, :, -1], 2, axis=1)[:, :self.height]
        return _to_uint8(img, brightness, self._scratch)


class FlowField(_SceneBase):
    """A feedback pattern: the previous frame advected, zoomed and rotated each frame.

    The flow is divergence-free (the curl of a few drifting sine waves seeded by
    ``seed``), so colour swirls instead of collapsing. Notes inject colour where they
    sound (held notes keep feeding it), beats flash a ring and kick the zoom outwards.
    """

    name = "flow"
    FLOW = ParamSpec("visuals.flow", 1.0, 0.0, 3.0, smoothing=0.2,
                     doc="strength of the swirling flow")
    ROTATE = ParamSpec("visuals.rotate", 0.1, -2.0, 2.0, smoothing=0.2,
                       doc="feedback rotation, radians per second")
    WAVES = 4

    def __init__(self, width: int, height: int, seed: int = 0) -> None:
        super().__init__(width, height, seed)
        w, h = self.width, self.height
        self._buf = np.zeros((3, h, w), np.float32)
        self._cx, self._cy = (w - 1) / 2.0, (h - 1) / 2.0
        self._xs = np.arange(w, dtype=np.float32) - np.float32(self._cx)
        self._ys = np.arange(h, dtype=np.float32) - np.float32(self._cy)
        self._X = np.ascontiguousarray(np.broadcast_to(self._xs[None, :], (h, w)))
        self._Y = np.ascontiguousarray(np.broadcast_to(self._ys[:, None], (h, w)))
        scale = float(min(w, h))
        rng = self._rng
        # Wave vectors of the stream function (1..3.5 cycles over the frame), speeds, phases.
        ang = rng.random(self.WAVES) * 2 * np.pi
        k = (1.0 + 2.5 * rng.random(self.WAVES)) * 2 * np.pi / scale
        self._kx = (np.cos(ang) * k).astype(np.float32)
        self._ky = (np.sin(ang) * k).astype(np.float32)
        self._omega = (0.2 + 0.6 * rng.random(self.WAVES)) * rng.choice([-1.0, 1.0], self.WAVES)
        self._phase = rng.random(self.WAVES) * 2 * np.pi
        self._amp = (0.6 + 0.4 * rng.random(self.WAVES)) / self.WAVES
        r = np.sqrt(self._X ** 2 + self._Y ** 2) / np.float32(scale)
        self._beat_ring = np.exp(-(((r - 0.3) / 0.03) ** 2)).astype(np.float32)
        n = h * w
        self._s = {name: np.empty(n, np.float32) for name in ("sx", "sy", "fx", "fy", "a", "b", "top", "tmp")}
        self._i = {name: np.empty(n, np.intp) for name in ("x0", "y0", "idx", "i")}
        self._scratch = np.empty((h, w), np.float32)
        self._pending: list[_Voice] = []
        self._beats_pending: list[Beat] = []
        self._last_t: float | None = None

    def param_specs(self) -> list[ParamSpec]:
        return [BRIGHTNESS, DECAY, HUE, ZOOM, self.FLOW, self.ROTATE]

    def _spawn(self, voice: _Voice) -> None:
        self._pending.append(voice)
        del self._pending[:-self.MAX_VOICES]

    def _beat(self, beat: Beat) -> None:
        self._beats_pending.append(beat)
        del self._beats_pending[:-16]

    def _add_flow(self, t: float, gain: float, sx: np.ndarray, sy: np.ndarray) -> None:
        """Step the sample points back along the flow: ``s -= gain * v(t)``.

        v is the curl of psi = sum_i a_i/k_i sin(k_i . p + w_i t + phi_i), so it has no
        sinks; each cos(k . p + c) is built from 1-D factors (two outer products).
        """
        h, w = self.height, self.width
        scale = float(min(w, h))
        c2 = self._scratch
        tmp = self._s["tmp"].reshape(h, w)
        for i in range(self.WAVES):
            c = float(self._omega[i] * t + self._phase[i])
            ax = self._kx[i] * self._xs
            by = self._ky[i] * self._ys + np.float32(c)
            np.multiply(np.cos(by)[:, None], np.cos(ax)[None, :], out=c2)
            np.multiply(np.sin(by)[:, None], np.sin(ax)[None, :], out=tmp)
            c2 -= tmp  # cos(kx x + ky y + c)
            k = math.hypot(float(self._kx[i]), float(self._ky[i]))
            g = gain * self._amp[i] * 0.25 * scale / k  # peak speed ~ amp * scale / 4 per second
            np.multiply(c2, np.float32(g * self._ky[i]), out=tmp)
            sx -= tmp.reshape(-1)
            np.multiply(c2, np.float32(-g * self._kx[i]), out=tmp)
            sy -= tmp.reshape(-1)

    def _advect(self, sx: np.ndarray, sy: np.ndarray) -> None:
        """Pull the buffer from (sx, sy) with bilinear interpolation (preallocated scratch)."""
        w, h = self.width, self.height
        s, i = self._s, self._i
        np.clip(sx, 0.0, w - 1.001, out=sx)
        np.clip(sy, 0.0, h - 1.001, out=sy)
        x0, y0, idx, j = i["x0"], i["y0"], i["idx"], i["i"]
        fx, fy, a, b, top = s["fx"], s["fy"], s["a"], s["b"], s["top"]
        x0[...] = sx
        y0[...] = sy
        np.subtract(sx, x0, out=fx, casting="unsafe")
        np.subtract(sy, y0, out=fy, casting="unsafe")
        np.multiply(y0, w, out=idx)
        idx += x0
        out = np.empty_like(self._buf)
        for c in range(3):
            p = self._buf[c].reshape(-1)
            o = out[c].reshape(-1)
            np.take(p, idx, out=a)
            np.add(idx, 1, out=j)
            np.take(p, j, out=b)
            b -= a
            b *= fx
            np.add(a, b, out=top)  # top row
            j += w
            np.take(p, j, out=b)
            j -= 1
            np.take(p, j, out=a)
            b -= a
            b *= fx
            a += b  # bottom row
            a -= top
            a *= fy
            np.add(top, a, out=o)
        self._buf = out

    def render(self, t: float, params: Mapping[str, float]) -> np.ndarray:
        """Advance the feedback to time ``t`` and draw it."""
        brightness = self._param(params, "visuals.brightness")
        decay = self._param(params, "visuals.decay")
        hue = self._param(params, "visuals.hue")
        zoom = self._param(params, "visuals.zoom")
        flow = self._param(params, "visuals.flow")
        rotate = self._param(params, "visuals.rotate")
        dt = 0.0 if self._last_t is None else max(0.0, min(0.1, t - self._last_t))
        self._last_t = t
        pulse = self._pulse(t, tau=0.2)

        if dt > 0:
            z = math.exp((zoom + 0.6 * pulse) * dt)  # > 1 zooms in: pull from nearer the centre
            th = -rotate * dt
            cos_t, sin_t = np.float32(math.cos(th) / z), np.float32(math.sin(th) / z)
            sx, sy, tmp = self._s["sx"], self._s["sy"], self._s["tmp"]
            X, Y = self._X.reshape(-1), self._Y.reshape(-1)
            np.multiply(X, cos_t, out=sx)
            np.multiply(Y, sin_t, out=tmp)
            sx -= tmp
            sx += np.float32(self._cx)
            np.multiply(X, sin_t, out=sy)
            np.multiply(Y, cos_t, out=tmp)
            sy += tmp
            sy += np.float32(self._cy)
            if flow > 0:
                self._add_flow(t, flow * dt, sx, sy)
            self._advect(sx, sy)
            self._buf *= np.float32(_fade(dt, decay))

        # New notes splash their colour once; held notes keep feeding it.
        due = [v for v in self._pending if v.t_on <= t]
        self._pending = [v for v in self._pending if v.t_on > t]
        due_ids = {id(v) for v in due}
        glow: tuple[list, list, list, list] = ([], [], [], [])

        def add(v: _Voice, radius: float, gain: float) -> None:
            for lst, val in zip(glow, (v.x, v.y, radius, pitch_color(v.pitch, hue) * np.float32(gain))):
                lst.append(val)

        for v in due:
            add(v, 2 + 7 * v.velocity, 0.6 + 0.8 * v.velocity)
        if dt > 0:  # only held notes feed; a released note fades with the trail itself
            for v in self._voices.values():
                level = self._voice_level(v, t)
                if level > 0.02 and id(v) not in due_ids:
                    add(v, 1.5 + 3 * v.velocity, 6.0 * level * dt)
        self._glows(self._buf, *glow)
        beats = [b for b in self._beats_pending if b.time <= t]
        self._beats_pending = [b for b in self._beats_pending if b.time > t]
        for b in beats:
            amp = 0.7 if b.beat_in_bar == 0 else 0.3
            tint = np.array(colorsys.hsv_to_rgb((hue + 0.1 * (b.beat_in_bar % 4)) % 1.0, 0.35, 1.0), np.float32)
            for c in range(3):
                self._buf[c] += self._beat_ring * (tint[c] * np.float32(amp))
        np.clip(self._buf, 0.0, 2.0, out=self._buf)
        return _to_uint8(self._buf, brightness, self._scratch)


SCENES: dict[str, type] = {RippleField.name: RippleField, FlowField.name: FlowField}


def create_scene(name: str, width: int, height: int, seed: int = 0) -> Scene:
    """Make a scene by name (for patches and the command line)."""
    try:
        cls = SCENES[name]
    except KeyError:
        raise ValueError(f"unknown scene {name!r}; known scenes: {', '.join(sorted(SCENES))}") from None
    return cls(width, height, seed)
