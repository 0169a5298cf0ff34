"""The audio server: the synth in its own process, fed by messages over a pipe (like scsynth).

The engine's dispatch thread hands ``SynthOutput`` each event about ``lead`` seconds early.
``send`` only writes a small tuple to a pipe. The child process owns a PortAudio output
stream; its callback drains the pipe without blocking, keeps timed events in a heap, turns
each event time (``time.monotonic()``, the same clock in both processes) into a sample
offset inside the block being rendered, and renders the synth. The callback never waits
on the engine, the parent's GIL, or a model, and the child never imports torch.

When the device goes (jackd killed, a USB interface pulled) the stream stops, or stops
asking for audio; the child then exits at once with a code that says which (closing a
stream on a dead server would wait forever). ``SynthOutput.alive`` turns false and
``exit_reason`` says why: the live rig reports it in one line, plays on without the synth
and opens a new ``SynthOutput`` when the device is back (``take_params`` carries the synth
parameters over).
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import itertools
import logging
import multiprocessing
import os
import select
import signal
import sys
import threading
import time
import types
from collections import deque
from typing import Any, Iterator, Mapping

import numpy as np

from livegen.events import AllNotesOff, NoteOff, NoteOn, OutEvent, ParamChanged
from livegen.log import RateLimitedLog
from livegen import realtime
from livegen.realtime import raise_thread_priority
from livegen.sound.synth import DEFAULT_VOICES, Synth, VoiceSpec, param_names

log = logging.getLogger("livegen")

_WHAT_TO_DO = "use --no-audio, or livegen render"
_SWITCH_INTERVAL = 0.0002  # seconds another thread may keep the GIL while the callback waits
AHEAD_BLOCKS = 3  # blocks rendered ahead of the callback: slack for stalls, at 16 ms latency
_MAX_MESSAGES_PER_CALLBACK = 256  # bounds the time one callback spends reading the pipe
_MAX_PENDING = 20000  # timed events held in the child; beyond this new ones are dropped
DEVICE_POLL_SECONDS = 0.5  # while waiting for a device to come back: how often PortAudio looks again
PANIC_FADE_FRAMES = 64  # 1.3 ms at 48 kHz: the fade-out on panic, short enough to be silent within the block
START_LAG_EDGES = (0.0005, 0.001, 0.002, 0.003)  # seconds: the callback start lateness counted
STALL_SECONDS = 1.5  # no callback for this long while the stream says it runs: the device is gone
EXIT_STREAM_STOPPED = 3  # the audio process's exit codes: the system stopped the stream
EXIT_STALLED = 4  # ... or the device stopped asking for audio


def panic_fade(frames: int) -> np.ndarray:
    """The gain a panic puts on the block it cuts: down to 0 over ``PANIC_FADE_FRAMES``
    (a ramp, not a click), then silence for the rest of the block."""
    n = min(frames, PANIC_FADE_FRAMES)
    gain = np.zeros(frames, dtype=np.float32)
    gain[:n] = np.linspace(1.0, 0.0, n, endpoint=False, dtype=np.float32)
    return gain[:, None]


class AudioUnavailable(RuntimeError):
    """The synth cannot sound here (no device, device busy, PortAudio missing...)."""


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


# ---------------------------------------------------------------------------- device choice
def _describe_devices(sd: Any) -> str:
    apis = sd.query_hostapis()
    outs = [f"{d['index']} {d['name']!r} ({apis[d['hostapi']]['name']})"
            for d in sd.query_devices() if d["max_output_channels"] > 0]
    return "; ".join(outs) if outs else "none"


def choose_device(sd: Any, device: int | str | None) -> int:
    """PortAudio output device index for ``device`` (see ``SynthOutput``), or AudioUnavailable."""
    devices = list(sd.query_devices())
    apis = sd.query_hostapis()
    outputs = [d for d in devices if d["max_output_channels"] > 0]
    if isinstance(device, str) and device.strip().isdigit():
        device = int(device.strip())
    if device is None:
        try:
            default = int(sd.default.device[1])
        except (TypeError, ValueError, IndexError):
            default = -1
        if 0 <= default < len(devices) and devices[default]["max_output_channels"] > 0:
            return default
        jack = [d for d in outputs if "jack" in apis[d["hostapi"]]["name"].lower()]
        if jack:
            return int(jack[0]["index"])
        if outputs:
            return int(outputs[0]["index"])
        raise AudioUnavailable(f"no audio output device (PortAudio found none): {_WHAT_TO_DO}")
    if isinstance(device, int):
        if 0 <= device < len(devices) and devices[device]["max_output_channels"] > 0:
            return device
        raise AudioUnavailable(f"no audio output device with index {device} (outputs: {_describe_devices(sd)}): "
                               f"{_WHAT_TO_DO}")
    want = str(device).strip().lower()
    exact = [d for d in outputs if d["name"].lower() == want]
    named = [d for d in outputs if want in d["name"].lower()]
    by_api = [d for d in outputs if want in apis[d["hostapi"]]["name"].lower()]
    for found in (exact, named, by_api):
        if found:
            return int(found[0]["index"])
    raise AudioUnavailable(f"no audio output device matching {device!r} (outputs: {_describe_devices(sd)}): "
                           f"{_WHAT_TO_DO}")


# ---------------------------------------------------------------------------- child process
class _AudioState:
    """What the audio callback owns in the child: the synth, the event heap and counters."""

    def __init__(self, conn: Any, synth: Synth, sample_rate: int, channels: int, device: str,
                 blocksize: int = 256, ahead: int = AHEAD_BLOCKS, panic_flag: Any = None) -> None:
        self.conn = conn
        self.panic_flag = panic_flag  # shared with the parent, bumped by each panic before its pipe message
        self.cb_panic = self.render_panic = panic_flag.value if panic_flag is not None else 0
        self.fade = panic_fade(blocksize)
        self.blocksize = blocksize
        self.ahead = ahead
        self.ring = np.zeros((ahead + 2, blocksize, channels), dtype=np.float32)
        self.written = 0  # blocks rendered (render thread)
        self.read = 0  # blocks played (callback)
        self.base_time: float | None = None  # monotonic time block 0 left (or would have left) the DAC
        self.wake = threading.Event()
        self.starved = 0
        self.late_log: deque = deque(maxlen=32)
        self.underrun_times: deque[float] = deque(maxlen=64)  # when: tells a stall from a steady overload
        self.renders = 0
        self.total_render = 0.0
        self.max_render = 0.0
        self.render_priority = ""
        self.synth = synth
        self.sr = sample_rate
        self.channels = channels
        self.device = device
        self.latency = 0.0
        self.heap: list[tuple[float, int, tuple]] = []
        self.seq = itertools.count()
        self.quit = threading.Event()
        self.callbacks = 0
        self.underruns = 0
        self.late_events = 0
        self.dropped_events = 0
        self.errors = 0
        self.max_callback = 0.0
        self.total_callback = 0.0
        self.start_lags = [0] * len(START_LAG_EDGES)  # callbacks that began later than each edge
        self.max_start_lag = 0.0
        self.peak = 0.0
        self.priority = ""

    def callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """The host's real-time thread: copy out a block the render thread made earlier.

        Rendering here would put ~1 ms of numpy on the real-time path and make every
        stall of this machine an audible dropout; copying takes microseconds.
        """
        started = time.perf_counter()
        if self.callbacks == 0:  # the host's audio thread: ask for it to come before everything else
            self.priority = raise_thread_priority(realtime.JACK_CLIENT)
        try:
            now = time.monotonic()
            if status.output_underflow:
                self.underruns += 1
                self.underrun_times.append(now)
            dac, current = time_info.outputBufferDacTime, time_info.currentTime
            if dac > 0 and 0.0 <= dac - current < 1.0:
                block_time = dac + (now - current)
            else:  # a host API without timing: assume the stream's nominal latency
                block_time = now + self.latency
            if frames != self.blocksize:  # a host that changes block sizes: render in place
                self._drain()
                self._place(block_time, frames)
                self._write(outdata, self.synth.render(frames))
            else:
                self._track(block_time)
                flag = self.panic_flag
                if flag is not None and flag.value != self.cb_panic:
                    # Panic: this very block fades out, and the blocks rendered ahead (they
                    # hold the voices) are silenced; the render thread stops the voices.
                    self.cb_panic = flag.value
                    ring, n = self.ring, len(self.ring)
                    if self.written > self.read:
                        np.multiply(ring[self.read % n], self.fade, out=outdata)
                        self.read += 1
                    else:
                        outdata.fill(0)
                    for j in range(self.read, self.written):
                        ring[j % n].fill(0)
                elif self.written > self.read:
                    outdata[:] = self.ring[self.read % len(self.ring)]
                    self.read += 1
                else:  # the render thread fell behind: silence, counted
                    outdata.fill(0)
                    self.starved += 1
                    self.read = max(self.read, self.written)
        except Exception:  # an exception would stop the stream: play silence and count it
            outdata.fill(0)
            self.errors += 1
            if self.errors == 1:
                log.exception("audio callback failed (playing silence)")
        self.wake.set()
        elapsed = time.perf_counter() - started
        self.callbacks += 1
        self.total_callback += elapsed
        if elapsed > self.max_callback:
            self.max_callback = elapsed

    def _track(self, block_time: float) -> None:
        """Follow when block 0 would have left the DAC, smoothly.

        Each callback's timestamp jitters by as much as the thread was late to run; taken
        as it is, consecutive blocks would overlap or leave gaps in time and notes would
        fall into the gaps. A slow average keeps the blocks contiguous and still follows
        a device clock that drifts against ours.
        """
        estimate = block_time - self.read * self.blocksize / self.sr
        if self.base_time is None or abs(estimate - self.base_time) > 0.05:  # start, or a jump
            self.base_time = estimate
        else:
            # How late this callback began against the smoothed grid of periods: JACK
            # waking it late, or the wait for the GIL. Its tail is what becomes an underrun.
            lag = estimate - self.base_time
            if lag > self.max_start_lag:
                self.max_start_lag = lag
            for i, edge in enumerate(START_LAG_EDGES):
                if lag > edge:
                    self.start_lags[i] += 1
                else:
                    break
            self.base_time += 0.01 * (estimate - self.base_time)

    def render_loop(self) -> None:
        """Keep ``ahead`` blocks rendered in front of the callback, events placed on the sample."""
        self.render_priority = raise_thread_priority(realtime.RENDER)
        bs, ring = self.blocksize, self.ring
        while not self.quit.is_set():
            if self.written - self.read >= self.ahead:
                self.wake.wait(0.05)
                self.wake.clear()
                continue
            started = time.perf_counter()
            try:
                flag = self.panic_flag
                seen = flag.value if flag is not None else 0
                if seen != self.render_panic:
                    self._panic_now(seen)
                self._drain()
                base = self.base_time
                if base is None:  # before the first callback: the stream's nominal latency
                    block_time = time.monotonic() + self.latency + (self.written - self.read) * bs / self.sr
                else:
                    block_time = base + self.written * bs / self.sr
                self._place(block_time, bs)
                self._write(ring[self.written % len(ring)], self.synth.render(bs))
                if flag is not None and flag.value != seen:  # a panic came while it was rendered
                    ring[self.written % len(ring)].fill(0)
            except Exception:
                ring[self.written % len(ring)].fill(0)
                self.errors += 1
                if self.errors == 1:
                    log.exception("audio rendering failed (playing silence)")
            self.written += 1
            elapsed = time.perf_counter() - started
            self.renders += 1
            self.total_render += elapsed
            if elapsed > self.max_render:
                self.max_render = elapsed

    def _panic_now(self, seen: int) -> None:
        """The callback has faded out: stop the voices (their 5 ms fade is rendered and thrown
        away: it would sound after the silence) and drop every note queued before the panic."""
        self.render_panic = seen
        self.synth.all_notes_off(0)
        self.synth.render(self.blocksize)
        kept = [e for e in self.heap if e[2][0] == "param"]
        if len(kept) != len(self.heap):
            heapq.heapify(kept)
            self.heap = kept

    def _silence_rendered(self) -> None:
        """Panic reaches the blocks already rendered ahead too: the next one to play fades
        out, the rest are silent. (The block the callback may be copying right now is left.)"""
        ring, n = self.ring, len(self.ring)
        first = self.read + 1
        for j in range(first, self.written):
            block = ring[j % n]
            if j == first:
                block *= panic_fade(len(block))
            else:
                block.fill(0)

    def _write(self, dest: np.ndarray, out: np.ndarray) -> None:
        if self.channels == 1:
            dest[:, 0] = out.mean(axis=1)
        else:
            dest[:] = out
        peak = float(np.max(np.abs(out))) if len(out) else 0.0
        if peak > self.peak:
            self.peak = peak

    def _drain(self) -> None:
        conn = self.conn
        for _ in range(_MAX_MESSAGES_PER_CALLBACK):
            try:
                if not conn.poll(0):
                    return
                msg = conn.recv()
            except (EOFError, OSError):  # the parent has gone
                self.quit.set()
                return
            self._handle(msg)

    def _handle(self, msg: tuple) -> None:
        kind = msg[0]
        if kind in ("on", "off", "param"):
            if len(self.heap) < _MAX_PENDING:
                heapq.heappush(self.heap, (msg[1], next(self.seq), msg))
            else:  # something upstream is flooding us: keep what is already queued
                self.dropped_events += 1
        elif kind == "panic":
            if self.panic_flag is None:
                self.synth.all_notes_off(0)
                self._silence_rendered()
            elif self.panic_flag.value != self.render_panic:  # (the callback fades out on its own)
                self._panic_now(self.panic_flag.value)
            t = msg[1]
            # Notes due up to the panic would only have been cut by it: drop them too.
            kept = [e for e in self.heap if e[2][0] == "param" or e[0] > t]
            if len(kept) != len(self.heap):
                heapq.heapify(kept)
                self.heap = kept
        elif kind == "stats":
            self._reply(("stats", msg[1], self.stats()))
        elif kind == "quit":
            self.quit.set()

    def _place(self, block_time: float, frames: int) -> None:
        """Hand the synth every event that falls in this block, at its sample offset."""
        heap, sr, synth = self.heap, self.sr, self.synth
        while heap:
            t, _, msg = heap[0]
            offset = int(round((t - block_time) * sr))
            if offset >= frames:
                return
            heapq.heappop(heap)
            kind = msg[0]
            if offset < 0:
                offset = 0
                if kind != "param":  # a parameter change is due "now" by nature
                    self.late_events += 1
                    self.late_log.append((kind, round((block_time - t) * 1e3, 2), round(t - time.monotonic(), 4)))
            if kind == "on":
                synth.note_on(msg[2], msg[3], msg[5], msg[4], offset)
            elif kind == "off":
                synth.note_off(msg[2], msg[3], offset)
            else:
                synth.set_param(msg[2], msg[3])

    def stats(self) -> dict:
        n = self.callbacks
        out = {
            "callbacks": n,
            "underruns": self.underruns,
            "late_events": self.late_events,
            "dropped_events": self.dropped_events,
            "errors": self.errors,
            "max_callback_ms": self.max_callback * 1e3,
            "start_lag_ms": {f">{e * 1e3:g}": n for e, n in zip(START_LAG_EDGES, self.start_lags)},
            "max_start_lag_ms": self.max_start_lag * 1e3,  # since the last stats
            "mean_callback_ms": (self.total_callback / n * 1e3) if n else 0.0,
            "peak": self.peak,
            "active_voices": self.synth.active_voices,
            "pending_events": len(self.heap),
            "torch_loaded": "torch" in sys.modules,
            "device": self.device,
            "priority": self.priority,
            "render_priority": self.render_priority,
            "starved": self.starved,
            "mean_render_ms": (self.total_render / self.renders * 1e3) if self.renders else 0.0,
            "max_render_ms": self.max_render * 1e3,
            "ahead_blocks": self.ahead,
            "underrun_times": list(self.underrun_times),
            "late_log": list(self.late_log),
        }
        self.peak = 0.0
        self.max_start_lag = 0.0  # (like the peak: the largest since the last reading)
        return out

    def _reply(self, msg: tuple) -> None:
        try:
            self.conn.send(msg)
        except (OSError, ValueError):
            self.quit.set()


def _serve(conn: Any, device: int | str | None, sample_rate: int, blocksize: int,
           voices: Mapping[str, VoiceSpec] | None, master_gain: float, wait: float = 0.0,
           panic_flag: Any = None) -> None:
    """The audio process: open the stream, report ready or error, run until told to quit.

    With ``wait`` a device that is not there (yet) is looked for again every
    ``DEVICE_POLL_SECONDS`` for that long: a reopening after a loss is ready within a
    poll of the device's return, not a process start later."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's; it closes us
    # The callback needs the GIL that the render thread holds between numpy calls: by
    # default Python lets a thread keep it 5 ms, a whole JACK period. Hand it over fast.
    sys.setswitchinterval(_SWITCH_INTERVAL)
    from livegen.native_log import route_native_messages

    route_native_messages()  # libjack's "Cannot connect to server socket"... not on the terminal

    def fail(message: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            conn.send(("error", message))

    try:
        import sounddevice as sd
    except Exception as e:  # OSError when the PortAudio library is missing
        fail(f"PortAudio not available ({_one_line(e)}): install libportaudio2, or {_WHAT_TO_DO}")
        return
    deadline = time.monotonic() + wait
    while True:
        try:
            index = choose_device(sd, device)
            info = sd.query_devices(index)
            api = sd.query_hostapis(info["hostapi"])["name"]
            break
        except AudioUnavailable as e:
            if time.monotonic() >= deadline or _told_to_stop(conn):
                fail(str(e))
                return
        except Exception as e:
            fail(f"cannot list audio devices ({_one_line(e)}): {_WHAT_TO_DO}")
            return
        time.sleep(DEVICE_POLL_SECONDS)
        try:  # PortAudio lists devices once, when initialised: again, to see one that came back
            sd._terminate()
            sd._initialize()
        except Exception as e:
            fail(f"cannot list audio devices ({_one_line(e)}): {_WHAT_TO_DO}")
            return
    channels = min(2, int(info["max_output_channels"]))
    synth = Synth(sample_rate, voices=voices, master_gain=master_gain)
    warm = Synth(sample_rate, voices=voices, master_gain=master_gain)
    warm.note_on(60, 1, "lead")
    warm.render(4 * blocksize)  # first-call costs are paid here, not in the first callbacks
    state = _AudioState(conn, synth, sample_rate, channels, info["name"], blocksize, panic_flag=panic_flag)
    try:
        stream = sd.OutputStream(device=index, samplerate=sample_rate, blocksize=blocksize, channels=channels,
                                 dtype="float32", latency="low", callback=state.callback)
        state.latency = float(stream.latency)
    except Exception as e:
        fail(f"cannot open audio output {info['name']!r} ({api}) at {sample_rate} Hz: {_one_line(e)}: {_WHAT_TO_DO}")
        return
    gc.collect()
    gc.freeze()  # nothing allocated so far needs scanning again: shorter collections in the callback
    renderer = threading.Thread(target=state.render_loop, name="livegen-render", daemon=True)
    renderer.start()
    try:
        stream.start()
    except Exception as e:
        state.quit.set()
        fail(f"cannot start audio output {info['name']!r} ({api}): {_one_line(e)}: {_WHAT_TO_DO}")
        stream.close()
        return
    try:
        conn.send(("ready", {
            "device": info["name"], "index": index, "hostapi": api, "sample_rate": float(stream.samplerate),
            "blocksize": blocksize, "channels": channels, "latency": round(float(stream.latency), 4),
            "render_ahead": round(state.ahead * blocksize / sample_rate, 4),
            "pid": os.getpid(),
        }))
        # This thread takes the GIL five times a second: pre-empted while holding it, it
        # would hold up the callback (see livegen.realtime).
        raise_thread_priority(realtime.GIL_HOLDER)
        parent = multiprocessing.parent_process()
        seen, seen_at = state.callbacks, time.monotonic()
        while not state.quit.wait(0.2):
            if parent is not None and not parent.is_alive():
                break
            now = time.monotonic()
            if state.callbacks != seen:
                seen, seen_at = state.callbacks, now
            lost = (EXIT_STREAM_STOPPED if not stream.active
                    else EXIT_STALLED if now - seen_at > STALL_SECONDS else None)
            if lost is not None:
                # Gone without stream.stop() or close(): on a server that died (jackd
                # killed) they wait for it forever. The parent sees the exit code, says
                # what happened in one line and opens the device again when it is back.
                os._exit(lost)
    except (OSError, ValueError):
        pass
    finally:
        state.quit.set()
        with contextlib.suppress(Exception):
            stream.stop()
        renderer.join(1.0)
        with contextlib.suppress(Exception):
            stream.close()
        with contextlib.suppress(Exception):
            conn.close()


def _told_to_stop(conn: Any) -> bool:
    """While waiting for a device: the parent has gone, or asked us to quit."""
    parent = multiprocessing.parent_process()
    if parent is not None and not parent.is_alive():
        return True
    try:
        while conn.poll(0):
            if conn.recv()[0] == "quit":
                return True
    except (EOFError, OSError):
        return True
    return False


@contextlib.contextmanager
def _bare_main() -> Iterator[None]:
    """Hide ``__main__`` while a spawned child is prepared.

    A spawned child re-imports the parent's main module (``livegen`` CLI, a test runner,
    a notebook...), which may import torch and more; the audio process must not. With a
    bare ``__main__`` the child imports only what its target function needs.
    """
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


# ---------------------------------------------------------------------------- parent side
class SynthOutput:
    """The built-in synth as an ``Output``: events go by pipe to the audio process.

    ``device``: None = the default output (or the JACK device when there is no default),
    an int = a PortAudio device index, a str = part of a device or host API name
    (case-insensitive). ``send`` never waits for the audio process: when the pipe is full
    (the process is stuck) events are dropped and counted. ``lead`` grows past 30 ms when
    the device's latency needs it, so events still reach the callback before their block.
    """

    name = "synth"
    lead = 0.03

    def __init__(self, device: int | str | None = None, sample_rate: int = 48000, blocksize: int = 256,
                 voices: Mapping[str, VoiceSpec] | None = None, master_gain: float = 0.5) -> None:
        self.device = device
        self.sample_rate = int(sample_rate)
        self.blocksize = int(blocksize)
        self.voices = dict(voices or {})
        self.master_gain = float(master_gain)
        self.info: dict | None = None
        self.dropped = 0  # events not sent because the pipe was full or the process gone
        self._params = param_names({**DEFAULT_VOICES, **self.voices})
        self.params: dict[str, float] = {}  # the synth parameters' last values sent: a new synth gets them
        self._params_lock = threading.Lock()
        self._proc: Any = None
        self._conn: Any = None
        self._poller: Any = None
        self._lock = threading.Lock()  # conn.send (dispatch thread, stats, close)
        self._recv_lock = threading.Lock()  # conn.recv (stats) and closing the pipe
        self._request = itertools.count(1)
        self._closed = False
        self._panic_flag: Any = None  # shared memory the audio callback reads (see silence)
        self._silenced = False  # silence() bumped the flag for the all-notes-off that follows
        self._gone = False  # a send found the process gone (said once, in the log file)
        self._problems = RateLimitedLog()

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 10.0, wait_for_device: float = 0.0) -> dict:
        """Start the audio process; returns the device info, or raises AudioUnavailable.

        ``wait_for_device``: seconds the process keeps looking for a device that is not
        there (a JACK server being restarted) before it gives up. ``close()`` from another
        thread ends the wait."""
        if self._closed:
            raise AudioUnavailable("this synth output was closed; make a new one")
        if self._proc is not None:
            return dict(self.info or {})
        ctx = multiprocessing.get_context("spawn")
        conn, child_conn = ctx.Pipe(duplex=True)
        self._panic_flag = ctx.RawValue("L", 0)
        proc = ctx.Process(target=_serve, name="livegen-audio", daemon=True,
                           args=(child_conn, self.device, self.sample_rate, self.blocksize, self.voices,
                                 self.master_gain, wait_for_device, self._panic_flag))
        try:
            with _bare_main():
                proc.start()
        except Exception as e:  # fork/exec failures, unpicklable voices...
            conn.close()
            child_conn.close()
            raise AudioUnavailable(f"cannot start the audio process ({_one_line(e)}): {_WHAT_TO_DO}") from None
        child_conn.close()
        msg: tuple | None = None
        deadline = time.monotonic() + timeout + wait_for_device
        try:
            while time.monotonic() < deadline and not self._closed:
                if conn.poll(0.05):
                    msg = conn.recv()
                    break
                if not proc.is_alive() and not conn.poll(0):
                    break
        except (EOFError, OSError):
            msg = None
        ready = msg is not None and msg[0] == "ready"
        with self._lock:
            closed = self._closed
            if ready and not closed:
                self._proc, self._conn, self.info = proc, conn, dict(msg[1])
        if closed:  # closed from another thread while starting: nothing may stay open
            with contextlib.suppress(OSError, ValueError):
                conn.send(("quit",))
            _stop(proc, conn, 2.0)
            raise AudioUnavailable("this synth output was closed while its audio process started")
        if ready:
            # Events must arrive before the callback that renders their block: a device
            # with more latency than the default lead gets a longer lead.
            ahead = float(self.info.get("render_ahead", 0.0))
            # Margin: a block's wait for the render thread's next drain, plus the main
            # process's dispatch jitter (measured: 2 blocks was not always enough).
            self.lead = max(type(self).lead, float(self.info["latency"]) + ahead + 5.0 * self.blocksize / self.sample_rate)
            if hasattr(select, "poll"):
                self._poller = select.poll()
                self._poller.register(conn.fileno(), select.POLLOUT)
            return dict(self.info)
        exitcode = proc.exitcode
        _stop(proc, conn, 1.0)
        if msg is not None and msg[0] == "error":
            raise AudioUnavailable(msg[1])
        if exitcode is not None:
            raise AudioUnavailable(f"audio process exited (code {exitcode}) before opening a device: {_WHAT_TO_DO}")
        raise AudioUnavailable(f"audio device did not start within {timeout:g} s: {_WHAT_TO_DO}")

    def close(self) -> None:
        """Stop the audio process (quit, join, terminate if stuck). Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            conn, proc = self._conn, self._proc
            self._conn = None
            if conn is not None:
                with contextlib.suppress(OSError, ValueError):
                    conn.send(("quit",))
        with self._recv_lock:
            if proc is not None:
                _stop(proc, conn, 3.0)
            elif conn is not None:
                conn.close()

    def __enter__(self) -> "SynthOutput":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def alive(self) -> bool:
        """Whether the audio process is running."""
        return self._proc is not None and self._proc.is_alive() and not self._closed

    @property
    def exit_reason(self) -> str:
        """Why the audio process ended, in words (for the line saying the audio is lost)."""
        code = self._proc.exitcode if self._proc is not None else None
        if code is None:
            return "still running" if self.alive else "not started"
        if code == EXIT_STREAM_STOPPED:
            return "the system stopped the audio stream"
        if code == EXIT_STALLED:
            return f"the device asked for no audio for {STALL_SECONDS:g} s"
        if code < 0:
            try:
                return f"the audio process was killed ({signal.Signals(-code).name})"
            except ValueError:
                return f"the audio process was killed (signal {-code})"
        return f"the audio process exited (code {code})"

    def take_params(self, params: Mapping[str, float]) -> None:
        """Carry over a previous synth's parameter values (its device came back): those not
        sent to this one since, so a newer value is never overwritten by an older one."""
        now = time.monotonic()
        with self._params_lock:
            for name, value in params.items():
                if name in self._params and name not in self.params:
                    self.params[name] = float(value)
                    self._post(("param", now, name, float(value)))

    @property
    def process(self) -> Any:
        """The audio process (a ``multiprocessing`` process), once started."""
        return self._proc

    # ------------------------------------------------------------------ events
    def silence(self) -> None:
        """Silent from the audio callback's next period on: one write to shared memory, no
        pipe (the callback fades its block out, the render thread stops the voices and drops
        the queued notes). A panic's all-notes-off follows it to drop notes still on the way."""
        if self._panic_flag is not None:
            self._panic_flag.value = (self._panic_flag.value + 1) % 2**32
            self._silenced = True

    def send(self, event: OutEvent) -> None:
        """Pass an event to the audio process; never blocks for more than a pipe write."""
        if isinstance(event, NoteOn):
            msg: tuple = ("on", event.time, event.pitch, event.velocity, event.channel, event.voice)
        elif isinstance(event, NoteOff):
            msg = ("off", event.time, event.pitch, event.channel)
        elif isinstance(event, AllNotesOff):
            if not self._silenced:  # (a panic called silence() just before)
                self.silence()
            self._silenced = False
            msg = ("panic", event.time)
        elif isinstance(event, ParamChanged) and event.name in self._params:
            with self._params_lock:
                self.params[event.name] = float(event.value)
                self._post(("param", event.time, event.name, float(event.value)))
            return
        else:
            return
        self._post(msg)

    def _post(self, msg: tuple) -> bool:
        with self._lock:
            conn = self._conn
            if conn is None:
                return False
            try:
                if self._poller is not None and not self._poller.poll(0):
                    self.dropped += 1
                    self._problems.warn("audio-full", "audio process is not reading events (pipe full): dropping them")
                    return False
                conn.send(msg)
                return True
            except (OSError, ValueError) as e:
                # The process has gone: whoever watches ``alive`` (the live rig) says so once.
                self.dropped += 1
                if not self._gone:
                    self._gone = True
                    log.debug("audio process gone (%s): events dropped from now on", _one_line(e))
                return False

    def stats(self, timeout: float = 2.0) -> dict:
        """Counters from the audio callback (a round trip through the pipe).

        Raises AudioUnavailable when the process is not running or does not answer.
        """
        with self._recv_lock:
            request = next(self._request)
            conn = self._conn
            if conn is None or not self._post(("stats", request)):
                raise AudioUnavailable("audio process is not running")
            deadline = time.monotonic() + timeout
            try:
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise AudioUnavailable(f"audio process did not answer within {timeout:g} s")
                    if conn.poll(min(left, 0.05)):
                        msg = conn.recv()
                        if msg[0] == "stats" and msg[1] == request:
                            return dict(msg[2])
                    elif not self._proc.is_alive():
                        raise AudioUnavailable(f"audio process exited (code {self._proc.exitcode})")
            except (EOFError, OSError) as e:
                raise AudioUnavailable(f"audio process gone ({_one_line(e)})") from None


def _stop(proc: Any, conn: Any, timeout: float) -> None:
    """Join the process, terminating (then killing) it if it does not exit in time."""
    proc.join(timeout)
    if proc.is_alive():
        proc.terminate()
        proc.join(1.0)
    if proc.is_alive():
        proc.kill()
        proc.join(1.0)
    if conn is not None:
        with contextlib.suppress(OSError):
            conn.close()
