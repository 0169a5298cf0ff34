"""``livegen render``: the live engine on a virtual clock, faster than real time.

No threads, no devices: control events from a script are applied at their times, the
engine generates ahead exactly as it does live, and every scheduled event is delivered in
time order to file outputs — the synth rendering audio sample-accurately, a MIDI file
recorder, and the visuals. Same patch, seed and events => byte-identical MIDI and WAV.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import mido
import numpy as np

from livegen.atomic import atomic_write
from livegen.clock.tempo import Clock
from livegen.control.script import ScriptEvent
from livegen.engine import Engine
from livegen.events import AllNotesOff, NoteOff, NoteOn, OutEvent, Output, ParamChanged
from livegen.sound.synth import Synth, voices_with
from livegen.sound.wav import write_wav

log = logging.getLogger("livegen")

TICKS_PER_BEAT = 480


class VirtualScheduler:
    """The dispatcher's interface over a plain time-ordered queue."""

    def __init__(self, outputs: Sequence[Output] = ()) -> None:
        self._outputs = list(outputs)
        self._heap: list[tuple[float, int, Output, OutEvent]] = []
        self._seq = itertools.count()

    @property
    def outputs(self) -> list[Output]:
        return list(self._outputs)

    def add_output(self, output: Output) -> None:
        self._outputs.append(output)

    def schedule(self, event: OutEvent, outputs: Iterable[Output] | None = None) -> None:
        for out in self._outputs if outputs is None else outputs:
            heapq.heappush(self._heap, (event.time, next(self._seq), out, event))

    def panic(self, t: float | None = None, unless_quiet: bool = False) -> bool:
        """Drop pending notes, all notes off at ``t`` (offline nothing is urgent: ``unless_quiet`` is moot)."""
        t = 0.0 if t is None else t
        self._heap = [e for e in self._heap if not isinstance(e[3], (NoteOn, NoteOff))]
        heapq.heapify(self._heap)
        for out in self._outputs:
            heapq.heappush(self._heap, (t, next(self._seq), out, AllNotesOff(t)))
        return True

    def deliver_until(self, t: float) -> None:
        """Send every event due before ``t``, in time order."""
        while self._heap and self._heap[0][0] < t:
            _, _, out, event = heapq.heappop(self._heap)
            out.send(event)


class SynthRenderOutput:
    """The built-in synth, rendering into a buffer with sample-accurate note placement."""

    name = "synth"
    lead = 0.0

    def __init__(self, synth: Synth, sample_rate: int) -> None:
        self.synth = synth
        self.sr = sample_rate
        self.block_start = 0  # sample index of the block about to be rendered

    def _offset(self, t: float) -> int:
        return max(0, int(round(t * self.sr)) - self.block_start)

    def send(self, event: OutEvent) -> None:
        if isinstance(event, NoteOn):
            self.synth.note_on(event.pitch, event.velocity, event.voice, event.channel, self._offset(event.time))
        elif isinstance(event, NoteOff):
            self.synth.note_off(event.pitch, event.channel, self._offset(event.time))
        elif isinstance(event, AllNotesOff):
            self.synth.all_notes_off(self._offset(event.time))
        elif isinstance(event, ParamChanged) and event.name.startswith("synth."):
            self.synth.set_param(event.name, event.value)

    def close(self) -> None:
        pass


class MidiFileRecorder:
    """Records notes as a Standard MIDI File, on the beat grid, with tempo changes."""

    name = "midi-file"
    lead = 0.0

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.events: list[tuple[int, int, mido.Message | mido.MetaMessage]] = []
        self._seq = itertools.count()
        self._tempo_marks: list[tuple[int, float]] = []
        self._sounding: dict[tuple[int, int], int] = {}
        self.mark_tempo(0.0, clock.bpm)

    def _tick(self, t: float) -> int:
        return max(0, int(round(self.clock.beat_at(t) * TICKS_PER_BEAT)))

    def mark_tempo(self, t: float, bpm: float) -> None:
        tick = self._tick(t)
        if self._tempo_marks and self._tempo_marks[-1][1] == bpm:
            return
        self._tempo_marks.append((tick, bpm))

    def send(self, event: OutEvent) -> None:
        if isinstance(event, NoteOn):
            key = (event.channel, event.pitch)
            self._sounding[key] = self._sounding.get(key, 0) + 1
            self._add(event.time, mido.Message("note_on", note=event.pitch, velocity=event.velocity,
                                               channel=event.channel))
        elif isinstance(event, NoteOff):
            key = (event.channel, event.pitch)
            if self._sounding.get(key, 0) > 0:
                self._sounding[key] -= 1
                self._add(event.time, mido.Message("note_off", note=event.pitch, velocity=0, channel=event.channel))
        elif isinstance(event, AllNotesOff):
            for (ch, pitch), n in sorted(self._sounding.items()):
                for _ in range(n):
                    self._add(event.time, mido.Message("note_off", note=pitch, velocity=0, channel=ch))
            self._sounding.clear()
        elif isinstance(event, ParamChanged) and event.name == "tempo":
            self.mark_tempo(event.time, event.value)

    def _add(self, t: float, msg) -> None:
        self.events.append((self._tick(t), next(self._seq), msg))

    def close(self) -> None:
        pass

    def save(self, path: Path, end_time: float) -> None:
        self.send(AllNotesOff(end_time))
        mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
        meta = mido.MidiTrack()
        meta.append(mido.MetaMessage("track_name", name="livegen", time=0))
        meta.append(mido.MetaMessage("time_signature", numerator=self.clock.beats_per_bar, denominator=4, time=0))
        last = 0
        for tick, bpm in self._tempo_marks:
            meta.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=tick - last))
            last = tick
        notes = mido.MidiTrack()
        notes.append(mido.MetaMessage("track_name", name="notes", time=0))
        last = 0
        for tick, _, msg in sorted(self.events, key=lambda e: (e[0], e[1])):
            notes.append(msg.copy(time=tick - last))
            last = tick
        mid.tracks.extend([meta, notes])
        with atomic_write(path) as f:
            mid.save(file=f)


@dataclass
class RenderResult:
    midi: Path
    wav: Path
    visuals: Path | None
    notes: int
    seconds: float
    frames: int = 0
    peak: float = 0.0


def render(patch, seconds: float, seed: int, out_dir: Path, events: Sequence[ScriptEvent] = (),
           visuals: bool = True, progress: bool = True, blocksize: int = 256,
           force_png: bool = False) -> RenderResult:
    """Render ``seconds`` of ``patch`` into ``out_dir`` (performance.mid/.wav + visuals)."""
    from livegen.control.osc_server import OscServer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sr = int(patch.audio.sample_rate)
    vt = [0.0]
    sched = VirtualScheduler()
    synth = Synth(sr, voices=voices_with(patch.voices), master_gain=patch.audio.master_gain)
    audio_out = SynthRenderOutput(synth, sr)
    engine = Engine(patch, sched, now=lambda: vt[0], seed=seed, extra_specs=synth.param_specs())
    recorder = MidiFileRecorder(engine.clock)
    sched.add_output(audio_out)
    sched.add_output(recorder)

    writer = vis_out = pipeline = None
    if visuals and patch.visuals.enabled:
        from livegen.visuals.video import FrameWriter

        pipeline = open_render_visuals(patch, engine, seed)
        vis_out = pipeline.output
        sched.add_output(vis_out)
        writer = FrameWriter(out_dir, patch.visuals.fps, (patch.visuals.width, patch.visuals.height),
                             force_png=force_png)
    osc = OscServer(engine, maps=engine.osc_maps, triggers=engine.osc_triggers, specs=engine.store.spec)
    # Params set by the patch before the first block go out at t=0.
    for name, value in engine.store.targets().items():
        sched.schedule(ParamChanged(0.0, name, value))

    total = int(round(seconds * sr))
    nblocks = (total + blocksize - 1) // blocksize
    audio = np.zeros((nblocks * blocksize, 2), dtype=np.float32)
    pending = list(events)
    ei = 0
    frame_period = 1.0 / patch.visuals.fps if writer else 0.0
    next_frame = 0.0
    frames = 0
    bar = _progress(nblocks, progress)
    for b in range(nblocks):
        start = b * blocksize
        t0, t1 = start / sr, (start + blocksize) / sr
        vt[0] = t0
        while ei < len(pending) and pending[ei].time < t1:
            ev = pending[ei]
            ei += 1
            if ev.kind == "osc":
                osc.dispatch(ev.address, list(ev.args), sender=("script", ev.line))
            else:
                for dec in engine.decoder.decode_bytes(ev.data):
                    engine.handle_midi(dec, t0, "script")
        engine.advance(t0)
        audio_out.block_start = start
        sched.deliver_until(t1)
        audio[start:start + blocksize] = synth.render(blocksize)
        while writer is not None and next_frame < min(t1, seconds):
            writer.write(pipeline.frame(next_frame, engine.store.snapshot(next_frame)))
            frames += 1
            next_frame = frames * frame_period
        if bar is not None and b % 64 == 0:
            bar.update(min(64, nblocks - b))
    if bar is not None:
        bar.close()
    audio = audio[:total]
    midi_path, wav_path = out_dir / "performance.mid", out_dir / "performance.wav"
    recorder.save(midi_path, seconds)
    write_wav(wav_path, audio, sr)
    vis_path = writer.close() if writer is not None else None
    if pipeline is not None:
        pipeline.close()
    return RenderResult(midi_path, wav_path, vis_path, engine.stats.notes_scheduled, seconds, frames,
                        float(np.max(np.abs(audio))) if len(audio) else 0.0)


def open_render_visuals(patch, engine: Engine, seed: int):
    """The live window's frame path, run inline (every frame styled, repeatable)."""
    from livegen.visuals.pipeline import build_pipeline

    pipeline = build_pipeline(patch.visuals, seed=seed, warn=lambda msg: log.warning("%s", msg), worker=False)
    for spec in pipeline.param_specs():
        engine.store.declare(spec)
        if spec.name in patch.params:  # declared after the engine applied the patch
            engine.store.set(spec.name, patch.params[spec.name], source="patch")
    return pipeline


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="block", desc="render", leave=False)
