"""Call-and-response through the running engine, with the performer on OSC and on MIDI.

The whole live rig (``LiveRig``: real clock, dispatch thread, generator thread, the OSC
server on loopback, JACK MIDI input) runs a patch with a live melody generator. A client
plays a call into it as a performer would; a recording output, fed by the dispatcher like
every other output, captures what the engine plays. Times are compared in beats, through
the engine's own clock, so the assertions are about the music, not about how fast this
machine is.

The model is an untrained network (or a tiny n-gram model): every token is possible, so
what keeps the answer in key and in register is the improviser's constraints.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from pathlib import Path

import pytest
from pythonosc.udp_client import SimpleUDPClient

from livegen.events import NoteOn
from livegen.music.scales import Key
from livegen.patch.loader import parse_patch
from livegen.play import LiveRig, RigOptions

HOST = "127.0.0.1"
BPM = 240  # a beat is 0.25 s, a 4/4 bar one second: the tests stay short
BPB = 4
EIGHTH = 60.0 / BPM / 2
E_MAJOR_CALL = [64, 66, 68, 69, 71, 73, 75, 76]  # E F# G# A B C# D# E
BB_MAJOR_CALL = [58, 60, 62, 63, 65, 67, 69, 70]  # Bb C D Eb F G A Bb
D_DORIAN = Key.parse("D", "dorian")
LOW, HIGH = 62, 79


# -- the rig -------------------------------------------------------------------------------
def patch_text(model: Path, kind: str = "melody_rnn", mode: int = 1, wait: float = 1.0, answer: int = 2,
               name: str = "rnn", voice: str = "lead", extra: str = "") -> str:
    return f"""
[clock]
bpm = {BPM}
beats_per_bar = {BPB}
[key]
tonic = "D"
scale = "dorian"
[[generators]]
name = "{name}"
kind = "{kind}"
voice = "{voice}"
seed = 7
[generators.params]
mode = {mode}
wait = {wait}
answer = {answer}
low = {LOW}
high = {HIGH}
density = 0.9
rest = 0.2
[generators.options]
model = {json.dumps(str(model))}
[midi]
inputs = []
virtual_output = false
[visuals]
enabled = false
{extra}
"""


class Recorder:
    """An output like any other: the dispatcher hands it every event at its time."""

    name = "recorder"
    lead = 0.0

    def __init__(self) -> None:
        self.events: list = []
        self._lock = threading.Lock()

    def send(self, event) -> None:
        with self._lock:
            self.events.append(event)

    def close(self) -> None:
        pass

    def generated(self) -> list[NoteOn]:
        """Note-ons the generators played (not the performer's notes sounded through)."""
        with self._lock:
            return [e for e in self.events if isinstance(e, NoteOn) and not e.thru]


async def start_rig(text: str, midi_inputs: list[str] | None = None) -> tuple[LiveRig, Recorder]:
    rec = Recorder()
    opts = RigOptions(window=False, audio=False, osc_port=0, seed=3, watch_patch=False,
                      midi_inputs=[] if midi_inputs is None else midi_inputs)
    rig = LiveRig(parse_patch(text, "melody-live.toml"), opts, extra_outputs=[rec])
    await rig.start()
    assert rig.osc is not None, rig.missing
    return rig, rec


def beat_now(engine) -> float:
    return engine.clock.beat_at(time.monotonic())


async def until_beat(engine, beat: float) -> None:
    while beat_now(engine) < beat:
        await asyncio.sleep(0.01)


async def until(cond, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


async def play_call(send_note, pitches: list[int]) -> None:
    """Eighth notes at the patch tempo, each released a little before the next."""
    for p in pitches:
        send_note(p, 100)
        await asyncio.sleep(EIGHTH * 0.8)
        send_note(p, 0)
        await asyncio.sleep(EIGHTH * 0.2)


async def heard_call(engine, pitches: list[int]) -> tuple[float, float]:
    """Once every note of the call is released in the engine: (first onset, last release) in beats."""
    assert await until(lambda: sum(n.duration is not None for n in engine.recent) >= len(pitches))
    call = [n for n in engine.recent if n.pitch in pitches]
    assert sorted(n.pitch for n in call) == sorted(pitches), engine.recent
    assert all(n.duration is not None for n in call)
    return min(n.beat for n in call), max(n.beat + n.duration for n in call)


def onsets(engine, notes: list[NoteOn]) -> list[tuple[float, int]]:
    return sorted((engine.clock.beat_at(e.time), e.pitch) for e in notes)


def assert_answer_in(key: Key, answer: list[tuple[float, int]], other: Key) -> None:
    pitches = [p for _, p in answer]
    assert all(key.contains(p) for p in pitches), (key, pitches)
    assert any(not other.contains(p) for p in pitches), f"nothing tells {key} from {other}: {pitches}"
    assert all(LOW <= p <= HIGH for p in pitches), pitches


# -- 1 and 4: OSC call, answer after ``wait`` bars, for ``answer`` bars ----------------------
async def osc_call_and_response(kind: str, model: Path) -> None:
    wait, answer = 1, 2
    rig, rec = await start_rig(patch_text(model, kind=kind, wait=wait, answer=answer))
    engine = rig.engine
    try:
        slot = engine.slots["rnn"]
        assert slot.generator.error is None and slot.generator.model is not None
        client = SimpleUDPClient(HOST, rig.osc.port)
        await until_beat(engine, BPB)  # a bar of the engine running on its own: mode 1 waits for a call
        await play_call(lambda p, v: client.send_message("/livegen/note", [p, v]), E_MAJOR_CALL)
        start, end = await heard_call(engine, E_MAJOR_CALL)
        # The answer starts on the first beat at least ``wait`` bars after the call ended and
        # lasts ``answer`` bars; listen a bar beyond that to hear that it stops.
        latest_end = end + wait * BPB + 1.0 + answer * BPB
        await until_beat(engine, latest_end + BPB)
        played = onsets(engine, rec.generated())
        assert engine.stats.generator_errors == 0
    finally:
        await rig.close()

    assert played, "no answer"
    assert not [b for b, _ in played if b < start], "played before the call"
    assert not [b for b, _ in played if start <= b < end], "played during the call"
    assert not [b for b, _ in played if b < end + wait * BPB - 1e-6], "answered before `wait` bars of silence"
    assert all(b < latest_end for b, _ in played), ("played past the answer", end, played)
    assert played[-1][0] - played[0][0] < answer * BPB
    assert_answer_in(Key.parse("E", "major"), played, D_DORIAN)


def test_osc_call_is_answered_in_its_key_after_wait_for_answer_bars(rnn_file):
    asyncio.run(osc_call_and_response("melody_rnn", rnn_file))


def test_ngram_answers_through_the_engine_too(ngram_file):
    asyncio.run(osc_call_and_response("ngram", ngram_file))


# -- 2: /livegen/trigger answer cuts the wait short -----------------------------------------
def test_osc_answer_trigger_answers_before_the_wait(rnn_file):
    wait, answer = 4, 2

    async def main() -> None:
        rig, rec = await start_rig(patch_text(rnn_file, wait=wait, answer=answer))
        engine = rig.engine
        try:
            client = SimpleUDPClient(HOST, rig.osc.port)
            await until_beat(engine, BPB)
            await play_call(lambda p, v: client.send_message("/livegen/note", [p, v]), E_MAJOR_CALL)
            client.send_message("/livegen/trigger", "answer")
            _, end = await heard_call(engine, E_MAJOR_CALL)
            # The whole answer fits well inside the four bars the wait alone would take.
            await until_beat(engine, end + (answer + 1) * BPB + 1.0)
            played = onsets(engine, rec.generated())
        finally:
            await rig.close()
        assert played, "no answer to the trigger"
        assert played[0][0] >= end - 1e-6
        assert played[0][0] < end + wait * BPB, "the trigger did not cut the wait short"
        assert_answer_in(Key.parse("E", "major"), played, D_DORIAN)

    asyncio.run(main())


# -- 3: the call on a JACK MIDI port, answer on a CC, a CC mapped to the temperature ---------
def test_midi_call_cc_answer_and_cc_mapped_temperature(jack_midi, rnn_file):
    keys_client = f"callkeys{os.getpid()}"  # unique, and without "livegen" (our own ports are skipped)
    keys_port = f"{keys_client}:call keys"
    wait, answer = 4, 2
    extra = """
[[midi.triggers]]
action = "answer"
cc = 20
[[midi.map]]
param = "rnn.temperature"
cc = 21
min = 0.05
max = 2.0
"""
    text = patch_text(rnn_file, wait=wait, answer=answer, extra=extra).replace(
        'virtual_output = false', f'virtual_output = false\nclient_name = "lgmel{os.getpid()}"')
    keys = jack_midi.open_output("call keys", virtual=True, client_name=keys_client)

    async def main() -> None:
        rig, rec = await start_rig(text, midi_inputs=[keys_port])
        engine = rig.engine
        try:
            assert rig.midi_in is not None and keys_port in rig.midi_in.ports, rig.missing
            assert engine.store.get("rnn.temperature") == pytest.approx(1.0)
            keys.send(jack_midi.Message("control_change", control=21, value=0))
            assert await until(lambda: engine.store.get("rnn.temperature") == pytest.approx(0.05))
            await until_beat(engine, BPB)

            def send_note(p: int, v: int) -> None:
                kind = "note_on" if v else "note_off"
                keys.send(jack_midi.Message(kind, note=p, velocity=v))

            await play_call(send_note, BB_MAJOR_CALL)
            keys.send(jack_midi.Message("control_change", control=20, value=127))  # the answer pad
            _, end = await heard_call(engine, BB_MAJOR_CALL)
            await until_beat(engine, end + (answer + 1) * BPB + 1.0)
            played = onsets(engine, rec.generated())
        finally:
            await rig.close()
        assert played, "no answer to the CC trigger"
        assert played[0][0] >= end - 1e-6, "played during the call"
        assert played[0][0] < end + wait * BPB, "the CC trigger did not cut the wait short"
        assert_answer_in(Key.parse("Bb", "major"), played, D_DORIAN)
        # The mapped CC moved the param in the store (and kept it there through the call).
        assert engine.store.get("rnn.temperature") == pytest.approx(0.05)

    try:
        asyncio.run(main())
    finally:
        keys.close()


# -- 5: a missing model file: one error line, the rest of the patch plays ---------------------
def test_missing_model_logs_one_line_and_the_rest_plays(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="livegen")
    gone = tmp_path / "gone.pt"
    text = patch_text(gone, mode=0, voice="bass") + """
[[generators]]
name = "arp"
kind = "arpeggiator"
[generators.params]
density = 1.0
rest = 0.0
"""

    async def main() -> None:
        rig, rec = await start_rig(text)
        engine = rig.engine
        try:
            assert engine.slots["rnn"].generator.model is None
            client = SimpleUDPClient(HOST, rig.osc.port)
            await until_beat(engine, BPB)
            await play_call(lambda p, v: client.send_message("/livegen/note", [p, v]), E_MAJOR_CALL)
            client.send_message("/livegen/trigger", "answer")
            client.send_message("/livegen/trigger", "mutate")
            engine.apply_patch(parse_patch(text, "melody-live.toml"))  # a reload: the same file, no new error
            poked = beat_now(engine)
            await until_beat(engine, poked + 2 * BPB)
            played = rec.generated()
            after = [b for b, _ in onsets(engine, played) if b >= poked]
            n_errors = engine.stats.generator_errors
        finally:
            await rig.close()
        # density 1, rest 0: a 16th note every step; half of them are plenty.
        assert len(after) >= 4 * BPB, "the arpeggiator stopped after the call and the triggers"
        assert {e.voice for e in played} == {"lead"}, "something but the arpeggiator played"
        assert n_errors == 0

    asyncio.run(main())
    naming = [r for r in caplog.records if "gone.pt" in r.getMessage()]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(naming) == 1 and naming == errors, [r.getMessage() for r in caplog.records]
    line = naming[0].getMessage()
    assert str(gone) in line and "\n" not in line and "rnn" in line


def test_reload_with_the_model_path_fixed_brings_the_generator_in(tmp_path, rnn_file):
    """The performer fixes the ``model`` option and saves: the live reload loads it."""
    broken = patch_text(tmp_path / "gone.pt", mode=0, voice="bass")

    async def main() -> None:
        rig, rec = await start_rig(broken)
        engine = rig.engine
        try:
            await until_beat(engine, BPB)
            assert engine.slots["rnn"].generator.model is None and not rec.generated()
            engine.apply_patch(parse_patch(patch_text(rnn_file, mode=0, voice="bass"), "melody-live.toml"))
            gen = engine.slots["rnn"].generator
            assert gen.model is not None and gen.error is None
            fixed = beat_now(engine)
            await until_beat(engine, fixed + 2 * BPB)
            played = onsets(engine, rec.generated())
        finally:
            await rig.close()
        assert played and all(b >= fixed for b, _ in played)
        assert all(D_DORIAN.contains(p) and LOW <= p <= HIGH for _, p in played), played  # mode 0: the patch's key

    asyncio.run(main())
