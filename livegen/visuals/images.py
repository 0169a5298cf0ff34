"""Still images in and out for the style tools: files -> uint8 frames -> tensors.

Decoding goes through pygame's image module (JPEG, PNG, BMP, WebP ... via SDL_image),
which livegen already depends on and which needs no display. Frames are ``(h, w, 3)``
uint8 arrays, as everywhere in the visuals; tensors are ``(3, h, w)`` float in 0..1.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import numpy as np  # noqa: E402
import pygame  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tga", ".tif", ".tiff", ".gif"}


class ImageError(RuntimeError):
    """An image that cannot be read (one line naming the file)."""


def load_frame(path: str | Path) -> np.ndarray:
    """Read an image file as an (h, w, 3) uint8 RGB frame."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such image file")
    try:
        surf = pygame.image.load(str(path))
    except (pygame.error, OSError, ValueError) as e:
        reason = " ".join(str(e).split()) or "unreadable"
        raise ImageError(f"{path}: cannot read image ({reason})") from None
    return np.ascontiguousarray(pygame.surfarray.pixels3d(surf).transpose(1, 0, 2)).astype(np.uint8)


def image_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files and folders -> image files (folders searched recursively, sorted)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            found.append(p)
        else:
            raise ImageError(f"{p}: no such file or folder")
    return found


def to_tensor(frame: np.ndarray) -> torch.Tensor:
    """(h, w, 3) uint8 -> (3, h, w) float32 in 0..1."""
    return torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).float().div_(255.0)


def to_frame(t: torch.Tensor) -> np.ndarray:
    """(3, h, w) float in 0..1 -> (h, w, 3) uint8 (rounded, clipped)."""
    return (t.detach().float().clamp(0, 1).mul(255.0).round_().to(torch.uint8)
            .permute(1, 2, 0).contiguous().cpu().numpy())


def resize(t: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(3, h, w) -> (3, height, width), antialiased bilinear."""
    if tuple(t.shape[-2:]) == (height, width):
        return t
    return F.interpolate(t.unsqueeze(0), size=(height, width), mode="bilinear",
                         antialias=True, align_corners=False)[0]


def fit_cover(t: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Scale to cover (height, width) keeping the aspect, then centre-crop to it."""
    h, w = t.shape[-2:]
    k = max(height / h, width / w)
    nh, nw = max(height, round(h * k)), max(width, round(w * k))
    t = resize(t, nh, nw)
    y, x = (nh - height) // 2, (nw - width) // 2
    return t[:, y:y + height, x:x + width]


def grid(frames: list[list[np.ndarray]], pad: int = 2) -> np.ndarray:
    """Rows of equally sized frames -> one frame with ``pad`` pixels of black between."""
    h, w = frames[0][0].shape[:2]
    rows, cols = len(frames), max(len(r) for r in frames)
    out = np.zeros((rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad, 3), np.uint8)
    for i, row in enumerate(frames):
        for j, f in enumerate(row):
            out[i * (h + pad):i * (h + pad) + h, j * (w + pad):j * (w + pad) + w] = f
    return out
