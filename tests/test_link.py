"""Ableton Link: the clock follows the session, local tempo changes reach it, and two real
livegen processes share tempo and downbeats (figures: ``livegen bench link``)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from livegen.clock.link import LinkSync, LinkUnavailable, open_link
from livegen.clock.tempo import Clock


class FakeLink:
    """aalink's attributes on a timeline we control."""

    def __init__(self, bpm: float) -> None:
        self.tempo = bpm
        self.num_peers = 0
        self.quantum = 4.0
        self.enabled = True
        self.t = 100.0
        self.anchor_t, self.anchor_beat = 100.0, 0.0

    @property
    def beat(self) -> float:
        return self.anchor_beat + (self.t - self.anchor_t) * self.tempo / 60.0

    def set_tempo_at(self, bpm: float) -> None:  # another peer changes the tempo
        self.anchor_beat, self.anchor_t = self.beat, self.t
        self.tempo = bpm


def make(bpm: float = 120.0):
    link = FakeLink(bpm)
    clock = Clock(bpm=100.0, anchor_time=0.0)
    shown: list[float] = []
    sync = LinkSync(link, clock, show_tempo=shown.append, now=lambda: link.t)
    return link, clock, sync, shown


def test_clock_takes_the_sessions_beat_and_tempo() -> None:
    link, clock, sync, shown = make(120.0)
    link.t = 103.0
    sync.sync(local_bpm=120.0)
    assert clock.bpm == 120.0
    assert clock.beat_at(103.0) == pytest.approx(6.0)
    assert clock.beat_at(104.0) == pytest.approx(8.0)
    assert shown == []  # the tempo did not change


def test_a_tempo_change_by_another_peer_is_shown_and_followed() -> None:
    link, clock, sync, shown = make(120.0)
    sync.sync(120.0)
    link.t = 102.0
    link.set_tempo_at(90.0)
    link.t = 104.0
    sync.sync(local_bpm=120.0)  # the engine still shows the old tempo: not a local change
    assert shown == [90.0]
    assert link.tempo == 90.0 and clock.bpm == 90.0
    assert clock.beat_at(104.0) == pytest.approx(4.0 + 3.0)  # 2 s at 120, then 2 s at 90
    assert sync.tempo_changes_in == 1 and sync.tempo_changes_out == 0


def test_a_local_tempo_change_is_proposed_to_the_session() -> None:
    link, clock, sync, shown = make(120.0)
    sync.sync(120.0)
    sync.sync(local_bpm=140.0)  # a knob or /livegen/tempo here
    assert link.tempo == 140.0 and clock.bpm == 140.0
    assert shown == []  # our own change is not echoed back as a remote one
    sync.sync(local_bpm=140.0)
    assert sync.tempo_changes_out == 1 and sync.tempo_changes_in == 0


def test_start_beat_is_the_sessions_beat_at_that_time() -> None:
    link, clock, sync, _ = make(120.0)
    link.t = 110.0
    assert sync.start_beat(110.25) == pytest.approx(20.5)


def test_a_stopped_clock_is_not_restarted() -> None:
    link, clock, sync, _ = make(120.0)
    clock.stop(0.5)
    beat = clock.beat_at(200.0)
    link.t = 105.0
    sync.sync(120.0)
    assert not clock.running and clock.beat_at(300.0) == beat


def test_missing_aalink_is_one_line(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "aalink", None)  # import aalink raises ImportError
    with pytest.raises(LinkUnavailable) as e:
        open_link(120.0, 4)
    assert "pip install 'livegen[link]'" in str(e.value) and "\n" not in str(e.value)


def test_rig_without_aalink_plays_on_its_own_clock(monkeypatch) -> None:
    from livegen.patch.loader import load_patch
    from livegen.play import LiveRig, RigOptions

    monkeypatch.setitem(sys.modules, "aalink", None)
    patch = load_patch("patches/link.toml")

    async def run() -> list[str]:
        rig = LiveRig(patch, RigOptions(window=False, audio=False, osc_port=0, watch_patch=False, midi_inputs=[]))
        rig._open_outputs = lambda: []  # no MIDI or OSC out for this check
        try:
            engine = await rig.start()
            t = engine.now()
            await asyncio.sleep(0.6)
            assert engine.clock.running and engine.clock.beat_at(engine.now()) > engine.clock.beat_at(t)
            assert rig.link is None
            return rig.missing
        finally:
            await rig.close()

    missing = asyncio.run(run())
    assert any("aalink" in line and "own clock" in line for line in missing)


def test_two_livegen_processes_share_tempo_and_downbeats() -> None:
    pytest.importorskip("aalink", reason="aalink not installed (pip install 'livegen[link]'); .ci/run installs it")
    from livegen.bench.link import measure

    r = asyncio.run(measure(bpm=120.0, new_bpm=150.0, bars=3, discover_s=20.0))
    if "error" in r:
        pytest.skip(f"Link peers could not meet here: {r['error']}")
    # A asked for 120 bpm, B for 96: they agreed on one, then both took A's change.
    assert r["bpm"] in (120.0, 96.0)
    assert r["final_bpm"] == {"a": 150.0, "b": 150.0}
    assert r["tempo_reached_s"]["b"] is not None
    # Without Link the two downbeats would be anywhere in a bar (2 s at 120 bpm): aligned
    # means within a few ms (the figure itself comes from `livegen bench link`).
    for part in ("steady", "after_change"):
        assert r[part]["bars"] >= 2
        assert r[part]["max_abs_ms"] < 20.0
