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

import functools
import re
from dataclasses import dataclass

from livegen.clock.tempo import MAX_BPM, MIN_BPM

PREFIX = "/livegen"

#: What each ``<placeholder>`` in a pattern stands for (docs/osc.md explains them from here).
PLACEHOLDERS: dict[str, str] = {
    "name": "one path segment: a live parameter's name, such as `synth.lead.cutoff` (see Live parameters)",
}

#: The type tags the table uses and what the server accepts for each (see ``_coerce`` in
#: livegen.control.osc_server); docs/osc.md lists them from here.
TYPE_TAGS: dict[str, str] = {
    "f": "a number: `f` (float32), also `i` and `h` (ints, as TouchDesigner and Max send whole numbers) "
         "and `d` (double); NaN and infinity are refused",
    "i": "an integer: `i` or `h`, also `f` or `d` holding a whole number (Pure Data and TouchDesigner send "
         "every number as a float); 64.5 for a pitch is refused",
    "s": "a string: `s`, also `S` (symbol)",
}


@dataclass(frozen=True)
class OscAddress:
    """One address: its pattern, the OSC type tags it takes, what it does, what it replies.

    ``arguments`` says what each argument means, with its range and units (one per tag).
    """

    pattern: str
    args: str
    doc: str
    reply: str = ""
    arguments: tuple[str, ...] = ()


ADDRESSES: tuple[OscAddress, ...] = (
    OscAddress(f"{PREFIX}/param/<name>", "f",
               "Set parameter <name> to a value in its own units (clamped to its range).",
               arguments=("value in the parameter's own units; outside its range it is clamped (one log line)",)),
    OscAddress(f"{PREFIX}/param/<name>/unit", "f",
               "Set parameter <name> from 0..1 over its range (a fader or knob).",
               arguments=("position 0..1, mapped linearly onto the parameter's range (clamped to 0..1)",)),
    OscAddress(f"{PREFIX}/tempo", "f", "Set the tempo in beats per minute.",
               arguments=(f"tempo in BPM, {MIN_BPM:g}..{MAX_BPM:g} (clamped)",)),
    OscAddress(f"{PREFIX}/note", "ii",
               "Play a note: pitch 0..127, velocity 0..127; velocity 0 releases it.",
               arguments=("pitch 0..127 (MIDI note number, 60 = middle C)",
                          "velocity 0..127; 0 releases the note (out of range: refused)")),
    OscAddress(f"{PREFIX}/scene", "s", "Switch to the named scene of the patch.",
               arguments=("scene name: a `[scenes.<name>]` of the patch",)),
    OscAddress(f"{PREFIX}/trigger", "s",
               "Fire an action: mutate, answer, tap, start, stop, panic, scene:<name>, learn:<param>.",
               arguments=("action name",)),
    OscAddress(f"{PREFIX}/panic", "",
               "All notes off on every output now (for a button sending 1/0, declare a Trigger in the patch)."),
    OscAddress(f"{PREFIX}/quit", "", "End the performance cleanly."),
    OscAddress(f"{PREFIX}/screenshot", "",
               "Save the window's next frame as screenshots/livegen-<time>.png (in livegen's folder)."),
    OscAddress(f"{PREFIX}/record", "i",
               "Start (1) or stop (0) recording the visuals to a video: the patch's [visuals] record, "
               "else recordings/livegen-<time>.mp4 (in livegen's folder).",
               arguments=("1 starts a recording (if none is running), 0 stops it and finishes the file",)),
    OscAddress(f"{PREFIX}/get", "s",
               "Ask for a parameter's value; replies to the sender's address and port.",
               reply=f"{PREFIX}/value sf (name, value); unknown name: {PREFIX}/error s",
               arguments=("parameter name",)),
    OscAddress(f"{PREFIX}/dump", "", "Ask for every parameter's value.",
               reply=f"one {PREFIX}/value sf per parameter"),
    OscAddress(f"{PREFIX}/learn", "s",
               "Arm MIDI learn for a parameter: the next MIDI control moved drives it.",
               arguments=("parameter name",)),
    OscAddress(f"{PREFIX}/learn/save", "", "Save the MIDI-learned mappings into the patch."),
    OscAddress(f"{PREFIX}/ping", "", "Check that livegen is listening.", reply=f"{PREFIX}/pong"),
    OscAddress(f"{PREFIX}/stats", "",
               "Ask for the OSC input's counters since start: datagrams received, messages applied, malformed "
               "datagrams, rejected messages, messages in future bundles scheduled, waiting and dropped, errors.",
               reply=f"{PREFIX}/stats with a name and a count (s i) per counter"),
)

_EXACT: dict[str, OscAddress] = {a.pattern: a for a in ADDRESSES if "<" not in a.pattern}
_PATTERNS: tuple[tuple[re.Pattern[str], OscAddress], ...] = tuple(
    (re.compile("^" + re.sub(r"<[a-z]+>", "([^/]+)", re.escape(a.pattern)) + "$"), a)
    for a in ADDRESSES
    if "<" in a.pattern
)


#: Replies and messages livegen sends under its prefix: an instance cannot be called so.
_SENT_NAMES = ("value", "error", "pong", "note", "beat", "clock", "transport", "echo")
_INSTANCE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


@functools.lru_cache(maxsize=1)
def reserved_instance_names() -> frozenset[str]:
    """Names an instance cannot have: the first segment of every built-in address (and of
    what livegen sends), or ``/livegen/<name>/...`` would mean two things."""
    first = {a.pattern[len(PREFIX) + 1:].split("/", 1)[0] for a in ADDRESSES}
    return frozenset(first | set(_SENT_NAMES))


def instance_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name an instance, or None if it can."""
    if not _INSTANCE_NAME.match(name):
        return f"instance name {name!r}: use 1..32 letters, digits, '-' or '_'"
    if name in reserved_instance_names():
        return f"instance name {name!r} is one of livegen's own OSC words ({PREFIX}/{name}/...)"
    return None


def split_instance(address: str) -> tuple[str | None, str]:
    """``/livegen/<instance>/tempo`` -> (``instance``, ``/livegen/tempo``) when the rest is a
    built-in address and ``<instance>`` is not one of livegen's own words; else (None, address)."""
    if not address.startswith(PREFIX + "/"):
        return None, address
    head, sep, rest = address[len(PREFIX) + 1:].partition("/")
    if not sep or head in reserved_instance_names():
        return None, address
    inner = f"{PREFIX}/{rest}"
    return (head, inner) if lookup(inner) is not None else (None, address)


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
