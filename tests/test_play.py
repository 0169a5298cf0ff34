"""The live rig with real parts: JACK audio and MIDI, OSC over loopback, a patch file
edited while playing, and `livegen play` in a real window under Xvfb."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.udp_client import SimpleUDPClient

ROOT = Path(__file__).resolve().parent.parent

PATCH = """
[clock]
bpm = 150
[key]
tonic = "G"
scale = "major"
[audio]
device = "JACK"
[[generators]]
name = "arp"
kind = "arpeggiator"
[generators.params]
density = 1.0
rest = 0.0
gate = 0.5
[midi]
inputs = ["test keys"]
virtual_output = true
[[midi.map]]
cc = 74
param = "arp.gate"
[osc]
port = {port}
[visuals]
enabled = false
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def until(cond, timeout=3.0, step=0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(step)
    return cond()


def test_live_rig_plays_listens_reloads_and_stops_clean(jack_midi, tmp_path):
    from livegen.control.midi_ports import open_input
    from livegen.play import LiveRig, RigOptions
    from livegen.patch.loader import load_patch

    port = free_port()
    patch_file = tmp_path / "live.toml"
    patch_file.write_text(PATCH.format(port=port))
    keys = jack_midi.open_output("test keys", virtual=True, client_name="tester")
    heard = []
    listener_holder = {}

    async def main():
        rig = LiveRig(load_patch(patch_file), RigOptions(window=False, audio=True, seed=3))
        engine = await rig.start()
        assert rig.synth is not None, rig.missing
        listener_holder["port"] = open_input("livegen out", lambda m: heard.append(m), client_name="tester-in")
        try:
            # The arpeggiator plays out of the virtual MIDI port, through JACK.
            assert await until(lambda: sum(m.type == "note_on" for m in heard) >= 8, 5.0)
            # The performer's controller: a CC mapping and a note that reaches the generators.
            keys.send(jack_midi.Message("control_change", control=74, value=127))
            keys.send(jack_midi.Message("note_on", note=50, velocity=90))
            assert await until(lambda: engine.store.get("arp.gate") == 1.0 and any(n.pitch == 50 for n in engine.recent))
            keys.send(jack_midi.Message("note_off", note=50))
            # OSC in: set a parameter, ask for it back.
            client = SimpleUDPClient("127.0.0.1", port)
            client.send_message("/livegen/param/arp.density", 0.5)
            assert await until(lambda: engine.store.get("arp.density") == 0.5)
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
            sock.sendto(_osc("/livegen/get", "arp.density"), ("127.0.0.1", port))
            reply = None
            for _ in range(200):
                try:
                    reply = OscMessage(sock.recv(1024))
                    break
                except BlockingIOError:
                    await asyncio.sleep(0.01)
            sock.close()
            assert reply is not None and reply.address == "/livegen/value" and reply.params == ["arp.density", 0.5]
            # The synth process is making sound on the JACK device.
            stats = rig.synth.stats()
            assert stats["callbacks"] > 50 and stats["peak"] > 0.001 and not stats["torch_loaded"]
            # Live reload: a good edit applies, a bad one keeps the running patch.
            patch_file.write_text(PATCH.format(port=port).replace("bpm = 150", "bpm = 96"))
            assert await until(lambda: abs(engine.clock.bpm - 96) < 1e-6, 3.0)
            patch_file.write_text(PATCH.format(port=port).replace("bpm = 150", "bpm = 'fast'"))
            await asyncio.sleep(1.0)
            assert abs(engine.clock.bpm - 96) < 1e-6
            # OSC quit ends the show.
            client.send_message("/livegen/quit", [])
            await asyncio.wait_for(rig.wait(), 3.0)
        finally:
            synth_proc = rig.synth._proc if rig.synth is not None else None
            await rig.close()
        return rig, synth_proc

    rig, synth_proc = asyncio.run(main())
    time.sleep(0.2)
    listener_holder["port"].close()
    keys.close()
    # Clean exit: synth process joined, dispatch thread gone, every note released.
    if synth_proc is not None:
        assert not synth_proc.is_alive()
    import threading

    assert not [t for t in threading.enumerate() if t.name.startswith("livegen-")]
    sounding = {}
    for m in heard:
        if m.type == "note_on" and m.velocity > 0:
            sounding[m.note] = sounding.get(m.note, 0) + 1
        elif m.type == "note_off" or (m.type == "note_on" and m.velocity == 0):
            sounding[m.note] = max(0, sounding.get(m.note, 0) - 1)
        elif m.type == "control_change" and m.control == 123:
            sounding.clear()
    assert not any(sounding.values()), sounding


def _osc(address, *args) -> bytes:
    from pythonosc.osc_message_builder import OscMessageBuilder

    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


def _wait_for_line(proc, pattern, timeout):
    """Read stderr lines until one matches; returns all lines read.

    Reads the pipe's file descriptor directly: readline() on the text wrapper pulls in
    several lines at once, and select() then reports nothing left, so lines that arrived
    together (as "OSC in" and "playing" do) were never seen."""
    import select

    fd = proc.stderr.fileno()
    buf, lines, deadline = b"", [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            lines.append(line.decode(errors="replace") + "\n")
            if re.search(pattern, lines[-1]):
                return lines
    raise AssertionError(f"no line matching {pattern!r} in {lines!r}")


def test_livegen_play_in_a_real_window(xvfb_display, jack_server, tmp_path):
    port = free_port()
    patch = tmp_path / "show.toml"
    patch.write_text(PATCH.format(port=port).replace("[visuals]\nenabled = false", "[visuals]\nenabled = true\nscale = 2")
                     .replace('inputs = ["test keys"]', "inputs = []"))
    env = dict(os.environ, DISPLAY=xvfb_display, SDL_VIDEODRIVER="x11",
               MIDO_BACKEND="mido.backends.rtmidi/UNIX_JACK")
    proc = subprocess.Popen([sys.executable, "-m", "livegen", "--log-file", str(tmp_path / "log"), "play", str(patch)],
                            env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        _wait_for_line(proc, r"playing", 60)
        time.sleep(1.5)
        shot = tmp_path / "shot.png"
        grab = subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "x11grab", "-video_size", "1024x768",
                               "-i", xvfb_display, "-frames:v", "1", str(shot)], capture_output=True, timeout=30)
        if grab.returncode != 0:
            pytest.skip(f"ffmpeg cannot grab the X screen: {grab.stderr.decode()[-200:]}")
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame

        img = pygame.surfarray.array3d(pygame.image.load(str(shot)))  # (w, h, 3)
        lit = (img.max(axis=2) > 40).sum()
        assert lit > 500, "the window shows nothing"  # ripples from the notes being played
        SimpleUDPClient("127.0.0.1", port).send_message("/livegen/quit", [])
        proc.wait(15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    assert proc.returncode == 0, err
    assert "stopped" in err


def test_play_without_display_or_audio_runs_with_what_is_there(tmp_path):
    port = free_port()
    patch = tmp_path / "bare.toml"
    patch.write_text(PATCH.format(port=port).replace('device = "JACK"', 'device = "no such card"')
                     .replace("[visuals]\nenabled = false", "[visuals]\nenabled = true")
                     .replace('inputs = ["test keys"]', "inputs = []").replace("virtual_output = true", "virtual_output = false"))
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")}
    proc = subprocess.Popen([sys.executable, "-m", "livegen", "--log-file", str(tmp_path / "log"), "play", str(patch)],
                            env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        lines = _wait_for_line(proc, r"playing", 60)
        proc.send_signal(signal.SIGINT)  # Ctrl-C: a clean stop, like /livegen/quit
        proc.wait(15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "".join(lines)
    assert "--no-window" in text and "--no-audio" in text
    assert proc.returncode == 0
    assert "stopped" in proc.stderr.read()
