"""The style network: one small feed-forward net holding many painters' styles.

Johnson et al. (2016) showed one forward pass can stylise an image; Dumoulin et al. (2017)
showed that many styles fit in one such network when only the scale and shift of every
instance normalisation differ per style ("conditional instance normalisation"), and that
mixing those scales and shifts blends the styles continuously. This file is that network,
shaped for a laptop CPU rather than a GPU:

- it downsamples at once (three stride-2 convolutions, 16/32/64 channels), so the three
  residual blocks work on 1/64 of the pixels, where Johnson's 128-channel blocks work on
  1/16 at twice the width; 22x fewer multiply-adds per 320x240 frame (0.53 G vs 11.8 G);
- squeezing a frame that hard loses its detail, so the decoder gets each encoder level's
  features back at the same size (skip connections, as in a U-Net; an add, nearly free).
  In 600-step trials from scratch (this network's decoder vs version 1's) the content loss
  was 0.66 vs 0.80 and the style loss 0.41 vs 0.36;
- the decoder doubles the size with a convolution at the smaller size followed by a pixel
  shuffle (Shi et al. 2016) instead of nearest upsampling and a convolution at the larger
  size: the same multiply-adds, no upsampled copies;
- instance-norm statistics are E[x] and E[x^2] (two fast reductions) instead of
  ``torch.var_mean``'s Welford pass, which alone cost 12 ms of a 320x240 frame here;
- zero padding inside the convolutions (no padding copies).

Version 1 files (nearest upsampling, no skips, four blocks) still load and run.

``StyleNet.forward(x, weights)`` takes the images (N, 3, H, W) in 0..1 and a style-weight
matrix (N, S) whose rows sum to 1; it returns images in 0..1.

Files: a dict of plain tensors and strings (fp16 weights), loaded with
``torch.load(weights_only=True)``; anything wrong is one :class:`StyleModelError` line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from livegen.atomic import atomic_write
from livegen.weights import WeightsFileError, load_weights

FILE_FORMAT = "livegen-style-net"
FORMAT_VERSION = 2  # 2 added skip connections and pixel-shuffle upsampling; 1 still loads


class StyleModelError(RuntimeError):
    """A style model file that cannot be used (one line: which file and why)."""


@dataclass
class StyleNetConfig:
    """The shape of a style network; saved with its weights."""

    styles: list[str] = field(default_factory=list)  # one name per style, in weight order
    channels: tuple[int, int, int] = (16, 32, 64)
    res_blocks: int = 3
    upsample: str = "shuffle"   # "shuffle" (conv, then pixel shuffle) or "nearest" (+ 3x3 conv at the larger size)
    skips: bool = True          # add each encoder level's features to the decoder at the same size

    @property
    def n_styles(self) -> int:
        return len(self.styles)


class ConditionalInstanceNorm(nn.Module):
    """Instance norm whose scale and shift are a weighted mix of per-style vectors."""

    def __init__(self, channels: int, n_styles: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(n_styles, channels))
        self.shift = nn.Parameter(torch.zeros(n_styles, channels))

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = (x * x).mean(dim=(2, 3), keepdim=True) - mean * mean
        gain = (weights @ self.scale).view(n, c, 1, 1) * torch.rsqrt(var.clamp_min(0.0) + 1e-5)
        return torch.addcmul((weights @ self.shift).view(n, c, 1, 1) - mean * gain, x, gain)


class _ConvNorm(nn.Module):
    """3x3 convolution (optionally strided), conditional instance norm, optional ReLU."""

    def __init__(self, cin: int, cout: int, n_styles: int, stride: int = 1, relu: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.norm = ConditionalInstanceNorm(cout, n_styles)
        self.relu = relu

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.conv(x), weights)
        return F.relu(y) if self.relu else y


class _Residual(nn.Module):
    def __init__(self, channels: int, n_styles: int) -> None:
        super().__init__()
        self.a = _ConvNorm(channels, channels, n_styles)
        self.b = _ConvNorm(channels, channels, n_styles, relu=False)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return x + self.b(self.a(x, weights), weights)


def pixel_shuffle2(y: torch.Tensor, pixel_major: bool = False) -> torch.Tensor:
    """2x pixel shuffle. ``pixel_major`` reads channel ``k * C + c`` (k = 2i + j, the
    place in the 2x2 block) instead of torch's ``c * 4 + k``.

    In channels-last memory that order makes the shuffle a copy of whole runs of ``2C``
    values; ``F.pixel_shuffle`` on channels-last tensors gathers value by value (1.0 vs
    0.27 ms for the 320x240 output here). See :meth:`StyleNet.pixel_major_`.
    """
    if not pixel_major:
        return F.pixel_shuffle(y, 2)
    n, c4, h, w = y.shape
    c = c4 // 4
    m = y.permute(0, 2, 3, 1).reshape(n, h, w, 2, 2, c).permute(0, 1, 3, 2, 4, 5).reshape(n, 2 * h, 2 * w, c)
    return m.permute(0, 3, 1, 2)  # NCHW shape, channels-last memory


def _pixel_major(conv: nn.Conv2d) -> None:
    """Reorder a convolution's outputs from torch's shuffle order to pixel-major order."""
    with torch.no_grad():
        c = conv.out_channels // 4
        w = conv.weight
        conv.weight.copy_(w.reshape(c, 4, *w.shape[1:]).transpose(0, 1).reshape(w.shape))
        if conv.bias is not None:
            conv.bias.copy_(conv.bias.reshape(c, 4).t().reshape(-1))


class _ShuffleUp(nn.Module):
    """Double the size: a 3x3 convolution to 4x the channels, pixel shuffle, norm, ReLU.

    The same multiply-adds as nearest upsampling followed by a convolution at the larger
    size, but the convolution runs on the smaller map and no upsampled copy is made.
    """

    def __init__(self, cin: int, cout: int, n_styles: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout * 4, 3, 1, 1, bias=False)
        self.norm = ConditionalInstanceNorm(cout, n_styles)
        self.pixel_major = False

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(pixel_shuffle2(self.conv(x), self.pixel_major), weights))


class StyleNet(nn.Module):
    """Image (N, 3, H, W) in 0..1 + style weights (N, S) -> stylised image in 0..1."""

    def __init__(self, config: StyleNetConfig) -> None:
        super().__init__()
        if config.n_styles < 1:
            raise ValueError("a style network needs at least one style")
        self.config = config
        c1, c2, c3 = config.channels
        s = config.n_styles
        if config.upsample not in ("nearest", "shuffle"):
            raise ValueError(f"unknown upsampling {config.upsample!r}: nearest or shuffle")
        self.shuffle = config.upsample == "shuffle"
        k = 4 if self.shuffle else 1  # a pixel shuffle turns 4 channels into a 2x2 block
        self.down = nn.ModuleList([_ConvNorm(3, c1, s, 2), _ConvNorm(c1, c2, s, 2), _ConvNorm(c2, c3, s, 2)])
        self.res = nn.ModuleList([_Residual(c3, s) for _ in range(config.res_blocks)])
        self.up = nn.ModuleList([_ShuffleUp(c3, c2, s) if self.shuffle else _ConvNorm(c3, c2, s),
                                 _ShuffleUp(c2, c1, s) if self.shuffle else _ConvNorm(c2, c1, s)])
        self.out = nn.Conv2d(c1, 3 * k, 3, 1, 1)
        self.pixel_major = False

    @property
    def styles(self) -> list[str]:
        return self.config.styles

    def pixel_major_(self) -> "StyleNet":
        """Reorder the convolutions before each pixel shuffle for channels-last inference.

        The same function, faster in channels-last memory (see :func:`pixel_shuffle2`).
        Only for a copy used to run frames: the reordered weights are not the file's
        order, so such a network refuses to be saved.
        """
        if self.shuffle and not self.pixel_major:
            for layer in self.up:
                _pixel_major(layer.conv)
                layer.pixel_major = True
            _pixel_major(self.out)
            self.pixel_major = True
        return self

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        y = x * 2.0 - 1.0
        skips = []
        for layer in self.down:
            y = layer(y, weights)
            skips.append(y)
        for block in self.res:
            y = block(y, weights)
        for layer, skip in zip(self.up, (skips[1], skips[0])):
            y = layer(y if self.shuffle else F.interpolate(y, scale_factor=2.0, mode="nearest"), weights)
            if self.config.skips:
                if skip.shape != y.shape:  # sizes not a multiple of 8: pad or crop by a pixel
                    skip = F.pad(skip, (0, y.shape[-1] - skip.shape[-1], 0, y.shape[-2] - skip.shape[-2]))
                y = y + skip
        if self.shuffle:
            y = pixel_shuffle2(self.out(y), self.pixel_major)
        else:
            y = self.out(F.interpolate(y, scale_factor=2.0, mode="nearest"))
        if y.shape[-2:] != (h, w):  # sizes that are not multiples of 8
            y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
        return torch.sigmoid(y)


def save_style_net(net: StyleNet, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write the network as fp16 tensors plus its config (atomic)."""
    if getattr(net, "pixel_major", False):
        raise ValueError("this style network's weights were reordered for inference (pixel_major_); "
                         "save the network it was copied from")
    path = Path(path)
    payload = {
        "format": FILE_FORMAT,
        "version": FORMAT_VERSION,
        "config": {"styles": list(net.config.styles), "channels": list(net.config.channels),
                   "res_blocks": int(net.config.res_blocks), "upsample": net.config.upsample,
                   "skips": bool(net.config.skips)},
        "state_dict": {k: v.detach().to("cpu", torch.float16).contiguous()
                       for k, v in net.state_dict().items()},
        "meta": dict(meta or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        torch.save(payload, f)
    return path


def load_style_net(path: str | Path, device: str | torch.device = "cpu") -> StyleNet:
    """Load a style network saved by :func:`save_style_net` (fp32 on ``device``)."""
    path = Path(path)
    if not path.is_file():
        raise StyleModelError(f"{path}: no such style model file")
    try:
        payload = load_weights(path)
    except WeightsFileError as e:
        raise StyleModelError(f"{path}: not a readable style model: {e}") from None
    if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT:
        raise StyleModelError(f"{path}: not a livegen style model")
    if payload.get("version") not in (1, FORMAT_VERSION):
        raise StyleModelError(f"{path}: style model format version {payload.get('version')!r}, "
                              f"this livegen reads version {FORMAT_VERSION}")
    try:
        cfg = payload["config"]
        config = StyleNetConfig(styles=[str(s) for s in cfg["styles"]],
                                channels=tuple(int(c) for c in cfg["channels"]),  # type: ignore[arg-type]
                                res_blocks=int(cfg["res_blocks"]),
                                upsample=str(cfg.get("upsample", "nearest")), skips=bool(cfg.get("skips", False)))
        net = StyleNet(config)
        net.load_state_dict({k: v.float() for k, v in payload["state_dict"].items()})
    except Exception as e:
        reason = " ".join(str(e).split())[:160]
        raise StyleModelError(f"{path}: style model does not fit its own config ({reason})") from None
    net.meta = dict(payload.get("meta") or {})  # type: ignore[assignment]
    return net.to(device).eval()

