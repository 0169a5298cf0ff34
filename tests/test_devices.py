import subprocess
import sys


def test_devices_lists_midi_audio_and_displays(jack_server, tmp_path):
    env = {"MIDO_BACKEND": "mido.backends.rtmidi/UNIX_JACK", "PATH": "/usr/bin:/bin"}
    import os

    env = dict(os.environ, **env)
    env.pop("DISPLAY", None)
    out = subprocess.run([sys.executable, "-m", "livegen", "--log-file", str(tmp_path / "log"), "devices"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "MIDI inputs:" in text and "MIDI outputs:" in text
    assert "JACK Audio Connection Kit" in text and "2/2 ch" in text and "48000 Hz" in text
    assert "Displays:" in text and "DISPLAY is not set" in text


def test_devices_sees_a_display(xvfb_display, tmp_path):
    import os

    env = dict(os.environ, DISPLAY=xvfb_display)
    out = subprocess.run([sys.executable, "-m", "livegen", "--log-file", str(tmp_path / "log"), "devices"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert "1024x768" in out.stdout
