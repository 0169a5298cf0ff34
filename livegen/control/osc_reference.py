"""docs/osc.md, generated from the code so that the reference cannot drift from it.

Every section is rendered from a table the running code itself uses:

- the addresses livegen answers: :data:`livegen.control.osc_addresses.ADDRESSES` (the
  server dispatches from it), with its ``PLACEHOLDERS`` and ``TYPE_TAGS``;
- the messages sent to ``[[osc.targets]]``: :data:`livegen.outputs.osc_out.OUT_MESSAGES`
  (``OscOutput`` encodes from it);
- the live parameters: the specs an engine declares for the default patch, built as
  ``livegen render`` builds it (engine, synth, visuals pipeline);
- the patch keys: the schema's dataclasses; every field must be described in
  :data:`PATCH_SECTIONS` (rendering fails otherwise), and the example patch is parsed by
  the real loader each time.

``livegen docs osc`` writes the file; ``livegen docs osc --check`` (and the tests) fail
while it is stale. Adding an address, an outgoing message or a parameter is a data change
in those tables; the document follows.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

import livegen
from livegen.control import osc_addresses
from livegen.control.mapping import CURVES, OscMap, Trigger
from livegen.control.osc_server import MAX_BUNDLE_DEPTH, OscServer
from livegen.control.params import ParamSpec
from livegen.log import RateLimitedLog
from livegen.outputs import osc_out
from livegen.patch.schema import OSC_SEND_KINDS, TRIGGER_ACTIONS, OscConfig, OscTarget

REPO_ROOT = Path(livegen.__file__).resolve().parent.parent
DEFAULT_PATCH = REPO_ROOT / "patches" / "default.toml"
# Shipped patches whose sources declare parameters the default patch has not: their
# groups are listed after the default's, so every parameter livegen can have is here.
OTHER_PATCHES = (REPO_ROOT / "patches" / "latent.toml",)
DEFAULT_OUT = Path("docs") / "osc.md"
REGENERATE = "livegen docs osc"


# -- patch keys: what each key of the OSC sections means ------------------------------------
@dataclass(frozen=True)
class PatchKey:
    """One TOML key: the dataclass field it fills, what value it takes, what it does."""

    key: str
    field: str
    value: str
    doc: str
    required: bool = False
    default: str | None = None  # shown instead of the dataclass default (for None defaults)


@dataclass(frozen=True)
class PatchSection:
    """One patch section about OSC and the schema dataclass it becomes.

    ``elsewhere`` names the dataclass fields that are not keys of this section (sections of
    their own, or fields that only MIDI uses); every other field needs a :class:`PatchKey`.
    """

    header: str
    schema: type
    doc: str
    keys: tuple[PatchKey, ...]
    elsewhere: tuple[str, ...] = ()


def _choices(values: tuple[str, ...]) -> str:
    return ", ".join(f"`{v}`" for v in values)


PATCH_SECTIONS: tuple[PatchSection, ...] = (
    PatchSection("[osc]", OscConfig, "The OSC server: where livegen listens and who may talk to it.", (
        PatchKey("host", "host", "host name or IP address",
                 "Address to listen on: `127.0.0.1` is this machine only; `0.0.0.0` listens on every network."),
        PatchKey("port", "port", "integer 1..65535",
                 "UDP port to listen on (`livegen play --osc-port N` overrides it)."),
        PatchKey("enabled", "enabled", "true / false", "false: no OSC server at all."),
        PatchKey("allow", "allow", "array of IP addresses",
                 "Senders accepted; `[]` accepts anyone. Datagrams from others are ignored with one log line."),
        PatchKey("instance", "instance", "1..32 letters, digits, `-`, `_`; not one of livegen's own words "
                 "(`tempo`, `param`...)",
                 "This livegen's name in a show of several (see Several instances); `livegen play --name` "
                 "overrides it.", default="the patch's name"),
    ), elsewhere=("maps", "triggers", "targets")),
    PatchSection("[[osc.map]]", OscMap,
                 "An address of your own (a TouchDesigner fader, a Max dial) driving a parameter with its "
                 "first argument (any number, or `T`/`F`).", (
        PatchKey("address", "address", "OSC address: starts with `/`, no spaces",
                 "The address to answer; it takes precedence over a built-in address of the same name.",
                 required=True),
        PatchKey("param", "param", "parameter name (see Live parameters)", "The parameter it drives.",
                 required=True),
        PatchKey("min", "min", "number in the parameter's range", "Value at argument 0.",
                 default="the parameter's minimum"),
        PatchKey("max", "max", "number in the parameter's range", "Value at argument 1.",
                 default="the parameter's maximum"),
        PatchKey("curve", "curve", f"one of {_choices(CURVES)}", "How 0..1 is shaped before min..max (below)."),
        PatchKey("raw", "raw", "true / false",
                 "true: the argument is the value itself, in the parameter's units (min, max and curve unused)."),
    )),
    PatchSection("[[osc.triggers]]", Trigger,
                 "An address of your own that fires an action, like a pad. Every message to it fires, except "
                 "one whose first argument is 0 or `F`: a button sending 1 on press and 0 on release fires "
                 "once.", (
        PatchKey("address", "address", "OSC address: starts with `/`, no spaces",
                 "The address to answer; it takes precedence over a built-in address of the same name.",
                 required=True),
        PatchKey("action", "action", f"one of {_choices(TRIGGER_ACTIONS)}, `scene:<name>`, `learn:<param>`",
                 "What it does: `tap` is tap tempo, `scene:<name>` recalls a scene, `learn:<param>` arms MIDI learn.",
                 required=True),
    ), elsewhere=("note", "cc", "channel")),
    PatchSection("[[osc.targets]]", OscTarget,
                 "Somewhere livegen sends the performance as OSC (see Messages livegen sends). As many as you like.", (
        PatchKey("name", "name", "string, unique among the targets", "Names the target in log lines.",
                 required=True),
        PatchKey("host", "host", "host name or IP address", "Where to send (resolved once, at start)."),
        PatchKey("port", "port", "integer 1..65535", "UDP port of the receiver.", required=True),
        PatchKey("prefix", "prefix", "`\"\"` or an address starting with `/`, not ending with `/`",
                 "Put before every address sent (`/td` gives `/td/note`); `{instance}` in it becomes the "
                 "instance's name (`/livegen/{instance}` gives `/livegen/left/note`)."),
        PatchKey("send", "send", f"array of {_choices(OSC_SEND_KINDS)}", "Which messages this target receives."),
    )),
)

#: What each curve of ``[[osc.map]]`` does to the 0..1 argument (livegen.control.mapping).
CURVE_DOCS: dict[str, str] = {
    "linear": "as it comes",
    "exp": "fine control at the low end (cutoffs, times)",
    "log": "fine control at the high end",
    "toggle": "0 below 0.5, 1 from 0.5 (a switch)",
    "invert": "1 - x (a fader the other way up)",
}

#: A patch using every key above; rendering parses it with the real loader.
EXAMPLE_PATCH = '''\
[osc]
host = "127.0.0.1"
port = 9000
enabled = true
allow = ["127.0.0.1", "192.168.1.20"]
instance = "left"               # /livegen/left/... reaches this livegen alone

[[osc.map]]                     # a TouchDesigner fader, 0..1
address = "/td/fader1"
param = "synth.lead.cutoff"
min = 300.0
max = 6000.0
curve = "exp"
raw = false

[[osc.triggers]]                # a button: fires on press (1), not on release (0)
address = "/td/button1"
action = "mutate"

[[osc.targets]]
name = "touchdesigner"
host = "127.0.0.1"
port = 7000
prefix = "/livegen"
send = ["notes", "beats", "params"]
'''

#: One line about each group of parameter names (the part before the first dot).
GROUP_DOCS: dict[str, str] = {
    "": "The engine.",
    "synth": "The built-in synth: `synth.master`, and `synth.<voice>.<field>` for every voice (the presets "
             "and the patch's `[voices.*]`).",
    "visuals": "The visuals sources of the patch's `[visuals]` (these depend on its `source` and `sources`).",
    "style": "The style network (`[visuals] style = true`): one weight per painting of the model, "
             "`intensity` and `colour`.",
    "latent": "The latent source (`[visuals] source = \"latent\"`, or in its `sources`): a walk through a small "
              "image model's latent space that notes push, beats pulse and `chaos` wanders.",
}


# -- the live parameters of a patch ---------------------------------------------------------
@dataclass(frozen=True)
class LiveParameters:
    """A patch's parameters as its engine declares them, with the value each starts at."""

    patch: str
    generators: tuple[tuple[str, str], ...]  # (name, kind)
    params: tuple[tuple[ParamSpec, float], ...]


@functools.lru_cache(maxsize=4)
def live_parameters(patch_path: str) -> LiveParameters:
    """Build the patch's engine, synth and visuals as ``livegen render`` does; read the store."""
    from livegen.engine import Engine
    from livegen.patch.loader import load_patch
    from livegen.render import VirtualScheduler, open_render_visuals
    from livegen.sound.synth import Synth, voices_with

    quiet = logging.getLogger("livegen")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # "style network: ..." info lines are not news here
    try:
        patch = load_patch(patch_path)
        synth = Synth(patch.audio.sample_rate, voices=voices_with(patch.voices), master_gain=patch.audio.master_gain)
        engine = Engine(patch, VirtualScheduler(), now=lambda: 0.0, seed=0, extra_specs=synth.param_specs())
        pipeline = open_render_visuals(patch, engine, 0) if patch.visuals.enabled else None
        if pipeline is not None:
            pipeline.close()
    finally:
        quiet.setLevel(level)
    store = engine.store
    return LiveParameters(
        patch=_shown_path(Path(patch_path)),
        generators=tuple((g.name, g.kind) for g in patch.generators),
        params=tuple((spec, store.get(spec.name)) for spec in store.specs()),
    )


def _shown_path(path: Path) -> str:
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return path.as_posix()


# -- Markdown helpers --------------------------------------------------------------------
def _cell(text: str) -> str:
    """Text for a table cell: ``|`` escaped, ``<`` and ``>`` escaped outside code spans,
    a newline made a line break."""
    parts = text.replace("|", "\\|").split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts).replace("\n", "<br>")


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def _num(x: float) -> str:
    return f"{x:g}"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


def _tags(tags: str) -> str:
    return f"`{tags}`" if tags else "—"


def _arguments(tags: str, arguments: tuple[str, ...], where: str) -> str:
    if len(arguments) != len(tags):
        raise ValueError(f"{where}: {len(tags)} type tags but {len(arguments)} argument descriptions")
    return "\n".join(f"`{t}` {a}" for t, a in zip(tags, arguments)) or "—"


def _placeholders(pattern: str) -> list[str]:
    return re.findall(r"<([a-z]+)>", pattern)


# -- sections ----------------------------------------------------------------------------
def _intro(live: LiveParameters) -> list[str]:
    return [
        "# OSC reference",
        "",
        f"<!-- Generated by `{REGENERATE}` from the code; do not edit by hand. "
        f"`{REGENERATE} --check` fails while this file is stale. -->",
        "",
        "Everything livegen answers over OSC, what it replies, what it sends to the targets in your patch, "
        f"the parameters you can reach (those of `{live.patch}`) and the patch keys that set it all up. "
        f"This file is generated from the tables the code runs on (`{REGENERATE}`), so it is what the "
        "code does.",
        "",
    ]


def _listening() -> list[str]:
    sig = inspect.signature(OscServer.__init__)
    max_pending = sig.parameters["max_pending"].default
    max_ahead = sig.parameters["max_ahead"].default
    interval = inspect.signature(RateLimitedLog.__init__).parameters["interval"].default
    d = OscConfig()
    return [
        "## Listening",
        "",
        f"livegen listens for OSC over UDP on `{d.host}` port `{d.port}` unless the patch's `[osc]` says "
        "otherwise (`livegen play --osc-port N` overrides the port). Each message is matched first against "
        "the patch's own `[[osc.map]]` and `[[osc.triggers]]` addresses (so a patch can take over any "
        "address), then against the built-in addresses below.",
        "",
        f"Bundles are honoured: a bundle timed in the future is applied at its time, at most "
        f"{_num(max_ahead)} s ahead and {max_pending} messages waiting (beyond that they are dropped and "
        f"counted); bundles may nest {MAX_BUNDLE_DEPTH} deep; a bundle is applied all or nothing.",
        "",
        "Bad input never stops the show: a malformed datagram, an unknown address, wrong argument types "
        "or a sender outside `allow` is dropped with one log line naming the sender and what was wrong "
        f"(the same problem is logged at most once every {_num(interval)} s, with a count of those "
        "suppressed). Nothing is sent back for a rejected message.",
        "",
    ]


def _type_tags() -> list[str]:
    lines = ["### Type tags", "",
             "Arguments are checked against the type tags in the table, leniently, because every "
             "controller types numbers its own way:", ""]
    lines += [f"- `{tag}`: {doc}." for tag, doc in osc_addresses.TYPE_TAGS.items()]
    lines += ["", "Anything else (a string for a number, a missing or extra argument) is rejected.", ""]
    return lines


def _addresses() -> list[str]:
    table = osc_addresses.ADDRESSES
    used = {p for a in table for p in _placeholders(a.pattern)}
    missing = sorted(used - set(osc_addresses.PLACEHOLDERS))
    if missing:
        raise ValueError(f"OSC address placeholders without a description in osc_addresses.PLACEHOLDERS: {missing}")
    for a in table:
        unknown = set(a.args) - set(osc_addresses.TYPE_TAGS)
        if unknown:
            raise ValueError(f"{a.pattern}: type tags {sorted(unknown)} are not described in osc_addresses.TYPE_TAGS")
    rows = [(f"`{a.pattern}`", _tags(a.args), _arguments(a.args, a.arguments, a.pattern),
             a.reply or "—", a.doc) for a in table]
    lines = ["## Addresses livegen answers", ""]
    lines += [f"`<{p}>` in an address stands for {osc_addresses.PLACEHOLDERS[p]}." for p in sorted(used)]
    lines += [""] + _table(("address", "tags", "arguments", "reply", "what it does"), rows) + [""]
    return lines + _type_tags()


def _instances() -> list[str]:
    reserved = ", ".join(f"`{w}`" for w in sorted(osc_addresses.reserved_instance_names()))
    p = osc_addresses.PREFIX
    return [
        "## Several instances",
        "",
        f"Every livegen has a name: `livegen play --name NAME`, else `[osc] instance`, else the patch's name "
        f"(`My Show` becomes `my-show`). Every built-in address above also exists as `{p}/<instance>/...`: "
        f"`{p}/left/tempo` reaches only the livegen called `left`, `{p}/tempo` reaches every livegen that "
        "receives it. A livegen ignores what is addressed to another instance (it says so once per name in "
        "its log), so one controller can send everything to every machine. A reply comes back under the "
        f"form it was asked in: `{p}/left/get` is answered with `{p}/left/value`.",
        "",
        f"Names that livegen uses itself cannot be instance names: {reserved}.",
        "",
        "To tell instances apart in what they send, give their targets `prefix = \"/livegen/{instance}\"`.",
        "",
    ]


def _replies() -> list[str]:
    rows = [(f"`{a.pattern}`", a.reply) for a in osc_addresses.ADDRESSES if a.reply]
    return [
        "## Replies",
        "",
        "A reply goes back to the address and port the request came from (the sending socket), not to "
        "the `[[osc.targets]]`: to read it, send from a socket that also receives (a liblo server, a "
        "bound UDP socket). A tool that sends from a throwaway port and exits, like liblo's `oscsend`, "
        "never sees the reply.",
        "",
        *_table(("request", "reply"), rows),
        "",
    ]


def _outgoing() -> list[str]:
    rows = []
    for m in osc_out.OUT_MESSAGES:
        where = f"OUT_MESSAGES row for {m.event.__name__}"
        rows.append((f"`<prefix>{m.suffix}`", _tags(m.tags), f"`{m.kind}`",
                     _arguments(m.tags, m.arguments, where), f"{m.event.__name__}: {m.doc}"))
    default_send = OscTarget("", 0).send
    kinds = []
    for kind in osc_out.SEND_KINDS:
        addresses = sorted({f"`<prefix>{m.suffix}`" for m in osc_out.OUT_MESSAGES if m.kind == kind})
        if not addresses:
            raise ValueError(f"send kind {kind!r} has no message in osc_out.OUT_MESSAGES")
        note = ""
        if kind not in OSC_SEND_KINDS:
            note = " (not yet accepted in a patch's `send`)"
        elif kind in default_send:
            note = " (sent by default)"
        kinds.append(f"- `{kind}`{note}: {', '.join(addresses)}")
    return [
        "## Messages livegen sends",
        "",
        "To every `[[osc.targets]]` of the patch, each message at the moment it happens (notes and beats "
        "at their time on the performance clock). `<prefix>` is the target's `prefix` (`/livegen` by "
        "default). A full socket buffer or an unreachable host loses that message, never the beat.",
        "",
        *_table(("address", "tags", "send kind", "arguments", "when"), rows),
        "",
        f"A target's `send` list picks the kinds it receives (default {_toml(list(default_send))}):",
        "",
        *kinds,
        "",
    ]


def _parameters(live: LiveParameters, others: tuple[LiveParameters, ...] = ()) -> list[str]:
    gens = dict(live.generators)
    groups: dict[str, list[tuple[ParamSpec, float]]] = {}
    for spec, value in live.params:
        group = spec.name.split(".", 1)[0] if "." in spec.name else ""
        groups.setdefault(group, []).append((spec, value))
    order = [""] + [g for g in gens if g in groups] + sorted(g for g in groups if g and g not in gens)
    lines = [
        "## Live parameters",
        "",
        f"The parameters `/livegen/param/<name>` and `/livegen/param/<name>/unit` reach, as declared for "
        f"the default patch `{live.patch}`. Another patch has its own: `<generator>.<param>` for each of "
        "its generators, `synth.<voice>.<field>` for its voices, and the parameters of its visuals "
        "sources and style model; `/livegen/dump` lists the running patch's. Sources the default patch "
        "does not use come last, from a shipped patch that uses them. "
        "*default* is the parameter's own default, *start* the value the patch starts it at.",
        "",
    ]
    for group in order:
        if group in gens:
            doc = f"Generator `{group}` (kind `{gens[group]}`): `{group}.<param>`."
        else:
            doc = GROUP_DOCS.get(group, f"`{group}.*`.")
        lines += [f"### {group or 'engine'}", "", doc, ""] + _param_table(groups[group])
    shown = set(groups)
    for other in others:  # sources the default patch does not use; *start* is that patch's
        other_gens = dict(other.generators)
        extra: dict[str, list[tuple[ParamSpec, float]]] = {}
        for spec, value in other.params:
            group = spec.name.split(".", 1)[0] if "." in spec.name else ""
            if group not in shown and group not in other_gens:
                extra.setdefault(group, []).append((spec, value))
        for group in sorted(extra):
            doc = GROUP_DOCS.get(group, f"`{group}.*`.")
            lines += [f"### {group} (in `{other.patch}`)", "", f"{doc} *start* is that patch's value.", ""]
            lines += _param_table(extra[group])
        shown |= set(extra)
    return lines


def _param_table(params: list[tuple[ParamSpec, float]]) -> list[str]:
    rows = []
    for spec, value in params:
        rng = f"{_num(spec.min)}..{_num(spec.max)}" + (" (integer)" if spec.integer else "")
        rows.append((f"`{spec.name}`", rng, spec.unit or "—", _num(spec.default), _num(value), spec.doc or "—"))
    return _table(("name", "range", "unit", "default", "start", "what it does"), rows) + [""]


def _check_section(section: PatchSection) -> None:
    fields = {f.name for f in dataclasses.fields(section.schema)}
    described = {k.field for k in section.keys} | set(section.elsewhere)
    if fields - described:
        raise ValueError(f"{section.header}: fields {sorted(fields - described)} of {section.schema.__name__} "
                         "have no description in livegen/control/osc_reference.py PATCH_SECTIONS")
    if described - fields:
        raise ValueError(f"{section.header}: {sorted(described - fields)} are not fields of {section.schema.__name__}")


def _check_example(known: set[str]) -> None:
    """The example must load with the real loader, use known parameters and show every key."""
    from livegen.patch.loader import check_params, parse_patch

    check_params(parse_patch(EXAMPLE_PATCH, "<docs/osc.md example>"), known)
    doc = tomllib.loads(EXAMPLE_PATCH)
    for section in PATCH_SECTIONS:
        path = section.header.strip("[]").split(".")
        table: Any = doc
        for part in path:
            table = table[part]
        table = table[0] if isinstance(table, list) else table
        shown = set(table)
        keys = {k.key for k in section.keys}
        if section.header == "[osc]":
            shown -= {"map", "triggers", "targets"}
        if shown != keys:
            raise ValueError(f"the example's {section.header} shows {sorted(shown)}, the reference {sorted(keys)}")


def _patch_keys(live: LiveParameters) -> list[str]:
    _check_example({spec.name for spec, _ in live.params})
    lines = ["## Patch keys", "", "The OSC sections of a patch (TOML):", ""]
    for section in PATCH_SECTIONS:
        _check_section(section)
        defaults = {f.name: f.default for f in dataclasses.fields(section.schema)}
        rows = []
        for k in section.keys:
            if k.default is not None:
                default = k.default
            elif k.required:
                default = "required"
            else:
                default = f"`{_toml(defaults[k.field])}`"
            rows.append((f"`{k.key}`", k.value, default, k.doc))
        lines += [f"### `{section.header}`", "", section.doc, ""]
        lines += _table(("key", "value", "default", "what it does"), rows) + [""]
    missing = sorted(set(CURVES) - set(CURVE_DOCS))
    if missing:
        raise ValueError(f"curves without a description in osc_reference.CURVE_DOCS: {missing}")
    lines += ["Curves of `[[osc.map]]`:", ""]
    lines += [f"- `{c}`: {CURVE_DOCS[c]}" for c in CURVES]
    lines += ["", "An example using every key (the generator checks that it loads):", "", "```toml",
              EXAMPLE_PATCH.rstrip("\n"), "```", ""]
    return lines


def render(patch_path: str | os.PathLike[str] | None = None) -> str:
    """The whole of docs/osc.md; ``patch_path`` (default patches/default.toml) lists the parameters."""
    live = live_parameters(str(Path(patch_path) if patch_path is not None else DEFAULT_PATCH))
    others = tuple(live_parameters(str(p)) for p in OTHER_PATCHES) if patch_path is None else ()
    lines = (_intro(live) + _listening() + _addresses() + _instances() + _replies() + _outgoing()
             + _parameters(live, others) + _patch_keys(live))
    return "\n".join(lines).rstrip("\n") + "\n"


def stale_line(out: Path) -> str:
    """The one line ``--check`` prints when ``out`` differs from what the code generates."""
    return f"{out} is stale (it differs from what the code generates); regenerate it with: {REGENERATE} --out {out}"


def main(args: Any) -> int:
    """``livegen docs osc [--out FILE] [--check]``."""
    out = Path(args.out)
    try:
        text = render()
    except ValueError as e:  # a table entry without its description, an example that no longer loads
        print(f"livegen docs osc: cannot generate {out}: {e}", file=sys.stderr)
        return 2
    if args.check:
        try:
            current = out.read_text(encoding="utf-8")
        except OSError:
            current = None
        if current != text:
            print(stale_line(out), file=sys.stderr)
            return 1
        print(f"{out} is up to date")
        return 0
    from livegen.atomic import atomic_write

    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out, binary=False) as f:
        f.write(text)
    print(f"wrote {out}")
    return 0
