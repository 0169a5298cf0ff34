"""The melody RNN: data, training (loss goes down, resume, torchrun), files, eval CLI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from livegen.music import corpus
from livegen.music.encoding import (
    HOLD,
    NOTE_BASE,
    REST,
    START,
    Melody,
    condition,
    condition_step,
    decode_tokens,
    encode_events,
)
from livegen.music.keyfinding import estimate_key
from livegen.music.melody_rnn import (
    FORMAT_VERSION,
    MelodyModelError,
    MelodyRNN,
    MelodyRNNConfig,
    MelodyStepper,
    load_model,
    save_model,
    token_log_probs,
)
from livegen.music.train_melody import TrainConfig, train
from melody_files import tune_notes, write_corpus, write_midi
from livegen.music.scales import Key

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(collections=(), epochs=3, batch=8, chunk=64, hidden=32, layers=1, embed=16, threads=1, patience=10)


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("tunes") / "tunes", 60)


@pytest.fixture(scope="module")
def tiny_model(tiny_corpus, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("model")
    summary = train(TrainConfig(out=out, data=(tiny_corpus,), **TINY), progress=False)
    return out, summary


# ------------------------------------------------------------------------- encoding and data
def test_encoding_round_trip_keeps_notes_and_rests():
    events = [(0, 4, 60), (4, 2, 62), (8, 4, 64), (12, 1, 64)]  # a rest at 6..8, a repeated pitch
    tokens = encode_events(events, 16)
    assert tokens[6] == REST and tokens[13] == REST and tokens[5] == HOLD
    assert decode_tokens(tokens) == [(0, 4, 60), (4, 2, 62), (8, 4, 64), (12, 1, 64)]


def test_midi_files_load_with_key_metre_and_pickup(tmp_path):
    key = Key.parse("A", "minor")
    notes = [(s + 12, d, p) for s, d, p in tune_notes(__import__("random").Random(3), key, 3)]
    write_midi(tmp_path / "a.mid", notes, key, beats_per_bar=3)
    (tmp_path / "junk.mid").write_bytes(b"MThd\x00\x00garbage")
    (tmp_path / "notes.txt").write_text("not music")
    ms, rep = corpus.load_paths([tmp_path])
    assert [m.name for m in ms] == [f"{tmp_path.name}/a.mid"]
    m = ms[0]
    assert (m.tonic, m.mode, m.bar_steps) == (9, 1, 12)
    assert m.positions[0] == 0 and m.tokens[0] >= NOTE_BASE  # leading silence trimmed; starts on a downbeat
    assert rep.skipped == {"unreadable MIDI file (EOFError)": 1, "not a MIDI, ABC or MusicXML file (.txt)": 1}


def test_live_conditioning_equals_training_conditioning():
    """The improviser builds each step's conditioning from its history; training builds all
    rows at once. They must agree, or the live model reads inputs it never trained on."""
    rng = np.random.default_rng(0)
    for trial in range(30):
        n, bar = int(rng.integers(1, 100)), int(rng.choice([8, 12, 16]))
        toks = rng.choice([HOLD, HOLD, REST, 30, 35, 40, 5], size=n).astype(np.uint8)
        pos = (np.arange(n) + 3) % bar
        rows = condition(toks, pos, 5, 1, bar)
        for t in range(n):
            np.testing.assert_array_equal(condition_step([int(x) for x in toks[:t]], int(pos[t]), 5, 1, bar), rows[t])
    # Lookback: a row sees the token exactly one and two bars back, as a degree of the key.
    toks = np.zeros(40, np.uint8)
    toks[3] = 2 + 62 - 36  # D, degree 2 in C
    rows = condition(toks, np.arange(40) % 16, 0, 0, 16)
    o = 32 + 12 + 2 + 5 + 13
    assert rows[19, o + 2] == 1 and rows[35, o + 15 + 2] == 1 and rows[20, o + 12] == 1


def test_split_is_by_tune_name_and_deterministic():
    names = [f"c/tune{i}" for i in range(2000)]
    splits = [corpus.split_of(n) for n in names]
    assert splits == [corpus.split_of(n) for n in names]
    share = {s: splits.count(s) / len(splits) for s in corpus.SPLITS}
    assert 0.76 < share["train"] < 0.84 and 0.07 < share["valid"] < 0.13 and 0.07 < share["test"] < 0.13


def test_transposition_moves_notes_and_key_and_respects_range():
    m = Melody("t", "c", encode_events([(0, 4, 60), (4, 4, 67)], 8), np.arange(8, dtype=np.uint8), 0, 0, 16)
    t = m.transposed(5)
    assert [p for _, _, p in decode_tokens(t.tokens)] == [65, 72] and t.tonic == 5
    down, up = m.transposable()
    with pytest.raises(ValueError):
        m.transposed(up + 1)


def test_krumhansl_finds_keys():
    c_major = [60, 62, 64, 65, 67, 69, 71, 72, 67, 64, 60]
    assert (estimate_key(c_major).tonic, estimate_key(c_major).mode) == (0, "major")
    a_minor = [69, 71, 72, 74, 76, 77, 80, 81, 76, 72, 69, 69]
    e = estimate_key(a_minor)
    assert (e.tonic, e.mode) == (9, "minor")
    assert estimate_key([]) is None


# ------------------------------------------------------------------------- training
def test_tiny_model_trains_and_writes_everything(tiny_model):
    out, summary = tiny_model
    hist = json.loads((out / "history.json").read_text())
    assert hist[-1]["train_bits_per_step"] < hist[0]["train_bits_per_step"] * 0.8  # the loss goes down
    assert hist[-1]["valid_bits_per_step"] < hist[0]["valid_bits_per_step"]
    for name in ("melody.pt", "checkpoint.pt", "loss.png", "manifest.json", "ngram.npz", "MODEL_CARD.md"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    man = json.loads((out / "manifest.json").read_text())
    assert {t["split"] for t in man["tunes"]} == {"train", "valid", "test"}
    card = (out / "MODEL_CARD.md").read_text()
    assert "bits/note" in card and "n-gram" in card and "Encoding" in card
    model, meta = load_model(out / "melody.pt")
    assert meta["test"]["all"]["tunes"] == summary["split"]["test"]


def test_resume_continues_exactly_where_it_stopped(tiny_corpus, tmp_path):
    cfg = dict(TINY, epochs=2)
    straight = tmp_path / "straight"
    train(TrainConfig(out=straight, data=(tiny_corpus,), **cfg), progress=False)
    split = tmp_path / "split"
    train(TrainConfig(out=split, data=(tiny_corpus,), **dict(cfg, epochs=1)), progress=False)
    train(TrainConfig(out=split, data=(tiny_corpus,), resume=True, **cfg), progress=False)
    a = torch.load(straight / "checkpoint.pt", weights_only=True)
    b = torch.load(split / "checkpoint.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 1
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert [h["train_bits_per_step"] for h in a["history"]] == [h["train_bits_per_step"] for h in b["history"]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_gloo(tiny_corpus, tmp_path):
    """The same training script under torchrun: DistributedDataParallel over 2 CPU processes."""
    out = tmp_path / "ddp"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", "-m", "livegen", "train", "melody", "--collections", "",
           "--data", str(tiny_corpus), "--out", str(out), "--epochs", "2", "--batch", "8", "--chunk", "64",
           "--hidden", "32", "--layers", "1", "--embed", "16", "--threads", "1"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    hist = json.loads((out / "history.json").read_text())
    assert len(hist) == 2 and hist[1]["train_bits_per_step"] < hist[0]["train_bits_per_step"]
    load_model(out / "melody.pt")  # rank 0 wrote a loadable model
    assert "ratio" in r.stdout  # and the test-split summary line


# ------------------------------------------------------------------------- the streaming API
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_stepper_matches_the_full_sequence_model(backend):
    torch.manual_seed(1)
    model = MelodyRNN(MelodyRNNConfig(hidden=48, layers=2, embed=16)).eval()
    m = Melody("t", "c", encode_events([(0, 4, 60), (4, 2, 62), (8, 4, 64), (20, 4, 67), (36, 8, 65)], 48),
               (np.arange(48) % 16).astype(np.uint8), 7, 1, 16)
    want = token_log_probs(model, m.tokens, m.inputs(), m.conditioning())
    st = MelodyStepper(model, "cpu", backend=backend)
    s = st.start(1)
    prev = np.array([START])
    got = []
    cond = m.conditioning()
    for i, tok in enumerate(m.tokens):
        logp, s2 = st.step(s, prev, cond[i:i + 1])
        got.append(logp[0, tok])
        assert abs(np.logaddexp.reduce(logp[0])) < 1e-5
        s, prev = s2, np.array([tok])
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_model_file_problems_are_one_clear_line(tmp_path, tiny_model):
    out, _ = tiny_model
    with pytest.raises(MelodyModelError, match="not found") as e:
        load_model(tmp_path / "nope.pt")
    assert str(tmp_path / "nope.pt") in str(e.value)
    data = (out / "melody.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(MelodyModelError, match="truncated or corrupt") as e:
        load_model(tmp_path / "cut.pt")
    assert "cut.pt" in str(e.value) and "\n" not in str(e.value)
    torch.save({"format": "livegen-melody-rnn", "version": FORMAT_VERSION, "config": {"hidden": 32, "layers": 1, "embed": 16},
                "state_dict": {"embed.weight": torch.zeros(3, 3)}}, tmp_path / "wrong.pt")
    with pytest.raises(MelodyModelError, match="do not match") as e:
        load_model(tmp_path / "wrong.pt")
    assert "wrong.pt" in str(e.value) and "\n" not in str(e.value)
    torch.save({"format": "livegen-melody-rnn", "version": 0}, tmp_path / "old.pt")
    with pytest.raises(MelodyModelError, match="format version 0") as e:
        load_model(tmp_path / "old.pt")
    assert "old.pt" in str(e.value)
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(MelodyModelError, match="not a livegen melody RNN"):
        load_model(tmp_path / "other.pt")


def test_saved_weights_are_fp16_and_load_with_weights_only(tmp_path):
    model = MelodyRNN(MelodyRNNConfig(hidden=32, layers=1, embed=16))
    save_model(tmp_path / "m.pt", model, {"note": "x"})
    blob = torch.load(tmp_path / "m.pt", weights_only=True)
    assert all(v.dtype == torch.float16 for v in blob["state_dict"].values())
    loaded, card = load_model(tmp_path / "m.pt")
    assert card == {"note": "x"}
    for k, v in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v, atol=2e-3, rtol=2e-3)


# ------------------------------------------------------------------------- eval CLI
def test_eval_cli_reports_bits_counts_and_skips(tiny_model, tmp_path):
    out, _ = tiny_model
    folder = write_corpus(tmp_path / "heldout", 6, seed=99)
    (folder / "broken.mid").write_bytes(b"not midi at all")
    (folder / "readme.txt").write_text("hello")
    r = subprocess.run([sys.executable, "-m", "livegen", "eval", "melody", "--model", str(out / "melody.pt"),
                        str(folder), "--json"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    g = res["groups"]["all"]
    assert g["tunes"] == 6 and g["notes"] > 100
    assert 0 < g["rnn_bits_per_note"] < 20 and 0 < g["ngram_bits_per_note"] < 20
    assert g["rnn_bits_per_step"] < g["rnn_bits_per_note"]
    assert sum(res["skipped"].values()) == 2
    assert any("not a MIDI" in k for k in res["skipped"]) and any("unreadable" in k for k in res["skipped"])
    table = subprocess.run([sys.executable, "-m", "livegen", "eval", "melody", "--model", str(out / "melody.pt"),
                            str(folder)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert table.returncode == 0 and "n-gram b/note" in table.stdout and "skipped:" in table.stdout


def test_eval_cli_bad_model_is_one_line(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"\x00" * 100)
    r = subprocess.run([sys.executable, "-m", "livegen", "eval", "melody", "--model", str(tmp_path / "bad.pt"),
                        str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "bad.pt" in lines[0], r.stderr


# ------------------------------------------------------------------------- the shipped model
def test_shipped_model_loads_small_and_plays_the_default_patch():
    from livegen.music.generator import GeneratorContext, create_generator
    from livegen.music.improviser import DEFAULT_NGRAM, DEFAULT_RNN, MODELS_DIR
    from livegen.patch.loader import load_patch

    assert DEFAULT_RNN.stat().st_size < 4_000_000 and DEFAULT_NGRAM.stat().st_size < 4_000_000
    model, card = load_model(DEFAULT_RNN)  # weights_only=True inside
    assert card["test"]["all"]["ratio"] <= 0.85  # the figure the model card reports
    assert "bits/note" in (MODELS_DIR / "MODEL_CARD.md").read_text()
    patch = load_patch(ROOT / "patches" / "default.toml")
    g = patch.generator("rnn")
    gen = create_generator(g.kind, g.name, seed=g.seed, **dict(g.options))
    assert gen.error is None
    params = {s.name: s.default for s in gen.param_specs()}
    params.update(g.params)
    rng = __import__("random").Random(0)
    notes = []
    for w in range(64):
        notes += gen.generate(GeneratorContext(w / 4, w / 4 + 0.25, patch.key.key, 4, 112, params, (), rng, ()))
    assert len(notes) >= 8
    assert all(patch.key.key.contains(n.pitch) and params["low"] <= n.pitch <= params["high"] for n in notes)


ABC_TUNES = """X:1
T:Test reel
M:4/4
L:1/8
K:Ador
|:EAAB c2BA|G2BG DGBG|EAAB c2Bc|dBAG E2D2:|

X:2
T:Test air
M:3/4
L:1/4
K:G
D|G2A|B2c|d2B|G3|
"""


def test_abc_and_musicxml_files_load(tmp_path):
    pytest.importorskip("music21", reason="music21 (the train extra) reads ABC and MusicXML")
    from music21 import converter

    (tmp_path / "tunes.abc").write_text(ABC_TUNES)
    ms, rep = corpus.load_paths([tmp_path / "tunes.abc"], workers=1)
    assert [m.name for m in ms] == ["tunes/tunes.abc#0", "tunes/tunes.abc#1"]
    reel, air = ms
    assert (reel.tonic, reel.mode, reel.bar_steps) == (9, 1, 16)  # A dorian -> A, minor third
    assert air.bar_steps == 12 and air.positions[0] == 8  # a one-beat pickup into 3/4
    assert (air.tonic, air.mode) == (7, 0)
    assert [p for _, _, p in decode_tokens(reel.tokens)][:4] == [64, 69, 69, 71]
    score = converter.parse(str(tmp_path / "tunes.abc"))
    score.scores[1].write("musicxml", fp=str(tmp_path / "air.musicxml"))
    ms2, _ = corpus.load_paths([tmp_path / "air.musicxml"], workers=1)
    assert len(ms2) == 1 and np.array_equal(ms2[0].tokens, air.tokens)
