"""The n-gram melody model: a proper distribution, key-relative, streaming == batch scoring, files."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest

from livegen.music.encoding import (
    COND_DIM,
    HOLD,
    MAX_BAR_STEPS,
    NOTE_BASE,
    REST,
    START,
    VOCAB,
    Melody,
    pitch_token,
)
from livegen.music.ngram import (
    REL_START,
    REL_VOCAB,
    NGramError,
    NGramModel,
    _discounts,
    bits,
    select_order,
    to_relative,
)


def melody(name: str, tokens, tonic: int = 0, mode: int = 0, bar: int = 16) -> Melody:
    t = np.asarray(tokens, np.uint8)
    return Melody(name, "test", t, (np.arange(len(t)) % bar).astype(np.uint8), tonic, mode, bar)


def random_walk(name: str, rng: np.random.Generator, steps: int = 96) -> Melody:
    """A random-walk tune in a random key, in the middle register (no extreme pitches)."""
    tonic = int(rng.integers(12))
    toks, p = [], 60 + tonic
    while len(toks) < steps:
        if rng.random() < 0.08:
            toks.append(REST)
        else:
            p = int(np.clip(p + rng.choice([-2, -1, 1, 2, 3, -3]), 55, 80))
            toks.append(pitch_token(p))
        toks += [HOLD] * int(rng.choice([0, 1, 1, 3]))
    return melody(name, toks[:steps], tonic)


PATTERN = [pitch_token(p) if p else HOLD for p in (60, 0, 64, 0, 67, 0, 0, 0, 65, 62, 0, 0, 60, 0, 0, 0)]


def pattern_tune(name: str, tonic: int, repeats: int = 6) -> Melody:
    toks = [t + tonic if t >= NOTE_BASE else t for t in PATTERN] * repeats
    return melody(name, toks, tonic)


@pytest.fixture(scope="module")
def corpus() -> list[Melody]:
    rng = np.random.default_rng(1)
    return [random_walk(f"rw{i}", rng) for i in range(60)]


@pytest.fixture(scope="module")
def model(corpus) -> NGramModel:
    return NGramModel.train(corpus, order=4)


def cond_rows(tonics) -> np.ndarray:
    c = np.zeros((len(tonics), COND_DIM), np.float32)
    c[:, 0] = 1.0
    c[np.arange(len(tonics)), MAX_BAR_STEPS + np.asarray(tonics) % 12] = 1.0
    return c


def chained(model: NGramModel, m: Melody) -> np.ndarray:
    state, prev, cond, out = model.start(1), np.array([START]), m.conditioning(), []
    for i, tok in enumerate(m.tokens):
        lp, state = model.step(state, prev, cond[i:i + 1])
        out.append(lp[0, tok])
        prev = np.array([tok])
    return np.array(out)


# ---------------------------------------------------------------------------- a distribution
@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_distributions_sum_to_one_and_are_positive(corpus, order):
    m = NGramModel.train(corpus, order=order)
    rng = np.random.default_rng(order)
    b = 4
    state = m.start(b)
    for _ in range(40):  # arbitrary histories, most never seen in training, in every key
        prev = rng.integers(0, VOCAB, b)
        lp, state = m.step(state, prev, cond_rows(rng.integers(0, 12, b)))
        assert lp.shape == (b, VOCAB) and lp.dtype == np.float64
        assert np.isfinite(lp).all() and (np.exp(lp) > 0).all()
        np.testing.assert_allclose(np.exp(lp).sum(axis=1), 1.0, rtol=0, atol=1e-12)
    # Before mapping to absolute tokens the key-relative distribution is itself normalised.
    ctx = rng.integers(0, REL_START + 1, (200, order - 1))
    rel = m._rel_probs(ctx)
    assert (rel > 0).all()
    np.testing.assert_allclose(rel.sum(axis=1), 1.0, rtol=0, atol=1e-12)


def _reference_probs(melodies, order, min_count, ctxs) -> np.ndarray:
    """Interpolated modified Kneser-Ney written out with dictionaries, to check the vectorised one."""
    h = order - 1
    raw = [Counter() for _ in range(order + 1)]
    for mel in melodies:
        seq = [REL_START] * h + list(to_relative(mel.tokens, mel.tonic))
        for i in range(h, len(seq)):
            for k in range(1, order + 1):
                raw[k][tuple(seq[i - k + 1:i + 1])] += 1
    counts = [None] * (order + 1)
    counts[order] = raw[order]
    for k in range(order - 1, 0, -1):
        left = Counter(g[1:] for g in raw[k + 1])
        counts[k] = {g: (c if k >= 2 and g[0] == REL_START else left[g]) for g, c in raw[k].items()}
    tables = [None] * (order + 1)
    for k in range(1, order + 1):
        d = _discounts(np.array(list(counts[k].values())))
        by_ctx = defaultdict(dict)
        for g, c in counts[k].items():
            by_ctx[g[:-1]][g[-1]] = c
        tables[k] = (d, by_ctx)
    out = np.empty((len(ctxs), REL_VOCAB))
    for r, ctx in enumerate(ctxs):
        p = np.full(REL_VOCAB, 1.0 / REL_VOCAB)
        for k in range(1, order + 1):
            d, by_ctx = tables[k]
            ent = by_ctx.get(tuple(ctx[len(ctx) - (k - 1):]) if k > 1 else ())
            if not ent:
                continue
            total = sum(ent.values())
            mc = min_count if k >= 3 else 1
            kept = {w: c for w, c in ent.items() if c >= mc}
            disc = {w: d[min(c, 3) - 1] for w, c in kept.items()}
            gamma = (total - sum(kept.values()) + sum(disc.values())) / total
            p = gamma * p
            for w, c in kept.items():
                p[w] += (c - disc[w]) / total
        out[r] = p
    return out


@pytest.mark.parametrize("min_count", [1, 2])
def test_matches_a_plain_kneser_ney(corpus, min_count):
    order = 4
    train = corpus[:25]
    m = NGramModel.train(train, order=order, min_count=min_count)
    rng = np.random.default_rng(5)
    seen = []
    for mel in corpus[20:30]:  # contexts from training tunes and from unseen ones
        seq = [REL_START] * (order - 1) + list(to_relative(mel.tokens, mel.tonic))
        seen += [seq[i:i + order - 1] for i in range(0, len(seq) - order + 1, 3)]
    ctxs = np.array(seen + list(rng.integers(0, REL_START + 1, (50, order - 1))), np.int64)
    np.testing.assert_allclose(m._rel_probs(ctxs), _reference_probs(train, order, min_count, ctxs),
                               rtol=1e-12, atol=1e-15)


def test_discounts_are_modified_kneser_ney():
    counts = np.array([1] * 50 + [2] * 20 + [3] * 10 + [4] * 5 + [9] * 3)
    y = 50 / (50 + 2 * 20)
    np.testing.assert_allclose(_discounts(counts), [1 - 2 * y * 20 / 50, 2 - 3 * y * 10 / 20, 3 - 4 * y * 5 / 10])
    d = _discounts(np.array([5, 7, 9]))  # no singletons: a fallback, but still positive
    assert ((d > 0) & (d < [1, 2, 3])).all()


# ---------------------------------------------------------------------------- what it learns
def test_a_repeated_pattern_costs_far_fewer_bits_than_shuffled():
    train = [pattern_tune(f"p{k}", k) for k in range(12)]
    m = NGramModel.train(train, order=5)
    test = pattern_tune("held-out", 4, repeats=5)
    rng = np.random.default_rng(0)
    toks = test.tokens.copy()
    rng.shuffle(toks)
    shuffled = melody("shuffled", toks, 4)
    b_rep, b_shuf = bits(m, [test])["bits_per_note"], bits(m, [shuffled])["bits_per_note"]
    assert b_rep < 0.5, b_rep
    assert b_rep * 5 < b_shuf, (b_rep, b_shuf)


def test_key_relative_transposing_does_not_change_the_log_prob(model, corpus):
    mel = next(m for m in corpus if 2 <= m.tonic <= 9)
    base = model.token_log_probs(mel)
    for k in (-2, -1, 1, 2):  # keep the tonic's pitch class from wrapping B->C (that moves an octave)
        np.testing.assert_allclose(model.token_log_probs(mel.transposed(k)), base, rtol=1e-9, atol=1e-12)
    # Transposing without telling the model the new key does change it: the key is what it uses.
    t = mel.transposed(2)
    wrong = Melody(t.name, t.collection, t.tokens, t.positions, mel.tonic, mel.mode, mel.bar_steps)
    assert model.token_log_probs(wrong).sum() < base.sum() - 5


# ---------------------------------------------------------------------------- streaming
@pytest.mark.parametrize("order", [1, 2, 4, 7])
def test_step_chained_reproduces_token_log_probs_exactly(corpus, order):
    m = NGramModel.train(corpus, order=order)
    for mel in (corpus[0], corpus[-1], random_walk("new", np.random.default_rng(9), 60)):
        np.testing.assert_array_equal(chained(m, mel), m.token_log_probs(mel))


def test_step_is_batched_and_leaves_old_state_alone(model, corpus):
    a, b = corpus[3], corpus[4]
    state, prev = model.start(2), np.array([START, START])
    ca, cb = a.conditioning(), b.conditioning()
    for i in range(30):
        snapshot = state.history.copy()
        cond = np.stack([ca[i], cb[i]])
        lp, new = model.step(state, prev, cond)
        np.testing.assert_array_equal(state.history, snapshot)
        lp_again, _ = model.step(state, prev, cond)  # re-sampling from a kept state is repeatable
        np.testing.assert_array_equal(lp_again, lp)
        assert lp[0, a.tokens[i]] == model.token_log_probs(a)[i]
        assert lp[1, b.tokens[i]] == model.token_log_probs(b)[i]
        state, prev = new, np.array([a.tokens[i], b.tokens[i]])
    with pytest.raises(ValueError):
        model.step(state, np.array([HOLD]), cond)


# ---------------------------------------------------------------------------- scores
def test_bits_totals(model, corpus):
    tunes = corpus[:5]
    r = bits(model, tunes)
    total = -sum(model.token_log_probs(m).sum() for m in tunes) / np.log(2)
    assert r["tunes"] == 5 and r["steps"] == sum(len(m.tokens) for m in tunes)
    assert r["notes"] == sum(m.notes for m in tunes)
    assert r["bits_per_note"] == pytest.approx(total / r["notes"])
    assert r["bits_per_step"] == pytest.approx(total / r["steps"])


def test_select_order(corpus):
    best, per = select_order(corpus[:40], corpus[40:], orders=(2, 3, 4))
    assert best in (2, 3, 4) and sorted(per) == [2, 3, 4]
    assert all(np.isfinite(v) and v > 0 for v in per.values())
    assert per[best] == min(per.values())


# ---------------------------------------------------------------------------- files
def test_save_load_round_trip(model, corpus, tmp_path):
    path = tmp_path / "ngram.npz"
    model.save(path)
    back = NGramModel.load(path)
    assert back.order == model.order
    for mel in corpus[:5]:
        np.testing.assert_array_equal(back.token_log_probs(mel), model.token_log_probs(mel))
    cond = cond_rows([0, 7])
    s1, s2 = model.start(2), back.start(2)
    for prev in ([START, START], [pitch_token(60), REST], [HOLD, pitch_token(67)]):
        l1, s1 = model.step(s1, np.array(prev), cond)
        l2, s2 = back.step(s2, np.array(prev), cond)
        np.testing.assert_array_equal(l1, l2)
    with np.load(path, allow_pickle=False) as z:  # plain arrays only
        assert all(z[k].dtype != object for k in z.files)


def test_bad_files_raise_ngram_error_naming_the_file(model, tmp_path):
    good = tmp_path / "good.npz"
    model.save(good)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[:len(data) // 2])
    text = tmp_path / "notes.txt"
    text.write_text("not a model\n")
    other = tmp_path / "other.npz"
    np.savez(other, weights=np.zeros(3))
    for path in (truncated, text, other, tmp_path / "missing.npz"):
        with pytest.raises(NGramError) as err:
            NGramModel.load(path)
        msg = str(err.value)
        assert str(path) in msg and "\n" not in msg, msg
    assert isinstance(err.value, ValueError)
