"""The performance clock: maps beats to absolute seconds and back.

Tempo changes re-anchor the map at the moment of change, so everything already scheduled
before that moment keeps its time and the beat position never jumps. Following an external
MIDI clock is a stream of gentle re-anchors (``follow``).
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_BPM, MAX_BPM = 20.0, 300.0


@dataclass
class Clock:
    bpm: float = 120.0
    beats_per_bar: int = 4
    anchor_time: float = 0.0
    anchor_beat: float = 0.0
    running: bool = True

    def beat_at(self, t: float) -> float:
        if not self.running:
            return self.anchor_beat
        return self.anchor_beat + (t - self.anchor_time) * self.bpm / 60.0

    def time_at(self, beat: float) -> float:
        return self.anchor_time + (beat - self.anchor_beat) * 60.0 / self.bpm

    def set_tempo(self, bpm: float, t: float) -> None:
        bpm = min(MAX_BPM, max(MIN_BPM, float(bpm)))
        self.anchor_beat = self.beat_at(t)
        self.anchor_time = t
        self.bpm = bpm

    def start(self, t: float, beat: float = 0.0) -> None:
        self.anchor_time, self.anchor_beat, self.running = t, beat, True

    def stop(self, t: float) -> None:
        self.anchor_beat = self.beat_at(t)
        self.anchor_time = t
        self.running = False

    def follow(self, t: float, beat: float, bpm: float, correction: float = 0.25) -> None:
        """Pull toward an external clock's position and tempo without jumping.

        ``correction`` is the share of the phase error removed now; the rest is removed on
        later calls, so jitter in the incoming clock is smoothed, not copied.
        """
        error = beat - self.beat_at(t)
        if abs(error) > 1.0 or not self.running:  # far off (a locate, a restart): jump
            self.anchor_time, self.anchor_beat, self.running = t, beat, True
            self.bpm = min(MAX_BPM, max(MIN_BPM, bpm))
            return
        self.anchor_beat = self.beat_at(t) + correction * error
        self.anchor_time = t
        self.bpm = min(MAX_BPM, max(MIN_BPM, bpm))
