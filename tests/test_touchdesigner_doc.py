"""docs/touchdesigner.md against what livegen and patches/touchdesigner.toml really do.

Every OSC address the page names must be one the patch maps, one livegen answers to (its
OSC table) or one livegen sends (taken from real datagrams of livegen's OSC output), with
parameter names the patch really has; every TouchDesigner channel name it shows must be the
one TouchDesigner makes of such an address (`/` kept, other characters outside
``A-Za-z0-9_:-`` turned into ``_``, ``_1``, ``_2``... per argument when there are several);
every address the patch maps must be on the page, with what it drives; and the ports the
page tells you to type are the patch's.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from pythonosc.osc_message import OscMessage

from livegen.control.osc_addresses import lookup
from livegen.events import AllNotesOff, Beat, NoteOff, NoteOn, ParamChanged
from livegen.music.generator import create_generator
from livegen.outputs.osc_out import OscOutput
from livegen.patch.loader import load_patch

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "touchdesigner.md"
PATCH = ROOT / "patches" / "touchdesigner.toml"
ADDRESS = re.compile(r"(?<![\w./])/(?:td|livegen)(?:/[A-Za-z0-9<][A-Za-z0-9_.:<>-]*)*")


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text()


@pytest.fixture(scope="module")
def patch():
    return load_patch(PATCH)


@pytest.fixture(scope="module")
def params(patch) -> set[str]:
    """The parameters `livegen play` declares for the patch (its visuals are off)."""
    from livegen.engine import engine_param_specs
    from livegen.sound.synth import Synth, voices_with

    names = {s.name for s in engine_param_specs()}
    names |= {s.name for s in Synth(patch.audio.sample_rate, voices=voices_with(patch.voices)).param_specs()}
    for g in patch.generators:
        names |= {f"{g.name}.{s.name}" for s in create_generator(g.kind, g.name, seed=g.seed, **dict(g.options)).param_specs()}
    return names


@pytest.fixture(scope="module")
def sent(patch) -> dict[str, int]:
    """Address -> number of arguments of what livegen's OSC output sends to the patch's target,
    read from real datagrams (``<name>`` standing for a parameter)."""
    (target,) = patch.osc.targets
    events = [NoteOn(0.0, 60, 100, 0), NoteOff(0.0, 60, 0), Beat(0.0, 5, 1, 1, 120.0),
              ParamChanged(0.0, "arp.density", 0.5), AllNotesOff(0.0)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2.0)
        out = OscOutput(target.name, "127.0.0.1", sock.getsockname()[1], target.prefix, target.send)
        for e in events:
            out.send(e)
        out.close()
        messages = [OscMessage(sock.recv(1024)) for _ in events]
    result = {}
    for m in messages:
        address = re.sub(r"^(/livegen/param/)arp\.density$", r"\1<name>", m.address)
        result[address] = len(m.params)
    return result


def td_channels(address: str, nargs: int) -> list[str]:
    """The OSC In CHOP channels TouchDesigner makes of a message."""
    name = re.sub(r"[^A-Za-z0-9_:/-]", "_", address)
    return [f"{name}_{i}" for i in range(1, nargs + 1)] if nargs > 1 else [name]


def test_every_address_on_the_page_is_real(doc, patch, params, sent) -> None:
    mapped = {m.address for m in patch.osc.maps} | {t.address for t in patch.osc.triggers}
    channels = {c for a, n in sent.items() if "<" not in a for c in td_channels(a, n)}
    channels |= {c for p in params for c in td_channels(f"/livegen/param/{p}", 1)}
    named = {t.rstrip(".") for t in ADDRESS.findall(doc)} - {"/td", "/livegen"}
    assert len(named) > 20
    for token in sorted(named):
        if token in mapped or token in channels:
            continue
        generic = re.sub(r"^(/livegen/param/)[^/]+$", r"\1<name>", token)
        if generic in sent:
            if generic != token:
                name = token.split("/")[3]
                assert name in params, f"{token}: no parameter {name} in {PATCH.name}"
            continue
        found = lookup(token)
        assert found is not None, f"{token} is neither mapped by {PATCH.name}, answered by livegen, nor sent by it"
        _, name = found
        assert name is None or name == "<name>" or name in params, f"{token}: no parameter {name} in {PATCH.name}"


def test_channel_names_are_what_touchdesigner_makes(doc, sent, params) -> None:
    rows = re.findall(r"^\| `(/livegen/[^`]+)` \| (`/livegen/.*)\|$", doc, re.M)
    assert len(rows) >= 4
    for address, cell in rows:
        shown = re.findall(r"`(/livegen/[^`]+)`", cell)
        generic = re.sub(r"^(/livegen/param/)[^/]+$", r"\1<name>", address)
        assert generic in sent, address
        assert generic == address or address.split("/")[3] in params, address
        assert shown == td_channels(address, sent[generic]), (address, shown)
    assert {"/livegen/beat", "/livegen/note"} <= {a for a, _ in rows}


def test_every_mapped_address_is_on_the_page(doc, patch) -> None:
    table = doc[doc.index("## Every address"):]
    for m in patch.osc.maps:
        (row,) = [line for line in table.splitlines() if line.startswith(f"| `{m.address}` |")]
        assert f"`{m.param}`" in row, row
    for t in patch.osc.triggers:
        (row,) = [line for line in table.splitlines() if line.startswith(f"| `{t.address}` |")]
        assert f"`{t.action}`" in row, row
    for addr in list(m.address for m in patch.osc.maps) + [t.address for t in patch.osc.triggers]:
        assert doc.count(f"`{addr}`") >= 2, f"{addr} is in the table but never explained"


def test_ports_on_the_page_are_the_patchs(doc, patch) -> None:
    (target,) = patch.osc.targets
    assert f"UDP `{patch.osc.host}` port `{patch.osc.port}`" in doc
    assert f"UDP `{target.host}` port `{target.port}`" in doc
    typed = [int(p) for p in re.findall(r"\*\*Network Port\*\*\s+`(\d+)`", doc)]
    assert typed.count(patch.osc.port) >= 2 and target.port in typed  # OSC Out CHOP + DAT; OSC In
    assert set(typed) == {patch.osc.port, target.port}
    assert set(re.findall(r"\*\*Network Address\*\*\s+`([^`]+)`", doc)) == {patch.osc.host}
    assert f"`{target.prefix}`" in doc
