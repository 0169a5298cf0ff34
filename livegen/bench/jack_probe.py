"""A JACK client for benchmarks: records audio and MIDI off other clients' ports, with the
time each sample and message entered the JACK graph.

It talks to libjack through ctypes (no extra package), so a benchmark can hear exactly
what livegen's audio process and MIDI port put out, from outside livegen. Each process
cycle stores its input buffers and the ``time.monotonic()`` at which the callback ran; a
sample at frame ``f`` of a cycle is dated that time plus ``f`` frames (a little late: the
cycle began before our callback, which runs after the clients that feed it). JACK's own
cycle clock (``jack_get_cycle_times``) is not used: on the dummy driver of a loaded
machine its filtered times were tens of milliseconds off the real wake-ups.

The process callback is Python, so it holds this process's GIL for microseconds a period:
keep the rest of the benchmark process quiet (threads blocked in ``recv``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time
from typing import Sequence

import numpy as np

AUDIO_TYPE = b"32 bit float mono audio"
MIDI_TYPE = b"8 bit raw midi"
_PORT_IS_INPUT = 0x1
_PORT_IS_OUTPUT = 0x2
_NO_START_SERVER = 0x01
_PLAYBACK_LATENCY = 1  # JackPlaybackLatency


class JackUnavailable(RuntimeError):
    """libjack or the JACK server is not there; the message says which, in one line."""


class _MidiEvent(ctypes.Structure):
    _fields_ = [("time", ctypes.c_uint32), ("size", ctypes.c_size_t), ("buffer", ctypes.POINTER(ctypes.c_ubyte))]


class _Range(ctypes.Structure):
    _fields_ = [("min", ctypes.c_uint32), ("max", ctypes.c_uint32)]


_PROCESS = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_uint32, ctypes.c_void_p)


def _lib() -> ctypes.CDLL:
    name = ctypes.util.find_library("jack")
    if not name:
        raise JackUnavailable("libjack not found (apt-get install libjack-jackd2-0)")
    lib = ctypes.CDLL(name)
    vp, u32, cp = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_char_p
    sigs = {
        "jack_client_open": (vp, [cp, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]),
        "jack_client_close": (ctypes.c_int, [vp]),
        "jack_activate": (ctypes.c_int, [vp]),
        "jack_deactivate": (ctypes.c_int, [vp]),
        "jack_get_client_name": (cp, [vp]),
        "jack_port_register": (vp, [vp, cp, cp, ctypes.c_ulong, ctypes.c_ulong]),
        "jack_port_name": (cp, [vp]),
        "jack_port_by_name": (vp, [vp, cp]),
        "jack_port_get_buffer": (vp, [vp, u32]),
        "jack_port_get_latency_range": (None, [vp, ctypes.c_int, ctypes.POINTER(_Range)]),
        "jack_set_process_callback": (ctypes.c_int, [vp, _PROCESS, vp]),
        "jack_connect": (ctypes.c_int, [vp, cp, cp]),
        "jack_get_ports": (ctypes.POINTER(cp), [vp, cp, cp, ctypes.c_ulong]),
        "jack_free": (None, [vp]),
        "jack_get_sample_rate": (u32, [vp]),
        "jack_get_buffer_size": (u32, [vp]),
        "jack_midi_get_event_count": (u32, [vp]),
        "jack_midi_event_get": (ctypes.c_int, [ctypes.POINTER(_MidiEvent), vp, u32]),
    }
    for fn, (res, args) in sigs.items():
        f = getattr(lib, fn)
        f.restype, f.argtypes = res, args
    return lib


class JackProbe:
    """Audio and MIDI input ports that record everything for up to ``seconds``."""

    def __init__(self, name: str, audio_inputs: Sequence[str] = (), midi_inputs: Sequence[str] = (),
                 seconds: float = 120.0) -> None:
        self._jack = lib = _lib()
        status = ctypes.c_int()
        self._client = lib.jack_client_open(name.encode(), _NO_START_SERVER, ctypes.byref(status))
        if not self._client:
            raise JackUnavailable(f"cannot open a JACK client (status 0x{status.value:x}): is jackd running?")
        self.name = lib.jack_get_client_name(self._client).decode()
        self.sample_rate = int(lib.jack_get_sample_rate(self._client))
        self.period = int(lib.jack_get_buffer_size(self._client))
        self.audio_names = list(audio_inputs)
        self.midi_names = list(midi_inputs)
        self._audio_ports = [self._register(n, AUDIO_TYPE) for n in self.audio_names]
        self._midi_ports = [self._register(n, MIDI_TYPE) for n in self.midi_names]
        capacity = int(seconds * self.sample_rate) + self.period
        self.audio = np.zeros((len(self._audio_ports), capacity), dtype=np.float32)
        self._audio_ptrs = [a.ctypes.data for a in self.audio]
        self.written = 0  # frames recorded in ``audio``
        self.cycles: list[tuple[int, float, int]] = []  # (position in ``audio``, monotonic time, frames)
        self.midi: list[tuple[int, float, bytes]] = []  # (port index, monotonic time, bytes)
        self.errors = 0
        self.recording = threading.Event()
        self._ev = _MidiEvent()
        self._callback = _PROCESS(self._process)  # kept: JACK calls it for as long as we are open
        lib.jack_set_process_callback(self._client, self._callback, None)
        if lib.jack_activate(self._client):
            self.close()
            raise JackUnavailable("cannot activate the JACK client")

    def _register(self, port: str, kind: bytes):
        p = self._jack.jack_port_register(self._client, port.encode(), kind, _PORT_IS_INPUT, 0)
        if not p:
            raise JackUnavailable(f"cannot register JACK port {port!r}")
        return p

    def _process(self, nframes: int, _arg) -> int:
        """JACK's process thread: copy the buffers, note the time. Never raises."""
        try:
            now = time.monotonic()
            lib = self._jack
            if self.recording.is_set():
                pos = self.written
                if pos + nframes <= self.audio.shape[1]:
                    for port, ptr in zip(self._audio_ports, self._audio_ptrs):
                        ctypes.memmove(ptr + pos * 4, lib.jack_port_get_buffer(port, nframes), nframes * 4)
                    self.cycles.append((pos, now, nframes))
                    self.written = pos + nframes
            ev = self._ev
            for i, port in enumerate(self._midi_ports):
                buf = lib.jack_port_get_buffer(port, nframes)
                for j in range(lib.jack_midi_get_event_count(buf)):
                    if lib.jack_midi_event_get(ctypes.byref(ev), buf, j) == 0:
                        self.midi.append((i, now + ev.time / self.sample_rate, ctypes.string_at(ev.buffer, ev.size)))
        except Exception:  # noqa: BLE001 - an exception here would reach JACK's C thread
            self.errors += 1
        return 0

    # -- the graph ---------------------------------------------------------------------
    def ports(self, pattern: str = "", midi: bool = False, outputs: bool = True) -> list[str]:
        """Port names matching the regular expression ``pattern``."""
        lib = self._jack
        arr = lib.jack_get_ports(self._client, pattern.encode() or None, MIDI_TYPE if midi else AUDIO_TYPE,
                                 _PORT_IS_OUTPUT if outputs else _PORT_IS_INPUT)
        if not arr:
            return []
        names = []
        i = 0
        while arr[i]:
            names.append(arr[i].decode())
            i += 1
        lib.jack_free(ctypes.cast(arr, ctypes.c_void_p))
        return names

    def connect(self, source: str, own_port: str) -> None:
        """Connect another client's output ``source`` to our input ``own_port``."""
        err = self._jack.jack_connect(self._client, source.encode(), f"{self.name}:{own_port}".encode())
        if err and err != 17:  # EEXIST: already connected
            raise JackUnavailable(f"cannot connect JACK port {source!r} to {self.name}:{own_port} (error {err})")

    def playback_latency(self) -> float:
        """Seconds from the graph to the sound card: the first physical playback port's latency."""
        names = self.ports("system:playback", outputs=False)
        if not names:
            return 0.0
        port = self._jack.jack_port_by_name(self._client, names[0].encode())
        r = _Range()
        self._jack.jack_port_get_latency_range(port, _PLAYBACK_LATENCY, ctypes.byref(r))
        return r.max / self.sample_rate

    # -- time ----------------------------------------------------------------------------
    def span(self, t0: float, t1: float) -> tuple[int, np.ndarray]:
        """(first frame index, monotonic time of each recorded frame) for cycles in [t0, t1)."""
        first, times = None, []
        for pos, start, n in self.cycles:
            if start + n / self.sample_rate < t0 or start >= t1:
                continue
            if first is None:
                first = pos
            times.append(start + np.arange(n) / self.sample_rate)
        if first is None:
            return 0, np.zeros(0)
        return first, np.concatenate(times)

    def close(self) -> None:
        if self._client:
            self._jack.jack_deactivate(self._client)
            self._jack.jack_client_close(self._client)
            self._client = None

