"""``livegen stylize``: the style network (or Gatys optimisation) on files.

IN may be an image, a folder of frames, or a video; OUT is the same kind (an image file,
a folder, a video file). ``--style starry_night=0.7,the_scream=0.3`` blends styles as the
knobs do live. ``--optimize`` runs Gatys et al.'s optimisation on a still instead: slow,
the best the loss network allows, for posters and as the fast network's reference. It
needs the paintings themselves: a style name finds the bundled picture, and
``--style-image PATH[=w]`` adds any other.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from livegen.atomic import atomic_path
from livegen.visuals.images import IMAGE_SUFFIXES, ImageError, image_files, load_frame, to_frame, to_tensor

log = logging.getLogger("livegen")

VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}
STYLE_IMAGES = Path(__file__).parent / "assets" / "styles"


class StylizeError(RuntimeError):
    """A stylize request that cannot be carried out (one line)."""


def parse_style_spec(spec: str) -> dict[str, float]:
    """``"a=0.7,b"`` -> {"a": 0.7, "b": 1.0}."""
    out: dict[str, float] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, _, w = part.partition("=")
        try:
            out[name.strip()] = float(w) if w else 1.0
        except ValueError:
            raise StylizeError(f"--style {spec!r}: weight {w!r} of {name!r} is not a number") from None
    if not out:
        raise StylizeError("--style names no style")
    return out


def save_image(path: Path, frame: np.ndarray) -> None:
    """PNG, JPEG, BMP or TGA by extension (pygame's writer)."""
    import pygame

    path.parent.mkdir(parents=True, exist_ok=True)
    surf = pygame.image.frombuffer(np.ascontiguousarray(frame).tobytes(), (frame.shape[1], frame.shape[0]), "RGB")
    with atomic_path(path) as tmp:
        pygame.image.save(surf, tmp)


@dataclass
class StylizeJob:
    src: Path
    dst: Path
    model: Path | None = None
    style: dict[str, float] = field(default_factory=dict)
    intensity: float = 1.0
    colour: float = 0.0
    width: int | None = None         # resize input to this width first (keeps the aspect)
    optimize: bool = False
    steps: int = 200
    loss_net: str = "random"
    style_images: dict[str, float] = field(default_factory=dict)  # path -> weight, for --optimize
    style_size: int = 256            # shorter side of the paintings for their statistics (--optimize)
    device: str | None = None


def _resize_to_width(frame: np.ndarray, width: int | None) -> np.ndarray:
    if not width or frame.shape[1] == width:
        return frame
    from livegen.visuals.images import resize

    h = max(8, round(frame.shape[0] * width / frame.shape[1]))
    return to_frame(resize(to_tensor(frame), h, width))


def _frames_of_video(path: Path) -> tuple[Iterator[np.ndarray], float]:
    try:
        import imageio_ffmpeg
    except ImportError:
        raise StylizeError("video needs imageio-ffmpeg: pip install 'livegen[video]'") from None
    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = next(reader)
    except Exception as e:
        raise StylizeError(f"{path}: cannot read video ({' '.join(str(e).split())[:160]})") from None
    w, h = meta["size"]
    fps = float(meta.get("fps") or 30.0)

    def frames() -> Iterator[np.ndarray]:
        for raw in reader:
            yield np.frombuffer(raw, np.uint8).reshape(h, w, 3)
    return frames(), fps


def run(job: StylizeJob, progress: Callable[[str], None] | None = None) -> dict:
    """Carry out a stylize job; returns a summary (frames, seconds, output path)."""
    if not job.src.exists():
        raise StylizeError(f"{job.src}: no such file or folder")
    if job.optimize:
        return _optimize(job, progress)
    from livegen.visuals.style_net import load_style_net
    from livegen.visuals.stylizer import DEFAULT_MODEL, StyleSettings, Stylizer

    stylizer = Stylizer(load_style_net(job.model or DEFAULT_MODEL), device=job.device)
    unknown = [n for n in job.style if n not in stylizer.styles]
    if unknown:
        raise StylizeError(f"unknown style {unknown[0]!r}; the model has: {', '.join(stylizer.styles)}")
    settings = StyleSettings([job.style.get(n, 0.0) for n in stylizer.styles], job.intensity, job.colour)
    t0 = time.perf_counter()
    n = 0

    def one(frame: np.ndarray) -> np.ndarray:
        return stylizer(_resize_to_width(frame, job.width), settings)

    if job.src.is_dir():
        files = image_files([job.src])
        if not files:
            raise StylizeError(f"{job.src}: no images in this folder")
        for f in files:
            save_image(job.dst / (f.relative_to(job.src).with_suffix(".png")), one(load_frame(f)))
            n += 1
    elif job.src.suffix.lower() in VIDEO_SUFFIXES:
        import imageio_ffmpeg

        frames, fps = _frames_of_video(job.src)
        writer = None
        job.dst.parent.mkdir(parents=True, exist_ok=True)
        for frame in frames:
            out = one(frame)
            if writer is None:
                writer = imageio_ffmpeg.write_frames(str(job.dst), (out.shape[1], out.shape[0]), fps=fps,
                                                     macro_block_size=1, quality=8)
                writer.send(None)
            writer.send(np.ascontiguousarray(out))
            n += 1
        if writer is not None:
            writer.close()
    elif job.src.suffix.lower() in IMAGE_SUFFIXES:
        save_image(job.dst, one(load_frame(job.src)))
        n = 1
    else:
        raise StylizeError(f"{job.src}: not an image, a folder of images or a video this reads "
                           f"({', '.join(sorted(VIDEO_SUFFIXES))})")
    seconds = time.perf_counter() - t0
    return {"frames": n, "seconds": seconds, "out": str(job.dst)}


# The shipped model's style names -> the bundled paintings they were trained on.
BUNDLED_STYLES = {"starry_night": "starry_night.jpg", "scream": "the_scream.jpg", "great_wave": "great_wave.jpg",
                  "composition_vii": "composition_vii.jpg", "shipwreck": "shipwreck.jpg",
                  "klee": "klee_clouds_over_bor.jpg", "vallotton": "vallotton_mauclair.jpg"}


def bundled_style_image(name: str) -> Path:
    if name in BUNDLED_STYLES and (STYLE_IMAGES / BUNDLED_STYLES[name]).is_file():
        return STYLE_IMAGES / BUNDLED_STYLES[name]
    for suffix in (".jpg", ".png"):
        p = STYLE_IMAGES / f"{name}{suffix}"
        if p.is_file():
            return p
    known = ", ".join(sorted(BUNDLED_STYLES))
    raise StylizeError(f"no bundled painting called {name!r} (bundled: {known}); use --style-image PATH")


def _optimize(job: StylizeJob, progress: Callable[[str], None] | None) -> dict:
    from livegen.visuals.gatys import optimise
    from livegen.visuals.loss_net import StyleLoss, make_loss_net, resize_short_side

    if job.src.is_dir() or job.src.suffix.lower() not in IMAGE_SUFFIXES:
        raise StylizeError(f"{job.src}: --optimize works on one still image")
    paintings = {str(bundled_style_image(n)): w for n, w in job.style.items()} if job.style else {}
    paintings.update(job.style_images)
    if not paintings:
        raise StylizeError("--optimize needs --style NAME (a bundled painting) or --style-image PATH")
    content = to_tensor(_resize_to_width(load_frame(job.src), job.width or 320))
    net = make_loss_net(job.loss_net)
    style_size = job.style_size  # the training default: strokes come out the same size in pixels
    try:
        imgs = [resize_short_side(to_tensor(load_frame(p)), style_size) for p in paintings]
    except ImageError as e:
        raise StylizeError(str(e)) from None
    targets = StyleLoss(net).style_targets(imgs)
    w = torch.tensor([list(paintings.values())], dtype=torch.float32)
    w = w / w.sum()
    t0 = time.perf_counter()
    bar = None
    try:
        from tqdm import tqdm

        bar = tqdm(total=job.steps, unit="it", desc="optimising", leave=False)
    except ImportError:
        pass

    def report(i: int, loss: float) -> None:
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")

    result = optimise(content, targets, w, net, steps=job.steps, progress=report)
    if bar is not None:
        bar.close()
    out = result.image
    if job.intensity < 1.0:
        out = torch.lerp(content, out, job.intensity)
    save_image(job.dst, to_frame(out))
    return {"frames": 1, "seconds": time.perf_counter() - t0, "out": str(job.dst),
            "content_loss": result.content, "style_loss": result.style, "steps": result.steps}
