"""``livegen bench melody``: how long one step of the melody RNN takes on one CPU thread.

A live note needs one model step per 16th per voice, on the generator thread, inside the
engine's look-ahead. Measures, on one torch thread (as in the live rig):

* the model step alone (``MelodyStepper.step``, batch 1): median, p99, max;
* the whole improviser step (model + constrained nucleus sampling + bookkeeping);
* tokens per second for a batch of 16 voices.

On the CPU the step runs in numpy: run it as ``OPENBLAS_NUM_THREADS=1 livegen bench melody``
for a strictly one-thread figure (OpenBLAS uses one thread for these sizes anyway).
"""

from __future__ import annotations

import json
import os
import random
import time

import numpy as np


def _stats(ms: list[float]) -> dict:
    a = np.array(ms)
    return {"n": len(a), "median_ms": float(np.median(a)), "p99_ms": float(np.percentile(a, 99)),
            "max_ms": float(a.max()), "mean_ms": float(a.mean())}


def run(model_path=None, steps: int = 5000, batch: int = 16) -> dict:
    import torch

    torch.set_num_threads(1)
    from livegen.music.encoding import COND_DIM, HOLD, START, condition
    from livegen.music.generator import GeneratorContext
    from livegen.music.improviser import DEFAULT_RNN, MelodyRNNGenerator
    from livegen.music.melody_rnn import MelodyStepper, load_model
    from livegen.music.scales import Key

    path = model_path or DEFAULT_RNN
    model, card = load_model(path, "cpu")
    stepper = MelodyStepper(model, "cpu")
    rng = np.random.default_rng(0)
    cond = condition(np.full(16, HOLD), np.arange(16), 2, 1, 16)

    def model_steps(b: int, n: int) -> list[float]:
        state, prev = stepper.start(b), np.full(b, START)
        out = []
        for i in range(n):
            c = np.repeat(cond[i % 16][None], b, 0)
            t = time.perf_counter()
            logp, state = stepper.step(state, prev, c)
            out.append((time.perf_counter() - t) * 1e3)
            prev = np.array([rng.choice(logp.shape[1], p=np.exp(row) / np.exp(row).sum()) for row in logp])
        return out

    model_steps(1, 200)  # warm up
    single = model_steps(1, steps)
    batched = model_steps(batch, max(200, steps // 10))
    tok_s = batch / (float(np.mean(batched)) / 1e3)  # model time only, as for batch 1

    gen = MelodyRNNGenerator("bench", model=str(path))
    params = {s.name: s.default for s in gen.param_specs()}
    key, prng = Key.parse("D", "dorian"), random.Random(0)
    windows = []
    for w in range(steps):
        ctx = GeneratorContext(w / 4, w / 4 + 0.25, key, 4, 160.0, params, (), prng, ())
        t = time.perf_counter()
        gen.generate(ctx)
        windows.append((time.perf_counter() - t) * 1e3)
    return {
        "model": str(path), "hidden": model.config.hidden, "layers": model.config.layers,
        "parameters": sum(p.numel() for p in model.parameters()), "file_bytes": os.path.getsize(path),
        "threads": torch.get_num_threads(), "torch": torch.__version__, "cpus": os.cpu_count(),
        "model_step_batch1": _stats(single),
        "improviser_window": _stats(windows[16:]),
        "tokens_per_s_batch": {"batch": batch, "tokens_per_s": tok_s, "step": _stats(batched)},
        "cond_dim": COND_DIM,
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
    }


def format_report(r: dict) -> str:
    m, w = r["model_step_batch1"], r["improviser_window"]
    return "\n".join([
        f"livegen bench melody — {r['model']} ({r['layers']}x{r['hidden']} LSTM, {r['parameters']:,} params, "
        f"{r['file_bytes'] / 1e6:.2f} MB), {r['threads']} torch thread, OPENBLAS_NUM_THREADS={r['openblas_threads']}, "
        f"torch {r['torch']}, {r['cpus']} cores",
        f"model step, batch 1:        median {m['median_ms']:.3f} ms, p99 {m['p99_ms']:.3f} ms, max {m['max_ms']:.3f} ms (n={m['n']})",
        f"improviser 16th (1 voice):  median {w['median_ms']:.3f} ms, p99 {w['p99_ms']:.3f} ms, max {w['max_ms']:.3f} ms",
        f"batch of {r['tokens_per_s_batch']['batch']}: {r['tokens_per_s_batch']['tokens_per_s']:,.0f} tokens/s",
    ])


def main(args) -> int:
    r = run(args.model, args.steps, args.batch)
    print(format_report(r))
    if args.json:
        args.json.write_text(json.dumps(r, indent=1))
    return 0

