"""The ``livegen`` command: play, render, devices, bench."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from livegen import __version__

log = logging.getLogger("livegen")

DEFAULT_PATCH = Path(__file__).resolve().parent.parent / "patches" / "default.toml"


def _default_patch() -> Path:
    for candidate in (Path("patches/default.toml"), DEFAULT_PATCH):
        if candidate.exists():
            return candidate
    return DEFAULT_PATCH


def _device(value: str) -> str | int:
    return int(value) if value.isdigit() else value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="livegen", description="Real-time generative music and visuals.")
    p.add_argument("--version", action="version", version=f"livegen {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug messages on the terminal")
    p.add_argument("--log-file", type=Path, help="where the detailed log goes")
    sub = p.add_subparsers(dest="command", required=True)

    play = sub.add_parser("play", help="play live until Esc, Ctrl-C or OSC /livegen/quit")
    play.add_argument("patch", nargs="?", type=Path, help="patch file (default: patches/default.toml)")
    play.add_argument("--no-window", action="store_true", help="no visuals window")
    play.add_argument("--no-audio", action="store_true", help="no built-in synth (MIDI/OSC out only)")
    play.add_argument("--audio-device", type=_device, help="audio output device: index or name part")
    play.add_argument("--osc-port", type=int, help="override the patch's OSC port")
    play.add_argument("--midi-in", action="append", help="MIDI input port name part (repeatable; overrides the patch)")
    play.add_argument("--fullscreen", action="store_true", default=None)
    play.add_argument("--seed", type=int, help="random seed for the generators")
    play.add_argument("--no-reload", action="store_true", help="do not reload the patch when the file changes")

    render = sub.add_parser("render", help="render a performance to files, faster than real time")
    render.add_argument("patch", type=Path)
    render.add_argument("--seconds", type=float, default=30.0)
    render.add_argument("--seed", type=int, default=0)
    render.add_argument("--out", type=Path, default=Path("render-out"))
    render.add_argument("--events", type=Path, help="a file of timed OSC/MIDI control events to replay")
    render.add_argument("--no-visuals", action="store_true")
    render.add_argument("--png", action="store_true", help="write PNG frames even when ffmpeg is available")

    sub.add_parser("devices", help="list MIDI ports, audio devices and displays")

    bench = sub.add_parser("bench", help="benchmarks")
    bsub = bench.add_subparsers(dest="bench", required=True)
    timing = bsub.add_parser("timing", help="note timing with a torch worker beside the engine")
    timing.add_argument("--seconds", type=float, default=120.0)
    timing.add_argument("--bpm", type=float, default=140.0)
    timing.add_argument("--no-worker", action="store_true", help="without the CPU-heavy torch worker")
    timing.add_argument("--no-visuals", action="store_true", help="without rendering visuals frames")
    timing.add_argument("--audio-device", type=_device, help="audio device (default: the JACK device when present)")
    timing.add_argument("--json", type=Path, help="also write the figures as JSON here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from livegen.log import setup_logging

    log_path = setup_logging(args.verbose, args.log_file)
    try:
        if args.command == "play":
            return _play(args, log_path)
        if args.command == "render":
            return _render(args)
        if args.command == "devices":
            from livegen.devices import list_devices

            print(list_devices())
            return 0
        if args.command == "bench" and args.bench == "timing":
            from livegen.bench.timing import main as bench_timing

            return bench_timing(args)
    except KeyboardInterrupt:
        return 130
    except _UserError as e:
        log.error("%s", e)
        return 2
    return 2


class _UserError(Exception):
    pass


def _load(path: Path):
    from livegen.patch.loader import PatchError, load_patch

    try:
        return load_patch(path)
    except PatchError as e:
        raise _UserError(str(e)) from None
    except OSError as e:
        raise _UserError(f"{path}: cannot read patch: {e.strerror or e}") from None


def _play(args, log_path) -> int:
    from livegen.play import RigOptions, play

    patch_path = args.patch or _default_patch()
    _load(patch_path)  # report a bad patch before opening any device
    if log_path:
        log.info("log file: %s", log_path)
    opts = RigOptions(window=not args.no_window, audio=not args.no_audio, audio_device=args.audio_device,
                      osc_port=args.osc_port, midi_inputs=args.midi_in, fullscreen=args.fullscreen,
                      seed=args.seed, watch_patch=not args.no_reload)
    return asyncio.run(play(patch_path, opts))


def _render(args) -> int:
    from livegen.control.script import ScriptError, load_script
    from livegen.render import render

    patch = _load(args.patch)
    events = []
    if args.events:
        try:
            events = load_script(args.events)
        except ScriptError as e:
            raise _UserError(str(e)) from None
    if args.seconds <= 0:
        raise _UserError(f"--seconds must be positive, got {args.seconds}")
    res = render(patch, args.seconds, args.seed, args.out, events, visuals=not args.no_visuals,
                 progress=sys.stderr.isatty(), force_png=args.png)
    print(f"wrote {res.midi}, {res.wav}" + (f", {res.visuals} ({res.frames} frames)" if res.visuals else ""))
    print(f"{res.notes} notes in {res.seconds:g} s, audio peak {res.peak:.3f}")
    return 0
