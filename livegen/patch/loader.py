"""Load and validate patch files, with errors that point at the line to fix.

A patch is edited live, often mid-performance, so a mistake must produce one readable line
(``patches/live.toml:12: clock.bpm: expected a number in 20..300, got 500``) and never a
traceback. TOML is parsed with the standard library; a small scanner of the source text
finds the line of any key path, since tomllib does not keep positions.
"""

from __future__ import annotations

import bisect
import difflib
import ipaddress
import math
import os
import re
from collections.abc import Collection, Mapping
from typing import Any, Iterable

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from livegen.control.mapping import CURVES, MidiMap, OscMap, Trigger
from livegen.control.osc_addresses import instance_name_problem
from livegen.control.params import ParamSpec
from livegen.music.generator import generator_kinds
from livegen.music.scales import SCALES, parse_tonic
from livegen.patch.schema import (
    CLOCK_SOURCES,
    ON_CLOSE,
    OSC_SEND_KINDS,
    RECORD_SUFFIXES,
    SHARE_KINDS,
    TRIGGER_ACTIONS,
    VOICE_FIELDS,
    VOICE_RANGES,
    WAVEFORMS,
    AudioConfig,
    ClockConfig,
    GeneratorConfig,
    KeyConfig,
    MidiConfig,
    OscConfig,
    OscTarget,
    Patch,
    SuperColliderConfig,
    VisualsConfig,
)

__all__ = ["PatchError", "load_patch", "parse_patch", "check_params", "format_key_path", "locate"]

KeyPath = tuple["str | int", ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_GEN_NAME = re.compile(r"[a-z0-9_]+")
_BARE_VALUE = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d[^\s,\]}#]*|[^\s,\]}#]+")  # incl. "date time"


# ---------------------------------------------------------------------------------------
# the error
# ---------------------------------------------------------------------------------------
def _one_line(s: str) -> str:
    return " ".join(s.split("\n")).replace("\r", " ")


class PatchError(ValueError):
    """A problem in a patch file: ``str()`` is one line, ``file:line: key.path: message``."""

    def __init__(self, file: str, line: int, key: str, message: str) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.message = message
        text = f"{file}:{line}: {key}: {message}" if key else f"{file}:{line}: {message}"
        super().__init__(_one_line(text))

    def __reduce__(self):  # keep pickling working across processes
        return (PatchError, (self.file, self.line, self.key, self.message))


def _short_repr(value: object, limit: int = 60) -> str:
    r = repr(value)
    if len(r) > limit:
        r = r[: limit - 3] + "..."
    return r


def format_key_path(path: Iterable[str | int]) -> str:
    """("generators", 1, "params", "density") -> 'generators[1].params.density'."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        piece = part if _BARE_KEY.fullmatch(part) else '"' + part.replace("\\", "\\\\").replace('"', '\\"') + '"'
        out += ("." if out else "") + piece
    return out


# ---------------------------------------------------------------------------------------
# the locator: which line of the source holds a key path
# ---------------------------------------------------------------------------------------
class _Locator:
    """Scan TOML source for table headers and keys, recording the line of each key path.

    Handles [a.b] and [[a.b]] headers (array-of-tables occurrences are counted, nested
    ones per parent element), dotted and quoted keys, multi-line strings, and arrays /
    inline tables (their elements and keys get positions too). Never raises: on anything
    unexpected it keeps what it found so far.
    """

    _WS = " \t"

    def __init__(self, text: str) -> None:
        self.s = text
        self.n = len(text)
        self.i = 0
        self._starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.entries: list[tuple[KeyPath, int]] = []
        self._aot: dict[KeyPath, int] = {}
        try:
            self._document()
        except Exception:  # a locator bug must never hide the real error
            pass

    # -- queries ---------------------------------------------------------------------
    def line_of(self, path: KeyPath) -> int:
        """The line of ``path``, else of its nearest recorded ancestor, else 1."""
        best, best_len = 1, -1
        for p, line in self.entries:
            k = len(p)
            if k > best_len and k <= len(path) and tuple(path[:k]) == p:
                best, best_len = line, k
                if k == len(path):
                    break
        return best

    # -- scanning --------------------------------------------------------------------
    def _line(self, pos: int) -> int:
        return bisect.bisect_right(self._starts, pos)

    def _record(self, path: KeyPath, pos: int) -> None:
        self.entries.append((path, self._line(pos)))

    def _skip_ws(self, newlines: bool = False) -> None:
        s, n = self.s, self.n
        while self.i < n:
            c = s[self.i]
            if c in self._WS or (newlines and c in "\r\n"):
                self.i += 1
            elif newlines and c == "#":
                self._skip_comment()
            else:
                break

    def _skip_comment(self) -> None:
        j = self.s.find("\n", self.i)
        self.i = self.n if j < 0 else j

    def _skip_to_eol(self) -> None:
        j = self.s.find("\n", self.i)
        self.i = self.n if j < 0 else j + 1

    def _document(self) -> None:
        table: KeyPath = ()
        while self.i < self.n:
            self._skip_ws(newlines=True)
            if self.i >= self.n:
                break
            start = self.i
            if self.s[self.i] == "[":
                aot = self.s.startswith("[[", self.i)
                self.i += 2 if aot else 1
                self._skip_ws()
                keys = self._key()
                if keys:
                    table = self._resolve(keys, aot)
                    self._record(table, start)
                self._skip_to_eol()
                continue
            keys = self._key()
            if not keys:
                self._skip_to_eol()
                continue
            path = table + keys
            self._record(path, start)
            self._skip_ws()
            if self.i < self.n and self.s[self.i] == "=":
                self.i += 1
                self._value(path)
            self._skip_to_eol()

    def _resolve(self, keys: tuple[str, ...], aot: bool) -> KeyPath:
        path: KeyPath = ()
        for k in keys[:-1]:
            path += (k,)
            if path in self._aot:
                path += (self._aot[path] - 1,)
        path += (keys[-1],)
        if aot:
            idx = self._aot.get(path, 0)
            self._aot[path] = idx + 1
            path += (idx,)
        elif path in self._aot:
            path += (self._aot[path] - 1,)
        return path

    def _key(self) -> tuple[str, ...]:
        """A dotted key at the cursor ((), if there is none)."""
        parts: list[str] = []
        while self.i < self.n:
            self._skip_ws()
            part = self._simple_key()
            if part is None:
                break
            parts.append(part)
            self._skip_ws()
            if self.i < self.n and self.s[self.i] == ".":
                self.i += 1
                continue
            break
        return tuple(parts)

    def _simple_key(self) -> str | None:
        s, i = self.s, self.i
        if i >= self.n:
            return None
        c = s[i]
        if c == '"' or c == "'":
            end = self._string_end(i)
            raw = s[i:end]
            self.i = end
            try:
                return tomllib.loads(f"k = {raw}")["k"]
            except Exception:
                return raw.strip("\"'")
        m = _BARE_KEY.match(s, i)
        if not m:
            return None
        self.i = m.end()
        return m.group()

    def _string_end(self, i: int) -> int:
        """Index just past the string starting at ``i`` (any of the four TOML kinds)."""
        s, n = self.s, self.n
        q = s[i]
        if s.startswith(q * 3, i):
            j = i + 3
            while j < n:
                if q == '"' and s[j] == "\\":
                    j += 2
                    continue
                if s.startswith(q * 3, j):
                    j += 3
                    extra = 0
                    while j < n and s[j] == q and extra < 2:
                        j += 1
                        extra += 1
                    return j
                j += 1
            return n
        j = i + 1
        while j < n:
            c = s[j]
            if q == '"' and c == "\\":
                j += 2
                continue
            if c == q:
                return j + 1
            if c == "\n":
                return j
            j += 1
        return n

    def _value(self, path: KeyPath) -> None:
        self._skip_ws()
        if self.i >= self.n:
            return
        c = self.s[self.i]
        if c == "[":
            self.i += 1
            self._array(path)
        elif c == "{":
            self.i += 1
            self._inline_table(path)
        elif c in "\"'":
            self.i = self._string_end(self.i)
        else:
            m = _BARE_VALUE.match(self.s, self.i)
            self.i = m.end() if m else self.i + 1

    def _array(self, path: KeyPath) -> None:
        idx = 0
        while self.i < self.n:
            self._skip_ws(newlines=True)
            if self.i >= self.n:
                return
            c = self.s[self.i]
            if c == "]":
                self.i += 1
                return
            if c == ",":
                self.i += 1
                continue
            before = self.i
            self._record(path + (idx,), self.i)
            self._value(path + (idx,))
            idx += 1
            if self.i == before:
                self.i += 1

    def _inline_table(self, path: KeyPath) -> None:
        while self.i < self.n:
            self._skip_ws(newlines=True)
            if self.i >= self.n:
                return
            c = self.s[self.i]
            if c == "}":
                self.i += 1
                return
            if c == ",":
                self.i += 1
                continue
            start = self.i
            keys = self._key()
            if not keys:
                self.i += 1
                continue
            self._record(path + keys, start)
            self._skip_ws()
            if self.i < self.n and self.s[self.i] == "=":
                self.i += 1
                self._value(path + keys)


def locate(text: str, path: Iterable[str | int]) -> int:
    """The 1-based line in TOML ``text`` where ``path`` is (or its table starts); 1 if unknown."""
    return _Locator(text).line_of(tuple(path))


# ---------------------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------------------
_MISSING = object()


def _num(x: float) -> str:
    return f"{x:g}"


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Checker:
    """Type/range checks that raise PatchError located in the source."""

    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self._loc: _Locator | None = None

    def error(self, path: KeyPath, message: str) -> PatchError:
        if self._loc is None:
            self._loc = _Locator(self.text)
        return PatchError(self.file, self._loc.line_of(path), format_key_path(path), message)

    def expected(self, path: KeyPath, what: str, got: object) -> PatchError:
        return self.error(path, f"expected {what}, got {_short_repr(got)}")

    # -- containers ------------------------------------------------------------------
    def table(self, path: KeyPath, value: object, allowed: Collection[str] | None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.expected(path, "a table", value)
        if allowed is not None:
            for k in value:
                if k not in allowed:
                    raise self.error(path + (k,), f"unknown key {k!r}{_suggest(k, allowed)}")
        return value

    def section(self, doc: Mapping[str, Any], name: str, allowed: Collection[str]) -> dict[str, Any]:
        return self.table((name,), doc.get(name, {}), allowed)

    def array_of_tables(self, path: KeyPath, value: object) -> list[dict[str, Any]]:
        if value is _MISSING:
            return []
        header = "[[" + format_key_path(path) + "]]"
        if not isinstance(value, list):
            raise self.expected(path, f"an array of tables ({header})", value)
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise self.expected(path + (i,), f"a table ({header})", item)
        return value

    # -- scalars ---------------------------------------------------------------------
    def number(self, path: KeyPath, value: object, lo: float | None = None, hi: float | None = None) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.expected(path, self._range_text("a number", lo, hi), value)
        try:
            v = float(value)
        except OverflowError:
            raise self.expected(path, self._range_text("a number", lo, hi), value) from None
        if not math.isfinite(v):
            raise self.expected(path, self._range_text("a finite number", lo, hi), value)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise self.expected(path, self._range_text("a number", lo, hi), value)
        return v

    def integer(self, path: KeyPath, value: object, lo: int | None = None, hi: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.expected(path, self._range_text("an integer", lo, hi), value)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise self.expected(path, self._range_text("an integer", lo, hi), value)
        return value

    @staticmethod
    def _range_text(what: str, lo: float | None, hi: float | None) -> str:
        if lo is not None and hi is not None:
            return f"{what} in {_num(lo)}..{_num(hi)}"
        if lo is not None:
            return f"{what} >= {_num(lo)}"
        if hi is not None:
            return f"{what} <= {_num(hi)}"
        return what

    def boolean(self, path: KeyPath, value: object) -> bool:
        if not isinstance(value, bool):
            raise self.expected(path, "true or false", value)
        return value

    def string(self, path: KeyPath, value: object, nonempty: bool = False) -> str:
        if not isinstance(value, str):
            raise self.expected(path, "a non-empty string" if nonempty else "a string", value)
        if nonempty and not value.strip():
            raise self.expected(path, "a non-empty string", value)
        return value

    def choice(self, path: KeyPath, value: object, choices: Collection[str]) -> str:
        what = "one of " + ", ".join(repr(c) for c in choices)
        if not isinstance(value, str):
            raise self.expected(path, what, value)
        if value not in choices:
            raise self.expected(path, what + _suggest(value, choices), value)
        return value

    def strings(self, path: KeyPath, value: object, choices: Collection[str] | None = None) -> tuple[str, ...]:
        what = "a list of strings" if choices is None else "a list of " + ", ".join(repr(c) for c in choices)
        if not isinstance(value, list):
            raise self.expected(path, what, value)
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or (choices is not None and item not in choices):
                raise self.expected(path + (i,), "a string" if choices is None else "one of " + ", ".join(repr(c) for c in choices), item)
            out.append(item)
        return tuple(out)

    def channel(self, path: KeyPath, value: object) -> int:
        """MIDI channel as printed on hardware (1..16) -> 0..15."""
        return self.integer(path, value, 1, 16) - 1

    def port(self, path: KeyPath, value: object) -> int:
        return self.integer(path, value, 1, 65535)

    def host(self, path: KeyPath, value: object) -> str:
        v = self.string(path, value, nonempty=True)
        if any(c.isspace() for c in v):
            raise self.expected(path, "a host name or IP address", value)
        return v

    def float_table(self, path: KeyPath, value: object) -> dict[str, float]:
        t = self.table(path, value, None)
        out: dict[str, float] = {}
        for k, v in t.items():
            if not k.strip():
                raise self.expected(path + (k,), "a parameter name", k)
            out[k] = self.number(path + (k,), v)
        return out


# ---------------------------------------------------------------------------------------
# sections
# ---------------------------------------------------------------------------------------
_TOP = ("patch", "clock", "key", "audio", "voices", "generators", "midi", "osc", "supercollider",
        "scenes", "visuals", "params")


def _build(doc: dict[str, Any], c: _Checker, default_name: str) -> Patch:
    for k in doc:
        if k not in _TOP:
            raise c.error((k,), f"unknown key {k!r}{_suggest(k, _TOP)}")

    # [patch]
    t = c.section(doc, "patch", ("name", "description"))
    name = c.string(("patch", "name"), t["name"], nonempty=True) if "name" in t else default_name
    description = c.string(("patch", "description"), t.get("description", ""))

    # [clock]
    t = c.section(doc, "clock", ("bpm", "beats_per_bar", "source", "send_clock", "lookahead"))
    p: KeyPath = ("clock",)
    clock = ClockConfig(
        bpm=c.number(p + ("bpm",), t.get("bpm", 120.0), 20, 300),
        beats_per_bar=c.integer(p + ("beats_per_bar",), t.get("beats_per_bar", 4), 1, 16),
        source=c.choice(p + ("source",), t.get("source", "internal"), CLOCK_SOURCES),
        send_clock=c.boolean(p + ("send_clock",), t.get("send_clock", False)),
        lookahead=c.number(p + ("lookahead",), t.get("lookahead", 0.25), 0.05, 2.0),
    )

    # [key]
    t = c.section(doc, "key", ("tonic", "scale"))
    tonic = c.string(("key", "tonic"), t.get("tonic", "C"))
    try:
        parse_tonic(tonic)
    except ValueError:
        raise c.expected(("key", "tonic"), "a note name like C, F# or Bb", tonic) from None
    key = KeyConfig(tonic=tonic.strip(), scale=c.choice(("key", "scale"), t.get("scale", "major"), tuple(SCALES)))

    # [audio]
    t = c.section(doc, "audio", ("enabled", "device", "sample_rate", "blocksize", "master_gain"))
    p = ("audio",)
    device = t.get("device", "")
    if isinstance(device, bool) or not isinstance(device, (str, int)):
        raise c.expected(p + ("device",), "a device name (string) or index (integer)", device)
    if isinstance(device, int):
        device = c.integer(p + ("device",), device, 0, 1024)
    audio = AudioConfig(
        enabled=c.boolean(p + ("enabled",), t.get("enabled", True)),
        device=device,
        sample_rate=c.integer(p + ("sample_rate",), t.get("sample_rate", 48000), 8000, 384000),
        blocksize=c.integer(p + ("blocksize",), t.get("blocksize", 256), 16, 16384),
        master_gain=c.number(p + ("master_gain",), t.get("master_gain", 0.5), 0.0, 1.0),
    )

    # [voices.<name>]
    voices_t = c.table(("voices",), doc.get("voices", {}), None)
    voices: dict[str, dict[str, float | str]] = {}
    for vname, vt in voices_t.items():
        vp: KeyPath = ("voices", vname)
        if not vname.strip():
            raise c.expected(vp, "a voice name", vname)
        vt = c.table(vp, vt, tuple(VOICE_FIELDS))
        fields: dict[str, float | str] = {}
        for f, v in vt.items():
            fp = vp + (f,)
            if VOICE_FIELDS[f] == "wave":
                fields[f] = c.choice(fp, v, WAVEFORMS)
            else:
                fields[f] = c.number(fp, v, *VOICE_RANGES[f])
        voices[vname] = fields

    # [scenes.<name>] (before triggers, which refer to them)
    scenes_t = c.table(("scenes",), doc.get("scenes", {}), None)
    scenes: dict[str, dict[str, float]] = {}
    for sname, st in scenes_t.items():
        sp: KeyPath = ("scenes", sname)
        if not sname.strip():
            raise c.expected(sp, "a scene name", sname)
        st = c.table(sp, st, None)
        values: dict[str, float] = {}
        for pname, v in st.items():
            if pname == "bpm":
                values[pname] = c.number(sp + (pname,), v, 20, 300)
            else:
                if not pname.strip():
                    raise c.expected(sp + (pname,), "a parameter name", pname)
                values[pname] = c.number(sp + (pname,), v)
        scenes[sname] = values

    # [[generators]]
    kinds = generator_kinds()
    generators: list[GeneratorConfig] = []
    seen: dict[str, int] = {}
    gen_keys = ("name", "kind", "voice", "channel", "enabled", "seed", "params", "options")
    for i, gt in enumerate(c.array_of_tables(("generators",), doc.get("generators", _MISSING))):
        gp: KeyPath = ("generators", i)
        c.table(gp, gt, gen_keys)
        if "name" not in gt:
            raise c.error(gp, "missing required key 'name'")
        gname = gt["name"]
        if not isinstance(gname, str) or not _GEN_NAME.fullmatch(gname):
            raise c.expected(gp + ("name",), "a name of lowercase letters, digits and _", gname)
        if gname in seen:
            raise c.expected(gp + ("name",), f"a unique generator name (generators[{seen[gname]}] is already called that)", gname)
        seen[gname] = i
        kind = gt.get("kind", "arpeggiator")
        if kinds:
            kind = c.choice(gp + ("kind",), kind, kinds)
        else:
            kind = c.string(gp + ("kind",), kind, nonempty=True)
        seed = gt.get("seed")
        if seed is not None:
            seed = c.integer(gp + ("seed",), seed)
        options = c.table(gp + ("options",), gt.get("options", {}), None)
        for ok in options:
            if not ok.isidentifier():
                raise c.expected(gp + ("options", ok), "an option name (letters, digits, _)", ok)
        generators.append(GeneratorConfig(
            name=gname,
            kind=kind,
            voice=c.string(gp + ("voice",), gt.get("voice", "lead"), nonempty=True),
            channel=c.integer(gp + ("channel",), gt.get("channel", 0), 0, 15),
            enabled=c.boolean(gp + ("enabled",), gt.get("enabled", True)),
            seed=seed,
            params=c.float_table(gp + ("params",), gt.get("params", {})),
            options=dict(options),
        ))

    def action(path: KeyPath, value: object) -> str:
        what = "an action: " + ", ".join(TRIGGER_ACTIONS) + ", scene:<name> or learn:<param>"
        if not isinstance(value, str):
            raise c.expected(path, what, value)
        if value in TRIGGER_ACTIONS:
            return value
        if value.startswith("scene:") and value[6:].strip():
            scene = value[6:]
            if scene not in scenes:
                raise c.expected(path, "a scene defined in [scenes]" + _suggest(scene, scenes), value)
            return value
        if value.startswith("learn:") and value[6:].strip():
            return value
        raise c.expected(path, what + _suggest(value, TRIGGER_ACTIONS), value)

    # [midi]
    t = c.section(doc, "midi", ("inputs", "outputs", "virtual_output", "client_name", "map", "triggers",
                                "panic_on_all_notes_off"))
    p = ("midi",)
    maps: list[MidiMap] = []
    map_keys = ("param", "cc", "pitchbend", "cc14", "channel", "min", "max", "curve")
    for i, mt in enumerate(c.array_of_tables(p + ("map",), t.get("map", _MISSING))):
        mp: KeyPath = p + ("map", i)
        c.table(mp, mt, map_keys)
        if "param" not in mt:
            raise c.error(mp, "missing required key 'param'")
        pitchbend = c.boolean(mp + ("pitchbend",), mt.get("pitchbend", False))
        cc = mt.get("cc")
        if cc is not None:
            cc = c.integer(mp + ("cc",), cc, 0, 127)
        if (cc is None) == (not pitchbend):
            if cc is None:
                raise c.error(mp, "expected exactly one of cc or pitchbend = true, got neither")
            raise c.error(mp + ("pitchbend",), "expected exactly one of cc or pitchbend = true, got both")
        cc14 = c.boolean(mp + ("cc14",), mt.get("cc14", False))
        if cc14 and (cc is None or cc > 31):
            raise c.expected(mp + ("cc",) if cc is not None else mp + ("cc14",),
                             "a cc in 0..31 with cc14 (the LSB is cc + 32)", cc)
        maps.append(MidiMap(
            param=c.string(mp + ("param",), mt["param"], nonempty=True),
            cc=cc,
            cc14=cc14,
            pitchbend=pitchbend,
            channel=c.channel(mp + ("channel",), mt["channel"]) if "channel" in mt else None,
            min=c.number(mp + ("min",), mt["min"]) if "min" in mt else None,
            max=c.number(mp + ("max",), mt["max"]) if "max" in mt else None,
            curve=c.choice(mp + ("curve",), mt.get("curve", "linear"), CURVES),
        ))
    mtriggers: list[Trigger] = []
    for i, tt in enumerate(c.array_of_tables(p + ("triggers",), t.get("triggers", _MISSING))):
        tp: KeyPath = p + ("triggers", i)
        c.table(tp, tt, ("action", "note", "cc", "channel"))
        if "action" not in tt:
            raise c.error(tp, "missing required key 'action'")
        act = action(tp + ("action",), tt["action"])
        if ("note" in tt) == ("cc" in tt):
            raise c.error(tp, "expected exactly one of note or cc, got " + ("both" if "note" in tt else "neither"))
        mtriggers.append(Trigger(
            action=act,
            note=c.integer(tp + ("note",), tt["note"], 0, 127) if "note" in tt else None,
            cc=c.integer(tp + ("cc",), tt["cc"], 0, 127) if "cc" in tt else None,
            channel=c.channel(tp + ("channel",), tt["channel"]) if "channel" in tt else None,
        ))
    midi = MidiConfig(
        inputs=c.strings(p + ("inputs",), t.get("inputs", ["*"])),
        outputs=c.strings(p + ("outputs",), t.get("outputs", [])),
        virtual_output=c.boolean(p + ("virtual_output",), t.get("virtual_output", True)),
        client_name=c.string(p + ("client_name",), t.get("client_name", "livegen"), nonempty=True),
        maps=tuple(maps),
        triggers=tuple(mtriggers),
        panic_on_all_notes_off=c.boolean(p + ("panic_on_all_notes_off",), t.get("panic_on_all_notes_off", True)),
    )

    # [osc]
    t = c.section(doc, "osc", ("host", "port", "enabled", "allow", "instance", "map", "triggers", "targets"))
    p = ("osc",)

    def address(path: KeyPath, value: object) -> str:
        if not isinstance(value, str) or not value.startswith("/") or any(ch.isspace() for ch in value):
            raise c.expected(path, "an OSC address starting with '/'", value)
        return value

    omaps: list[OscMap] = []
    for i, mt in enumerate(c.array_of_tables(p + ("map",), t.get("map", _MISSING))):
        mp = p + ("map", i)
        c.table(mp, mt, ("address", "param", "min", "max", "curve", "raw"))
        for req in ("address", "param"):
            if req not in mt:
                raise c.error(mp, f"missing required key {req!r}")
        omaps.append(OscMap(
            address=address(mp + ("address",), mt["address"]),
            param=c.string(mp + ("param",), mt["param"], nonempty=True),
            min=c.number(mp + ("min",), mt["min"]) if "min" in mt else None,
            max=c.number(mp + ("max",), mt["max"]) if "max" in mt else None,
            curve=c.choice(mp + ("curve",), mt.get("curve", "linear"), CURVES),
            raw=c.boolean(mp + ("raw",), mt.get("raw", False)),
        ))
    otriggers: list[Trigger] = []
    for i, tt in enumerate(c.array_of_tables(p + ("triggers",), t.get("triggers", _MISSING))):
        tp = p + ("triggers", i)
        c.table(tp, tt, ("address", "action"))
        for req in ("address", "action"):
            if req not in tt:
                raise c.error(tp, f"missing required key {req!r}")
        otriggers.append(Trigger(action=action(tp + ("action",), tt["action"]),
                                 address=address(tp + ("address",), tt["address"])))
    targets: list[OscTarget] = []
    target_names: dict[str, int] = {}
    for i, tt in enumerate(c.array_of_tables(p + ("targets",), t.get("targets", _MISSING))):
        tp = p + ("targets", i)
        c.table(tp, tt, ("name", "host", "port", "prefix", "send"))
        for req in ("name", "port"):
            if req not in tt:
                raise c.error(tp, f"missing required key {req!r}")
        tname = c.string(tp + ("name",), tt["name"], nonempty=True)
        if tname in target_names:
            raise c.expected(tp + ("name",), f"a unique target name (osc.targets[{target_names[tname]}] is already called that)", tname)
        target_names[tname] = i
        prefix = tt.get("prefix", "/livegen")
        if not isinstance(prefix, str) or (prefix and (not prefix.startswith("/") or prefix.endswith("/"))):
            raise c.expected(tp + ("prefix",), "an OSC address prefix like '/livegen' (or '')", prefix)
        if "{" in prefix.replace("{instance}", "") or "}" in prefix.replace("{instance}", ""):
            raise c.expected(tp + ("prefix",), "a prefix whose only {...} is {instance}", prefix)
        targets.append(OscTarget(
            name=tname,
            port=c.port(tp + ("port",), tt["port"]),
            host=c.host(tp + ("host",), tt.get("host", "127.0.0.1")),
            prefix=prefix,
            send=c.strings(tp + ("send",), tt.get("send", ["notes", "beats", "params"]), OSC_SEND_KINDS),
        ))
    allow = c.strings(p + ("allow",), t.get("allow", []))
    for i, ip in enumerate(allow):
        try:
            ipaddress.ip_network(ip.strip(), strict=False)
        except ValueError:
            raise c.expected(p + ("allow", i), "an IP address or network (192.168.1.20, 10.0.0.0/24)", ip) from None
    instance = c.string(p + ("instance",), t.get("instance", ""))
    if instance and instance_name_problem(instance):
        raise c.expected(p + ("instance",), "an instance name (letters, digits, '-', '_'; not one of livegen's "
                         "own OSC words such as 'tempo')", instance)
    osc = OscConfig(
        instance=instance,
        host=c.host(p + ("host",), t.get("host", "127.0.0.1")),
        port=c.port(p + ("port",), t.get("port", 9000)),
        enabled=c.boolean(p + ("enabled",), t.get("enabled", True)),
        allow=allow,
        maps=tuple(omaps),
        triggers=tuple(otriggers),
        targets=tuple(targets),
    )

    # [supercollider]
    t = c.section(doc, "supercollider", ("enabled", "host", "port", "synthdef", "group", "synthdef_file"))
    p = ("supercollider",)
    supercollider = SuperColliderConfig(
        enabled=c.boolean(p + ("enabled",), t.get("enabled", False)),
        host=c.host(p + ("host",), t.get("host", "127.0.0.1")),
        port=c.port(p + ("port",), t.get("port", 57110)),
        synthdef=c.string(p + ("synthdef",), t.get("synthdef", "default"), nonempty=True),
        group=c.integer(p + ("group",), t.get("group", 1), 0),
        synthdef_file=_relative_to(c.file, c.string(p + ("synthdef_file",), t.get("synthdef_file", ""))),
    )

    # [visuals]
    t = c.section(doc, "visuals", ("enabled", "width", "height", "fps", "scale", "source", "fullscreen", "sources",
                                   "source_file", "latent_model", "latent_anchors", "latent_seed",
                                   "style", "style_model", "style_quantize", "style_threads",
                                   "style_compile", "style_worker", "style_processes", "display",
                                   "screenshot_dir", "record", "record_hud", "virtual_camera", "share",
                                   "on_close"))
    p = ("visuals",)
    visuals = VisualsConfig(
        enabled=c.boolean(p + ("enabled",), t.get("enabled", True)),
        width=c.integer(p + ("width",), t.get("width", 320), 16, 7680),
        height=c.integer(p + ("height",), t.get("height", 240), 16, 4320),
        fps=c.integer(p + ("fps",), t.get("fps", 30), 1, 120),
        scale=c.integer(p + ("scale",), t.get("scale", 2), 1, 16),
        source=c.string(p + ("source",), t.get("source", "ripples"), nonempty=True),
        fullscreen=c.boolean(p + ("fullscreen",), t.get("fullscreen", False)),
        sources=c.strings(p + ("sources",), t.get("sources", [])),
        source_file=_relative_to(c.file, c.string(p + ("source_file",), t.get("source_file", ""))),
        latent_model=_relative_to(c.file, c.string(p + ("latent_model",), t.get("latent_model", ""))),
        latent_anchors=_latent_anchors(c, p + ("latent_anchors",), t.get("latent_anchors", "")),
        latent_seed=c.integer(p + ("latent_seed",), t.get("latent_seed", 0), 0, 2**31 - 1),
        style=c.boolean(p + ("style",), t.get("style", False)),
        style_model=_relative_to(c.file, c.string(p + ("style_model",), t.get("style_model", ""))),
        style_quantize=c.choice(p + ("style_quantize",), t.get("style_quantize", "none"), ("none", "bar")),
        style_threads=c.integer(p + ("style_threads",), t.get("style_threads", 1), 1, 64),
        style_compile=c.boolean(p + ("style_compile",), t.get("style_compile", False)),
        style_worker=c.choice(p + ("style_worker",), t.get("style_worker", "process"), ("process", "thread")),
        style_processes=c.integer(p + ("style_processes",), t.get("style_processes", 2), 1, 8),
        display=c.integer(p + ("display",), t.get("display", 0), 0, 16),
        screenshot_dir=_relative_to(c.file, c.string(p + ("screenshot_dir",), t.get("screenshot_dir", ""))),
        record=_record_path(c, p + ("record",), t.get("record", "")),  # relative to where livegen runs
        record_hud=c.boolean(p + ("record_hud",), t.get("record_hud", False)),
        virtual_camera=c.boolean(p + ("virtual_camera",), t.get("virtual_camera", False)),
        share=c.choice(p + ("share",), t.get("share", ""), SHARE_KINDS),
        on_close=c.choice(p + ("on_close",), t.get("on_close", "continue"), ON_CLOSE),
    )

    # [params]
    params = c.float_table(("params",), doc.get("params", {}))

    return Patch(
        name=name, description=description, clock=clock, key=key, audio=audio, voices=voices,
        generators=tuple(generators), midi=midi, osc=osc, supercollider=supercollider,
        scenes=scenes, visuals=visuals, params=params,
        path=None if _is_pseudo(c.file) else c.file, source_text=c.text,
    )


def _latent_anchors(c: _Checker, path: KeyPath, value: object) -> str:
    """``[visuals] latent_anchors``: "" or a .json / .npy file (relative to the patch)."""
    text = c.string(path, value)
    if text and os.path.splitext(text)[1].lower() not in (".json", ".npy"):
        raise c.error(path, f"anchors are a .json or .npy file, got {text!r}")
    return _relative_to(c.file, text)


def _record_path(c: _Checker, path: KeyPath, value: object) -> str:
    """A video file name for ``[visuals] record`` ("" = none): its suffix picks the container."""
    text = c.string(path, value)
    if text and os.path.splitext(text)[1].lower() not in RECORD_SUFFIXES:
        raise c.error(path, f"a recording must end in {', '.join(RECORD_SUFFIXES)}, got {text!r}")
    return text


# ---------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------
_TOML_POS = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def _relative_to(patch_file: str, value: str) -> str:
    """A path written in a patch, taken relative to the patch's folder (kept as written if absolute)."""
    if not value or _is_pseudo(patch_file) or os.path.isabs(value) or value.isdigit():
        return value
    return os.path.join(os.path.dirname(os.path.abspath(patch_file)), value)


def _is_pseudo(path: str) -> bool:
    """'<string>', '<osc>': a label for error messages, not a file."""
    return path.startswith("<") and path.endswith(">")


def _default_name(path: str) -> str:
    if _is_pseudo(path):
        return "untitled"
    stem = os.path.splitext(os.path.basename(path))[0]
    return stem or "untitled"


def parse_patch(text: str, path: str | os.PathLike[str] = "<string>") -> Patch:
    """Parse and validate patch source; any problem is a one-line PatchError."""
    file = os.fspath(path)
    if not isinstance(text, str):
        raise PatchError(file, 1, "", f"expected TOML text, got {_short_repr(text)}")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        line = 1
        m = _TOML_POS.search(msg)
        if m:
            line = int(m.group(1))
            msg = msg[: m.start()] + f" (column {m.group(2)})"
        elif "end of document" in msg:
            line = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
            msg = re.sub(r"\s*\(at end of document\)", " (at end of file)", msg)
        raise PatchError(file, line, "", f"TOML syntax error: {msg}") from None
    except RecursionError:
        raise PatchError(file, 1, "", "TOML syntax error: nested too deeply") from None
    except (ValueError, MemoryError) as e:  # e.g. an integer with too many digits
        raise PatchError(file, 1, "", f"TOML syntax error: {e}") from None
    checker = _Checker(text, file)
    try:
        return _build(doc, checker, _default_name(file))
    except RecursionError:
        raise PatchError(file, 1, "", "patch nested too deeply") from None


def load_patch(path: str | os.PathLike[str]) -> Patch:
    """Read a patch file (UTF-8 TOML). Unreadable files raise OSError; bad content PatchError."""
    file = os.fspath(path)
    with open(file, "rb") as f:
        data = f.read()
    return parse_patch(_decode(data, file), file)


def _decode(data: bytes, file: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise PatchError(file, line, "", f"expected UTF-8 text, got bytes {data[e.start:e.start + 4]!r}") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text


def check_params(patch: Patch, known: Mapping[str, ParamSpec] | Collection[str]) -> None:
    """Check every parameter name the patch uses against those the engine declared.

    Run once the engine knows its parameters (generators add theirs at creation). With
    ``ParamSpec``s, values (initial params, scenes, generator params, map min/max) must also
    lie in the parameter's range. Raises PatchError at the offending line.
    """
    specs: Mapping[str, ParamSpec] | None = known if isinstance(known, Mapping) else None
    names = set(known)
    c = _Checker(patch.source_text, patch.path or "<string>")

    def name_ok(path: KeyPath, name: str) -> ParamSpec | None:
        if name not in names:
            raise c.expected(path, "a known parameter" + _suggest(name, names), name)
        return specs.get(name) if specs is not None else None

    def in_range(path: KeyPath, spec: ParamSpec | None, value: float | None) -> None:
        if spec is None or value is None:
            return
        if not spec.min <= value <= spec.max:
            raise c.expected(path, f"a value in {_num(spec.min)}..{_num(spec.max)} for {spec.name}", value)

    for section, maps in (("midi", patch.midi.maps), ("osc", patch.osc.maps)):
        for i, m in enumerate(maps):
            spec = name_ok((section, "map", i, "param"), m.param)
            in_range((section, "map", i, "min"), spec, m.min)
            in_range((section, "map", i, "max"), spec, m.max)
        triggers = patch.midi.triggers if section == "midi" else patch.osc.triggers
        for i, t in enumerate(triggers):
            if t.action.startswith("learn:"):
                p = t.action[len("learn:"):]
                if p not in names:
                    raise c.expected((section, "triggers", i, "action"), "learn:<a known parameter>" + _suggest(p, names), t.action)
    for sname, values in patch.scenes.items():
        for pname, v in values.items():
            if pname == "bpm":
                continue
            in_range(("scenes", sname, pname), name_ok(("scenes", sname, pname), pname), v)
    for pname, v in patch.params.items():
        in_range(("params", pname), name_ok(("params", pname), pname), v)
    for i, g in enumerate(patch.generators):
        for k, v in g.params.items():
            path: KeyPath = ("generators", i, "params", k)
            full = f"{g.name}.{k}"
            if full not in names:
                raise c.expected(path, f"a parameter of generator {g.name!r}" + _suggest(full, names), k)
            in_range(path, specs.get(full) if specs is not None else None, v)
