"""scsynth out: play the performance on a SuperCollider server.

Each note starts a synth (``/s_new``) with ``freq``, ``amp`` and ``gate 1`` and is ended by
setting ``gate 0`` (``/n_set``), so the SynthDef's envelope releases it and frees the node
itself (``doneAction: 2``, as SuperCollider's ``default`` SynthDef does). Panic releases
every live node the same way rather than ``/g_freeAll``: release tails stay musical and
other clients' nodes in the group are left alone.

Node ids are ours from 2000 upward (sclang allocates from 1000, so they do not collide with
a sclang session on the same server). Notes are matched by (channel, pitch), oldest first,
so a retriggered pitch releases its notes in order.
"""

from __future__ import annotations

import threading
from collections import deque

from livegen.events import AllNotesOff, NoteOff, NoteOn, OutEvent
from livegen.outputs.osc_out import UdpSender, encode

FIRST_NODE_ID = 2000
_MAX_NODE_ID = 2**31 - 1


def midi_to_freq(pitch: float) -> float:
    """Equal temperament, A4 (MIDI 69) = 440 Hz."""
    return 440.0 * 2.0 ** ((pitch - 69) / 12.0)


class ScsynthOutput:
    """Sends notes to scsynth as synth nodes of ``synthdef`` at the head of ``group``."""

    lead = 0.0

    def __init__(self, host: str = "127.0.0.1", port: int = 57110, synthdef: str = "default",
                 group: int = 1, *, name: str = "scsynth") -> None:
        self.name = name
        self.synthdef = synthdef
        self.group = group
        self._udp = UdpSender(name, host, port)
        self._next_id = FIRST_NODE_ID
        self._live: dict[tuple[int, int], deque[int]] = {}
        self._lock = threading.Lock()  # send runs on the dispatch thread, close may not

    @property
    def errors(self) -> int:
        """Messages lost to send errors."""
        return self._udp.errors

    @property
    def live_nodes(self) -> list[int]:
        """Node ids started and not yet released, oldest first per note."""
        with self._lock:
            return [n for q in self._live.values() for n in q]

    def send(self, event: OutEvent) -> None:
        with self._lock:
            if isinstance(event, NoteOn):
                if event.velocity > 0:
                    self._note_on(event)
                else:
                    self._note_off(event.channel, event.pitch)
            elif isinstance(event, NoteOff):
                self._note_off(event.channel, event.pitch)
            elif isinstance(event, AllNotesOff):
                self._release_all()
            # ParamChanged (synth.master and the rest), beats and clock mean nothing to scsynth.

    def _alloc(self) -> int:
        node = self._next_id
        self._next_id = FIRST_NODE_ID if node >= _MAX_NODE_ID else node + 1
        return node

    def _note_on(self, ev: NoteOn) -> None:
        node = self._alloc()
        self._live.setdefault((ev.channel, ev.pitch), deque()).append(node)
        self._udp.send(encode(
            "/s_new", ("s", self.synthdef), ("i", node), ("i", 0), ("i", self.group),
            ("s", "freq"), ("f", midi_to_freq(ev.pitch)),
            ("s", "amp"), ("f", max(0.0, min(1.0, ev.velocity / 127.0))),
            ("s", "gate"), ("i", 1),
        ))

    def _note_off(self, channel: int, pitch: int) -> None:
        q = self._live.get((channel, pitch))
        if not q:
            return
        node = q.popleft()
        if not q:
            del self._live[(channel, pitch)]
        self._gate_off(node)

    def _gate_off(self, node: int) -> None:
        self._udp.send(encode("/n_set", ("i", node), ("s", "gate"), ("i", 0)))

    def _release_all(self) -> None:
        for q in self._live.values():
            for node in q:
                self._gate_off(node)
        self._live.clear()

    def close(self) -> None:
        """Release every sounding note, then close the socket."""
        with self._lock:
            self._release_all()
            self._udp.close()
