"""Running the style network on frames, fast, with the performer's controls around it.

:class:`Stylizer` turns an ``(h, w, 3)`` uint8 frame into a stylised one given
:class:`StyleSettings`: per-style weights (blended inside the network, Dumoulin et al.),
an intensity (mix with the source), and colour preservation (the output's luminance on
the source's colours, Gatys et al. 2016, "Preserving color in neural artistic style
transfer"). Weights that sum to less than 1 leave the rest to "no style" (the source);
all-zero weights or intensity 0 skip the network entirely.

Paths:
- ``"fast"`` (default): channels-last memory on the CPU (oneDNN's preferred layout; about
  1.5x here) with the pixel shuffles' convolutions reordered to suit it, fp16 on CUDA;
  optionally ``torch.compile`` with inductor's cache kept in ``~/.cache/livegen/inductor``
  so only the first run pays for compiling.
- ``"reference"``: plain fp32 NCHW eager, the yardstick the fast path is checked against.

bf16 was measured and is not offered: with these narrow layers oneDNN's bf16 kernels ran
7-10x slower than fp32 on this CPU (see ``livegen bench style``).
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from livegen.visuals.style_net import StyleNet

log = logging.getLogger("livegen.visuals")

DEFAULT_MODEL = Path(__file__).parent / "models" / "style.pt"
INDUCTOR_CACHE = Path.home() / ".cache" / "livegen" / "inductor"

# ITU-R BT.601 RGB <-> YUV (as float matrices acting on the channel axis).
_RGB2YUV = torch.tensor([[0.299, 0.587, 0.114], [-0.14713, -0.28886, 0.436], [0.615, -0.51499, -0.10001]])
_YUV2RGB = torch.linalg.inv(_RGB2YUV)


@dataclass
class StyleSettings:
    """What the performer controls: weights per style (0..1 each), intensity, colour."""

    weights: list[float] = field(default_factory=list)
    intensity: float = 1.0
    preserve_colour: float = 0.0

    def amount(self) -> float:
        """How much of the stylised image is shown (0 = the source alone)."""
        total = sum(max(0.0, w) for w in self.weights)
        return max(0.0, min(1.0, self.intensity)) * min(1.0, total)


def pick_device(pref: str | None = None) -> torch.device:
    if pref:
        return torch.device(pref)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Stylizer:
    """A style network on one device, ready to stylise frames (see the module docstring)."""

    def __init__(self, net: StyleNet, device: str | torch.device | None = None, path: str = "fast",
                 compile: bool = False) -> None:
        if path not in ("fast", "reference"):
            raise ValueError(f"unknown path {path!r}: fast or reference")
        self.device = pick_device(str(device) if device else None)
        self.path = path
        self.styles = list(net.config.styles)
        self.half = path == "fast" and self.device.type == "cuda"
        self.channels_last = path == "fast" and self.device.type == "cpu"
        net = net.to(self.device).eval()
        if self.channels_last:
            # a copy: the caller's network keeps the file's weight order
            net = copy.deepcopy(net).pixel_major_()
        if self.half:
            net = net.half()
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.net = net
        self._run = net
        self.compiled = False
        if compile and path == "fast":
            self._run = self._compile(net)

    def _compile(self, net: StyleNet):
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(INDUCTOR_CACHE))
        try:
            fn = torch.compile(net, dynamic=False)
            self.compiled = True
            return fn
        except Exception as e:  # no compiler on this machine, unsupported platform
            log.warning("torch.compile is not available (%s); running the network uncompiled",
                        " ".join(str(e).split())[:120])
            return net

    def weights_row(self, weights: Sequence[float]) -> torch.Tensor:
        row = [max(0.0, float(w)) for w in weights]
        if len(row) != len(self.styles):
            raise ValueError(f"{len(row)} style weights for {len(self.styles)} styles")
        total = sum(row)
        t = torch.tensor([[w / total for w in row]], dtype=torch.float32, device=self.device)
        return t.half() if self.half else t

    @torch.inference_mode()
    def stylise_tensor(self, x: torch.Tensor, weights: Sequence[float]) -> torch.Tensor:
        """(1, 3, h, w) float in 0..1 on any device -> the network's output, fp32 on the CPU."""
        x = x.to(self.device, torch.float16 if self.half else torch.float32)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        try:
            y = self._run(x, self.weights_row(weights))
        except Exception as e:
            if self._run is self.net:
                raise
            # torch.compile builds on the first call: no C++ compiler, an unsupported
            # platform... the uncompiled network gives the same picture, a little slower.
            log.warning("torch.compile failed (%s); running the network uncompiled",
                        " ".join(str(e).split())[:160])
            self._run, self.compiled = self.net, False
            y = self._run(x, self.weights_row(weights))
        return y.float().cpu()

    @torch.inference_mode()
    def __call__(self, frame: np.ndarray, settings: StyleSettings) -> np.ndarray:
        """Stylise an ``(h, w, 3)`` uint8 frame; returns a new uint8 frame."""
        amount = settings.amount()
        if amount <= 0.0:
            return frame
        src = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
        y = self.stylise_tensor(src, settings.weights)
        keep = max(0.0, min(1.0, settings.preserve_colour))
        if keep > 0.0:
            y = preserve_colour(y, src, keep)
        if amount < 1.0:
            y = torch.lerp(src, y, amount)
        return (y[0].clamp_(0, 1).mul_(255.0).round_().to(torch.uint8).permute(1, 2, 0).contiguous().numpy())


def preserve_colour(styled: torch.Tensor, source: torch.Tensor, amount: float) -> torch.Tensor:
    """Keep ``styled``'s luminance, move its chroma ``amount`` of the way to ``source``'s."""
    a = _RGB2YUV.to(styled)
    b = _YUV2RGB.to(styled)
    ys = torch.einsum("ij,njhw->nihw", a, styled)
    yc = torch.einsum("ij,njhw->nihw", a, source)
    ys[:, 1:] = torch.lerp(ys[:, 1:], yc[:, 1:], amount)
    return torch.einsum("ij,njhw->nihw", b, ys)
