"""The latent source: a latent model's pictures walked by the music (livegen.visuals.latent_source).

Small randomly initialised models are made here with ``save_latent_model``: the walk, the
threading and the wiring do not depend on trained weights.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from livegen.events import Beat, NoteOn
from livegen.patch.loader import PatchError, parse_patch
from livegen.patch.schema import VisualsConfig
from livegen.visuals import latent_source as ls
from livegen.visuals.latent_models import LatentConfig, build_model, save_latent_model
from livegen.visuals.latent_source import (LatentSource, LatentSourceError, generate_anchors, load_anchors,
                                           pitch_directions, save_anchors, slerp)
from livegen.visuals.pipeline import build_pipeline
from livegen.visuals.sources import SourceError, SourceSwitch, create_source

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_STYLE = ROOT / "livegen" / "visuals" / "models" / "style.pt"
W, H = 64, 48
STILL = {"latent.chaos": 0.0, "latent.pulse": 0.0, "latent.bars": 0.0, "latent.glide": 0.5, "latent.step": 0.3,
         "latent.morph": 0.0}


def _model(kind: str = "vae", dim: int = 16, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(LatentConfig(kind=kind, size=64, latent_dim=dim, width=8))


@pytest.fixture(scope="module")
def vae_file(tmp_path_factory) -> Path:
    return save_latent_model(_model(), tmp_path_factory.mktemp("latent") / "vae.pt")


@pytest.fixture(scope="module")
def gan_file(tmp_path_factory) -> Path:
    return save_latent_model(_model("gan", dim=20), tmp_path_factory.mktemp("latent") / "gan.pt")


def _source(model, **kw) -> LatentSource:
    kw.setdefault("device", "cpu")
    return LatentSource(W, H, model=model, **kw)


def _show(seconds: float = 6.0, bpm: float = 120.0) -> list:
    """Beats, and notes on every 8th with changing pitches and velocities."""
    events: list = []
    spb = 60.0 / bpm
    for b in range(int(seconds / spb)):
        events.append(Beat(b * spb, b, b // 4, b % 4, bpm))
        for k in range(2):
            i = 2 * b + k
            events.append(NoteOn(b * spb + k * spb / 2, 48 + (i * 7) % 24, 40 + (i * 37) % 88))
    return sorted(events, key=lambda e: e.time)


def _play(src: LatentSource, events, params, fps: float = 15.0, seconds: float = 6.0, frames: bool = True):
    """Feed events as the pipeline does (each before the frame it is due at); z path and frames."""
    zs, out = [], []
    pending = list(events)
    for i in range(int(seconds * fps)):
        t = i / fps
        while pending and pending[0].time < t + 1.0 / fps:  # delivered a little early, as the dispatcher may
            src.on_event(pending.pop(0))
        if frames:
            out.append(src.render(t, params))
        else:
            src.advance(t, params)
        zs.append(src.z)
    return np.array(zs), out


# -- geometry --------------------------------------------------------------------------------
def test_slerp_keeps_the_length_turns_evenly_and_hits_both_ends_exactly():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(32), rng.standard_normal(32)
    b *= np.linalg.norm(a) / np.linalg.norm(b)
    assert np.array_equal(slerp(a, b, 0.0), a) and np.array_equal(slerp(a, b, 1.0), b)
    angle = lambda x, y: math.acos(np.clip(x @ y / np.linalg.norm(x) / np.linalg.norm(y), -1, 1))  # noqa: E731
    full = angle(a, b)
    for t in (0.1, 0.25, 0.5, 0.9):
        m = slerp(a, b, t)
        assert np.linalg.norm(m) == pytest.approx(np.linalg.norm(a), rel=1e-12)
        assert angle(a, m) == pytest.approx(t * full, abs=1e-9)
        assert angle(m, b) == pytest.approx((1 - t) * full, abs=1e-9)
    # not a lerp: the midpoint of a lerp is shorter
    assert np.linalg.norm((a + b) / 2) < 0.95 * np.linalg.norm(slerp(a, b, 0.5))
    # lengths go linearly
    assert np.linalg.norm(slerp(a, 3 * b, 0.5)) == pytest.approx(2 * np.linalg.norm(a), rel=1e-12)
    # nearly parallel and equal: no NaN, the length kept, on the short arc
    near = a + 1e-9 * rng.standard_normal(32)
    for x in (a, near):
        m = slerp(a, x, 0.3)
        assert np.all(np.isfinite(m)) and np.allclose(m, a, atol=1e-7)
    # opposite: any great circle, but the length kept and half-way perpendicular
    m = slerp(a, -a, 0.5)
    assert np.all(np.isfinite(m))
    assert np.linalg.norm(m) == pytest.approx(np.linalg.norm(a), rel=1e-12)
    assert abs(m @ a) < 1e-9 * np.linalg.norm(a) ** 2


def test_directions_and_anchors_come_from_the_seed():
    d = pitch_directions(16, seed=5)
    assert d.shape == (13, 16)
    assert np.allclose(d @ d.T, np.eye(13), atol=1e-12)  # orthonormal: every pitch class its own way
    assert np.array_equal(d, pitch_directions(16, seed=5)) and not np.allclose(d, pitch_directions(16, seed=6))
    small = pitch_directions(4, seed=5)
    assert small.shape == (13, 4) and np.allclose(np.linalg.norm(small, axis=1), 1.0)
    a = generate_anchors(16, seed=5)
    assert a.shape == (8, 16) and np.allclose(np.linalg.norm(a, axis=1), 4.0)  # sqrt(latent_dim)
    assert np.array_equal(a, generate_anchors(16, seed=5)) and not np.allclose(a, generate_anchors(16, seed=6))


# -- the walk --------------------------------------------------------------------------------
def test_the_walk_and_its_frames_repeat_for_the_same_seed_and_events():
    model = _model()
    params = dict(STILL, **{"latent.chaos": 0.4, "latent.pulse": 0.7, "latent.bars": 1})
    events = _show()
    za, fa = _play(_source(model, seed=7, latent_seed=2), events, params)
    zb, fb = _play(_source(model, seed=7, latent_seed=2), events, params)
    assert np.array_equal(za, zb)
    assert all(np.array_equal(x, y) for x, y in zip(fa, fb))
    assert len({x.tobytes() for x in fa}) > len(fa) // 2  # the picture moves
    zc, _ = _play(_source(model, seed=8, latent_seed=2), events, params, frames=False)
    assert not np.allclose(za, zc)  # another show seed: another wander
    zd, _ = _play(_source(model, seed=7, latent_seed=3), events, params, frames=False)
    assert not np.allclose(za, zd)  # another landscape
    ze, _ = _play(_source(model, seed=7, latent_seed=2), events[1:], params, frames=False)
    assert not np.allclose(za, ze)  # the events matter


def test_a_note_pushes_along_its_pitch_class_further_with_velocity():
    model = _model()
    moves = {}
    for pitch, vel in ((62, 40), (62, 120), (74, 120), (63, 120)):
        src = _source(model, latent_seed=1)
        z0 = src.advance(1.0, STILL)
        src.on_event(NoteOn(1.0, pitch, vel))
        z1 = src.advance(1.0 + STILL["latent.glide"], STILL)  # the spring's furthest point
        moves[pitch, vel] = d = z1 - z0
        along = src.directions[pitch % 12]
        assert d @ along / np.linalg.norm(d) > 0.999
        assert d @ along == pytest.approx(STILL["latent.step"] * src.radius * vel / 127, rel=1e-9)
        for t in np.arange(1.6, 1.0 + 12 * STILL["latent.glide"], 0.5):
            src.advance(t, STILL)
        assert np.linalg.norm(src.z - z0) < 0.01 * np.linalg.norm(d)  # and the spring brings it back
    assert np.linalg.norm(moves[62, 120]) == pytest.approx(3 * np.linalg.norm(moves[62, 40]), rel=1e-9)
    assert np.allclose(moves[74, 120], moves[62, 120])  # an octave up: the same pitch class
    assert abs(moves[63, 120] @ moves[62, 120]) < 1e-9  # the next one: another direction
    # a note not yet due does nothing; step 0 does nothing; velocity 0 is a note-off
    src = _source(model, latent_seed=1)
    z0 = src.advance(1.0, STILL)
    src.on_event(NoteOn(5.0, 60, 100))
    src.on_event(NoteOn(1.5, 61, 0))
    assert np.array_equal(src.advance(2.0, STILL), z0)
    assert not np.array_equal(src.advance(5.5, STILL), z0)
    src = _source(model, latent_seed=1)
    z0 = src.advance(1.0, dict(STILL, **{"latent.step": 0.0}))
    src.on_event(NoteOn(1.2, 60, 127))
    assert np.array_equal(src.advance(2.0, dict(STILL, **{"latent.step": 0.0})), z0)


def test_each_bar_moves_the_walk_to_the_next_anchor():
    model = _model()
    for bars, expected in ((1, [0, 1, 2, 3]), (2, [0, 0, 1, 1]), (0, [0, 0, 0, 0])):
        src = _source(model, latent_seed=4)
        p = dict(STILL, **{"latent.bars": bars, "latent.glide": 0.2, "latent.pulse": 0.5})
        a = src.anchors
        reached = []
        for bar in range(4):
            for beat in range(4):
                src.on_event(Beat(bar * 2.0 + beat * 0.5, bar * 4 + beat, bar, beat, 120.0))
            z = src.advance(bar * 2.0 + 1.99, p)
            dist = np.linalg.norm(a - z, axis=1)
            reached.append(int(np.argmin(dist)))
            assert dist.min() < 0.02 * src.radius, (bars, bar, dist.min())
        assert reached == expected
        assert src.anchor_step == expected[-1]


def test_morph_slerps_between_the_anchors():
    model = _model()
    src = _source(model, latent_seed=9)
    a = src.anchors
    k = len(a)
    assert np.array_equal(src.home(0.0), a[0]) and np.array_equal(src.home(1.0), a[-1])
    for i in range(k):
        assert np.array_equal(src.home(i / (k - 1)), a[i])
    for m in (0.05, 0.3, 0.5, 0.77):
        h = src.home(m)
        assert np.linalg.norm(h) == pytest.approx(src.radius, rel=1e-12)
        s = m * (k - 1)
        i = math.floor(s)
        assert np.allclose(h, slerp(a[i], a[i + 1], s - i), atol=1e-12)
    # the walk follows the knob (smoothly: halfway there after a while, not at once)
    z0 = src.advance(0.0, STILL)
    target = src.home(0.5)
    z1 = src.advance(0.05, dict(STILL, **{"latent.morph": 0.5}))
    assert 0 < np.linalg.norm(z1 - z0) < 0.1 * np.linalg.norm(target - z0)
    for t in np.arange(0.1, 10.0, 0.1):
        z2 = src.advance(t, dict(STILL, **{"latent.morph": 0.5}))
    assert np.linalg.norm(z2 - target) < 1e-6 * src.radius


def test_chaos_zero_stays_put_and_chaos_wanders_within_the_band():
    model = _model()
    src = _source(model, latent_seed=2)
    home = src.home(0.0)
    for t in np.arange(0.0, 8.0, 1 / 30):
        z = src.advance(t, STILL)
    assert np.array_equal(z, home)  # no wander at all
    src = _source(model, latent_seed=2, seed=1)
    wild = dict(STILL, **{"latent.chaos": 1.0, "latent.glide": 0.1})
    far, norms = 0.0, []
    for t in np.arange(0.0, 8.0, 1 / 30):
        src.render(t, wild) if t < 0.2 else src.advance(t, wild)
        far = max(far, float(np.linalg.norm(src.z - home)))
        norms.append(float(np.linalg.norm(src.decoded_z(0.0))))
    assert far > 0.3 * src.radius
    assert min(norms) >= 0.8 * src.radius - 1e-9 and max(norms) <= 1.2 * src.radius + 1e-9


def test_beats_pulse_the_picture():
    model = _model()
    src = _source(model)
    p = dict(STILL, **{"latent.pulse": 1.0})
    calm = src.render(0.99, p)
    src.on_event(Beat(1.0, 4, 1, 0, 120.0))
    hit = src.render(1.0, p)
    assert hit.astype(float).mean() > calm.astype(float).mean() + 5  # a flash
    later = src.render(3.0, p)
    assert abs(later.astype(float).mean() - calm.astype(float).mean()) < 2


# -- frames ----------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(320, 240), (48, 64)])
def test_render_gives_uint8_frames_of_the_show_size(vae_file, gan_file, size):
    for path in (vae_file, gan_file):
        src = LatentSource(*size, model=path, device="cpu")
        frame = src.render(0.0, {})
        assert frame.shape == (size[1], size[0], 3) and frame.dtype == np.uint8
        assert 0 < frame.mean() < 255
        src.on_event(NoteOn(0.0, 60, 127))
        assert not np.array_equal(src.render(0.3, {}), frame)
        src.close()


def test_live_mode_returns_at_once_decodes_the_newest_and_close_joins_the_thread():
    class Slow(torch.nn.Module):
        def __init__(self, inner, delay):
            super().__init__()
            self.inner, self.config, self.delay = inner, inner.config, delay

        def decode(self, z):
            time.sleep(self.delay)
            return self.inner.decode(z)

    src = LatentSource(W, H, model=Slow(_model(), 0.25), threaded=True, device="cpu")
    try:
        params = dict(STILL, **{"latent.chaos": 0.5})
        t0 = time.perf_counter()
        first = src.render(0.0, params)
        assert time.perf_counter() - t0 < 0.1
        assert first.shape == (H, W, 3) and first.dtype == np.uint8 and not first.any()  # plain before the first
        slowest = 0.0
        for i in range(1, 8):  # faster than it decodes: each render returns at once anyway
            t0 = time.perf_counter()
            src.render(i / 30, params)
            slowest = max(slowest, time.perf_counter() - t0)
            time.sleep(0.01)
        assert slowest < 0.1
        assert src.replaced >= 1  # stale requests were replaced by newer ones, not queued
        assert src.wait_ready(5.0)
        deadline = time.monotonic() + 5
        while src.decoded < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert src.decoded >= 2 and src.render(0.5, params).any()
        assert src.decoded < 8  # newest only: not every frame asked for was decoded
        src.render(0.6, params)  # one in hand while closing
        time.sleep(0.05)
    finally:
        t0 = time.perf_counter()
        src.close()
    assert src._thread is None
    assert not [t for t in threading.enumerate() if t.name == "livegen-latent"]
    src.close()  # twice is fine


# -- wiring ----------------------------------------------------------------------------------
def _visuals(**kw) -> VisualsConfig:
    base = dict(width=W, height=H, fps=10, source="latent")
    base.update(kw)
    return VisualsConfig(**base)


@pytest.mark.parametrize("style", [False, True])
def test_the_source_plugs_into_the_pipeline(vae_file, style):
    if style and not SHIPPED_STYLE.is_file():
        pytest.skip("the shipped style model is not there")
    lines: list[str] = []
    pipe = build_pipeline(_visuals(latent_model=str(vae_file), style=style), seed=1, warn=lines.append)
    try:
        assert not lines
        scene = pipe.output.scene
        assert isinstance(scene, LatentSource) and not scene.threaded
        names = {s.name for s in pipe.param_specs()}
        assert {"latent.chaos", "latent.morph", "latent.step", "latent.pulse", "visuals.brightness"} <= names
        assert ("style.intensity" in names) == style
        params = {s.name: s.default for s in pipe.param_specs()}
        pipe.output.send(NoteOn(0.0, 60, 100))
        a = pipe.frame(0.0, params)
        b = pipe.frame(0.2, params)
        assert a.shape == b.shape == (H, W, 3) and a.dtype == np.uint8 and not np.array_equal(a, b)
        if style:
            assert not np.array_equal(b, pipe.last_source)  # painted
    finally:
        pipe.close()
    # live: decoded on its own thread, the style network on its worker; close joins both
    pipe = build_pipeline(_visuals(latent_model=str(vae_file), style=style, style_worker="thread"), seed=1,
                          warn=lines.append, worker=True)
    try:
        scene = pipe.output.scene
        assert isinstance(scene, LatentSource) and scene.threaded
        params = {s.name: s.default for s in pipe.param_specs()}
        pipe.frame(0.0, params)
        assert scene.wait_ready(10.0)
        frame = pipe.frame(0.1, params)
        assert frame.shape == (H, W, 3)
    finally:
        pipe.close()
    assert not lines
    assert not [t for t in threading.enumerate() if t.name == "livegen-latent"]


def test_switch_and_anchor_file_and_landscape_seed(vae_file, tmp_path):
    anchors = generate_anchors(16, seed=42, count=3) * 0.9
    path = save_anchors(tmp_path / "a.json", anchors)
    v = _visuals(source="ripples", sources=("ripples", "latent"), latent_model=str(vae_file),
                 latent_anchors=str(path), latent_seed=5)
    pipe = build_pipeline(v, seed=1)
    try:
        sw = pipe.output.scene
        assert isinstance(sw, SourceSwitch) and [s.name for s in sw.sources] == ["ripples", "latent"]
        latent = sw.sources[1]
        assert np.allclose(latent.anchors, anchors) and latent.latent_seed == 5
        assert np.array_equal(latent.directions, pitch_directions(16, 5))
        params = {s.name: s.default for s in pipe.param_specs()}
        ripples = pipe.frame(0.0, params)
        shown = pipe.frame(0.0, dict(params, **{"visuals.source": 1}))
        assert ripples.shape == shown.shape == (H, W, 3) and not np.array_equal(ripples, shown)
        assert np.array_equal(latent.z, anchors[0])
        assert np.array_equal(shown, latent.decode(latent.decoded_z(0.0)))
    finally:
        pipe.close()


def test_anchor_files_json_and_npy_never_pickle(tmp_path):
    a = generate_anchors(16, seed=1, count=4)
    for name in ("a.npy", "a.json"):
        assert np.allclose(load_anchors(save_anchors(tmp_path / name, a), 16), a)
    (tmp_path / "list.json").write_text(json.dumps(a[:2].tolist()))
    assert load_anchors(tmp_path / "list.json", 16).shape == (2, 16)
    np.save(tmp_path / "obj.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    cases = {
        "obj.npy": "not a readable anchors file",
        "nope.json": "no such anchors file",
        "a.txt": "must be a .json or .npy file",
        "bad.json": "not a readable anchors file",
        "words.json": "not a readable anchors file",
        "a.npy": "anchors have 16 numbers each, the model's latent vectors 8",
        "zero.json": "an anchor is all zeros",
    }
    (tmp_path / "a.txt").write_text("1 2 3")
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "words.json").write_text('[["a", "b"]]')
    (tmp_path / "zero.json").write_text(json.dumps([[0.0] * 16]))
    for name, message in cases.items():
        with pytest.raises(LatentSourceError, match=message) as info:
            load_anchors(tmp_path / name, 8 if name == "a.npy" else 16)
        assert str(tmp_path / name) in str(info.value) and "\n" not in str(info.value)


def test_a_missing_or_corrupt_model_is_one_line_and_the_show_goes_on(tmp_path, monkeypatch):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 64)
    missing = tmp_path / "nope.pt"
    monkeypatch.setattr(ls, "DEFAULT_LATENT_MODEL", tmp_path / "shipped" / "latent-vae.pt")
    for model, words in ((missing, "no such latent model file"), (bad, "not a readable latent model"),
                         ("", "the shipped latent model is not installed")):
        lines: list[str] = []
        pipe = build_pipeline(_visuals(latent_model=str(model)), warn=lines.append)
        try:
            assert len(lines) == 1, lines
            named = model or ls.DEFAULT_LATENT_MODEL
            assert str(named) in lines[0] and words in lines[0] and "\n" not in lines[0]
            assert pipe.output.scene.name == "ripples"  # the fallback, as for other sources
            frame = pipe.frame(0.0, {})
            assert frame.shape == (H, W, 3)
        finally:
            pipe.close()
    good = save_latent_model(_model(), tmp_path / "good.pt")
    with pytest.raises(SourceError, match="no such anchors file"):
        create_source("latent", W, H, latent=ls.LatentOptions(model=str(good), anchors=str(tmp_path / "n.npy")))
    with pytest.raises(SourceError, match="known: .*latent"):
        create_source("lasers", W, H)


RENDER_PATCH = """
[patch]
name = "latent-render"
[clock]
bpm = 120
[[generators]]
name = "arp"
kind = "arpeggiator"
[visuals]
width = 64
height = 48
fps = 10
source = "latent"
latent_model = "{model}"
latent_seed = 3
style = {style}
[params]
"latent.chaos" = 0.5
"""


def test_offline_render_writes_frames_and_repeats_exactly(vae_file, tmp_path):
    from livegen.render import render

    for style in ("false",) + (("true",) if SHIPPED_STYLE.is_file() else ()):
        patch = parse_patch(RENDER_PATCH.format(model=vae_file, style=style), "<t>")
        outs = []
        for run in ("a", "b"):
            out = tmp_path / f"{style}-{run}"
            res = render(patch, 1.5, 4, out, progress=False, force_png=True)
            assert res.frames == 15
            outs.append([p.read_bytes() for p in sorted((out / "frames").glob("*.png"))])
        assert len(outs[0]) == 15 and outs[0] == outs[1]
        assert len(set(outs[0])) > 5  # it moves
    other = render(patch, 1.5, 5, tmp_path / "seed5", progress=False, force_png=True)
    assert other.frames == 15
    assert [p.read_bytes() for p in sorted((tmp_path / "seed5" / "frames").glob("*.png"))] != outs[0]


def test_render_command_with_a_latent_patch_and_a_corrupt_model(vae_file, tmp_path):
    patch = tmp_path / "show.toml"
    patch.write_text(RENDER_PATCH.format(model="model.pt", style="false"))  # relative to the patch
    (tmp_path / "model.pt").write_bytes(vae_file.read_bytes())
    run = lambda *a: subprocess.run([sys.executable, "-m", "livegen", "--log-file", str(tmp_path / "log"), "render",  # noqa: E731
                                     str(patch), "--seconds", "0.5", "--seed", "2", "--png", *a],
                                    capture_output=True, text=True, timeout=300, cwd=ROOT)
    out = run("--out", str(tmp_path / "ok"))
    assert out.returncode == 0, out.stderr
    assert len(list((tmp_path / "ok" / "frames").glob("*.png"))) == 5
    assert "latent" not in out.stderr
    (tmp_path / "model.pt").write_bytes(b"PK\x03\x04 truncated")
    out = run("--out", str(tmp_path / "bad"))
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if "latent" in ln]
    assert len(lines) == 1 and str(tmp_path / "model.pt") in lines[0], out.stderr
    assert len(list((tmp_path / "bad" / "frames").glob("*.png"))) == 5  # the show went on (ripples)


def test_patch_fields(tmp_path):
    text = '[visuals]\nsource = "latent"\nlatent_model = "m/latent.pt"\nlatent_anchors = "a.npy"\nlatent_seed = 7\n'
    p = tmp_path / "show.toml"
    p.write_text(text)
    from livegen.patch.loader import load_patch

    v = load_patch(p).visuals
    assert v.latent_model == str(tmp_path / "m" / "latent.pt") and v.latent_anchors == str(tmp_path / "a.npy")
    assert v.latent_seed == 7 and v.source_list() == ("latent",)
    v = parse_patch("[visuals]\n", "<t>").visuals
    assert (v.latent_model, v.latent_anchors, v.latent_seed) == ("", "", 0)
    with pytest.raises(PatchError, match=r"<t>:2: visuals.latent_anchors: anchors are a .json or .npy file"):
        parse_patch('[visuals]\nlatent_anchors = "a.pkl"\n', "<t>")
    with pytest.raises(PatchError, match=r"visuals.latent_seed: expected an integer"):
        parse_patch("[visuals]\nlatent_seed = -1\n", "<t>")
