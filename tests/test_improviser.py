"""The live melody generators (melody_rnn, ngram): constraints, determinism, listening, answers."""

from __future__ import annotations

import logging
import random

import pytest

from livegen.music.encoding import MAX_PITCH, MIN_PITCH
from livegen.music.generator import GeneratorContext, PlayedNote, create_generator
from livegen.music.scales import Key


def params_of(gen, **over) -> dict:
    p = {s.name: s.default for s in gen.param_specs()}
    p.update(over)
    return p


def run(gen, params, beats: float, key=Key.parse("D", "dorian"), seed=1, recent_at=None, triggers_at=None,
        bpb: int = 4) -> list:
    """Drive a generator window by window like the engine does; recent_at(beat) -> performer notes."""
    rng = random.Random(seed)
    notes = []
    w = 0
    while w * 0.25 < beats:
        b = w * 0.25
        recent = tuple(recent_at(b)) if recent_at else ()
        trig = tuple(triggers_at(b)) if triggers_at else ()
        notes += gen.generate(GeneratorContext(b, b + 0.25, key, bpb, 120, params, recent, rng, trig))
        w += 1
    return notes


@pytest.mark.parametrize("kind", ["melody_rnn", "ngram"])
def test_key_and_register_constraints_hold(kind, rnn_file, ngram_file):
    model = rnn_file if kind == "melody_rnn" else ngram_file
    gen = create_generator(kind, "m", model=str(model), voices=2)
    key = Key.parse("Eb", "harmonic_minor")
    p = params_of(gen, low=62, high=74, temperature=1.6, top_p=1.0, density=0.9, counter_offset=-12)
    notes = run(gen, p, 64, key=key)
    lead = [n for n in notes if n.voice == "lead"]
    counter = [n for n in notes if n.voice == "bass"]
    assert len(lead) > 30 and len(counter) > 30
    assert all(key.contains(n.pitch) for n in notes)
    assert all(62 <= n.pitch <= 74 for n in lead)
    assert all(50 <= n.pitch <= 62 for n in counter)
    assert all(n.duration > 0 for n in notes)
    # Notes of one voice never overlap: each ends before the next starts.
    for voice in (lead, counter):
        for a, b in zip(voice, voice[1:]):
            assert a.start + a.duration <= b.start + 1e-9


def test_key_lock_off_allows_other_notes(rnn_file):
    gen = create_generator("melody_rnn", "m", model=str(rnn_file))
    key = Key.parse("C", "major")
    notes = run(gen, params_of(gen, key_lock=0, temperature=2.0, top_p=1.0, density=1.0, low=48, high=84), 64, key=key)
    assert any(not key.contains(n.pitch) for n in notes)


def test_seeded_runs_are_identical_and_seeds_differ(rnn_file):
    def once(seed):
        gen = create_generator("melody_rnn", "m", model=str(rnn_file))
        return [(n.start, n.duration, n.pitch, n.velocity) for n in run(gen, params_of(gen), 32, seed=seed)]

    assert once(5) == once(5)
    assert once(5) != once(6)


def test_density_and_rest_move_the_note_count(rnn_file):
    def count(**over):
        gen = create_generator("melody_rnn", "m", model=str(rnn_file))
        return len(run(gen, params_of(gen, **over), 64))

    sparse, normal, busy = count(density=0.1), count(), count(density=1.0, rest=0.0)
    assert sparse < normal < busy


def test_temperature_low_is_more_predictable(rnn_file):
    def distinct(t):
        gen = create_generator("melody_rnn", "m", model=str(rnn_file))
        return len({n.pitch for n in run(gen, params_of(gen, temperature=t, top_p=1.0, density=1.0), 64)})

    assert distinct(0.05) < distinct(2.0)


def test_repetition_penalty_spreads_pitches(rnn_file):
    def top_share(rep):
        gen = create_generator("melody_rnn", "m", model=str(rnn_file))
        ps = [n.pitch for n in run(gen, params_of(gen, repetition=rep, temperature=0.5, density=1.0), 64)]
        return max(ps.count(x) for x in set(ps)) / len(ps)

    assert top_share(3.0) < top_share(0.0)


def test_param_change_replans_what_is_not_yet_sounding(rnn_file):
    gen = create_generator("melody_rnn", "m", model=str(rnn_file))
    p = params_of(gen, low=60, high=72)
    key = Key.parse("C", "major")
    rng = random.Random(3)
    for w in range(16):
        gen.generate(GeneratorContext(w / 4, w / 4 + 0.25, key, 4, 120, p, (), rng, ()))
    p = dict(p, low=80, high=90)  # the register jumps: planned notes must follow at once
    later = []
    for w in range(16, 48):
        later += gen.generate(GeneratorContext(w / 4, w / 4 + 0.25, key, 4, 120, p, (), rng, ()))
    assert later and all(80 <= n.pitch <= 90 for n in later)


def test_mutate_resamples_a_repeating_phrase(rnn_file):
    def phrases(mutate_at=None):
        gen = create_generator("melody_rnn", "m", model=str(rnn_file))
        p = params_of(gen, repeat=1.0, phrase=1, density=0.9)
        trig = (lambda b: ("mutate",) if b == mutate_at else ()) if mutate_at is not None else None
        notes = run(gen, p, 24, seed=2, triggers_at=trig)
        bars = {}
        for n in notes:
            bars.setdefault(int(n.start // 4), []).append((round(n.start % 4, 3), n.pitch))
        return bars

    loop = phrases()
    assert loop[2] == loop[3] == loop[4]  # repeat = 1: the phrase comes back bar after bar
    mutated = phrases(mutate_at=12.0)  # mutate at the start of bar 3
    assert mutated[2] == loop[2]
    assert mutated[4] != loop[4] and mutated[4] == mutated[5]  # a new phrase, which then repeats


def call_in(key_pitches, start=4.0):
    """A one-bar call of 8 eighth notes, returned as the engine's ``recent`` would be at beat b."""
    notes = [PlayedNote(start + i * 0.5, p, 100, 0.45) for i, p in enumerate(key_pitches)]
    return lambda b: [n for n in notes if n.beat <= b]


def test_call_and_response_answers_in_the_key_of_the_call(rnn_file):
    gen = create_generator("melody_rnn", "m", model=str(rnn_file))
    p = params_of(gen, mode=1, answer=2, wait=1.0, low=55, high=84, density=0.9)
    # A call in E major (E F# G# A B C# D# E) while the patch says D dorian.
    call = call_in([64, 66, 68, 69, 71, 73, 75, 76])
    notes = run(gen, p, 32, key=Key.parse("D", "dorian"), recent_at=call)
    assert notes, "no answer"
    # Silent while waiting and while the performer plays; the answer starts a bar after the
    # call ends (beat 8) and lasts two bars.
    assert min(n.start for n in notes) >= 12.0 - 1e-9
    assert max(n.start for n in notes) < 20.0
    e_major = Key.parse("E", "major")
    assert all(e_major.contains(n.pitch) for n in notes)


def test_answer_trigger_answers_before_the_bar_of_silence(rnn_file):
    gen = create_generator("melody_rnn", "m", model=str(rnn_file))
    p = params_of(gen, mode=1, answer=1, wait=4.0, density=0.9)
    call = call_in([57, 59, 60, 62, 64, 65, 68, 69])  # A harmonic minor
    notes = run(gen, p, 24, recent_at=call, triggers_at=lambda b: ("answer",) if b == 9.0 else ())
    assert notes and 9.0 <= min(n.start for n in notes) < 10.5
    assert max(n.start for n in notes) < 14.0  # one bar, then it waits for the next call
    assert all(Key.parse("A", "minor").contains(n.pitch) for n in notes)


def test_improvise_mode_yields_to_the_performer_then_continues(rnn_file):
    gen = create_generator("melody_rnn", "m", model=str(rnn_file))
    p = params_of(gen, mode=0, wait=1.0, density=0.9)
    call = call_in([62, 64, 65, 67, 69, 67, 65, 64], start=8.0)  # beats 8..12
    notes = run(gen, p, 32, recent_at=call)
    before = [n for n in notes if n.start < 8.0]
    during = [n for n in notes if 8.5 <= n.start < 16.0]  # listening (a bar of silence after the call)
    after = [n for n in notes if n.start >= 16.0]
    assert before and after and not during


def test_priming_changes_the_continuation(rnn_file):
    def after(call_pitches):
        gen = create_generator("melody_rnn", "m", model=str(rnn_file))
        p = params_of(gen, mode=1, answer=2, key_lock=0, temperature=0.05, top_p=1.0, density=0.9)
        return [n.pitch for n in run(gen, p, 32, recent_at=call_in(call_pitches), seed=4)]

    assert after([60, 62, 64, 65, 67, 65, 64, 62]) != after([72, 71, 69, 67, 66, 64, 63, 61])


def test_missing_model_is_one_line_and_silence(tmp_path, caplog):
    with caplog.at_level(logging.ERROR, logger="livegen"):
        gen = create_generator("melody_rnn", "m", model=str(tmp_path / "gone.pt"))
    assert gen.error and "gone.pt" in gen.error and "not found" in gen.error
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 1 and "gone.pt" in msgs[0] and "\n" not in msgs[0]
    assert run(gen, params_of(gen), 8) == []
    cut = tmp_path / "cut.npz"
    cut.write_bytes(b"PK\x03\x04broken")
    gen = create_generator("ngram", "n", model=str(cut))
    assert gen.error and "cut.npz" in gen.error
    assert run(gen, params_of(gen), 8) == []


def test_range_edges_stay_inside_the_model(rnn_file):
    gen = create_generator("melody_rnn", "m", model=str(rnn_file))
    notes = run(gen, params_of(gen, low=36, high=96, key_lock=0, temperature=2.0, top_p=1.0), 32)
    assert all(MIN_PITCH <= n.pitch <= MAX_PITCH for n in notes)
