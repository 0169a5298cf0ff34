"""A smoothed n-gram melody model on the melody RNN's token encoding.

Two jobs: it is the yardstick the neural melody model is measured against (bits per note on
the same held-out tunes, with the same information: the key), and it is a lightweight live
generator that needs no GPU and no torch.

The model is interpolated Kneser-Ney with modified discounts (Chen & Goodman): three
discounts per order (for counts 1, 2 and 3+) estimated from that order's count-of-counts,
continuation counts below the top order, interpolated all the way down to a uniform
distribution, so every token keeps a nonzero probability.

Key-relative: tokens are counted with note-ons shifted so the tonic is C (pitch - tonic), as
the RNN is told the key through its conditioning. The relative vocabulary (HOLD, REST and
note-ons of pitch - tonic for MIN_PITCH-11..MAX_PITCH) is large enough that no pitch of any
key falls off. A distribution over the 63 absolute tokens gives each token the probability of
its relative token and renormalises over those 63. The context is read in the key of the step
being predicted: after a live key change the notes just played are heard in the new key (their
absolute pitches stay what they were), which keeps the line continuous instead of transposing it.
Transposing a tune (and its key) leaves its score unchanged as long as the tonic's pitch class
does not wrap from B to C (that moves the relative pitches an octave) and up to the renormaliser,
which differs only by the mass the model gives relative pitches a tonic cannot reach.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from livegen.atomic import atomic_write
from livegen.music.encoding import (
    MAX_BAR_STEPS,
    MAX_PITCH,
    MIN_PITCH,
    NOTE_BASE,
    START,
    VOCAB,
    Melody,
)

FORMAT_VERSION = 1
MAX_ORDER = 9  # n-gram keys pack 7 bits per symbol into an int64: 9 symbols = 63 bits
DEFAULT_MIN_COUNT = 2  # SRILM's default cutoffs: n-grams of order >= 3 seen once are pruned
PRUNE_FROM_ORDER = 3

SHIFT = 11  # a note-on's relative token is its absolute token + SHIFT - tonic
REL_VOCAB = NOTE_BASE + (MAX_PITCH - (MIN_PITCH - SHIFT) + 1)  # 74 predicted relative tokens
REL_START = REL_VOCAB  # context-only "before the tune" symbol
ALPHABET = REL_VOCAB + 1  # context symbols
BITS = 7
assert ALPHABET <= 1 << BITS
DENSE_LEVELS = 3  # orders 1..3 are precomputed as full distributions per context (75^2 rows)
CHUNK = 16384  # rows scored at a time (bounds memory: CHUNK x 74 float64)

# ABS_TO_REL[tonic, absolute token] -> relative token
ABS_TO_REL = np.array([[t if t < NOTE_BASE else t + SHIFT - k for t in range(VOCAB)] for k in range(12)],
                      np.int64)


class NGramError(ValueError):
    """A model file that cannot be used: one line naming the file and what is wrong."""


class TokenScorer(Protocol):
    def token_log_probs(self, melody: Melody) -> np.ndarray: ...


def to_relative(tokens: np.ndarray, tonic: np.ndarray | int) -> np.ndarray:
    """Absolute tokens (START allowed) -> relative symbols: note-ons shifted so the tonic is C."""
    a = np.asarray(tokens).astype(np.int64)
    note = (a >= NOTE_BASE) & (a < VOCAB)
    rel = np.where(note, a + SHIFT - np.asarray(tonic, np.int64) % 12, a)
    return np.where(a == START, REL_START, rel)


def _pack_keys(ctx: np.ndarray, upto: int) -> list[np.ndarray]:
    """Context keys of lengths 0..upto from (N, L) symbols (oldest first): newest symbol lowest bits.

    Packing the newest symbol lowest makes a shorter context the low bits of a longer one.
    """
    n = ctx.shape[0]
    keys = [np.zeros(n, np.int64)]
    for j in range(1, upto + 1):
        keys.append(keys[-1] | (ctx[:, -j].astype(np.int64) << (BITS * (j - 1))))
    return keys


def _discounts(counts: np.ndarray) -> np.ndarray:
    """Modified Kneser-Ney discounts D1, D2, D3+ from count-of-counts (Chen & Goodman 1998).

    Falls back to one discount n1/(n1+2 n2) (or 0.5) when the count-of-counts are too thin to
    estimate three, as on tiny corpora. Each is kept in (0, c): a zero discount would give
    unseen tokens zero probability.
    """
    n1, n2, n3, n4 = (int(np.count_nonzero(counts == c)) for c in (1, 2, 3, 4))
    y = n1 / (n1 + 2 * n2) if n1 > 0 and n2 > 0 else 0.5
    if min(n1, n2, n3, n4) > 0:
        d = np.array([1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3])
    else:
        d = np.array([y, y, y])
    lo = 0.05
    return np.clip(d, lo, np.array([1.0, 2.0, 3.0]) - lo)


@dataclass(frozen=True)
class NGramState:
    """Streaming state: the last order-1 absolute tokens of each voice (read-only, never mutated)."""

    history: np.ndarray  # (B, order-1) int16, oldest first; START where the tune has not begun


class _Level:
    """One order's table: contexts (sorted keys) and their kept continuations.

    Stored: context keys, each context's total count (before pruning), how many entries it
    kept, and the kept entries' tokens and counts. Derived (identically after train and load):
    each entry's discounted probability and each context's interpolation weight.
    """

    def __init__(self, ctx: np.ndarray, total: np.ndarray, nkept: np.ndarray, word: np.ndarray,
                 count: np.ndarray, disc: np.ndarray) -> None:
        self.ctx, self.total, self.nkept, self.word, self.count = ctx, total, nkept, word, count
        n = len(ctx)
        self.start = np.zeros(n + 1, np.int64)
        np.cumsum(nkept, out=self.start[1:])
        cid = np.repeat(np.arange(n), nkept.astype(np.int64))
        d = disc[np.minimum(count, 3).astype(np.int64) - 1]
        tot = total.astype(np.float64)
        kept_c = np.bincount(cid, weights=count.astype(np.float64), minlength=n)
        kept_d = np.bincount(cid, weights=d, minlength=n)
        # Mass left to the lower order: the discounts plus everything pruned from this context.
        self.gamma = (tot - kept_c + kept_d) / tot
        self.prob = (count - d) / tot[cid]
        self.widx = word.astype(np.intp)

    def apply(self, dist: np.ndarray, keys: np.ndarray) -> None:
        """dist <- this order's interpolated distribution, where the context was seen (in place)."""
        if len(self.ctx) == 0:
            return
        pos = np.searchsorted(self.ctx, keys)
        pos_c = np.minimum(pos, len(self.ctx) - 1)
        rows = np.nonzero(self.ctx[pos_c] == keys)[0]
        if len(rows) == 0:
            return
        ci = pos_c[rows]
        dist[rows] *= self.gamma[ci][:, None]
        s = self.start[ci]
        lens = self.start[ci + 1] - s
        total = int(lens.sum())
        rrows = np.repeat(rows, lens)
        off = np.repeat(s - (np.cumsum(lens) - lens), lens) + np.arange(total)
        dist[rrows, self.widx[off]] += self.prob[off]  # (row, token) pairs are unique per level


class NGramModel:
    """Interpolated modified Kneser-Ney n-gram over key-relative melody tokens.

    Pruning: n-grams of order >= 3 whose (continuation) count is below ``min_count`` (default
    2, SRILM's default cutoffs) are not stored; their discounted mass goes to the lower order
    through the context's interpolation weight, so distributions still sum to 1. Discounts are
    estimated before pruning. The model in memory after ``train`` is exactly what ``save``
    writes, so scores do not change across a save/load.
    """

    def __init__(self, order: int, discounts: np.ndarray, levels: list[_Level], min_count: int,
                 meta: dict | None = None) -> None:
        self.order = order
        self.discounts = discounts
        self.levels = levels  # levels[k-1] is order k
        self.min_count = min_count
        self.meta = meta or {}
        self._dense_levels = min(order, DENSE_LEVELS)
        self._dense = self._build_dense()

    # ------------------------------------------------------------------ training
    @classmethod
    def train(cls, melodies: Sequence[Melody], order: int = 5, *,
              min_count: int = DEFAULT_MIN_COUNT) -> NGramModel:
        """Count the tunes (key-relative, each padded with order-1 START) and smooth."""
        if not 1 <= order <= MAX_ORDER:
            raise ValueError(f"n-gram order {order} outside 1..{MAX_ORDER}")
        melodies = [m for m in melodies if len(m.tokens)]
        if not melodies:
            raise ValueError("no tokens to train the n-gram model on")
        h = order - 1
        lens = np.array([len(m.tokens) for m in melodies], np.int64)
        toks = np.concatenate([m.tokens for m in melodies]).astype(np.int64)
        tonic = np.repeat(np.array([m.tonic for m in melodies], np.int64), lens)
        rel = to_relative(toks, tonic)
        tune = np.repeat(np.arange(len(melodies)), lens)
        pos = np.arange(len(toks)) + h * (tune + 1)  # where each token sits in the padded stream
        seq = np.full(len(toks) + h * len(melodies), REL_START, np.int64)
        seq[pos] = rel
        keys = [np.zeros(len(toks), np.int64)]
        for j in range(1, h + 1):
            keys.append(keys[-1] | (seq[pos - j] << (BITS * (j - 1))))
        # Raw counts per order, from the top order down; continuation counts below the top.
        grams: list[tuple[np.ndarray, np.ndarray]] = [None] * order  # type: ignore[list-item]
        for k in range(order, 0, -1):
            u, c = np.unique((keys[k - 1] << BITS) | rel, return_counts=True)
            if k < order:
                up = grams[k][0]  # the (k+1)-grams' distinct keys
                cu, cc = np.unique(up & ((1 << (BITS * k)) - 1), return_counts=True)
                assert np.array_equal(cu, u)  # every k-gram below the top has a left neighbour
                if k >= 2:
                    # A k-gram starting with START has only START to its left: keep its raw count.
                    first_start = ((u >> (BITS * (k - 1))) & ((1 << BITS) - 1)) == REL_START
                    c = np.where(first_start, c, cc)
                else:
                    c = cc
            grams[k - 1] = (u, c)
        discounts = np.zeros((order, 3))
        levels = []
        for k in range(1, order + 1):
            u, c = grams[k - 1]
            discounts[k - 1] = _discounts(c)
            mc = min_count if k >= PRUNE_FROM_ORDER else 1
            levels.append(_build_level(u, c, discounts[k - 1], mc))
        meta = {"tunes": len(melodies), "tokens": len(toks)}
        return cls(order, discounts, levels, min_count, meta)

    # ------------------------------------------------------------------ scoring
    def _build_dense(self) -> np.ndarray:
        """Full distributions of the low orders for every context: most rows of a query start here."""
        L = self._dense_levels - 1
        n = ALPHABET ** L
        idx = np.arange(n)
        ctx = np.stack([(idx // ALPHABET ** (L - 1 - i)) % ALPHABET for i in range(L)], axis=1) \
            if L else np.zeros((n, 0), np.int64)
        keys = _pack_keys(ctx, L)
        dist = np.full((n, REL_VOCAB), 1.0 / REL_VOCAB)
        for k in range(1, self._dense_levels + 1):
            self.levels[k - 1].apply(dist, keys[k - 1])
        return dist

    def _rel_probs(self, ctx: np.ndarray) -> np.ndarray:
        """(N, order-1) relative context symbols, oldest first -> (N, 74) probabilities."""
        L = self._dense_levels - 1
        di = np.zeros(len(ctx), np.int64)
        for i in range(L):
            di = di * ALPHABET + ctx[:, ctx.shape[1] - L + i]
        dist = self._dense[di]
        if self.order > self._dense_levels:
            keys = _pack_keys(ctx, self.order - 1)
            for k in range(self._dense_levels + 1, self.order + 1):
                self.levels[k - 1].apply(dist, keys[k - 1])
        return dist

    def _abs_log_probs(self, ctx: np.ndarray, tonic: np.ndarray) -> np.ndarray:
        """(N, order-1) relative contexts and (N,) tonics -> (N, 63) renormalised log probabilities."""
        rel = self._rel_probs(ctx)
        p = np.take_along_axis(rel, ABS_TO_REL[tonic], axis=1)
        z = p.sum(axis=1, keepdims=True)
        return np.log(p) - np.log(z)

    def token_log_probs(self, melody: Melody) -> np.ndarray:
        """Natural-log probability of each token of the tune, from the same distributions step() gives."""
        toks = np.asarray(melody.tokens).astype(np.int64)
        n = len(toks)
        out = np.empty(n)
        if n == 0:
            return out
        h = self.order - 1
        padded = np.concatenate([np.full(h, REL_START, np.int64), to_relative(toks, melody.tonic)])
        ctx = np.lib.stride_tricks.sliding_window_view(padded, h)[:n] if h else np.zeros((n, 0), np.int64)
        tonic = np.full(n, melody.tonic % 12, np.int64)
        for a in range(0, n, CHUNK):
            b = min(n, a + CHUNK)
            lp = self._abs_log_probs(np.ascontiguousarray(ctx[a:b]), tonic[a:b])
            out[a:b] = lp[np.arange(b - a), toks[a:b]]
        return out

    # ------------------------------------------------------------------ streaming
    def start(self, batch: int) -> NGramState:
        """State for ``batch`` independent voices that have not played anything yet."""
        hist = np.full((batch, self.order - 1), START, np.int16)
        hist.setflags(write=False)
        return NGramState(hist)

    def step(self, state: NGramState, prev: np.ndarray, cond: np.ndarray) -> tuple[np.ndarray, NGramState]:
        """Log-distribution (B, 63) of the next token given the token just emitted; a new state.

        ``prev`` is START on the first step; the tonic is read from ``cond`` (the conditioning
        of the step being predicted; a row with no tonic set reads as C), so a key change takes
        effect at once. The old state is left as it was (its array is read-only), so a caller
        can sample again from it.
        """
        prev = np.asarray(prev).astype(np.int64).reshape(-1)
        cond = np.asarray(cond)
        b = state.history.shape[0]
        if prev.shape[0] != b or cond.shape[0] != b:
            raise ValueError(f"step: state has {b} voices, prev {prev.shape[0]}, cond {cond.shape[0]}")
        if ((prev < 0) | (prev > START)).any():
            raise ValueError(f"step: token outside 0..{START}")
        hist = np.concatenate([state.history[:, 1:], prev[:, None].astype(np.int16)], axis=1) \
            if self.order > 1 else state.history.copy()
        hist.setflags(write=False)
        tonic = np.argmax(cond[:, MAX_BAR_STEPS:MAX_BAR_STEPS + 12], axis=1).astype(np.int64)
        lp = self._abs_log_probs(to_relative(hist, tonic[:, None]), tonic)
        return lp, NGramState(hist)

    # ------------------------------------------------------------------ files
    def save(self, path: Path) -> None:
        """Write the model as a compressed npz of plain arrays (no pickles), atomically."""
        arrays: dict[str, np.ndarray] = {
            "meta": np.array(json.dumps({"format": "livegen-ngram", "version": FORMAT_VERSION,
                                         "order": self.order, "min_count": self.min_count,
                                         "rel_vocab": REL_VOCAB, "shift": SHIFT, **self.meta})),
            "discounts": self.discounts.astype(np.float64),
        }
        for k, lv in enumerate(self.levels, 1):
            arrays[f"ctx{k}"] = np.diff(lv.ctx, prepend=np.int64(0))  # deltas compress far better
            arrays[f"total{k}"] = lv.total
            arrays[f"nkept{k}"] = lv.nkept
            arrays[f"word{k}"] = lv.word
            arrays[f"count{k}"] = lv.count
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        with atomic_write(Path(path)) as f:
            f.write(buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> NGramModel:
        """Read a model written by save(); anything else raises NGramError naming the file."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls._from_arrays(z, path)
        except NGramError:
            raise
        except FileNotFoundError:
            raise NGramError(f"{path}: no such n-gram model file") from None
        except Exception as exc:  # noqa: BLE001 - zip, zlib, npy header errors: all "not readable"
            msg = " ".join(str(exc).split()) or type(exc).__name__
            raise NGramError(f"{path}: not a readable n-gram model file ({type(exc).__name__}: {msg})") from None

    @classmethod
    def _from_arrays(cls, z, path: Path) -> NGramModel:
        def bad(what: str) -> NGramError:
            return NGramError(f"{path}: {what}")

        def get(name: str, kinds: str) -> np.ndarray:
            if name not in z.files:
                raise bad(f"missing array {name!r} (not an n-gram model file)")
            a = z[name]
            if a.dtype.kind not in kinds:
                raise bad(f"array {name!r} has dtype {a.dtype}")
            return a

        try:
            meta = json.loads(str(get("meta", "U")))
        except json.JSONDecodeError:
            raise bad("meta is not JSON") from None
        if not isinstance(meta, dict) or meta.get("format") != "livegen-ngram":
            raise bad("not a livegen n-gram model file")
        if meta.get("version") != FORMAT_VERSION:
            raise bad(f"n-gram model format version {meta.get('version')} (expected {FORMAT_VERSION})")
        if meta.get("rel_vocab") != REL_VOCAB or meta.get("shift") != SHIFT:
            raise bad("made for a different token encoding")
        order = meta.get("order")
        if not isinstance(order, int) or not 1 <= order <= MAX_ORDER:
            raise bad(f"bad order {order!r}")
        disc = get("discounts", "f").astype(np.float64)
        if disc.shape != (order, 3) or not ((disc > 0) & (disc < np.array([1.0, 2.0, 3.0]))).all():
            raise bad("bad discounts")
        levels = []
        for k in range(1, order + 1):
            ctx = np.cumsum(get(f"ctx{k}", "i").astype(np.int64))
            total = get(f"total{k}", "u")
            nkept = get(f"nkept{k}", "u")
            word = get(f"word{k}", "u")
            count = get(f"count{k}", "u")
            n = len(ctx)
            if not (len(total) == len(nkept) == n and len(word) == len(count) == int(nkept.sum(dtype=np.int64))):
                raise bad(f"order {k}: array lengths disagree")
            if n and ((np.diff(ctx) <= 0).any() or ctx[0] < 0 or ctx[-1] >= 1 << (BITS * (k - 1))):
                raise bad(f"order {k}: context keys out of order or range")
            if (nkept == 0).any() or (word >= REL_VOCAB).any() or (count == 0).any():
                raise bad(f"order {k}: bad entries")
            cid = np.repeat(np.arange(n), nkept.astype(np.int64))
            if (np.bincount(cid, weights=count.astype(np.float64), minlength=n) > total).any():
                raise bad(f"order {k}: counts exceed context totals")
            levels.append(_Level(ctx, total, nkept, word, count, disc[k - 1]))
        if len(levels[0].ctx) != 1:
            raise bad("no unigram table")
        min_count = int(meta.get("min_count", 1))
        extra = {k: v for k, v in meta.items() if k in ("tunes", "tokens")}
        return cls(order, disc, levels, min_count, extra)


def _build_level(u: np.ndarray, c: np.ndarray, disc: np.ndarray, min_count: int) -> _Level:
    """Sorted n-gram keys and counts -> a level, pruning entries below min_count (and empty contexts)."""
    ctx_all = u >> BITS
    new = np.ones(len(u), bool)
    new[1:] = ctx_all[1:] != ctx_all[:-1]
    first = np.nonzero(new)[0]
    cid = np.cumsum(new) - 1
    total = np.add.reduceat(c.astype(np.int64), first)
    keep = c >= min_count
    nkept = np.bincount(cid[keep], minlength=len(first))
    kc = nkept > 0  # a context with nothing kept interpolates with weight 1: the same as absent
    return _Level(ctx_all[first][kc], total[kc].astype(np.uint32), nkept[kc].astype(np.uint8),
                  (u[keep] & ((1 << BITS) - 1)).astype(np.uint8), c[keep].astype(np.uint32), disc)


# ---------------------------------------------------------------------------- evaluation
def bits(model: TokenScorer, melodies: Sequence[Melody]) -> dict:
    """Total -log2 p of every token of the tunes, per note-on and per step (the RNN's yardstick)."""
    total, notes, steps = 0.0, 0, 0
    for m in melodies:
        lp = model.token_log_probs(m)
        total -= float(np.sum(lp)) / math.log(2)
        notes += m.notes
        steps += len(m.tokens)
    return {"bits_per_note": total / notes if notes else float("nan"),
            "bits_per_step": total / steps if steps else float("nan"),
            "tunes": len(melodies), "notes": notes, "steps": steps}


def select_order(train: Sequence[Melody], valid: Sequence[Melody],
                 orders: Sequence[int] = range(2, 9), **train_kw) -> tuple[int, dict[int, float]]:
    """The order with the lowest validation bits per note, and bits per note for each order tried."""
    per: dict[int, float] = {}
    for n in orders:
        per[int(n)] = bits(NGramModel.train(train, n, **train_kw), valid)["bits_per_note"]
    if not per:
        raise ValueError("select_order: no orders to try")
    best = min(per, key=lambda n: (per[n], n))
    return best, per


__all__ = ["REL_VOCAB", "NGramError", "NGramModel", "NGramState", "bits", "select_order", "to_relative"]
