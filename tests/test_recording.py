"""Frames out while playing: recording the window to a video (probed with ffmpeg), a stuck
encoder that must not stop the show, and the optional outputs (virtual camera, NDI) that
are one clear line when they are missing."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from pythonosc.udp_client import SimpleUDPClient

from test_play import _wait_for_line, free_port, until

ROOT = Path(__file__).resolve().parent.parent

PATCH = """
[clock]
bpm = 150
[audio]
enabled = false
[[generators]]
name = "arp"
kind = "arpeggiator"
[generators.params]
density = 1.0
rest = 0.0
gate = 0.5
[midi]
inputs = []
virtual_output = false
[osc]
port = {port}
[visuals]
width = 160
height = 120
scale = 2
fps = 30
{extra}
"""
FPS = 30


def _need_ffmpeg() -> None:
    from livegen.visuals.video import find_ffmpeg

    if find_ffmpeg() is None:
        pytest.skip("no ffmpeg with libx264 (pip install imageio-ffmpeg); .ci/run installs it")


def _probe(path: Path) -> tuple[int, float]:
    """Frames and seconds, counted by decoding the file with imageio-ffmpeg's ffmpeg."""
    import imageio_ffmpeg

    return imageio_ffmpeg.count_frames_and_secs(str(path))


def _decode(path: Path) -> np.ndarray:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    return np.stack([np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in reader])


def _psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PSNR of each frame of ``a`` against ``b`` (broadcast), in dB."""
    mse = ((a.astype(np.float32) - b.astype(np.float32)) ** 2).mean(axis=(-3, -2, -1))
    return 10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-6))


def _lit(frame: np.ndarray) -> int:
    return int((frame.max(axis=2) > 40).sum())


@pytest.fixture
def sdl_dummy(monkeypatch):
    """A real pygame window on SDL's dummy video driver (no X server needed)."""
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setenv("PYGAME_HIDE_SUPPORT_PROMPT", "1")


def test_the_video_is_what_the_window_showed_at_the_shows_rate(sdl_dummy, tmp_path, monkeypatch, caplog):
    """The patch key records from the start; OSC stops it; the R key records a second take."""
    import logging

    import pygame

    from livegen.patch.loader import load_patch
    from livegen.play import LiveRig, RigOptions

    _need_ffmpeg()
    caplog.set_level(logging.INFO, logger="livegen")
    monkeypatch.chdir(tmp_path)  # the record path is relative to where livegen runs
    port = free_port()
    patch_file = tmp_path / "show.toml"
    patch_file.write_text(PATCH.format(port=port, extra='record = "takes/show-{time}.mp4"'))
    shown: list[tuple[float, np.ndarray]] = []
    screenshot = tmp_path / "shot.png"

    async def main():
        rig = LiveRig(load_patch(patch_file), RigOptions(window=True, audio=False, seed=1, watch_patch=False))
        await rig.start()
        try:
            assert rig.window is not None, rig.missing
            real_show = rig.window.show

            def show(frame, hud=None):  # what the window was given, and when
                shown.append((time.monotonic(), frame.copy()))
                real_show(frame, hud)

            rig.window.show = show
            take1 = rig.recorder.take
            assert take1 is not None and rig.recorder.recording
            await asyncio.sleep(1.0)
            rig.request_screenshot(screenshot)
            await asyncio.sleep(1.0)
            SimpleUDPClient("127.0.0.1", port).send_message("/livegen/record", 0)
            stop_sent = time.monotonic()
            assert await until(lambda: take1.finished.is_set(), 20.0), "the first take was not finished"
            n_shown_take1 = sum(1 for t, _ in shown if t <= stop_sent)
            # The R key starts and stops a second take.
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_r))
            assert await until(lambda: rig.recorder.recording, 3.0), "the R key did not start a take"
            take2 = rig.recorder.take
            await asyncio.sleep(0.7)
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_r))
            assert await until(lambda: take2.finished.is_set(), 20.0), "the R key did not stop the take"
            rig.request_quit()
            await rig.wait()
        finally:
            await rig.close()
        return take1, take2, stop_sent, n_shown_take1

    take1, take2, stop_sent, n_shown_take1 = asyncio.run(main())
    assert take1.error is None and take2.error is None, (take1.error, take2.error)
    files = sorted((tmp_path / "takes").iterdir())
    # Only the final names: no .part file is left.
    assert [f.suffix for f in files] == [".mp4", ".mp4"], files
    assert {take1.result, take2.result} == set(files)
    assert re.fullmatch(r"show-\d{8}-\d{6}(-2)?\.mp4", take1.result.name)

    # Its length is the time played at the show's rate: from the first frame shown to the
    # OSC stop, within two frames; the file's own frame count and duration agree.
    n, secs = _probe(take1.result)
    played = stop_sent - shown[0][0]
    assert abs(n - played * FPS) <= 2, (n, played * FPS)
    assert n == take1.written and abs(secs - n / FPS) < 0.05
    assert f"recorded {take1.result}: {n / FPS:.2f} s, {n} frames at 30 fps" in caplog.text
    assert "frames dropped" in caplog.text

    # The frames are the window's: each decoded frame is (nearly) one of the frames the
    # window showed during the take, in the order shown, and they are not black.
    video = _decode(take1.result)
    assert video.shape == (n, 120, 160, 3)
    window = np.stack([f for _, f in shown[:n_shown_take1]])
    assert max(_lit(f) for f in video) > 200, "the video is black"
    best = [int(np.argmax(_psnr(window, v))) for v in video]
    quality = np.array([_psnr(window[j], v) for j, v in zip(best, video)])
    assert quality.min() > 28, quality.round(1)  # H.264 at crf 18 (yuv420p) on thin coloured rings
    # ...and clearly that frame, not another: frames 4 or more apart score far lower.
    for j, v, q in zip(best, video, quality):
        if _lit(v) > 200:
            others = np.delete(window, range(max(0, j - 3), min(len(window), j + 4)), axis=0)
            assert q > _psnr(others, v).max() + 6, (j, q)
    assert sum(b < a - 1 for a, b in zip(best, best[1:])) <= 2, best  # in the order shown
    assert len(set(best)) >= 0.7 * len(window), (len(set(best)), len(window))  # few shown frames missing

    # A screenshot of the window (drawn twice as large) is a frame of the video.
    from livegen.visuals.images import load_frame

    shot = load_frame(screenshot)[::2, ::2]
    assert _psnr(video, shot).max() > 30

    # The second take (R key) is a file of its own, about 0.7 s long.
    n2, _ = _probe(take2.result)
    assert n2 == take2.written and 10 <= n2 <= 40, n2


def test_record_hud_records_the_window_with_its_hud(sdl_dummy, tmp_path):
    """``record_hud = true``: the window as drawn (twice the working size), HUD included."""
    from livegen.patch.loader import load_patch
    from livegen.play import LiveRig, RigOptions

    _need_ffmpeg()
    patch_file = tmp_path / "show.toml"
    patch_file.write_text(PATCH.format(port=free_port(), extra=f'record = "{tmp_path}/hud.mp4"\nrecord_hud = true'))

    async def main():
        rig = LiveRig(load_patch(patch_file), RigOptions(window=True, audio=False, seed=1, watch_patch=False))
        await rig.start()
        try:
            rig.window.toggle_hud()  # as the H key does
            await asyncio.sleep(1.0)
            hud = rig._hud(rig.engine)
        finally:
            await rig.close()
        return rig.recorder.takes[0], hud

    take, hud = asyncio.run(main())
    assert any(line.startswith("REC 0:0") for line in hud), hud  # the HUD says it is recording
    video = _decode(take.result)
    assert video.shape[1:] == (240, 320, 3)  # the window's size, not the visuals' 160x120
    text = video[-1, :60, :200]  # the HUD's corner: white letters on a dark box
    assert ((text.min(axis=2) > 200).sum()) > 50
    assert ((video[-1, 100:, :].min(axis=2) > 200).sum()) < ((text.min(axis=2) > 200).sum())


class StuckEncoder:
    """An encoder that takes no frame until released: the worst slow writer."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.frames: list[np.ndarray] = []
        self.closed = False

    def __call__(self, partial: Path, fps: int, size: tuple[int, int]) -> "StuckEncoder":
        return self

    def write(self, frame: np.ndarray) -> None:
        self.release.wait()
        self.frames.append(frame)

    def close(self) -> None:
        self.closed = True


def test_a_stuck_encoder_drops_frames_but_never_holds_the_show(sdl_dummy, tmp_path, monkeypatch):
    from livegen.patch.loader import load_patch
    from livegen.play import LiveRig, RigOptions

    monkeypatch.chdir(tmp_path)
    patch_file = tmp_path / "show.toml"
    patch_file.write_text(PATCH.format(port=free_port(), extra=""))
    encoder = StuckEncoder()

    async def main():
        rig = LiveRig(load_patch(patch_file), RigOptions(window=True, audio=False, seed=1, watch_patch=False))
        await rig.start()
        try:
            assert rig.recorder is not None and rig.recorder.take is None  # nothing recorded until asked
            rig.recorder.sink = encoder
            rig.recorder.buffer_seconds = 0.2  # 6 frames of queue
            assert rig.set_recording(True, "test")
            take = rig.recorder.take
            frames_before = rig.frames
            notes_before = rig.visuals_out.received
            await asyncio.sleep(2.0)
            frames_during = rig.frames - frames_before
            notes_during = rig.visuals_out.received - notes_before
            dropped_while_stuck = take.dropped
            encoder.release.set()
            stop = time.monotonic()
            rig.set_recording(False, "test")
            assert await until(lambda: take.finished.is_set(), 10.0)
        finally:
            await rig.close()
        return take, frames_during, notes_during, dropped_while_stuck, stop

    take, frames_during, notes_during, dropped_while_stuck, stop = asyncio.run(main())
    # The loop kept drawing far beyond what the queue holds, and the music kept coming.
    assert frames_during > take.capacity + 20, (frames_during, take.capacity)
    assert notes_during > 10
    # Every frame it could not take was dropped and counted, none waited: only the queue's
    # frames and the two in the writer's hands (one being written, the next) got through.
    assert take.offered >= frames_during
    assert dropped_while_stuck >= frames_during - take.capacity - 2
    # The file still has the show's length at a constant rate: the dropped frames became
    # repeats of the last one, so the video's clock is the wall clock.
    assert len(encoder.frames) == take.written
    assert abs(take.written - (stop - take.start_time) * FPS) <= 2
    assert take.repeated >= dropped_while_stuck - 1
    assert encoder.closed


def _shadow(tmp_path: Path, module: str, body: str) -> Path:
    """A folder that, first on PYTHONPATH, makes ``module`` behave as on a machine without it."""
    folder = tmp_path / "shadow"
    (folder / module).mkdir(parents=True, exist_ok=True)
    (folder / module / "__init__.py").write_text(body)
    return folder


def test_missing_ffmpeg_camera_and_syphon_are_one_line_each_and_the_show_plays(tmp_path):
    """No ffmpeg (imageio-ffmpeg without its binary, none on PATH), no pyvirtualcam, and
    Syphon asked for on Linux: one line each, then the show plays and stops cleanly."""
    port = free_port()
    patch = tmp_path / "show.toml"
    patch.write_text(PATCH.format(port=port, extra='share = "syphon"'))
    # imageio-ffmpeg's own error when its binary is missing; pyvirtualcam not installed.
    shadow = _shadow(tmp_path, "imageio_ffmpeg",
                     "def get_ffmpeg_exe():\n    raise RuntimeError('No ffmpeg exe could be found. Install ffmpeg "
                     "on your system, or set the IMAGEIO_FFMPEG_EXE environment variable.')\n")
    _shadow(tmp_path, "pyvirtualcam", "raise ImportError(\"No module named 'pyvirtualcam'\")\n")
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")}
    env.update(PATH=str(empty_bin), PYTHONPATH=os.pathsep.join([str(shadow), str(ROOT)]))
    proc = subprocess.Popen([sys.executable, "-m", "livegen", "--log-file", str(tmp_path / "log"), "play",
                             str(patch), "--no-window", "--record", "show.mp4", "--virtual-camera"],
                            env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        lines = _wait_for_line(proc, r"playing", 60)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "".join(lines) + proc.stderr.read()
    assert proc.returncode == 0, text
    assert len(re.findall(r"no ffmpeg", text)) == 1, text
    assert len(re.findall(r"recording off: no ffmpeg with libx264 found \(pip install imageio-ffmpeg, "
                          r"or apt-get install ffmpeg\); the show plays on", text)) == 1, text
    assert len(re.findall(r"pyvirtualcam", text)) == 1, text
    assert "virtual camera off: pyvirtualcam is not installed (pip install 'livegen[camera-out]')" in text
    assert len(re.findall(r"Syphon output is not built into livegen", text)) == 1, text
    assert "stopped" in text
    assert not list(tmp_path.glob("show.mp4*")), "a recording file appeared without ffmpeg"


def test_virtual_camera_without_a_loopback_device_is_one_line(sdl_dummy, tmp_path, caplog):
    """pyvirtualcam installed, but no v4l2loopback device (none can be loaded here)."""
    import logging

    pytest.importorskip("pyvirtualcam", reason="pyvirtualcam not installed (pip install 'livegen[camera-out]')")
    if any(Path("/sys/devices/virtual/video4linux").glob("video*")):
        pytest.skip("a v4l2loopback device exists here: the camera would open")
    from livegen.patch.loader import load_patch
    from livegen.play import LiveRig, RigOptions

    caplog.set_level(logging.INFO, logger="livegen")
    patch_file = tmp_path / "show.toml"
    patch_file.write_text(PATCH.format(port=free_port(), extra="virtual_camera = true"))

    async def main():
        rig = LiveRig(load_patch(patch_file), RigOptions(window=False, audio=False, seed=1, watch_patch=False))
        await rig.start()
        try:
            assert await until(lambda: rig.frames > 10, 10.0)  # the show goes on, headless
        finally:
            await rig.close()
        return rig

    rig = asyncio.run(main())
    camera_lines = [m for m in rig.missing if "virtual camera" in m]
    assert len(camera_lines) == 1 and "v4l2loopback" in camera_lines[0], rig.missing
    assert rig.frame_shares == []


def _listening_ports() -> set[int]:
    """TCP ports this process listens on (from /proc)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[3] == "0A" and cols[9] in inodes:  # LISTEN
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def test_ndi_share_sends_the_shows_frames(tmp_path):
    """``share = "ndi"``: an NDI receiver in this test, connected over loopback (NDI's
    discovery needs mDNS, which this machine lacks), gets frames the pipeline drew."""
    ndi = pytest.importorskip("NDIlib", reason="ndi-python not installed (pip install 'livegen[ndi]')")
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux's /proc to find the NDI source's port")
    from livegen.patch.loader import load_patch
    from livegen.play import LiveRig, RigOptions

    patch_file = tmp_path / "show.toml"
    patch_file.write_text(PATCH.format(port=free_port(), extra='share = "ndi"'))
    drawn: list[np.ndarray] = []

    async def main():
        before = _listening_ports()
        rig = LiveRig(load_patch(patch_file), RigOptions(window=False, audio=False, seed=1, watch_patch=False))
        await rig.start()
        try:
            assert rig.frame_shares, rig.missing
            sender = rig.frame_shares[0]
            real_frame = rig.pipeline.frame

            def frame(t, params):
                out = real_frame(t, params)
                drawn.append(out.copy())
                return out

            rig.pipeline.frame = frame
            received = None
            for port in sorted(_listening_ports() - before):
                source = ndi.Source()
                source.ndi_name, source.url_address = sender.source, f"127.0.0.1:{port}"
                create = ndi.RecvCreateV3()
                create.color_format = ndi.RECV_COLOR_FORMAT_RGBX_RGBA
                recv = ndi.recv_create_v3(create)
                ndi.recv_connect(recv, source)
                deadline = time.monotonic() + 3.0
                while received is None and time.monotonic() < deadline:
                    kind, video, _, _ = await asyncio.to_thread(ndi.recv_capture_v2, recv, 100)
                    if kind == ndi.FRAME_TYPE_VIDEO:
                        if _lit(video.data[..., :3]) > 30:  # wait for notes on the picture
                            received = np.array(video.data[..., :3])
                        ndi.recv_free_video_v2(recv, video)
                connections = sender.connections()
                ndi.recv_destroy(recv)
                if received is not None:
                    break
            sent = sender.sent
        finally:
            await rig.close()
        return received, connections, sent

    received, connections, sent = asyncio.run(main())
    assert received is not None, "no frame came through NDI"
    assert received.shape == (120, 160, 3) and connections >= 1 and sent > 0
    assert _psnr(np.stack(drawn), received).max() > 28  # one of the frames drawn (NDI compresses)


@pytest.mark.xvfb
def test_livegen_play_record_in_a_real_window_records_the_styled_frames(xvfb_display, tmp_path):
    """``livegen play --record`` under Xvfb with a style network that paints everything
    green: the video holds the styled frames as shown, under its final name only."""
    _need_ffmpeg()
    from style_models import solid_colour

    model = solid_colour(tmp_path / "green.pt")
    port = free_port()
    patch = tmp_path / "show.toml"
    patch.write_text(PATCH.format(port=port, extra=f'style = true\nstyle_worker = "thread"\nstyle_model = "{model}"'))
    env = dict(os.environ, DISPLAY=xvfb_display, SDL_VIDEODRIVER="x11", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "livegen", "--log-file", str(tmp_path / "log"), "play", str(patch),
                             "--record", "out/{time}.mkv"],
                            env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        lines = _wait_for_line(proc, r"playing", 120)
        started = time.monotonic()
        time.sleep(2.0)
        SimpleUDPClient("127.0.0.1", port).send_message("/livegen/quit", [])
        quit_sent = time.monotonic()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "".join(lines) + proc.stderr.read()
    assert proc.returncode == 0, text
    m = re.search(r"recorded (\S+): ([\d.]+) s, (\d+) frames at 30 fps \(started [\d:.]+\), (\d+) frames dropped", text)
    assert m, text
    path, frames = Path(m.group(1)), int(m.group(3))
    assert path.parent == tmp_path / "out" and path.suffix == ".mkv"
    assert [p.name for p in (tmp_path / "out").iterdir()] == [path.name]  # no .part left
    n, secs = _probe(path)
    assert n == frames and abs(secs - n / FPS) < 0.05
    # From about the "playing" line to the quit (the first frame comes just after it).
    assert (quit_sent - started) * FPS - 6 <= n <= (quit_sent - started) * FPS + 15, n
    video = _decode(path)
    green = (video[..., 1] > 200) & (video[..., 0] < 60) & (video[..., 2] < 60)
    assert green.mean(axis=(1, 2))[-10:].min() > 0.9, "the recorded frames are not the styled ones"


def test_record_settings_are_checked_with_the_line(tmp_path):
    from livegen.cli import main
    from livegen.patch.loader import PatchError, load_patch

    bad = tmp_path / "bad.toml"
    bad.write_text(PATCH.format(port=9000, extra='record = "show.avi"'))
    with pytest.raises(PatchError) as e:
        load_patch(bad)
    assert "visuals.record" in str(e.value) and ".mp4" in str(e.value) and f"{bad}:" in str(e.value)
    bad.write_text(PATCH.format(port=9000, extra='share = "obs"'))
    with pytest.raises(PatchError) as e:
        load_patch(bad)
    assert "visuals.share" in str(e.value) and "ndi" in str(e.value)
    good = tmp_path / "good.toml"
    good.write_text(PATCH.format(port=9000, extra='record = "takes/{time}.mov"\nrecord_hud = true\nshare = "ndi"'))
    v = load_patch(good).visuals
    assert (v.record, v.record_hud, v.share, v.virtual_camera) == ("takes/{time}.mov", True, "ndi", False)
    assert main(["play", str(good), "--record", "show.gif"]) != 0  # refused before any device opens
