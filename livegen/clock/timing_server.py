"""The timing server: a process whose only job is to send notes out on time.

In the main process the event loop draws frames, parses OSC and runs generators, and
whatever holds Python's GIL there can delay any thread by a millisecond or more. So the
outputs that act the instant they are called — MIDI ports, OSC targets, scsynth — live in
this small process instead, behind its own dispatch thread, with no GIL to share. The
engine hands it every event ``lead`` seconds early over a pipe; it sends each one at its
deadline. Like scsynth, it knows nothing of the engine: it only gets messages.

MIDI outputs named by pattern follow their destination: a watcher thread lists the MIDI
destinations every ``PORT_SCAN_SECONDS``, says once when one has gone, reconnects when it
is back (sending it all notes off, so nothing it held stays stuck) and tells the parent,
which logs the line (``on_port`` hears it too). Sending to a destination that is gone
drops the messages quietly; the other outputs never notice.

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
import queue
import signal
import threading
import time
from typing import Any, Callable, Sequence

from livegen.events import AllNotesOff, NoteOn, OutEvent
from livegen import realtime
from livegen.realtime import PromoteNewThreads, raise_thread_priority

log = logging.getLogger("livegen")

LEAD_SECONDS = 0.02  # how early events are handed over: covers pipe and main-process jitter
PORT_SCAN_SECONDS = 0.5  # how often MIDI destinations are listed: a port back is reconnected within ~0.6 s


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _open(spec: tuple) -> tuple[Any, str | None]:
    """The output for ``spec``, and None, or why a followed MIDI output is not connected yet
    (it is kept all the same, and connects when its destination appears)."""
    kind = spec[0]
    if kind == "midi-virtual":
        from livegen.control.midi_ports import open_virtual_output
        from livegen.outputs.midi_out import MidiOutput

        return MidiOutput(open_virtual_output(spec[1], client_name=spec[2]), f"midi:{spec[1]}"), None
    if kind == "midi":
        from livegen.control.midi_ports import FollowedOutput
        from livegen.outputs.midi_out import MidiOutput

        port = FollowedOutput(spec[1], client_name=spec[2])
        try:
            port.connect()
        except Exception as e:  # not there (yet)
            return MidiOutput(port, f"midi:{spec[1]}"), _one_line(e)
        return MidiOutput(port, f"midi:{port.name}"), None
    if kind == "osc":
        from livegen.outputs.osc_out import OscOutput

        return OscOutput(spec[1], spec[2], spec[3], spec[4], tuple(spec[5])), None
    if kind == "scsynth":
        from livegen.outputs.supercollider import ScsynthOutput

        return ScsynthOutput(spec[1], spec[2], spec[3], spec[4]), None
    raise ValueError(f"unknown output kind {kind!r}")


def _describe(spec: tuple) -> str:
    if spec[0] == "midi-virtual":
        return f"MIDI out: virtual port '{spec[1]}'"
    if spec[0] == "midi":
        return f"MIDI out: '{spec[1]}'"
    if spec[0] == "osc":
        return f"OSC out: {spec[1]} -> {spec[2]}:{spec[3]}{spec[4]}"
    return f"scsynth: {spec[1]}:{spec[2]} synthdef {spec[3]}"


class _ToParent(logging.Handler):
    """This process's log lines (a MIDI port that cannot send...) go to the parent's log."""

    def __init__(self, say: Callable[[tuple], None]) -> None:
        super().__init__(logging.INFO)
        self._say = say

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._say(("log", record.levelno, record.name, record.getMessage()))
        except Exception:
            pass


def _forward_logging(say: Callable[[tuple], None]) -> None:
    root = logging.getLogger("livegen")
    root.setLevel(logging.INFO)
    root.addHandler(_ToParent(say))


def _watch_ports(followed: list, dispatcher: Any, say: Callable[[tuple], None], stop: threading.Event) -> None:
    """The followed MIDI outputs' watcher: each change said once, all notes off on a return."""
    from livegen.control.midi_ports import output_names

    raise_thread_priority(realtime.GIL_HOLDER)  # it holds the GIL the dispatch thread needs
    while not stop.wait(PORT_SCAN_SECONDS):
        try:
            names = output_names()
            for out in followed:
                with PromoteNewThreads():  # a reconnected port's JACK thread, like the first one's
                    changes = out.port.check(names)
                for what, name in changes:
                    t = time.monotonic()
                    if what == "connected":
                        out.name = f"midi:{name}"
                        # The device may hold notes from before it went (a JACK client that
                        # restarted, a cable pulled mid-note): release them there.
                        dispatcher.schedule(AllNotesOff(t), [out])
                        line = f"MIDI output '{name}' connected (all notes off sent to it)"
                    else:
                        line = f"MIDI output '{name}' disappeared; will reconnect when it is back"
                    say(("port", what, name, t, line))
        except Exception as e:  # the show goes on; the next scan tries again
            log.debug("MIDI output scan failed: %s", _one_line(e))


def _serve(conn: Any, specs: Sequence[tuple]) -> None:
    from livegen.clock.dispatcher import Dispatcher
    from livegen.native_log import route_native_messages

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the parent, which closes us
    route_native_messages()  # libjack's own lines (a server gone...) kept off the terminal
    outputs, opened, missing, followed = [], [], [], []
    for spec in specs:
        try:
            with PromoteNewThreads():  # a MIDI port's JACK thread must never miss a period
                out, waiting = _open(spec)
        except Exception as e:  # a port that is not there: say so, run with the rest
            missing.append(f"{_describe(spec)} unavailable: {_one_line(e)}")
            continue
        if waiting is not None:
            missing.append(f"{_describe(spec)} unavailable: {waiting}; will connect when it appears")
        else:
            opened.append(_describe(spec))
        outputs.append(out)
        if spec[0] == "midi":
            followed.append(out)
    send_lock = threading.Lock()  # the watcher thread says things too

    def say(msg: tuple) -> None:
        with send_lock, contextlib.suppress(OSError, ValueError):
            conn.send(msg)

    _forward_logging(say)
    lateness: list[tuple[float, float]] = []  # (scheduled, send began) of note-ons on MIDI ports
    record = [False]

    def on_emit(out, event, t_send, _t_done):
        if record[0] and isinstance(event, NoteOn) and out.name.startswith("midi:") and not event.thru \
                and getattr(out.port, "connected", True):  # a followed port that is gone sends nothing
            lateness.append((event.time, t_send))

    dispatcher = Dispatcher(outputs, priority=realtime.TIMING_DISPATCH)
    dispatcher.on_emit = on_emit
    dispatcher.start()
    stop_watching = threading.Event()
    watcher = None
    if followed:
        watcher = threading.Thread(target=_watch_ports, args=(followed, dispatcher, say, stop_watching),
                                   name="livegen-midi-out-watch", daemon=True)
        watcher.start()
    say(("ready", opened, missing))
    # This thread holds the GIL for every message it reads: pre-empted meanwhile by the
    # rest of the show, it would make the spinning dispatch thread late (livegen.realtime).
    raise_thread_priority(realtime.GIL_HOLDER)
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
                say(("stats", {"note_on_times": list(lateness), "errors": dispatcher.errors,
                               "outputs": [o.name for o in outputs]}))
            elif kind == "quit":
                break
    finally:
        stop_watching.set()
        if watcher is not None:
            watcher.join(2.0)
        dispatcher.panic()
        dispatcher.stop(flush=True, timeout=1.0)
        for out in outputs:
            with contextlib.suppress(Exception):
                out.close()
        if watcher is not None:  # its port-listing JACK client, closed rather than left to die
            from livegen.control.midi_ports import close_listers

            close_listers()
        say(("closed",))
        conn.close()


class TimingServer:
    """An ``Output`` that forwards events to the timing-server process.

    ``on_port(what, port_name, t)`` hears each followed MIDI output's change ("disappeared"
    or "connected", at ``time.monotonic()`` ``t`` in the timing process) on a reader
    thread; the line saying it is logged here either way.
    """

    name = "timing-server"

    def __init__(self, specs: Sequence[tuple], lead: float = LEAD_SECONDS) -> None:
        self.specs = list(specs)
        self.lead = lead
        self.opened: list[str] = []
        self.missing: list[str] = []
        self.on_port: Callable[[str, str, float], None] | None = None
        self._conn = None
        self._proc = None
        self._reader: threading.Thread | None = None
        self._lock = threading.Lock()
        self._replies: queue.Queue = queue.Queue()
        self.dropped = 0

    def start(self, timeout: float = 15.0) -> "TimingServer":
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, self.specs), name="livegen-timing", daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent
        deadline = time.monotonic() + timeout
        while True:  # log lines may come before "ready"
            if not parent.poll(max(0.0, deadline - time.monotonic())):
                self.close()
                raise RuntimeError("the timing server did not start")
            try:
                msg = parent.recv()
            except (EOFError, OSError):
                self.close()
                raise RuntimeError("the timing server exited as it started") from None
            if msg[0] == "ready":
                break
            self._handle(msg)
        _, self.opened, self.missing = msg
        self._reader = threading.Thread(target=self._read, args=(parent,), name="livegen-timing-reader", daemon=True)
        self._reader.start()
        return self

    def _read(self, conn: Any) -> None:
        """Replies go to whoever asked; port changes are logged (ends when the process does)."""
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError, ValueError):
                return
            if msg[0] == "closed":
                return
            self._handle(msg)

    def _handle(self, msg: tuple) -> None:
        if msg[0] == "port":
            _, what, name, t, line = msg
            log.log(logging.WARNING if what == "disappeared" else logging.INFO, "%s", line)
            if self.on_port is not None:
                try:
                    self.on_port(what, name, t)
                except Exception:
                    log.exception("timing server on_port callback failed")
        elif msg[0] == "log":
            _, level, name, text = msg
            logging.getLogger(name).log(level, "%s", text)
        else:
            self._replies.put(msg)

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
        try:
            return self._replies.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError("the timing server did not answer") from None

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
        """All notes off on every output, then the process (and the reader) joined."""
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
        if self._reader is not None:
            self._reader.join(2.0)  # the process has gone: its end of the pipe is closed
            self._reader = None
        with contextlib.suppress(Exception):
            self._conn.close()
        self._proc = None
        self._conn = None
