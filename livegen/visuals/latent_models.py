"""Latent image models: a small convolutional VAE and a small DCGAN-style GAN.

Both turn a latent vector ``z`` (N, latent_dim) into pictures (N, 3, size, size) in 0..1,
at 64x64 or 128x128: the visuals pipeline upscales them and may pass them through the
style network. Walking ``z`` with the music (:mod:`livegen.visuals.latent_source`) gives
images that morph continuously, which is what artists exploring a latent space are after.

- :class:`ConvVAE` (Kingma and Welling 2014): an encoder to a Gaussian over ``z`` and a
  decoder back. Its latent space is smooth by construction (the KL term), so any path in
  it decodes to a plausible picture; it also reconstructs, which gives a measurable error.
- :class:`Generator` and :class:`Discriminator` (Radford et al. 2016, "DCGAN"): transposed
  convolutions up from 4x4. The discriminator's layers are spectrally normalised (Miyato
  et al. 2018) and the losses are the hinge loss (Lim and Ye 2017), the usual pair that
  keeps a small GAN from collapsing without tuning.

Both decoders end in the same shape: a stack of "double the size" stages from 4x4, so a
64x64 model has four and a 128x128 one five. ``decode(z)`` is the one call the live source
needs; ``LatentModel`` names that contract.

Files: a dict of plain tensors (fp16) and strings, loaded with ``torch.load(weights_only=True)``
(:func:`livegen.weights.load_weights`); anything wrong is one :class:`LatentModelError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from livegen.atomic import atomic_write
from livegen.weights import WeightsFileError, load_weights

FILE_FORMAT = "livegen-latent"
FORMAT_VERSION = 1
KINDS = ("vae", "gan")
SIZES = (64, 128)


class LatentModelError(RuntimeError):
    """A latent model file that cannot be used (one line: which file and why)."""


@dataclass(frozen=True)
class LatentConfig:
    """The shape of a latent model: what a file must say to be rebuilt."""

    kind: str = "vae"  # "vae" or "gan"
    size: int = 64  # output side in pixels: 64 or 128
    latent_dim: int = 64
    width: int = 32  # channels of the largest feature map; they double at each halving, up to 8x

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.size not in SIZES:
            raise ValueError(f"size must be one of {', '.join(map(str, SIZES))}, not {self.size}")
        if self.latent_dim < 2 or self.width < 4:
            raise ValueError("latent_dim must be >= 2 and width >= 4")

    @property
    def stages(self) -> int:
        """How many size doublings from 4x4 to ``size``."""
        return int(math.log2(self.size // 4))

    def channels(self) -> list[int]:
        """Channels at 4x4, 8x8, ... up to ``size / 2``: widest at the smallest map."""
        return [self.width * min(8, 2 ** (self.stages - 1 - i)) for i in range(self.stages)]


class LatentModel(Protocol):
    """What the live source needs from a model: ``z`` (N, latent_dim) -> images in 0..1."""

    config: LatentConfig

    def decode(self, z: torch.Tensor) -> torch.Tensor: ...


def _up_stack(config: LatentConfig, norm: bool) -> nn.Sequential:
    """From (N, C0, 4, 4) to (N, 3, size, size) logits: transposed convs doubling the size."""
    chans = config.channels()
    layers: list[nn.Module] = []
    for c_in, c_out in zip(chans, chans[1:]):
        layers.append(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=not norm))
        if norm:
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(nn.ReLU(inplace=True))
    layers.append(nn.ConvTranspose2d(chans[-1], 3, 4, stride=2, padding=1))
    return nn.Sequential(*layers)


def _down_stack(config: LatentConfig, spectral: bool) -> nn.Sequential:
    """From (N, 3, size, size) to (N, C0, 4, 4): stride-2 convs halving the size."""
    chans = list(reversed(config.channels()))
    wrap = spectral_norm if spectral else (lambda m: m)
    layers: list[nn.Module] = [wrap(nn.Conv2d(3, chans[0], 4, stride=2, padding=1)), nn.LeakyReLU(0.2, inplace=True)]
    for c_in, c_out in zip(chans, chans[1:]):
        layers += [wrap(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)), nn.LeakyReLU(0.2, inplace=True)]
    return nn.Sequential(*layers)


class ConvVAE(nn.Module):
    """Encoder to (mu, log variance) of ``z``; decoder from ``z`` to a picture."""

    def __init__(self, config: LatentConfig) -> None:
        super().__init__()
        if config.kind != "vae":
            raise ValueError("ConvVAE needs a config of kind 'vae'")
        self.config = config
        c0 = config.channels()[0]
        self.encoder = _down_stack(config, spectral=False)
        self.to_stats = nn.Linear(c0 * 16, 2 * config.latent_dim)
        self.from_z = nn.Linear(config.latent_dim, c0 * 16)
        self.decoder = _up_stack(config, norm=False)  # no batch norm: decodes one frame alike

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images in 0..1 -> (mu, logvar), each (N, latent_dim)."""
        h = self.encoder(x * 2.0 - 1.0).flatten(1)
        mu, logvar = self.to_stats(h).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.from_z(z)).view(z.shape[0], -1, 4, 4)
        return torch.sigmoid(self.decoder(h))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(reconstruction, mu, logvar), sampling ``z`` with the reparameterisation trick."""
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decode(z), mu, logvar


def vae_loss(recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
             beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, reconstruction, KL) per image: summed squared error over pixels, KL to N(0, I)."""
    n = x.shape[0]
    rec = F.mse_loss(recon, x, reduction="sum") / n
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / n
    return rec + beta * kl, rec, kl


class Generator(nn.Module):
    """The GAN's generator: ``z`` -> 4x4 -> ... -> size x size, batch-normalised (DCGAN)."""

    def __init__(self, config: LatentConfig) -> None:
        super().__init__()
        if config.kind != "gan":
            raise ValueError("Generator needs a config of kind 'gan'")
        self.config = config
        c0 = config.channels()[0]
        self.from_z = nn.Sequential(nn.ConvTranspose2d(config.latent_dim, c0, 4, bias=False),
                                    nn.BatchNorm2d(c0), nn.ReLU(inplace=True))
        self.up = _up_stack(config, norm=True)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.up(self.from_z(z.view(z.shape[0], -1, 1, 1))))

    forward = decode


class Discriminator(nn.Module):
    """The GAN's critic: spectrally normalised convolutions to one score per image."""

    def __init__(self, config: LatentConfig) -> None:
        super().__init__()
        self.config = config
        c0 = config.channels()[0]
        self.features = _down_stack(config, spectral=True)
        self.score = spectral_norm(nn.Conv2d(c0, 1, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.score(self.features(x * 2.0 - 1.0)).flatten()


def d_hinge_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The critic's hinge loss: real scores above +1, fake below -1."""
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def g_hinge_loss(fake: torch.Tensor) -> torch.Tensor:
    """The generator's hinge loss: raise the critic's score of its pictures."""
    return -fake.mean()


def build_model(config: LatentConfig) -> nn.Module:
    """The model that decodes for ``config``: a ConvVAE or a GAN Generator."""
    return ConvVAE(config) if config.kind == "vae" else Generator(config)


def save_latent_model(model: nn.Module, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write the decoding model (a VAE whole, a GAN's generator) as fp16 tensors plus its config (atomic)."""
    config: LatentConfig = model.config  # type: ignore[assignment]
    payload = {
        "format": FILE_FORMAT,
        "version": FORMAT_VERSION,
        "config": {"kind": config.kind, "size": config.size, "latent_dim": config.latent_dim, "width": config.width},
        # fp16 halves the file (the show decodes in fp32; the difference is far below a pixel step)
        "state_dict": {k: (v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.detach().cpu()).contiguous()
                       for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        torch.save(payload, f)
    return path


def load_latent_model(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Load a model saved by :func:`save_latent_model`, in eval mode on ``device``."""
    path = Path(path)
    if not path.is_file():
        raise LatentModelError(f"{path}: no such latent model file")
    try:
        payload = load_weights(path)
    except WeightsFileError as e:
        raise LatentModelError(f"{path}: not a readable latent model: {e}") from None
    if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT:
        raise LatentModelError(f"{path}: not a livegen latent model")
    if payload.get("version") != FORMAT_VERSION:
        raise LatentModelError(f"{path}: latent model format version {payload.get('version')!r}, "
                               f"this livegen reads version {FORMAT_VERSION}")
    try:
        cfg = payload["config"]
        config = LatentConfig(kind=str(cfg["kind"]), size=int(cfg["size"]), latent_dim=int(cfg["latent_dim"]),
                              width=int(cfg["width"]))
        model = build_model(config)
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()})
    except Exception as e:
        reason = " ".join(str(e).split())[:160]
        raise LatentModelError(f"{path}: latent model does not fit its own config ({reason})") from None
    model.meta = dict(payload.get("meta") or {})  # type: ignore[assignment]
    return model.to(device).eval()


def default_device() -> torch.device:
    """CUDA when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
