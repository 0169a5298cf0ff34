"""Shared fixtures: real servers (JACK, Xvfb) started for the test session when installed.

Tests that need a server skip with a reason when its program is missing; ``.ci/run``
installs them, so in CI they run. A server that is already running (a developer's own
jackd) is used as it is and left running.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest


def _jack_running() -> bool:
    if not shutil.which("jack_lsp"):
        return False
    try:
        return subprocess.run(["jack_lsp"], capture_output=True, timeout=5).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@pytest.fixture(scope="session")
def jack_server():
    """A JACK server on the dummy driver: 48 kHz, 256-frame periods, real time."""
    if _jack_running():
        yield "existing"
        return
    if not shutil.which("jackd"):
        pytest.skip("jackd not installed (apt-get install jackd2); .ci/run installs it")
    proc = subprocess.Popen(
        ["jackd", "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "256"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not _jack_running():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.skip("jackd did not start")
        time.sleep(0.1)
    yield "started"
    # A JACK client still open in this process when the server dies gets a dying server's
    # errors on JACK's thread, which can abort Python at exit: close ours first.
    from livegen.control.midi_ports import close_listers

    close_listers()
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def jack_midi(jack_server, monkeypatch):
    """mido on the rtmidi JACK backend, so virtual ports are real JACK MIDI ports."""
    import mido

    monkeypatch.setenv("MIDO_BACKEND", "mido.backends.rtmidi/UNIX_JACK")
    mido.set_backend("mido.backends.rtmidi/UNIX_JACK", load=True)
    yield mido
    mido.set_backend(None)


@pytest.fixture(scope="session")
def xvfb_display():
    """An Xvfb display for a real pygame window; yields the DISPLAY string."""
    if not shutil.which("Xvfb"):
        pytest.skip("Xvfb not installed (apt-get install xvfb); .ci/run installs it")
    for num in range(91, 120):
        if not os.path.exists(f"/tmp/.X11-unix/X{num}") and not os.path.exists(f"/tmp/.X{num}-lock"):
            break
    display = f":{num}"
    proc = subprocess.Popen(["Xvfb", display, "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not os.path.exists(f"/tmp/.X11-unix/X{num}"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.skip("Xvfb did not start")
        time.sleep(0.05)
    yield display
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def rnn_file(tmp_path_factory):
    """An untrained melody RNN: every token is possible, so the improviser's constraints are
    what keeps its notes in key and in register."""
    import torch

    from livegen.music.melody_rnn import MelodyRNN, MelodyRNNConfig, save_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("rnn") / "melody.pt"
    save_model(path, MelodyRNN(MelodyRNNConfig(hidden=32, layers=2, embed=16)))
    return path


@pytest.fixture(scope="session")
def ngram_file(tmp_path_factory):
    """A small n-gram model trained on tunes the test session writes."""
    from livegen.music.corpus import load_paths
    from livegen.music.ngram import NGramModel
    from melody_files import write_corpus

    folder = write_corpus(tmp_path_factory.mktemp("ng") / "tunes", 30)
    melodies, _ = load_paths([folder])
    path = folder.parent / "ngram.npz"
    NGramModel.train(melodies, order=3).save(path)
    return path
