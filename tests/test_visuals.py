"""Visuals: scenes react to the music and are deterministic, the output hands events across
threads, the window really puts pixels on an X screen, and the writer makes real videos."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from livegen.control.params import ParamSpec  # noqa: E402
from livegen.events import AllNotesOff, Beat, ClockTick, NoteOff, NoteOn, ParamChanged  # noqa: E402
from livegen.visuals import SCENES, FrameWriter, Scene, VisualsOutput, create_scene  # noqa: E402
from livegen.visuals.scenes import FlowField, RippleField, pitch_color  # noqa: E402
from livegen.visuals.video import find_ffmpeg  # noqa: E402

W, H = 320, 240
FPS = 30
SCENE_NAMES = sorted(SCENES)


def play(scene: Scene, script: list, times: list[float], params: dict | None = None) -> list[np.ndarray]:
    """Feed each event just before the first frame at or after its time; render all frames."""
    events = sorted(script, key=lambda e: e.time)
    frames = []
    i = 0
    for t in times:
        while i < len(events) and events[i].time <= t:
            scene.on_event(events[i])
            i += 1
        frames.append(scene.render(t, params or {}))
    return frames


def frame_times(start: float, end: float) -> list[float]:
    return [start + k / FPS for k in range(int(round((end - start) * FPS)) + 1)]


SCRIPT = [
    Beat(0.0, 0, 0, 0, 120.0),
    NoteOn(0.1, 40, 100),
    NoteOn(0.2, 67, 60, channel=1),
    Beat(0.5, 1, 0, 1, 120.0),
    NoteOff(0.6, 40),
    NoteOn(0.7, 88, 127, voice="bass"),
    Beat(1.0, 2, 0, 2, 120.0),
    NoteOff(1.1, 67, channel=1),
    NoteOff(1.2, 88, voice="bass"),
]


# -- scenes -------------------------------------------------------------------------------
def test_create_scene_knows_both_kinds_and_lists_names_on_error():
    assert isinstance(create_scene("ripples", W, H), RippleField)
    assert isinstance(create_scene("flow", W, H), FlowField)
    with pytest.raises(ValueError) as e:
        create_scene("nope", W, H)
    assert "flow" in str(e.value) and "ripples" in str(e.value)


@pytest.mark.parametrize("name", SCENE_NAMES)
def test_scene_frame_shape_dtype_and_protocol(name):
    scene = create_scene(name, W, H, seed=1)
    assert isinstance(scene, Scene)
    (frame,) = play(scene, SCRIPT[:2], [0.15])
    assert frame.shape == (H, W, 3) and frame.dtype == np.uint8
    odd = create_scene(name, 101, 75)
    assert odd.render(0.0, {}).shape == (75, 101, 3)


@pytest.mark.parametrize("name", SCENE_NAMES)
def test_scene_param_specs_shared_names(name):
    specs = create_scene(name, W, H).param_specs()
    assert all(isinstance(s, ParamSpec) for s in specs)
    names = [s.name for s in specs]
    assert len(names) == len(set(names))
    assert all(n.startswith("visuals.") for n in names)
    assert {"visuals.brightness", "visuals.decay", "visuals.hue"} <= set(names)
    if name == "flow":
        assert "visuals.zoom" in names


@pytest.mark.parametrize("name", SCENE_NAMES)
def test_scene_is_deterministic(name):
    times = frame_times(0.0, 1.5)
    a = play(create_scene(name, W, H, seed=7), SCRIPT, times)
    b = play(create_scene(name, W, H, seed=7), SCRIPT, times)
    for fa, fb in zip(a, b):
        assert np.array_equal(fa, fb)
    assert any(f.any() for f in a)
    c = play(create_scene(name, W, H, seed=8), SCRIPT, times)
    assert any(not np.array_equal(fa, fc) for fa, fc in zip(a, c)), "the seed should matter"


@pytest.mark.parametrize("name", SCENE_NAMES)
def test_scene_reacts_to_a_note(name):
    times = frame_times(0.0, 0.4)
    quiet = play(create_scene(name, W, H), [], times)
    note = play(create_scene(name, W, H), [NoteOn(0.1, 60, 110)], times)
    assert np.array_equal(quiet[0], note[0])  # nothing before the note
    diff = np.abs(note[-1].astype(int) - quiet[-1].astype(int))
    assert diff.max() > 100 and (diff.sum(axis=2) > 30).sum() > 50


@pytest.mark.parametrize("name", SCENE_NAMES)
def test_scene_note_position_follows_pitch(name):
    times = frame_times(0.0, 0.2)
    base = play(create_scene(name, W, H), [], times)[-1].astype(float)
    for pitch, brighter in ((28, "left"), (100, "right")):
        frame = play(create_scene(name, W, H), [NoteOn(0.1, pitch, 110)], times)[-1].astype(float)
        light = np.clip(frame - base, 0, None).sum(axis=2)
        left, right = light[:, : W // 2].sum(), light[:, W // 2:].sum()
        assert left + right > 0
        if brighter == "left":
            assert left > 3 * right, (pitch, left, right)
        else:
            assert right > 3 * left, (pitch, left, right)


@pytest.mark.parametrize("name", SCENE_NAMES)
def test_scene_released_note_fades_held_note_stays(name):
    times = frame_times(0.0, 2.5)
    held = play(create_scene(name, W, H), [NoteOn(0.1, 60, 120)], times)[-1]
    released = play(create_scene(name, W, H), [NoteOn(0.1, 60, 120), NoteOff(0.3, 60)], times)[-1]
    base = play(create_scene(name, W, H), [], times)[-1]
    assert held.astype(int).sum() > released.astype(int).sum() + 1000
    assert np.abs(released.astype(int) - base.astype(int)).max() < 40  # faded back to the bare scene
    panic = play(create_scene(name, W, H), [NoteOn(0.1, 60, 120), AllNotesOff(0.3)], times)[-1]
    assert np.abs(panic.astype(int) - base.astype(int)).max() < 40
    # half a second after the release it is fading: dimmer than held, not yet gone
    times = frame_times(0.0, 0.8)
    held = play(create_scene(name, W, H), [NoteOn(0.1, 60, 120)], times)[-1].astype(int)
    released = play(create_scene(name, W, H), [NoteOn(0.1, 60, 120), NoteOff(0.3, 60)], times)[-1].astype(int)
    base = play(create_scene(name, W, H), [], times)[-1].astype(int)
    assert held.sum() > released.sum() + 1000
    assert np.abs(released - base).max() > 60


@pytest.mark.parametrize("name", SCENE_NAMES)
def test_scene_downbeat_pulses_harder_than_beat(name):
    times = frame_times(0.0, 0.1)
    down = play(create_scene(name, W, H), [Beat(0.05, 4, 1, 0, 120.0)], times)[-1]
    off = play(create_scene(name, W, H), [Beat(0.05, 5, 1, 1, 120.0)], times)[-1]
    none = play(create_scene(name, W, H), [], times)[-1]
    assert down.astype(int).sum() > off.astype(int).sum() > none.astype(int).sum()


@pytest.mark.parametrize("name", SCENE_NAMES)
def test_scene_brightness_zero_is_black(name):
    times = frame_times(0.0, 0.5)
    frames = play(create_scene(name, W, H), SCRIPT, times, params={"visuals.brightness": 0.0})
    assert all(f.max() == 0 for f in frames)
    # out-of-range and missing parameters do not break a frame
    scene = create_scene(name, W, H)
    assert scene.render(0.0, {"visuals.brightness": 7.0, "visuals.decay": -3.0}).shape == (H, W, 3)


def test_hue_follows_pitch_class():
    assert np.allclose(pitch_color(60, 0.0), pitch_color(72, 0.0))
    assert not np.allclose(pitch_color(60, 0.0), pitch_color(61, 0.0))
    assert not np.allclose(pitch_color(60, 0.0), pitch_color(60, 0.5))


@pytest.mark.parametrize("name", SCENE_NAMES)
def test_scene_renders_fast(name):
    scene = create_scene(name, W, H)
    script = [NoteOn(k * 0.1, 30 + (k * 7) % 60, 100) for k in range(20)]
    times = frame_times(0.0, 2.0)
    cost = []
    events = sorted(script, key=lambda e: e.time)
    for t in times:
        while events and events[0].time <= t:
            scene.on_event(events.pop(0))
        t0 = time.perf_counter()
        scene.render(t, {})
        cost.append(time.perf_counter() - t0)
    # the best frame tells the cost without the noise of a busy machine; a few ms expected
    assert min(cost) < 0.02, f"{name}: {min(cost) * 1000:.1f} ms per 320x240 frame"


# -- output ---------------------------------------------------------------------------------
class RecordingScene(RippleField):
    def __init__(self) -> None:
        super().__init__(64, 48)
        self.events: list = []
        self.threads: set[str] = set()

    def on_event(self, event) -> None:
        self.events.append(event)
        self.threads.add(threading.current_thread().name)
        super().on_event(event)


def test_visuals_output_hands_events_from_dispatch_thread_to_main():
    scene = RecordingScene()
    out = VisualsOutput(scene)
    assert out.name == "visuals" and out.lead == 0.0
    sent = [NoteOn(i * 0.01, 40 + i % 40, 90) if i % 2 == 0 else NoteOff(i * 0.01, 40 + (i - 1) % 40)
            for i in range(2000)]
    sent.append(ParamChanged(20.0, "visuals.hue", 0.25))

    def dispatch() -> None:
        for ev in sent:
            out.send(ev)
            out.send(ClockTick(ev.time))  # 24 per beat: not wanted by the visuals

    th = threading.Thread(target=dispatch, name="livegen-dispatch")
    th.start()
    drained = 0
    while th.is_alive():
        drained += out.drain()
    th.join()
    drained += out.drain()
    assert drained == len(sent)
    assert scene.events == sent  # all of them, in order, nothing else
    assert scene.threads == {threading.current_thread().name}
    assert out.params["visuals.hue"] == 0.25
    frame = out.render(20.0)
    assert frame.shape == (48, 64, 3)


def test_visuals_output_bounded_drops_oldest_and_close_stops():
    scene = RecordingScene()
    out = VisualsOutput(scene, maxlen=10)
    for i in range(25):
        out.send(NoteOn(float(i), 60, 100))
    assert out.pending() == 10 and out.dropped == 15
    assert out.drain() == 10
    assert [e.time for e in scene.events] == [float(i) for i in range(15, 25)]
    out.close()
    out.send(NoteOn(30.0, 60, 100))
    assert out.drain() == 0


def test_visuals_output_frame_changes_after_note_from_thread():
    out = VisualsOutput(create_scene("ripples", W, H))
    before = out.render(0.0)
    th = threading.Thread(target=out.send, args=(NoteOn(0.0, 60, 120),))
    th.start()
    th.join()
    after = out.render(0.05)
    assert not np.array_equal(before, after)


# -- window ---------------------------------------------------------------------------------
def _x11grab_ffmpeg() -> str:
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        pytest.skip("ffmpeg not installed")
    devices = subprocess.run([ffmpeg, "-hide_banner", "-devices"], capture_output=True, text=True).stdout
    if "x11grab" not in devices:
        pytest.skip("ffmpeg has no x11grab")
    return ffmpeg


@pytest.fixture
def x11(xvfb_display, monkeypatch):
    monkeypatch.setenv("DISPLAY", xvfb_display)
    monkeypatch.setenv("SDL_VIDEODRIVER", "x11")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    return xvfb_display


def _load_rgb(path: Path) -> np.ndarray:
    import pygame

    return pygame.surfarray.array3d(pygame.image.load(str(path))).transpose(1, 0, 2)


def _masks(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r, g, b = (img[..., c].astype(int) for c in range(3))
    return (r > 200) & (g < 50) & (b < 50), (b > 200) & (r < 50) & (g < 50)


def _red_blue_frame(w: int = W, h: int = H) -> np.ndarray:
    frame = np.zeros((h, w, 3), np.uint8)
    frame[:, : w // 2] = (255, 0, 0)
    frame[:, w // 2:] = (0, 0, 255)
    return frame


def _show_and_settle(win, frame) -> None:
    for _ in range(5):  # let the X server map the window before grabbing it
        win.show(frame)
        win.poll()
        time.sleep(0.05)


@pytest.mark.xvfb
def test_window_puts_the_frame_on_the_x_screen(x11, tmp_path):
    from livegen.visuals.window import Window

    ffmpeg = _x11grab_ffmpeg()
    win = Window(W, H, scale=2, title="livegen test")
    try:
        assert win.size == (2 * W, 2 * H)
        _show_and_settle(win, _red_blue_frame())
        shot = tmp_path / "shot.png"
        subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "x11grab", "-draw_mouse", "0",
                        "-video_size", "1024x768", "-i", x11, "-frames:v", "1", str(shot)],
                       check=True, timeout=60)
        own = win.screenshot(tmp_path / "own.png")
    finally:
        win.close()
        win.close()  # idempotent
    screen = _load_rgb(shot)
    red, blue = _masks(screen)
    half = W * 2 * H  # each half of a 640x480 window
    assert 0.97 * half <= red.sum() <= 1.01 * half
    assert 0.97 * half <= blue.sum() <= 1.01 * half
    ry, rx = np.nonzero(red)
    by, bx = np.nonzero(blue)
    assert rx.max() < bx.min() and bx.min() - rx.max() <= 2  # red left of blue, touching
    assert (ry.min(), ry.max()) == (by.min(), by.max())
    assert rx.max() - rx.min() + 1 == W and ry.max() - ry.min() + 1 == 2 * H
    # the window's own screenshot shows the same picture
    mine = _load_rgb(own)
    assert mine.shape == (2 * H, 2 * W, 3)
    red, blue = _masks(mine)
    assert red[:, :W].all() and blue[:, W:].all()
    assert np.array_equal(mine, screen[ry.min():ry.max() + 1, rx.min():bx.max() + 1])


@pytest.mark.xvfb
def test_window_scales_any_frame_size_keeping_aspect(x11, tmp_path):
    from livegen.visuals.window import Window

    with Window(W, H, scale=2) as win:
        _show_and_settle(win, _red_blue_frame(100, 25))  # 4:1 into 4:3 -> letterboxed
        img = _load_rgb(win.screenshot(tmp_path / "s.png"))
    red, blue = _masks(img)
    assert img[:100].max() == 0 and img[-100:].max() == 0  # black bars above and below
    ry, rx = np.nonzero(red)
    assert rx.min() == 0 and rx.max() == W - 1 and ry.max() - ry.min() + 1 == 160
    assert blue[:, W:].any(axis=0).all()


@pytest.mark.xvfb
def test_window_poll_reports_actions(x11):
    import pygame

    from livegen.visuals.window import Window

    win = Window(160, 120, scale=1)
    try:
        win.poll()
        # Closed by the window manager (SDL sends WINDOWCLOSE, then QUIT): one "close", which
        # the rig decides about ([visuals] on_close); Esc is "quit".
        pygame.event.post(pygame.event.Event(pygame.WINDOWCLOSE))
        pygame.event.post(pygame.event.Event(pygame.QUIT))
        assert win.poll() == ["close"]
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_SPACE))
        assert win.poll() == ["panic"]
        for key in (pygame.K_f, pygame.K_a, pygame.K_ESCAPE):
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key))
        assert win.poll() == ["fullscreen", "key:a", "quit"]
        assert win.poll() == []
    finally:
        win.close()


def test_window_refuses_without_display(monkeypatch):
    from livegen.visuals.window import NO_DISPLAY, DisplayUnavailable, Window

    if not sys.platform.startswith("linux"):
        pytest.skip("the DISPLAY check is for Linux")
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(DisplayUnavailable) as e:
        Window(W, H)
    assert str(e.value) == NO_DISPLAY
    assert "\n" not in str(e.value) and "--no-window" in str(e.value)


@pytest.mark.xvfb
def test_window_translates_sdl_failure(xvfb_display, monkeypatch):
    from livegen.visuals.window import DisplayUnavailable, Window

    num = 200
    while os.path.exists(f"/tmp/.X11-unix/X{num}"):
        num += 1
    monkeypatch.setenv("DISPLAY", f":{num}")  # a display nobody serves
    monkeypatch.setenv("SDL_VIDEODRIVER", "x11")
    with pytest.raises(DisplayUnavailable) as e:
        Window(W, H)
    assert "\n" not in str(e.value) and "--no-window" in str(e.value)


# -- video ----------------------------------------------------------------------------------
def _moving_bar(k: int, w: int = W, h: int = H) -> np.ndarray:
    frame = np.full((h, w, 3), 30, np.uint8)
    x = 8 * k
    frame[:, x:x + 16] = (250, 250, 250)
    return frame


def test_frame_writer_makes_an_mp4(tmp_path):
    if find_ffmpeg() is None:
        pytest.skip("no ffmpeg with libx264")
    import imageio_ffmpeg

    with FrameWriter(tmp_path, FPS, (W, H)) as writer:
        assert writer.kind == "video"
        for k in range(30):
            writer.write(_moving_bar(k))
    path = writer.close()
    assert path == tmp_path / "visuals.mp4" and path.stat().st_size > 0
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    assert tuple(meta["size"]) == (W, H)
    assert meta["fps"] == pytest.approx(FPS)
    frames = [np.frombuffer(f, np.uint8).reshape(H, W, 3) for f in reader]
    assert len(frames) == 30
    for k in (0, 12, 29):  # the bar is where it was drawn, in every frame we look at
        column = frames[k][H // 2, :, 1].astype(int)
        assert column[8 * k + 8] > 200 and column[(8 * k + 120) % W] < 80


def test_frame_writer_pads_odd_sizes(tmp_path):
    if find_ffmpeg() is None:
        pytest.skip("no ffmpeg with libx264")
    import imageio_ffmpeg

    with FrameWriter(tmp_path, 10, (101, 75)) as writer:
        for k in range(5):
            writer.write(_moving_bar(k, 101, 75))
    reader = imageio_ffmpeg.read_frames(str(writer.path))
    assert tuple(next(reader)["size"]) == (102, 76)
    assert sum(1 for _ in reader) == 5


def test_frame_writer_png_fallback(tmp_path):
    import pygame

    writer = FrameWriter(tmp_path, FPS, (W, H), force_png=True)
    assert writer.kind == "png"
    sent = [_moving_bar(k) for k in range(30)]
    for frame in sent:
        writer.write(frame)
    with pytest.raises(ValueError):
        writer.write(np.zeros((10, 10, 3), np.uint8))
    path = writer.close()
    assert path == tmp_path / "frames" and writer.close() == path
    files = sorted(path.glob("*.png"))
    assert [f.name for f in files] == [f"{k:06d}.png" for k in range(30)]
    for f, frame in zip(files, sent):
        surf = pygame.image.load(str(f))
        assert surf.get_size() == (W, H)
        assert np.array_equal(pygame.surfarray.array3d(surf).transpose(1, 0, 2), frame)  # lossless
