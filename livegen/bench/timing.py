"""``livegen bench timing``: are the notes on time while the machine is busy?

Plays 16th notes (default 2 minutes at 140 BPM) through the live rig — dispatch thread,
generator thread, synth process on the JACK device, MIDI out on a JACK port, OSC in —
while a TransformerNet-sized torch conv net runs flat out in a worker process and the
visuals render 30 frames a second. Measures:

* note timing: when each note-on is handed to the MIDI port (in the timing-server
  process) versus its scheduled time (no extra JACK client listens: one would add its own
  thread to the JACK graph and its own xruns);
* audio underruns and callback times in the synth process (256-frame blocks, 48 kHz);
* OSC in -> parameter applied, from a separate sender process, median and p99.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time

log = logging.getLogger("livegen")

BENCH_PATCH = """
[patch]
name = "bench-timing"
[clock]
bpm = {bpm}
[key]
tonic = "D"
scale = "dorian"
[audio]
device = "{device}"
sample_rate = 48000
blocksize = 256
{generator}[midi]
inputs = []
virtual_output = true
[osc]
port = {port}
[visuals]
width = {width}
height = {height}
fps = {fps}
source = "ripples"
{style}"""

GENERATORS = {
    "arpeggiator": """
[[generators]]
name = "arp"
kind = "arpeggiator"
[generators.params]
density = 1.0
rest = 0.0
step = 0.25
gate = 0.5
""",
    # The melody RNN pushed to play as many 16ths as it will: dense, no rests.
    "melody_rnn": """
[[generators]]
name = "rnn"
kind = "melody_rnn"
[generators.options]
model = "{model}"
[generators.params]
density = 1.0
rest = 0.0
gate = 0.5
""",
}

SENDER = r"""
import json, sys, time
from pythonosc.udp_client import SimpleUDPClient
port, n, rate = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
c = SimpleUDPClient("127.0.0.1", port)
sent = []
t_next = time.monotonic()
for i in range(n):
    t_next += 1.0 / rate
    while time.monotonic() < t_next:
        time.sleep(0.0005)
    sent.append(time.monotonic())
    c.send_message("/livegen/param/bench.probe", float(i))
print(json.dumps(sent))
"""


def _jack_running() -> bool:
    return bool(shutil.which("jack_lsp")) and subprocess.run(["jack_lsp"], capture_output=True).returncode == 0


def _ensure_jack() -> subprocess.Popen | None:
    """Start a JACK server on the dummy driver when none runs: real-time scheduling (how
    JACK should run for a show) where the OS allows it, else --no-realtime."""
    if _jack_running() or not shutil.which("jackd"):
        return None
    for realtime in (["-R"], ["--no-realtime"]):
        log.info("starting jackd %s on the dummy driver (48 kHz, 256 frames) for the benchmark", realtime[0])
        proc = subprocess.Popen(["jackd", *realtime, "-d", "dummy", "-r", "48000", "-p", "256"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(50):
            if _jack_running():
                return proc
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        proc.kill()
        proc.wait()
    return None


def _jack_mode() -> str:
    """How the running JACK server schedules its threads, read from its process."""
    try:
        out = subprocess.run(["ps", "-C", "jackd", "-L", "-o", "cls="], capture_output=True, text=True).stdout
    except OSError:
        return "unknown"
    classes = set(out.split())
    return "realtime" if classes & {"FF", "RR"} else ("not realtime" if classes else "unknown")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def _summary(errors_ms: list[float]) -> dict:
    return {
        "count": len(errors_ms),
        "median_ms": _pct(errors_ms, 0.5),
        "p99_ms": _pct(errors_ms, 0.99),
        "max_ms": max(errors_ms) if errors_ms else float("nan"),
        "min_ms": min(errors_ms) if errors_ms else float("nan"),
        "late_over_1ms": sum(1 for e in errors_ms if e > 1.0),
        "late_over_3ms": sum(1 for e in errors_ms if e > 3.0),
    }


async def _run(args) -> dict:
    import mido

    from livegen.bench.convload import ConvLoad
    from livegen.control.params import ParamSpec
    from livegen.patch.loader import parse_patch
    from livegen.play import LiveRig, RigOptions

    jack = _jack_running()
    if jack and not os.path.exists("/dev/snd/seq"):
        os.environ.setdefault("MIDO_BACKEND", "mido.backends.rtmidi/UNIX_JACK")
        mido.set_backend(os.environ["MIDO_BACKEND"], load=True)
    device = args.audio_device if args.audio_device is not None else ("JACK" if jack else "")
    port = _free_port()
    kind = getattr(args, "generator", "arpeggiator")
    gen = GENERATORS[kind].replace("{model}", str(getattr(args, "model", None) or "").replace("\\", "/"))
    style = getattr(args, "style", False)
    style_toml = ""
    if style:
        model = str(getattr(args, "style_model", None) or "").replace("\\", "/")
        compile_ = "true" if getattr(args, "style_compile", False) else "false"
        style_toml = (f'style = true\nstyle_threads = {int(getattr(args, "style_threads", 1))}\n'
                      f'style_model = "{model}"\nstyle_compile = {compile_}\n'
                      f'style_worker = "{getattr(args, "style_worker", "process")}"\n')
        if getattr(args, "style_processes", None):
            style_toml += f"style_processes = {int(args.style_processes)}\n"
    width, height = getattr(args, "visuals_size", (320, 240))
    patch = parse_patch(BENCH_PATCH.format(bpm=args.bpm, device=device, port=port, generator=gen,
                                           style=style_toml, width=int(width), height=int(height),
                                           fps=int(getattr(args, "visuals_fps", 30))), "<bench>")
    # Visuals rendered as in a show (no window to blit to): the loop is as busy as on stage.
    rig = LiveRig(patch, RigOptions(window=False, headless_visuals=not args.no_visuals, audio=True, seed=1,
                                    watch_patch=False))

    applied: dict[int, float] = {}
    # With the style network on, it is the load (in this process, as on stage).
    load = None if args.no_worker or style else ConvLoad()
    if load is not None:
        load.start()
        await asyncio.sleep(3.0)  # let the worker reach full speed before measuring
    engine = await rig.start()
    engine.store.declare(ParamSpec("bench.probe", 0.0, 0.0, 1e9))
    engine.store.subscribe(lambda _n, v: applied.setdefault(int(v), time.monotonic()), "bench.probe")
    midi_out = rig.timing
    if midi_out is not None:
        midi_out.record(True)
    worker = rig.pipeline.worker if rig.pipeline is not None else None
    if worker is not None:
        # warmed up (and compiled, if asked) before measuring; waited for off the loop, which
        # must keep running the engine meanwhile (a blocking wait here held the loop for the
        # whole warm-up, and the first late window was the "note dropped while starting")
        await asyncio.to_thread(worker.ready.wait, 300)
    styled_before = worker.done if worker is not None else 0
    frames_before = rig.frames
    n_osc = int(min(args.seconds, 60) * 100)
    sender = await asyncio.create_subprocess_exec(sys.executable, "-c", SENDER, str(port), str(n_osc), "100",
                                                  stdout=asyncio.subprocess.PIPE)
    t_start = time.monotonic()
    dropped_before = engine.stats.notes_dropped_late  # while starting
    stats_before = rig.synth.stats() if rig.synth is not None else {}
    out, _ = await sender.communicate()
    remaining = args.seconds - (time.monotonic() - t_start)
    if remaining > 0:
        await asyncio.sleep(remaining)
    t_end, frames_end = time.monotonic(), rig.frames - frames_before
    style_stats = None
    if worker is not None:
        style_stats = dict(worker.stats(), styled_per_s=(worker.done - styled_before) / max(1e-9, t_end - t_start),
                           styles=list(worker.stylizer.styles), threads=getattr(args, "style_threads", 1),
                           compiled=worker.stylizer.compiled, worker=type(worker).__name__)
    synth_stats = rig.synth.stats() if rig.synth is not None else {}
    timing_stats = midi_out.stats() if midi_out is not None else {"note_on_times": []}
    if load is not None:
        load.stop()
    audio_ok = rig.synth is not None
    await rig.close()

    sent = json.loads(out.decode() or "[]")
    osc_lat = [(applied[i] - s) * 1e3 for i, s in enumerate(sent) if i in applied]
    emitted = [tuple(x) for x in timing_stats["note_on_times"]]
    errors = [(e - s) * 1e3 for s, e in emitted]
    return {
        "machine": f"{os.cpu_count()} cores, python {sys.version.split()[0]}",
        "jack_server": _jack_mode() if jack else "none",
        "seconds": args.seconds,
        "bpm": args.bpm,
        "generator": kind,
        "notes": len(emitted),
        "worker": None if load is None else {"net": "TransformerNet 32/64/128, 5 res blocks, 320x240, 1 thread",
                                            "frames": load.frames, "fps": load.fps()},
        "note_on_emitted_vs_scheduled": _summary(errors),
        "worst_note_ons": sorted(((round(s - t_start, 3), round((e - s) * 1e3, 3)) for s, e in emitted),
                                 key=lambda x: -x[1])[:5],
        "audio": ({"device": synth_stats.get("device"), "blocksize": 256, "sample_rate": 48000,
                   "underruns": synth_stats.get("underruns", 0) - stats_before.get("underruns", 0),
                   "callbacks": synth_stats.get("callbacks", 0) - stats_before.get("callbacks", 0),
                   "max_callback_ms": synth_stats.get("max_callback_ms"),
                   "mean_callback_ms": synth_stats.get("mean_callback_ms"),
                   "late_events": synth_stats.get("late_events"), "starved": synth_stats.get("starved"),
                   "late_log": synth_stats.get("late_log"),
                   "underruns_at_s": [round(u - t_start, 3) for u in synth_stats.get("underrun_times", [])]}
                  if audio_ok else "no audio device"),
        "osc_in_to_applied": {"sent": len(sent), "applied": len(osc_lat), "median_ms": _pct(osc_lat, 0.5),
                              "p99_ms": _pct(osc_lat, 0.99), "max_ms": max(osc_lat) if osc_lat else float("nan")},
        "visuals_frames_per_s": frames_end / max(1e-9, t_end - t_start),
        "visuals_size": f"{int(width)}x{int(height)}",
        "visuals_fps_target": int(getattr(args, "visuals_fps", 30)),
        "style": style_stats,
        "engine": {"notes_scheduled": engine.stats.notes_scheduled,
                   "notes_dropped_late": engine.stats.notes_dropped_late - dropped_before,
                   "notes_dropped_late_while_starting": dropped_before,
                   # seconds from the start of measuring (negative: while starting)
                   "dropped_late_at_s": [round(x - t_start, 3) for x in engine.stats.dropped_late_at]},
    }


def format_report(r: dict) -> str:
    n = r["note_on_emitted_vs_scheduled"]
    lines = [
        f"livegen bench timing — {r['seconds']:g} s of 16ths at {r['bpm']:g} BPM, {r.get('generator', 'arpeggiator')} "
        f"({r.get('notes', 0)} notes; {r['machine']})",
        f"worker: {r['worker']['net']}: {r['worker']['fps']:.2f} frames/s" if r["worker"] else "worker: none",
        f"note-on emitted - scheduled: n={n['count']} median {n['median_ms']:.3f} ms, p99 {n['p99_ms']:.3f} ms, "
        f"max {n['max_ms']:.3f} ms, >1 ms: {n['late_over_1ms']}, >3 ms: {n['late_over_3ms']}",
    ]
    a = r["audio"]
    if isinstance(a, dict):
        lines.append(f"audio on {a['device']} (JACK server {r['jack_server']}): {a['callbacks']} callbacks of 256 frames at 48 kHz, underruns {a['underruns']}, "
                     f"render fell behind {a['starved']}, "
                     f"callback mean {a['mean_callback_ms']:.3f} ms, max {a['max_callback_ms']:.3f} ms")
    else:
        lines.append(f"audio: {a}")
    o = r["osc_in_to_applied"]
    if r["visuals_frames_per_s"]:
        lines.append(f"visuals: {r['visuals_frames_per_s']:.1f} frames/s rendered of {r.get('visuals_fps_target', 30.0):g} asked "
                     f"({r.get('visuals_size', '320x240')} ripples, as in a show)")
    st = r.get("style")
    if st:
        procs = f"{st['processes']} processes x " if st.get("processes", 1) > 1 else ""
        lines.append(f"style network ({procs}{st['threads']} thread(s), {'compiled' if st.get('compiled') else 'eager'}, {st.get('worker')}): {st['styled_per_s']:.1f} styled frames/s, "
                     f"one every {st.get('interval_ms_median', float('nan')):.1f} ms (median), "
                     f"network median {st['run_ms_median']:.1f} ms, frame latency median {st['latency_ms_median']:.1f} ms, "
                     f"frames replaced before styling {st['dropped']}, errors {st['errors']}")
    lines.append(f"OSC in -> parameter applied: {o['applied']}/{o['sent']} messages, median {o['median_ms']:.3f} ms, "
                 f"p99 {o['p99_ms']:.3f} ms, max {o['max_ms']:.3f} ms")
    e = r["engine"]
    lines.append(f"engine: {e['notes_scheduled']} notes scheduled, {e['notes_dropped_late']} dropped for being late "
                 f"while measuring ({e.get('notes_dropped_late_while_starting', 0)} while starting)"
                 + (f", at {e['dropped_late_at_s']} s" if e.get("dropped_late_at_s") else ""))
    targets = n["p99_ms"] <= 1.0 and n["max_ms"] <= 3.0 and (not isinstance(a, dict) or a["underruns"] + a["starved"] == 0)
    lines.append(f"targets (p99 <= 1 ms, max <= 3 ms, 0 underruns): {'met' if targets else 'NOT met'}")
    return "\n".join(lines)


def main(args) -> int:
    jack = _ensure_jack()
    try:
        report = asyncio.run(_run(args))
    finally:
        if jack is not None:
            jack.terminate()
            jack.wait(5)
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0
