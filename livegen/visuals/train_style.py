"""Training the multi-style network (``livegen train style``).

One network learns every style at once (conditional instance norm): each image of a
batch gets a random style, and the loss pulls its Gram statistics toward that painting's
while keeping the content features of the input. Content images are mostly frames of
livegen's own scenes rendered at the show's size (what the network will see on stage),
plus the bundled sample photos and any folders given with ``--content``.

A temporal term keeps moving input from flickering. Like Xu et al.'s (2021) frame-difference
loss it needs no optical flow: it compares the change of the output between consecutive
frames (x1, x2) with the change of the input. Xu et al. pull the two changes together,
``|(N(x2) - N(x1)) - (x2 - x1)|^2``; measured here that barely moved flicker (weights 30,
300, 1000 gave 1.70, 1.56, 1.40 times the input's change, against 1.68 without the term),
because a painting's texture turns any moving edge into a larger change than the edge
itself. So the term caps the change instead: no output pixel may change by more than
``temporal_gain`` times its input pixel's change, ``relu(|N(x2) - N(x1)| - g |x2 - x1|)^2``;
static areas must stay still and moving ones may move, up to that gain. Photos get their
"next frame" by a small random shift plus noise.

Writes to ``--out``: ``style.pt`` (the model), ``checkpoint.pt`` (for ``--resume``),
``previews/step-NNNNN.png`` (every style on three content frames), ``loss.png`` and
``history.json`` (loss curves), ``MODEL_CARD.md``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from livegen.atomic import atomic_path, atomic_write, atomic_write_text
from livegen.visuals.clips import scene_clip, scene_kinds
from livegen.visuals.images import fit_cover, grid, image_files, load_frame, to_frame, to_tensor
from livegen.visuals.loss_net import StyleLoss, make_loss_net, resize_short_side, total_variation
from livegen.visuals.style_net import StyleNet, StyleNetConfig, save_style_net
from livegen.visuals.stylizer import pick_device
from livegen.visuals.video import write_png

log = logging.getLogger("livegen.train")

SAMPLE_PHOTOS = Path(__file__).parent / "assets" / "photos"


@dataclass
class StyleTrainConfig:
    styles: list[str]                      # style image paths
    out: str
    names: list[str] = field(default_factory=list)  # defaults to the file stems
    content: list[str] = field(default_factory=list)  # extra content folders / files
    size: int = 128                        # training crop side (the net is fully convolutional)
    render_size: tuple[int, int] = (320, 240)  # scenes render at the show's working size; crops come from them
    style_size: int = 256                  # shorter side of the style images for their Grams
    batch: int = 4
    steps: int = 4000
    lr: float = 5e-3
    content_weight: float = 3.0
    style_weight: float = 4.0
    tv_weight: float = 0.02
    temporal_weight: float = 300.0
    temporal_gain: float = 0.7             # the most an output pixel may change, per unit of input change
    loss_net: str = "random"               # "random", "vgg16" or a VGG16 .pth
    loss_seed: int = 0
    channels: tuple[int, int, int] = (16, 32, 64)
    res_blocks: int = 3
    upsample: str = "shuffle"              # "shuffle" or "nearest" (see style_net.py)
    skips: bool = True                     # encoder-to-decoder skip connections
    scene_seconds: float = 20.0            # of each scene kind, rendered once at startup
    preview_every: int = 250
    checkpoint_every: int = 250
    max_minutes: float | None = None
    threads: int | None = None
    seed: int = 0
    device: str | None = None
    resume: bool = False
    init: str | None = None                # start from this style model's weights (fine-tuning)

    def style_names(self) -> list[str]:
        return list(self.names) if self.names else [Path(p).stem for p in self.styles]


class ContentPool:
    """Pairs of (frame, next frame) at the training size, as float tensors in 0..1."""

    def __init__(self, cfg: StyleTrainConfig, rng: np.random.Generator) -> None:
        s = cfg.size
        # Render the scenes at the size the show renders them, so rings, particles and their
        # motion per frame have the sizes the network meets on stage; crops are taken from them.
        w, h = max(cfg.render_size[0], s + 8), max(cfg.render_size[1], s + 8)
        clips = []
        for i, kind in enumerate(scene_kinds()):
            for j in range(2):
                clips.append(scene_clip(kind, w, h, cfg.scene_seconds / 2, fps=30.0,
                                        seed=cfg.seed * 100 + i * 10 + j))
        self.clips = [torch.from_numpy(c).permute(0, 3, 1, 2) for c in clips]  # uint8 (T, 3, h, w)
        photos = [SAMPLE_PHOTOS] if SAMPLE_PHOTOS.is_dir() else []
        self.stills = [to_tensor(load_frame(p)) for p in image_files(photos + [Path(c) for c in cfg.content])]
        self.stills = [resize_short_side(t, max(h, s + 8)) for t in self.stills]
        self.size = s
        self.rng = rng
        self.still_share = 0.3 if self.stills else 0.0

    def _crop(self, t: torch.Tensor, y: int, x: int) -> torch.Tensor:
        return t[..., y:y + self.size, x:x + self.size]

    def pair(self) -> tuple[torch.Tensor, torch.Tensor]:
        rng, s = self.rng, self.size
        if self.rng.random() < self.still_share:
            img = self.stills[int(rng.integers(len(self.stills)))]
            h, w = img.shape[-2:]
            y, x = int(rng.integers(0, h - s - 3)), int(rng.integers(0, w - s - 3))
            a = self._crop(img, y, x)
            dy, dx = (int(v) for v in rng.integers(-2, 3, size=2))
            b = self._crop(img, y + dy if y + dy >= 0 else y, x + dx if x + dx >= 0 else x)
            b = (b + torch.from_numpy(rng.normal(0, 0.01, b.shape).astype(np.float32))).clamp(0, 1)
            if rng.random() < 0.5:
                a, b = a.flip(-1), b.flip(-1)
            return a, b
        clip = self.clips[int(rng.integers(len(self.clips)))]
        t = int(rng.integers(0, clip.shape[0] - 1))
        h, w = clip.shape[-2:]
        y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        pair = clip[t:t + 2, :, y:y + s, x:x + s].float().div(255.0)
        # Lift dark scene frames sometimes so the net also learns mid-tones and highlights.
        gain = float(rng.uniform(1.0, 2.5)) if rng.random() < 0.5 else 1.0
        pair = (pair * gain).clamp(0, 1)
        return pair[0], pair[1]

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = [self.pair() for _ in range(n)]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])

    def previews(self) -> list[torch.Tensor]:
        """Three fixed content frames for the preview grids: two scenes and a photo."""
        s = self.size * 2
        out = []
        for clip in self.clips[:: max(1, len(self.clips) // 2)][:2]:
            f = clip[clip.shape[0] * 2 // 3].float().div(255.0)
            out.append(fit_cover((f * 1.6).clamp(0, 1), s * 3 // 4, s))
        src = self.stills[0] if self.stills else self.clips[-1][-1].float().div(255.0)
        out.append(fit_cover(src, s * 3 // 4, s))
        return out


def load_style_images(cfg: StyleTrainConfig) -> list[torch.Tensor]:
    return [resize_short_side(to_tensor(load_frame(p)), cfg.style_size) for p in cfg.styles]


def preview_grid(net: StyleNet, contents: list[torch.Tensor], device: torch.device) -> np.ndarray:
    """Rows: content frames; columns: the source, then every style."""
    rows = []
    net.eval()
    with torch.no_grad():
        for c in contents:
            x = c.unsqueeze(0).to(device)
            row = [to_frame(c)]
            for i in range(net.config.n_styles):
                w = F.one_hot(torch.tensor([i]), net.config.n_styles).float().to(device)
                row.append(to_frame(net(x, w)[0]))
            rows.append(row)
    net.train()
    return grid(rows)


@dataclass
class Ranks:
    """This process's place in a ``torchrun`` launch (one process, rank 0 of 1, without one)."""

    rank: int = 0
    world: int = 1
    local: int = 0

    @property
    def lead(self) -> bool:
        """Rank 0 alone writes files and shows progress."""
        return self.rank == 0


def start_ranks(cfg: StyleTrainConfig) -> tuple[Ranks, torch.device]:
    """Join the process group when started by ``torchrun`` (it sets ``WORLD_SIZE``, ``RANK``,
    ``LOCAL_RANK``): NCCL with one GPU per process where there are GPUs, else gloo on CPUs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks(), pick_device(cfg.device)
    import torch.distributed as dist

    ranks = Ranks(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    device = pick_device(cfg.device)
    if device.type == "cuda":
        device = torch.device("cuda", ranks.local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return ranks, device


def train(cfg: StyleTrainConfig, progress: bool = True) -> dict[str, Any]:
    """Train (or resume) and write the model and its reports; returns the summary.

    Under ``torchrun --nproc_per_node N`` each process trains on its own batches (the
    effective batch is N x ``batch``) and DistributedDataParallel averages the gradients;
    rank 0 writes the checkpoints, previews, curves and the model.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    ranks, device = start_ranks(cfg)
    out = Path(cfg.out)
    (out / "previews").mkdir(parents=True, exist_ok=True)
    names = cfg.style_names()
    if len(names) != len(cfg.styles):
        raise ValueError(f"{len(names)} names for {len(cfg.styles)} style images")
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    rng = np.random.default_rng([cfg.seed, ranks.rank] if ranks.world > 1 else cfg.seed)  # its own batches
    random.seed(cfg.seed)

    t0 = time.perf_counter()
    loss_net = make_loss_net(cfg.loss_net, cfg.loss_seed).to(device)
    criterion = StyleLoss(loss_net)
    targets = {k: v.to(device) for k, v in criterion.style_targets(
        [s.to(device) for s in load_style_images(cfg)]).items()}
    pool = ContentPool(cfg, rng)
    previews = pool.previews()
    setup_s = time.perf_counter() - t0

    net = StyleNet(StyleNetConfig(styles=names, channels=tuple(cfg.channels), res_blocks=cfg.res_blocks,
                                  upsample=cfg.upsample, skips=cfg.skips)).to(device)
    if cfg.init and not (cfg.resume and (out / "checkpoint.pt").is_file()):
        _init_from(net, cfg.init)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps, eta_min=cfg.lr * 0.05)
    history: list[dict[str, float]] = []
    step, trained_s = 0, 0.0
    ckpt_path = out / "checkpoint.pt"
    if cfg.resume and ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        net.load_state_dict(ck["net"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        step, trained_s, history = int(ck["step"]), float(ck["trained_s"]), list(ck["history"])
        rng.bit_generator.state = ck["rng"]
        if ranks.world > 1:  # the checkpoint holds rank 0's generator: each rank draws its own
            rng = np.random.default_rng([cfg.seed, ranks.rank, step])
        torch.set_rng_state(ck["torch_rng"])
        log.info("resumed %s at step %d", ckpt_path, step)
    model = net
    if ranks.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)

    def save_checkpoint() -> None:
        with atomic_write(ckpt_path) as f:
            torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "step": step, "trained_s": trained_s, "history": history,
                        "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state()}, f)

    bar = None
    if progress and ranks.lead:
        from tqdm import tqdm
        bar = tqdm(total=cfg.steps, initial=step, unit="step", dynamic_ncols=True)
    n_styles = len(names)
    net.train()
    stopped = "steps"
    window: list[dict[str, float]] = []
    t_start = time.perf_counter() - trained_s
    while step < cfg.steps:
        if cfg.max_minutes is not None and _time_is_up(time.perf_counter() - t_start, cfg.max_minutes, ranks, device):
            stopped = "time"
            break
        x1, x2 = pool.batch(cfg.batch)
        x1, x2 = x1.to(device), x2.to(device)
        w = F.one_hot(torch.from_numpy(rng.integers(0, n_styles, cfg.batch)), n_styles).float().to(device)
        if cfg.temporal_weight > 0:  # both frames in one pass (instance norm is per image)
            y1, y2 = model(torch.cat([x1, x2]), torch.cat([w, w])).chunk(2)
        else:
            y1, y2 = model(x1, w), None
        c_loss, s_loss = criterion(y1, x1, targets, w)
        loss = cfg.content_weight * c_loss.mean() + cfg.style_weight * s_loss.mean()
        tv = total_variation(y1).mean()
        loss = loss + cfg.tv_weight * tv
        t_loss = torch.zeros(())
        if y2 is not None:
            t_loss = temporal_loss(y1, y2, x1, x2, cfg.temporal_gain)
            loss = loss + cfg.temporal_weight * t_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        window.append({"loss": float(loss.detach()), "content": float(c_loss.mean().detach()), "style": float(s_loss.mean().detach()),
                       "tv": float(tv.detach()), "temporal": float(t_loss.detach())})
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss):.3f}", style=f"{float(s_loss.mean()):.3f}")
        if step % 25 == 0 or step == cfg.steps:
            row = {k: float(np.mean([r[k] for r in window])) for k in window[0]}
            row["step"] = step
            row["minutes"] = (time.perf_counter() - t_start) / 60.0
            history.append(row)
            window = []
            if bar is None and ranks.lead:
                log.info("step %d/%d loss %.4f (content %.4f style %.4f temporal %.5f)", step, cfg.steps,
                         row["loss"], row["content"], row["style"], row["temporal"])
        if ranks.lead and (step % cfg.preview_every == 0 or step == cfg.steps):
            write_png(out / "previews" / f"step-{step:05d}.png", preview_grid(net, previews, device))
        if ranks.lead and step % cfg.checkpoint_every == 0:
            trained_s = time.perf_counter() - t_start
            save_checkpoint()
    if bar is not None:
        bar.close()
    trained_s = time.perf_counter() - t_start
    summary = {"config": asdict(cfg), "styles": names, "steps": step, "stopped": stopped,
               "trained_minutes": round(trained_s / 60.0, 2), "setup_seconds": round(setup_s, 1),
               "device": str(device), "threads": torch.get_num_threads(), "processes": ranks.world,
               "final": history[-1] if history else {}, "command": command_line(),
               "parameters": sum(p.numel() for p in net.parameters())}
    if ranks.world > 1:
        import torch.distributed as dist

        dist.barrier()  # every rank has finished its last step
        with torch.no_grad():  # DDP keeps the replicas equal: check it, it is cheap
            total = torch.stack([p.detach().double().sum() for p in net.parameters()]).sum().reshape(1).to(device)
            lo, hi = total.clone(), total.clone()
            dist.all_reduce(lo, dist.ReduceOp.MIN)
            dist.all_reduce(hi, dist.ReduceOp.MAX)
        if ranks.lead:
            same = abs(float(hi) - float(lo)) <= 1e-9 * max(1.0, abs(float(hi)))
            (log.info if same else log.warning)("%d processes: the weights are %s on every rank (sum %.9g .. %.9g)",
                                                ranks.world, "the same" if same else "NOT the same",
                                                float(lo), float(hi))
    if not ranks.lead:
        return summary
    save_checkpoint()
    meta = {"steps": step, "trained_minutes": round(trained_s / 60.0, 2), "loss_net": cfg.loss_net,
            "loss_seed": cfg.loss_seed, "temporal_weight": cfg.temporal_weight,
            "temporal_gain": cfg.temporal_gain, "style_size": cfg.style_size,
            "size": cfg.size, "content_weight": cfg.content_weight, "style_weight": cfg.style_weight,
            "tv_weight": cfg.tv_weight}
    save_style_net(net, out / "style.pt", meta=meta)
    write_png(out / "preview.png", preview_grid(net, previews, device))
    _write_json(out / "history.json", history)
    plot_history(history, out / "loss.png")
    _write_json(out / "summary.json", summary)
    atomic_write_text(out / "MODEL_CARD.md", model_card(summary))
    return summary


def _init_from(net: StyleNet, path: str) -> None:
    """Copy a saved model's weights into ``net``: same styles, same architecture."""
    from livegen.visuals.style_net import load_style_net

    src = load_style_net(path)
    if src.config != net.config:
        raise ValueError(f"{path}: --init model is {src.config}, this run trains {net.config}")
    net.load_state_dict(src.state_dict())
    log.info("starting from the weights of %s", path)


def _time_is_up(elapsed_s: float, max_minutes: float, ranks: Ranks, device: torch.device) -> bool:
    """``--max-minutes`` reached; under torchrun every rank stops at the same step (rank 0's clock)."""
    up = elapsed_s / 60.0 >= max_minutes
    if ranks.world <= 1:
        return up
    import torch.distributed as dist

    flag = torch.tensor([1.0 if up and ranks.lead else 0.0], device=device)
    dist.broadcast(flag, 0)
    return bool(flag.item())


def temporal_loss(y1: torch.Tensor, y2: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor,
                  gain: float) -> torch.Tensor:
    """Output change beyond ``gain`` times the input change, per pixel, squared (see the module docstring)."""
    excess = (y2 - y1).abs() - gain * (x2 - x1).abs()
    return F.relu(excess).pow(2).mean()


def _write_json(path: Path, obj: Any) -> None:
    with atomic_write(path) as f:
        f.write(json.dumps(obj, indent=1).encode())


def plot_history(history: list[dict[str, float]], path: Path) -> None:
    """Loss curves as a PNG (needs matplotlib: ``pip install livegen[train]``)."""
    if not history:
        return
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no loss.png (pip install 'livegen[train]')")
        return
    steps = [h["step"] for h in history]
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    for ax, key in zip(axes, ("loss", "content", "style", "temporal")):
        ax.plot(steps, [h[key] for h in history])
        ax.set_title(key)
        ax.set_xlabel("step")
        if all(h[key] > 0 for h in history):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)


def model_card(s: dict[str, Any]) -> str:
    c = s["config"]
    final = s.get("final") or {}
    lines = [
        "# livegen style network", "",
        "A feed-forward style-transfer network with conditional instance normalisation "
        "(Dumoulin et al. 2017): every style below lives in this one network and they blend "
        "continuously. Architecture: three stride-2 3x3 convolutions "
        f"({'/'.join(str(x) for x in c['channels'])} channels), {c['res_blocks']} residual blocks, "
        + ("pixel-shuffle upsampling" if c.get("upsample", "nearest") == "shuffle" else "nearest upsampling")
        + (", skip connections from encoder to decoder" if c.get("skips") else "")
        + f"; {s['parameters']:,} parameters, stored in fp16.", "",
        "## Styles", "",
        *[f"- `{n}` ({Path(p).name})" for n, p in zip(s["styles"], c["styles"])], "",
        "## Training", "",
        f"- Command: `{s['command']}`",
        f"- {s['steps']} steps of batch {c['batch']} at {c['size']}x{c['size']} crops "
        f"(scenes rendered at {'x'.join(str(v) for v in c.get('render_size', (c['size'],) * 2))}), "
        f"{s['trained_minutes']} min on {s['device']} with {s['threads']} thread(s) "
        f"(plus {s['setup_seconds']} s of set-up); stopped by {s['stopped']}.",
        f"- Loss network: `{c['loss_net']}`"
        + (f" (seed {c['loss_seed']}: VGG16's layout at half width, random weights, no download)"
           if c["loss_net"] == "random" else ""),
        f"- Weights: content {c['content_weight']}, style {c['style_weight']}, total variation "
        f"{c['tv_weight']}, temporal {c['temporal_weight']} (gain cap {c.get('temporal_gain')}); Adam, lr {c['lr']} cosine to 5%.",
        "- Content: frames of livegen's own scenes (ripples, flow) playing random tunes, the "
        "bundled sample photos" + (f", and {', '.join(c['content'])}" if c["content"] else "") + ".",
        f"- Final losses (mean of the last 25 steps): content {final.get('content', float('nan')):.4f}, "
        f"style {final.get('style', float('nan')):.4f}, temporal {final.get('temporal', float('nan')):.5f}.",
        "", "Curves: `loss.png`; previews of every style: `preview.png` and `previews/`.", "",
        "## Limits", "",
        "Trained briefly on a CPU with a random-weight loss network: the styles carry each "
        "painting's palette and brush texture more than its larger shapes. Train longer, or "
        "with `--loss-net vgg16`, on a GPU for stronger results.", "",
    ]
    return "\n".join(lines)


def command_line() -> str:
    args = sys.argv[1:]
    return "livegen " + " ".join(shlex.quote(a) for a in args) if args else "livegen train style"

