"""Patches: shipped files load, errors point at file:line:key, live reload, MIDI-learn save."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livegen.control.mapping import MidiMap
from livegen.control.params import ParamSpec
from livegen.patch import (
    Patch,
    PatchError,
    PatchWatcher,
    add_midi_map,
    check_params,
    load_patch,
    locate,
    parse_patch,
)

PATCHES = Path(__file__).resolve().parent.parent / "patches"


def error_of(text: str, file: str = "live.toml") -> PatchError:
    with pytest.raises(PatchError) as info:
        parse_patch(text, file)
    err = info.value
    assert "\n" not in str(err)
    return err


# ---------------------------------------------------------------------------------------
# shipped patches
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["default", "touchdesigner", "midi-controller"])
def test_shipped_patches_load(name: str) -> None:
    patch = load_patch(PATCHES / f"{name}.toml")
    assert isinstance(patch, Patch)
    assert patch.name == name
    assert patch.path.endswith(f"{name}.toml")
    assert patch.source_text


def test_every_shipped_patch_is_tested() -> None:
    assert {p.stem for p in PATCHES.glob("*.toml")} >= {"default", "touchdesigner", "midi-controller"}
    for p in PATCHES.glob("*.toml"):
        load_patch(p)


def test_default_patch_is_musical() -> None:
    p = load_patch(PATCHES / "default.toml")
    assert 100 <= p.clock.bpm <= 120
    assert p.key.scale in ("minor", "dorian")
    assert p.key.key.scale == p.key.scale
    arp = p.generator("arp")
    assert arp.kind == "arpeggiator"
    allowed = {"density", "low", "high", "rest", "step", "pattern", "gate", "velocity", "swing", "octaves"}
    assert set(arp.params) <= allowed
    assert (p.osc.host, p.osc.port) == ("127.0.0.1", 9000)
    assert p.midi.inputs == ("*",)
    assert len(p.scenes) >= 2
    assert "lead" in p.voices


def test_touchdesigner_patch_layout() -> None:
    p = load_patch(PATCHES / "touchdesigner.toml")
    addresses = {m.address: m for m in p.osc.maps}
    assert {"/td/density", "/td/cutoff", "/td/tempo"} <= set(addresses)
    assert addresses["/td/tempo"].param == "tempo"
    actions = {t.address: t.action for t in p.osc.triggers}
    assert actions["/td/mutate"] == "mutate" and actions["/td/panic"] == "panic"
    (target,) = p.osc.targets
    assert (target.host, target.port) == ("127.0.0.1", 7000)
    assert set(target.send) == {"notes", "beats", "params"}


def test_midi_controller_patch_layout() -> None:
    p = load_patch(PATCHES / "midi-controller.toml")
    by_cc = {m.cc: m for m in p.midi.maps}
    assert sorted(by_cc) == list(range(70, 78))
    assert by_cc[76].param == "tempo" and (by_cc[76].min, by_cc[76].max) == (40.0, 240.0)
    assert {m.param for m in p.midi.maps} >= {
        "arp.density", "arp.rest", "arp.gate", "synth.lead.cutoff", "synth.lead.release",
        "synth.master", "tempo", "visuals.brightness",
    }
    pads = {t.note: t.action for t in p.midi.triggers}
    assert sorted(pads) == list(range(36, 44))
    assert {"mutate", "answer", "panic", "tap", "start", "stop"} <= set(pads.values())
    assert any(a.startswith("scene:") for a in pads.values())
    assert "cc14 = true" in p.source_text  # the 14-bit example is there for the performer


def test_shipped_patches_use_declared_parameters() -> None:
    """Every parameter a shipped patch names exists, in range, in the real modules."""
    arp = pytest.importorskip("livegen.music.arpeggiator")
    synth = pytest.importorskip("livegen.sound.synth")
    vis = pytest.importorskip("livegen.visuals.scenes")
    from livegen.music.generator import create_generator

    specs: dict[str, ParamSpec] = {"tempo": ParamSpec("tempo", 120.0, 20.0, 300.0)}
    specs[synth.MASTER_PARAM] = ParamSpec(synth.MASTER_PARAM, 0.5)
    for voice, preset in synth.DEFAULT_VOICES.items():
        for fld, (lo, hi, *_rest) in synth.VOICE_PARAMS.items():
            name = f"synth.{voice}.{fld}"
            specs[name] = ParamSpec(name, float(getattr(preset, fld)), lo, hi)
    specs[vis.BRIGHTNESS.name] = vis.BRIGHTNESS
    assert arp is not None
    for path in sorted(PATCHES.glob("*.toml")):
        patch = load_patch(path)
        known = dict(specs)
        for g in patch.generators:
            for s in create_generator(g.kind, g.name, seed=g.seed, **g.options).param_specs():
                known[f"{g.name}.{s.name}"] = ParamSpec(f"{g.name}.{s.name}", s.default, s.min, s.max)
        from livegen.visuals.pipeline import build_pipeline

        pipeline = build_pipeline(patch.visuals, worker=False, warn=pytest.fail)
        known.update({s.name: s for s in pipeline.param_specs()})
        check_params(patch, known)
        for voice, fields in patch.voices.items():  # the synth accepts the overrides
            base = synth.DEFAULT_VOICES.get(voice, synth.VoiceSpec())
            dataclasses.replace(base, **fields)


# ---------------------------------------------------------------------------------------
# values
# ---------------------------------------------------------------------------------------
def test_empty_patch_gets_defaults() -> None:
    p = parse_patch("", "/tmp/my-set.toml")
    assert p.name == "my-set"
    assert p.clock.bpm == 120.0 and p.clock.beats_per_bar == 4 and p.clock.source == "internal"
    assert str(p.key.key) == "C major"
    assert p.midi.inputs == ("*",) and p.midi.outputs == () and p.midi.virtual_output
    assert (p.osc.host, p.osc.port, p.osc.enabled) == ("127.0.0.1", 9000, True)
    assert p.supercollider.port == 57110 and not p.supercollider.enabled
    assert p.visuals.fps == 30 and p.audio.master_gain == 0.5
    assert p.generators == () and p.scenes == {} and p.params == {}
    assert p.path == "/tmp/my-set.toml"
    assert parse_patch("").path is None and parse_patch("").name == "untitled"


def test_full_sections_parse() -> None:
    text = """
[key]
tonic = "Bb"
scale = "minor"

[audio]
device = 2

[[generators]]
name = "bass_1"
kind = "arpeggiator"
seed = 3
options = { pattern = "up" }
[generators.params]
density = 0.5

[[osc.targets]]
name = "max"
port = 7400
send = ["clock"]

[scenes.verse]
bpm = 90
"arp.density" = 0.25

[params]
"synth.master" = 1
"""
    p = parse_patch(text)
    assert p.key.key.tonic == 10
    assert p.audio.device == 2
    g = p.generators[0]
    assert (g.name, g.seed, g.params, g.options) == ("bass_1", 3, {"density": 0.5}, {"pattern": "up"})
    assert p.osc.targets[0].send == ("clock",) and p.osc.targets[0].prefix == "/livegen"
    assert p.scenes == {"verse": {"bpm": 90.0, "arp.density": 0.25}}
    assert p.params == {"synth.master": 1.0} and isinstance(p.params["synth.master"], float)


def test_midi_channels_are_one_based_in_the_file() -> None:
    p = parse_patch("""
[[midi.map]]
param = "a"
cc = 1
channel = 1

[[midi.map]]
param = "b"
pitchbend = true
channel = 16

[[midi.map]]
param = "c"
cc = 3

[[midi.triggers]]
action = "panic"
note = 36
channel = 10
""")
    assert [m.channel for m in p.midi.maps] == [0, 15, None]
    assert p.midi.maps[1].pitchbend and p.midi.maps[1].cc is None
    assert p.midi.triggers[0].channel == 9
    err = error_of("[[midi.map]]\nparam = 'a'\ncc = 1\nchannel = 17\n")
    assert str(err).startswith("live.toml:4: midi.map[0].channel: expected an integer in 1..16, got 17")


# ---------------------------------------------------------------------------------------
# error messages: file:line: key: message
# ---------------------------------------------------------------------------------------
def test_wrong_type() -> None:
    err = error_of('[patch]\nname = "x"\n\n[clock]\nbpm = "fast"\n')
    assert str(err) == "live.toml:5: clock.bpm: expected a number in 20..300, got 'fast'"
    assert (err.file, err.line, err.key) == ("live.toml", 5, "clock.bpm")
    err = error_of("[osc]\nenabled = 1\n")
    assert str(err) == "live.toml:2: osc.enabled: expected true or false, got 1"


def test_out_of_range() -> None:
    err = error_of("# a comment\n[clock]\n  bpm = 500\n")
    assert str(err) == "live.toml:3: clock.bpm: expected a number in 20..300, got 500"
    err = error_of("[audio]\nmaster_gain = 1.5\n")
    assert str(err).startswith("live.toml:2: audio.master_gain: expected a number in 0..1, got 1.5")


def test_unknown_key_with_suggestion() -> None:
    err = error_of("[clock]\nbpm = 100\nbeats_per_barr = 3\n")
    assert str(err) == "live.toml:3: clock.beats_per_barr: unknown key 'beats_per_barr' (did you mean 'beats_per_bar'?)"
    err = error_of("[clock]\nbpm = 100\n\n[visual]\nfps = 30\n")
    assert str(err) == "live.toml:4: visual: unknown key 'visual' (did you mean 'visuals'?)"
    err = error_of("[[generators]]\nname = 'a'\n\n[[generators]]\nname = 'b'\nchanel = 3\n")
    assert str(err) == "live.toml:6: generators[1].chanel: unknown key 'chanel' (did you mean 'channel'?)"


def test_unknown_scale() -> None:
    err = error_of('[key]\ntonic = "D"\nscale = "dorain"\n')
    assert err.line == 3 and err.key == "key.scale"
    assert "did you mean 'dorian'?" in str(err) and str(err).endswith("got 'dorain'")
    err = error_of('[key]\ntonic = "H"\n')
    assert (err.line, err.key) == (2, "key.tonic")


def test_bad_curve() -> None:
    text = "[[midi.map]]\nparam = 'a'\ncc = 1\n\n[[midi.map]]\nparam = 'b'\ncc = 2\ncurve = 'expo'\n"
    err = error_of(text)
    assert (err.line, err.key) == (8, "midi.map[1].curve")
    assert "got 'expo'" in str(err) and "'exp'" in str(err)
    err = error_of("[[osc.map]]\naddress = '/x'\nparam = 'a'\ncurve = 'wiggly'\n")
    assert (err.line, err.key) == (4, "osc.map[0].curve")


def test_duplicate_generator_name() -> None:
    text = "[[generators]]\nname = 'arp'\n\n[[generators]]\nkind = 'arpeggiator'\nname = 'arp'\n"
    err = error_of(text)
    assert (err.line, err.key) == (6, "generators[1].name")
    assert "unique" in str(err) and str(err).endswith("got 'arp'")
    err = error_of("[[generators]]\nname = 'Arp'\n")
    assert err.key == "generators[0].name"
    err = error_of("[[generators]]\nkind = 'arpeggiator'\n")
    assert (err.line, err.key) == (1, "generators[0]") and "name" in err.message


def test_generator_kind_checked_against_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    import livegen.patch.loader as loader

    text = "[[generators]]\nname = 'm'\nkind = 'markovv'\n"
    monkeypatch.setattr(loader, "generator_kinds", lambda: [])
    assert parse_patch(text).generators[0].kind == "markovv"  # nothing registered: not checked
    monkeypatch.setattr(loader, "generator_kinds", lambda: ["arpeggiator", "markov"])
    err = error_of(text)
    assert (err.line, err.key) == (3, "generators[0].kind") and "did you mean 'markov'?" in str(err)


def test_voice_overrides_checked() -> None:
    p = parse_patch("[voices.lead]\nwaveform = 'sine'\ncutoff = 800\n")
    assert p.voices == {"lead": {"waveform": "sine", "cutoff": 800.0}}
    err = error_of("[voices.lead]\nwaveform = 'sine'\ncutof = 800\n")
    assert (err.line, err.key) == (3, "voices.lead.cutof") and "did you mean 'cutoff'?" in str(err)
    err = error_of("[voices.bass]\nwaveform = 'sawtooth'\n")
    assert (err.line, err.key) == (2, "voices.bass.waveform")


def test_toml_syntax_error() -> None:
    err = error_of('[clock]\nbpm = 120\nbeats_per_bar = = 4\n')
    assert err.line == 3 and str(err).startswith("live.toml:3: TOML syntax error:")
    err = error_of('[clock]\nbpm = [1,')
    assert err.line == 2


def test_cc14_needs_a_low_cc() -> None:
    err = error_of("[[midi.map]]\nparam = 'a'\ncc14 = true\ncc = 40\n")
    assert (err.line, err.key) == (4, "midi.map[0].cc")
    assert str(err).endswith("got 40")
    p = parse_patch("[[midi.map]]\nparam = 'a'\ncc14 = true\ncc = 1\n")
    assert p.midi.maps[0].cc14 and p.midi.maps[0].cc == 1


def test_cc_and_pitchbend_are_exclusive() -> None:
    err = error_of("[[midi.map]]\nparam = 'a'\ncc = 4\npitchbend = true\n")
    assert (err.line, err.key) == (4, "midi.map[0].pitchbend")
    err = error_of("[midi]\ninputs = []\n\n[[midi.map]]\nparam = 'a'\n")
    assert (err.line, err.key) == (4, "midi.map[0]") and "neither" in str(err)


def test_trigger_checks() -> None:
    err = error_of("[[midi.triggers]]\naction = 'scene:nope'\nnote = 3\n")
    assert (err.line, err.key) == (2, "midi.triggers[0].action")
    err = error_of("[[midi.triggers]]\naction = 'mutatte'\nnote = 3\n")
    assert "did you mean 'mutate'?" in str(err)
    err = error_of("[[midi.triggers]]\naction = 'tap'\nnote = 3\ncc = 4\n")
    assert err.key == "midi.triggers[0]" and "both" in str(err)
    err = error_of("[[osc.triggers]]\naddress = 'td/go'\naction = 'start'\n")
    assert (err.line, err.key) == (2, "osc.triggers[0].address")


def test_locator_handles_inline_tables_quoted_keys_and_multiline_strings() -> None:
    text = '''[patch]
description = """
[clock]
bpm = 1
"""

[midi]
map = [
  { param = "a", cc = 1 },
  { param = "b", cc = 200 },
]

[scenes."big drop"]
"arp.density" = 0.5
'''
    err = error_of(text)
    assert (err.line, err.key) == (10, "midi.map[1].cc")
    err = error_of(text.replace("cc = 200", "cc = 2").replace("0.5", '"loud"'))
    assert (err.line, err.key) == (14, 'scenes."big drop"."arp.density"')
    assert locate(text, ("patch", "description")) == 2
    assert locate(text, ("clock", "bpm")) == 1  # inside a string: not a table
    assert locate(text, ("nowhere",)) == 1


def test_locator_counts_arrays_of_tables_and_dotted_headers() -> None:
    text = """[[generators]]
name = "a"
[generators.params]
density = 0.1

[[generators]]
name = "b"

[generators.params]
density = "x"
"""
    err = error_of(text)
    assert (err.line, err.key) == (10, "generators[1].params.density")
    assert locate(text, ("generators", 0, "params", "density")) == 4
    assert locate(text, ("generators", 1)) == 6


# ---------------------------------------------------------------------------------------
# check_params
# ---------------------------------------------------------------------------------------
KNOWN = {
    "arp.density": ParamSpec("arp.density", 0.5),
    "arp.rest": ParamSpec("arp.rest", 0.1),
    "synth.lead.cutoff": ParamSpec("synth.lead.cutoff", 2000, 20, 20000),
    "synth.master": ParamSpec("synth.master", 0.8),
    "tempo": ParamSpec("tempo", 120, 20, 300),
}


def test_check_params_finds_unknown_osc_param_with_line() -> None:
    text = """[osc]
port = 9000

[[osc.map]]
address = "/td/density"
param = "arp.density"

[[osc.map]]
address = "/td/cutoff"
param = "synth.lead.cutof"
"""
    patch = parse_patch(text, "td.toml")
    with pytest.raises(PatchError) as info:
        check_params(patch, KNOWN)
    assert str(info.value) == (
        "td.toml:10: osc.map[1].param: expected a known parameter (did you mean 'synth.lead.cutoff'?), "
        "got 'synth.lead.cutof'"
    )
    with pytest.raises(PatchError):
        check_params(patch, set(KNOWN))  # a plain collection of names works too


def test_check_params_ranges_and_other_places() -> None:
    ok = parse_patch('[params]\n"arp.density" = 0.3\n[[generators]]\nname = "arp"\n[generators.params]\ndensity = 0.2\n')
    check_params(ok, KNOWN)
    check_params(ok, list(KNOWN))
    err_cases = [
        ('[params]\n"arp.density" = 3.0\n', 2, 'params."arp.density"'),
        ('[scenes.a]\nbpm = 100\n"arp.rest" = -1\n', 3, 'scenes.a."arp.rest"'),
        ('[scenes.a]\n"arp.nope" = 0.1\n', 2, 'scenes.a."arp.nope"'),
        ('[[generators]]\nname = "arp"\n[generators.params]\ndensty = 0.2\n', 4, "generators[0].params.densty"),
        ('[[generators]]\nname = "arp"\n[generators.params]\ndensity = 2\n', 4, "generators[0].params.density"),
        ('[[midi.map]]\nparam = "tempo"\ncc = 1\nmax = 400\n', 4, "midi.map[0].max"),
        ('[[midi.triggers]]\naction = "learn:arp.dens"\nnote = 1\n', 2, "midi.triggers[0].action"),
    ]
    for text, line, key in err_cases:
        patch = parse_patch(text, "p.toml")
        with pytest.raises(PatchError) as info:
            check_params(patch, KNOWN)
        assert (info.value.line, info.value.key) == (line, key), text


# ---------------------------------------------------------------------------------------
# the watcher
# ---------------------------------------------------------------------------------------
def write_atomically(path: Path, text: str) -> None:
    """Save like an editor that writes a temp file and renames it over the original."""
    tmp = path.with_name(path.name + ".swp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def wait_for(cond, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.01)


def test_watcher_reloads_good_edits_and_keeps_last_good(tmp_path: Path) -> None:
    path = tmp_path / "live.toml"
    path.write_text("[clock]\nbpm = 100\n")
    changes: list[Patch] = []
    errors: list[Exception] = []

    async def main() -> None:
        watcher = PatchWatcher(path, changes.append, errors.append, interval=0.05)
        assert watcher.patch is not None and watcher.patch.clock.bpm == 100
        task = watcher.start()
        assert isinstance(task, asyncio.Task)
        await asyncio.sleep(0.15)
        assert changes == [] and errors == []  # the starting file is not re-delivered

        t0 = time.monotonic()
        path.write_text("[clock]\nbpm = 128\n")
        await wait_for(lambda: changes)
        assert time.monotonic() - t0 < 1.0
        assert changes[-1].clock.bpm == 128

        path.write_text("[clock]\nbpm = = 128\n")  # a bad edit
        await wait_for(lambda: errors)
        await asyncio.sleep(0.3)
        assert len(errors) == 1 and isinstance(errors[0], PatchError) and errors[0].line == 2
        assert len(changes) == 1 and watcher.patch.clock.bpm == 128

        write_atomically(path, "[clock]\nbpm = 90\n")  # fixed, saved by rename
        await wait_for(lambda: len(changes) == 2)
        assert changes[-1].clock.bpm == 90 and watcher.patch is changes[-1]
        assert len(errors) == 1

        path.unlink()  # deleted mid-edit: an error, not a crash
        await wait_for(lambda: len(errors) == 2)
        assert isinstance(errors[-1], OSError)
        path.write_text("[clock]\nbpm = 95\n")
        await wait_for(lambda: len(changes) == 3)
        assert changes[-1].clock.bpm == 95

        watcher.stop()
        await asyncio.sleep(0.1)
        assert task.done()

    asyncio.run(main())


def test_watcher_runs_validate_and_survives_broken_callbacks(tmp_path: Path) -> None:
    path = tmp_path / "live.toml"
    path.write_text('[params]\n"arp.density" = 0.5\n')
    seen: list[Patch] = []
    errors: list[Exception] = []

    def on_change(p: Patch) -> None:
        seen.append(p)
        raise RuntimeError("handler bug")

    async def main() -> None:
        watcher = PatchWatcher(path, on_change, errors.append, interval=0.05,
                               validate=lambda p: check_params(p, KNOWN))
        watcher.start()
        path.write_text('[params]\n"arp.densty" = 0.5\n')
        await wait_for(lambda: errors)
        assert isinstance(errors[0], PatchError) and errors[0].key == 'params."arp.densty"'
        path.write_text('[params]\n"arp.density" = 0.25\n')
        await wait_for(lambda: seen)
        path.write_text('[params]\n"arp.density" = 0.75\n\n')
        await wait_for(lambda: len(seen) == 2)  # still running after the handler raised
        assert seen[-1].params["arp.density"] == 0.75
        watcher.stop()

    asyncio.run(main())


def test_watcher_start_needs_a_running_loop(tmp_path: Path) -> None:
    path = tmp_path / "live.toml"
    path.write_text("")
    with pytest.raises(RuntimeError):
        PatchWatcher(path, lambda p: None, lambda e: None).start()


# ---------------------------------------------------------------------------------------
# saving MIDI-learned maps
# ---------------------------------------------------------------------------------------
def test_add_midi_map_keeps_comments_and_replaces_same_cc(tmp_path: Path) -> None:
    path = tmp_path / "live.toml"
    path.write_text("""# my set for tonight
[clock]
bpm = 100  # slow start

# knobs
[[midi.map]]
param = "arp.density"  # knob 1
cc = 70
channel = 1

[[midi.map]]
param = "arp.rest"
cc = 71

[osc]
port = 9000
""")
    add_midi_map(path, MidiMap(param="synth.lead.cutoff", cc=70, channel=0, min=200.0, max=8000.0, curve="exp"))
    text = path.read_text()
    assert "# my set for tonight" in text and "bpm = 100  # slow start" in text and "# knobs" in text
    p = load_patch(path)
    by_cc = {m.cc: m for m in p.midi.maps}
    assert len(p.midi.maps) == 2
    assert by_cc[70] == MidiMap(param="synth.lead.cutoff", cc=70, channel=0, min=200.0, max=8000.0, curve="exp")
    assert by_cc[71].param == "arp.rest"
    assert p.osc.port == 9000

    # same param, new knob: replaced, not duplicated
    add_midi_map(path, MidiMap(param="arp.rest", cc=72))
    p = load_patch(path)
    assert sorted((m.cc, m.param) for m in p.midi.maps) == [(70, "synth.lead.cutoff"), (72, "arp.rest")]

    # a new gesture is appended; pitch bend and 14-bit are written in the patch's own terms
    add_midi_map(path, MidiMap(param="tempo", pitchbend=True, channel=15))
    add_midi_map(path, MidiMap(param="synth.master", cc=1, cc14=True))
    p = load_patch(path)
    assert MidiMap(param="tempo", pitchbend=True, channel=15) in p.midi.maps
    assert MidiMap(param="synth.master", cc=1, cc14=True) in p.midi.maps
    assert "channel = 16" in path.read_text()
    assert "# my set for tonight" in path.read_text()
    assert not [f for f in os.listdir(tmp_path) if f != "live.toml"]  # no temp files left


def test_add_midi_map_to_patch_without_midi_and_refuses_bad_results(tmp_path: Path) -> None:
    path = tmp_path / "live.toml"
    path.write_text("# empty but for this\n[clock]\nbpm = 90\n")
    add_midi_map(path, MidiMap(param="arp.density", cc=20))
    p = load_patch(path)
    assert p.midi.maps == (MidiMap(param="arp.density", cc=20),)
    before = path.read_text()
    with pytest.raises(PatchError):
        add_midi_map(path, MidiMap(param="arp.density", cc=50, cc14=True))
    with pytest.raises(PatchError):
        add_midi_map(path, MidiMap(param="arp.density", cc=5, curve="wobbly"))
    assert path.read_text() == before

    broken = tmp_path / "broken.toml"
    broken.write_text("[clock\n")
    with pytest.raises(PatchError):
        add_midi_map(broken, MidiMap(param="a", cc=1))
    assert broken.read_text() == "[clock\n"


def test_add_midi_map_to_shipped_patch_copy(tmp_path: Path) -> None:
    path = tmp_path / "mc.toml"
    path.write_text((PATCHES / "midi-controller.toml").read_text())
    add_midi_map(path, MidiMap(param="arp.density", cc=70, curve="log"))
    p = load_patch(path)
    assert len(p.midi.maps) == 8
    assert [m for m in p.midi.maps if m.cc == 70][0].curve == "log"
    assert "# A 14-bit knob" in path.read_text()


# ---------------------------------------------------------------------------------------
# robustness
# ---------------------------------------------------------------------------------------
TOML_BITS = st.sampled_from([
    "[", "]", "[[", "]]", "=", '"', "'", '"""', "'''", "{", "}", ",", ".", "\n", " ", "#",
    "clock", "bpm", "midi", "map", "cc", "generators", "name", "scenes", "params", "osc",
    "1", "-3", "1e400", "inf", "nan", "true", "0x10", "2024-01-01", "\\", "\\u00", "\x00", "é",
])
LINES = (PATCHES / "default.toml").read_text().splitlines() + (PATCHES / "midi-controller.toml").read_text().splitlines()


def _parse_only_patch_errors(text: str) -> None:
    try:
        p = parse_patch(text, "junk.toml")
    except PatchError as e:
        assert "\n" not in str(e) and e.line >= 1
        return
    check_params_ok = set(p.params) | {m.param for m in p.midi.maps} | {m.param for m in p.osc.maps}
    try:
        check_params(p, check_params_ok)
    except PatchError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_random_text_only_raises_patch_error(text: str) -> None:
    _parse_only_patch_errors(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(TOML_BITS, max_size=60).map("".join))
def test_toml_like_junk_only_raises_patch_error(text: str) -> None:
    _parse_only_patch_errors(text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(LINES), max_size=40).map("\n".join))
def test_shuffled_patch_lines_only_raise_patch_error(text: str) -> None:
    _parse_only_patch_errors(text)


def test_example_patches_and_calls_load() -> None:
    """docs/examples renders from these: they must stay valid as the patch format evolves."""
    from livegen.control.script import load_script

    examples = PATCHES.parent / "docs" / "examples"
    assert load_patch(examples / "duet.toml").generator("rnn").options["voices"] == 2
    calls = load_script(examples / "call-and-response.events")
    assert len(calls) >= 16 and all(e.kind == "midi" for e in calls)
    cr = load_patch(PATCHES / "call-and-response.toml")
    assert cr.generator("rnn").kind == "melody_rnn" and cr.generator("rnn").params["mode"] == 1
