"""Sources, the source -> style -> screen pipeline, stylize on files, render and the real window."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from livegen.events import Beat, NoteOn, ParamChanged
from livegen.visuals.output import VisualsOutput
from livegen.visuals.pipeline import StyleControls, VisualsPipeline
from livegen.visuals.scenes import create_scene
from livegen.visuals.sources import ImageSource, SourceError, SourceSwitch, VideoSource, create_source
from livegen.visuals.style_net import load_style_net
from livegen.visuals.stylize import save_image
from livegen.visuals.stylizer import StyleSettings, Stylizer
from style_models import distinct_styles, solid_colour

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    return {"three": distinct_styles(d / "three.pt"), "green": solid_colour(d / "green.pt")}


@pytest.fixture(scope="module")
def picture(tmp_path_factory) -> Path:
    img = np.zeros((90, 200, 3), np.uint8)
    img[:, :100] = (250, 40, 40)
    img[:, 100:] = (40, 40, 250)
    img[40:50] = 255
    img[:, ::10] = 255  # fine detail, so a zoom shows
    p = tmp_path_factory.mktemp("pics") / "pic.png"
    save_image(p, img)
    return p


# -- sources ---------------------------------------------------------------------------------

def test_image_source_fills_the_frame_and_pulses_on_the_beat(picture):
    src = ImageSource(160, 120, picture)
    params = {s.name: s.default for s in src.param_specs()}
    calm = src.render(5.0, params)
    assert calm.shape == (120, 160, 3) and calm.dtype == np.uint8
    assert calm[:, :40, 0].mean() > 180 and calm[:, -40:, 2].mean() > 180  # red left, blue right
    src.on_event(Beat(10.0, 20, 5, 0, 120.0))
    hit = src.render(10.01, params)
    later = src.render(11.0, params)
    assert np.abs(hit.astype(int) - later.astype(int)).mean() > 1.0  # the downbeat zooms in
    still = dict(params, **{"visuals.pulse": 0.0})
    src.on_event(Beat(20.0, 40, 10, 0, 120.0))
    a, b = src.render(20.01, still), src.render(20.011, still)
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 0.5  # pulse 0: no jump


def test_missing_or_unknown_sources_are_one_line_errors(tmp_path):
    with pytest.raises(SourceError, match="no such image file"):
        create_source("image", 64, 48, file=str(tmp_path / "nope.png"))
    with pytest.raises(SourceError, match='needs source_file'):
        create_source("video", 64, 48)
    with pytest.raises(SourceError, match="known: flow, ripples, image, video, camera"):
        create_source("lasers", 64, 48)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(SourceError, match="cannot read image"):
        create_source("image", 64, 48, file=str(bad))


def test_video_source_plays_and_loops(tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    path = tmp_path / "clip.mp4"
    w = imageio_ffmpeg.write_frames(str(path), (64, 48), fps=10, macro_block_size=1, quality=9)
    w.send(None)
    for i in range(10):  # 1 s: black, then brighter every frame
        w.send(np.full((48, 64, 3), i * 25, np.uint8))
    w.close()
    src = VideoSource(64, 48, path)
    params = {"visuals.pulse": 0.0, "visuals.brightness": 0.9}
    levels = [float(src.render(t, params).mean()) for t in np.arange(0.0, 2.5, 0.1)]
    assert levels[0] < 30 and max(levels[:10]) > 150
    assert levels[11] < levels[9] - 100  # back to the start after one second: it loops
    src.close()


def test_source_switch_follows_its_parameter_and_everyone_hears_the_music(picture):
    ripples = create_scene("ripples", 64, 48, seed=1)
    image = ImageSource(64, 48, picture)
    sw = SourceSwitch([ripples, image])
    assert sw.param.name == "visuals.source" and sw.param.max == 1 and "1 = image" in sw.param.doc
    params = {s.name: s.default for s in sw.param_specs()}
    sw.on_event(NoteOn(0.0, 60, 120))
    a = sw.render(0.1, params)
    b = sw.render(0.1, dict(params, **{"visuals.source": 1}))
    assert np.array_equal(b, image.render(0.1, params))
    assert a.mean() < b.mean()  # the dark scene vs the picture
    assert ripples._voices  # the hidden scene heard the note too


# -- pipeline ---------------------------------------------------------------------------------

def _pipeline(model: Path, quantize: str = "none", worker=None) -> VisualsPipeline:
    out = VisualsOutput(create_scene("ripples", 64, 48, seed=2))
    st = Stylizer(load_style_net(model), device="cpu")
    if worker is not None:
        worker = worker(st)
    return VisualsPipeline(out, st, quantize, worker)


def test_controls_declare_a_weight_per_style_and_quantise_to_the_bar(models):
    c = StyleControls(["a", "b"], quantize="bar")
    names = [s.name for s in c.param_specs()]
    assert names == ["style.a", "style.b", "style.intensity", "style.colour"]
    assert c.settings({}, bar=0).weights == [1.0, 0.0]  # the first style is up by default
    p = {"style.a": 0.0, "style.b": 1.0, "style.intensity": 0.7}
    s = c.settings(p, bar=0)
    assert s.weights == [1.0, 0.0] and s.intensity == 0.7  # weights wait for the bar; intensity does not
    assert c.settings(p, bar=1).weights == [0.0, 1.0]
    assert StyleControls(["a", "b"]).settings(p, bar=0).weights == [0.0, 1.0]
    with pytest.raises(ValueError, match="none, bar"):
        StyleControls(["a"], quantize="beat")


def test_pipeline_inline_styles_every_frame_and_waits_for_the_downbeat(models):
    pipe = _pipeline(models["three"], quantize="bar")
    out = pipe.output
    out.send(Beat(0.0, 0, 0, 0, 120.0))
    out.send(NoteOn(0.0, 64, 110))
    f0 = pipe.frame(0.1, {"style.red": 1.0})
    src = pipe.last_source
    assert f0.shape == src.shape and not np.array_equal(f0, src)
    st = pipe.stylizer
    assert np.array_equal(f0, st(src, StyleSettings([1, 0, 0])))
    # a knob turned mid-bar: still the old style until the next downbeat arrives
    params = {"style.red": 0.0, "style.blue": 1.0}
    f1 = pipe.frame(0.2, params)
    assert np.array_equal(f1, st(pipe.last_source, StyleSettings([1, 0, 0])))
    out.send(Beat(2.0, 4, 1, 0, 120.0))
    f2 = pipe.frame(2.01, params)
    assert np.array_equal(f2, st(pipe.last_source, StyleSettings([0, 0, 1])))
    # intensity 0: the source itself
    assert pipe.frame(2.1, dict(params, **{"style.intensity": 0.0})) is pipe.last_source


def test_pipeline_with_worker_shows_source_until_styled_frames_arrive(models):
    from livegen.visuals.style_worker import StyleWorker

    pipe = _pipeline(models["green"], worker=lambda st: StyleWorker(st, threads=1).start())
    try:
        first = pipe.frame(0.0, {})
        assert first is pipe.last_source  # nothing styled yet: the music's own picture
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            f = pipe.frame(time.monotonic(), {})
            if f is not pipe.last_source:
                break
            time.sleep(0.02)
        assert (f[..., 1] > 250).all()  # the green network's frame
        assert pipe.last_latency > 0
        # style off, then on again: never a styled picture left over from before it went off
        old = pipe.worker.latest()
        assert pipe.frame(time.monotonic(), {"style.intensity": 0.0}) is pipe.last_source
        back = pipe.frame(time.monotonic(), {"style.intensity": 1.0})
        assert back is pipe.last_source or pipe.worker.latest().seq > old.seq
    finally:
        pipe.close()
    assert pipe.worker._thread is None


def test_pipeline_without_style_is_the_scene(models):
    out = VisualsOutput(create_scene("flow", 64, 48, seed=3))
    ref = create_scene("flow", 64, 48, seed=3)
    pipe = VisualsPipeline(out)
    assert pipe.param_specs() == ref.param_specs()  # the scene's own; no style controls
    params = {s.name: s.default for s in ref.param_specs()}
    assert np.array_equal(pipe.frame(0.5, params), ref.render(0.5, params))
    out.send(ParamChanged(0.0, "visuals.hue", 0.5))
    assert out.pending() == 1


# -- stylize on files ---------------------------------------------------------------------------

def _cli(*args, cwd=ROOT, timeout=300):
    return subprocess.run([sys.executable, "-m", "livegen", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def test_stylize_an_image_a_folder_and_a_video(models, picture, tmp_path):
    from livegen.visuals.images import load_frame

    r = _cli("stylize", "--model", str(models["three"]), "--style", "red=0.5,blue=0.5", str(picture),
             str(tmp_path / "out.png"))
    assert r.returncode == 0, r.stderr
    got = load_frame(tmp_path / "out.png")
    st = Stylizer(load_style_net(models["three"]), device="cpu")
    assert np.abs(got.astype(int) - st(load_frame(picture), StyleSettings([0.5, 0, 0.5])).astype(int)).max() <= 1
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        save_image(folder / f"f{i}.png", np.full((24, 32, 3), 60 * i, np.uint8))
    r = _cli("stylize", "--model", str(models["three"]), "--style", "green", str(folder), str(tmp_path / "styled"))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "styled").iterdir()) == ["f0.png", "f1.png", "f2.png"]
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    vid = tmp_path / "in.mp4"
    w = imageio_ffmpeg.write_frames(str(vid), (64, 48), fps=10, macro_block_size=1)
    w.send(None)
    for i in range(8):
        w.send(np.full((48, 64, 3), 30 * i, np.uint8))
    w.close()
    r = _cli("stylize", "--model", str(models["green"]), "--style", "solid", str(vid), str(tmp_path / "out.mp4"))
    assert r.returncode == 0, r.stderr
    assert "8 frame(s)" in r.stdout
    frames = list(imageio_ffmpeg.read_frames(str(tmp_path / "out.mp4")))
    meta, raw = frames[0], frames[1:]
    assert meta["size"] == (64, 48) and len(raw) == 8
    assert np.frombuffer(raw[3], np.uint8).reshape(48, 64, 3)[..., 1].mean() > 200


def test_stylize_errors_are_one_line(models, picture, tmp_path):
    r = _cli("stylize", "--model", str(models["three"]), "--style", "mauve", str(picture), str(tmp_path / "o.png"))
    assert r.returncode == 2 and "unknown style 'mauve'; the model has: red, green, blue" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"xx")
    r = _cli("stylize", "--model", str(bad), "--style", "red", str(picture), str(tmp_path / "o.png"))
    assert r.returncode == 2 and f"{bad}: not a readable style model" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_stylize_optimize_runs_gatys_and_lowers_the_style_loss(picture, tmp_path):
    from livegen.visuals.gatys import evaluate, optimise
    from livegen.visuals.images import load_frame, to_tensor
    from livegen.visuals.loss_net import StyleLoss, make_loss_net

    net = make_loss_net("random")
    content = to_tensor(load_frame(picture))[:, :64, :96]
    style = torch_rand_texture()
    targets = StyleLoss(net).style_targets([style])
    w = __import__("torch").ones(1, 1)
    before = evaluate(content, content, targets, w, net)
    res = optimise(content, targets, w, net, steps=25)
    assert res.style < 0.5 * before[1]
    assert res.image.shape == content.shape and 0 <= float(res.image.min()) and float(res.image.max()) <= 1
    r = _cli("stylize", "--optimize", "--steps", "5", "--width", "64", "--style-image", str(picture),
             str(picture), str(tmp_path / "poster.png"))
    assert r.returncode == 0, r.stderr
    assert "style loss" in r.stdout and (tmp_path / "poster.png").is_file()


def torch_rand_texture():
    import torch

    g = torch.Generator().manual_seed(0)
    t = torch.rand(3, 8, 8, generator=g)
    return t.repeat(1, 8, 8)


# -- render and the real window ------------------------------------------------------------------

RENDER_PATCH = """
[patch]
name = "styled"
[clock]
bpm = 120
[[generators]]
name = "arp"
kind = "arpeggiator"
[visuals]
width = 64
height = 48
fps = 10
style = true
style_model = "{model}"
[params]
"style.intensity" = {intensity}
"""


def test_render_runs_the_same_pipeline_with_the_style_network(models, tmp_path):
    from livegen.patch.loader import parse_patch
    from livegen.render import render
    from livegen.visuals.images import load_frame

    for intensity, green in ((1.0, True), (0.0, False)):
        patch = parse_patch(RENDER_PATCH.format(model=models["green"], intensity=intensity), "<t>")
        out = tmp_path / f"r{intensity}"
        res = render(patch, 1.0, 1, out, progress=False, force_png=True)
        assert res.frames == 10
        frame = load_frame(sorted((out / "frames").glob("*.png"))[5])
        assert ((frame[..., 1] > 250).mean() > 0.99) == green


def test_render_with_a_corrupt_model_goes_on_unstyled(tmp_path, caplog):
    from livegen.patch.loader import parse_patch
    from livegen.render import render

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 10)
    patch = parse_patch(RENDER_PATCH.format(model=bad, intensity=1.0), "<t>")
    res = render(patch, 0.5, 1, tmp_path / "out", progress=False, force_png=True)
    assert res.frames == 5
    assert any(f"{bad}: not a readable style model" in r.getMessage() for r in caplog.records)


PLAY_PATCH = """
[patch]
name = "styled-window"
[clock]
bpm = 120
[audio]
enabled = false
[[generators]]
name = "arp"
kind = "arpeggiator"
[midi]
inputs = []
virtual_output = false
[osc]
port = {port}
[visuals]
width = 160
height = 120
scale = 2
style = true
style_model = "{model}"
screenshot_dir = "{shots}"
"""


@pytest.mark.xvfb
def test_real_window_screenshot_shows_the_stylised_frame(models, xvfb_display, tmp_path):
    from pythonosc.udp_client import SimpleUDPClient

    from livegen.visuals.images import load_frame
    from test_play import _wait_for_line, free_port

    port = free_port()
    patch = tmp_path / "show.toml"
    patch.write_text(PLAY_PATCH.format(port=port, model=models["green"], shots=tmp_path / "shots"))
    env = dict(os.environ, DISPLAY=xvfb_display, SDL_VIDEODRIVER="x11")
    proc = subprocess.Popen([sys.executable, "-m", "livegen", "--log-file", str(tmp_path / "log"), "play", str(patch)],
                            env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        try:
            _wait_for_line(proc, r"playing", 120)
        except AssertionError as e:  # say where it stopped: the log file has the details
            log = tmp_path / "log"
            raise AssertionError(f"{e}; log: {log.read_text()[-3000:] if log.exists() else 'none'}") from None
        client = SimpleUDPClient("127.0.0.1", port)
        shots = tmp_path / "shots"
        deadline = time.monotonic() + 30
        found = []
        while time.monotonic() < deadline and not found:
            client.send_message("/livegen/screenshot", [])
            time.sleep(0.5)
            found = sorted(shots.glob("livegen-*.png")) if shots.is_dir() else []
            # the first frames may be unstyled while the worker warms up: keep the green ones
            found = [p for p in found if (load_frame(p)[..., 1] > 250).mean() > 0.95]
        assert found, "no screenshot showing the stylised (green) frame"
        img = load_frame(found[0])
        assert img.shape == (240, 320, 3)  # the window's own size: 160x120 drawn twice as large
        client.send_message("/livegen/quit", [])
        proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    assert proc.returncode == 0, err
    assert "style network:" in err or "style network" in (tmp_path / "log").read_text()


@pytest.mark.xvfb
def test_window_hud_draws_over_the_frame_when_toggled(xvfb_display, monkeypatch, tmp_path):
    monkeypatch.setenv("DISPLAY", xvfb_display)
    monkeypatch.setenv("SDL_VIDEODRIVER", "x11")
    from livegen.visuals.images import load_frame
    from livegen.visuals.window import Window

    frame = np.full((120, 160, 3), 30, np.uint8)
    with Window(160, 120, scale=2, display=5) as win:  # no screen 5 here: falls back to the first
        hud = ["29.9 fps   frame latency  21.0 ms", "120.0 BPM   bar 3:2", "style x1.00: starry_night 1.00"]
        win.show(frame, hud)
        plain = load_frame(win.screenshot(tmp_path / "plain.png"))
        win.toggle_hud()
        win.show(frame, hud)
        with_hud = load_frame(win.screenshot(tmp_path / "hud.png"))
    assert (plain == 30).all()
    top_left = with_hud[:60, :200]
    assert (top_left > 200).sum() > 100  # white text
    assert (with_hud[150:, 250:] == 30).all()  # the rest of the frame untouched
