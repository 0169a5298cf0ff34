"""The visuals as an engine output: events in from the dispatch thread, frames out on main.

The dispatch thread must never wait on drawing, so ``send`` only appends to a bounded
deque (append and popleft are atomic in CPython: no lock). The main thread, which owns
the window, calls ``drain`` once per frame to hand the queued events to the scene and
then renders. If the main thread stalls, the oldest events are dropped, not the newest.
"""

from __future__ import annotations

import collections
from typing import Mapping

import numpy as np

from livegen.events import Beat, ClockTick, OutEvent, ParamChanged, Transport
from livegen.visuals.scenes import Scene


class VisualsOutput:
    """An ``Output`` that feeds a scene; see the module docstring for the threading."""

    name = "visuals"
    lead = 0.0  # events take effect at the next frame drawn after they arrive

    def __init__(self, scene: Scene, maxlen: int = 4096) -> None:
        self.scene = scene
        self._queue: collections.deque[OutEvent] = collections.deque(maxlen=maxlen)
        self._maxlen = maxlen
        self._closed = False
        self.dropped = 0  # events pushed out of a full queue (approximate: not locked)
        self.received = 0
        self.bar: int | None = None  # the bar of the last beat drained (style changes can wait for it)
        self.bpm: float | None = None
        self.beat_in_bar = 0
        # The scene's own parameters, kept current from ParamChanged events, so a render
        # without a parameter store (``livegen render``, tests) still follows the patch.
        self.params: dict[str, float] = {s.name: s.default for s in scene.param_specs()}
        self._specs = {s.name: s for s in scene.param_specs()}

    def send(self, event: OutEvent) -> None:
        """Queue an event (dispatch thread; never blocks). Clock ticks are not wanted."""
        if self._closed or isinstance(event, (ClockTick, Transport)):
            return
        if len(self._queue) >= self._maxlen:
            self.dropped += 1
        self._queue.append(event)
        self.received += 1

    def drain(self) -> int:
        """Feed queued events to the scene (main thread); returns how many."""
        n = 0
        queue = self._queue
        while True:
            try:
                event = queue.popleft()
            except IndexError:
                return n
            n += 1
            if isinstance(event, ParamChanged):
                spec = self._specs.get(event.name)
                if spec is not None:
                    self.params[event.name] = spec.clamp(event.value)
            elif isinstance(event, Beat):
                self.bar, self.beat_in_bar, self.bpm = event.bar, event.beat_in_bar, event.bpm
            self.scene.on_event(event)

    def render(self, t: float, params: Mapping[str, float] | None = None) -> np.ndarray:
        """Drain, then draw the frame for ``t`` with ``params`` (default: ``self.params``)."""
        self.drain()
        return self.scene.render(t, self.params if params is None else params)

    def pending(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        """Stop accepting events and forget queued ones (the window is closed elsewhere)."""
        self._closed = True
        self._queue.clear()
