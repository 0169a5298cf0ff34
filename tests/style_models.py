"""Small style networks made by the tests (the shipped one is not needed to test the code)."""

from __future__ import annotations

from pathlib import Path

import torch

from livegen.visuals.style_net import StyleNet, StyleNetConfig, save_style_net


def distinct_styles(path: Path, styles=("red", "green", "blue"), seed: int = 0) -> Path:
    """Random weights, and each style's norm scales/shifts drawn apart so styles differ."""
    torch.manual_seed(seed)
    net = StyleNet(StyleNetConfig(styles=list(styles), channels=(8, 16, 16), res_blocks=1))
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith(".scale"):
                p.copy_(1.0 + 0.8 * torch.randn_like(p))
            elif name.endswith(".shift"):
                p.copy_(0.8 * torch.randn_like(p))
    return save_style_net(net, path, meta={"loss_net": "random", "loss_seed": 0})


def solid_colour(path: Path, rgb=(0.0, 1.0, 0.0)) -> Path:
    """A one-style network whose output is one colour whatever the input: easy to spot."""
    net = StyleNet(StyleNetConfig(styles=["solid"], channels=(8, 8, 8), res_blocks=1))
    with torch.no_grad():
        net.out.weight.zero_()
        bias = torch.tensor([8.0 if c > 0.5 else -8.0 for c in rgb])
        # a pixel-shuffle output layer has 4 channels (a 2x2 block) per colour
        net.out.bias.copy_(bias.repeat_interleave(net.out.bias.numel() // 3))
    return save_style_net(net, path)
