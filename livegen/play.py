"""``livegen play``: the live rig — devices opened, engine running, until quit.

``LiveRig`` opens what the patch asks for and what the machine has: the synth process on
an audio device, MIDI ports, OSC in and out, scsynth, the window. Anything missing is
reported in one line and the show runs with the rest. Shutdown is always the same:
inputs closed, all notes off everywhere, the dispatch and generator threads joined, the
synth process joined, the window closed.

Devices that fail during the show do not stop it. An audio device lost (jackd killed, an
interface unplugged) is one line; the music goes on out of MIDI and OSC while a new synth
process looks for the device twice a second, and takes the old one's place (and its
parameter values) when it is back: one more line. MIDI ports that vanish are followed by
``MidiInput.watch`` and the timing server; a style process that crashes is restarted.
The window closed by the window manager, or its display gone, stops the visuals only,
unless the patch says ``[visuals] on_close = "quit"``.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from livegen.clock.dispatcher import Dispatcher
from livegen.engine import Engine
from livegen.events import Output
from livegen.log import RateLimitedLog

log = logging.getLogger("livegen")

TICK_SECONDS = 0.005  # how often the loop asks the engine to generate ahead
AUDIO_CHECK_SECONDS = 0.1  # how often the synth process is looked at
AUDIO_WAIT_SECONDS = 60.0  # one new audio process looks for a lost device (every 0.5 s) this long...
AUDIO_RETRY_SECONDS = 2.0  # ...then, or when opening it failed, the next one starts this much later
AUDIO_START_SECONDS = 10.0  # how long opening the device may take once it is there
LINK_SYNC_SECONDS = 0.005  # how often the clock is put back on the Link session's timeline


@dataclass
class RigOptions:
    window: bool = True
    audio: bool = True
    audio_device: str | int | None = None
    osc_port: int | None = None
    midi_inputs: list[str] | None = None
    fullscreen: bool | None = None
    seed: int | None = None
    watch_patch: bool = True
    headless_visuals: bool = False  # render the visuals with no window (benchmarks, frame output)
    link: bool = False              # join Ableton Link whatever the patch's [clock] source
    name: str | None = None         # this instance's name (else [osc] instance, else the patch's name)
    record: str | None = None       # record the visuals to this video (as [visuals] record)
    record_hud: bool | None = None  # record the window with its HUD (None: the patch's [visuals] record_hud)
    virtual_camera: bool = False    # send the frames to a virtual webcam (or [visuals] virtual_camera)


def instance_name(patch, override: str | None = None) -> str:
    """This livegen's name in a show of several: ``--name``, else ``[osc] instance``, else
    the patch's name made fit (``My Show`` -> ``my-show``), else ``livegen``."""
    import re

    from livegen.control.osc_addresses import instance_name_problem

    if override:
        return override
    if patch.osc.instance:
        return patch.osc.instance
    derived = re.sub(r"[^a-z0-9_-]+", "-", str(patch.name).lower()).strip("-")[:32]
    return derived if derived and instance_name_problem(derived) is None else "livegen"


def limit_torch_threads() -> None:
    """Torch in this process gets one thread: workers elsewhere own the other cores."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


@dataclass
class LiveRig:
    patch: object
    options: RigOptions = field(default_factory=RigOptions)
    extra_outputs: list[Output] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.outputs: list[Output] = []
        self.synth = None
        self.timing = None
        self.frames = 0
        self.window = None
        self.scene = None
        self.visuals_out = None
        self.pipeline = None
        self.screenshots: list[Path] = []
        self.recorder = None  # livegen.visuals.recorder.Recorder, when there are visuals
        self.frame_shares: list = []  # virtual camera, NDI (livegen.visuals.camera_out)
        self._screenshot_requests: list[Path | None] = []
        self._frame_times: collections.deque[float] = collections.deque(maxlen=31)  # for the HUD's fps
        self.osc = None
        self.midi_in = None
        self.urgent = None  # livegen.control.urgent.UrgentPanic, once the inputs are open
        self.follower = None
        self.link = None
        self.instance = instance_name(self.patch, self.options.name)
        self.watcher = None
        self.dispatcher: Dispatcher | None = None
        self.engine: Engine | None = None
        self._tasks: list[asyncio.Task] = []
        self._quit = asyncio.Event()
        self.missing: list[str] = []
        self._synth_args: dict | None = None  # how the synth was made: a lost device is reopened alike
        self.audio_lost_at: float | None = None  # when the audio device was lost or found missing (None: playing)
        self._audio_waiting = None  # the synth that found no device at start: tried again like a lost one
        self.on_audio: Callable[[str, float], None] | None = None  # ("lost" | "back", time.monotonic())
        self._visuals_stopped = False  # the window went and nothing else wants frames

    # ------------------------------------------------------------------ opening
    def _open_outputs(self) -> list:
        from livegen.sound.synth import Synth, voices_with

        patch, opts = self.patch, self.options
        specs = list(Synth(patch.audio.sample_rate, voices=voices_with(patch.voices)).param_specs())
        if opts.audio and patch.audio.enabled:
            from livegen.sound.server import AudioUnavailable, SynthOutput

            device = opts.audio_device if opts.audio_device is not None else (patch.audio.device or None)
            self._synth_args = dict(device=device, sample_rate=patch.audio.sample_rate, blocksize=patch.audio.blocksize,
                                    voices=voices_with(patch.voices), master_gain=patch.audio.master_gain)
            synth = SynthOutput(**self._synth_args)
            try:
                info = synth.start()
                self.synth = synth
                self.outputs.append(synth)
                log.info("audio: %s", _describe_audio(info))
            except AudioUnavailable as e:
                # Missing at start is treated like lost during the show: the show plays without
                # the synth and the device is looked for until it is there (jackd started, or
                # the interface plugged in, after livegen). Meanwhile the unopened synth stands
                # in the outputs: it drops notes and keeps the parameter values for the real one.
                self._missing(f"{e}; looking for it again until it is there")
                self.outputs.append(synth)
                self._audio_waiting, self.audio_lost_at = synth, time.monotonic()
        self._open_timing_server()
        if (opts.window or opts.headless_visuals or self._frames_out_wanted()) and patch.visuals.enabled:
            specs += self._open_visuals()
        self.outputs.extend(self.extra_outputs)
        return specs

    def _open_visuals(self) -> list:
        """Window, sources, style network and its worker; whatever fails is reported once."""
        from livegen.visuals.pipeline import build_pipeline
        from livegen.visuals.window import DisplayUnavailable, Window

        v, opts = self.patch.visuals, self.options
        try:
            if opts.window:
                fullscreen = v.fullscreen if opts.fullscreen is None else opts.fullscreen
                self.window = Window(v.width, v.height, scale=v.scale, title=f"livegen — {self.patch.name}",
                                     fullscreen=fullscreen, display=v.display)
        except DisplayUnavailable as e:
            self._missing(f"{e}")
            if not (opts.headless_visuals or self._frames_out_wanted()):
                return []
        self.pipeline = build_pipeline(v, seed=opts.seed or 0, warn=self._missing, worker=True)
        self.visuals_out = self.pipeline.output
        self.scene = self.visuals_out.scene
        self.outputs.append(self.visuals_out)
        self._open_frames_out()
        return self.pipeline.param_specs()

    def _open_timing_server(self) -> None:
        """MIDI ports, OSC targets and scsynth run in the timing-server process."""
        from livegen.clock.timing_server import TimingServer

        patch = self.patch
        m = patch.midi
        specs: list[tuple] = []
        if m.virtual_output:
            specs.append(("midi-virtual", "livegen out", m.client_name))
        specs += [("midi", pattern, m.client_name) for pattern in m.outputs]
        specs += [("osc", t.name, t.host, t.port, t.prefix.replace("{instance}", self.instance), tuple(t.send))
                  for t in patch.osc.targets]
        sc = patch.supercollider
        if sc.enabled:
            self._prepare_scsynth(sc)
            specs.append(("scsynth", sc.host, sc.port, sc.synthdef, sc.group))
        if not specs:
            return
        server = TimingServer(specs)
        try:
            server.start()
        except RuntimeError as e:
            self._missing(f"MIDI/OSC outputs unavailable: {e}")
            return
        self.timing = server
        self.outputs.append(server)
        for line in server.opened:
            log.info("%s", line)
        for line in server.missing:
            self._missing(line)

    def _prepare_scsynth(self, sc) -> None:
        """The patch's SynthDef file into scsynth, and its group made: a performer need not
        run sclang. A failure is one line; the output still opens (a server booted later
        can be readied from sclang)."""
        from livegen.outputs.supercollider import ScsynthSetupError, prepare_server

        try:
            for line in prepare_server(sc.host, sc.port, synthdef=sc.synthdef,
                                       synthdef_file=sc.synthdef_file, group=sc.group):
                log.info("%s", line)
        except ScsynthSetupError as e:
            self._missing(str(e))
        except OSError as e:  # e.g. a host name that does not resolve
            self._missing(f"scsynth at {sc.host}:{sc.port}: {e.strerror or e}")

    def _missing(self, line: str) -> None:
        self.missing.append(line)
        log.warning("%s", line)

    async def start(self) -> Engine:
        patch, opts = self.patch, self.options
        limit_torch_threads()
        loop = asyncio.get_running_loop()
        specs = self._open_outputs()
        # In this process only outputs that place events themselves (the synth, with its own
        # lead) or need no precision (the window): a short spin is enough.
        self.dispatcher = Dispatcher(self.outputs, spin=0.0005)
        engine = Engine(patch, self.dispatcher, seed=opts.seed, extra_specs=specs)
        self.engine = engine
        engine.on_quit = self._quit.set
        if self.window is not None:
            engine.on_screenshot = self.request_screenshot
        self.dispatcher.start()
        engine.start_generator_thread()
        for name, value in engine.store.targets().items():  # outputs learn the starting values
            from livegen.events import ParamChanged

            self.dispatcher.schedule(ParamChanged(time.monotonic(), name, value))
        await self._open_inputs(loop, engine)
        # Everything loaded so far (torch, the models) lives for the whole show: move it out
        # of the garbage collector's reach, so a full collection during the show (it holds
        # the GIL) takes milliseconds instead of the 0.1-0.2 s that made early notes late.
        gc.collect()
        gc.freeze()
        if opts.link or patch.clock.source == "link":
            self._open_link(engine)
        t_start = time.monotonic() + engine.lookahead
        engine.start_clock(t_start, self.link.start_beat(t_start) if self.link is not None else 0.0)
        if self.link is not None:
            self._tasks.append(asyncio.create_task(self._link_sync(engine), name="livegen-link"))
        self._tasks.append(asyncio.create_task(self._tick(engine), name="livegen-tick"))
        if self.synth is not None or self._audio_waiting is not None:
            self._tasks.append(asyncio.create_task(self._watch_audio(), name="livegen-audio-watch"))
        if self.scene is not None:
            self._tasks.append(asyncio.create_task(self._frames(engine), name="livegen-frames"))
        return engine

    async def _open_inputs(self, loop, engine: Engine) -> None:
        from livegen.control.urgent import UrgentPanic

        patch, opts = self.patch, self.options
        # A panic acts on the thread that hears it (OSC's receiver, a MIDI port's), not when the loop gets to it.
        self.urgent = UrgentPanic(engine.urgent_panic, engine.midi_triggers, instance=self.instance)
        if patch.osc.enabled:
            from livegen.control.osc_server import OscServer

            port = patch.osc.port if opts.osc_port is None else opts.osc_port
            self.osc = OscServer(engine, host=patch.osc.host, port=port, maps=engine.osc_maps,
                                 triggers=engine.osc_triggers, specs=engine.store.spec, allow=patch.osc.allow,
                                 on_record=self.set_recording if self.recorder is not None else None,
                                 instance=self.instance, urgent=self.urgent)
            try:
                await self.osc.start()
                log.info("OSC in: %s:%d, as instance %r (%s/%s/... for this one, %s/... for all)", patch.osc.host,
                         self.osc.port, self.instance, "/livegen", self.instance, "/livegen")
            except OSError as e:
                self.osc = None
                self._missing(f"cannot listen for OSC on {patch.osc.host}:{port}: {e.strerror or e}")
        patterns = patch.midi.inputs if opts.midi_inputs is None else opts.midi_inputs
        if patterns:
            from livegen.clock.midi_clock import ClockFollower
            from livegen.control.midi_in import MidiInput

            self.follower = ClockFollower()
            try:
                self.midi_in = MidiInput(list(patterns), self._on_midi, loop, engine.decoder,
                                         client_name=patch.midi.client_name)
                self.midi_in.urgent = self.urgent
                self._tasks.append(asyncio.create_task(self.midi_in.watch(), name="livegen-midi-watch"))
            except Exception as e:
                self._missing(f"MIDI input unavailable: {_one_line(e)}")
        if opts.watch_patch and getattr(patch, "path", None):
            from livegen.patch.loader import check_params
            from livegen.patch.watch import PatchWatcher

            self.watcher = PatchWatcher(Path(patch.path), on_change=self._reload,
                                        on_error=lambda e: log.warning("%s (keeping the running patch)", e),
                                        validate=lambda p: check_params(p, engine.param_specs()))
            self.watcher.start()

    def _open_link(self, engine: Engine) -> None:
        from livegen.clock.link import LinkSync, LinkUnavailable, open_link

        try:
            link = open_link(engine.clock.bpm, engine.clock.beats_per_bar)
        except LinkUnavailable as e:
            self._missing(f"{e}; playing on livegen's own clock")
            return
        self.link = LinkSync(link, engine.clock, show_tempo=engine.show_tempo)
        log.info("Ableton Link: joined at %.1f bpm, %d beats a bar (%d other peers)",
                 self.link.bpm, engine.clock.beats_per_bar, self.link.peers)

    def _on_midi(self, event, t: float, port: str) -> None:
        engine = self.engine
        if engine is None:
            return
        engine.handle_midi(event, t, port, self.follower)
        if self.midi_in is not None and self.midi_in.decoder is not engine.decoder:
            self.midi_in.decoder = engine.decoder  # MIDI learn added a 14-bit controller

    def _reload(self, patch) -> None:
        assert self.engine is not None
        old = self.patch
        for section in ("audio", "visuals"):
            if getattr(old, section) != getattr(patch, section):
                log.info("patch: the [%s] changes take effect when livegen is restarted", section)
        if (old.midi.inputs, old.midi.outputs, old.midi.virtual_output) != (
                patch.midi.inputs, patch.midi.outputs, patch.midi.virtual_output) or (
                old.osc.host, old.osc.port, old.osc.targets) != (patch.osc.host, patch.osc.port, patch.osc.targets) or (
                old.supercollider != patch.supercollider) or old.clock.source != patch.clock.source:
            log.info("patch: port, target and clock-source changes take effect when livegen is restarted")
        self.patch = patch
        self.engine.apply_patch(patch)
        if self.osc is not None:
            self.osc.set_mappings(self.engine.osc_maps, self.engine.osc_triggers)
        if self.midi_in is not None:
            self.midi_in.decoder = self.engine.decoder
        if self.urgent is not None:
            self.urgent.set_triggers(self.engine.midi_triggers)

    # ------------------------------------------------------------------ running
    async def _tick(self, engine: Engine) -> None:
        while True:
            try:
                engine.advance()
            except Exception:  # the show goes on
                engine.problems.warn("advance", "engine step failed; see the log")
                log.debug("engine step failed", exc_info=True)
            if self.window is not None:
                # Keys are read here, every tick, not once a frame: Space (panic) acts within
                # 5 ms instead of up to a frame and its drawing (33 ms and more) later.
                try:
                    self._window_actions(engine)
                except Exception:
                    engine.problems.warn("window-keys", "reading the window's keys failed; see the log")
                    log.debug("window actions failed", exc_info=True)
            await asyncio.sleep(TICK_SECONDS)

    async def _link_sync(self, engine: Engine) -> None:
        assert self.link is not None
        while True:
            try:
                self.link.sync(engine.store.get("tempo"))
            except Exception:  # the show goes on, on its own clock
                engine.problems.warn("link", "Ableton Link sync failed; see the log")
                log.debug("Link sync failed", exc_info=True)
            await asyncio.sleep(LINK_SYNC_SECONDS)

    async def _frames(self, engine: Engine) -> None:
        """Frames at the patch's rate. The scene renders on a worker thread (numpy lets go of
        the GIL for most of it), so the loop stays free for OSC and MIDI; only the blit to
        the window, which SDL wants on this thread, happens here."""
        import concurrent.futures

        fps = self.patch.visuals.fps
        period = 1.0 / fps
        next_t = time.monotonic()
        loop = asyncio.get_running_loop()
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="livegen-frames")

        pipeline = self.pipeline

        def render(t: float, params: dict) -> object:
            return pipeline.frame(t, params)

        try:
            while True:
                now = time.monotonic()
                try:
                    params = engine.store.snapshot(now)
                    frame = await loop.run_in_executor(pool, render, now, params)
                    if self._visuals_stopped:  # the window went while this frame was drawn
                        return
                    self._frame_times.append(now)
                    if self.window is not None:
                        self.window.show(frame, self._hud(engine) if self.window.hud_visible else None)
                    if self.window is not None:
                        self._take_screenshots()
                    self._frames_out(frame, now)
                    self.frames += 1
                except Exception:
                    engine.problems.warn("frame", "drawing a frame failed; see the log")
                    log.debug("frame failed", exc_info=True)
                if self._visuals_stopped:
                    return
                next_t = max(next_t + period, time.monotonic())
                await asyncio.sleep(max(0.0, next_t - time.monotonic()))
        finally:
            pool.shutdown(wait=True)

    async def _watch_audio(self) -> None:
        """A synth process that ends during the show (its device lost, or killed) is said
        once; the show plays on without it and the device is tried again until it is back.
        A device missing at start is looked for the same way."""
        if self._audio_waiting is not None:
            waiting, self._audio_waiting = self._audio_waiting, None
            await self._audio_back(waiting, self.audio_lost_at or time.monotonic(), "found")
        while True:
            await asyncio.sleep(AUDIO_CHECK_SECONDS)
            synth = self.synth
            if synth is None or synth.alive:
                continue
            lost_at = time.monotonic()
            self.synth, self.audio_lost_at = None, lost_at
            log.warning("audio output %s lost: %s; the show goes on without the synth (MIDI and OSC out go on) "
                        "and the device is reopened as soon as it is back", _audio_name(synth.info),
                        synth.exit_reason)
            self._audio_changed("lost", lost_at)
            await asyncio.to_thread(synth.close)  # events for it are dropped quietly until it is replaced
            await self._audio_back(synth, lost_at, "back")

    async def _audio_back(self, old, since: float, how: str) -> None:
        """Wait for the device, put the new synth in ``old``'s place, say so."""
        self.synth = await self._reopen_audio(old)
        back_at = time.monotonic()
        self.audio_lost_at = None
        log.info("audio output %s %s after %.1f s: the synth plays%s", _audio_name(self.synth.info), how,
                 back_at - since, " again" if how == "back" else "")
        self._audio_changed("back", back_at)

    async def _reopen_audio(self, old) -> object:
        """A new synth process on the same device, waiting for it to come back; put in the
        old one's place with its parameter values. Each failed try is a line in the log
        file only."""
        from livegen.sound.server import AudioUnavailable, SynthOutput

        # The device the lost synth had, not "the default": with JACK gone the default
        # could be the ALSA card that jackd needs back.
        device = self._synth_args["device"]
        if device is None and isinstance(old.info, dict):
            device = old.info.get("device")
        tries = 0
        while True:
            tries += 1
            new = SynthOutput(**{**self._synth_args, "device": device})
            try:
                await self._start_synth(new)
            except AudioUnavailable as e:
                log.debug("audio output, try %d: %s", tries, e)
                await asyncio.sleep(AUDIO_RETRY_SECONDS)
                continue
            self.dispatcher.replace_output(old, new)  # the events pending for the old one go to it too
            new.take_params(old.params)
            self.outputs = [new if out is old else out for out in self.outputs]
            return new

    @staticmethod
    async def _start_synth(synth) -> dict:
        """``synth.start()`` off the loop; if the rig closes meanwhile, what it opened is closed."""
        task = asyncio.ensure_future(asyncio.to_thread(synth.start, AUDIO_START_SECONDS, AUDIO_WAIT_SECONDS))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            await asyncio.to_thread(synth.close)  # ends its wait for the device
            try:
                await task
            except Exception:
                pass
            raise

    def _audio_changed(self, what: str, t: float) -> None:
        if self.on_audio is not None:
            try:
                self.on_audio(what, t)
            except Exception:
                log.exception("on_audio callback failed")

    # ------------------------------------------------------------------ frames out
    def _frames_out_wanted(self) -> bool:
        """Recording, a virtual camera or NDI: the visuals run even with no window."""
        v, opts = self.patch.visuals, self.options
        return bool(opts.record or v.record or opts.virtual_camera or v.virtual_camera or v.share)

    def _open_frames_out(self) -> None:
        """The recorder (started now when the patch or --record names a file) and the frame
        shares; whatever is missing is one line and the show plays on."""
        from livegen.visuals.camera_out import open_frame_shares
        from livegen.visuals.recorder import NO_FFMPEG, Recorder
        from livegen.visuals.video import find_ffmpeg

        v, opts = self.patch.visuals, self.options
        self._record_hud = v.record_hud if opts.record_hud is None else opts.record_hud
        template = opts.record or v.record
        self.recorder = Recorder(template, v.fps, (v.width, v.height))
        if template:
            if find_ffmpeg() is None:
                self._missing(NO_FFMPEG)
            else:
                self.recorder.start(self._record_size(), "--record" if opts.record else "[visuals] record")
        self.frame_shares = open_frame_shares(v, virtual_camera=opts.virtual_camera or v.virtual_camera,
                                              warn=self._missing)

    def _record_size(self) -> tuple[int, int]:
        """The visuals' working size; the window's size when recording it with its HUD."""
        if self._record_hud and self.window is not None:
            return self.window.size
        v = self.patch.visuals
        return (v.width, v.height)

    def set_recording(self, on: bool | None, source: str = "") -> bool:
        """Start (True), stop (False) or toggle (None) recording; never waits on the encoder."""
        if self.recorder is None:
            _PROBLEMS.warn("record", "recording asked for (%s) but the visuals are off", source or "?")
            return False
        if on is None:
            on = not self.recorder.recording
        return self.recorder.start(self._record_size(), source) if on else self.recorder.stop(source=source)

    def _frames_out(self, frame, t: float) -> None:
        rec = self.recorder
        if rec is not None and rec.take is not None:
            if self._record_hud and self.window is not None:
                rec.add(self.window.pixels(rec.take.size), t, copy=False)
            else:
                rec.add(frame, t)
        for share in self.frame_shares:
            share.send(frame)

    def _close_frames_out(self) -> None:
        for share in self.frame_shares:
            share.close()
        if self.recorder is not None:
            self.recorder.close()  # waits for ffmpeg to finish the file; says where it is

    def _window_actions(self, engine: Engine) -> None:
        for action in self.window.poll():
            if action in ("close", "lost"):
                self._window_gone(engine, action)
                return
            if action == "quit":
                engine.quit("window")
            elif action == "panic":
                engine.panic("key")
            elif action == "fullscreen":
                self.window.toggle_fullscreen()
            elif action == "hud":
                self.window.toggle_hud()
            elif action == "screenshot":
                self.request_screenshot(None)
            elif action == "record":
                self.set_recording(None, "key")

    def _window_gone(self, engine: Engine, how: str) -> None:
        """The window manager closed the window, or its display went away: the show stops
        only when the patch says ``on_close = "quit"``; else the visuals stop (recording and
        frame shares go on) and the music plays on."""
        what = "window closed by the window manager" if how == "close" else "display lost (the X server went away)"
        window, self.window = self.window, None
        window.close()
        if self.patch.visuals.on_close == "quit":
            log.info("%s: stopping, as the patch says ([visuals] on_close = \"quit\")", what)
            engine.quit(f"window ({how})")
            return
        if self.options.headless_visuals or self._frames_out_wanted():
            rest = "the visuals go on for the recording and frame shares"
        else:
            self._visuals_stopped = True
            rest = "the visuals stop"
        log.warning("%s: %s, the music goes on (Ctrl-C or OSC /livegen/quit to stop; [visuals] on_close = \"quit\" "
                    "makes closing the window stop the show)", what, rest)

    def request_screenshot(self, path: Path | None = None) -> None:
        """Save the window's next frame as a PNG (``path`` or screenshots/livegen-<time>.png)."""
        self._screenshot_requests.append(path)

    def _take_screenshots(self) -> None:
        while self._screenshot_requests:
            path = self._screenshot_requests.pop(0)
            if path is None:
                stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{int(time.time() * 1000) % 1000:03d}"
                path = Path(self.patch.visuals.screenshot_dir or "screenshots") / f"livegen-{stamp}.png"
            try:
                self.screenshots.append(self.window.screenshot(path))
                log.info("screenshot: %s", path)
            except Exception as e:
                log.warning("screenshot %s failed: %s", path, _one_line(e))

    def _hud(self, engine: Engine) -> list[str]:
        """fps, frame latency, tempo, bar:beat and the style weights, for the HUD."""
        times = self._frame_times
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
        out = self.visuals_out
        lines = [f"{fps:4.1f} fps   frame latency {self.pipeline.last_latency * 1000:5.1f} ms",
                 f"{engine.clock.bpm:.1f} BPM   bar {(out.bar or 0) + 1}:{out.beat_in_bar + 1}"]
        settings = self.pipeline.last_settings
        if settings is not None and self.pipeline.controls is not None:
            ws = [f"{n} {w:.2f}" for n, w in zip(self.pipeline.controls.styles, settings.weights) if w > 0.005]
            lines.append(f"style x{settings.intensity:.2f}: " + (", ".join(ws) if ws else "none"))
        rec = self.recorder.hud_line() if self.recorder is not None else None
        if rec:
            lines.append(rec)
        return lines

    async def wait(self) -> None:
        await self._quit.wait()

    def request_quit(self) -> None:
        self._quit.set()

    # ------------------------------------------------------------------ closing
    async def close(self) -> None:
        """Inputs closed, all notes off everywhere, threads and processes joined."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks.clear()
        self._close_frames_out()
        if self.watcher is not None:
            self.watcher.stop()
        if self.midi_in is not None:
            self.midi_in.close()
        if self.osc is not None:
            self.osc.close()
        if self.link is not None:
            self.link.close()
        if self.engine is not None:
            self.engine.panic("shutdown")
            self.engine.stop_generator_thread()
        if self.dispatcher is not None:
            self.dispatcher.stop(flush=True)
        for out in self.outputs:
            try:
                out.close()
            except Exception:
                log.debug("closing %s failed", getattr(out, "name", out), exc_info=True)
        if self.pipeline is not None:
            self.pipeline.close()
        if self.window is not None:
            self.window.close()
        ports = sys.modules.get("livegen.control.midi_ports")
        if ports is not None:
            # The port-listing JACK clients: left to die with the process, JACK waits for
            # them for a few periods, and every other client on the server hears xruns.
            ports.close_listers()


async def play(patch_path: Path, options: RigOptions, on_ready: Callable[[LiveRig], None] | None = None) -> int:
    from livegen.patch.loader import load_patch

    patch = load_patch(patch_path)
    rig = LiveRig(patch, options)
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_loop_exception)
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, rig.request_quit)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        await rig.start()
        log.info("playing %s at %.1f bpm in %s — Esc, Ctrl-C or OSC /livegen/quit to stop",
                 patch.name, rig.engine.clock.bpm, rig.engine.key)
        if on_ready is not None:
            on_ready(rig)
        await rig.wait()
    finally:
        await rig.close()
        log.info("stopped: all notes off, workers joined")
    return 0


_PROBLEMS = RateLimitedLog()  # the rig's own problem lines, rate-limited


def _loop_exception(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """Whatever escapes a callback or task on the loop: one line (rate-limited), details in
    the log file; the loop, and the show, go on. asyncio's default prints a traceback."""
    exc = context.get("exception")
    what = context.get("message") or "error in the event loop"
    detail = f"{type(exc).__name__}: {' '.join(str(exc).split())}" if exc is not None else ""
    _PROBLEMS.warn(f"loop:{what}:{type(exc).__name__}", "%s%s; see the log file", what,
                        f" ({detail})" if detail else "")
    log.debug("event loop: %s", what, exc_info=exc if exc is not None else False)


def _audio_name(info) -> str:
    """'system' (JACK Audio Connection Kit): the device a synth process had."""
    if isinstance(info, dict) and info.get("device"):
        return f"'{info['device']}' ({info.get('hostapi', '?')})"
    return "(unknown device)"


def _describe_audio(info) -> str:
    if isinstance(info, dict):
        return ", ".join(f"{k} {v}" for k, v in info.items())
    return str(info)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__
