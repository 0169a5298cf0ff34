"""``torchrun`` training: several processes, gradients averaged, rank 0 writes (gloo on CPUs here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _style_images(tmp_path: Path) -> list[str]:
    from livegen.visuals.stylize import save_image

    out = []
    for name, colour in (("stripes", (255, 200, 0)), ("bars", (0, 80, 255))):
        img = np.zeros((64, 64, 3), np.uint8)
        img[::5] = colour
        if name == "bars":
            img[:, ::7] = colour
        save_image(tmp_path / f"{name}.png", img)
        out.append(str(tmp_path / f"{name}.png"))
    return out


def test_torchrun_trains_on_two_processes(tmp_path: Path) -> None:
    pytest.importorskip("torch.distributed.run")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "livegen",
           "train", "style", "--styles", *_style_images(tmp_path), "--out", str(out), "--steps", "30",
           "--batch", "2", "--size", "32", "--render-size", "64x48", "--style-size", "48", "--threads", "1",
           "--device", "cpu", "--preview-every", "15", "--checkpoint-every", "15"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "weights are the same on every rank" in r.stderr
    assert "on 2 processes" in r.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 30
    history = json.loads((out / "history.json").read_text())
    assert history[-1]["loss"] < history[0]["loss"]
    assert (out / "style.pt").is_file() and (out / "previews" / "step-00030.png").is_file()
    # rank 0 alone writes: one line per step report, not two
    assert r.stderr.count("step 25/30") == 1
