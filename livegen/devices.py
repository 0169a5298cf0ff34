"""``livegen devices``: what this machine offers — MIDI ports, audio devices, displays."""

from __future__ import annotations

import os
import subprocess
import sys


def midi_lines() -> list[str]:
    from livegen.control.midi_ports import input_names, output_names

    lines = ["MIDI inputs:"]
    ins, outs = input_names(), output_names()
    lines += [f"  {n}" for n in ins] or ["  (none)"]
    lines.append("MIDI outputs:")
    lines += [f"  {n}" for n in outs] or ["  (none)"]
    return lines


def audio_lines() -> list[str]:
    lines = ["Audio devices (index, name, host API, channels in/out, default rate):"]
    try:
        import sounddevice as sd

        apis = sd.query_hostapis()
        devices = sd.query_devices()
    except Exception as e:  # PortAudio missing
        return lines + [f"  unavailable: {' '.join(str(e).split())} (install PortAudio: apt-get install libportaudio2)"]
    if not len(devices):
        return lines + ["  (none) — use --no-audio, or livegen render"]
    default_out = sd.default.device[1] if isinstance(sd.default.device, (list, tuple)) else None
    for i, d in enumerate(devices):
        mark = "*" if i == default_out else " "
        lines.append(f" {mark}{i:3d}  {d['name']}  [{apis[d['hostapi']]['name']}]  "
                     f"{d['max_input_channels']}/{d['max_output_channels']} ch  {d['default_samplerate']:.0f} Hz")
    return lines


_DISPLAY_PROBE = """
import os
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame
pygame.display.init()
print(pygame.display.get_driver())
for i, (w, h) in enumerate(pygame.display.get_desktop_sizes()):
    print(f"{i} {w} {h}")
"""


def display_lines() -> list[str]:
    lines = ["Displays:"]
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return lines + ["  (none: DISPLAY is not set) — use --no-window, or livegen render"]
    # In a child process: a broken display connection must not take this process down.
    try:
        out = subprocess.run([sys.executable, "-c", _DISPLAY_PROBE], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return lines + ["  (display did not answer)"]
    if out.returncode != 0:
        err = (out.stderr.strip().splitlines() or ["unknown error"])[-1]
        return lines + [f"  unavailable: {err}"]
    rows = out.stdout.split("\n")
    driver, sizes = rows[0], [r.split() for r in rows[1:] if r.strip()]
    return lines + [f"  {i}: {w}x{h} ({driver})" for i, w, h in sizes] or lines + ["  (none)"]


def list_devices() -> str:
    return "\n".join(midi_lines() + [""] + audio_lines() + [""] + display_lines())
