"""The engine: one owner of the performance state, fed by inputs, feeding outputs.

Inputs (MIDI, OSC, the window, a patch reload, a scripted event file) call the engine's
control methods on the event-loop thread. The engine keeps the parameter store and the
clock, asks the generators for the next window of notes a little ahead of time, and
schedules every note, beat and clock tick on the dispatcher against absolute deadlines.
The same engine runs live (``livegen play``: real clock, dispatch thread, generator
thread) and offline (``livegen render``: virtual clock, everything in order, no threads).
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol, Sequence

from livegen.clock.tempo import MAX_BPM, MIN_BPM, Clock
from livegen.control.learn import MidiLearn, MidiMapper
from livegen.control.mapping import OscMap, Trigger
from livegen.control.midi_in import ClockInput, ControlInput, MidiDecoder, NoteInput
from livegen.control.params import ParameterStore, ParamSpec
from livegen.events import Beat, ClockTick, NoteOff, NoteOn, OutEvent, Output, ParamChanged, Transport
from livegen.log import RateLimitedLog
from livegen.music.generator import Generator, GeneratorContext, Note, PlayedNote, create_generator
from livegen.music.scales import Key

log = logging.getLogger("livegen")

WINDOW_BEATS = 0.25  # generators are asked for one 16th note of music at a time
PERFORMER_VOICE = "pluck"  # the synth voice that sounds what the performer plays
LATE_TOLERANCE = 0.004  # a note due at most this long ago is sent now rather than dropped
RECENT_NOTES = 64
# Channel-mode messages a controller's panic button sends (often on all 16 channels at once).
CHANNEL_MODE_PANIC = {120: "All Sound Off", 123: "All Notes Off"}
# One panic from a burst of them: a second one this soon is the same button, or our own
# all-notes-off coming back through a synth's MIDI thru (which would otherwise loop forever).
PANIC_ECHO_SECONDS = 0.5
# A panic heard off the loop (urgent_panic) has silenced the outputs already: when the loop
# gets to the same message this soon after, it silences again only what it scheduled meanwhile.
URGENT_SECONDS = 0.25


class Scheduler(Protocol):
    """What the engine needs of a dispatcher (live: a thread; render: a virtual queue)."""

    def schedule(self, event: OutEvent, outputs: Iterable[Output] | None = None) -> None: ...

    def panic(self, t: float | None = None, unless_quiet: bool = False) -> bool: ...


def engine_param_specs() -> list[ParamSpec]:
    return [
        ParamSpec("tempo", 120.0, MIN_BPM, MAX_BPM, unit="bpm", doc="performance tempo"),
        ParamSpec("swing", 0.0, 0.0, 0.75, doc="global swing added to every generator"),
    ]


@dataclass
class GeneratorSlot:
    """A generator and how the patch wires it."""

    name: str
    kind: str
    generator: Generator
    voice: str = "lead"
    channel: int = 0
    enabled: bool = True
    rng: random.Random = field(default_factory=random.Random)
    specs: list[ParamSpec] = field(default_factory=list)
    options: dict[str, object] = field(default_factory=dict)  # the constructor's, from the patch


@dataclass
class EngineStats:
    notes_scheduled: int = 0
    notes_dropped_late: int = 0
    dropped_late_at: list[float] = field(default_factory=list)  # engine times of the last 100 drops
    windows: int = 0
    generator_errors: int = 0
    control_events: int = 0


class Engine:
    """Owns the clock, parameters and generators; implements ``ControlSurface``."""

    def __init__(self, patch, scheduler: Scheduler, now: Callable[[], float] = time.monotonic,
                 seed: int | None = None, extra_specs: Sequence[ParamSpec] = (),
                 generate_inline: bool = True) -> None:
        self.now = now
        self.scheduler = scheduler
        self.seed = seed
        self.problems = RateLimitedLog()
        self.store = ParameterStore(clock=now, problems=self.problems)
        self.stats = EngineStats()
        self.clock = Clock(patch.clock.bpm, patch.clock.beats_per_bar, anchor_time=now())
        self.recent: deque[PlayedNote] = deque(maxlen=RECENT_NOTES)
        self._held: dict[tuple[int, int], int] = {}  # (channel, pitch) -> index into recent's identity
        self._sounding_thru: set[tuple[int, int]] = set()
        self._next_window = 0.0
        self._triggers: list[str] = []
        self._taps: deque[float] = deque(maxlen=5)
        self._last_panic = -math.inf
        self._urgent_at = -math.inf  # when urgent_panic last silenced the outputs (any thread)
        self._inline = generate_inline
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._inflight: deque[concurrent.futures.Future] = deque()
        self.quit_requested = False
        self.on_quit: Callable[[], None] | None = None
        self.on_screenshot: Callable[[], None] | None = None
        self.midi_learn = MidiLearn()
        self.slots: dict[str, GeneratorSlot] = {}
        self._extra_specs = list(extra_specs)
        self.patch = patch
        self._build(patch, first=True)
        self.store.subscribe(self._on_param)

    # ------------------------------------------------------------------ patch wiring
    def _build(self, patch, first: bool) -> None:
        self.key: Key = patch.key.key
        self.lookahead = patch.clock.lookahead
        self.scenes = {k: dict(v) for k, v in patch.scenes.items()}
        slots: dict[str, GeneratorSlot] = {}
        for g in patch.generators:
            old = self.slots.get(g.name)
            if old is not None and old.kind == g.kind and old.options == dict(g.options):
                gen = old.generator
                rng = old.rng
            else:
                gen = create_generator(g.kind, g.name, seed=g.seed, **dict(g.options))
                # The patch's seed picks a variation, the command line's seed another.
                seeded = g.seed is not None or self.seed is not None
                rng = random.Random(f"{self.seed}:{g.seed}:{g.name}") if seeded else random.Random()
            slots[g.name] = GeneratorSlot(g.name, g.kind, gen, g.voice, g.channel, g.enabled, rng,
                                          list(gen.param_specs()), dict(g.options))
        self.slots = slots
        specs = engine_param_specs() + self._extra_specs
        for slot in slots.values():
            specs += [_prefixed(slot.name, s) for s in slot.specs]
        for s in specs:  # re-declaring keeps a value that is still in range
            self.store.declare(s)
        initial: dict[str, float] = {"tempo": patch.clock.bpm}
        for g in patch.generators:
            for k, v in g.params.items():
                initial[f"{g.name}.{k}"] = v
        initial.update(patch.params)
        for name, value in initial.items():
            if name in self.store and (first or self.store.get(name) != value):
                self.store.set(name, value, source="patch")
        self.mapper = MidiMapper(patch.midi.maps, self.store.spec)
        self.midi_triggers: list[Trigger] = list(patch.midi.triggers)
        self.osc_maps: list[OscMap] = list(patch.osc.maps)
        self.osc_triggers: list[Trigger] = list(patch.osc.triggers)
        self.decoder = MidiDecoder(cc14=self.mapper.cc14_numbers())
        self.clock.beats_per_bar = patch.clock.beats_per_bar

    def param_specs(self) -> dict[str, ParamSpec]:
        return {s.name: s for s in self.store.specs()}

    def apply_patch(self, patch) -> None:
        """Live reload: take the new patch's settings, keep what is playing."""
        old_bpb = self.clock.beats_per_bar
        self.patch = patch
        self._build(patch, first=False)
        if patch.clock.beats_per_bar != old_bpb:
            log.info("beats per bar now %d", patch.clock.beats_per_bar)
        log.info("patch reloaded: %s", patch.path)

    # ------------------------------------------------------------------ parameters
    def _on_param(self, name: str, value: float) -> None:
        t = self.now()
        if name == "tempo" and abs(value - self.clock.bpm) > 1e-9:
            self.clock.set_tempo(value, t)
        self.scheduler.schedule(ParamChanged(t, name, value))

    # ------------------------------------------------------------------ the clock
    def advance(self, now: float | None = None) -> None:
        """Generate and schedule everything up to ``now + lookahead``. Call often."""
        t = self.now() if now is None else now
        if self._inflight:
            self._collect()
        if not self.clock.running:
            return
        horizon = self.clock.beat_at(t + self.lookahead)
        if self._next_window < self.clock.beat_at(t) - 4 * WINDOW_BEATS:
            # We fell far behind (the machine stalled): skip ahead rather than burst.
            self._next_window = math.floor(self.clock.beat_at(t) / WINDOW_BEATS) * WINDOW_BEATS
        while self._next_window < horizon:
            start, end = self._next_window, self._next_window + WINDOW_BEATS
            self._schedule_beats(start, end)
            jobs = self._contexts(start, end)
            if self._inline or self._executor is None:
                self._place(start, [(slot, _safe_generate(slot, ctx, self)) for slot, ctx in jobs], t)
            else:
                fut = self._executor.submit(_generate_all, jobs, self)
                fut.window_start = start  # type: ignore[attr-defined]
                self._inflight.append(fut)
            self._next_window = end
            self.stats.windows += 1
        if self._inflight:
            self._collect()

    def _collect(self) -> None:
        while self._inflight and self._inflight[0].done():
            fut = self._inflight.popleft()
            if getattr(fut, "dropped", False):  # generated before a panic: pending notes are dropped
                continue
            self._place(fut.window_start, fut.result(), self.now())  # type: ignore[attr-defined]

    def _contexts(self, start: float, end: float) -> list[tuple[GeneratorSlot, GeneratorContext]]:
        triggers, self._triggers = tuple(self._triggers), []
        params = self.store.snapshot()
        recent = tuple(self.recent)
        jobs = []
        for slot in self.slots.values():
            if not slot.enabled:
                continue
            prefix = slot.name + "."
            own = {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}
            if "swing" in own:
                own["swing"] = min(0.75, own["swing"] + params.get("swing", 0.0))
            ctx = GeneratorContext(start, end, self.key, self.clock.beats_per_bar, self.clock.bpm, own,
                                   recent, slot.rng, triggers)
            jobs.append((slot, ctx))
        return jobs

    def _place(self, start: float, results: list[tuple[GeneratorSlot, list[Note]]], now: float) -> None:
        for slot, notes in results:
            for n in notes:
                t_on = self.clock.time_at(n.start)
                if t_on < now - LATE_TOLERANCE:
                    self.stats.notes_dropped_late += 1
                    self.stats.dropped_late_at.append(now)
                    del self.stats.dropped_late_at[:-100]
                    continue
                t_on = max(t_on, now)
                t_off = max(t_on + 0.005, self.clock.time_at(n.start + n.duration))
                voice = slot.voice if n.voice == "lead" else n.voice
                channel = slot.channel if n.channel == 0 else n.channel
                pitch = min(127, max(0, int(n.pitch)))
                vel = min(127, max(1, int(n.velocity)))
                self.scheduler.schedule(NoteOn(t_on, pitch, vel, channel, voice))
                self.scheduler.schedule(NoteOff(t_off, pitch, channel, voice))
                self.stats.notes_scheduled += 1

    def _schedule_beats(self, start: float, end: float) -> None:
        b = math.ceil(start - 1e-9)
        bpb = self.clock.beats_per_bar
        while b < end - 1e-9:
            self.scheduler.schedule(Beat(self.clock.time_at(b), int(b), int(b // bpb), int(b % bpb), self.clock.bpm))
            b += 1
        if self.patch.clock.send_clock:
            tick = math.ceil(start * 24 - 1e-6)
            while tick / 24 < end - 1e-9:
                self.scheduler.schedule(ClockTick(self.clock.time_at(tick / 24)))
                tick += 1

    # ------------------------------------------------------------------ generator thread
    def start_generator_thread(self) -> None:
        """Live mode: generators run on their own thread (torch never runs on the loop)."""
        self._inline = False
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="livegen-generate")
        for slot in self.slots.values():  # first-call costs are paid now, not by the first notes
            warm = getattr(slot.generator, "warm_up", None)
            if warm is not None:
                try:
                    self._executor.submit(warm).result(timeout=30)
                except Exception:  # noqa: BLE001 - a generator that cannot warm up still gets its chance live
                    log.debug("warm-up of %s failed", slot.name, exc_info=True)

    def stop_generator_thread(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self._inflight.clear()
        self._inline = True

    # ------------------------------------------------------------------ transport
    def transport(self, state: str, source: str = "", t: float | None = None, beat: float = 0.0) -> bool:
        t = self.now() if t is None else t
        if state == "start":
            self.scheduler.panic(t)
            self.clock.start(t, beat)
            self._next_window = beat
            self._reset_generators()
        elif state == "continue":
            self.clock.start(t, self.clock.anchor_beat if beat == 0.0 else beat)
            self._next_window = self.clock.beat_at(t)
        elif state == "stop":
            self.clock.stop(t)
            self.scheduler.panic(t)
        else:
            self.problems.warn(f"transport:{state}", "unknown transport state %r from %s", state, source or "?")
            return False
        self.scheduler.schedule(Transport(t, state, int(round(self.clock.beat_at(t) * 4))))
        return True

    def start_clock(self, t: float, beat: float = 0.0) -> None:
        """``beat`` (0, or a Link session's beat) falls at ``t``: give the rig a moment
        between opening devices and the first note. Generation starts at the next 16th."""
        self.clock.start(t, beat)
        self._next_window = math.ceil(beat / WINDOW_BEATS - 1e-9) * WINDOW_BEATS
        if self.patch.clock.send_clock:  # devices following our MIDI clock start with us
            self.scheduler.schedule(Transport(t, "start", 0))

    def _reset_generators(self) -> None:
        for slot in self.slots.values():
            if self._executor is not None:
                self._executor.submit(slot.generator.reset)
            else:
                slot.generator.reset()

    # ------------------------------------------------------------------ ControlSurface
    def set_param(self, name: str, value: float, source: str = "") -> bool:
        self.stats.control_events += 1
        return self.store.set(name, value, source)

    def set_param_unit(self, name: str, x: float, source: str = "") -> bool:
        self.stats.control_events += 1
        return self.store.set_unit(name, x, source)

    def get_param(self, name: str) -> float | None:
        return self.store.get(name) if name in self.store else None

    def param_names(self) -> list[str]:
        return self.store.names()

    def set_tempo(self, bpm: float, source: str = "") -> bool:
        return self.set_param("tempo", bpm, source)

    def play_note(self, pitch: int, velocity: int, source: str = "", channel: int = 0,
                  t: float | None = None) -> None:
        """A note from the performer: heard at once, remembered for the generators."""
        t = self.now() if t is None else t
        if not (0 <= int(pitch) <= 127) or not (0 <= int(velocity) <= 127):
            self.problems.warn("note-range", "note %r velocity %r out of 0..127 from %s", pitch, velocity, source or "?")
            return
        pitch, velocity, key = int(pitch), int(velocity), (channel, int(pitch))
        beat = self.clock.beat_at(t)
        if velocity > 0:
            if key in self._sounding_thru:
                self.scheduler.schedule(NoteOff(t, pitch, channel, PERFORMER_VOICE, thru=True))
            self.recent.append(PlayedNote(beat, pitch, velocity, None))
            self._sounding_thru.add(key)
            self.scheduler.schedule(NoteOn(t, pitch, velocity, channel, PERFORMER_VOICE, thru=True))
        else:
            for i in range(len(self.recent) - 1, -1, -1):
                n = self.recent[i]
                if n.pitch == pitch and n.duration is None:
                    self.recent[i] = PlayedNote(n.beat, n.pitch, n.velocity, max(0.0, beat - n.beat))
                    break
            if key in self._sounding_thru:
                self._sounding_thru.discard(key)
                self.scheduler.schedule(NoteOff(t, pitch, channel, PERFORMER_VOICE, thru=True))

    def scene(self, name: str, source: str = "") -> bool:
        values = self.scenes.get(name)
        if values is None:
            self.problems.warn(f"scene:{name}", "unknown scene %r from %s (known: %s)", name, source or "?",
                               ", ".join(sorted(self.scenes)) or "none")
            return False
        for pname, v in values.items():
            if pname == "bpm":
                self.set_tempo(v, source)
            else:
                self.set_param(pname, v, source)
        log.info("scene %s", name)
        return True

    def trigger(self, action: str, source: str = "") -> bool:
        if action == "panic":
            self.panic(source)
        elif action in ("mutate", "answer"):
            self._triggers.append(action)
        elif action == "tap":
            self._tap()
        elif action in ("start", "stop", "continue"):
            return self.transport(action, source)
        elif action.startswith("scene:"):
            return self.scene(action[6:], source)
        elif action.startswith("learn:"):
            return self.learn_param(action[6:], source)
        elif action == "quit":
            self.quit(source)
        else:
            self.problems.warn(f"trigger:{action}", "unknown trigger %r from %s", action, source or "?")
            return False
        return True

    def _tap(self) -> None:
        t = self.now()
        if self._taps and t - self._taps[-1] > 2.0:
            self._taps.clear()
        self._taps.append(t)
        if len(self._taps) >= 2:
            taps = list(self._taps)
            interval = (taps[-1] - taps[0]) / (len(taps) - 1)
            self.set_tempo(60.0 / interval, "tap")

    def panic(self, source: str = "") -> None:
        """All notes off on every output, now; pending notes dropped, windows being
        generated included (their notes would start after the panic)."""
        t = self.now()
        # After an urgent panic, again only if notes were scheduled since: the loop may have
        # been half-way through a window, computed before the panic, when it came.
        self.scheduler.panic(t, unless_quiet=t - self._urgent_at <= URGENT_SECONDS)
        self._urgent_at = -math.inf
        self._last_panic = t
        self._sounding_thru.clear()
        for fut in self._inflight:
            fut.dropped = True  # type: ignore[attr-defined]
        log.info("panic (%s)", source or "?")

    def urgent_panic(self, source: str = "", channel_mode: bool = False) -> bool:
        """Silence every output now, from the thread that heard the panic (the OSC receiver,
        the MIDI poll thread), without waiting for the event loop: behind a busy loop a panic
        waited up to 10 ms, two audio periods. The same message still reaches the loop, whose
        :meth:`panic` then drops the windows being generated and logs the line. Only what is
        safe from any thread happens here (the dispatcher's panic is). A channel-mode panic
        (CC 120 / 123) just after another is the same burst: False, nothing done."""
        t = self.now()
        if channel_mode and (not getattr(self.patch.midi, "panic_on_all_notes_off", True)
                             or t - max(self._last_panic, self._urgent_at) < PANIC_ECHO_SECONDS):
            return False
        self.scheduler.panic(t)
        self._urgent_at = t
        return True

    def _channel_mode_panic(self, event: ControlInput, port: str) -> bool:
        """CC 120 / 123 from a controller: panic, once per burst; False when the patch
        switched that off (``[midi] panic_on_all_notes_off = false``)."""
        if not getattr(self.patch.midi, "panic_on_all_notes_off", True):
            return False
        now = self.now()
        if now - self._last_panic < PANIC_ECHO_SECONDS and now - self._urgent_at > URGENT_SECONDS:
            log.debug("MIDI %s CC %d on channel %d ignored: a panic just happened", port, event.number,
                      event.channel + 1)
            return True
        self.panic(f"MIDI {port} CC {event.number} {CHANNEL_MODE_PANIC[event.number]}, channel {event.channel + 1}")
        return True

    def screenshot(self, source: str = "") -> bool:
        """Save the window's next frame as a PNG; False when there is no window."""
        if self.on_screenshot is None:
            self.problems.warn("screenshot", "screenshot asked for (%s) but there is no window", source or "?")
            return False
        self.on_screenshot()
        return True

    def quit(self, source: str = "") -> None:
        log.info("quit requested (%s)", source or "?")
        self.quit_requested = True
        if self.on_quit is not None:
            self.on_quit()

    # MIDI learn
    def learn_param(self, param: str, source: str = "") -> bool:
        if param not in self.store:
            self.problems.warn(f"learn:{param}", "cannot learn unknown parameter %r (from %s)", param, source or "?")
            return False
        self.midi_learn.arm(param)
        log.info("MIDI learn: move a control to bind it to %s", param)
        return True

    def learn(self, param: str, source: str = "") -> bool:
        """ControlSurface: arm MIDI learn for ``param``."""
        return self.learn_param(param, source)

    def save_learned(self, source: str = "") -> bool:
        from livegen.patch.save import add_midi_map

        path = getattr(self.patch, "path", None)
        if not self.midi_learn.learned or path is None:
            log.info("MIDI learn: nothing to save")
            return False
        for m in self.midi_learn.learned:
            add_midi_map(path, m)
        log.info("MIDI learn: saved %d mapping(s) to %s", len(self.midi_learn.learned), path)
        self.midi_learn.learned.clear()
        return True

    # ------------------------------------------------------------------ MIDI input
    def handle_midi(self, event: object, t: float, port: str = "", follower=None) -> None:
        """A decoded MIDI event (see livegen.control.midi_in) from ``port`` at time ``t``."""
        self.stats.control_events += 1
        if isinstance(event, NoteInput):
            actions = self.mapper.match_triggers(self.midi_triggers, event)
            if actions:
                for a in actions:
                    self.trigger(a, f"MIDI {port}")
                return
            if any(tr.note == event.pitch for tr in self.midi_triggers):
                return  # the release of a pad
            self.play_note(event.pitch, event.velocity if event.on else 0, f"MIDI {port}", event.channel, t)
        elif isinstance(event, ControlInput):
            if event.kind == "cc" and event.number in CHANNEL_MODE_PANIC and self._channel_mode_panic(event, port):
                return
            if self.midi_learn.armed is not None and event.kind in ("cc", "cc14", "pitchbend"):
                m = self.midi_learn.offer(event)
                if m is not None:
                    self.mapper.add(m)
                    self.decoder = MidiDecoder(cc14=self.mapper.cc14_numbers())
                    return
            for name, value in self.mapper.apply(event):
                self.store.set(name, value, f"MIDI {port}")
            for a in self.mapper.match_triggers(self.midi_triggers, event):
                self.trigger(a, f"MIDI {port}")
            if event.kind == "program" and self.scenes:
                # Program change n recalls the patch's n-th scene (0-based, in file order).
                names = list(self.scenes)
                if event.number < len(names):
                    self.scene(names[event.number], f"MIDI {port} program {event.number}")
                else:
                    self.problems.warn("program", "program change %d from %s: the patch has %d scenes",
                                       event.number, port, len(names))
        elif isinstance(event, ClockInput) and follower is not None:
            self.follow_clock(event, t, follower)

    def follow_clock(self, event: ClockInput, t: float, follower) -> None:
        """External MIDI clock: transport from Start/Stop/Continue, tempo and phase from ticks."""
        follower.feed(event, t)
        if self.patch.clock.source != "midi":
            return
        if event.kind == "start":
            self.transport("start", "MIDI clock", t, 0.0)
        elif event.kind == "stop":
            self.transport("stop", "MIDI clock", t)
        elif event.kind == "continue":
            self.transport("continue", "MIDI clock", t, follower.position(t))
        elif event.kind == "tick" and follower.running and follower.bpm:
            self.clock.follow(t, follower.position(t), follower.bpm)
            if abs(self.store.get("tempo") - self.clock.bpm) >= 0.05:
                self.show_tempo(round(self.clock.bpm, 2))

    def show_tempo(self, bpm: float) -> None:
        """An external clock (MIDI clock, Link) set the tempo: show it as the tempo
        parameter and tell the outputs, without re-anchoring the clock."""
        st = self.store
        st.declare(st.spec("tempo"), bpm)
        self.scheduler.schedule(ParamChanged(self.now(), "tempo", st.get("tempo")))



def _prefixed(prefix: str, spec: ParamSpec) -> ParamSpec:
    return ParamSpec(f"{prefix}.{spec.name}", spec.default, spec.min, spec.max, spec.unit, spec.smoothing,
                     spec.integer, spec.doc)


def _safe_generate(slot: GeneratorSlot, ctx: GeneratorContext, engine: Engine) -> list[Note]:
    try:
        return list(slot.generator.generate(ctx))
    except Exception:
        engine.stats.generator_errors += 1
        engine.problems.warn(f"gen:{slot.name}", "generator %s failed; skipping a window", slot.name)
        log.debug("generator %s failed", slot.name, exc_info=True)
        return []


def _generate_all(jobs, engine: Engine):
    return [(slot, _safe_generate(slot, ctx, engine)) for slot, ctx in jobs]
