"""Training the latent image models (``livegen train latent``): tiny real runs on real files."""

from __future__ import annotations

import importlib.util
import json
import math
import struct
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from livegen.visuals.images import load_frame, to_tensor
from livegen.visuals.latent_models import ConvVAE, Generator, LatentConfig, load_latent_model
from livegen.visuals.stylize import save_image
from livegen.visuals.train_latent import CropPool, LatentTrainConfig, LatentTrainError, reconstruction_mse, train
from livegen.weights import load_weights

ROOT = Path(__file__).resolve().parent.parent


def _smooth_picture(seed: int, h: int = 96, w: int = 160) -> np.ndarray:
    """A random smooth colour picture (low-resolution noise scaled up): each seed its own."""
    rng = np.random.default_rng(seed)
    small = torch.from_numpy(rng.random((1, 3, 3, 5)).astype(np.float32))
    big = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)[0]
    return (big.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def _picture(path: Path, seed: int, **kw) -> Path:
    save_image(path, _smooth_picture(seed, **kw))
    return path


def _cfg(tmp_path: Path, **kw) -> LatentTrainConfig:
    if "images" not in kw:
        kw["images"] = [str(_picture(tmp_path / "a.png", 1))]
    base = dict(kind="vae", out=str(tmp_path / "run"), size=64, latent_dim=8, width=8, batch=8, steps=40,
                kl_warmup=0, procedural_fraction=0.0, eval_crops=8, log_every=10, preview_every=20,
                checkpoint_every=20, threads=1, seed=0)
    base.update(kw)
    return LatentTrainConfig(**base)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", data[16:24])  # width, height


def _cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "livegen", "--log-file", str(tmp_path / "livegen.log"),
                           "train", "latent", *args], capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_held_out_strip_is_never_cut_into_training_crops(tmp_path):
    frame = np.zeros((96, 256, 3), np.uint8)
    frame[:, :, 0] = 255  # red ...
    frame[:, 192:] = (0, 255, 0)  # ... and the last 64 columns green: the held-out strip (10% -> one crop wide)
    save_image(tmp_path / "strip.png", frame)
    cfg = _cfg(tmp_path, images=[str(tmp_path / "strip.png")], eval_crops=16)
    pool = CropPool(cfg, torch.device("cpu"))
    batch = pool.batch(200)
    assert batch.shape == (200, 3, 64, 64)
    assert float(batch[:, 1].max()) < 1e-6 and float(batch[:, 0].min()) > 0.999  # only red was trained on
    held = pool.heldout["paintings"]
    assert held.shape == (16, 3, 64, 64)
    assert float(held[:, 1].min()) > 0.999 and float(held[:, 0].max()) < 1e-6
    again = CropPool(cfg, torch.device("cpu"))
    assert torch.equal(again.seen["paintings"], pool.seen["paintings"])  # fixed by the seed


def test_a_few_vae_steps_lower_the_loss_and_write_the_reports(tmp_path):
    cfg = _cfg(tmp_path, steps=60, lr=2e-3)
    summary = train(cfg, progress=False)
    out = Path(cfg.out)
    hist = json.loads((out / "history.json").read_text())
    rows = hist["train"]
    assert [r["step"] for r in rows] == [10, 20, 30, 40, 50, 60]
    assert rows[-1]["loss"] < 0.7 * rows[0]["loss"], rows
    assert rows[-1]["mse"] < 0.7 * rows[0]["mse"], rows
    assert [e["step"] for e in hist["eval"]] == [20, 40, 60]
    assert all(e["seen_paintings_mse"] > 0 and e["heldout_paintings_mse"] > 0 for e in hist["eval"])
    held = summary["reconstruction"]["heldout"]
    assert 0.0 < held["mse"] < 0.25 and held["crops"] == 8
    assert held["psnr"] == pytest.approx(10 * math.log10(1 / held["mse"]))
    for name in ("previews/step-00020.png", "previews/step-00060.png", "preview.png", "checkpoint.pt",
                 "latent.pt", "summary.json", "MODEL_CARD.md", "history.json"):
        assert (out / name).is_file(), name
    # held-out crops, their reconstructions, two rows of samples; 8 across
    assert _png_size(out / "preview.png") == (8 * 64 + 7 * 2, 4 * 64 + 3 * 2)
    if importlib.util.find_spec("matplotlib"):  # loss.png needs it (the train extra)
        assert _png_size(out / "loss.png")[0] > 300
    card = (out / "MODEL_CARD.md").read_text()
    assert "60 steps of batch 8" in card and "a.png" in card and f"{held['mse']:.5f}" in card
    model = load_latent_model(out / "latent.pt")
    assert isinstance(model, ConvVAE) and not model.training
    assert model.meta["kind"] == "vae" and model.meta["steps"] == 60 and model.meta["data"] == ["a.png"]
    assert model.meta["heldout_mse"] == pytest.approx(held["mse"])
    with torch.no_grad():
        pics = model.decode(torch.randn(3, 8))
    assert pics.shape == (3, 3, 64, 64) and 0.0 <= float(pics.min()) and float(pics.max()) <= 1.0


def test_the_vae_reconstructs_pictures_it_trained_on_better_than_one_it_never_saw(tmp_path):
    seen = [_picture(tmp_path / "a.png", 1), _picture(tmp_path / "b.png", 2)]
    unseen = _picture(tmp_path / "c.png", 3)
    cfg = _cfg(tmp_path, images=[str(p) for p in seen], steps=300, lr=2e-3, beta=0.1, latent_dim=16,
               preview_every=300, checkpoint_every=300, log_every=50)
    train(cfg, progress=False)
    model = load_latent_model(Path(cfg.out) / "latent.pt")

    def crops(path: Path) -> torch.Tensor:  # from the first 96 columns: the trained part of a and b
        t = to_tensor(load_frame(path))
        return torch.stack([t[:, y:y + 64, x:x + 64] for y in (0, 32) for x in (0, 16, 32)])

    trained = reconstruction_mse(model, torch.cat([crops(p) for p in seen]))
    never = reconstruction_mse(model, crops(unseen))
    torch.manual_seed(0)
    untrained = reconstruction_mse(ConvVAE(LatentConfig("vae", 64, 16, 8)), torch.cat([crops(p) for p in seen]))
    assert trained < 0.5 * untrained, (trained, untrained)
    assert trained < 0.6 * never, (trained, never)


def test_gan_steps_write_previews_checkpoint_and_model_and_resume_at_the_saved_step(tmp_path):
    cfg = _cfg(tmp_path, kind="gan", steps=6, batch=4, log_every=2, preview_every=3, checkpoint_every=3,
               procedural_fraction=0.5, render_size=(80, 64), scene_seconds=1.0)
    summary = train(cfg, progress=False)
    out = Path(cfg.out)
    for name in ("previews/step-00003.png", "previews/step-00006.png", "checkpoint.pt", "latent.pt",
                 "MODEL_CARD.md", "summary.json"):
        assert (out / name).is_file(), name
    assert _png_size(out / "previews/step-00003.png") == (8 * 64 + 7 * 2, 4 * 64 + 3 * 2)
    first = json.loads((out / "history.json").read_text())["train"]
    assert [r["step"] for r in first] == [2, 4, 6]
    assert set(summary["critic"]) == {"heldout_paintings", "heldout_scenes", "samples"}
    assert summary["critic"]["samples"]["n"] == 256 and summary["critic"]["samples"]["std"] > 0
    assert all(math.isfinite(v) for v in summary["final_losses"].values())
    assert "critic" in (out / "MODEL_CARD.md").read_text()
    ck = load_weights(out / "checkpoint.pt")  # plain data: weights_only=True reads it
    assert ck["step"] == 6 and {"g", "d", "g_ema", "opt_g", "opt_d"} <= set(ck)
    g = load_latent_model(out / "latent.pt")
    assert isinstance(g, Generator) and g.meta["kind"] == "gan" and g.meta["steps"] == 6
    assert g.decode(torch.randn(2, 8)).shape == (2, 3, 64, 64)
    saved = {k: v.clone() for k, v in g.state_dict().items()}

    # Resuming to the same step trains nothing: the same model comes out (the weights were loaded).
    train(replace(cfg, resume=True), progress=False)
    again = load_latent_model(out / "latent.pt").state_dict()
    assert all(torch.allclose(saved[k].float(), again[k].float(), atol=1e-5) for k in saved)  # GPU convs: not bitwise

    summary = train(replace(cfg, steps=10, resume=True), progress=False)
    assert summary["steps"] == 10
    rows = json.loads((out / "history.json").read_text())["train"]
    assert [r["step"] for r in rows] == [2, 4, 6, 8, 10]
    assert rows[:3] == first  # the first six steps were not trained again
    assert (out / "previews/step-00009.png").is_file() and not (out / "previews/step-00012.png").exists()
    assert load_latent_model(out / "latent.pt").meta["steps"] == 10


def test_resume_refuses_a_checkpoint_of_another_model_or_a_broken_one(tmp_path):
    train(_cfg(tmp_path, kind="gan", steps=0), progress=False)
    ckpt = Path(tmp_path / "run" / "checkpoint.pt")
    assert ckpt.is_file()
    with pytest.raises(LatentTrainError, match="trained as kind=gan .* asks for kind=vae"):
        train(_cfg(tmp_path, kind="vae", steps=2, resume=True), progress=False)
    with pytest.raises(LatentTrainError, match="trained as .*latent_dim=8.* asks for .*latent_dim=16"):
        train(_cfg(tmp_path, kind="gan", steps=2, latent_dim=16, resume=True), progress=False)
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    with pytest.raises(LatentTrainError, match="checkpoint.pt: cannot resume from it"):
        train(_cfg(tmp_path, kind="gan", steps=2, resume=True), progress=False)


def test_cli_trains_end_to_end_and_the_model_loads(tmp_path):
    pics = tmp_path / "pics"
    pics.mkdir()
    _picture(pics / "one.png", 1)
    _picture(pics / "two.jpg", 2, h=128, w=96)
    out = tmp_path / "cli-run"
    r = _cli("--kind", "vae", "--images", str(pics), "--out", str(out), "--steps", "4", "--batch", "4",
             "--latent-dim", "8", "--width", "8", "--preview-every", "2", "--checkpoint-every", "2",
             "--threads", "1", "--procedural-fraction", "0", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "4 steps in" in r.stdout and "held-out reconstruction MSE" in r.stdout
    assert "Traceback" not in r.stderr
    model = load_latent_model(out / "latent.pt")
    assert isinstance(model, ConvVAE) and model.config == LatentConfig("vae", 64, 8, 8)
    assert model.meta["command"].startswith("livegen ") and "train latent --kind vae --images" in model.meta["command"]
    assert sorted(model.meta["data"]) == ["one.png", "two.jpg"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["threads"] == 1
    assert summary["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert (out / "previews/step-00002.png").is_file() and (out / "previews/step-00004.png").is_file()
    assert model.meta["command"] in (out / "MODEL_CARD.md").read_text()


def test_cli_corrupt_checkpoint_on_resume_is_one_clear_line(tmp_path):
    _picture(tmp_path / "a.png", 1)
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"this is not a checkpoint\n" * 40)
    r = _cli("--kind", "gan", "--images", str(tmp_path / "a.png"), "--out", str(out), "--steps", "2",
             "--width", "8", "--resume", "--procedural-fraction", "0", "--threads", "1", tmp_path=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("livegen:")]  # (not a library's warnings)
    assert len(lines) == 1, r.stderr
    assert "checkpoint.pt" in lines[0] and "cannot resume" in lines[0] and "not a torch file" in lines[0]
    assert not (out / "latent.pt").exists()
