"""Short clips of livegen's own scenes playing a random tune: training and test footage.

The style network will mostly see these scenes on stage, so they are its main content
images, and consecutive frames are the moving pairs for its temporal loss and for the
flicker figure. A clip depends only on its arguments (seeded), never on the clock.
"""

from __future__ import annotations

import numpy as np

from livegen.events import Beat, NoteOff, NoteOn
from livegen.visuals.scenes import SCENES, create_scene


def scene_clip(kind: str, width: int, height: int, seconds: float, fps: float = 30.0,
               seed: int = 0, bpm: float = 120.0, params: dict[str, float] | None = None) -> np.ndarray:
    """(frames, height, width, 3) uint8: ``kind`` scene reacting to a random melody."""
    rng = np.random.default_rng(seed)
    scene = create_scene(kind, width, height, seed=seed)
    values = {s.name: s.default for s in scene.param_specs()}
    values["visuals.hue"] = float(rng.random())  # a colour of its own per clip, unless given
    values.update(params or {})
    beat_len = 60.0 / bpm
    events = []
    t, beat = 0.0, 0
    while t < seconds + beat_len:
        events.append(Beat(t, beat, beat // 4, beat % 4, bpm))
        for _ in range(int(rng.integers(1, 4))):  # a few notes per beat
            on = t + beat_len * float(rng.choice([0.0, 0.25, 0.5, 0.75]))
            pitch = int(rng.integers(36, 96))
            vel = int(rng.integers(50, 128))
            events.append(NoteOn(on, pitch, vel, voice=str(rng.choice(["lead", "bass"]))))
            events.append(NoteOff(on + beat_len * float(rng.uniform(0.2, 1.5)), pitch))
        t += beat_len
        beat += 1
    events.sort(key=lambda e: e.time)
    n = max(1, int(round(seconds * fps)))
    frames = np.empty((n, height, width, 3), np.uint8)
    k = 0
    for i in range(n):
        ft = i / fps
        while k < len(events) and events[k].time <= ft:
            scene.on_event(events[k])
            k += 1
        frames[i] = scene.render(ft, values)
    return frames


def scene_kinds() -> list[str]:
    return sorted(SCENES)
