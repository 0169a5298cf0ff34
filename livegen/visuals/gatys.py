"""Gatys et al. (2016): stylise one still by optimising its pixels under the loss network.

Slow (seconds to minutes per image) but the best one can do under a given loss network,
so it is both the quality reference for the fast network (``livegen bench style-quality``
compares their losses on the same images) and a way to make a poster from a show
(``livegen stylize --optimize``). The image starts from the content picture and is
optimised with L-BFGS, as in the paper, on the same weighted sum of content, style and
total-variation terms the fast network is trained with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from livegen.visuals.loss_net import FeatureNet, StyleLoss, total_variation


@dataclass
class GatysResult:
    image: torch.Tensor   # (3, h, w) in 0..1
    content: float
    style: float
    steps: int


def optimise(content: torch.Tensor, targets: dict[int, torch.Tensor], weights: torch.Tensor, loss_net: FeatureNet,
             content_weight: float = 3.0, style_weight: float = 4.0, tv_weight: float = 0.02, steps: int = 200,
             progress: Callable[[int, float], None] | None = None) -> GatysResult:
    """Optimise a (3, h, w) image toward ``targets`` blended by ``weights`` (1, S)."""
    criterion = StyleLoss(loss_net)
    x0 = content.unsqueeze(0)
    with torch.no_grad():
        content_feats = loss_net(x0)
    # Optimise in logit space so the pixels stay inside 0..1 without clamping the gradient.
    param = torch.logit(x0.clamp(0.002, 0.998)).contiguous().clone().requires_grad_(True)
    opt = torch.optim.LBFGS([param], lr=1.0, max_iter=20, history_size=50, line_search_fn="strong_wolfe")
    done = 0

    def closure() -> torch.Tensor:
        nonlocal done
        opt.zero_grad()
        img = torch.sigmoid(param)
        c, s = criterion(img, x0, targets, weights, content_feats=content_feats)
        loss = content_weight * c.sum() + style_weight * s.sum() + tv_weight * total_variation(img).sum()
        loss.backward()
        done += 1
        if progress is not None:
            progress(done, float(loss.detach()))
        return loss

    while done < steps:
        opt.step(closure)
    with torch.no_grad():
        img = torch.sigmoid(param)
        c, s = criterion(img, x0, targets, weights, content_feats=content_feats)
    return GatysResult(img[0].detach(), float(c.sum()), float(s.sum()), done)


def evaluate(image: torch.Tensor, content: torch.Tensor, targets: dict[int, torch.Tensor], weights: torch.Tensor,
             loss_net: FeatureNet) -> tuple[float, float]:
    """(content loss, style loss) of a (3, h, w) image, as ``optimise`` measures them."""
    with torch.no_grad():
        c, s = StyleLoss(loss_net)(image.unsqueeze(0), content.unsqueeze(0), targets, weights)
    return float(c.sum()), float(s.sum())
