"""Write MIDI-learned mappings back into the performer's patch file.

The file is the performer's own: comments, ordering and spacing must survive, so it is
edited with tomlkit (a round-trip TOML library), not regenerated. The new text is checked
with the normal loader before it replaces the file, and the replacement is atomic (a temp
file in the same directory, fsync, rename), so a crash or a watcher reading mid-write never
sees half a patch.
"""

from __future__ import annotations

import os
from typing import Any

from livegen.atomic import atomic_write_text

from livegen.control.mapping import MidiMap
from livegen.patch.loader import PatchError, _decode, parse_patch

__all__ = ["add_midi_map", "atomic_write_text"]


def _gesture(cc: object, cc14: object, pitchbend: object) -> frozenset[object]:
    """What MIDI data a mapping listens to (a 14-bit pair covers both controllers)."""
    if pitchbend is True:
        return frozenset({"pitchbend"})
    if isinstance(cc, int) and not isinstance(cc, bool):
        return frozenset({cc, cc + 32}) if cc14 is True else frozenset({cc})
    return frozenset()


def _file_channel(entry: Any) -> object:
    """The entry's channel as stored in MidiMap (0..15, None = any)."""
    ch = entry.get("channel")
    if ch is None:
        return None
    ch = getattr(ch, "unwrap", lambda: ch)()
    return ch - 1 if isinstance(ch, int) and not isinstance(ch, bool) else ch


def _unwrap(v: Any) -> Any:
    return v.unwrap() if hasattr(v, "unwrap") else v


def _same(entry: Any, m: MidiMap) -> bool:
    """Does the existing entry map the same gesture on the same channel, or the same param?"""
    if _unwrap(entry.get("param")) == m.param:
        return True
    if _file_channel(entry) != m.channel:
        return False
    old = _gesture(_unwrap(entry.get("cc")), _unwrap(entry.get("cc14", False)), _unwrap(entry.get("pitchbend", False)))
    new = _gesture(m.cc, m.cc14, m.pitchbend)
    return bool(old & new)


def _fields(m: MidiMap) -> dict[str, Any]:
    """The mapping as it is written in a patch (channels 1..16, defaults left out)."""
    out: dict[str, Any] = {"param": m.param}
    if m.pitchbend:
        out["pitchbend"] = True
    else:
        out["cc"] = m.cc
        if m.cc14:
            out["cc14"] = True
    if m.channel is not None:
        out["channel"] = m.channel + 1
    if m.min is not None:
        out["min"] = float(m.min)
    if m.max is not None:
        out["max"] = float(m.max)
    if m.curve != "linear":
        out["curve"] = m.curve
    return out


def add_midi_map(path: str | os.PathLike[str], m: MidiMap) -> None:
    """Add ``m`` to the patch's ``[[midi.map]]`` entries, replacing any for the same
    cc/channel or the same parameter, keeping the rest of the file as the user wrote it.

    Raises PatchError (and leaves the file alone) if the file or the result does not load.
    """
    import tomlkit
    from tomlkit.exceptions import TOMLKitError
    from tomlkit.items import AoT, InlineTable

    file = os.fspath(path)
    real = os.path.realpath(file)  # write through symlinks, don't replace them
    with open(real, "rb") as f:
        text = _decode(f.read(), file)
    parse_patch(text, file)  # refuse to touch a patch that is broken already
    try:
        doc = tomlkit.parse(text)
    except TOMLKitError as e:
        raise PatchError(file, getattr(e, "line", 1) or 1, "", f"TOML syntax error: {e}") from None

    fields = _fields(m)
    midi = doc.get("midi")
    if midi is None:
        doc["midi"] = tomlkit.table(is_super_table=True)
        midi = doc["midi"]
    inline = isinstance(midi, InlineTable)
    entries = midi.get("map")
    carried: list[Any] = []  # comments that introduce whatever follows the new entry
    if entries is None:
        if not inline:
            carried = _detach_trailing_comments(midi)
        midi["map"] = tomlkit.array() if inline else tomlkit.aot()
        entries = midi["map"]
    use_aot = isinstance(entries, AoT)

    matches = [i for i, e in enumerate(entries) if hasattr(e, "get") and _same(e, m)]
    if matches:
        first = entries[matches[0]]
        for k in list(first.keys()):
            if k not in fields:
                del first[k]
        for k, v in fields.items():
            first[k] = v
        for i in reversed(matches[1:]):
            del entries[i]
    else:
        if use_aot:
            if len(entries) and not carried:
                carried = _detach_trailing_comments(entries[-1])
            t = tomlkit.table()
            for k, v in fields.items():
                t[k] = v
            t.add(tomlkit.nl())
            for item in carried:
                t.add(item)
        else:
            t = tomlkit.inline_table()
            t.update(fields)
        entries.append(t)

    new_text = tomlkit.dumps(doc)
    parse_patch(new_text, file)  # the result must load; raises PatchError otherwise
    atomic_write_text(real, new_text)


def _detach_trailing_comments(table: Any) -> list[Any]:
    """Take the comment block at the end of a table's body and return its items.

    tomlkit files the comments above a header (``# OSC in ...`` then ``[osc]``) under the
    table before it; an entry appended to that table would land between the comments and
    the header they describe. Moving them to the end of the new entry keeps them with their
    header. Best effort: on an unexpected tomlkit layout nothing is moved.
    """
    from tomlkit.items import Comment, Whitespace

    try:
        body = table.value.body
        end = len(body)
        i = end
        while i > 0 and body[i - 1][0] is None and isinstance(body[i - 1][1], (Comment, Whitespace)):
            i -= 1
        while i < end and not isinstance(body[i][1], Comment):
            i += 1  # leave the blank line(s) that end the table where they are
        if i == end:
            return []
        moved = [item for _, item in body[i:]]
        del body[i:]
        return moved
    except Exception:
        return []


