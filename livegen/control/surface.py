"""What remote control (OSC, MIDI triggers) may do to the engine.

The OSC server and the MIDI trigger handling talk to the engine only through this narrow
protocol, so they can be tested against a recording fake and so one list says everything a
network peer is allowed to do. The engine implements it; all methods are called on the
event-loop thread. ``source`` names who asked (``"osc:127.0.0.1:50123"``, ``"midi:nanoKONTROL"``)
for log lines and MIDI learn.
"""

from __future__ import annotations

from typing import Protocol


class ControlSurface(Protocol):
    """The engine as seen by controllers. Methods returning bool say whether it was applied."""

    def set_param(self, name: str, value: float, source: str) -> bool:
        """Set a parameter to ``value`` in its own units (clamped to its range)."""
        ...

    def set_param_unit(self, name: str, x: float, source: str) -> bool:
        """Set a parameter from a 0..1 control position over its range."""
        ...

    def get_param(self, name: str) -> float | None:
        """The parameter's current target value, or None for an unknown name."""
        ...

    def param_names(self) -> list[str]:
        """Every declared parameter, for dumps and generated docs."""
        ...

    def set_tempo(self, bpm: float, source: str) -> bool:
        """Change the performance tempo."""
        ...

    def play_note(self, pitch: int, velocity: int, source: str) -> None:
        """Play (velocity > 0) or release (velocity 0) a note by hand, through the outputs."""
        ...

    def scene(self, name: str, source: str) -> bool:
        """Switch to a named scene of the patch."""
        ...

    def trigger(self, action: str, source: str) -> bool:
        """Fire an action: ``mutate``, ``answer``, ``tap``, ``start``, ``stop``, ``panic`` ..."""
        ...

    def panic(self, source: str) -> None:
        """Silence every output now."""
        ...

    def quit(self, source: str) -> None:
        """End the performance cleanly (notes off, ports closed)."""
        ...

    def screenshot(self, source: str) -> bool:
        """Save the window's next frame; False when there is no window."""
        ...

    def learn(self, param: str, source: str) -> bool:
        """Arm MIDI learn: the next moved MIDI control is mapped to ``param``."""
        ...

    def save_learned(self, source: str) -> bool:
        """Write the mappings made by MIDI learn into the patch."""
        ...
