"""``livegen bench latent``: the frame rate of the latent source in the live rig, with the
style network, against the default ``ripples`` source measured in the same run.

Each round runs the real :class:`~livegen.play.LiveRig` (engine, generator thread,
dispatch thread, the frame thread drawing at the patch's rate, the style network in its
worker processes) with the arpeggiator playing 16ths, no window, no audio device and no
MIDI (so no JACK is needed), once per source, one after the other. It reports:

* frames drawn per second (``pipeline.frame`` on the frame thread) and how long each
  call took (the source's ``render`` included: the latent source must return at once);
* styled frames per second (results from the style worker): the show's picture rate;
* for the latent source, pictures decoded per second on its own thread and the decode
  time (model + upscale to the show's size + uint8 frame), median and p90;
* the ratio of the latent source's styled rate to ripples'.

The decode cost does not depend on the weights, so without ``--model`` and without a
shipped model a randomly initialised model of the asked shape is timed (said in the
report).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger("livegen")

PATCH = """
[patch]
name = "bench-latent"
[clock]
bpm = {bpm}
[key]
tonic = "D"
scale = "dorian"
[audio]
enabled = false
[[generators]]
name = "arp"
kind = "arpeggiator"
[generators.params]
density = 1.0
rest = 0.0
step = 0.25
gate = 0.5
[midi]
inputs = []
virtual_output = false
[osc]
enabled = false
[visuals]
width = {width}
height = {height}
fps = {fps}
source = "{source}"
latent_model = "{model}"
{style}"""


def add_arguments(p) -> None:
    p.add_argument("--model", type=Path, help="latent model (default: the shipped one, else a random-init one)")
    p.add_argument("--random-kind", choices=("vae", "gan"), default="vae", help="kind of the random-init model")
    p.add_argument("--random-size", type=int, choices=(64, 128), default=64, help="side of the random-init model")
    p.add_argument("--size", default="320x240", help="the show's frame size, WxH")
    p.add_argument("--fps", type=int, default=30, help="frames drawn per second (the rig's [visuals] fps)")
    p.add_argument("--seconds", type=float, default=20.0, help="seconds measured per source and round")
    p.add_argument("--rounds", type=int, default=1, help="ripples then latent, this many times")
    p.add_argument("--bpm", type=float, default=140.0)
    p.add_argument("--no-style", action="store_true", help="without the style network")
    p.add_argument("--style-model", type=Path, help="style model (default: the shipped one)")
    p.add_argument("--style-worker", choices=("process", "thread"), default="process")
    p.add_argument("--style-processes", type=int, default=2)
    p.add_argument("--style-threads", type=int, default=1)
    p.add_argument("--style-compile", action="store_true", help="torch.compile the style network (cached)")
    p.add_argument("--json", type=Path, help="also write the figures as JSON here")


def _model(args, tmp: Path) -> tuple[Path, str]:
    """The model to time and how it is described."""
    from livegen.visuals.latent_models import LatentConfig, build_model, save_latent_model
    from livegen.visuals.latent_source import DEFAULT_LATENT_MODEL

    if args.model:
        return Path(args.model), str(args.model)
    if DEFAULT_LATENT_MODEL.is_file():
        return DEFAULT_LATENT_MODEL, f"{DEFAULT_LATENT_MODEL} (shipped)"
    import torch

    torch.manual_seed(0)
    config = LatentConfig(kind=args.random_kind, size=args.random_size)
    path = save_latent_model(build_model(config), tmp / "random-latent.pt")
    return path, (f"random-init {config.kind} {config.size}x{config.size}, latent {config.latent_dim}, "
                  f"width {config.width} (no shipped model; decode cost does not depend on the weights)")


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


async def _one(args, source: str, model: Path) -> dict:
    from livegen.patch.loader import parse_patch
    from livegen.play import LiveRig, RigOptions
    from livegen.visuals.latent_source import LatentSource

    width, _, height = args.size.partition("x")
    style = ""
    if not args.no_style:
        style = (f'style = true\nstyle_model = "{str(args.style_model or "")}"\n'
                 f'style_worker = "{args.style_worker}"\nstyle_processes = {int(args.style_processes)}\n'
                 f'style_threads = {int(args.style_threads)}\nstyle_compile = {"true" if args.style_compile else "false"}\n')
    text = PATCH.format(bpm=args.bpm, width=int(width), height=int(height), fps=int(args.fps), source=source,
                        model=str(model).replace("\\", "/"), style=style)
    patch = parse_patch(text, "<bench latent>")
    rig = LiveRig(patch, RigOptions(window=False, audio=False, headless_visuals=True, seed=1, watch_patch=False))
    engine = await rig.start()
    try:
        pipeline = rig.pipeline
        if pipeline is None:
            raise RuntimeError("; ".join(rig.missing) or "no visuals")
        scene = pipeline.output.scene
        if source == "latent" and not isinstance(scene, LatentSource):
            raise RuntimeError("the latent source did not open")
        call_ms: list[float] = []
        frame = pipeline.frame

        def timed(t, params):
            t0 = time.perf_counter()
            try:
                return frame(t, params)
            finally:
                call_ms.append((time.perf_counter() - t0) * 1000.0)

        pipeline.frame = timed  # the frame thread looks it up at every frame
        worker = pipeline.worker
        if worker is not None:  # warmed up (and compiled, if asked) before measuring
            await asyncio.to_thread(worker.ready.wait, 300)
        if isinstance(scene, LatentSource):
            await asyncio.to_thread(scene.wait_ready, 60)
        await asyncio.sleep(2.0)  # settle: the rates below are the steady state
        call_ms.clear()
        frames0, styled0 = rig.frames, (worker.done if worker is not None else 0)
        decoded0 = scene.decoded if isinstance(scene, LatentSource) else 0
        if isinstance(scene, LatentSource):
            scene.decode_ms.clear()
        t0 = time.monotonic()
        await asyncio.sleep(args.seconds)
        dt = time.monotonic() - t0
        frames = rig.frames - frames0
        styled = (worker.done - styled0) if worker is not None else None
        style_stats = worker.stats() if worker is not None else None
        r = {
            "source": source,
            "seconds": dt,
            "frames_per_s": frames / dt,
            "styled_per_s": None if styled is None else styled / dt,
            "frame_call_ms_median": _pct(call_ms, 0.5),
            "frame_call_ms_p99": _pct(call_ms, 0.99),
            "frame_call_ms_max": max(call_ms) if call_ms else float("nan"),
            "style_run_ms_median": style_stats["run_ms_median"] if style_stats else None,
            "style_latency_ms_median": style_stats["latency_ms_median"] if style_stats else None,
            "notes": engine.stats.notes_scheduled,
        }
        if isinstance(scene, LatentSource):
            ms = list(scene.decode_ms)
            r.update(decoded_per_s=(scene.decoded - decoded0) / dt, decode_ms_median=_pct(ms, 0.5),
                     decode_ms_p90=_pct(ms, 0.9), device=str(scene.device), model_size=scene.model_size,
                     latent_dim=scene.latent_dim)
        r["fps"] = r["styled_per_s"] if r["styled_per_s"] is not None else r.get("decoded_per_s", r["frames_per_s"])
        if isinstance(scene, LatentSource) and r["styled_per_s"] is not None:
            r["fps"] = min(r["styled_per_s"], r["decoded_per_s"])  # new pictures styled per second
        return r
    finally:
        await rig.close()


async def _run(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="livegen-bench-latent-") as tmp:
        model, described = _model(args, Path(tmp))
        rows = []
        for _ in range(max(1, args.rounds)):
            for source in ("ripples", "latent"):
                rows.append(await _one(args, source, model))
    import torch

    def mean(source: str, key: str) -> float:
        vals = [r[key] for r in rows if r["source"] == source and r.get(key) is not None]
        return statistics.fmean(vals) if vals else float("nan")

    latent_fps, ripples_fps = mean("latent", "fps"), mean("ripples", "fps")
    return {
        "machine": f"{os.cpu_count()} cores, python {sys.version.split()[0]}, torch {torch.__version__}",
        "model": described, "size": args.size, "fps_asked": args.fps, "bpm": args.bpm,
        "style": None if args.no_style else {"worker": args.style_worker, "processes": args.style_processes,
                                              "threads": args.style_threads, "compiled": args.style_compile,
                                              "model": str(args.style_model or "shipped")},
        "rows": rows,
        "latent_fps": latent_fps, "ripples_fps": ripples_fps,
        "ratio_latent_vs_ripples": latent_fps / ripples_fps if ripples_fps else float("nan"),
        "target_fps": 25.0,
    }


def format_report(r: dict) -> str:
    st = r["style"]
    style = ("no style network" if st is None else
             f"style network: {st['processes']} {st['worker']}(es) x {st['threads']} thread(s), "
             f"{'compiled' if st['compiled'] else 'eager'}")
    lines = [f"livegen bench latent — {r['size']} at {r['fps_asked']} frames/s asked, {style}; {r['machine']}",
             f"latent model: {r['model']}",
             f"{'source':<8} {'drawn/s':>7} {'styled/s':>8} {'decoded/s':>9} {'decode ms':>9} {'p90':>5} "
             f"{'frame() ms':>10} {'p99':>5} {'max':>6} {'style ms':>8} {'fps':>5}"]
    for row in r["rows"]:
        def f(key: str, spec: str) -> str:
            v = row.get(key)
            return format(v, spec) if isinstance(v, (int, float)) else "—".rjust(int(spec.split(".")[0]))
        lines.append(f"{row['source']:<8} {f('frames_per_s', '7.1f')} {f('styled_per_s', '8.1f')} "
                     f"{f('decoded_per_s', '9.1f')} {f('decode_ms_median', '9.2f')} {f('decode_ms_p90', '5.2f')} "
                     f"{f('frame_call_ms_median', '10.2f')} {f('frame_call_ms_p99', '5.2f')} "
                     f"{f('frame_call_ms_max', '6.1f')} {f('style_run_ms_median', '8.1f')} {f('fps', '5.1f')}")
    met = r["latent_fps"] >= r["target_fps"]
    lines.append(f"latent {r['latent_fps']:.1f} fps vs ripples {r['ripples_fps']:.1f} fps in the same run: "
                 f"ratio {r['ratio_latent_vs_ripples']:.3f}; target >= {r['target_fps']:g} fps: "
                 f"{'met' if met else 'NOT met'}")
    lines.append("(fps: styled frames per second; for the latent source, new pictures styled per second, "
                 "the lower of styled/s and decoded/s)")
    return "\n".join(lines)


def main(args) -> int:
    report = asyncio.run(_run(args))
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0
