"""``livegen eval melody``: how well the melody RNN and the n-gram baseline predict real tunes.

Bits per note (and per 16th step) on any MIDI, ABC or MusicXML files or folders, grouped by
folder, with what was skipped and why; or on a split of the corpus collections. Lower is
better: it is the information the model still needs to write the tune down.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

log = logging.getLogger("livegen.eval")


class EvalError(Exception):
    pass


def evaluate_paths(model_path: Path, ngram_path: Path | None, paths: list[Path], split: str | None = None,
                   collections: tuple[str, ...] = (), device: str | None = None) -> dict:
    """The figures as a dict (what ``--json`` prints)."""
    from livegen.music import ngram as ng
    from livegen.music.corpus import LoadReport, by_split, load_collections, load_paths
    from livegen.music.melody_rnn import MelodyModelError, load_model
    from livegen.music.train_melody import evaluate

    try:
        model, _ = load_model(model_path, device or "cpu")
    except MelodyModelError as exc:
        raise EvalError(str(exc)) from None
    baseline = None
    if ngram_path is not None:
        try:
            baseline = ng.NGramModel.load(ngram_path)
        except ng.NGramError as exc:
            raise EvalError(str(exc)) from None
    if baseline is None:
        log.warning("no n-gram baseline (no ngram.npz beside %s; give --ngram): evaluating the RNN only", model_path)
    melodies, report = load_paths(paths) if paths else ([], LoadReport())
    if split:
        ms, reps = load_collections(collections, progress=sys.stderr.isatty())
        melodies += by_split(ms)[split]
        for r in reps.values():
            report.skipped.update(r.skipped)
            for k, v in r.examples.items():
                report.examples.setdefault(k, v)
    groups: dict[str, list] = {}
    for m in melodies:
        groups.setdefault(m.collection, []).append(m)
    out: dict = {"model": str(model_path), "ngram": str(ngram_path) if baseline else None,
                 "split": split, "groups": {}, "skipped": dict(report.skipped),
                 "skipped_examples": dict(report.examples)}
    dev = next(model.parameters()).device
    for name, ms in sorted(groups.items()) + ([("all", melodies)] if len(groups) > 1 else []):
        r = evaluate(model, ms, dev)
        g = {"tunes": r["tunes"], "notes": r["notes"], "steps": r["steps"],
             "rnn_bits_per_note": r["bits_per_note"], "rnn_bits_per_step": r["bits_per_step"]}
        if baseline is not None:
            b = ng.bits(baseline, ms)
            g.update(ngram_bits_per_note=b["bits_per_note"], ngram_bits_per_step=b["bits_per_step"],
                     ratio=r["bits_per_note"] / b["bits_per_note"] if b["bits_per_note"] else None)
        out["groups"][name] = g
    if len(groups) == 1:
        out["groups"]["all"] = next(iter(out["groups"].values()))
    out["tunes"] = len(melodies)
    out["notes"] = sum(m.notes for m in melodies)
    return out


def format_table(res: dict) -> str:
    lines = [f"model {res['model']}" + (f", baseline {res['ngram']}" if res["ngram"] else ", no n-gram baseline")]
    head = f"{'group':<24} {'tunes':>6} {'notes':>8} {'RNN b/note':>11} {'RNN b/step':>11}"
    if res["ngram"]:
        head += f" {'n-gram b/note':>14} {'n-gram b/step':>14} {'ratio':>6}"
    lines.append(head)
    for name, g in res["groups"].items():
        if name == "all" and len(res["groups"]) == 2:
            continue
        row = (f"{name[:24]:<24} {g['tunes']:>6} {g['notes']:>8} {g['rnn_bits_per_note']:>11.3f} "
               f"{g['rnn_bits_per_step']:>11.4f}")
        if res["ngram"]:
            row += f" {g['ngram_bits_per_note']:>14.3f} {g['ngram_bits_per_step']:>14.4f} {g['ratio']:>6.3f}"
        lines.append(row)
    if res["skipped"]:
        lines.append("skipped:")
        for reason, n in sorted(res["skipped"].items(), key=lambda kv: -kv[1]):
            lines.append(f"  {n:>5} {reason} (e.g. {res['skipped_examples'].get(reason, '?')})")
    else:
        lines.append("skipped: none")
    return "\n".join(lines)


def main(args) -> int:
    from livegen.music.improviser import DEFAULT_NGRAM, DEFAULT_RNN

    model = args.model or DEFAULT_RNN
    if args.ngram:
        ngram = args.ngram
    else:
        beside = Path(model).with_name("ngram.npz")
        ngram = beside if beside.exists() else (DEFAULT_NGRAM if args.model is None else None)
    if not args.paths and not args.split:
        log.error("eval melody: give files or folders to evaluate, or --split test")
        return 2
    cols = tuple(c for c in args.collections.split(",") if c.strip())
    try:
        res = evaluate_paths(Path(model), ngram, list(args.paths), args.split, cols)
    except EvalError as exc:
        log.error("%s", exc)
        return 2
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        print(format_table(res))
    if res["tunes"] == 0:
        log.error("eval melody: no tunes could be read (see 'skipped')")
        return 1
    return 0
