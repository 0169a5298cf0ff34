"""Loss networks for style transfer: what "looks like the painting" means, as numbers.

Gatys et al. measure style as the Gram matrices (channel correlations) of a convnet's
features at several depths, and content as the features themselves at one depth. The
convnet does not have to be trained: Ustyuzhaninov et al. (2017, "What does it take to
generate natural textures?") and He, Wang & Hopcroft (2016, random-weight VGG) showed
random filters at several scales give usable texture statistics. So the default is
:class:`RandomLossNet`, a VGG16-shaped stack of random convolutions at half VGG's width,
fixed by a seed: nothing to download, cheap enough to train with on two CPU cores.

:class:`VGG16Features` is torchvision's VGG16 ``features`` stack under the same key names
(``features.0.weight`` ...), so torchvision's published ImageNet weights load into it
through ``torch.hub.load_state_dict_from_url`` or from a local ``.pth`` (torchvision
itself is not needed). Its taps are the usual ones: content relu2_2, style relu1_2,
relu2_2, relu3_3, relu4_3 (feature indices 3, 8, 15, 22).

Random features have arbitrary scales, so every layer's loss is normalised by the size
of its target (relative squared error): each layer counts about equally.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
# torchvision's vgg16 "D" configuration up to relu4_3 (feature index 22).
_VGG16_LAYOUT: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512]
VGG_STYLE_TAPS = (3, 8, 15, 22)
VGG_CONTENT_TAP = 8
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


class LossNetError(RuntimeError):
    """Loss-network weights that cannot be used (one line)."""


def _stack(layout: Sequence[int | str], pool: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    cin = 3
    for item in layout:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2) if pool == "max" else nn.AvgPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, int(item), 3, padding=1), nn.ReLU(inplace=False)]
            cin = int(item)
    return nn.Sequential(*layers)


class FeatureNet(nn.Module):
    """A frozen conv stack that returns the activations at its style and content taps."""

    name = "features"

    def __init__(self, features: nn.Sequential, style_taps: Sequence[int], content_tap: int) -> None:
        super().__init__()
        self.features = features
        self.style_taps = tuple(style_taps)
        self.content_tap = int(content_tap)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """Images in 0..1 -> {tap index: activation}."""
        taps = set(self.style_taps) | {self.content_tap}
        last = max(taps)
        out: dict[int, torch.Tensor] = {}
        y = (x - self.mean) / self.std
        for i, layer in enumerate(self.features):
            y = layer(y)
            if i in taps:
                out[i] = y
            if i == last:
                break
        return out


class RandomLossNet(FeatureNet):
    """VGG16's shape at half width with seeded random weights (see the module docstring)."""

    name = "random"

    def __init__(self, seed: int = 0, width: float = 0.5) -> None:
        layout = [item if item == "M" else max(8, int(int(item) * width)) for item in _VGG16_LAYOUT]
        features = _stack(layout, pool="avg")  # average pooling: smoother gradients (Gatys)
        gen = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            for m in features:
                if isinstance(m, nn.Conv2d):
                    fan_in = m.in_channels * 9
                    m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                    m.weight.sub_(m.weight.mean(dim=(1, 2, 3), keepdim=True))  # zero-mean filters
                    m.bias.zero_()
        super().__init__(features, VGG_STYLE_TAPS, VGG_CONTENT_TAP)
        self.seed, self.width = int(seed), float(width)


class VGG16Features(FeatureNet):
    """torchvision's VGG16 ``features`` (to relu4_3), max pooling as trained."""

    name = "vgg16"

    def __init__(self) -> None:
        super().__init__(_stack(_VGG16_LAYOUT, pool="max"), VGG_STYLE_TAPS, VGG_CONTENT_TAP)

    def load_torchvision_state(self, state: dict[str, torch.Tensor], where: str) -> "VGG16Features":
        """Take the ``features.*`` tensors of a torchvision VGG16 state dict."""
        own = self.features.state_dict()
        picked = {}
        for key in own:
            full = f"features.{key}"
            if full not in state:
                raise LossNetError(f"{where}: not a torchvision VGG16 state dict (no {full})")
            if tuple(state[full].shape) != tuple(own[key].shape):
                raise LossNetError(f"{where}: {full} has shape {tuple(state[full].shape)}, "
                                   f"VGG16 needs {tuple(own[key].shape)}")
            picked[key] = state[full].float()
        self.features.load_state_dict(picked)
        return self


def load_vgg16(source: str | Path | None = None) -> VGG16Features:
    """VGG16 features with ImageNet weights: a local ``.pth`` path, a URL, or torchvision's.

    Downloads go through ``torch.hub.load_state_dict_from_url`` (cached in torch's hub
    directory, hash-checked); local files load with ``weights_only=True``.
    """
    source = str(source) if source else VGG16_URL
    try:
        if "://" in source:
            state = torch.hub.load_state_dict_from_url(source, map_location="cpu", progress=True,
                                                       check_hash=source == VGG16_URL, weights_only=True)
        else:
            if not Path(source).is_file():
                raise LossNetError(f"{source}: no such VGG16 weights file")
            state = torch.load(source, map_location="cpu", weights_only=True)
    except LossNetError:
        raise
    except Exception as e:
        reason = " ".join(str(e).split())[:160] or type(e).__name__
        raise LossNetError(f"{source}: cannot load VGG16 weights ({reason})") from None
    if not isinstance(state, dict):
        raise LossNetError(f"{source}: not a state dict")
    return VGG16Features().load_torchvision_state(state, source)


def make_loss_net(spec: str = "random", seed: int = 0) -> FeatureNet:
    """``"random"`` (default, no download), ``"vgg16"`` (torchvision's weights) or a VGG16 .pth path."""
    if spec == "random":
        return RandomLossNet(seed)
    return load_vgg16(None if spec == "vgg16" else spec)


def gram(f: torch.Tensor) -> torch.Tensor:
    """Channel correlation matrices (N, C, C), normalised by the number of positions."""
    n, c, h, w = f.shape
    x = f.reshape(n, c, h * w)
    return x @ x.transpose(1, 2) / (h * w)


class StyleLoss(nn.Module):
    """Content, style and total-variation terms of (output, content image, style targets).

    ``style_targets`` holds per style the Gram matrices at every style tap; a row of
    style weights picks (or blends) the targets for each image in the batch.
    """

    def __init__(self, net: FeatureNet) -> None:
        super().__init__()
        self.net = net

    @torch.no_grad()
    def style_targets(self, style_images: Sequence[torch.Tensor]) -> dict[int, torch.Tensor]:
        """{tap: (S, C, C)} Gram targets from style images, each (3, H, W) in 0..1."""
        per_tap: dict[int, list[torch.Tensor]] = {t: [] for t in self.net.style_taps}
        for img in style_images:
            feats = self.net(img.unsqueeze(0))
            for t in self.net.style_taps:
                per_tap[t].append(gram(feats[t])[0])
        return {t: torch.stack(v) for t, v in per_tap.items()}

    def forward(self, output: torch.Tensor, content: torch.Tensor, targets: dict[int, torch.Tensor],
                weights: torch.Tensor, content_feats: dict[int, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(content loss, style loss) per image, each shape (N,)."""
        feats = self.net(output)
        if content_feats is None:
            with torch.no_grad():
                content_feats = self.net(content)
        ct = self.net.content_tap
        ref = content_feats[ct]
        c_loss = ((feats[ct] - ref) ** 2).mean(dim=(1, 2, 3)) / (ref ** 2).mean(dim=(1, 2, 3)).clamp_min(1e-8)
        s_loss = torch.zeros(output.shape[0], device=output.device)
        for t in self.net.style_taps:
            target = torch.einsum("ns,scd->ncd", weights, targets[t])
            g = gram(feats[t])
            s_loss = s_loss + ((g - target) ** 2).sum(dim=(1, 2)) / (target ** 2).sum(dim=(1, 2)).clamp_min(1e-12)
        return c_loss, s_loss / len(self.net.style_taps)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels, per image (N,)."""
    dh = (x[..., 1:, :] - x[..., :-1, :]).abs().mean(dim=(1, 2, 3))
    dw = (x[..., :, 1:] - x[..., :, :-1]).abs().mean(dim=(1, 2, 3))
    return dh + dw


def resize_short_side(img: torch.Tensor, size: int) -> torch.Tensor:
    """(3, H, W) -> scaled so the shorter side is ``size`` (antialiased)."""
    h, w = img.shape[-2:]
    k = size / min(h, w)
    return F.interpolate(img.unsqueeze(0), size=(max(1, round(h * k)), max(1, round(w * k))),
                         mode="bilinear", antialias=True, align_corners=False)[0]
