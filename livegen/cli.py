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
    timing.add_argument("--generator", choices=("arpeggiator", "melody_rnn"), default="arpeggiator",
                        help="what plays the 16ths")
    timing.add_argument("--model", type=Path, help="melody model for --generator melody_rnn (default: shipped)")
    mbench = bsub.add_parser("melody", help="melody RNN step latency (1 thread) and batched tokens/s")
    mbench.add_argument("--model", type=Path, help="model file (default: the shipped one)")
    mbench.add_argument("--steps", type=int, default=5000)
    mbench.add_argument("--batch", type=int, default=16)
    mbench.add_argument("--json", type=Path, help="also write the figures as JSON here")

    train = sub.add_parser("train", help="train models")
    tsub = train.add_subparsers(dest="train", required=True)
    tm = tsub.add_parser("melody", help="train the melody RNN (and its n-gram baseline); torchrun-ready")
    tm.add_argument("--out", type=Path, default=Path("melody-model"), help="output folder")
    tm.add_argument("--collections", default="essen,oneills,ryans,aird,bach",
                    help="music21 corpus collections, comma-separated ('' for none)")
    tm.add_argument("--data", type=Path, action="append", default=[], help="a folder or file of MIDI/ABC/MusicXML (repeatable)")
    tm.add_argument("--epochs", type=int, default=40)
    tm.add_argument("--batch", type=int, default=64)
    tm.add_argument("--chunk", type=int, default=256, help="steps per training sequence")
    tm.add_argument("--lr", type=float, default=3e-3)
    tm.add_argument("--hidden", type=int, default=256)
    tm.add_argument("--layers", type=int, default=2)
    tm.add_argument("--embed", type=int, default=64)
    tm.add_argument("--dropout", type=float, default=0.2)
    tm.add_argument("--patience", type=int, default=4, help="epochs without improvement before stopping")
    tm.add_argument("--max-minutes", type=float, help="stop after this long (the run still finishes properly)")
    tm.add_argument("--transpose", type=int, default=6, help="random transposition range in semitones")
    tm.add_argument("--seed", type=int, default=0)
    tm.add_argument("--threads", type=int, help="torch threads per process")
    tm.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    tm.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    tm.add_argument("--ngram-order", type=int, help="n-gram order (default: chosen on the valid split)")
    tm.add_argument("--workers", type=int, help="processes for parsing the corpus")
    tm.add_argument("--limit-tunes", type=int, help="use only the first N tunes (quick runs)")

    ev = sub.add_parser("eval", help="evaluate models")
    esub = ev.add_subparsers(dest="eval", required=True)
    em = esub.add_parser("melody", help="bits per note/step of the melody RNN and the n-gram baseline")
    em.add_argument("paths", nargs="*", type=Path, help="MIDI/ABC/MusicXML files or folders")
    em.add_argument("--model", type=Path, help="melody model (default: the shipped one)")
    em.add_argument("--ngram", type=Path, help="n-gram baseline (default: ngram.npz beside the model)")
    em.add_argument("--split", choices=("train", "valid", "test"),
                    help="also evaluate this split of the music21 corpus collections")
    em.add_argument("--collections", default="essen,oneills,ryans,aird,bach")
    em.add_argument("--json", action="store_true", help="print JSON instead of a table")
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
        if args.command == "bench" and args.bench == "melody":
            from livegen.bench.melody import main as bench_melody

            return bench_melody(args)
        if args.command == "train" and args.train == "melody":
            return _train_melody(args)
        if args.command == "eval" and args.eval == "melody":
            from livegen.music.eval_melody import main as eval_melody

            return eval_melody(args)
    except KeyboardInterrupt:
        return 130
    except _UserError as e:
        log.error("%s", e)
        return 2
    return 2


class _UserError(Exception):
    pass


def _train_melody(args) -> int:
    from livegen.music.train_melody import TrainConfig, command_line, train

    cols = tuple(c for c in args.collections.split(",") if c.strip())
    cfg = TrainConfig(out=args.out, collections=cols, data=tuple(args.data), epochs=args.epochs, batch=args.batch,
                      chunk=args.chunk, lr=args.lr, hidden=args.hidden, layers=args.layers, embed=args.embed,
                      dropout=args.dropout, patience=args.patience, max_minutes=args.max_minutes,
                      transpose=args.transpose, seed=args.seed, threads=args.threads, device=args.device,
                      resume=args.resume, ngram_order=args.ngram_order, workers=args.workers,
                      limit_tunes=args.limit_tunes, command=command_line())
    try:
        summary = train(cfg, progress=sys.stderr.isatty())
    except ValueError as e:
        raise _UserError(str(e)) from None
    if summary:
        r = summary["test"].get("all")
        if r:
            print(f"test split: RNN {r['rnn_bits_per_note']:.3f} bits/note, n-gram {r['ngram_bits_per_note']:.3f} "
                  f"(ratio {r['ratio']:.3f}); wrote {args.out}/melody.pt and {args.out}/MODEL_CARD.md")
        else:
            print(f"wrote {args.out}/melody.pt and {args.out}/MODEL_CARD.md (no test tunes)")
    return 0


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
