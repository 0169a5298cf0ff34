"""The OSC address table: every built-in address livegen answers to, in one place.

The OSC server dispatches from this table (it refuses to start if an entry has no
handler) and the docs are generated from it with :func:`markdown_table`, so the two cannot
drift apart. ``<name>`` in a pattern stands for one path segment (a parameter name such as
``synth.cutoff``).

Type tags: ``f`` accepts OSC ints (``i``, ``h``) and doubles too, because TouchDesigner and
Max send ints for whole numbers; ``i`` accepts floats holding whole numbers (Pure Data and
TouchDesigner send everything as floats); ``s`` accepts ``S`` (symbol).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "/livegen"


@dataclass(frozen=True)
class OscAddress:
    """One address: its pattern, the OSC type tags it takes, what it does, what it replies."""

    pattern: str
    args: str
    doc: str
    reply: str = ""


ADDRESSES: tuple[OscAddress, ...] = (
    OscAddress(f"{PREFIX}/param/<name>", "f",
               "Set parameter <name> to a value in its own units (clamped to its range)."),
    OscAddress(f"{PREFIX}/param/<name>/unit", "f",
               "Set parameter <name> from 0..1 over its range (a fader or knob)."),
    OscAddress(f"{PREFIX}/tempo", "f", "Set the tempo in beats per minute."),
    OscAddress(f"{PREFIX}/note", "ii",
               "Play a note: pitch 0..127, velocity 0..127; velocity 0 releases it."),
    OscAddress(f"{PREFIX}/scene", "s", "Switch to the named scene of the patch."),
    OscAddress(f"{PREFIX}/trigger", "s",
               "Fire an action: mutate, answer, tap, start, stop, panic, scene:<name>, learn:<param>."),
    OscAddress(f"{PREFIX}/panic", "",
               "All notes off on every output now (for a button sending 1/0, declare a Trigger in the patch)."),
    OscAddress(f"{PREFIX}/quit", "", "End the performance cleanly."),
    OscAddress(f"{PREFIX}/screenshot", "",
               "Save the window's next frame as screenshots/livegen-<time>.png (in livegen's folder)."),
    OscAddress(f"{PREFIX}/get", "s",
               "Ask for a parameter's value; replies to the sender's address and port.",
               reply=f"{PREFIX}/value sf (name, value); unknown name: {PREFIX}/error s"),
    OscAddress(f"{PREFIX}/dump", "", "Ask for every parameter's value.",
               reply=f"one {PREFIX}/value sf per parameter"),
    OscAddress(f"{PREFIX}/learn", "s",
               "Arm MIDI learn for a parameter: the next MIDI control moved drives it."),
    OscAddress(f"{PREFIX}/learn/save", "", "Save the MIDI-learned mappings into the patch."),
    OscAddress(f"{PREFIX}/ping", "", "Check that livegen is listening.", reply=f"{PREFIX}/pong"),
)

_EXACT: dict[str, OscAddress] = {a.pattern: a for a in ADDRESSES if "<" not in a.pattern}
_PATTERNS: tuple[tuple[re.Pattern[str], OscAddress], ...] = tuple(
    (re.compile("^" + re.sub(r"<[a-z]+>", "([^/]+)", re.escape(a.pattern)) + "$"), a)
    for a in ADDRESSES
    if "<" in a.pattern
)


def lookup(address: str) -> tuple[OscAddress, str | None] | None:
    """The table entry an incoming address matches, with its ``<name>`` segment (or None)."""
    entry = _EXACT.get(address)
    if entry is not None:
        return entry, None
    if address.startswith(PREFIX + "/"):
        for rx, entry in _PATTERNS:
            m = rx.match(address)
            if m:
                return entry, m.group(1)
    return None


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def markdown_table() -> str:
    """The address table as Markdown, for the docs."""
    lines = ["| address | args | reply | what it does |", "|---|---|---|---|"]
    for a in ADDRESSES:
        args = f"`{a.args}`" if a.args else "—"
        reply = _cell(a.reply) if a.reply else "—"
        lines.append(f"| `{a.pattern}` | {args} | {reply} | {_cell(a.doc)} |")
    return "\n".join(lines) + "\n"
