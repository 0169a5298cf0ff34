import random

from livegen.music.arpeggiator import Arpeggiator
from livegen.music.generator import GeneratorContext, PlayedNote, create_generator
from livegen.music.scales import Key


def params(**over):
    p = {s.name: s.default for s in Arpeggiator().param_specs()}
    p.update(over)
    return p


def run(gen, key, p, beats=16, seed=3, recent=(), window=0.25):
    rng = random.Random(seed)
    notes, b = [], 0.0
    while b < beats:
        notes += gen.generate(GeneratorContext(b, b + window, key, 4, 120, p, recent, rng))
        b += window
    return notes


def test_notes_stay_in_key_and_register():
    key = Key.parse("D", "dorian")
    for pattern in range(5):
        notes = run(Arpeggiator(), key, params(pattern=pattern, low=50, high=74, density=1.0, rest=0.0))
        assert notes, pattern
        assert all(key.contains(n.pitch) for n in notes)
        assert all(50 <= n.pitch <= 74 for n in notes)


def test_density_and_rest_shape_the_rhythm():
    key = Key.parse("C")
    full = run(Arpeggiator(), key, params(density=1.0, rest=0.0), beats=32)
    sparse = run(Arpeggiator(), key, params(density=0.25, rest=0.0), beats=32)
    silent_bars = run(Arpeggiator(), key, params(density=1.0, rest=1.0), beats=32)
    assert len(full) == 128  # every 16th of 8 bars
    assert 20 <= len(sparse) <= 50
    assert silent_bars == []


def test_windows_of_any_size_give_the_same_notes():
    key = Key.parse("A", "minor")
    a = run(Arpeggiator(), key, params(), window=0.25)
    b = run(Arpeggiator(), key, params(), window=1.0)
    assert a == b


def test_seeded_determinism_and_mutate_changes_motif():
    key = Key.parse("E", "minor")
    assert run(Arpeggiator(), key, params(density=0.5)) == run(Arpeggiator(), key, params(density=0.5))
    gen = Arpeggiator()
    rng = random.Random(1)
    first = gen.generate(GeneratorContext(0, 4, key, 4, 120, params(density=0.4), (), rng))
    again = gen.generate(GeneratorContext(4, 8, key, 4, 120, params(density=0.4), (), rng, ("mutate",)))
    starts = lambda ns, off: sorted(round(n.start - off, 3) for n in ns)  # noqa: E731
    assert starts(first, 0) != starts(again, 4)


def test_arpeggiates_held_performer_notes():
    key = Key.parse("C")
    held = (PlayedNote(0.0, 60, 100), PlayedNote(0.0, 64, 100), PlayedNote(0.0, 67, 100))
    notes = run(Arpeggiator(), key, params(density=1.0, rest=0.0, octaves=1, low=48, high=84), recent=held)
    assert {n.pitch for n in notes} == {60, 64, 67}


def test_step_and_swing_place_notes():
    key = Key.parse("C")
    notes = run(Arpeggiator(), key, params(density=1.0, rest=0.0, step=0.5, swing=0.5), beats=2)
    assert [n.start for n in notes] == [0.0, 0.75, 1.0, 1.75]


def test_registry():
    g = create_generator("arpeggiator", "arp", seed=1)
    assert g.name == "arp" and g.kind == "arpeggiator"
