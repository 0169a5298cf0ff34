"""Scripted control sessions: a text file of timed OSC and MIDI input.

``livegen render --events FILE`` replays one against the virtual clock, so a rehearsal or
a bug report ("I turned this knob here and it went wrong") becomes a file that reproduces
the same performance bit for bit. One event per line::

    # seconds  kind  data
    0.0   osc   /livegen/tempo 132
    2.5   osc   /livegen/param/arp.density 0.9
    4.0   osc   /livegen/scene "chorus"
    6.0   midi  90 3C 64        # note on, middle C, velocity 100 (hex bytes)
    6.5   midi  80 3C 00
    8.0   midi  B0 4A 20        # CC 74

OSC arguments are integers, floats or (quoted) strings; MIDI data is hex bytes.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path


class ScriptError(ValueError):
    """One line: file:line: what is wrong."""


@dataclass(frozen=True)
class ScriptEvent:
    time: float
    kind: str  # "osc" | "midi"
    address: str = ""
    args: tuple = ()
    data: bytes = b""
    line: int = 0


def _osc_arg(token: str, quoted: bool) -> object:
    if quoted:
        return token
    try:
        return int(token)
    except ValueError:
        pass
    try:
        return float(token)
    except ValueError:
        return token


def parse_script(text: str, path: str = "<events>") -> list[ScriptEvent]:
    events: list[ScriptEvent] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        where = f"{path}:{lineno}"
        try:
            lexer = shlex.shlex(line, posix=True)
            lexer.whitespace_split = True
            lexer.commenters = ""
            tokens = list(lexer)
        except ValueError as e:
            raise ScriptError(f"{where}: {e}") from None
        if len(tokens) < 3:
            raise ScriptError(f"{where}: expected '<seconds> osc <address> [args]' or '<seconds> midi <hex bytes>', got {line!r}")
        try:
            t = float(tokens[0])
        except ValueError:
            raise ScriptError(f"{where}: time: expected seconds, got {tokens[0]!r}") from None
        if not t >= 0:
            raise ScriptError(f"{where}: time: expected seconds >= 0, got {tokens[0]!r}")
        kind = tokens[1].lower()
        if kind == "osc":
            address = tokens[2]
            if not address.startswith("/"):
                raise ScriptError(f"{where}: OSC address must start with '/', got {address!r}")
            quoted = _quoted_flags(line)[3:]
            args = tuple(_osc_arg(tok, q) for tok, q in zip(tokens[3:], quoted + [False] * len(tokens)))
            events.append(ScriptEvent(t, "osc", address=address, args=args, line=lineno))
        elif kind == "midi":
            try:
                data = bytes(int(tok, 16) for tok in tokens[2:])
            except ValueError:
                raise ScriptError(f"{where}: MIDI data: expected hex bytes like '90 3C 64', got {' '.join(tokens[2:])!r}") from None
            events.append(ScriptEvent(t, "midi", data=data, line=lineno))
        else:
            raise ScriptError(f"{where}: kind: expected 'osc' or 'midi', got {tokens[1]!r}")
    events.sort(key=lambda e: (e.time, e.line))
    return events


def _quoted_flags(line: str) -> list[bool]:
    """Which whitespace-separated tokens were quoted (so '"12"' stays a string)."""
    flags, i, n = [], 0, len(line)
    while i < n:
        while i < n and line[i].isspace():
            i += 1
        if i >= n:
            break
        flags.append(line[i] in "\"'")
        quote = None
        while i < n and (quote or not line[i].isspace()):
            if line[i] in "\"'":
                quote = None if quote == line[i] else (quote or line[i])
            i += 1
    return flags


def load_script(path: str | Path) -> list[ScriptEvent]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ScriptError(f"{p}: cannot read events file: {e}") from None
    return parse_script(text, str(p))
