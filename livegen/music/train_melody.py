"""``livegen train melody``: train the melody RNN (and its n-gram yardstick) on real tunes.

One script for a laptop and for a cluster: run it plainly, or under ``torchrun`` for
DistributedDataParallel over several processes or GPUs (gloo on CPU, NCCL on CUDA). Each
epoch is seeded from (seed, epoch), so a run resumed from its checkpoint continues exactly as
if it had not stopped. Rank 0 writes everything: ``checkpoint.pt`` every epoch, ``melody.pt``
(the best weights so far), ``loss.png``, ``history.json``, ``manifest.json`` (the split) and,
at the end, ``ngram.npz`` and ``MODEL_CARD.md``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from livegen.atomic import atomic_path, atomic_write_text
from livegen.music.corpus import COLLECTIONS, LoadReport, by_split, load_collections, load_paths, manifest
from livegen.music.encoding import COND_DIM, START, Melody
from livegen.music.melody_rnn import MelodyRNN, MelodyRNNConfig, default_device, save_model

log = logging.getLogger("livegen.train")
LN2 = math.log(2.0)


@dataclass
class TrainConfig:
    out: Path = Path("melody-model")
    collections: tuple[str, ...] = tuple(COLLECTIONS)
    data: tuple[Path, ...] = ()  # user folders/files, split by tune name like the corpus
    epochs: int = 40
    batch: int = 64
    chunk: int = 256  # steps per training sequence (16 bars of 4/4)
    lr: float = 3e-3
    hidden: int = 256
    layers: int = 2
    embed: int = 64
    dropout: float = 0.2
    patience: int = 4  # epochs without a better validation score before stopping
    max_minutes: float | None = None  # stop (and still finish properly) after this long
    transpose: int = 6  # random transposition within +-this many semitones (kept in range)
    seed: int = 0
    threads: int | None = None
    device: str | None = None
    resume: bool = False
    ngram_order: int | None = None  # None: chosen on the validation split
    workers: int | None = None  # processes for parsing the corpus
    limit_tunes: int | None = None  # use only the first N tunes (quick experiments, tests)
    command: str = field(default="", repr=False)


# ---------------------------------------------------------------------------- data
def load_data(cfg: TrainConfig, progress: bool = True) -> tuple[list[Melody], dict[str, LoadReport]]:
    melodies, reports = load_collections(cfg.collections, cfg.workers, progress) if cfg.collections else ([], {})
    if cfg.data:
        ms, rep = load_paths(cfg.data, cfg.workers, progress)
        melodies += ms
        reports["user files"] = rep
    if cfg.limit_tunes:
        melodies = melodies[: cfg.limit_tunes]
    return melodies, reports


def make_batches(melodies: Sequence[Melody], cfg: TrainConfig, rng: np.random.Generator) -> list[tuple]:
    """Shuffled, transposed chunks, grouped by length so padding is small. Each batch is
    (inputs (B,T) int64, targets (B,T) int64 with -1 padding, cond (B,T,C) float32)."""
    pieces = []
    for m in melodies:
        down, up = m.transposable()
        lo, hi = -min(down, cfg.transpose), min(up, cfg.transpose)
        shift = int(rng.integers(lo, hi + 1)) if hi >= lo else 0
        mt = m.transposed(shift)
        x, y, c = mt.inputs(), mt.tokens.astype(np.int64), mt.conditioning()
        for a in range(0, len(y), cfg.chunk):
            pieces.append((x[a:a + cfg.chunk], y[a:a + cfg.chunk], c[a:a + cfg.chunk]))
    order = rng.permutation(len(pieces))
    # Sort within pools of 50 batches by length: little padding, still random.
    pool = cfg.batch * 50
    batches = []
    for p0 in range(0, len(order), pool):
        idx = sorted(order[p0:p0 + pool], key=lambda i: len(pieces[i][1]))
        for b0 in range(0, len(idx), cfg.batch):
            batches.append(_pad([pieces[i] for i in idx[b0:b0 + cfg.batch]]))
    perm = rng.permutation(len(batches))
    return [batches[i] for i in perm]


def _pad(items: list[tuple[np.ndarray, np.ndarray, np.ndarray]]):
    t = max(len(y) for _, y, _ in items)
    b = len(items)
    x = np.full((b, t), START, np.int64)
    y = np.full((b, t), -1, np.int64)
    c = np.zeros((b, t, COND_DIM), np.float32)
    for i, (xi, yi, ci) in enumerate(items):
        n = len(yi)
        x[i, :n], y[i, :n], c[i, :n] = xi, yi, ci
    return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(c)


@torch.no_grad()
def evaluate(model: MelodyRNN, melodies: Sequence[Melody], device: torch.device, batch: int = 32) -> dict:
    """Negative log-likelihood of whole tunes read from their start: sums and bits per note/step."""
    model.eval()
    nll, notes, steps = 0.0, 0, 0
    order = sorted(range(len(melodies)), key=lambda i: len(melodies[i].tokens))
    for b0 in range(0, len(order), batch):
        ms = [melodies[i] for i in order[b0:b0 + batch]]
        x, y, c = _pad([(m.inputs(), m.tokens.astype(np.int64), m.conditioning()) for m in ms])
        logits, _ = model(x.to(device), c.to(device))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(), y.reshape(-1).to(device),
                               ignore_index=-1, reduction="sum")
        nll += float(loss)
        notes += sum(m.notes for m in ms)
        steps += sum(len(m.tokens) for m in ms)
    return _bits(nll, notes, steps, len(melodies))


def _bits(nll: float, notes: int, steps: int, tunes: int) -> dict:
    return {"bits_per_note": nll / LN2 / max(1, notes), "bits_per_step": nll / LN2 / max(1, steps),
            "nll": nll, "notes": notes, "steps": steps, "tunes": tunes}


# ---------------------------------------------------------------------------- distributed
def _dist_setup(device_pref: str | None) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, torch.device(device_pref) if device_pref else default_device()
    import torch.distributed as dist

    use_cuda = torch.cuda.is_available() and (device_pref is None or device_pref.startswith("cuda"))
    dist.init_process_group("nccl" if use_cuda else "gloo")
    rank = dist.get_rank()
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    return rank, dist.get_world_size(), device


def _all_sum(values: list[float], world: int, device: torch.device) -> list[float]:
    if world <= 1:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _evaluate_dist(model, melodies, device, rank, world) -> dict:
    r = evaluate(model, melodies[rank::world], device)
    nll, notes, steps = _all_sum([r["nll"], r["notes"], r["steps"]], world, device)
    return _bits(nll, int(notes), int(steps), len(melodies))


# ---------------------------------------------------------------------------- training
def train(cfg: TrainConfig, progress: bool = True) -> dict:
    """Train to ``cfg.out``; returns the summary that also goes into the model card."""
    rank, world, device = _dist_setup(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    melodies, reports = load_data(cfg, progress and rank == 0)
    splits = by_split(melodies)
    if not splits["train"] or not splits["valid"]:
        raise SystemExit(f"train melody: need tunes in both the train and valid splits "
                         f"(have {len(splits['train'])} / {len(splits['valid'])}); give more data")
    if rank == 0:
        atomic_write_text(out / "manifest.json", json.dumps(manifest(melodies), indent=0))
        log.info("data: %d train, %d valid, %d test tunes", *(len(splits[s]) for s in ("train", "valid", "test")))

    mcfg = MelodyRNNConfig(hidden=cfg.hidden, layers=cfg.layers, embed=cfg.embed, dropout=cfg.dropout)
    torch.manual_seed(cfg.seed)
    model = MelodyRNN(mcfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1)
    history: list[dict] = []
    best, best_epoch, bad = math.inf, -1, 0
    start_epoch = 0
    ckpt_path = out / "checkpoint.pt"
    if cfg.resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optim"])
        sched.load_state_dict(ck["sched"])
        history, best, best_epoch, bad = ck["history"], ck["best"], ck["best_epoch"], ck["bad"]
        start_epoch = ck["epoch"] + 1
        if rank == 0:
            log.info("resuming after epoch %d (best valid %.4f bits/note at epoch %d)", ck["epoch"], best, best_epoch)
    elif cfg.resume and rank == 0:
        log.info("no checkpoint in %s; starting fresh", out)
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    stopped = ""
    elapsed_before = sum(h.get("seconds", 0.0) for h in history)
    for epoch in range(start_epoch, cfg.epochs):
        if bad >= cfg.patience:
            stopped = f"early stop: no better validation score for {cfg.patience} epochs"
            break
        t0 = time.monotonic()
        rng = np.random.default_rng([cfg.seed, epoch])
        torch.manual_seed(cfg.seed * 100003 + epoch)
        batches = make_batches(splits["train"], cfg, rng)
        n = (len(batches) // world) * world or len(batches)
        mine = batches[rank:n:world]
        net.train()
        tot, cnt = 0.0, 0
        bar = None
        if progress and rank == 0:
            from tqdm import tqdm

            bar = tqdm(total=len(mine), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", leave=False)
        timed_out = False
        for x, y, c in mine:
            logits, _ = net(x.to(device), c.to(device))
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1).to(device), ignore_index=-1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            k = int((y >= 0).sum())
            tot += loss.item() * k
            cnt += k
            if bar:
                bar.update(1)
                bar.set_postfix(bits_per_step=f"{tot / max(1, cnt) / LN2:.3f}")
            if cfg.max_minutes and (elapsed_before + time.monotonic() - t_start) > cfg.max_minutes * 60:
                timed_out = True
                break
        if bar:
            bar.close()
        tot, cnt = _all_sum([tot, float(cnt)], world, device)
        v = _evaluate_dist(model, splits["valid"], device, rank, world)
        sched.step(v["bits_per_note"])
        improved = v["bits_per_note"] < best - 1e-4
        if improved:
            best, best_epoch, bad = v["bits_per_note"], epoch, 0
        else:
            bad += 1
        rec = {"epoch": epoch + 1, "train_bits_per_step": tot / max(1.0, cnt) / LN2,
               "valid_bits_per_step": v["bits_per_step"], "valid_bits_per_note": v["bits_per_note"],
               "lr": opt.param_groups[0]["lr"], "seconds": time.monotonic() - t0, "partial": timed_out}
        history.append(rec)
        if rank == 0:
            log.info("epoch %d: train %.3f bits/step, valid %.3f bits/step %.3f bits/note%s (%.0f s)",
                     epoch + 1, rec["train_bits_per_step"], v["bits_per_step"], v["bits_per_note"],
                     " *" if improved else "", rec["seconds"])
            if improved:
                save_model(out / "melody.pt", model, {"epoch": epoch + 1, "valid": v})
            ck = {"epoch": epoch, "model": model.state_dict(), "optim": opt.state_dict(), "sched": sched.state_dict(),
                  "history": history, "best": best, "best_epoch": best_epoch, "bad": bad}
            _save_torch(ckpt_path, ck)
            atomic_write_text(out / "history.json", json.dumps(history, indent=1))
            plot_history(history, out / "loss.png")
        if timed_out:
            stopped = f"time limit of {cfg.max_minutes:g} minutes reached"
            break
    else:
        stopped = stopped or f"all {cfg.epochs} epochs done"
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    summary: dict = {}
    if rank == 0:
        summary = finish(cfg, out, splits, reports, history, best_epoch, stopped, device,
                         time.monotonic() - t_start + elapsed_before)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return summary


def _plain(v):
    """Config values as JSON-able (and weights_only-loadable) types."""
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    return v


def _save_torch(path: Path, obj) -> None:
    import io

    from livegen.atomic import atomic_write

    buf = io.BytesIO()
    torch.save(obj, buf)
    with atomic_write(path) as f:
        f.write(buf.getvalue())


def finish(cfg: TrainConfig, out: Path, splits, reports, history, best_epoch, stopped, device, seconds) -> dict:
    """Test-split figures for the best model and the n-gram baseline; the model card."""
    from livegen.music import ngram
    from livegen.music.melody_rnn import load_model

    model, _ = load_model(out / "melody.pt", device)
    order = cfg.ngram_order
    order_scores: dict = {}
    if order is None:
        order, order_scores = ngram.select_order(splits["train"], splits["valid"])
    ng = ngram.NGramModel.train(splits["train"], order=order)
    ng.save(out / "ngram.npz")
    per: dict[str, dict] = {}
    test = splits["test"]
    for coll in sorted({m.collection for m in test}) + ["all"]:
        ms = [m for m in test if coll == "all" or m.collection == coll]
        r = evaluate(model, ms, device)
        b = ngram.bits(ng, ms)
        per[coll] = {"tunes": r["tunes"], "notes": r["notes"], "steps": r["steps"],
                     "rnn_bits_per_note": r["bits_per_note"], "rnn_bits_per_step": r["bits_per_step"],
                     "ngram_bits_per_note": b["bits_per_note"], "ngram_bits_per_step": b["bits_per_step"],
                     "ratio": r["bits_per_note"] / b["bits_per_note"] if b["bits_per_note"] else float("nan")}
    summary = {
        "command": cfg.command or "livegen train melody",
        "config": {k: _plain(v) for k, v in asdict(cfg).items() if k not in ("command", "resume")},
        "data": {name: rep.as_dict() for name, rep in reports.items()},
        "split": {s: len(v) for s, v in splits.items()},
        "epochs_run": len(history), "best_epoch": best_epoch + 1, "stopped": stopped,
        "train_seconds": round(seconds, 1),
        "machine": {"cpus": os.cpu_count(), "torch": torch.__version__, "device": str(device),
                    "threads": torch.get_num_threads(), "python": platform.python_version()},
        "ngram": {"order": order, "valid_bits_per_note_by_order": order_scores},
        "test": per,
    }
    # Plain JSON types only (numpy scalars would not load with weights_only=True).
    summary = json.loads(json.dumps(summary, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
    model_cpu, _ = load_model(out / "melody.pt", "cpu")
    save_model(out / "melody.pt", model_cpu, summary)
    atomic_write_text(out / "MODEL_CARD.md", model_card(summary))
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    return summary


# ---------------------------------------------------------------------------- reports
def plot_history(history: list[dict], path: Path) -> None:
    """Loss curves people can look at: bits per step (train, valid) and valid bits per note."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the train extra brings matplotlib; without it, history.json remains
        log.warning("matplotlib is not installed: no loss.png (pip install 'livegen[train]')")
        return
    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(ep, [h["train_bits_per_step"] for h in history], "o-", label="train bits/step")
    ax.plot(ep, [h["valid_bits_per_step"] for h in history], "s-", label="valid bits/step")
    ax.set_xlabel("epoch")
    ax.set_ylabel("bits per 16th step")
    ax2 = ax.twinx()
    ax2.plot(ep, [h["valid_bits_per_note"] for h in history], "^--", color="tab:red", label="valid bits/note")
    ax2.set_ylabel("bits per note", color="tab:red")
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [ln.get_label() for ln in lines], loc="upper right")
    ax.set_title("livegen melody RNN")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)


ENCODING_NOTE = (
    "One token per 16th note, as in Magenta's MelodyRNN: HOLD (the current note or silence goes on), "
    "REST (silence starts) or NOTE-ON of a pitch in MIDI 36..96 (63 tokens). We chose the grid over a "
    "pitch + duration vocabulary because live generation is clocked in 16ths: each engine step asks for "
    "exactly one token, so the model can be steered (temperature, key mask, density, rests) and stopped "
    "at any 16th, never mid-event, and the metric position of every token is exact. Beside the previous "
    "token the network reads, at every step, one-hot inputs for its position in the bar (0..31), the "
    "key's tonic (12) and mode (major/minor, mapped from modal keys by their third) and the metre "
    "(2/4, 3/4 or 6/8, 4/4, 6/4 or 12/8, other). Keys come from the scores' key signatures, or from a "
    "Krumhansl-Schmuckler estimate where a file has none. Training transposes every tune by a random "
    "interval within +-6 semitones each epoch (kept in range), moving its key along."
)


def model_card(s: dict) -> str:
    c = s["config"]
    lines = ["# livegen melody RNN — model card", "",
             "An LSTM that improvises monophonic melodies one 16th note at a time, conditioned on key, "
             "bar position and metre. It is livegen's default melody generator (`kind = \"melody_rnn\"`).", "",
             "## How it was made", "", "```", s["command"], "```", "",
             f"- Stopped: {s['stopped']}; epochs run: {s['epochs_run']}, best (kept) epoch: {s['best_epoch']}.",
             f"- Wall time: {s['train_seconds'] / 60:.1f} min on {s['machine']['cpus']} CPU cores "
             f"(torch {s['machine']['torch']}, device {s['machine']['device']}, "
             f"{s['machine']['threads']} threads, Python {s['machine']['python']}).", "",
             "## Data", "",
             "Monophonic melodies from the music21 corpus (shipped inside the music21 package) and any "
             "user files, split by tune name (sha1 mod 100: <80 train, <90 valid, else test); the split is "
             "in `manifest.json` next to the model when trained.", "",
             "| source | tunes kept | notes | skipped (reason: count) |", "|---|---|---|---|"]
    for name, rep in s["data"].items():
        skipped = "; ".join(f"{k}: {v}" for k, v in rep["skipped"].items()) or "none"
        lines.append(f"| {name} | {rep['tunes']} | {rep['notes']} | {skipped} |")
    lines += ["", f"Split: {s['split']['train']} train, {s['split']['valid']} valid, {s['split']['test']} test tunes.",
              "", "## Encoding", "", ENCODING_NOTE, "",
              "## Hyperparameters", "",
              f"- LSTM: {c['layers']} layers x {c['hidden']} units, token embedding {c['embed']}, dropout {c['dropout']}.",
              f"- Adam, lr {c['lr']} halved when validation stalls, gradient clip 1.0, batch {c['batch']} "
              f"sequences of up to {c['chunk']} steps, up to {c['epochs']} epochs, early stopping after "
              f"{c['patience']} epochs without improvement, seed {c['seed']}.",
              "- Weights stored as fp16 (loaded as fp32).", "",
              "## Test-split results", "",
              f"Baseline: interpolated Kneser-Ney n-gram of order {s['ngram']['order']} on the same tokens, with "
              "pitches counted relative to the key's tonic (so it knows the key, as the RNN does), trained on "
              "the same train split; order chosen on the valid split. Bits are -log2 p summed over every "
              "16th step of a tune read from its start, divided by its notes (bits/note) or steps (bits/step).", "",
              "| collection | tunes | notes | RNN bits/note | n-gram bits/note | ratio | RNN bits/step | n-gram bits/step |",
              "|---|---|---|---|---|---|---|---|"]
    for coll, r in s["test"].items():
        lines.append(f"| {coll} | {r['tunes']} | {r['notes']} | {r['rnn_bits_per_note']:.3f} | "
                     f"{r['ngram_bits_per_note']:.3f} | {r['ratio']:.3f} | {r['rnn_bits_per_step']:.4f} | "
                     f"{r['ngram_bits_per_step']:.4f} |")
    lines += ["", "## Intended use and limits", "",
              "Live improvisation and call-and-response in folk-like and chorale-like idioms. It knows "
              "major/minor keys and simple metres; it has never seen chords, swing, triplets or music "
              "outside these Western collections, and what it plays reflects them.", ""]
    return "\n".join(lines)


def command_line() -> str:
    return "livegen " + " ".join(shlex.quote(a) for a in sys.argv[1:])
