"""docs/osc.md is generated from the code's own tables, and the tests fail when it is stale.

The outgoing-message table is also what ``OscOutput`` encodes from: every event type is sent
over real UDP and the datagram checked against its row.
"""

from __future__ import annotations

import dataclasses
import socket
import typing
from pathlib import Path

import pytest

from livegen import cli
from livegen.control import osc_addresses, osc_reference
from livegen.control.osc_addresses import OscAddress
from livegen.control.osc_server import parse_message
from livegen.events import AllNotesOff, Beat, ClockTick, NoteOff, NoteOn, OutEvent, ParamChanged, Transport
from livegen.outputs.osc_out import OUT_MESSAGES, SEND_KINDS, OscOutput

REPO = Path(__file__).resolve().parent.parent
COMMITTED = REPO / "docs" / "osc.md"
HOST = "127.0.0.1"

SAMPLE_EVENTS: dict[type, OutEvent] = {
    NoteOn: NoteOn(0.0, 62, 101, channel=3),
    NoteOff: NoteOff(0.0, 62, channel=3),
    AllNotesOff: AllNotesOff(0.0),
    Beat: Beat(0.0, beat=33, bar=8, beat_in_bar=1, bpm=126.5),
    ParamChanged: ParamChanged(0.0, "synth.lead.cutoff", 880.5),
    ClockTick: ClockTick(0.0),
    Transport: Transport(0.0, "continue", 32),
}


def _docs_osc(*argv: str, log_file: Path) -> int:
    return cli.main(["--log-file", str(log_file), "docs", "osc", *argv])


# -- the committed file ------------------------------------------------------------------
def test_committed_reference_is_what_the_code_generates() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == osc_reference.render(), \
        "docs/osc.md is stale: run `livegen docs osc` and commit the result"


def test_check_passes_on_the_committed_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _docs_osc("--check", "--out", str(COMMITTED), log_file=tmp_path / "log") == 0
    assert "up to date" in capsys.readouterr().out


def test_a_new_address_in_the_table_makes_the_check_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    extra = OscAddress("/livegen/blackout", "f", "Fade the visuals to black.",
                       arguments=("fade time in seconds, 0..10",))
    monkeypatch.setattr(osc_addresses, "ADDRESSES", (*osc_addresses.ADDRESSES, extra))
    assert "`/livegen/blackout`" in osc_reference.render()
    assert _docs_osc("--check", "--out", str(COMMITTED), log_file=tmp_path / "log") == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert "stale" in err[0] and f"livegen docs osc --out {COMMITTED}" in err[0]


def test_writing_then_checking_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "docs" / "osc.md"
    assert _docs_osc("--check", "--out", str(out), log_file=tmp_path / "log") == 1  # missing is stale too
    assert _docs_osc("--out", str(out), log_file=tmp_path / "log") == 0
    assert out.read_text(encoding="utf-8") == osc_reference.render()
    assert _docs_osc("--check", "--out", str(out), log_file=tmp_path / "log") == 0


def test_an_address_without_argument_descriptions_cannot_be_documented(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(osc_addresses, "ADDRESSES",
                        (*osc_addresses.ADDRESSES, OscAddress("/livegen/blackout", "f", "Fade to black.")))
    with pytest.raises(ValueError, match="/livegen/blackout: 1 type tags but 0 argument descriptions"):
        osc_reference.render()
    assert _docs_osc("--out", str(tmp_path / "osc.md"), log_file=tmp_path / "log") == 2
    assert not (tmp_path / "osc.md").exists()
    assert "/livegen/blackout" in capsys.readouterr().err


def test_a_placeholder_needs_a_description(monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-instance addresses (``/livegen/<instance>/...``) land as data: the placeholder too."""
    extra = OscAddress("/livegen/<instance>/tempo", "f", "Set one instance's tempo.", arguments=("BPM",))
    monkeypatch.setattr(osc_addresses, "ADDRESSES", (*osc_addresses.ADDRESSES, extra))
    with pytest.raises(ValueError, match="instance"):
        osc_reference.render()
    monkeypatch.setitem(osc_addresses.PLACEHOLDERS, "instance", "the name of a livegen instance")
    assert "`<instance>` in an address stands for the name of a livegen instance." in osc_reference.render()


def test_an_undescribed_patch_key_cannot_be_documented(monkeypatch: pytest.MonkeyPatch) -> None:
    section = osc_reference.PATCH_SECTIONS[-1]  # [[osc.targets]]
    fewer = dataclasses.replace(section, keys=tuple(k for k in section.keys if k.key != "prefix"))
    monkeypatch.setattr(osc_reference, "PATCH_SECTIONS", (*osc_reference.PATCH_SECTIONS[:-1], fewer))
    with pytest.raises(ValueError, match="prefix"):
        osc_reference.render()


def test_every_parameter_of_the_default_patch_is_listed_with_its_range() -> None:
    text = osc_reference.render()
    live = osc_reference.live_parameters(str(osc_reference.DEFAULT_PATCH))
    names = {spec.name for spec, _ in live.params}
    assert {"tempo", "rnn.temperature", "arp.density", "synth.lead.cutoff", "style.intensity"} <= names
    for spec, start in live.params:
        assert f"| `{spec.name}` | {spec.min:g}..{spec.max:g}" in text
    assert "`patches/default.toml`" in text


# -- the outgoing table is what OscOutput sends ---------------------------------------------
def test_every_output_event_has_exactly_one_row() -> None:
    events = typing.get_args(OutEvent)
    assert sorted(m.event.__name__ for m in OUT_MESSAGES) == sorted(e.__name__ for e in events)
    assert {m.kind for m in OUT_MESSAGES} == set(SEND_KINDS)
    for m in OUT_MESSAGES:
        assert len(m.arguments) == len(m.tags), m


@pytest.mark.parametrize("row", OUT_MESSAGES, ids=[m.event.__name__ for m in OUT_MESSAGES])
def test_each_encoded_event_matches_its_row(row) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind((HOST, 0))
    receiver.settimeout(2.0)
    out = OscOutput("doc", HOST, receiver.getsockname()[1], prefix="/show", send=SEND_KINDS)
    try:
        event = SAMPLE_EVENTS[row.event]
        out.send(event)
        msg = parse_message(receiver.recvfrom(65536)[0])
    finally:
        out.close()
        receiver.close()
    expected = "/show" + row.suffix.replace("<name>", getattr(event, "name", ""))
    assert msg.address == expected
    assert msg.tags == row.tags
    assert list(msg.args) == pytest.approx(list(row.values(event)))
    if row.event is NoteOff:
        assert msg.args[1] == 0  # note-off travels as velocity 0


def test_a_kind_left_out_of_send_sends_nothing() -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind((HOST, 0))
    receiver.settimeout(0.2)
    out = OscOutput("doc", HOST, receiver.getsockname()[1], send=("beats",))
    try:
        for row in OUT_MESSAGES:
            out.send(SAMPLE_EVENTS[row.event])
        got = [parse_message(receiver.recvfrom(65536)[0]).address]
        with pytest.raises(socket.timeout):
            receiver.recvfrom(65536)
    finally:
        out.close()
        receiver.close()
    assert got == ["/livegen/beat"]


def test_parameters_of_sources_the_default_patch_does_not_use_are_listed_too() -> None:
    """Every latent.* parameter the latent source declares is in the reference, once, with
    the value patches/latent.toml starts it at."""
    from livegen.visuals import latent_source

    text = osc_reference.render()
    specs = [v for v in vars(latent_source).values() if isinstance(v, osc_reference.ParamSpec)
             and v.name.startswith("latent.")]
    assert len(specs) >= 6
    for spec in specs:
        assert text.count(f"| `{spec.name}` |") == 1, spec.name
    assert "### latent (in `patches/latent.toml`)" in text
    assert "| `latent.bars` | 0..16 (integer) | — | 1 | 2 |" in text  # default 1, the patch starts it at 2
