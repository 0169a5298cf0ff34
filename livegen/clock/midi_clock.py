"""MIDI clock in (follow a drum machine or DAW) and out (be followed).

In: 24 ticks per quarter note arrive with the jitter of USB, JACK periods and thread
wake-ups (a few milliseconds per tick), so the tempo is a least-squares fit of tick times
over a sliding window, not the last interval. A tick that lands more than a quarter of a tick (or
four times the recent scatter) away from the fitted line is left out of the fit; three such
ticks in a row mean the tempo really changed (or the clock paused), and the fit restarts
from them, so a tempo change is followed within a beat or two instead of being averaged away.

Out: the ticks for a window of beats are computed ahead, from the performance clock's
beat-to-time map, and scheduled like notes.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Callable

from livegen.control.midi_in import ClockInput
from livegen.events import ClockTick, Transport

PPQN = 24
MIN_BPM, MAX_BPM = 20.0, 300.0
_GAP = 0.5  # seconds without a tick after which the fit starts over (below 5 BPM)


class ClockFollower:
    """Tempo and song position from incoming MIDI clock and transport messages.

    ``feed(event, t)`` with the arrival time of each ``ClockInput``. ``bpm`` is None until
    ``min_ticks`` ticks have been fitted; ``position(t)`` is the song position in beats.
    ``on_transport(state, t)`` (if set) hears start / stop / continue.
    """

    def __init__(self, smoothing_ticks: int = 24, min_ticks: int = 12) -> None:
        self.smoothing_ticks = max(4, int(smoothing_ticks))
        self.min_ticks = max(3, min(int(min_ticks), self.smoothing_ticks))
        self.on_transport: Callable[[str, float], None] | None = None
        self.running = False
        self.ticks = 0  # every tick received
        self.rejected = 0  # ticks left out of the tempo fit
        self._fit: deque[tuple[int, float]] = deque(maxlen=self.smoothing_ticks)
        self._outliers: list[tuple[int, float]] = []
        self._line: tuple[float, float, float] | None = None  # intercept, seconds per tick, rms
        self._last_t: float | None = None
        self._bpm: float | None = None
        self._next_pos = 0  # song position (in ticks) of the next tick while running
        self._last_tick: tuple[int, float] | None = None  # (position in ticks, time)

    # -- input ------------------------------------------------------------------------
    def feed(self, ev: ClockInput, t: float) -> None:
        """Take one clock/transport message that arrived at ``t`` (seconds, monotonic)."""
        kind = ev.kind
        if kind == "tick":
            self._tempo_tick(t)
            if self.running:
                self._last_tick = (self._next_pos, t)
                self._next_pos += 1
        elif kind == "start":
            self._next_pos, self._last_tick, self.running = 0, None, True
            self._notify("start", t)
        elif kind == "continue":
            self._last_tick, self.running = None, True
            self._notify("continue", t)
        elif kind == "stop":
            self._last_tick, self.running = None, False
            self._notify("stop", t)
        elif kind == "songpos":
            self._next_pos = max(0, int(ev.value)) * (PPQN // 4)  # value in 16th notes
            self._last_tick = None

    def _notify(self, state: str, t: float) -> None:
        if self.on_transport is not None:
            self.on_transport(state, t)

    # -- tempo ------------------------------------------------------------------------
    def _tempo_tick(self, t: float) -> None:
        n = self.ticks
        self.ticks += 1
        last, self._last_t = self._last_t, t
        spt = self._line[1] if self._line else None
        if last is not None and t - last > max(_GAP, 4 * spt if spt else 0.0):
            self._restart([])  # the clock paused: old ticks say nothing about the new tempo
        if self._line is not None and len(self._fit) >= 3:
            a, b, rms = self._line
            if abs(t - (a + b * n)) > max(0.25 * b, 4 * rms):
                self.rejected += 1
                self._outliers.append((n, t))
                if len(self._outliers) >= 3:
                    self._restart(self._outliers)
                return
        self._outliers.clear()
        self._fit.append((n, t))
        self._refit()

    def _restart(self, points: list[tuple[int, float]]) -> None:
        self._fit.clear()
        self._fit.extend(points)
        self._outliers = []
        self._line = None
        self._refit()

    def _refit(self) -> None:
        k = len(self._fit)
        if k < 2:
            self._line = None
            return
        xs = [p[0] for p in self._fit]
        ys = [p[1] for p in self._fit]
        mx = sum(xs) / k
        my = sum(ys) / k
        sxx = sum((x - mx) ** 2 for x in xs)
        sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
        b = sxy / sxx
        if not b > 0:
            self._line = None
            return
        a = my - b * mx
        rms = math.sqrt(sum((y - (a + b * x)) ** 2 for x, y in zip(xs, ys)) / k)
        self._line = (a, b, rms)
        if k >= self.min_ticks:
            self._bpm = min(MAX_BPM, max(MIN_BPM, 60.0 / (PPQN * b)))

    @property
    def bpm(self) -> float | None:
        """The fitted tempo; the last good value while re-converging; None before any."""
        return self._bpm

    # -- position ---------------------------------------------------------------------
    def position(self, t: float) -> float:
        """Song position in beats at ``t``, from the last tick and the fitted tempo.

        It never runs past the next tick (a stalled clock freezes the position rather than
        letting it run away); times before the last tick extrapolate backwards.
        """
        if not self.running or self._last_tick is None or self._bpm is None:
            return self._next_pos / PPQN
        pos, tt = self._last_tick
        ticks = (t - tt) * self._bpm * PPQN / 60.0
        return max(0.0, pos + min(1.0, ticks)) / PPQN


# -- clock out ---------------------------------------------------------------------------


def _tick_index(beat: float) -> int:
    # The first tick at or after ``beat``; the tolerance makes window edges agree exactly.
    return math.ceil(beat * PPQN - 1e-6)


def tick_times(start_beat: float, end_beat: float, time_at: Callable[[float], float]) -> list[float]:
    """Times of every 1/24-beat tick in [start_beat, end_beat), through the tempo map ``time_at``.

    Consecutive windows [a, b), [b, c) give each tick exactly once.
    """
    return [time_at(k / PPQN) for k in range(_tick_index(start_beat), _tick_index(end_beat))]


class ClockSender:
    """MIDI clock out: transport events and ticks, window by window, for the dispatcher."""

    def __init__(self) -> None:
        self.next_beat: float | None = None  # beat of the next tick to send; None = stopped

    def start(self, t: float, beat: float = 0.0) -> Transport:
        """Start (at beat 0) or continue (elsewhere, from the next 16th note) at time ``t``."""
        if beat <= 1e-9:
            self.next_beat = 0.0
            return Transport(t, "start")
        sixteenth = math.ceil(beat * 4 - 1e-6)  # followers resume on a 16th-note boundary
        self.next_beat = sixteenth / 4
        return Transport(t, "continue", song_position=sixteenth)

    def stop(self, t: float) -> Transport:
        self.next_beat = None
        return Transport(t, "stop")

    def ticks(self, end_beat: float, time_at: Callable[[float], float]) -> list[ClockTick]:
        """The ticks from where the last window ended up to ``end_beat``."""
        if self.next_beat is None or end_beat <= self.next_beat:
            return []
        out = [ClockTick(x) for x in tick_times(self.next_beat, end_beat, time_at)]
        self.next_beat = end_beat
        return out
