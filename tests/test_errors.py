"""Errors people can act on: one line each, saying what and where; details in the log file.

One real ``livegen play`` meets a dozen faults at once — a missing sound card, MIDI ports
that are not there, scsynth not running, corrupt weight files, junk and mistakes over
OSC, a bad edit of the patch while it plays — and must keep playing, say each in one line
naming the file, key, port, device or address, and put the details in the log file whose
path it printed first.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from pythonosc.udp_client import SimpleUDPClient

ROOT = Path(__file__).resolve().parent.parent

PATCH = """[patch]
name = "faults"
[audio]
device = "nosuchcard"
[midi]
inputs = ["nosuchcontroller"]
outputs = ["nosuchsynth"]
virtual_output = false
[osc]
port = {port}
[supercollider]
enabled = true
port = {sc_port}
[[generators]]
name = "rnn"
kind = "melody_rnn"
[generators.options]
model = "corrupt-melody.pt"
[[generators]]
name = "arp"
kind = "arpeggiator"
[clock]
bpm = 120
[visuals]
style = true
style_model = "corrupt-style.pt"
style_processes = 1
style_compile = false
"""


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_fault_is_one_line_saying_what_and_where(tmp_path):
    port, sc_port = _free_udp_port(), _free_udp_port()
    (tmp_path / "corrupt-melody.pt").write_bytes(os.urandom(3000))
    (tmp_path / "corrupt-style.pt").write_bytes(b"PK\x03\x04" + os.urandom(3000))
    patch = tmp_path / "faults.toml"
    patch.write_text(PATCH.format(port=port, sc_port=sc_port))
    log_file = tmp_path / "livegen.log"
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "livegen", "--log-file", str(log_file), "play", str(patch)],
                            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()

    def wait_for(pattern: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(re.search(pattern, ln) for ln in list(lines)):
                return
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(lines)}")

    try:
        wait_for(r"playing faults")
        osc = SimpleUDPClient("127.0.0.1", port)
        osc.send_message("/livegen/bogus", 1.0)
        osc.send_message("/livegen/param/nope", 1.0)
        osc.send_message("/livegen/param/tempo", "fast")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"/x\x00\x00,f\x00\x00\x01", ("127.0.0.1", port))
        wait_for(r"malformed datagram")
        time.sleep(1.1)  # the patch watcher compares modification times
        patch.write_text(PATCH.format(port=port, sc_port=sc_port).replace("bpm = 120", "bpm = 'fast'"))
        wait_for(r"keeping the running patch")
        osc.send_message("/livegen/ping", [])
        osc.send_message("/livegen/quit", [])
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(5)
    text = "".join(lines)
    assert proc.returncode == 0, text

    # The log file's path comes first: where the details are.
    assert lines[0].strip() == f"livegen: log file: {log_file}"
    expected = {
        "the audio device": r"no audio output device matching 'nosuchcard'",
        "the MIDI input": r"MIDI input.*'nosuchcontroller'|'nosuchcontroller'.*not found",
        "the MIDI output": r"MIDI out: 'nosuchsynth' unavailable",
        "scsynth": rf"scsynth at 127\.0\.0\.1:{sc_port} did not answer",
        "the style weights": rf"{re.escape(str(tmp_path / 'corrupt-style.pt'))}: not a readable style model: ",
        "the melody weights": r"corrupt-melody\.pt: not a readable melody model: not a torch file",
        "an unknown OSC address": r"OSC from .*127\.0\.0\.1:\d+: unknown address /livegen/bogus",
        "an unknown parameter": r"unknown parameter 'nope' from osc:127\.0\.0\.1:\d+",
        "a wrong OSC argument": r"/livegen/param/tempo.*127\.0\.0\.1:\d+|127\.0\.0\.1:\d+.*/livegen/param/tempo",
        "a malformed datagram": r"OSC from 127\.0\.0\.1:\d+: dropped a malformed datagram \(9 bytes\): truncated float",
        "a bad patch edit": rf"{re.escape(str(patch))}:\d+.*bpm.*keeping the running patch",
    }
    for what, pattern in expected.items():
        assert any(re.search(pattern, ln) for ln in lines), f"no line about {what} ({pattern!r}) in:\n{text}"
    assert "stopped: all notes off" in lines[-1]
    # One line per problem, all livegen's own (no library chatter, no tracebacks).
    assert "Traceback" not in text
    stray = [ln for ln in lines if not ln.startswith("livegen: ")]
    assert not stray, f"lines that are not livegen's: {stray}"
    # The details behind a one-line message are in the log file.
    detail = log_file.read_text()
    assert "torch.load(" in detail and "Traceback" in detail


def test_an_exception_escaping_the_event_loop_is_one_line_and_the_loop_goes_on(caplog):
    import asyncio
    import logging

    from livegen.play import _loop_exception

    caplog.set_level(logging.DEBUG, logger="livegen")

    async def main() -> int:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(_loop_exception)

        def broken() -> None:
            raise ZeroDivisionError("a bug in a callback")

        for _ in range(5):
            loop.call_soon(broken)
        await asyncio.sleep(0.05)
        return 42  # the loop ran on

    assert asyncio.run(main()) == 42
    shown = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(shown) == 1, [r.getMessage() for r in shown]  # five alike: one line
    assert "ZeroDivisionError: a bug in a callback" in shown[0].getMessage() and "log file" in shown[0].getMessage()
    assert any(r.levelno == logging.DEBUG and r.exc_info for r in caplog.records)  # the traceback, for the file
