"""The timing server: a process whose only job is to send notes out on time.

In the main process the event loop draws frames, parses OSC and runs generators, and
whatever holds Python's GIL there can delay any thread by a millisecond or more. So the
outputs that act the instant they are called — MIDI ports, OSC targets, scsynth — live in
this small process instead, behind its own dispatch thread, with no GIL to share. The
engine hands it every event ``lead`` seconds early over a pipe; it sends each one at its
deadline. Like scsynth, it knows nothing of the engine: it only gets messages.

Outputs are described by specs (plain tuples) so the child can open them itself:

    ("midi-virtual", port_name, client_name)   a virtual MIDI output port
    ("midi", name_pattern, client_name)        an existing MIDI output port
    ("osc", name, host, port, prefix, send)    an OSC target
    ("scsynth", host, port, synthdef, group)   SuperCollider's server
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import threading
import time
from typing import Any, Sequence

from livegen.events import AllNotesOff, NoteOn, OutEvent
from livegen import realtime
from livegen.realtime import PromoteNewThreads

log = logging.getLogger("livegen")

LEAD_SECONDS = 0.02  # how early events are handed over: covers pipe and main-process jitter


def _open(spec: tuple):
    kind = spec[0]
    if kind == "midi-virtual":
        from livegen.control.midi_ports import open_virtual_output
        from livegen.outputs.midi_out import MidiOutput

        return MidiOutput(open_virtual_output(spec[1], client_name=spec[2]), f"midi:{spec[1]}")
    if kind == "midi":
        from livegen.control.midi_ports import open_output
        from livegen.outputs.midi_out import MidiOutput

        port = open_output(spec[1], client_name=spec[2])
        return MidiOutput(port, f"midi:{port.name}")
    if kind == "osc":
        from livegen.outputs.osc_out import OscOutput

        return OscOutput(spec[1], spec[2], spec[3], spec[4], tuple(spec[5]))
    if kind == "scsynth":
        from livegen.outputs.supercollider import ScsynthOutput

        return ScsynthOutput(spec[1], spec[2], spec[3], spec[4])
    raise ValueError(f"unknown output kind {kind!r}")


def _describe(spec: tuple) -> str:
    if spec[0] == "midi-virtual":
        return f"MIDI out: virtual port '{spec[1]}'"
    if spec[0] == "midi":
        return f"MIDI out: '{spec[1]}'"
    if spec[0] == "osc":
        return f"OSC out: {spec[1]} -> {spec[2]}:{spec[3]}{spec[4]}"
    return f"scsynth: {spec[1]}:{spec[2]} synthdef {spec[3]}"


def _serve(conn: Any, specs: Sequence[tuple]) -> None:
    from livegen.clock.dispatcher import Dispatcher

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the parent, which closes us
    outputs, opened, missing = [], [], []
    for spec in specs:
        try:
            with PromoteNewThreads():  # a MIDI port's JACK thread must never miss a period
                outputs.append(_open(spec))
            opened.append(_describe(spec))
        except Exception as e:  # a port that is not there: say so, run with the rest
            missing.append(f"{_describe(spec)} unavailable: {' '.join(str(e).split()) or type(e).__name__}")
    lateness: list[tuple[float, float]] = []  # (scheduled, send began) of note-ons on MIDI ports
    record = [False]

    def on_emit(out, event, t_send, _t_done):
        if record[0] and isinstance(event, NoteOn) and out.name.startswith("midi:") and not event.thru:
            lateness.append((event.time, t_send))

    dispatcher = Dispatcher(outputs, priority=realtime.TIMING_DISPATCH)
    dispatcher.on_emit = on_emit
    dispatcher.start()
    conn.send(("ready", opened, missing))
    try:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break  # the parent is gone: silence and exit
            kind = msg[0]
            if kind == "event":
                event = msg[1]
                if isinstance(event, AllNotesOff):
                    dispatcher.panic(event.time)
                else:
                    dispatcher.schedule(event)
            elif kind == "record":
                record[0] = bool(msg[1])
                lateness.clear()
            elif kind == "stats":
                conn.send(("stats", {"note_on_times": list(lateness), "errors": dispatcher.errors,
                                     "outputs": [o.name for o in outputs]}))
            elif kind == "quit":
                break
    finally:
        dispatcher.panic()
        dispatcher.stop(flush=True, timeout=1.0)
        for out in outputs:
            with contextlib.suppress(Exception):
                out.close()
        with contextlib.suppress(Exception):
            conn.send(("closed",))
        conn.close()


class TimingServer:
    """An ``Output`` that forwards events to the timing-server process."""

    name = "timing-server"

    def __init__(self, specs: Sequence[tuple], lead: float = LEAD_SECONDS) -> None:
        self.specs = list(specs)
        self.lead = lead
        self.opened: list[str] = []
        self.missing: list[str] = []
        self._conn = None
        self._proc = None
        self._lock = threading.Lock()
        self._replies: list = []
        self.dropped = 0

    def start(self, timeout: float = 15.0) -> "TimingServer":
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, self.specs), name="livegen-timing", daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent
        if not parent.poll(timeout):
            self.close()
            raise RuntimeError("the timing server did not start")
        _, self.opened, self.missing = parent.recv()
        return self

    def send(self, event: OutEvent) -> None:
        if self._conn is None:
            return
        try:
            with self._lock:
                self._conn.send(("event", event))
        except (OSError, ValueError, BrokenPipeError):
            self.dropped += 1

    def _ask(self, msg: tuple, timeout: float = 5.0):
        with self._lock:
            self._conn.send(msg)
            if not self._conn.poll(timeout):
                raise TimeoutError("the timing server did not answer")
            return self._conn.recv()

    def record(self, on: bool) -> None:
        """Start (or stop) recording when each MIDI note-on was sent, for benchmarks."""
        with self._lock:
            self._conn.send(("record", on))

    def stats(self) -> dict:
        return self._ask(("stats",))[1]

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def close(self) -> None:
        """All notes off on every output, then the process is joined."""
        if self._proc is None:
            return
        with contextlib.suppress(Exception):
            with self._lock:
                self._conn.send(("event", AllNotesOff(time.monotonic())))
                self._conn.send(("quit",))
        self._proc.join(5.0)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(2.0)
        with contextlib.suppress(Exception):
            self._conn.close()
        self._proc = None
        self._conn = None
