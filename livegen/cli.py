"""The ``livegen`` command: play, render, devices, bench."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
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
    play.add_argument("--record", metavar="FILE",
                      help="record the visuals to a video (.mp4/.mov/.mkv; {time} in the name = a timestamp)")
    play.add_argument("--record-hud", action="store_true", default=None,
                      help="record the window as shown, HUD included (default: the frames, without it)")
    play.add_argument("--virtual-camera", action="store_true",
                      help="send the frames to a virtual webcam (pip install 'livegen[camera-out]')")
    play.add_argument("--name", help="this instance's name in a show of several: OSC /livegen/NAME/... reaches it "
                                     "alone (default: [osc] instance, else the patch's name)")
    play.add_argument("--link", action="store_true",
                      help="join an Ableton Link session for tempo and bars (as [clock] source = \"link\")")

    render = sub.add_parser("render", help="render a performance to files, faster than real time")
    render.add_argument("patch", type=Path)
    render.add_argument("--seconds", type=float, default=30.0)
    render.add_argument("--seed", type=int, default=0)
    render.add_argument("--out", type=Path, default=Path("render-out"))
    render.add_argument("--events", type=Path, help="a file of timed OSC/MIDI control events to replay")
    render.add_argument("--no-visuals", action="store_true")
    render.add_argument("--png", action="store_true", help="write PNG frames even when ffmpeg is available")

    sub.add_parser("devices", help="list MIDI ports, audio devices and displays")

    docs = sub.add_parser("docs", help="write the reference documents generated from the code")
    dsub = docs.add_subparsers(dest="docs", required=True)
    dosc = dsub.add_parser("osc", help="the OSC reference (docs/osc.md)")
    dosc.add_argument("--out", type=Path, default=Path("docs/osc.md"), help="where to write it")
    dosc.add_argument("--check", action="store_true", help="write nothing; exit 1 if the file is stale")

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
    timing.add_argument("--style", action="store_true",
                        help="run the style network on the visuals in the rig (instead of the TransformerNet worker)")
    timing.add_argument("--style-model", type=Path, help="style model for --style (default: shipped)")
    timing.add_argument("--style-threads", type=int, default=1, help="torch threads of the style worker")
    timing.add_argument("--visuals-size", type=_frame_size, default=(320, 240), metavar="WxH",
                        help="visuals frame size")
    timing.add_argument("--visuals-fps", type=int, default=30,
                        help="frames rendered per second (the styled rate can be at most this)")
    timing.add_argument("--style-compile", action="store_true", help="torch.compile the style network (cached)")
    timing.add_argument("--style-worker", choices=("process", "thread"), default="process",
                        help="where the style network runs")
    timing.add_argument("--style-processes", type=int, default=None,
                        help="style processes on alternate frames (default: the patch default)")
    lbench = bsub.add_parser("link", help="two livegen instances on Ableton Link: bar alignment, tempo changes")
    lbench.add_argument("--bpm", type=float, default=120.0)
    lbench.add_argument("--new-bpm", type=float, default=150.0, help="the tempo change sent to instance A")
    lbench.add_argument("--beats-per-bar", type=int, default=4)
    lbench.add_argument("--bars", type=int, default=16, help="bars timed before and after the change")
    lbench.add_argument("--json", type=Path, help="also write the figures as JSON here")
    obench = bsub.add_parser("osc-roundtrip", help="OSC round trip: beats out through OscOutput, echoed back by "
                                                   "a peer program (python-osc, liblo, Pure Data)")
    obench.add_argument("--peer", action="append", choices=("python", "liblo", "pd"),
                        help="peer to measure (repeatable; default: all three, python first as the baseline)")
    obench.add_argument("--beats", type=int, default=1000, help="beats sent to each peer")
    obench.add_argument("--interval-ms", type=float, default=3.0, help="time between beats")
    obench.add_argument("--pd-patch", type=Path, help="the Pure Data patch for --peer pd "
                                                     "(default: examples/pd/livegen.pd)")
    obench.add_argument("--pd-args", default="", help="extra pd flags, e.g. '-sleepgrain 0.1'")
    obench.add_argument("--json", type=Path, help="also write the figures as JSON here")
    scbench = bsub.add_parser("scsynth", help="note latency from livegen's schedule to scsynth's /n_go (JACK)")
    scbench.add_argument("--notes", type=int, default=300, help="notes played")
    scbench.add_argument("--interval-ms", type=float, default=50.0, help="time between notes")
    scbench.add_argument("--synthdef-file", type=Path,
                         help="the compiled livegen SynthDef sent to the server (default: examples/supercollider/)")
    scbench.add_argument("--json", type=Path, help="also write the figures as JSON here")
    from livegen.bench import faults, fuzz, latent, panic

    fuzz.add_arguments(bsub.add_parser("fuzz", help="random and malformed OSC datagrams and MIDI at a real livegen "
                                                    "play: it stays up, answers, leaks nothing, leaves no note on"))
    faults.add_arguments(bsub.add_parser("faults", help="device faults: MIDI ports and the JACK server lost and back, "
                                                        "a style process killed: time to notice and to recover"))
    panic.add_arguments(bsub.add_parser("panic", help="panic latency: OSC and a CC trigger to silence on the synth, "
                                                      "MIDI, OSC targets and scsynth (JACK)"))
    latent.add_arguments(bsub.add_parser("latent", help="frame rate of the latent source + style network in the "
                                         "rig, against ripples in the same run"))
    mbench = bsub.add_parser("melody", help="melody RNN step latency (1 thread) and batched tokens/s")
    mbench.add_argument("--model", type=Path, help="model file (default: the shipped one)")
    mbench.add_argument("--steps", type=int, default=5000)
    mbench.add_argument("--batch", type=int, default=16)
    mbench.add_argument("--json", type=Path, help="also write the figures as JSON here")

    sbench = bsub.add_parser("style", help="style network frame rate vs Johnson's TransformerNet; fast vs fp32 parity")
    sbench.add_argument("--model", type=Path, help="style model (default: the shipped one)")
    sbench.add_argument("--sizes", default="320x240,640x360", help="frame sizes, comma-separated WxH")
    sbench.add_argument("--threads", default="1,2", help="torch thread counts, comma-separated")
    sbench.add_argument("--frames", type=int, default=30, help="timed frames per row")
    sbench.add_argument("--compile", action="store_true", help="also time the torch.compile'd network")
    sbench.add_argument("--bf16", action="store_true", help="also time bf16 autocast (slower on most CPUs)")
    sbench.add_argument("--json", type=Path, help="also write the figures as JSON here")
    qbench = bsub.add_parser("style-quality", help="style/content loss of the fast network vs Gatys optimisation, "
                                                   "and flicker on moving scenes")
    qbench.add_argument("--model", type=Path, help="style model (default: the shipped one)")
    qbench.add_argument("--baseline", type=Path, help="a model of the same network trained without the temporal term")
    qbench.add_argument("--steps", type=int, default=150, help="Gatys L-BFGS iterations per image")
    qbench.add_argument("--styles", help="styles to compare (comma-separated; default: all)")
    qbench.add_argument("--json", type=Path, help="also write the figures as JSON here")
    qbench.add_argument("--grid", type=Path, help="also write a PNG of every style on the three content frames")
    qbench.add_argument("--grid-only", action="store_true", help="only write the --grid PNG")
    qbench.add_argument("--flicker-only", action="store_true", help="skip the (slow) Gatys comparison")
    qbench.add_argument("--gatys-from", type=Path, help="take the Gatys optima from an earlier --json report")

    from livegen.bench import soak

    soak.add_arguments(sub.add_parser("soak", help="play a patch for N minutes under random control input: memory, "
                                                   "underruns, late notes, dropped frames"))

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

    ts = tsub.add_parser("style", help="train the multi-style network (conditional instance norm)")
    ts.add_argument("--styles", type=Path, nargs="+", required=True, help="style images (paintings)")
    ts.add_argument("--names", help="style names, comma-separated (default: the file names)")
    ts.add_argument("--out", type=Path, default=Path("style-model"), help="output folder")
    ts.add_argument("--content", type=Path, action="append", default=[],
                    help="a folder or file of extra content images (repeatable)")
    ts.add_argument("--steps", type=int, default=4000)
    ts.add_argument("--batch", type=int, default=4)
    ts.add_argument("--size", type=int, default=128, help="training crop side in pixels")
    ts.add_argument("--render-size", type=_frame_size, default=(320, 240), metavar="WxH",
                    help="size the scenes are rendered at for content crops (default: the show's 320x240)")
    ts.add_argument("--style-size", type=int, default=256, help="shorter side of the paintings for their statistics")
    ts.add_argument("--lr", type=float, default=5e-3)
    ts.add_argument("--content-weight", type=float, default=3.0)
    ts.add_argument("--style-weight", type=float, default=4.0)
    ts.add_argument("--tv-weight", type=float, default=0.02)
    ts.add_argument("--temporal-weight", type=float, default=300.0, help="0 trains without the temporal term")
    ts.add_argument("--temporal-gain", type=float, default=0.7,
                    help="the most an output pixel may change between frames, per unit of its input's change")
    ts.add_argument("--loss-net", default="random",
                    help="random (default, no download), vgg16 (torchvision's ImageNet weights) or a VGG16 .pth")
    ts.add_argument("--channels", type=lambda t: tuple(int(c) for c in t.split("/")), default=(16, 32, 64),
                    metavar="C1/C2/C3", help="channels at 1/2, 1/4 and 1/8 of the frame size")
    ts.add_argument("--res-blocks", type=int, default=3, help="residual blocks at 1/8 size")
    ts.add_argument("--upsample", choices=("nearest", "shuffle"), default="shuffle",
                    help="decoder upsampling: nearest + conv, or conv + pixel shuffle")
    ts.add_argument("--skips", action=argparse.BooleanOptionalAction, default=True,
                    help="skip connections from the encoder to the decoder")
    ts.add_argument("--loss-seed", type=int, default=0, help="seed of the random loss network")
    ts.add_argument("--preview-every", type=int, default=250)
    ts.add_argument("--checkpoint-every", type=int, default=250)
    ts.add_argument("--max-minutes", type=float)
    ts.add_argument("--threads", type=int)
    ts.add_argument("--seed", type=int, default=0)
    ts.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    ts.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    ts.add_argument("--init", type=Path, metavar="MODEL",
                    help="start from this style model's weights (same styles and architecture): fine-tuning "
                         "with a fresh optimiser and schedule")

    tl = tsub.add_parser("latent", help="train a latent image model (VAE or GAN) on pictures and livegen's scenes")
    tl.add_argument("--kind", choices=("vae", "gan"), required=True, help="vae (smooth, reconstructs) or gan")
    tl.add_argument("--images", type=Path, nargs="+", required=True, metavar="DIR_OR_FILE",
                    help="pictures to learn from: files or folders (searched recursively)")
    tl.add_argument("--out", type=Path, default=Path("latent-model"), help="output folder")
    tl.add_argument("--steps", type=int, default=3000)
    tl.add_argument("--batch", type=int, default=32)
    tl.add_argument("--size", type=int, choices=(64, 128), default=64, help="picture side in pixels")
    tl.add_argument("--latent-dim", type=int, default=64, help="numbers in a latent vector")
    tl.add_argument("--width", type=int, default=32, help="channels of the largest feature map (x8 at the smallest)")
    tl.add_argument("--lr", type=float, help="learning rate (default: 1e-3 for vae, 2e-4 for gan)")
    tl.add_argument("--beta", type=float, default=1.0, help="vae: weight of the KL term")
    tl.add_argument("--kl-warmup", type=int, default=500, help="vae: steps over which the KL weight ramps up from 0")
    tl.add_argument("--ema", type=float, default=0.999,
                    help="gan: decay of the saved generator's weight average (0: the last weights)")
    tl.add_argument("--procedural-fraction", type=float, default=0.2,
                    help="share of training crops taken from livegen's own scenes (0..1)")
    tl.add_argument("--render-size", type=_frame_size, default=(320, 240), metavar="WxH",
                    help="size the scenes are rendered at (default: the show's 320x240)")
    tl.add_argument("--holdout", type=float, default=0.1,
                    help="share of each picture's longer side held out for the figures")
    tl.add_argument("--preview-every", type=int, default=250)
    tl.add_argument("--checkpoint-every", type=int, default=250)
    tl.add_argument("--max-minutes", type=float, help="stop after this long (the run still finishes properly)")
    tl.add_argument("--threads", type=int, help="torch threads")
    tl.add_argument("--seed", type=int, default=0)
    tl.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda or cuda:N")
    tl.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")

    st = sub.add_parser("stylize", help="stylise an image, a folder of frames or a video (or --optimize a still)")
    st.add_argument("src", type=Path, metavar="IN")
    st.add_argument("dst", type=Path, metavar="OUT")
    st.add_argument("--model", type=Path, help="style model (default: the shipped one)")
    st.add_argument("--style", default="", help="NAME[=w,NAME=w...]: styles and their weights")
    st.add_argument("--intensity", type=float, default=1.0, help="mix over the source, 0..1")
    st.add_argument("--colour", type=float, default=0.0, help="colour preservation, 0..1")
    st.add_argument("--width", type=int, help="resize the input to this width first")
    st.add_argument("--optimize", action="store_true", help="Gatys optimisation of a still (slow, best quality)")
    st.add_argument("--steps", type=int, default=200, help="--optimize: L-BFGS iterations")
    st.add_argument("--style-image", action="append", default=[], help="--optimize: PATH[=w] of a painting")
    st.add_argument("--loss-net", default="random", help="--optimize: random, vgg16 or a VGG16 .pth")
    st.add_argument("--device", help="cpu, cuda or cuda:N")

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
    from livegen.native_log import route_native_messages

    route_native_messages()
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
        if args.command == "bench" and args.bench == "link":
            from livegen.bench.link import main as bench_link

            return bench_link(args)
        if args.command == "docs" and args.docs == "osc":
            from livegen.control.osc_reference import main as docs_osc

            return docs_osc(args)
        if args.command == "bench" and args.bench == "osc-roundtrip":
            from livegen.bench.osc_roundtrip import main as bench_osc_roundtrip

            return bench_osc_roundtrip(args)
        if args.command == "bench" and args.bench == "scsynth":
            from livegen.bench.scsynth import main as bench_scsynth

            return bench_scsynth(args)
        if args.command == "bench" and args.bench in ("fuzz", "faults", "panic", "latent"):
            import importlib

            return importlib.import_module(f"livegen.bench.{args.bench}").main(args)
        if args.command == "bench" and args.bench == "melody":
            from livegen.bench.melody import main as bench_melody

            return bench_melody(args)
        if args.command == "bench" and args.bench == "style":
            from livegen.bench.style import main as bench_style

            return bench_style(args)
        if args.command == "bench" and args.bench == "style-quality":
            from livegen.bench.style_quality import main as bench_style_quality
            from livegen.visuals.style_net import StyleModelError

            try:
                return bench_style_quality(args)
            except (ValueError, StyleModelError, OSError) as e:  # a bad --model, --gatys-from...
                raise _UserError(str(e)) from None
        if args.command == "soak":
            from livegen.bench.soak import main as soak

            return soak(args)
        if args.command == "train" and args.train == "melody":
            return _train_melody(args)
        if args.command == "train" and args.train == "style":
            return _train_style(args)
        if args.command == "train" and args.train == "latent":
            return _train_latent(args)
        if args.command == "stylize":
            return _stylize(args)
        if args.command == "eval" and args.eval == "melody":
            from livegen.music.eval_melody import main as eval_melody

            return eval_melody(args)
    except KeyboardInterrupt:
        return 130
    except _UserError as e:
        log.error("%s", e)
        return 2
    except Exception as e:  # a bug of ours: one line here, the traceback in the log file
        log.debug("unexpected error", exc_info=True)
        where = f"; details in {log_path}" if log_path else ""
        log.error("unexpected error: %s: %s%s", type(e).__name__, " ".join(str(e).split()), where)
        return 1
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


def _frame_size(text: str) -> tuple[int, int]:
    """``WxH`` -> (W, H), for argparse."""
    w, sep, h = text.lower().partition("x")
    try:
        size = (int(w), int(h))
    except ValueError:
        size = (0, 0)
    if not sep or min(size) < 16:
        raise argparse.ArgumentTypeError(f"{text!r} is not a frame size like 320x240")
    return size


def _train_style(args) -> int:
    from livegen.visuals.images import ImageError
    from livegen.visuals.loss_net import LossNetError
    from livegen.visuals.style_net import StyleModelError
    from livegen.visuals.train_style import StyleTrainConfig, train

    names = [n.strip() for n in args.names.split(",")] if args.names else []
    cfg = StyleTrainConfig(styles=[str(p) for p in args.styles], out=str(args.out), names=names,
                           content=[str(p) for p in args.content], size=args.size, render_size=args.render_size,
                           style_size=args.style_size,
                           batch=args.batch, steps=args.steps, lr=args.lr, content_weight=args.content_weight,
                           style_weight=args.style_weight, tv_weight=args.tv_weight,
                           temporal_weight=args.temporal_weight, temporal_gain=args.temporal_gain, loss_net=args.loss_net, loss_seed=args.loss_seed,
                           channels=args.channels, res_blocks=args.res_blocks, upsample=args.upsample,
                           skips=args.skips,
                           preview_every=args.preview_every, checkpoint_every=args.checkpoint_every,
                           max_minutes=args.max_minutes, threads=args.threads, seed=args.seed, device=args.device,
                           resume=args.resume, init=str(args.init) if args.init else None)
    try:
        summary = train(cfg, progress=sys.stderr.isatty())
    except (ValueError, ImageError, LossNetError, StyleModelError) as e:
        raise _UserError(str(e)) from None
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():  # started by torchrun
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"{summary['steps']} steps in {summary['trained_minutes']} min"
              + (f" on {summary['processes']} processes" if summary.get("processes", 1) > 1 else "")
              + f"; wrote {args.out}/style.pt, {args.out}/preview.png, {args.out}/loss.png and {args.out}/MODEL_CARD.md")
    return 0


def _train_latent(args) -> int:
    from livegen.visuals.images import ImageError
    from livegen.visuals.latent_models import LatentModelError
    from livegen.visuals.train_latent import LatentTrainConfig, train

    cfg = LatentTrainConfig(kind=args.kind, images=[str(p) for p in args.images], out=str(args.out),
                            size=args.size, latent_dim=args.latent_dim, width=args.width, batch=args.batch,
                            steps=args.steps, lr=args.lr, beta=args.beta, kl_warmup=args.kl_warmup, ema=args.ema,
                            procedural_fraction=args.procedural_fraction, render_size=args.render_size,
                            holdout=args.holdout, preview_every=args.preview_every,
                            checkpoint_every=args.checkpoint_every, max_minutes=args.max_minutes,
                            threads=args.threads, seed=args.seed,
                            device=None if args.device == "auto" else args.device, resume=args.resume)
    try:
        summary = train(cfg, progress=sys.stderr.isatty())
    except (ValueError, ImageError, LatentModelError) as e:
        raise _UserError(str(e)) from None
    figure = ""
    held = summary.get("reconstruction", {}).get("heldout")
    if held:
        figure = f"; held-out reconstruction MSE {held['mse']:.5f} ({held['psnr']:.2f} dB PSNR)"
    elif "final_losses" in summary:
        fl = summary["final_losses"]
        figure = f"; final hinge losses: critic {fl['d_hinge']:.3f}, generator {fl['g_hinge']:.3f}"
    print(f"{summary['steps']} steps in {summary['trained_minutes']} min{figure}; wrote {args.out}/latent.pt, "
          f"{args.out}/preview.png, {args.out}/loss.png and {args.out}/MODEL_CARD.md")
    return 0


def _stylize(args) -> int:
    from livegen.visuals.images import ImageError
    from livegen.visuals.loss_net import LossNetError
    from livegen.visuals.style_net import StyleModelError
    from livegen.visuals.stylize import StylizeError, StylizeJob, parse_style_spec, run

    try:
        style = parse_style_spec(args.style) if args.style else {}
        images = {}
        for item in args.style_image:
            path, _, w = item.partition("=")
            images[path] = float(w) if w else 1.0
        if not args.optimize and not style:
            raise StylizeError("--style NAME[=w,...] is needed (livegen bench style lists the model's styles)")
        job = StylizeJob(src=args.src, dst=args.dst, model=args.model, style=style, intensity=args.intensity,
                         colour=args.colour, width=args.width, optimize=args.optimize, steps=args.steps,
                         loss_net=args.loss_net, style_images=images, device=args.device)
        summary = run(job)
    except (StylizeError, StyleModelError, ImageError, LossNetError, ValueError) as e:
        raise _UserError(str(e)) from None
    extra = (f", style loss {summary['style_loss']:.4f}, content loss {summary['content_loss']:.4f}"
             if "style_loss" in summary else "")
    print(f"wrote {summary['out']} ({summary['frames']} frame(s) in {summary['seconds']:.1f} s{extra})")
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

    if log_path:
        log.info("log file: %s", log_path)
    else:
        log.warning("no log file: cannot write one where it goes (--log-file PATH chooses another place)")
    patch_path = args.patch or _default_patch()
    _load(patch_path)  # report a bad patch before opening any device
    if args.record:
        from livegen.visuals.recorder import record_path_problem

        problem = record_path_problem(args.record)
        if problem:
            raise _UserError(f"--record {problem}")
    if args.name:
        from livegen.control.osc_addresses import instance_name_problem

        problem = instance_name_problem(args.name)
        if problem:
            raise _UserError(f"--name: {problem}")
    opts = RigOptions(window=not args.no_window, audio=not args.no_audio, audio_device=args.audio_device,
                      osc_port=args.osc_port, midi_inputs=args.midi_in, fullscreen=args.fullscreen,
                      seed=args.seed, watch_patch=not args.no_reload, link=args.link, name=args.name,
                      record=args.record, record_hud=args.record_hud, virtual_camera=args.virtual_camera)
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
