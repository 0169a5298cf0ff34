"""MIDI clock: following an external clock (synthetic and over JACK) and sending one."""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time

import mido
import pytest

from livegen.clock.midi_clock import ClockFollower, ClockSender, tick_times
from livegen.control.midi_in import ClockInput, MidiDecoder, MidiInput
from livegen.events import ClockTick, Transport

TICK = ClockInput("tick")


def feed_ticks(f: ClockFollower, t: float, bpm: float, n: int, rng: random.Random, jitter: float = 1e-3) -> float:
    """``n`` ticks at ``bpm`` from ``t`` with ±``jitter`` s on each; returns the next tick's ideal time."""
    spt = 60.0 / bpm / 24
    for _ in range(n):
        f.feed(TICK, t + rng.uniform(-jitter, jitter))
        t += spt
    return t


@pytest.mark.parametrize("seed", range(10))
def test_tempo_from_jittery_ticks(seed):
    f = ClockFollower()
    rng = random.Random(seed)
    t = feed_ticks(f, 100.0, 120, 5, rng)
    assert f.bpm is None  # not enough ticks yet
    feed_ticks(f, t, 120, 91, rng)
    assert f.bpm == pytest.approx(120, abs=0.5)
    assert f.rejected == 0  # ±1 ms jitter is not an outlier


@pytest.mark.parametrize("seed", range(10))
def test_tempo_change_reconverges_within_two_beats(seed):
    f = ClockFollower()
    rng = random.Random(seed)
    t = feed_ticks(f, 0.0, 120, 96, rng)
    assert f.bpm == pytest.approx(120, abs=0.5)
    t = feed_ticks(f, t, 140, 48, rng)  # two beats at the new tempo
    assert f.bpm == pytest.approx(140, abs=1.0)
    feed_ticks(f, t, 140, 48, rng)
    assert f.bpm == pytest.approx(140, abs=0.5)


def test_outliers_and_gaps():
    f = ClockFollower()
    rng = random.Random(1)
    t = feed_ticks(f, 0.0, 120, 90, rng)
    f.feed(TICK, t + 0.009)  # one tick badly late (a stalled thread)
    t = feed_ticks(f, t + 60 / 120 / 24, 120, 3, rng)
    assert f.rejected == 1
    assert f.bpm == pytest.approx(120, abs=0.5)
    # The clock pauses for two seconds and comes back at another tempo.
    t = feed_ticks(f, t + 2.0, 90, 48, rng)
    assert f.bpm == pytest.approx(90, abs=0.5)


def test_transport_and_song_position():
    f = ClockFollower()
    heard: list[tuple[str, float]] = []
    f.on_transport = lambda state, t: heard.append((state, t))
    spt = 60 / 120 / 24
    assert not f.running and f.position(0.0) == 0.0
    # The clock runs before start: tempo is known, position does not move.
    t = 0.0
    for _ in range(24):
        f.feed(TICK, t)
        t += spt
    assert f.bpm == pytest.approx(120) and f.position(t) == 0.0
    f.feed(ClockInput("start"), t)
    assert f.running and f.position(t) == 0.0
    ticks = []
    for i in range(48):
        ticks.append(t)
        f.feed(TICK, t)  # the first tick after Start is beat 0
        assert f.position(t) == pytest.approx(i / 24)
        t += spt
    assert f.position(ticks[47]) == pytest.approx(47 / 24)
    assert f.position(ticks[24]) == pytest.approx(1.0)  # earlier times extrapolate back
    assert f.position(ticks[47] + spt / 2) == pytest.approx(47.5 / 24)  # interpolated
    assert f.position(ticks[47] + 1.0) == pytest.approx(2.0)  # never runs past the next tick
    f.feed(ClockInput("stop"), t)
    assert not f.running and f.position(t + 5) == pytest.approx(2.0)
    f.feed(TICK, t)  # ticks while stopped keep the tempo, not the position
    assert f.position(t + 5) == pytest.approx(2.0)
    f.feed(ClockInput("songpos", 32), t)  # 32 sixteenths = beat 8
    assert f.position(t) == 8.0
    f.feed(ClockInput("continue"), t + 0.01)
    f.feed(TICK, t + 0.02)
    assert f.position(t + 0.02) == 8.0
    f.feed(TICK, t + 0.02 + spt)
    assert f.position(t + 0.02 + spt) == pytest.approx(8 + 1 / 24)
    assert [s for s, _ in heard] == ["start", "stop", "continue"]
    assert heard[-1][1] == t + 0.01


def test_tick_times_spacing_and_windows():
    def time_at(beat: float) -> float:  # 120 BPM for 4 beats, then 60 BPM
        return 10.0 + (beat * 0.5 if beat <= 4 else 2.0 + (beat - 4) * 1.0)

    ts = tick_times(0.0, 1.0, time_at)
    assert len(ts) == 24 and ts[0] == 10.0
    assert all(b - a == pytest.approx(0.5 / 24) for a, b in zip(ts, ts[1:]))
    slow = tick_times(4.0, 5.0, time_at)
    assert all(b - a == pytest.approx(1.0 / 24) for a, b in zip(slow, slow[1:]))
    # Windows that split at arbitrary beats give every tick exactly once.
    edges = [0.0, 0.3, 1 / 3, 1.0, 1.0 + 1 / 24, 2.71, 6.0]
    joined = [x for a, b in zip(edges, edges[1:]) for x in tick_times(a, b, time_at)]
    assert joined == tick_times(0.0, 6.0, time_at) and len(joined) == 144
    assert tick_times(1.0, 1.0, time_at) == []


def test_clock_sender_windows():
    def time_at(beat: float) -> float:
        return beat * 0.5

    s = ClockSender()
    assert s.ticks(1.0, time_at) == []  # stopped
    assert s.start(0.0) == Transport(0.0, "start")
    got = s.ticks(0.5, time_at) + s.ticks(1.0, time_at)
    assert got == [ClockTick(time_at(k / 24)) for k in range(24)]
    assert s.stop(0.6) == Transport(0.6, "stop") and s.ticks(2.0, time_at) == []
    assert s.start(1.0, beat=2.1) == Transport(1.0, "continue", song_position=9)  # next 16th: beat 2.25
    assert s.ticks(2.5, time_at)[0] == ClockTick(time_at(2.25))


def test_follow_clock_over_jack(jack_midi):
    """A drum machine at 100 BPM on a JACK MIDI port; we follow it through MidiInput."""
    follower = ClockFollower()
    bpm = 100.0
    spt = 60.0 / bpm / 24
    stop = threading.Event()

    def drum_machine(port):
        t0 = time.monotonic() + 0.05
        port.send(mido.Message("start"))
        k = 0
        while not stop.is_set() and k < 60:  # 60 ticks = 2.5 beats = 1.5 s
            deadline = t0 + k * spt
            delay = deadline - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            port.send(mido.Message("clock"))
            k += 1

    async def main():
        loop = asyncio.get_running_loop()
        client = f"fakeclock{os.getpid()}"
        port = jack_midi.open_output("test clock", virtual=True, client_name=client)
        mi = MidiInput([f"{client}:test clock"], lambda ev, t, name: follower.feed(ev, t)
                       if isinstance(ev, ClockInput) else None, loop, MidiDecoder())
        thread = threading.Thread(target=drum_machine, args=(port,), daemon=True)
        try:
            assert mi.ports, "could not connect to the fake drum machine"
            thread.start()
            await asyncio.to_thread(thread.join, 5.0)
            for _ in range(100):  # the last ticks cross JACK and the poll thread
                if follower.ticks >= 60:
                    break
                await asyncio.sleep(0.01)
        finally:
            stop.set()
            mi.close()
            port.close()

    asyncio.run(main())
    assert follower.ticks == 60
    assert follower.running
    assert follower.bpm == pytest.approx(bpm, abs=1.0)
    assert follower.position(time.monotonic()) == pytest.approx(60 / 24)
