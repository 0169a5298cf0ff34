"""A visuals source that walks a latent image model's space with the music.

A VAE's decoder or a GAN's generator (:mod:`livegen.visuals.latent_models`) turns a latent
vector ``z`` into a small picture (64x64 or 128x128). :class:`LatentSource` moves ``z``
with the performance and shows the decoded picture, upscaled to the show's size, as a
:class:`~livegen.visuals.scenes.Scene` like any other source: on its own, in a
``SourceSwitch``, or under the style network.

How ``z`` moves (all of it deterministic: the same seeds, events and frame times give the
same path, so ``livegen render`` repeats):

- **anchors**: a list of latent vectors (8 generated from ``latent_seed`` at the prior's
  typical length sqrt(latent_dim), or read from a ``.json``/``.npy`` file). The walk rests
  on a point of the loop of anchors: ``latent.morph`` (0..1) slides it from the first
  anchor to the last by spherical interpolation (:func:`slerp`), and every
  ``latent.bars`` bars the walk moves on to the next anchor;
- **notes** push ``z`` along one of 12 fixed unit directions (one per pitch class, drawn
  from ``latent_seed``): ``latent.step`` at full velocity, less for softer notes;
- **beats** zoom and brighten the picture for a moment and give ``z`` a small push along a
  13th direction (``latent.pulse``; a downbeat twice as much);
- **chaos**: ``latent.chaos`` adds an Ornstein-Uhlenbeck wander (seeded by the show's seed)
  to the point the walk rests on;
- ``z`` follows all this on a critically damped spring of time constant ``latent.glide``
  (solved exactly, so any frame rate is stable), so the picture morphs instead of jumping;
  what is decoded is kept within 20% of the anchors' length, where the model was trained.

Decoding is torch work. Live (``threaded=True``) it runs on a thread of its own, which
always takes the newest ``z`` and leaves the newest finished frame: ``render`` only moves
``z`` (a few microseconds of numpy) and returns the last frame at once (a black one before
the first). Offline (``livegen render``, tests) ``render`` decodes the frame itself, so
every frame belongs to its moment and a render repeats exactly.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from livegen.atomic import atomic_write
from livegen.control.params import ParamSpec
from livegen.events import Beat, NoteOn, OutEvent
from livegen.realtime import lower_thread_priority
from livegen.visuals.latent_models import LatentModelError, default_device, load_latent_model
from livegen.visuals.scenes import BRIGHTNESS

log = logging.getLogger("livegen.visuals")

DEFAULT_LATENT_MODEL = Path(__file__).resolve().parent / "models" / "latent-vae.pt"
ANCHOR_SUFFIXES = (".json", ".npy")
GENERATED_ANCHORS = 8
MAX_ANCHORS = 4096

CHAOS = ParamSpec("latent.chaos", 0.15, 0.0, 1.0, smoothing=0.2,
                  doc="latent source: random wander round the resting point (Ornstein-Uhlenbeck); 0 = none")
MORPH = ParamSpec("latent.morph", 0.0, 0.0, 1.0, smoothing=0.3,
                  doc="latent source: where the walk rests along the anchors, 0 = the first, 1 = the last "
                      "(spherical interpolation between them)")
STEP = ParamSpec("latent.step", 0.25, 0.0, 1.0, smoothing=0.1,
                 doc="latent source: how far a full-velocity note pushes the picture along its pitch class's "
                     "direction (fraction of the latent vector's length)")
PULSE = ParamSpec("latent.pulse", 0.5, 0.0, 1.0, smoothing=0.1,
                  doc="latent source: beat pulse (a zoom, a flash and a push on every beat; twice on a downbeat)")
GLIDE = ParamSpec("latent.glide", 0.5, 0.05, 4.0, unit="s", smoothing=0.1,
                  doc="latent source: how long the picture takes to follow a push or a new anchor")
BARS = ParamSpec("latent.bars", 1.0, 0.0, 16.0, integer=True,
                 doc="latent source: bars per move to the next anchor; 0 = stay where latent.morph says")
PARAMS = (BRIGHTNESS, CHAOS, MORPH, STEP, PULSE, GLIDE, BARS)


class LatentSourceError(RuntimeError):
    """A latent source that cannot be opened (one line: which file and why)."""


@dataclass(frozen=True)
class LatentOptions:
    """What ``[visuals]`` says about the latent source (see :func:`create_source`)."""

    model: str = ""          # a model file; "" = the shipped one (DEFAULT_LATENT_MODEL)
    anchors: str = ""        # a .json / .npy file of latent vectors; "" = generated from ``seed``
    seed: int = 0            # the landscape: pitch directions and generated anchors
    threaded: bool = False   # decode on a worker thread (live) or in render (offline)
    threads: int | None = 1  # torch threads for that worker (None: leave the process's setting)


# -- the geometry ----------------------------------------------------------------------------
def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation from ``a`` (t=0, returned exactly) to ``b`` (t=1, exactly).

    The direction turns at constant speed along the great circle through both; the length
    goes linearly from ``|a|`` to ``|b|`` (so vectors of one length keep it). The angle is
    taken as ``2 atan2(|ua - ub|, |ua + ub|)``, accurate where ``arccos`` of the dot
    product is not (nearly parallel vectors). Nearly parallel: the normalised linear
    interpolation, which is slerp to third order there; exactly opposite: any great circle
    is a shortest path, so one through a fixed perpendicular direction is taken.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    t = float(t)
    if t <= 0.0:
        return a.copy()
    if t >= 1.0:
        return b.copy()
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return (1.0 - t) * a + t * b
    ua, ub = a / na, b / nb
    omega = 2.0 * math.atan2(float(np.linalg.norm(ua - ub)), float(np.linalg.norm(ua + ub)))
    length = (1.0 - t) * na + t * nb
    s = math.sin(omega)
    if s < 1e-7 and omega < math.pi / 2:  # parallel
        u = (1.0 - t) * ua + t * ub
        return u * (length / float(np.linalg.norm(u)))
    if s < 1e-7:  # opposite: turn through a direction perpendicular to a
        e = np.zeros_like(ua)
        e[int(np.argmin(np.abs(ua)))] = 1.0
        w = e - float(e @ ua) * ua
        w /= float(np.linalg.norm(w))
        u = math.cos(t * math.pi) * ua + math.sin(t * math.pi) * w
        return u * length
    u = (math.sin((1.0 - t) * omega) / s) * ua + (math.sin(t * omega) / s) * ub
    return u * (length / float(np.linalg.norm(u)))


def pitch_directions(latent_dim: int, seed: int = 0) -> np.ndarray:
    """(13, latent_dim) unit vectors: one per pitch class (C=0 ... B=11), then the beat's.

    Orthonormal when latent_dim >= 13 (a QR of Gaussian draws), so no two pitch classes
    push the picture the same way; merely normalised below that.
    """
    rng = np.random.default_rng([_u64(seed), 1])
    g = rng.standard_normal((latent_dim, 13))
    if latent_dim >= 13:
        q, r = np.linalg.qr(g)
        q = q * np.where(np.diag(r) < 0, -1.0, 1.0)[None, :]
        return np.ascontiguousarray(q.T)
    return np.ascontiguousarray((g / np.linalg.norm(g, axis=0, keepdims=True)).T)


def generate_anchors(latent_dim: int, seed: int = 0, count: int = GENERATED_ANCHORS) -> np.ndarray:
    """(count, latent_dim) random directions at the prior's typical length sqrt(latent_dim)."""
    rng = np.random.default_rng([_u64(seed), 2])
    g = rng.standard_normal((count, latent_dim))
    return g * (math.sqrt(latent_dim) / np.linalg.norm(g, axis=1, keepdims=True))


def load_anchors(path: str | Path, latent_dim: int | None = None) -> np.ndarray:
    """Anchors from a ``.npy`` array (K, D) (never unpickled) or a ``.json`` list of lists
    (or ``{"anchors": [...]}``); one :class:`LatentSourceError` line if anything is off."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in ANCHOR_SUFFIXES:
        raise LatentSourceError(f"{p}: anchors must be a .json or .npy file")
    if not p.is_file():
        raise LatentSourceError(f"{p}: no such anchors file")
    try:
        if suffix == ".npy":
            arr = np.load(p, allow_pickle=False)
        else:
            data = json.loads(p.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                data = data.get("anchors")
            arr = np.asarray(data)
        if arr.dtype.kind not in "fiu":
            raise ValueError(f"numbers expected, got {arr.dtype.name} values")
        arr = arr.astype(np.float64)
    except (OSError, ValueError, TypeError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise LatentSourceError(f"{p}: not a readable anchors file ({' '.join(str(e).split())[:120]})") from None
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or not 1 <= arr.shape[0] <= MAX_ANCHORS or arr.shape[1] < 1:
        raise LatentSourceError(f"{p}: anchors must be a list of 1..{MAX_ANCHORS} latent vectors, "
                                f"got an array of shape {tuple(arr.shape)}")
    if latent_dim is not None and arr.shape[1] != latent_dim:
        raise LatentSourceError(f"{p}: anchors have {arr.shape[1]} numbers each, the model's latent "
                                f"vectors {latent_dim}")
    if not np.isfinite(arr).all():
        raise LatentSourceError(f"{p}: anchors hold NaN or infinite numbers")
    if (np.linalg.norm(arr, axis=1) == 0).any():
        raise LatentSourceError(f"{p}: an anchor is all zeros")
    return arr


def save_anchors(path: str | Path, anchors: np.ndarray | Sequence[Sequence[float]]) -> Path:
    """Write anchors (K, D) as ``.npy`` or ``.json`` (by the suffix), atomically."""
    p = Path(path)
    arr = np.atleast_2d(np.asarray(anchors, np.float64))
    if p.suffix.lower() == ".npy":
        with atomic_write(p) as f:
            np.save(f, arr, allow_pickle=False)
    elif p.suffix.lower() == ".json":
        with atomic_write(p, binary=False) as f:
            json.dump({"anchors": arr.tolist()}, f)
    else:
        raise ValueError(f"{p}: anchors are saved as .json or .npy")
    return p


def _u64(seed: int) -> int:
    return int(seed) & 0xFFFF_FFFF_FFFF_FFFF


def _same_request(a: tuple[np.ndarray, float, float] | None, b: tuple[np.ndarray, float, float]) -> bool:
    """Whether two decode requests (z, zoom, gain) would give the same picture."""
    return a is not None and a[1:] == b[1:] and np.array_equal(a[0], b[0])


def _short(e: BaseException) -> str:
    return " ".join(str(e).split())[:160] or type(e).__name__


# -- the source ------------------------------------------------------------------------------
class LatentSource:
    """A latent model's pictures, walked by the music (see the module docstring)."""

    name = "latent"
    MAX_SUBSTEP = 1.0 / 60.0  # seconds: the noise changes at most this often
    MAX_GAP = 2.0             # a longer gap between frames (hidden in a switch) is skipped
    MAX_PENDING = 512         # events waiting for their time
    NOISE_TAU = 1.5           # seconds: the chaos wander's correlation time
    NOISE_SCALE = 0.5         # per-dimension spread of the wander at chaos 1
    BEAT_PUSH = 0.08          # push along the beat direction at pulse 1, fraction of the length
    BAND = 0.2                # what is decoded stays within this fraction of the anchors' length
    PULSE_TAU = 0.15          # seconds: beat zoom and flash decay

    def __init__(self, width: int, height: int, model: str | Path | torch.nn.Module | None = None,
                 anchors: str | Path | np.ndarray | None = None, seed: int = 0, latent_seed: int = 0,
                 threaded: bool = False, threads: int | None = 1, device: str | torch.device | None = None,
                 nice: int = 10) -> None:
        if width < 2 or height < 2:
            raise ValueError(f"source size {width}x{height} is too small")
        self.width, self.height = int(width), int(height)
        self.seed, self.latent_seed = seed, latent_seed
        self.device = torch.device(device) if device is not None else default_device()
        if isinstance(model, torch.nn.Module):
            self.model = model.to(self.device).eval()
            self.model_path: Path | None = None
        else:
            path = Path(model) if model else DEFAULT_LATENT_MODEL
            try:
                self.model = load_latent_model(path, self.device)
            except LatentModelError as e:
                hint = ("; the shipped latent model is not installed: train one (livegen train latent) and "
                        "name it in [visuals] latent_model") if not model and not path.is_file() else ""
                raise LatentSourceError(f"{e}{hint}") from None
            except Exception as e:  # the model is fine but the device is not (a CUDA error)
                raise LatentSourceError(f"{path}: cannot load the latent model on {self.device} ({_short(e)})") from None
            self.model_path = path
        self.latent_dim = int(self.model.config.latent_dim)
        self.radius = math.sqrt(self.latent_dim)
        self.directions = pitch_directions(self.latent_dim, latent_seed)
        if anchors is None or (isinstance(anchors, (str, Path)) and not str(anchors)):
            self.anchors = generate_anchors(self.latent_dim, latent_seed)
        elif isinstance(anchors, (str, Path)):
            self.anchors = load_anchors(anchors, self.latent_dim)
        else:
            arr = np.atleast_2d(np.asarray(anchors, np.float64))
            if arr.ndim != 2 or arr.shape[1] != self.latent_dim or not np.isfinite(arr).all():
                raise LatentSourceError(f"anchors must be finite vectors of {self.latent_dim} numbers")
            self.anchors = arr
        self._rng = np.random.default_rng([_u64(seed), _u64(latent_seed), 3])
        self._specs = {s.name: s for s in PARAMS}
        # the walk
        self._z: np.ndarray | None = None
        self._v = np.zeros(self.latent_dim)
        self._noise = np.zeros(self.latent_dim)
        self._step = 0  # anchors moved on by bars
        self._bar_count = 0
        self._last_bar: int | None = None
        self._last_t: float | None = None
        self._pending: list[OutEvent] = []
        self._beats: deque[tuple[float, float]] = deque(maxlen=4)  # (time, accent)
        self._home_key: tuple[int, float] | None = None
        self._home_cache = self.anchors[0]
        # the picture
        s = int(self.model.config.size)
        aspect = self.width / self.height
        sx, sy = (1.0, 1.0 / aspect) if aspect >= 1.0 else (aspect, 1.0)  # cover: crop the square's middle
        theta = torch.tensor([[[sx, 0.0, 0.0], [0.0, sy, 0.0]]], dtype=torch.float32)
        self._grid = F.affine_grid(theta, [1, 3, self.height, self.width], align_corners=False).to(self.device)
        self.model_size = s
        self._plain = np.zeros((self.height, self.width, 3), np.uint8)
        self._last_request: tuple[np.ndarray, float, float] | None = None
        self._last_frame: np.ndarray | None = None
        self.decoded = 0
        self.decode_ms: deque[float] = deque(maxlen=600)
        self._warned: set[str] = set()
        # the worker (live)
        self.threaded = bool(threaded)
        self.threads = threads
        self.nice = nice
        self._cond = threading.Condition()
        self._job: tuple[np.ndarray, float, float] | None = None
        self._latest: np.ndarray | None = None
        self._stop = False
        self.submitted = 0
        self.replaced = 0  # requests a newer one replaced before the worker took them
        self.ready = threading.Event()  # the first frame is decoded
        self._thread: threading.Thread | None = None
        if self.threaded:
            self._thread = threading.Thread(target=self._loop, name="livegen-latent", daemon=False)
            self._thread.start()

    # -- Scene -------------------------------------------------------------------------------
    def param_specs(self) -> list[ParamSpec]:
        return list(PARAMS)

    def on_event(self, event: OutEvent) -> None:
        """Notes and beats wait for their moment (``render`` applies them in time order)."""
        if (isinstance(event, NoteOn) and event.velocity > 0) or isinstance(event, Beat):
            self._pending.append(event)
            if len(self._pending) > self.MAX_PENDING:
                del self._pending[:-self.MAX_PENDING]

    def render(self, t: float, params: Mapping[str, float]) -> np.ndarray:
        """Move the walk to ``t``; the decoded picture (offline) or the newest one (live)."""
        p = self._params(params)
        self._advance(float(t), p)
        request = self._request(float(t), p)
        if not self.threaded:
            return self._decode_cached(request).copy()
        with self._cond:
            if not _same_request(self._last_request, request):
                if self._job is not None:
                    self.replaced += 1
                self._job = request
                self._last_request = request
                self.submitted += 1
                self._cond.notify()
            latest = self._latest
        return (latest if latest is not None else self._plain).copy()

    def close(self) -> None:
        """Stop the worker and join it (it finishes the frame in hand: never torch mid-kernel)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(30.0)
            if thread.is_alive():
                log.warning("latent source: the decoding thread did not stop within 30 s")

    # -- the walk ----------------------------------------------------------------------------
    @property
    def z(self) -> np.ndarray:
        """Where the walk is (a copy; the anchor it starts on before the first render)."""
        return (self._z if self._z is not None else self.anchors[0]).copy()

    @property
    def anchor_step(self) -> int:
        """How many times bars have moved the walk on to the next anchor."""
        return self._step

    def _params(self, params: Mapping[str, float]) -> dict[str, float]:
        out = {}
        for name, spec in self._specs.items():
            try:
                v = float(params.get(name, spec.default))
            except (TypeError, ValueError):
                v = spec.default
            out[name] = spec.default if math.isnan(v) else spec.clamp(v)
        return out

    def home(self, morph: float | None = None) -> np.ndarray:
        """The point the walk rests on: ``morph`` of the way along the loop of anchors,
        starting from the anchor the bars have reached (``morph`` 0 is that anchor, 1 the one
        ``count - 1`` further on)."""
        k = len(self.anchors)
        m = MORPH.clamp(MORPH.default if morph is None else float(morph))
        key = (self._step, m)
        if key != self._home_key:
            if k == 1:
                home = self.anchors[0]
            else:
                s = self._step + m * (k - 1)
                if abs(s - round(s)) < 1e-9:  # on an anchor (m = i / (k - 1)): that anchor, exactly
                    s = float(round(s))
                i = math.floor(s)
                home = slerp(self.anchors[i % k], self.anchors[(i + 1) % k], s - i)
            self._home_key, self._home_cache = key, home
        return self._home_cache

    def advance(self, t: float, params: Mapping[str, float] | None = None) -> np.ndarray:
        """Apply the events due by ``t`` at their own times and move the walk to ``t``
        (what ``render`` does before decoding); returns the walk's ``z``."""
        self._advance(float(t), self._params(params or {}))
        return self.z

    def _advance(self, t: float, p: Mapping[str, float]) -> None:
        if self._last_t is None:
            self._z = self.home(p[MORPH.name]).copy()
            self._last_t = t
        if t - self._last_t > self.MAX_GAP:  # not drawn for a while: bars still count, pushes are gone
            skip_to = t - self.MAX_GAP
            for ev in self._take_due(skip_to):
                if isinstance(ev, Beat):
                    self._bar(ev, p)
            self._last_t = skip_to
        cur = self._last_t
        for ev in self._take_due(t):
            if ev.time > cur:
                self._integrate(ev.time - cur, p)
                cur = ev.time
            self._apply(ev, p)
        if t > cur:
            self._integrate(t - cur, p)
            cur = t
        self._last_t = cur

    def _take_due(self, t: float) -> list[OutEvent]:
        due = [ev for ev in self._pending if ev.time <= t]
        if due:
            self._pending = [ev for ev in self._pending if ev.time > t]
            due.sort(key=lambda ev: ev.time)  # stable: equal times keep their order
        return due

    def _omega(self, p: Mapping[str, float]) -> float:
        return 1.0 / p[GLIDE.name]

    def _integrate(self, span: float, p: Mapping[str, float]) -> None:
        """Critically damped spring towards home + wander, solved exactly over each sub-step."""
        n = max(1, math.ceil(span / self.MAX_SUBSTEP - 1e-9))
        h = span / n
        w = self._omega(p)
        sigma = p[CHAOS.name] * self.NOISE_SCALE
        home = self.home(p[MORPH.name])
        keep = math.exp(-h / self.NOISE_TAU)
        fresh = math.sqrt(1.0 - keep * keep)
        damp = math.exp(-w * h)
        z, v = self._z, self._v
        for _ in range(n):
            # the wander is drawn whatever chaos is, so turning the knob does not reshuffle it
            self._noise = self._noise * keep + fresh * self._rng.standard_normal(self.latent_dim)
            target = home + sigma * self._noise if sigma > 0 else home
            e = z - target
            a = v + w * e
            z = target + (e + a * h) * damp
            v = (v - w * a * h) * damp
        self._z, self._v = z, v

    def _kick(self, direction: np.ndarray, amount: float, p: Mapping[str, float]) -> None:
        """A push that carries the walk ``amount`` along ``direction`` at its furthest
        (a critically damped spring's peak after an impulse dv is dv / (omega e))."""
        self._v = self._v + direction * (amount * self._omega(p) * math.e)

    def _apply(self, ev: OutEvent, p: Mapping[str, float]) -> None:
        if isinstance(ev, NoteOn):
            amount = p[STEP.name] * self.radius * min(127, max(0, ev.velocity)) / 127.0
            if amount > 0:
                self._kick(self.directions[ev.pitch % 12], amount, p)
        elif isinstance(ev, Beat):
            accent = 1.0 if ev.beat_in_bar == 0 else 0.5
            self._beats.append((ev.time, accent))
            amount = p[PULSE.name] * self.BEAT_PUSH * self.radius * accent
            if amount > 0:
                self._kick(self.directions[12], amount if ev.beat % 2 == 0 else -amount, p)
            self._bar(ev, p)

    def _bar(self, ev: Beat, p: Mapping[str, float]) -> None:
        if ev.beat_in_bar != 0:
            return
        if self._last_bar is None:  # the first downbeat heard: the walk is where it starts
            self._last_bar = ev.bar
            return
        if ev.bar == self._last_bar:
            return
        self._last_bar = ev.bar
        bars = int(p[BARS.name])
        self._bar_count += 1
        if bars > 0 and self._bar_count >= bars:
            self._step += 1
            self._bar_count = 0

    def _pulse(self, t: float) -> float:
        level = 0.0
        for bt, accent in self._beats:
            if t >= bt:
                level += accent * math.exp(-(t - bt) / self.PULSE_TAU)
        return level

    def decoded_z(self, morph: float | None = None) -> np.ndarray:
        """The walk's ``z`` as it is decoded: its length kept within BAND of home's."""
        z = self.z
        r_home = float(np.linalg.norm(self.home(morph)))
        r = float(np.linalg.norm(z))
        if r > 0 and r_home > 0:
            z = z * (min(max(r, (1 - self.BAND) * r_home), (1 + self.BAND) * r_home) / r)
        return z

    def _request(self, t: float, p: Mapping[str, float]) -> tuple[np.ndarray, float, float]:
        pulse = p[PULSE.name] * self._pulse(t)
        zoom = 1.0 + 0.08 * pulse
        gain = (p[BRIGHTNESS.name] / 0.9) * (1.0 + 0.25 * pulse)
        return self.decoded_z(p[MORPH.name]).astype(np.float32), zoom, gain

    # -- decoding ----------------------------------------------------------------------------
    def decode(self, z: np.ndarray, zoom: float = 1.0, gain: float = 1.0) -> np.ndarray:
        """``z`` -> the model's picture, zoomed and scaled to the show's size, as a uint8 frame."""
        with torch.inference_mode():
            zt = torch.from_numpy(np.ascontiguousarray(z, np.float32)).to(self.device).unsqueeze(0)
            img = self.model.decode(zt)
            grid = self._grid if zoom == 1.0 else self._grid * (1.0 / zoom)
            out = F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False)[0]
            out = out.mul_(255.0 * gain).clamp_(0.0, 255.0).round_().to(torch.uint8)
            return out.permute(1, 2, 0).contiguous().cpu().numpy()

    def _decode_timed(self, request: tuple[np.ndarray, float, float]) -> np.ndarray | None:
        t0 = time.perf_counter()
        try:
            frame = self.decode(*request)
        except Exception as e:  # a broken model, the GPU gone: the show goes on with the last picture
            kind = type(e).__name__
            if kind not in self._warned:
                self._warned.add(kind)
                log.warning("latent source: decoding failed (%s); showing the last picture", _short(e))
            return None
        self.decode_ms.append((time.perf_counter() - t0) * 1000.0)
        self.decoded += 1
        return frame

    def _decode_cached(self, request: tuple[np.ndarray, float, float]) -> np.ndarray:
        if self._last_frame is not None and _same_request(self._last_request, request):
            return self._last_frame
        frame = self._decode_timed(request)
        if frame is None:
            return self._last_frame if self._last_frame is not None else self._plain
        self._last_request, self._last_frame = request, frame
        self.ready.set()
        return frame

    def _loop(self) -> None:
        lower_thread_priority(self.nice)  # the music first
        if self.threads:
            torch.set_num_threads(int(self.threads))
        main = threading.main_thread()
        while True:
            with self._cond:
                while self._job is None and not self._stop:
                    # never keep a finished program alive: the main thread ending is a stop
                    if not self._cond.wait(0.5) and not main.is_alive():
                        self._stop = True
                if self._stop:
                    return
                request, self._job = self._job, None
            frame = self._decode_timed(request)  # type: ignore[arg-type]
            if frame is not None:
                with self._cond:
                    self._latest = frame
                self.ready.set()

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Live: wait until the worker has decoded a first frame (tests, benchmarks)."""
        return self.ready.wait(timeout)

    def stats(self) -> dict[str, float]:
        ms = sorted(self.decode_ms)
        return {"decoded": self.decoded, "submitted": self.submitted, "replaced": self.replaced,
                "decode_ms_median": ms[len(ms) // 2] if ms else float("nan"),
                "decode_ms_p90": ms[int(len(ms) * 0.9)] if ms else float("nan")}
