"""``livegen bench style``: frames per second of the style network, side by side with
Johnson et al.'s TransformerNet, and the fast path's output checked against fp32.

Every row times the same number of frames at the same size with the same torch thread
count, one network after the other in this process, so the ratio is fair on a noisy
machine. The baseline is TransformerNet as in pytorch/examples fast_neural_style
(32/64/128 channels, 9x9 outer convolutions, 5 residual blocks, instance norm,
reflection padding, upsample-then-convolve), fp32, random weights (speed does not depend
on the values).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from livegen.visuals.style_net import load_style_net
from livegen.visuals.stylizer import DEFAULT_MODEL, StyleSettings, Stylizer


class _ConvLayer(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(k // 2)
        self.conv = nn.Conv2d(cin, cout, k, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pad(x))


class _Res(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.c1, self.n1 = _ConvLayer(c, c, 3, 1), nn.InstanceNorm2d(c, affine=True)
        self.c2, self.n2 = _ConvLayer(c, c, 3, 1), nn.InstanceNorm2d(c, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.n2(self.c2(torch.relu(self.n1(self.c1(x)))))


class _UpConv(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, up: int) -> None:
        super().__init__()
        self.up = up
        self.conv = _ConvLayer(cin, cout, k, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(nn.functional.interpolate(x, scale_factor=self.up, mode="nearest"))


class TransformerNet(nn.Module):
    """Johnson et al. 2016's image transformation network (the speed baseline)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            _ConvLayer(3, 32, 9, 1), nn.InstanceNorm2d(32, affine=True), nn.ReLU(),
            _ConvLayer(32, 64, 3, 2), nn.InstanceNorm2d(64, affine=True), nn.ReLU(),
            _ConvLayer(64, 128, 3, 2), nn.InstanceNorm2d(128, affine=True), nn.ReLU(),
            *[_Res(128) for _ in range(5)],
            _UpConv(128, 64, 3, 2), nn.InstanceNorm2d(64, affine=True), nn.ReLU(),
            _UpConv(64, 32, 3, 2), nn.InstanceNorm2d(32, affine=True), nn.ReLU(),
            _ConvLayer(32, 3, 9, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _time(fn, frames: int, warm: int = 3) -> list[float]:
    for _ in range(warm):
        fn()
    out = []
    for _ in range(frames):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000.0)
    return out


def _row(name: str, ms: list[float]) -> dict:
    med = statistics.median(ms)
    return {"net": name, "median_ms": med, "p90_ms": float(np.percentile(ms, 90)), "fps": 1000.0 / med}


def run(model: Path | None = None, sizes: list[tuple[int, int]] = ((320, 240), (640, 360)),  # type: ignore[assignment]
        threads: list[int] = (1, 2), frames: int = 30, compile: bool = False, bf16: bool = False) -> dict:  # type: ignore[assignment]
    net = load_style_net(model or DEFAULT_MODEL)
    fast = Stylizer(net, device="cpu", path="fast")
    ref = Stylizer(load_style_net(model or DEFAULT_MODEL), device="cpu", path="reference")
    comp = Stylizer(load_style_net(model or DEFAULT_MODEL), device="cpu", path="fast", compile=True) if compile else None
    johnson = TransformerNet().eval()
    n = len(fast.styles)
    weights = [1.0 / n] * n
    rng = np.random.default_rng(0)
    rows = []
    parity = []
    old_threads = torch.get_num_threads()
    try:
        for (w, h) in sizes:
            frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            x = torch.from_numpy(frame).permute(2, 0, 1).unsqueeze(0).float() / 255.0
            settings = StyleSettings(weights, 1.0, 0.0)
            # Parity of the fast path (and compiled) against fp32 reference, on the same frame.
            a = ref.stylise_tensor(x, weights)
            b = fast.stylise_tensor(x, weights)
            entry = {"size": f"{w}x{h}", "fast_vs_fp32_max_abs": float((a - b).abs().max())}
            if comp is not None:
                entry["compiled_vs_fp32_max_abs"] = float((a - comp.stylise_tensor(x, weights)).abs().max())
            parity.append(entry)
            for t in threads:
                torch.set_num_threads(t)
                with torch.inference_mode():
                    base = _row("TransformerNet (Johnson) fp32", _time(lambda: johnson(x), max(5, frames // 3)))
                cand = [_row("livegen default, fast path (frame in -> frame out)", _time(lambda: fast(frame, settings), frames)),
                        _row("livegen default, fp32 reference path", _time(lambda: ref(frame, settings), frames))]
                if comp is not None:
                    cand.append(_row("livegen default, torch.compile", _time(lambda: comp(frame, settings), frames)))
                if bf16:
                    def run_bf16() -> None:
                        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                            fast.net(x.contiguous(memory_format=torch.channels_last), fast.weights_row(weights))
                    cand.append(_row("livegen default, bf16 autocast", _time(run_bf16, max(5, frames // 3))))
                for r in [base, *cand]:
                    r.update(size=f"{w}x{h}", threads=t, speedup_vs_johnson=base["median_ms"] / r["median_ms"])
                    rows.append(r)
    finally:
        torch.set_num_threads(old_threads)
    return {"model": str(model or DEFAULT_MODEL), "styles": fast.styles, "rows": rows, "parity": parity,
            "cpu_threads_available": torch.get_num_threads()}


def format_report(r: dict) -> str:
    lines = [f"livegen bench style — {r['model']} ({len(r['styles'])} styles)",
             f"{'size':>8} {'thr':>3}  {'network':<52} {'median ms':>9} {'p90 ms':>7} {'fps':>6} {'x Johnson':>9}"]
    for row in r["rows"]:
        lines.append(f"{row['size']:>8} {row['threads']:>3}  {row['net']:<52} {row['median_ms']:9.1f} "
                     f"{row['p90_ms']:7.1f} {row['fps']:6.1f} {row['speedup_vs_johnson']:9.2f}")
    for p in r["parity"]:
        extra = f", compiled {p['compiled_vs_fp32_max_abs']:.2e}" if "compiled_vs_fp32_max_abs" in p else ""
        lines.append(f"parity at {p['size']}: fast vs fp32 max |diff| {p['fast_vs_fp32_max_abs']:.2e}{extra} (0..1 scale)")
    return "\n".join(lines)


def main(args) -> int:
    sizes = []
    for s in args.sizes.split(","):
        w, _, h = s.strip().partition("x")
        sizes.append((int(w), int(h)))
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    report = run(args.model, sizes, threads, args.frames, compile=args.compile, bf16=args.bf16)
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0
