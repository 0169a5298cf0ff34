"""Panic heard where it arrives, not when the event loop gets to it.

Everything else a controller sends waits its turn on the event loop, which is fine for a
fader; a panic that waits behind a busy loop misses audio periods. So the OSC receiver
thread and each MIDI port's callback ask :class:`UrgentPanic` first: when the message is
a panic it silences every output at once (``fire``, the engine's ``urgent_panic``), and the
message goes on to the loop as usual, which does the rest (drops the notes being generated,
logs the line) without silencing twice.

It recognises what the loop would call a panic: ``/livegen/panic`` (and this instance's
``/livegen/<instance>/panic``) as a plain message; a MIDI trigger whose action is
``panic`` (the note's note-on, or the CC crossing the middle upwards, per port); and CC 120
/ 123, the channel-mode messages a controller's panic button sends. A panic inside an OSC
bundle, or fired by a scene or an OSC trigger, takes the loop's path.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Sequence

from livegen.control.mapping import Trigger

log = logging.getLogger("livegen")

CHANNEL_MODE_CCS = (120, 123)  # All Sound Off, All Notes Off


class UrgentPanic:
    """Decides, on the receiving thread, whether a message is a panic, and fires it.

    ``fire(source, channel_mode)`` must be safe from any thread and return whether it
    silenced anything (a channel-mode burst fires once).
    """

    def __init__(self, fire: Callable[[str, bool], bool], triggers: Sequence[Trigger] = (),
                 instance: str = "") -> None:
        self._fire = fire
        self.osc_addresses = frozenset({"/livegen/panic"} | ({f"/livegen/{instance}/panic"} if instance else set()))
        self._lock = threading.Lock()  # MIDI ports call from threads of their own
        self._high: dict[tuple[str, int, int], bool] = {}  # (port, channel, cc) -> above the middle
        self.fired = 0
        self.set_triggers(triggers)

    def set_triggers(self, triggers: Sequence[Trigger]) -> None:
        """The patch's MIDI triggers (on load and reload); only those firing ``panic`` matter."""
        panic = [t for t in triggers if t.action == "panic" and not t.address]
        self._notes = tuple((t.note, t.channel) for t in panic if t.note is not None)
        self._ccs = tuple((t.cc, t.channel) for t in panic if t.cc is not None)

    # -- OSC ------------------------------------------------------------------------------
    def osc(self, address: str, source: str) -> bool:
        """A parsed plain OSC message's address (from an allowed sender): a panic?"""
        if address in self.osc_addresses:
            return self._go(source, False)
        return False

    # -- MIDI -----------------------------------------------------------------------------
    def midi(self, msg: Any, port: str) -> bool:
        """A mido message from ``port``, on the port's thread: a panic?"""
        kind = msg.type
        if kind == "note_on" and msg.velocity > 0:
            if any(n == msg.note and (ch is None or ch == msg.channel) for n, ch in self._notes):
                return self._go(f"MIDI {port} note {msg.note}", False)
            return False
        if kind != "control_change":
            return False
        number, channel = msg.control, msg.channel
        if number in CHANNEL_MODE_CCS:
            return self._go(f"MIDI {port} CC {number}, channel {channel + 1}", True)
        if not any(cc == number and (ch is None or ch == channel) for cc, ch in self._ccs):
            return False
        key = (port, channel, number)
        high = msg.value >= 64  # the loop's rule: a CC crossing the middle (0.5) upwards
        with self._lock:
            rising = high and not self._high.get(key, False)
            self._high[key] = high
        return rising and self._go(f"MIDI {port} CC {number}", False)

    def _go(self, source: str, channel_mode: bool) -> bool:
        try:
            fired = self._fire(source, channel_mode)
        except Exception:  # the loop's panic follows all the same
            log.debug("urgent panic from %s failed", source, exc_info=True)
            return False
        if fired:
            self.fired += 1
        return fired
