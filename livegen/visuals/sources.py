"""Frame sources beyond the generated scenes: an image, a video file, a camera, a latent
model's pictures walked by the music (:mod:`livegen.visuals.latent_source`); and a switch.

Each is a :class:`~livegen.visuals.scenes.Scene` (``on_event`` + ``render``) so the
pipeline treats them alike. The file sources still move with the music: the picture
breathes with each beat (a short zoom pulse) and drifts slowly, so a still photo under
the style network is a live image rather than a slide.

:class:`SourceSwitch` holds several sources and shows the one picked by the live
parameter ``visuals.source`` (0, 1, 2... in the order the patch lists them); every
source keeps hearing the music, so switching lands on a scene already in motion.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from livegen.control.params import ParamSpec
from livegen.events import Beat, OutEvent
from livegen.visuals.images import fit_cover, load_frame, to_frame, to_tensor
from livegen.visuals.scenes import SCENES, BRIGHTNESS, Scene, create_scene

if TYPE_CHECKING:
    from livegen.visuals.latent_source import LatentOptions

SOURCE_KINDS = ("image", "video", "camera", "latent")
PULSE = ParamSpec("visuals.pulse", 0.3, 0.0, 1.0, smoothing=0.1,
                  doc="how much an image or video source zooms on each beat")


class SourceError(RuntimeError):
    """A source that cannot be opened (one line: which file or device and why)."""


class _PulsedSource:
    """Beat pulse and slow drift applied to frames from a file or a device."""

    name = "file"

    def __init__(self, width: int, height: int, seed: int = 0) -> None:
        self.width, self.height, self.seed = int(width), int(height), seed
        self._last_beat = -math.inf
        self._accent = 1.0

    def param_specs(self) -> list[ParamSpec]:
        return [BRIGHTNESS, PULSE]

    def on_event(self, event: OutEvent) -> None:
        if isinstance(event, Beat):
            self._last_beat = event.time
            self._accent = 1.0 if event.beat_in_bar == 0 else 0.5

    def _frame_tensor(self, t: float) -> torch.Tensor:
        raise NotImplementedError

    def render(self, t: float, params: Mapping[str, float]) -> np.ndarray:
        img = self._frame_tensor(t)  # (3, H, W) float, at least the output size
        pulse = float(params.get(PULSE.name, PULSE.default))
        since = t - self._last_beat
        zoom = 1.0 + 0.08 * pulse * self._accent * math.exp(-max(0.0, since) / 0.18) if since >= 0 else 1.0
        zoom *= 1.04  # headroom for the drift
        dx = 0.015 * math.sin(t * 0.21 + self.seed)
        dy = 0.015 * math.cos(t * 0.17 + 2 * self.seed)
        theta = torch.tensor([[[1.0 / zoom, 0.0, dx], [0.0, 1.0 / zoom, dy]]])
        grid = F.affine_grid(theta, [1, 3, self.height, self.width], align_corners=False)
        out = F.grid_sample(img.unsqueeze(0), grid, mode="bilinear", padding_mode="reflection",
                            align_corners=False)[0]
        bright = float(params.get(BRIGHTNESS.name, 1.0))
        return to_frame(out * (bright / 0.9))


class ImageSource(_PulsedSource):
    """A still picture (any format pygame reads), cropped to fill the frame."""

    name = "image"

    def __init__(self, width: int, height: int, path: str | Path, seed: int = 0) -> None:
        super().__init__(width, height, seed)
        try:
            self._img = fit_cover(to_tensor(load_frame(path)), height, width)
        except Exception as e:
            raise SourceError(str(e)) from None

    def _frame_tensor(self, t: float) -> torch.Tensor:
        return self._img


class VideoSource(_PulsedSource):
    """A video file played in a loop at its own frame rate (ffmpeg via imageio-ffmpeg)."""

    name = "video"

    def __init__(self, width: int, height: int, path: str | Path, seed: int = 0) -> None:
        super().__init__(width, height, seed)
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"{self.path}: no such video file")
        try:
            import imageio_ffmpeg
        except ImportError:
            raise SourceError("a video source needs imageio-ffmpeg: pip install 'livegen[video]'") from None
        self._ffmpeg = imageio_ffmpeg
        self._reader = None
        self._fps = 30.0
        self._index = -1
        self._t0: float | None = None
        self._current = torch.zeros(3, height, width)
        self._open()

    def _open(self) -> None:
        try:
            self._reader = self._ffmpeg.read_frames(str(self.path), output_params=[
                "-vf", f"scale={self.width}:{self.height}:force_original_aspect_ratio=increase,"
                       f"crop={self.width}:{self.height}"])
            meta = next(self._reader)
        except Exception as e:
            raise SourceError(f"{self.path}: cannot read video ({' '.join(str(e).split())[:160]})") from None
        self._fps = float(meta.get("fps") or 30.0)
        self._index = -1

    def _next(self) -> bool:
        try:
            raw = next(self._reader)  # type: ignore[arg-type]
        except StopIteration:
            return False
        frame = np.frombuffer(raw, np.uint8).reshape(self.height, self.width, 3).copy()
        self._current = to_tensor(frame)
        self._index += 1
        return True

    def _frame_tensor(self, t: float) -> torch.Tensor:
        if self._t0 is None:
            self._t0 = t
        want = int((t - self._t0) * self._fps)
        while self._index < want:
            if not self._next():  # the end: loop from the start
                self._reader.close()  # type: ignore[union-attr]
                self._open()
                self._t0 = t
                want = 0
                if not self._next():
                    break
        return self._current

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


class CameraSource(_PulsedSource):
    """A camera through OpenCV (the optional ``camera`` extra: ``pip install opencv-python``)."""

    name = "camera"

    def __init__(self, width: int, height: int, device: str | int = 0, seed: int = 0) -> None:
        super().__init__(width, height, seed)
        try:
            import cv2
        except ImportError:
            raise SourceError("a camera source needs OpenCV: pip install 'livegen[camera]'") from None
        self._cv2 = cv2
        index = int(device) if str(device).isdigit() else device
        self._cap = cv2.VideoCapture(index)
        if not self._cap.isOpened():
            raise SourceError(f"camera {device!r}: cannot open it")
        self._current = torch.zeros(3, height, width)

    def _frame_tensor(self, t: float) -> torch.Tensor:
        ok, bgr = self._cap.read()
        if ok:
            rgb = self._cv2.cvtColor(bgr, self._cv2.COLOR_BGR2RGB)
            self._current = fit_cover(to_tensor(rgb), self.height, self.width)
        return self._current

    def close(self) -> None:
        self._cap.release()


def create_source(kind: str, width: int, height: int, seed: int = 0, file: str | None = None,
                  latent: "LatentOptions | None" = None) -> Scene:
    """A scene by name, an ``image``/``video``/``camera`` source reading ``file``, or the
    ``latent`` source (its model, anchors and landscape seed in ``latent``)."""
    if kind in SCENES:
        return create_scene(kind, width, height, seed=seed)
    if kind == "image":
        if not file:
            raise SourceError("visuals: source \"image\" needs source_file = \"path/to/picture\"")
        return ImageSource(width, height, file, seed)  # type: ignore[return-value]
    if kind == "video":
        if not file:
            raise SourceError("visuals: source \"video\" needs source_file = \"path/to/video\"")
        return VideoSource(width, height, file, seed)  # type: ignore[return-value]
    if kind == "camera":
        return CameraSource(width, height, file or 0, seed)  # type: ignore[return-value]
    if kind == "latent":
        from livegen.visuals.latent_source import LatentOptions, LatentSource, LatentSourceError

        o = latent or LatentOptions()
        try:
            return LatentSource(width, height, model=o.model or None, anchors=o.anchors or None,  # type: ignore[return-value]
                                seed=seed, latent_seed=o.seed, threaded=o.threaded, threads=o.threads)
        except LatentSourceError as e:
            raise SourceError(str(e)) from None
    known = ", ".join(sorted(SCENES) + list(SOURCE_KINDS))
    raise SourceError(f"unknown visuals source {kind!r}; known: {known}")


class SourceSwitch:
    """Several sources, one shown: picked live by ``visuals.source`` (see the docstring)."""

    name = "switch"

    def __init__(self, sources: Sequence[Scene], initial: int = 0) -> None:
        if not sources:
            raise ValueError("no sources")
        self.sources = list(sources)
        self.width, self.height = sources[0].width, sources[0].height
        self.param = ParamSpec("visuals.source", float(initial), 0.0, float(len(sources) - 1), integer=True,
                               doc="which source is shown: " + ", ".join(
                                   f"{i} = {s.name}" for i, s in enumerate(self.sources)))

    def param_specs(self) -> list[ParamSpec]:
        seen: dict[str, ParamSpec] = {self.param.name: self.param}
        for s in self.sources:
            for p in s.param_specs():
                seen.setdefault(p.name, p)
        return list(seen.values())

    def on_event(self, event: OutEvent) -> None:
        for s in self.sources:
            s.on_event(event)

    def current(self, params: Mapping[str, float]) -> Scene:
        i = int(self.param.clamp(float(params.get(self.param.name, self.param.default))))
        return self.sources[i]

    def render(self, t: float, params: Mapping[str, float]) -> np.ndarray:
        return self.current(params).render(t, params)

    def close(self) -> None:
        for s in self.sources:
            close = getattr(s, "close", None)
            if close is not None:
                close()
