"""``livegen bench style-quality``: how good, and how steady, the fast style network is.

Quality: on three 320x240 content frames (two scenes, one photo) and every style, the
fast network's output is scored under the loss network it was trained with (content and
style loss, exactly the training terms), next to the Gatys optimum for the same image and
style under the same objective: the content, style and total-variation weights the model
was trained with, read from its file (L-BFGS from the content image). Ratio fast/Gatys of
the style loss.

Flicker: on moving scenes (ripples and flow, 30 fps) the mean absolute frame-to-frame
change of the output divided by that of the input, for the model and, with
``--baseline``, the same network trained without the temporal term.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from livegen.visuals.clips import scene_clip
from livegen.visuals.gatys import evaluate, optimise
from livegen.visuals.images import fit_cover, load_frame, to_tensor
from livegen.visuals.loss_net import StyleLoss, make_loss_net, resize_short_side
from livegen.visuals.style_net import load_style_net
from livegen.visuals.stylize import bundled_style_image
from livegen.visuals.stylizer import DEFAULT_MODEL, StyleSettings, Stylizer
from livegen.visuals.train_style import SAMPLE_PHOTOS

W, H = 320, 240


def content_frames() -> list[tuple[str, torch.Tensor]]:
    out = []
    for kind, seed in (("ripples", 11), ("flow", 12)):
        clip = scene_clip(kind, W, H, 3.0, seed=seed)
        out.append((kind, (to_tensor(clip[-1]) * 1.6).clamp(0, 1)))
    photo = sorted(SAMPLE_PHOTOS.glob("*.jpg"))[0]
    out.append((photo.stem, fit_cover(to_tensor(load_frame(photo)), H, W)))
    return out


def flicker(stylizer: Stylizer, clip: np.ndarray, style: int) -> dict:
    n = len(stylizer.styles)
    settings = StyleSettings([1.0 if i == style else 0.0 for i in range(n)])
    outs = [stylizer(f, settings).astype(np.float32) for f in clip]
    d_in = float(np.mean(np.abs(np.diff(clip.astype(np.float32), axis=0))))
    d_out = float(np.mean([np.mean(np.abs(b - a)) for a, b in zip(outs, outs[1:])]))
    return {"input_change": d_in, "output_change": d_out, "ratio": d_out / max(1e-9, d_in)}


def run(model: Path | None, baseline: Path | None, steps: int, styles: list[str] | None,
        gatys: bool = True, reuse: dict | None = None) -> dict:
    """``reuse``: a previous report whose Gatys optima (same images, styles, loss network
    and steps) are taken instead of optimising again."""
    net = load_style_net(model or DEFAULT_MODEL)
    meta = getattr(net, "meta", {})
    stylizer = Stylizer(net, device="cpu", path="reference")
    names = styles or stylizer.styles
    loss_net = make_loss_net(str(meta.get("loss_net", "random")), int(meta.get("loss_seed", 0)))
    style_size = int(meta.get("style_size", 256))
    crit = StyleLoss(loss_net)
    objective = {k: float(meta.get(k, d)) for k, d in
                 (("content_weight", 3.0), ("style_weight", 4.0), ("tv_weight", 0.02))}
    if reuse is not None and (reuse.get("objective"), reuse.get("gatys_steps")) != (objective, steps):
        raise ValueError(f"--gatys-from: its Gatys optima were made for {reuse.get('objective')} in "
                         f"{reuse.get('gatys_steps')} iterations; this run asks {objective} in {steps}")
    contents = content_frames()
    quality = []
    t0 = time.perf_counter()
    for name in names if gatys else []:
        i = stylizer.styles.index(name)
        targets = crit.style_targets([resize_short_side(to_tensor(load_frame(bundled_style_image(name))), style_size)])
        w = torch.ones(1, 1)
        for cname, c in contents:
            fast = stylizer.stylise_tensor(c.unsqueeze(0), [1.0 if j == i else 0.0 for j in range(len(stylizer.styles))])[0]
            fc, fs = evaluate(fast, c, targets, w, loss_net)
            old = [q for q in (reuse or {}).get("quality", []) if (q["style"], q["content"]) == (name, cname)]
            if old:
                gs, gc = old[0]["gatys_style"], old[0]["gatys_content"]
            else:
                g = optimise(c, targets, w, loss_net, steps=steps, **objective)
                gs, gc = g.style, g.content
            quality.append({"style": name, "content": cname, "fast_style": fs, "fast_content": fc,
                            "gatys_style": gs, "gatys_content": gc, "style_ratio": fs / max(1e-12, gs)})
    q_seconds = time.perf_counter() - t0
    clips = [scene_clip(k, W, H, 2.0, seed=21 + j) for j, k in enumerate(("ripples", "flow"))]
    clips = [np.clip(c.astype(np.float32) * 1.6, 0, 255).astype(np.uint8) for c in clips]
    flick = {"model": [], "baseline": []}
    base = Stylizer(load_style_net(baseline), device="cpu", path="reference") if baseline else None
    for name in names:
        i = stylizer.styles.index(name)
        for clip in clips:
            flick["model"].append(flicker(stylizer, clip, i))
            if base is not None:
                flick["baseline"].append(flicker(base, clip, base.styles.index(name)))
    summary = {"flicker_model": statistics.mean(r["ratio"] for r in flick["model"])}
    if quality:
        summary["style_ratio_median"] = statistics.median(r["style_ratio"] for r in quality)
        summary["style_ratio_mean"] = statistics.mean(r["style_ratio"] for r in quality)
    if flick["baseline"]:
        summary["flicker_baseline"] = statistics.mean(r["ratio"] for r in flick["baseline"])
        summary["flicker_model_vs_baseline"] = summary["flicker_model"] / summary["flicker_baseline"]
    return {"model": str(model or DEFAULT_MODEL), "baseline": str(baseline) if baseline else None,
            "gatys_steps": steps, "objective": objective, "quality": quality, "flicker": flick, "summary": summary,
            "quality_seconds": q_seconds}


def style_grid(model: Path | None, path: Path) -> Path:
    """Every style of the model on the three content frames (first column: the source)."""
    from livegen.visuals.images import grid, to_frame
    from livegen.visuals.video import write_png

    st = Stylizer(load_style_net(model or DEFAULT_MODEL), device="cpu", path="reference")
    n = len(st.styles)
    rows = []
    for _, c in content_frames():
        src = to_frame(c)
        rows.append([src] + [st(src, StyleSettings([1.0 if j == i else 0.0 for j in range(n)])) for i in range(n)])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_png(path, grid(rows, pad=4), level=9)
    return path


def format_report(r: dict) -> str:
    o = r.get("objective", {})
    lines = [f"livegen bench style-quality — {r['model']} (Gatys: {r['gatys_steps']} L-BFGS iterations, 320x240; "
             f"objective: content {o.get('content_weight')}, style {o.get('style_weight')}, tv {o.get('tv_weight')})",
             f"{'style':<22} {'content':<16} {'fast style':>10} {'Gatys style':>11} {'ratio':>6} "
             f"{'fast content':>12} {'Gatys content':>13}"]
    for q in r["quality"]:
        lines.append(f"{q['style']:<22} {q['content']:<16} {q['fast_style']:10.4f} {q['gatys_style']:11.4f} "
                     f"{q['style_ratio']:6.2f} {q['fast_content']:12.4f} {q['gatys_content']:13.4f}")
    s = r["summary"]
    if "style_ratio_median" in s:
        lines.append(f"style loss fast/Gatys: median {s['style_ratio_median']:.2f}, "
                     f"mean {s['style_ratio_mean']:.2f} (goal <= 1.3)")
    line = f"flicker (output change / input change): model {s['flicker_model']:.3f}"
    if "flicker_baseline" in s:
        line += (f", without temporal term {s['flicker_baseline']:.3f}, "
                 f"model/baseline {s['flicker_model_vs_baseline']:.2f} (goal <= 0.5)")
    lines.append(line)
    return "\n".join(lines)


def main(args) -> int:
    styles = [s.strip() for s in args.styles.split(",")] if args.styles else None
    if args.grid:
        print(f"wrote {style_grid(args.model, args.grid)} (columns: source, "
              f"{', '.join(load_style_net(args.model or DEFAULT_MODEL).styles)})")
        if args.grid_only:
            return 0
    reuse = json.loads(args.gatys_from.read_text()) if args.gatys_from else None
    report = run(args.model, args.baseline, args.steps, styles, gatys=not args.flicker_only, reuse=reuse)
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0
