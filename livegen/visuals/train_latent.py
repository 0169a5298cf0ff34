"""Training the latent image models (``livegen train latent``): a VAE or a GAN on pictures.

Data: random square crops of the given pictures, of any side from the model's size up to
the picture's shorter side (log-uniform, so whole compositions as often as brush detail),
resized to 64 or 128 and flipped left-right at random (never upside down: skies stay up);
mixed with crops of livegen's own scenes (``--procedural-fraction``), so that the latent
space also holds what the show draws. Each picture is decoded once and kept as a tensor on
the training device; crops are cut on the fly.

Held out, never trained on: a strip at the end of each picture's longer side (``--holdout``,
at least one crop wide) and scene clips rendered with seeds the training clips do not use.
Fixed crops of them measure the VAE's reconstruction of pictures it never saw (MSE per
pixel and PSNR, next to the same on fixed crops it did see); for the GAN, the critic's
scores on them next to its scores on samples.

The VAE: Adam, the KL weight ramped from 0 to ``--beta`` over ``--kl-warmup`` steps (so the
encoder learns to encode before the prior pulls), learning rate cosine to 10%. The GAN:
hinge loss, spectrally normalised critic, Adam (0.0, 0.9) at 2e-4 for both, one critic step
per generator step; the saved generator is an exponential moving average of its weights
(``--ema``), with its batch-norm statistics recomputed on fresh samples, which is steadier
than the last step's weights.

Writes to ``--out``: ``latent.pt`` (:func:`save_latent_model`; the GAN's generator only),
``checkpoint.pt`` (for ``--resume``: weights, optimiser states, step and history, plain
tensors and numbers loaded with ``weights_only=True``; the random streams restart from
(seed, step)), ``previews/step-NNNNN.png`` and ``preview.png``, ``loss.png``, ``history.json``
(``train``: means over every 25 steps; ``eval``: the held-out figures at each preview),
``summary.json``, ``MODEL_CARD.md``.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from livegen.atomic import atomic_path, atomic_write, atomic_write_text
from livegen.visuals.clips import scene_clip, scene_kinds
from livegen.visuals.images import grid, image_files, load_frame, resize, to_frame, to_tensor
from livegen.visuals.latent_models import (KINDS, ConvVAE, Discriminator, Generator, LatentConfig, d_hinge_loss,
                                           g_hinge_loss, save_latent_model, vae_loss)
from livegen.visuals.stylizer import pick_device
from livegen.visuals.video import write_png
from livegen.weights import WeightsFileError, load_weights

log = logging.getLogger("livegen.train")

CHECKPOINT_FORMAT = "livegen-latent-checkpoint"
PREVIEW_COLS = 8


class LatentTrainError(ValueError):
    """A run that cannot go on (one line: what and why), e.g. a checkpoint that does not fit."""


@dataclass
class LatentTrainConfig:
    kind: str                              # "vae" or "gan"
    images: list[str]                      # picture files and folders (searched recursively)
    out: str
    size: int = 64                         # model output side: 64 or 128
    latent_dim: int = 64
    width: int = 32                        # see LatentConfig
    batch: int = 32
    steps: int = 3000
    lr: float | None = None                # default: 1e-3 for the VAE, 2e-4 for the GAN
    beta: float = 1.0                      # VAE: weight of the KL term
    kl_warmup: int = 500                   # VAE: steps over which the KL weight ramps up from 0
    ema: float = 0.999                     # GAN: decay of the saved generator's weight average (0: last weights)
    procedural_fraction: float = 0.2       # share of training crops from livegen's own scenes
    render_size: tuple[int, int] = (320, 240)  # the show's working size, which the scenes render at
    scene_seconds: float = 12.0            # of each scene kind, rendered once at start-up (10 frames/s)
    max_side: int | None = None            # pictures are scaled down to this shorter side (default 4 x size)
    holdout: float = 0.1                   # share of each picture's longer side held out
    eval_crops: int = 64                   # fixed crops per evaluation set
    log_every: int = 25                    # steps averaged into one history row
    preview_every: int = 250
    checkpoint_every: int = 250
    max_minutes: float | None = None
    threads: int | None = None
    seed: int = 0
    device: str | None = None              # None: CUDA when there is one
    resume: bool = False
    command: str | None = None             # for the card (default: this process's command line)
    files: list[str] = field(default_factory=list)  # filled in: the picture files found

    def architecture(self) -> LatentConfig:
        return LatentConfig(kind=self.kind, size=self.size, latent_dim=self.latent_dim, width=self.width)


def check_config(cfg: LatentTrainConfig) -> None:
    """Refuse settings that cannot train, in words naming the option."""
    if cfg.kind not in KINDS:
        raise LatentTrainError(f"--kind must be one of {', '.join(KINDS)}, not {cfg.kind!r}")
    cfg.architecture()  # size, latent_dim, width
    for name in ("steps", "kl_warmup", "eval_crops"):
        if getattr(cfg, name) < 0:
            raise LatentTrainError(f"--{name.replace('_', '-')} must be >= 0")
    for name in ("batch", "log_every", "preview_every", "checkpoint_every"):
        if getattr(cfg, name) < 1:
            raise LatentTrainError(f"--{name.replace('_', '-')} must be >= 1")
    if not 0.0 <= cfg.procedural_fraction <= 1.0:
        raise LatentTrainError("--procedural-fraction must be between 0 and 1")
    if not 0.0 < cfg.holdout <= 0.5:
        raise LatentTrainError("--holdout must be above 0 and at most 0.5")
    if not 0.0 <= cfg.ema < 1.0:
        raise LatentTrainError("--ema must be in [0, 1)")
    if (cfg.lr is not None and cfg.lr <= 0) or cfg.beta < 0:
        raise LatentTrainError("--lr must be positive and --beta >= 0")


# -- data --------------------------------------------------------------------------------------

def _prepare(t: torch.Tensor, size: int, max_side: int) -> torch.Tensor:
    """Scale a picture so its shorter side is at most ``max_side`` and both a training crop
    and a held-out strip of at least ``size`` fit along its longer side."""
    h, w = t.shape[-2:]
    short, long = min(h, w), max(h, w)
    k = max(size / short, 2 * size / long)
    if k <= 1.0:
        k = min(1.0, max_side / short)
    if k != 1.0:
        t = resize(t, max(size, round(h * k)), max(size, round(w * k)))
    return t


def _split(t: torch.Tensor, size: int, holdout: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(training part, held-out strip): the strip is the end of the longer side."""
    h, w = t.shape[-2:]
    axis = -1 if w >= h else -2
    long = max(h, w)
    strip = min(max(round(holdout * long), size), long - size)
    return t.narrow(axis, 0, long - strip), t.narrow(axis, long - strip, strip)


class CropPool:
    """Pictures and scene frames decoded once (tensors on ``device``); square crops on demand."""

    def __init__(self, cfg: LatentTrainConfig, device: torch.device) -> None:
        s = self.size = cfg.size
        self.device = device
        self.rng = np.random.default_rng(cfg.seed)
        self.files = list({f.resolve(): f for f in image_files(cfg.images)}.values())  # each picture once
        if not self.files and cfg.procedural_fraction < 1.0:
            raise LatentTrainError("no pictures found in --images (or use --procedural-fraction 1)")
        max_side = max(cfg.max_side or 4 * s, 2 * s)
        self.pictures: list[torch.Tensor] = []
        held: list[torch.Tensor] = []
        for f in self.files:
            part, strip = _split(_prepare(to_tensor(load_frame(f)), s, max_side), s, cfg.holdout)
            self.pictures.append(part.contiguous().to(device))
            held.append(strip.contiguous().to(device))
        self.clips: list[torch.Tensor] = []  # uint8 (T, 3, h, w)
        eval_clips: list[torch.Tensor] = []
        if cfg.procedural_fraction > 0:
            w, h = max(cfg.render_size[0], s + 8), max(cfg.render_size[1], s + 8)
            for i, kind in enumerate(scene_kinds()):
                for j in range(2):  # two clips per kind; seeds ...0 and ...1 train, ...9 is held out
                    self.clips.append(self._clip(kind, w, h, cfg.scene_seconds / 2, 10.0, cfg.seed * 100 + i * 10 + j))
                eval_clips.append(self._clip(kind, w, h, max(0.5, cfg.scene_seconds / 6), 5.0,
                                             cfg.seed * 100 + i * 10 + 9))
        self.scene_share = cfg.procedural_fraction if self.pictures else 1.0
        # Fixed evaluation crops: their own random stream, no flips, the same on every resume.
        erng = np.random.default_rng([cfg.seed, 1])
        n = cfg.eval_crops
        self.heldout: dict[str, torch.Tensor] = {}
        self.seen: dict[str, torch.Tensor] = {}
        if self.pictures and n:
            self.heldout["paintings"] = torch.stack([self._crop(held[i % len(held)], erng, False) for i in range(n)])
            # Seen crops no larger than the held-out ones of the same picture: the two errors compare.
            self.seen["paintings"] = torch.stack([self._crop(self.pictures[i % len(held)], erng, False,
                                                             min(held[i % len(held)].shape[-2:])) for i in range(n)])
        if self.clips and n:
            self.heldout["scenes"] = torch.stack([self._frame_crop(eval_clips[i % len(eval_clips)], erng, False)
                                                  for i in range(n)])
            self.seen["scenes"] = torch.stack([self._frame_crop(self.clips[i % len(self.clips)], erng, False)
                                               for i in range(n)])

    def _clip(self, kind: str, w: int, h: int, seconds: float, fps: float, seed: int) -> torch.Tensor:
        frames = scene_clip(kind, w, h, seconds, fps=fps, seed=seed)
        return torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous().to(self.device)

    def _crop(self, t: torch.Tensor, rng: np.random.Generator, flip: bool = True,
              largest: int | None = None) -> torch.Tensor:
        """A random square of ``t`` (3, h, w), side log-uniform in [size, shorter side or ``largest``],
        at size x size."""
        s = self.size
        h, w = t.shape[-2:]
        top = min(h, w, largest or h)
        side = min(top, max(s, round(math.exp(rng.uniform(math.log(s), math.log(top)))))) if top > s else top
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        c = t[:, y:y + side, x:x + side]
        if c.dtype == torch.uint8:
            c = c.float().div_(255.0)
        if side != s:
            c = F.interpolate(c.unsqueeze(0), size=(s, s), mode="bilinear", antialias=True, align_corners=False)[0]
        if flip and rng.random() < 0.5:
            c = c.flip(-1)
        return c

    def _frame_crop(self, clip: torch.Tensor, rng: np.random.Generator, flip: bool = True) -> torch.Tensor:
        return self._crop(clip[int(rng.integers(clip.shape[0]))], rng, flip)

    def batch(self, n: int) -> torch.Tensor:
        """(n, 3, size, size) training crops in 0..1."""
        rng = self.rng
        out = []
        for _ in range(n):
            if self.clips and rng.random() < self.scene_share:
                out.append(self._frame_crop(self.clips[int(rng.integers(len(self.clips)))], rng))
            else:
                out.append(self._crop(self.pictures[int(rng.integers(len(self.pictures)))], rng))
        return torch.stack(out)


# -- the two models' training ------------------------------------------------------------------

def psnr(mse: float) -> float:
    """Peak signal-to-noise ratio in dB of a mean squared error on 0..1 pictures."""
    return float("inf") if mse <= 0 else 10.0 * math.log10(1.0 / mse)


@torch.no_grad()
def reconstruction_mse(model: ConvVAE, crops: torch.Tensor, batch: int = 64) -> float:
    """Mean squared error per pixel (0..1 scale) of the VAE's reconstructions (from the mean ``z``)."""
    was = model.training
    model.eval()
    err = sum(float((model(c)[0] - c).pow(2).sum()) for c in crops.split(batch))
    model.train(was)
    return err / crops.numel()


def _cosine(lr: float, step: int, steps: int) -> float:
    """Cosine from ``lr`` to 10% of it over ``steps``: stateless, so a resume needs no scheduler."""
    return lr * (0.1 + 0.45 * (1.0 + math.cos(math.pi * min(1.0, step / max(1, steps)))))


class _VAETrainer:
    def __init__(self, cfg: LatentTrainConfig, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        self.model = ConvVAE(cfg.architecture()).to(device)
        self.lr = cfg.lr or 1e-3
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.lr)
        self.pixels = 3 * cfg.size * cfg.size

    def state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict()}

    def load(self, ck: dict[str, Any]) -> None:
        self.model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["opt"])

    def step(self, x: torch.Tensor, step: int) -> dict[str, float]:
        cfg = self.cfg
        for g in self.opt.param_groups:
            g["lr"] = _cosine(self.lr, step, cfg.steps)
        beta = cfg.beta * min(1.0, (step + 1) / cfg.kl_warmup) if cfg.kl_warmup else cfg.beta
        recon, mu, logvar = self.model(x)
        loss, rec, kl = vae_loss(recon, x, mu, logvar, beta)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        rec_f, kl_f = float(rec.detach()), float(kl.detach())
        # "loss" is at the full KL weight, so rows stay comparable during the warm-up.
        return {"loss": rec_f + cfg.beta * kl_f, "rec": rec_f, "kl": kl_f, "mse": rec_f / self.pixels, "beta": beta}

    def postfix(self, row: dict[str, float]) -> dict[str, str]:
        return {"mse": f"{row['mse']:.4f}", "kl": f"{row['kl']:.1f}"}

    def evaluate(self, pool: CropPool) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, crops in pool.heldout.items():
            out[f"heldout_{name}_mse"] = reconstruction_mse(self.model, crops)
        for name, crops in pool.seen.items():
            out[f"seen_{name}_mse"] = reconstruction_mse(self.model, crops)
        return out

    def decoder(self) -> nn.Module:
        return self.model

    def preview(self, pool: CropPool, z: torch.Tensor) -> np.ndarray:
        """Rows: held-out crops, their reconstructions, then samples from the fixed ``z``."""
        src = next(iter(pool.heldout.values()), None)
        if src is None:
            src = next(iter(pool.seen.values()), z[:0].new_zeros(0, 3, self.cfg.size, self.cfg.size))
        src = src[:PREVIEW_COLS]
        self.model.eval()
        with torch.no_grad():
            recon = self.model(src)[0]
            samples = self.model.decode(z)
        self.model.train()
        rows = [[to_frame(t) for t in src], [to_frame(t) for t in recon]] if len(src) else []
        rows += [[to_frame(t) for t in samples[i:i + PREVIEW_COLS]] for i in range(0, len(samples), PREVIEW_COLS)]
        return grid(rows)


class _GANTrainer:
    def __init__(self, cfg: LatentTrainConfig, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        arch = cfg.architecture()
        self.g = Generator(arch).to(device)
        self.d = Discriminator(arch).to(device)
        self.g_ema = copy.deepcopy(self.g) if cfg.ema > 0 else None
        lr = cfg.lr or 2e-4
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=lr, betas=(0.0, 0.9))
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=lr, betas=(0.0, 0.9))
        self._stats_fresh = False  # the saved generator's batch-norm statistics fit its weights

    def state(self) -> dict[str, Any]:
        st = {"g": self.g.state_dict(), "d": self.d.state_dict(),
              "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict()}
        if self.g_ema is not None:
            st["g_ema"] = self.g_ema.state_dict()
        return st

    def load(self, ck: dict[str, Any]) -> None:
        self.g.load_state_dict(ck["g"])
        self.d.load_state_dict(ck["d"])
        self.opt_g.load_state_dict(ck["opt_g"])
        self.opt_d.load_state_dict(ck["opt_d"])
        if self.g_ema is not None:
            self.g_ema.load_state_dict(ck["g_ema"] if "g_ema" in ck else ck["g"])
        self._stats_fresh = False

    def step(self, real: torch.Tensor, step: int) -> dict[str, float]:
        self.g.train()  # decoder() may have left it in eval mode
        z = torch.randn(real.shape[0], self.cfg.latent_dim, device=self.device)
        fake = self.g(z)
        s_real, s_fake = self.d(torch.cat([real, fake.detach()])).split(len(real))  # one pass: no batch norm in D
        d_loss = d_hinge_loss(s_real, s_fake)
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        self.d.requires_grad_(False)  # the generator's step needs no critic weight gradients
        g_loss = g_hinge_loss(self.d(fake))
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        self.d.requires_grad_(True)
        if self.g_ema is not None:
            decay = min(self.cfg.ema, (1 + step) / (10 + step))  # a short memory at the start
            with torch.no_grad():
                for pe, p in zip(self.g_ema.parameters(), self.g.parameters()):
                    pe.lerp_(p, 1.0 - decay)
        self._stats_fresh = False
        return {"d_loss": float(d_loss.detach()), "g_loss": float(g_loss.detach()),
                "d_real": float(s_real.detach().mean()), "d_fake": float(s_fake.detach().mean())}

    def postfix(self, row: dict[str, float]) -> dict[str, str]:
        return {"d": f"{row['d_loss']:.3f}", "g": f"{row['g_loss']:.3f}"}

    @torch.no_grad()
    def decoder(self) -> nn.Module:
        """The generator that is saved (the average, if any), its batch-norm statistics
        recomputed on fresh samples (averaged weights never ran on a batch of their own)."""
        g = self.g_ema if self.g_ema is not None else self.g
        if not self._stats_fresh:
            norms = [m for m in g.modules() if isinstance(m, nn.BatchNorm2d)]
            for m in norms:
                m.reset_running_stats()
                m.momentum = None  # a plain average over the batches below
            gen = torch.Generator().manual_seed(self.cfg.seed + 2)
            g.train()
            for _ in range(8):
                g(torch.randn(64, self.cfg.latent_dim, generator=gen).to(self.device))
            for m in norms:
                m.momentum = 0.1
            self._stats_fresh = True
        return g.eval()

    def evaluate(self, pool: CropPool) -> dict[str, float]:
        """The critic's mean score on held-out and seen crops and on generated pictures."""
        out: dict[str, float] = {}
        self.d.eval()
        with torch.no_grad():
            for prefix, sets in (("heldout", pool.heldout), ("seen", pool.seen)):
                for name, crops in sets.items():
                    out[f"{prefix}_{name}_score"] = float(self.d(crops).mean())
            gen = torch.Generator().manual_seed(self.cfg.seed + 3)
            z = torch.randn(max(64, self.cfg.eval_crops), self.cfg.latent_dim, generator=gen).to(self.device)
            out["sample_score"] = float(self.d(self.decoder()(z)).mean())
        self.d.train()
        return out

    def scores(self, pool: CropPool, n: int = 256) -> dict[str, dict[str, float]]:
        """Mean and spread of the critic's scores: held-out real crops vs the saved generator's samples."""
        self.d.eval()
        res: dict[str, dict[str, float]] = {}
        with torch.no_grad():
            gen = torch.Generator().manual_seed(self.cfg.seed + 4)
            z = torch.randn(n, self.cfg.latent_dim, generator=gen).to(self.device)
            sets = {f"heldout_{k}": v for k, v in pool.heldout.items()}
            sets["samples"] = torch.cat([self.decoder()(c) for c in z.split(64)])
            for name, x in sets.items():
                s = torch.cat([self.d(c) for c in x.split(64)])
                res[name] = {"mean": float(s.mean()), "std": float(s.std()) if len(s) > 1 else 0.0, "n": len(s)}
        self.d.train()
        return res

    def preview(self, pool: CropPool, z: torch.Tensor) -> np.ndarray:
        """Samples of the saved generator from the fixed ``z``."""
        with torch.no_grad():
            samples = self.decoder()(z)
        return grid([[to_frame(t) for t in samples[i:i + PREVIEW_COLS]] for i in range(0, len(samples), PREVIEW_COLS)])


# -- the run -----------------------------------------------------------------------------------

def _device(cfg: LatentTrainConfig) -> torch.device:
    try:
        device = pick_device(cfg.device)
    except RuntimeError as e:
        raise LatentTrainError(f"--device {cfg.device}: {' '.join(str(e).split())[:120]}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LatentTrainError(f"--device {cfg.device}: no CUDA device here")
    return device


def _load_checkpoint(path: Path, cfg: LatentTrainConfig, trainer: Any) -> dict[str, Any]:
    """The checkpoint's plain data, its weights loaded into ``trainer``; one-line errors."""
    try:
        ck = load_weights(path)
    except WeightsFileError as e:
        raise LatentTrainError(f"{path}: cannot resume from it: {e}") from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise LatentTrainError(f"{path}: not a livegen latent training checkpoint; cannot resume")
    arch = asdict(cfg.architecture())
    if ck.get("config") != arch:
        have = ck.get("config") if isinstance(ck.get("config"), dict) else {}

        def desc(c: dict[str, Any]) -> str:
            return " ".join(f"{k}={c.get(k)}" for k in ("kind", "size", "latent_dim", "width"))

        raise LatentTrainError(f"{path}: trained as {desc(have)}, this run asks for {desc(arch)}: resume with "
                               "the same --kind, --size, --latent-dim and --width, or choose another --out")
    try:
        trainer.load(ck)
        return {"step": int(ck["step"]), "trained_s": float(ck["trained_s"]),
                "history": list(ck["history"]), "evals": list(ck["evals"])}
    except Exception as e:
        reason = " ".join(str(e).split())[:160]
        raise LatentTrainError(f"{path}: checkpoint does not fit this model ({reason}); cannot resume") from None


def _reseed(cfg: LatentTrainConfig, pool: CropPool, step: int) -> None:
    """Random streams that depend only on (seed, step), so a checkpoint needs none of their state."""
    torch.manual_seed(cfg.seed * 1_000_003 + step)
    pool.rng = np.random.default_rng([cfg.seed, 0, step])


def train(cfg: LatentTrainConfig, progress: bool = True) -> dict[str, Any]:
    """Train (or resume) and write the model and its reports; returns the summary."""
    check_config(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = _device(cfg)
    out = Path(cfg.out)
    (out / "previews").mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)  # the initial weights
    trainer: _VAETrainer | _GANTrainer = (_VAETrainer if cfg.kind == "vae" else _GANTrainer)(cfg, device)
    step, trained_s, history, evals = 0, 0.0, [], []
    ckpt_path = out / "checkpoint.pt"
    if cfg.resume:  # before the (slower) data set-up, so a bad checkpoint is said at once
        if ckpt_path.is_file():
            ck = _load_checkpoint(ckpt_path, cfg, trainer)
            step, trained_s, history, evals = ck["step"], ck["trained_s"], ck["history"], ck["evals"]
            log.info("resuming %s at step %d", ckpt_path, step)
        else:
            log.warning("%s: no checkpoint to resume from; starting at step 0", ckpt_path)

    t0 = time.perf_counter()
    pool = CropPool(cfg, device)
    cfg.files = [str(f) for f in pool.files]
    setup_s = time.perf_counter() - t0
    z_fixed = torch.randn(4 * PREVIEW_COLS if cfg.kind == "gan" else 2 * PREVIEW_COLS, cfg.latent_dim,
                          generator=torch.Generator().manual_seed(cfg.seed + 1)).to(device)
    _reseed(cfg, pool, step)

    def save_checkpoint() -> None:
        payload = {"format": CHECKPOINT_FORMAT, "config": asdict(cfg.architecture()), "step": step,
                   "trained_s": trained_s, "history": history, "evals": evals, **trainer.state()}
        with atomic_write(ckpt_path) as f:
            torch.save(payload, f)

    def preview_and_eval() -> None:
        write_png(out / "previews" / f"step-{step:05d}.png", trainer.preview(pool, z_fixed))
        evals.append({"step": step, **trainer.evaluate(pool)})

    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=cfg.steps, initial=min(step, cfg.steps), unit="step", dynamic_ncols=True)
    first_step, stopped = step, "steps"
    window: list[dict[str, float]] = []
    t_start = time.perf_counter() - trained_s
    t_session = time.perf_counter()
    while step < cfg.steps:
        if cfg.max_minutes is not None and (time.perf_counter() - t_start) / 60.0 >= cfg.max_minutes:
            stopped = "time"
            break
        row = trainer.step(pool.batch(cfg.batch), step)
        step += 1
        window.append(row)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(trainer.postfix(row))
        if step % cfg.log_every == 0 or step == cfg.steps:
            mean = {k: float(np.mean([r[k] for r in window])) for k in window[0]}
            history.append({"step": step, "minutes": (time.perf_counter() - t_start) / 60.0, **mean})
            window = []
            if bar is None:
                log.info("step %d/%d %s", step, cfg.steps, " ".join(f"{k} {v:.4g}" for k, v in mean.items()))
        if step % cfg.preview_every == 0:
            preview_and_eval()
        if step % cfg.checkpoint_every == 0:
            trained_s = time.perf_counter() - t_start
            save_checkpoint()
    if bar is not None:
        bar.close()
    if window:  # stopped by time between two rows
        mean = {k: float(np.mean([r[k] for r in window])) for k in window[0]}
        history.append({"step": step, "minutes": (time.perf_counter() - t_start) / 60.0, **mean})
    session_steps = step - first_step
    s_per_step = (time.perf_counter() - t_session) / session_steps if session_steps else None
    trained_s = time.perf_counter() - t_start
    save_checkpoint()
    if not evals or evals[-1]["step"] != step:
        preview_and_eval()
    write_png(out / "preview.png", trainer.preview(pool, z_fixed))

    summary: dict[str, Any] = {
        "config": asdict(cfg), "kind": cfg.kind, "steps": step, "stopped": stopped,
        "trained_minutes": round(trained_s / 60.0, 2), "setup_seconds": round(setup_s, 1),
        "seconds_per_step": round(s_per_step, 4) if s_per_step else None,
        "device": str(device), "threads": torch.get_num_threads(),
        "images": cfg.files, "sources": _sources(pool.files),
        "final": history[-1] if history else {}, "command": cfg.command or command_line(),
        "parameters": sum(p.numel() for p in trainer.decoder().parameters()),
        "finished": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    if isinstance(trainer, _VAETrainer):
        figures = {}
        for prefix, sets in (("heldout", pool.heldout), ("seen", pool.seen)):
            for name, crops in sets.items():
                mse = reconstruction_mse(trainer.model, crops)
                figures[f"{prefix}_{name}"] = {"mse": mse, "psnr": psnr(mse), "crops": len(crops)}
        if pool.heldout:
            allc = torch.cat(list(pool.heldout.values()))
            mse = reconstruction_mse(trainer.model, allc)
            figures["heldout"] = {"mse": mse, "psnr": psnr(mse), "crops": len(allc)}
        summary["reconstruction"] = figures
    else:
        summary["critic"] = trainer.scores(pool)
        if history:
            summary["final_losses"] = {"d_hinge": history[-1]["d_loss"], "g_hinge": history[-1]["g_loss"]}

    meta: dict[str, Any] = {"kind": cfg.kind, "steps": step, "batch": cfg.batch,
                            "trained_minutes": summary["trained_minutes"], "device": str(device),
                            "finished": summary["finished"], "command": summary["command"],
                            "data": [Path(f).name for f in cfg.files],
                            "procedural_fraction": cfg.procedural_fraction}
    if cfg.kind == "vae":
        meta["beta"] = cfg.beta
        if "heldout" in summary["reconstruction"]:
            meta["heldout_mse"] = summary["reconstruction"]["heldout"]["mse"]
            meta["heldout_psnr"] = summary["reconstruction"]["heldout"]["psnr"]
    else:
        meta["ema"] = cfg.ema
    save_latent_model(trainer.decoder(), out / "latent.pt", meta=meta)
    _write_json(out / "history.json", {"train": history, "eval": evals})
    plot_history(history, evals, cfg.kind, out / "loss.png")
    _write_json(out / "summary.json", summary)
    atomic_write_text(out / "MODEL_CARD.md", model_card(summary))
    return summary


def _sources(files: list[Path]) -> list[str]:
    """The SOURCES.md files (attribution and licence) beside the pictures."""
    found: list[str] = []
    for f in files:
        for d in (f.parent, f.parent.parent):
            p = d / "SOURCES.md"
            if p.is_file() and str(p) not in found:
                found.append(str(p))
                break
    return found


def _write_json(path: Path, obj: Any) -> None:
    with atomic_write(path) as f:
        f.write(json.dumps(obj, indent=1).encode())


_PANELS = {
    "vae": [("loss per picture (reconstruction + beta KL)", [("train", "loss")]),
            ("MSE per pixel", [("train", "mse"), ("held-out paintings", "heldout_paintings_mse"),
                               ("held-out scenes", "heldout_scenes_mse")]),
            ("KL (nats per picture)", [("train", "kl")])],
    "gan": [("critic hinge loss", [("train", "d_loss")]),
            ("generator hinge loss", [("train", "g_loss")]),
            ("critic scores", [("real", "d_real"), ("fake", "d_fake"),
                               ("held-out paintings", "heldout_paintings_score"),
                               ("samples (saved G)", "sample_score")])],
}


def plot_history(history: list[dict[str, float]], evals: list[dict[str, float]], kind: str, path: Path) -> None:
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
    panels = _PANELS[kind]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.4))
    for ax, (title, series) in zip(axes, panels):
        for label, key in series:
            rows = history if key in history[0] else [e for e in evals if key in e]
            if rows:
                ax.plot([r["step"] for r in rows], [r[key] for r in rows], label=label,
                        marker="o" if rows is not history else None, markersize=3)
        ax.set_title(title)
        ax.set_xlabel("step")
        values = [r[k] for _, k in series for r in history + evals if k in r]
        if values and all(v > 0 for v in values):
            ax.set_yscale("log")
        if len(series) > 1:
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)


def model_card(s: dict[str, Any]) -> str:
    c = s["config"]
    vae = s["kind"] == "vae"
    names = [Path(f).name for f in s["images"]]
    what = ("a convolutional variational autoencoder (Kingma and Welling 2014): an encoder to a Gaussian over "
            "the latent vector and a decoder back; the show uses the decoder" if vae else
            "the generator of a DCGAN-style GAN (Radford et al. 2016) trained against a spectrally normalised "
            "critic with the hinge loss; the critic is not shipped")
    lines = [
        f"# livegen latent {'VAE' if vae else 'GAN'}", "",
        f"A latent image model for the latent visuals source: {what}. It turns a {c['latent_dim']}-number latent "
        f"vector into a {c['size']}x{c['size']} picture; walking the vector with the music morphs the picture. "
        f"Width {c['width']}; {s['parameters']:,} parameters in the shipped part, stored in fp16 "
        "(`livegen.visuals.latent_models.load_latent_model`).", "",
        "## Training", "",
        f"- Command: `{s['command']}`",
        f"- {s['steps']} steps of batch {c['batch']}, {s['trained_minutes']} min on {s['device']} with "
        f"{s['threads']} thread(s) (plus {s['setup_seconds']} s of set-up"
        + (f"; {s['seconds_per_step']} s per step" if s.get("seconds_per_step") else "")
        + f"); stopped by {s['stopped']}; finished {s['finished']}.",
        (f"- Adam, learning rate {c['lr'] or 1e-3} cosine to 10%; KL weight beta {c['beta']}, "
         f"ramped up from 0 over the first {c['kl_warmup']} steps." if vae else
         f"- Adam (betas 0.0, 0.9), learning rate {c['lr'] or 2e-4} for both; one critic step per generator step; "
         + (f"the shipped generator is the moving average of its weights (decay {c['ema']}) with batch-norm "
            "statistics recomputed on 512 samples." if c["ema"] else "the shipped generator is the last step's.")),
        "", "## Data", "",
        f"Random square crops (side from {c['size']} px up to the picture's shorter side, scaled to "
        f"{c['size']}x{c['size']}, flipped left-right at random) of {len(names)} picture(s), and "
        f"{round(100 * c['procedural_fraction'])}% crops of livegen's own scenes rendered at "
        f"{c['render_size'][0]}x{c['render_size'][1]}:", "",
        *[f"- {n}" for n in names],
        "",
        ("Sources, painters and licences: " + ", ".join(f"`{p}`" for p in s["sources"]) + "."
         if s["sources"] else "No SOURCES.md was found beside the pictures: state their sources and licences here."),
        "", "## How good (measured)", "",
        f"Held out from training: the last {round(100 * c['holdout'])}% of each picture's longer side (at least "
        "one crop wide) and scene clips rendered with seeds the training clips do not use; "
        f"{c['eval_crops']} fixed crops of each, no wider than the held-out strip (so more detail than whole "
        "compositions), and as many crops of the trained-on parts at the same scales to compare with.", "",
    ]
    if vae:
        r = s["reconstruction"]
        lines += ["| crops | MSE per pixel (0..1) | PSNR (dB) |", "|---|---|---|"]
        for key, label in (("heldout", "held out, all"), ("heldout_paintings", "held-out pictures"),
                           ("heldout_scenes", "held-out scenes"),
                           ("seen_paintings", "trained-on pictures, same scales"),
                           ("seen_scenes", "trained-on scenes")):
            if key in r:
                lines.append(f"| {label} | {r[key]['mse']:.5f} | {r[key]['psnr']:.2f} |")
        lines += ["", "Reconstructions from the mean of the encoder's Gaussian; PSNR of the mean MSE. "
                  "A held-out error well above the trained one means the model memorised its crops."]
    else:
        cr = s["critic"]
        fl = s.get("final_losses", {})
        if fl:
            lines.append(f"Final hinge losses (mean of the last {c['log_every']} steps): critic {fl['d_hinge']:.4f}, "
                         f"generator {fl['g_hinge']:.4f}.")
            lines.append("")
        lines += ["| critic score on | mean | std | n |", "|---|---|---|---|"]
        for name, v in cr.items():
            lines.append(f"| {name.replace('_', ' ')} | {v['mean']:.3f} | {v['std']:.3f} | {v['n']} |")
        lines += ["", "A critic that scores held-out pictures far above samples still tells them apart; "
                  "scores near each other mean it no longer can (or has collapsed: check the previews)."]
    lines += [
        "", "Curves: `loss.png` and `history.json`; previews from fixed latent vectors: `preview.png` and `previews/`"
        + (" (top rows: held-out crops and their reconstructions)." if vae else "."), "",
        "## Limits", "",
        f"Small, and trained briefly on few pictures: it makes {c['size']}x{c['size']} impressions of their "
        "palettes and large shapes, not new paintings; "
        + ("its pictures are blurry, as a VAE's are, and pictures far from the training crops are "
           "reconstructed as their nearest blur. " if vae else
           "a small GAN can leave out parts of its data (mode collapse): walk the latent space in the previews "
           "before a show. ")
        + "The held-out figures measure detail-sized crops only (see above). Train longer, with more pictures, "
        "on a GPU for sharper results.", "",
    ]
    return "\n".join(lines)


def command_line() -> str:
    args = sys.argv[1:]
    return "livegen " + " ".join(shlex.quote(a) for a in args) if args else "livegen train latent"
