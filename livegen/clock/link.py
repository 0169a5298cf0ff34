"""Ableton Link: share tempo and bar phase with other apps and machines on the network.

Link (Ableton's open protocol, in Live, Bitwig, Traktor, VCV Rack, many iOS apps and other
livegen instances) keeps a shared beat timeline: every peer sees the same tempo, and with
the same *quantum* (beats per bar here) their bars start together. It needs no master and
no cables; peers find each other by multicast on the local network.

livegen joins through ``aalink`` (a maintained binding of Ableton's C++ library). It is an
optional extra because both Link and aalink are GPL-3.0 licensed:
``pip install 'livegen[link]'``.

:class:`LinkSync` makes the engine's clock follow the session: every few milliseconds it
reads the session's beat and tempo and re-anchors the engine's beat map on them (Link's
timeline is exact, so nothing is smoothed), and a tempo change made here (a knob, OSC
``/livegen/tempo``) is proposed to the session. Because every livegen takes its beat
straight from Link, the bar numbers of two instances may differ (each keeps its own count)
while their downbeats coincide.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from livegen.clock.tempo import MAX_BPM, MIN_BPM, Clock

log = logging.getLogger("livegen.link")

INSTALL_HINT = "pip install 'livegen[link]' (aalink, GPL-3.0)"


class LinkUnavailable(RuntimeError):
    """Link cannot be used here (one line: why, and what to install)."""


def open_link(bpm: float, beats_per_bar: int) -> Any:
    """An enabled ``aalink.Link`` session member at ``bpm`` with quantum ``beats_per_bar``."""
    try:
        import aalink
    except ImportError:
        raise LinkUnavailable(f"Ableton Link needs the optional aalink package: {INSTALL_HINT}") from None
    try:
        link = aalink.Link(float(bpm))
        link.quantum = float(beats_per_bar)
        link.enabled = True
    except Exception as e:  # a binding built for another platform, no network...
        raise LinkUnavailable(f"Ableton Link could not start: {' '.join(str(e).split()) or type(e).__name__}") from None
    return link


@dataclass
class LinkState:
    """The session as sampled at monotonic time ``t``."""

    t: float
    beat: float
    bpm: float
    peers: int


class LinkSync:
    """Keeps an engine :class:`Clock` on a Link session's timeline (see the module docstring).

    ``link`` is anything with aalink's ``beat``, ``tempo``, ``num_peers`` and ``quantum``
    attributes, so the logic is testable without a network. ``show_tempo`` is told the
    session's tempo when another peer changes it (the engine shows it as its tempo
    parameter without re-anchoring).
    """

    def __init__(self, link: Any, clock: Clock, show_tempo: Callable[[float], None] | None = None,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.link = link
        self.clock = clock
        self.show_tempo = show_tempo
        self.now = now
        self.bpm = float(link.tempo)   # the session tempo as last seen or proposed by us
        self.peers = int(link.num_peers)
        self.syncs = 0
        self.tempo_changes_in = 0
        self.tempo_changes_out = 0

    def sample(self) -> LinkState:
        """The session's beat and tempo now, timed to the middle of the read (tens of µs)."""
        t0 = self.now()
        beat, bpm, peers = float(self.link.beat), float(self.link.tempo), int(self.link.num_peers)
        t1 = self.now()
        return LinkState((t0 + t1) / 2.0, beat, bpm, peers)

    def propose_tempo(self, bpm: float) -> None:
        """A tempo change made here: the session (every peer) takes it."""
        bpm = min(MAX_BPM, max(MIN_BPM, float(bpm)))
        if abs(bpm - self.bpm) < 1e-6:
            return
        self.link.tempo = bpm
        self.bpm = bpm
        self.tempo_changes_out += 1

    def start_beat(self, t: float) -> float:
        """The session's beat at monotonic time ``t`` (for starting the clock on it)."""
        s = self.sample()
        return s.beat + (t - s.t) * s.bpm / 60.0

    def sync(self, local_bpm: float | None = None) -> LinkState:
        """One step: push a local tempo change, then put the clock on the session's timeline.

        ``local_bpm`` is the engine's tempo parameter now; when it differs from the tempo
        last seen in the session, someone changed it here and the session gets it.
        """
        if local_bpm is not None and abs(local_bpm - self.bpm) > 1e-6:
            self.propose_tempo(local_bpm)
        s = self.sample()
        if abs(s.bpm - self.bpm) > 1e-6:  # another peer changed the tempo
            self.bpm = s.bpm
            self.tempo_changes_in += 1
            if self.show_tempo is not None:
                self.show_tempo(s.bpm)
        if s.peers != self.peers:
            log.info("Link: %d other peer%s in the session", s.peers, "" if s.peers == 1 else "s")
            self.peers = s.peers
        if self.clock.running:
            self.clock.anchor_time, self.clock.anchor_beat = s.t, s.beat
            self.clock.bpm = min(MAX_BPM, max(MIN_BPM, s.bpm))
        self.syncs += 1
        return s

    def close(self) -> None:
        try:
            self.link.enabled = False
        except Exception:
            log.debug("disabling Link failed", exc_info=True)
