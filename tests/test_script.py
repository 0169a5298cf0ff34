import pytest

from livegen.control.script import ScriptError, load_script, parse_script


def test_parses_osc_and_midi_in_time_order(tmp_path):
    f = tmp_path / "show.events"
    f.write_text('# a show\n2.0 midi 90 3C 64\n0.5 osc /livegen/scene "12"\n1 osc /livegen/tempo 132  # faster\n'
                 "1.5 osc /livegen/param/arp.density 0.25\n")
    ev = load_script(f)
    assert [e.time for e in ev] == [0.5, 1.0, 1.5, 2.0]
    assert ev[0].args == ("12",) and ev[1].args == (132,) and ev[2].args == (0.25,)
    assert ev[3].kind == "midi" and ev[3].data == bytes([0x90, 0x3C, 0x64]) and ev[3].line == 2


@pytest.mark.parametrize("line, what", [
    ("x osc /a 1", "time"),
    ("1 osc nope", "must start with '/'"),
    ("1 midi 9G", "hex bytes"),
    ("1 sysex F0", "kind"),
    ("1 osc", "expected"),
])
def test_errors_name_file_and_line(line, what):
    with pytest.raises(ScriptError) as e:
        parse_script("0 osc /ok\n" + line, "show.events")
    assert str(e.value).startswith("show.events:2:") and what in str(e.value)
