"""examples/max/livegen.maxpat as a file: Max is not installed here (nor installable on Linux).

So the patch is checked the way Max would read it: JSON with a patcher of boxes and
patchlines, each box with the inlet and outlet counts Max gives that object, each
patchline between existing boxes within those counts, signals only into signal objects.
Then its network side is checked against livegen itself: the UDP ports of
patches/touchdesigner.toml and patches/puredata.toml, every address it sends is one
livegen's OSC table answers to with a parameter both patches have, and every address it
routes is one livegen sends.
"""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import Any

import pytest

from livegen.control.osc_addresses import lookup
from livegen.control.params import ParamSpec
from livegen.music.generator import create_generator
from livegen.patch.loader import load_patch
from livegen.patch.schema import TRIGGER_ACTIONS

ROOT = Path(__file__).resolve().parent.parent
MAX_PATCH = ROOT / "examples" / "max" / "livegen.maxpat"
PATCHES = [ROOT / "patches" / "touchdesigner.toml", ROOT / "patches" / "puredata.toml"]
ECHO_ADDRESS = "/livegen/echo"  # the echo contract's answer, sent to the benchmark, not to livegen

#: Inlets and outlets of Max's own boxes (Max 8 object reference); newobj boxes below.
UI_IO = {"message": (2, 1), "comment": (1, 0), "button": (1, 1), "toggle": (1, 1), "number": (1, 2),
         "flonum": (1, 2), "live.dial": (1, 2), "ezdac~": (2, 0)}
FIXED_IO = {"udpsend": (1, 0), "udpreceive": (1, 1), "prepend": (1, 1), "print": (1, 0), "mtof": (1, 1),
            "==": (2, 1), "/": (2, 1), "*": (2, 1), "*~": (2, 1), "cycle~": (2, 1), "line~": (2, 2),
            "loadbang": (1, 1)}


def expected_io(box: dict[str, Any]) -> tuple[int, int]:
    """How many inlets and outlets Max creates for this box."""
    if box["maxclass"] != "newobj":
        return UI_IO[box["maxclass"]]
    name, *args = box["text"].split()
    if name == "route":  # one inlet per argument to change it, plus the input
        return len(args) + 1, len(args) + 1
    if name in ("sel", "select"):
        return (2 if len(args) <= 1 else 1), len(args) + 1
    if name in ("unpack", "t", "trigger"):
        return 1, len(args)
    if name == "pack":
        return len(args), 1
    if name == "gate":
        return 2, int(args[0]) if args else 1
    return FIXED_IO[name]


@pytest.fixture(scope="module")
def patcher() -> dict[str, Any]:
    data = json.loads(MAX_PATCH.read_text())
    return data["patcher"]


@pytest.fixture(scope="module")
def boxes(patcher) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for entry in patcher["boxes"]:
        box = entry["box"]
        assert box["id"] not in out, f"duplicate box id {box['id']}"
        out[box["id"]] = box
    return out


@pytest.fixture(scope="module")
def edges(patcher) -> list[tuple[str, int, str, int]]:
    return [(*line["patchline"]["source"], *line["patchline"]["destination"]) for line in patcher["lines"]]


def by_text(boxes: dict[str, dict[str, Any]], first_word: str) -> list[dict[str, Any]]:
    return [b for b in boxes.values() if b["maxclass"] == "newobj" and b["text"].split()[0] == first_word]


def reaches(edges: list[tuple[str, int, str, int]], start: str, goal: str) -> bool:
    seen, todo = {start}, deque([start])
    while todo:
        node = todo.popleft()
        if node == goal:
            return True
        for src, _, dst, _ in edges:
            if src == node and dst not in seen:
                seen.add(dst)
                todo.append(dst)
    return False


def params_of(path: Path) -> set[str]:
    """The parameters `livegen play` declares for a patch (without visuals)."""
    from livegen.engine import engine_param_specs
    from livegen.sound.synth import Synth, voices_with

    patch = load_patch(path)
    specs: list[ParamSpec] = [*engine_param_specs(), *Synth(patch.audio.sample_rate, voices=voices_with(patch.voices)).param_specs()]
    names = {s.name for s in specs}
    for g in patch.generators:
        names |= {f"{g.name}.{s.name}" for s in create_generator(g.kind, g.name, seed=g.seed, **dict(g.options)).param_specs()}
    return names


# -- the file as Max reads it ----------------------------------------------------------------
def test_boxes_have_the_inlets_and_outlets_max_gives_them(boxes) -> None:
    assert len(boxes) > 30
    for box in boxes.values():
        ins, outs = expected_io(box)
        what = f"{box['id']} {box['maxclass']} {box.get('text', '')!r}"
        assert (box["numinlets"], box["numoutlets"]) == (ins, outs), what
        assert len(box.get("outlettype", [])) == outs, what
        assert len(box["patching_rect"]) == 4, what
        if box["maxclass"] == "live.dial":
            values = box["saved_attribute_attributes"]["valueof"]
            assert (values["parameter_mmin"], values["parameter_mmax"]) == (0.0, 1.0), what
    names = [b["saved_attribute_attributes"]["valueof"]["parameter_longname"] for b in boxes.values()
             if b["maxclass"] == "live.dial"]
    assert len(names) == len(set(names)), "live.dial parameter names must be unique in a patcher"


def test_patchlines_connect_existing_inlets_and_outlets(boxes, edges) -> None:
    assert len(edges) > 30
    for src, outlet, dst, inlet in edges:
        assert src in boxes and dst in boxes, (src, dst)
        assert 0 <= outlet < boxes[src]["numoutlets"], (src, outlet)
        assert 0 <= inlet < boxes[dst]["numinlets"], (dst, inlet)
        if boxes[src]["outlettype"][outlet] == "signal":  # signals only into MSP objects
            dst_box = boxes[dst]
            assert dst_box["maxclass"].endswith("~") or dst_box.get("text", "").split()[0].endswith("~"), (src, dst)
    assert len(set(edges)) == len(edges), "duplicate patchline"
    connected = {e[0] for e in edges} | {e[2] for e in edges}
    loose = [b["id"] for b in boxes.values() if b["maxclass"] != "comment" and b["id"] not in connected]
    assert not loose, f"boxes connected to nothing: {loose}"


def test_synth_voice_reaches_the_speaker(boxes, edges) -> None:
    (receive,) = by_text(boxes, "udpreceive")
    (osc,) = by_text(boxes, "cycle~")
    (env,) = by_text(boxes, "line~")
    (vca,) = by_text(boxes, "*~")
    (dac,) = [b for b in boxes.values() if b["maxclass"] == "ezdac~"]
    assert (osc["id"], 0, vca["id"], 0) in edges and (env["id"], 0, vca["id"], 1) in edges
    assert {(vca["id"], 0, dac["id"], 0), (vca["id"], 0, dac["id"], 1)} <= set(edges)
    assert reaches(edges, receive["id"], osc["id"]) and reaches(edges, receive["id"], env["id"])
    envelopes = [b["text"] for b in boxes.values() if b["maxclass"] == "message" and reaches(edges, b["id"], env["id"])]
    assert any("$1" in t for t in envelopes) and "0 20" in envelopes  # note-on ramp and panic fade


# -- the network side against livegen -----------------------------------------------------------
def test_ports_match_livegens_patches(boxes) -> None:
    (send,) = by_text(boxes, "udpsend")
    (receive,) = by_text(boxes, "udpreceive")
    _, host, port = send["text"].split()
    for path in PATCHES:
        patch = load_patch(path)
        assert (patch.osc.host, patch.osc.port) == (host, int(port)), path.name
        assert [(t.host, t.port, t.prefix) for t in patch.osc.targets] == [(host, int(receive["text"].split()[1]), "/livegen")], path.name


def sent_addresses(boxes, edges) -> list[tuple[str, list[str]]]:
    """(address, arguments in the box) of every message box or prepend that feeds udpsend."""
    (send,) = by_text(boxes, "udpsend")
    out = []
    for box in boxes.values():
        words = box.get("text", "").split()
        if box["maxclass"] == "message" and words and words[0].startswith("/"):
            out.append((words[0], words[1:]))
        elif box["maxclass"] == "newobj" and words[:1] == ["prepend"] and words[1].startswith("/"):
            out.append((words[1], ["<value>"]))
        else:
            continue
        assert reaches(edges, box["id"], send["id"]), f"{words} does not reach udpsend"
    return out


def test_every_address_sent_is_one_livegen_answers(boxes, edges) -> None:
    common = params_of(PATCHES[0]) & params_of(PATCHES[1])
    sent = sent_addresses(boxes, edges)
    addresses = {a for a, _ in sent}
    assert {"/livegen/trigger", "/livegen/panic", "/livegen/tempo", ECHO_ADDRESS} <= addresses
    units = [a for a in addresses if a.endswith("/unit")]
    assert len(units) >= 4
    for address, args in sent:
        if address == ECHO_ADDRESS:
            continue
        found = lookup(address)
        assert found is not None, f"livegen does not answer to {address}"
        entry, name = found
        if name is not None:
            assert name in common, f"{address}: {name} is not a parameter of both patches"
        if entry.args == "s":
            assert args and args[0] in TRIGGER_ACTIONS, (address, args)
        elif entry.args == "":
            assert args == [], (address, args)


def test_every_address_routed_is_one_livegen_sends(boxes, edges) -> None:
    (receive,) = by_text(boxes, "udpreceive")
    routes = [b for b in by_text(boxes, "route") if (receive["id"], 0, b["id"], 0) in edges]
    assert len(routes) == 1
    routed = routes[0]["text"].split()[1:]
    assert {"/livegen/note", "/livegen/beat", "/livegen/panic"} <= set(routed)
    common = params_of(PATCHES[0]) & params_of(PATCHES[1])
    for address in routed:
        if address.startswith("/livegen/param/"):
            assert address.removeprefix("/livegen/param/") in common, address
        else:
            assert address in ("/livegen/note", "/livegen/beat", "/livegen/panic"), address
