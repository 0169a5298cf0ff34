"""The audio process: a real PortAudio stream on the JACK dummy server, fed over a pipe."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from livegen.events import AllNotesOff, Beat, NoteOff, NoteOn, ParamChanged
from livegen.sound.server import PANIC_FADE_FRAMES, AudioUnavailable, SynthOutput, _AudioState
from livegen.sound.synth import Synth

SR = 48000


def wait_for(predicate, timeout: float = 2.0, step: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


@pytest.fixture(scope="module")
def synth_out(jack_server):
    out = SynthOutput(device="jack", sample_rate=SR, blocksize=256)
    out.start(timeout=20.0)
    yield out
    out.close()


@pytest.mark.jack
def test_starts_on_the_jack_device(synth_out):
    info = synth_out.info
    assert "JACK" in info["hostapi"]
    assert info["device"] == "system"
    assert info["sample_rate"] == SR and info["channels"] == 2
    assert 0 < info["latency"] < 0.5
    assert synth_out.alive


@pytest.mark.jack
def test_silent_until_a_note_then_sounding(synth_out):
    synth_out.stats()  # resets the peak
    time.sleep(0.1)
    quiet = synth_out.stats()
    assert quiet["peak"] < 1e-6
    now = time.monotonic()
    synth_out.send(NoteOn(now + 0.05, 64, 110, voice="lead"))
    synth_out.send(Beat(now, 0, 0, 0, 120.0))  # not for the synth: ignored
    synth_out.send(NoteOff(now + 0.25, 64, voice="lead"))
    time.sleep(0.2)
    loud = synth_out.stats()
    assert loud["peak"] > 0.01
    assert loud["callbacks"] > quiet["callbacks"]
    assert loud["late_events"] == quiet["late_events"]  # sent 50 ms ahead: placed, not late
    assert loud["errors"] == 0
    assert loud["torch_loaded"] is False
    assert wait_for(lambda: synth_out.stats()["active_voices"] == 0, timeout=2.0)


@pytest.mark.jack
def test_params_reach_the_synth(synth_out):
    now = time.monotonic()
    synth_out.send(ParamChanged(now, "synth.master", 0.0))
    synth_out.send(ParamChanged(now, "not.a.synth.param", 1.0))  # not forwarded
    synth_out.send(NoteOn(now + 0.05, 60, 110, voice="keys"))
    try:
        time.sleep(0.3)  # the master level glides to 0 (20 ms smoothing)
        synth_out.stats()
        time.sleep(0.1)
        muted = synth_out.stats()
        assert muted["active_voices"] == 1 and muted["peak"] < 1e-5
    finally:
        synth_out.send(ParamChanged(time.monotonic(), "synth.master", 0.5))
    time.sleep(0.15)
    assert synth_out.stats()["peak"] > 0.01
    synth_out.send(NoteOff(time.monotonic(), 60))


@pytest.mark.jack
def test_all_notes_off_silences_at_once(synth_out):
    now = time.monotonic()
    for p in (48, 55, 60, 67):
        synth_out.send(NoteOn(now + 0.03, p, 120, voice="pad"))
    synth_out.send(NoteOn(now + 5.0, 72, 120, voice="pad"))  # queued: the panic drops it
    time.sleep(0.5)
    assert synth_out.stats()["peak"] > 0.01
    synth_out.send(AllNotesOff(time.monotonic() + 10.0))
    time.sleep(0.05)
    synth_out.stats()
    time.sleep(0.1)
    after = synth_out.stats()
    assert after["peak"] == 0.0
    assert after["active_voices"] == 0
    assert after["pending_events"] == 0


@pytest.mark.jack
def test_close_joins_the_process(synth_out):
    proc = synth_out.process
    assert proc.is_alive()
    synth_out.close()
    assert not proc.is_alive()
    assert proc.exitcode == 0
    synth_out.close()  # idempotent
    synth_out.send(NoteOn(time.monotonic(), 60, 100))  # ignored, no error
    assert not synth_out.alive
    with pytest.raises(AudioUnavailable):
        synth_out.stats()


@pytest.mark.jack
def test_unknown_device_is_a_clear_error(jack_server):
    out = SynthOutput(device="no-such-device-xyz")
    with pytest.raises(AudioUnavailable) as err:
        out.start(timeout=20.0)
    message = str(err.value)
    assert "no-such-device-xyz" in message and "--no-audio" in message and "\n" not in message
    assert out.process is None
    out.close()


@pytest.mark.jack
def test_audio_process_does_not_rerun_the_main_module(jack_server, tmp_path):
    """A spawned child re-imports ``__main__``; a CLI whose main imports torch would drag it
    into the audio process. Here the main leaves a file per process that runs it."""
    script = tmp_path / "main.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys
        open(os.path.join({str(tmp_path)!r}, f"ran-{{os.getpid()}}"), "w").close()
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
        from livegen.sound.server import SynthOutput
        if __name__ == "__main__":
            with SynthOutput(device="jack") as out:
                print("audio pid", out.info["pid"], "torch", out.stats()["torch_loaded"])
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert "torch False" in done.stdout, done.stdout + done.stderr
    assert len(list(tmp_path.glob("ran-*"))) == 1  # the parent only


def test_callback_places_events_at_their_sample(monkeypatch):
    """The child's timing with a fake stream clock: event time -> sample offset, late events.

    Our clock stands still during each call (a busy machine made a real one move by
    2.7 ms between the send and the callback, and the onset with it)."""
    import livegen.sound.server as server

    clock = SimpleNamespace(now=time.monotonic())
    monkeypatch.setattr(server, "time", SimpleNamespace(monotonic=lambda: clock.now, perf_counter=time.perf_counter))
    parent, child = multiprocessing.Pipe()
    state = _AudioState(child, Synth(SR), SR, 2, "test")
    frames = 512
    out = np.zeros((frames, 2), dtype=np.float32)
    status = SimpleNamespace(output_underflow=False)

    def callback() -> None:
        # The stream clock is unrelated to ours; its block reaches the DAC 10 ms after "now".
        state.callback(out, frames, SimpleNamespace(currentTime=5.0, outputBufferDacTime=5.010), status)

    now = clock.now
    parent.send(("on", now + 0.010 + 200 / SR, 60, 100, 0, "pluck"))
    parent.send(("on", now + 10.0, 62, 100, 0, "pluck"))  # far ahead: stays queued
    callback()
    onset = int(np.argmax(np.abs(out[:, 0]) > 0))
    assert onset == 200, onset  # the block reaches the DAC 10 ms from now; the note 200 samples later
    assert not out[:onset].any()
    assert len(state.heap) == 1 and state.late_events == 0

    parent.send(("on", clock.now - 1.0, 64, 100, 0, "pluck"))  # a second late
    callback()
    assert state.late_events == 1
    assert state.synth.active_voices == 2

    parent.send(("panic", now + 20.0))
    parent.send(("stats", 7))
    callback()
    reply = parent.recv()
    assert reply[0] == "stats" and reply[1] == 7
    assert reply[2]["late_events"] == 1 and reply[2]["callbacks"] == 2 and reply[2]["pending_events"] == 0
    assert reply[2]["peak"] > 0.01
    parent.close()
    callback()
    assert state.quit.is_set()  # the parent has gone: the child exits


def test_panic_silences_the_block_being_played_after_a_short_fade():
    """The callback that sees a panic plays its block faded to nothing within PANIC_FADE_FRAMES
    (the rest of that block silent) and silences the blocks rendered ahead of it."""
    parent, child = multiprocessing.Pipe()
    flag = SimpleNamespace(value=0)
    bs = 256
    state = _AudioState(child, Synth(SR), SR, 2, "test", blocksize=bs, panic_flag=flag)
    state.ring[:] = 0.5  # loud blocks rendered ahead
    state.written = 3
    out = np.zeros((bs, 2), dtype=np.float32)
    status = SimpleNamespace(output_underflow=False)
    times = SimpleNamespace(currentTime=5.0, outputBufferDacTime=5.010)
    state.callback(out, bs, times, status)
    assert np.all(out == 0.5)  # no panic: the block as rendered
    flag.value += 1
    state.callback(out, bs, times, status)
    assert out[0, 0] == pytest.approx(0.5)
    assert np.all(np.diff(out[:PANIC_FADE_FRAMES, 0]) < 0)  # a ramp down, no step
    assert not out[PANIC_FADE_FRAMES:].any()
    assert not state.ring[2 % len(state.ring)].any()  # the block rendered ahead: silent
    parent.close()


def test_callbacks_that_begin_late_are_counted():
    """The stats count callbacks that began later than their period's place on the grid."""
    parent, child = multiprocessing.Pipe()
    state = _AudioState(child, Synth(SR), SR, 2, "test", blocksize=256)
    period = 256 / SR
    state._track(10.0)
    for i in range(1, 50):  # on time, then one 2.5 ms late
        state.read = i
        state._track(10.0 + i * period + (0.0025 if i == 40 else 0.0))
    parent.send(("stats", 1))
    state._drain()
    stats = parent.recv()[2]
    assert stats["start_lag_ms"] == {">0.5": 1, ">1": 1, ">2": 1, ">3": 0}
    assert stats["max_start_lag_ms"] == pytest.approx(2.5, abs=0.05)
    parent.close()
