"""Finding and opening MIDI ports by (part of) their name.

Controllers are named loosely in patches ("nanoKONTROL"), while the system names them
fully ("nanoKONTROL2:nanoKONTROL2 _ CTRL 20:0"), so ports are matched by case-insensitive
substring. The backend is mido's (``MIDO_BACKEND`` is respected). For the rtmidi backend
the ports are opened with python-rtmidi directly, because mido turns every port opened with
a ``client_name`` into a virtual one: opening them ourselves lets JACK/ALSA show our
ports under our own client name, which is how ``MidiInput`` recognises (and skips) them to
avoid feedback loops. Other backends go through mido unchanged.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable

import mido

from livegen import realtime

log = logging.getLogger("livegen.midi")

MessageCallback = Callable[[mido.Message], None]

_RTMIDI_BACKEND = "mido.backends.rtmidi"
ALSA_SEQUENCER = "/dev/snd/seq"
_LISTER_MAX_AGE = 5.0  # seconds before an empty listing makes us re-create the lister


class MidiPortError(RuntimeError):
    """A MIDI port could not be found or opened; the message lists the ports there are."""


# -- backend selection -------------------------------------------------------------------


def _backend() -> tuple[str, str | None]:
    b = mido.backend
    return b.name, b.api


def _uses_rtmidi() -> bool:
    return _backend()[0] == _RTMIDI_BACKEND


def _rt_api_candidates() -> list[int]:
    """The rtmidi API mido was told to use, or every compiled one in rtmidi's order."""
    import rtmidi

    api = _backend()[1]
    if api:
        value = getattr(rtmidi, f"API_{api}", None)
        if value is None:
            raise MidiPortError(f"MIDI backend API {api!r} is unknown to python-rtmidi")
        return [value]
    apis = [a for a in rtmidi.get_compiled_api() if a != getattr(rtmidi, "API_RTMIDI_DUMMY", -1)]
    if not os.path.exists(ALSA_SEQUENCER):
        # No ALSA sequencer (a container, a box with JACK only): probing it would make ALSA
        # print "open /dev/snd/seq failed" on the terminal at every retry.
        apis = [a for a in apis if a != getattr(rtmidi, "API_LINUX_ALSA", -1)]
    return apis


_lock = threading.RLock()
_api_cache: dict[tuple[str, str | None], int] = {}
_listers: dict[tuple[int, str], tuple[Any, float]] = {}
_failure_logged: set[str] = set()
_api_failed_at: dict[tuple[str, str | None], tuple[float, str]] = {}
_API_RETRY = 5.0  # seconds between probes when no MIDI API works (each probe may print)


def _rt_api() -> int:
    """The rtmidi API that works here (e.g. JACK when there is no ALSA sequencer)."""
    import rtmidi

    key = _backend()
    with _lock:
        if key in _api_cache:
            return _api_cache[key]
        failed = _api_failed_at.get(key)
        if failed is not None and time.monotonic() - failed[0] < _API_RETRY:
            raise MidiPortError(failed[1])
        errors = []
        for api in _rt_api_candidates():
            try:
                probe = rtmidi.MidiIn(rtapi=api, name="livegen probe")
            except Exception as exc:  # rtmidi.SystemError when the API's server is missing
                errors.append(f"{rtmidi.get_api_display_name(api)}: {exc}")
                continue
            probe.delete()
            _api_cache[key] = api
            _api_failed_at.pop(key, None)
            return api
        message = "no MIDI API works here (" + "; ".join(errors or ["none compiled"]) + ")"
        _api_failed_at[key] = (time.monotonic(), message)
        raise MidiPortError(message)


def _lister(kind: str) -> Any:
    """A cached rtmidi object for listing ports: creating one costs ~50 ms on JACK."""
    import rtmidi

    api = _rt_api()
    key = (api, kind)
    with _lock:
        entry = _listers.get(key)
        if entry is None:
            cls = rtmidi.MidiIn if kind == "in" else rtmidi.MidiOut
            entry = (cls(rtapi=api, name="livegen scan"), time.monotonic())
            _listers[key] = entry
        return entry


def _drop_lister(kind: str) -> None:
    with _lock:
        for key in [k for k in _listers if k[1] == kind]:
            obj, _ = _listers.pop(key)
            try:
                obj.delete()
            except Exception:
                pass


def close_listers() -> None:
    """Close the cached port-listing clients (before the JACK server they talk to goes away)."""
    _drop_lister("in")
    _drop_lister("out")


def _rt_names(kind: str) -> list[str]:
    with _lock:
        try:
            obj, created = _lister(kind)
            names = list(obj.get_ports())
        except MidiPortError:
            raise
        except Exception:
            _drop_lister(kind)  # the server went away: a fresh client may reconnect
            obj, created = _lister(kind)
            names = list(obj.get_ports())
        if not names and time.monotonic() - created > _LISTER_MAX_AGE:
            # A restarted JACK server leaves the old client deaf; try a fresh one now and then.
            _drop_lister(kind)
            obj, _ = _lister(kind)
            names = list(obj.get_ports())
        return names


def _names(kind: str) -> list[str]:
    if _uses_rtmidi():
        return _rt_names(kind)
    return list(mido.get_input_names() if kind == "in" else mido.get_output_names())


def _safe_names(kind: str) -> list[str]:
    what = "input" if kind == "in" else "output"
    try:
        names = _names(kind)
    except Exception as exc:
        key = f"{what}:{type(exc).__name__}:{exc}"
        if key not in _failure_logged:  # once per kind of failure, not every rescan
            _failure_logged.add(key)
            log.warning("cannot list MIDI %s ports (%s); MIDI %s is off until it works", what, exc, what)
        return []
    _failure_logged.difference_update({k for k in _failure_logged if k.startswith(what + ":")})
    return names


def input_names() -> list[str]:
    """Names of the MIDI sources we could listen to; [] (logged once) when MIDI is unavailable."""
    return _safe_names("in")


def output_names() -> list[str]:
    """Names of the MIDI destinations we could send to; [] (logged once) when MIDI is unavailable."""
    return _safe_names("out")


def match_port(names: list[str], pattern: str) -> str | None:
    """The port for ``pattern``: an exact name first, then a case-insensitive substring."""
    if pattern in names:
        return pattern
    low = pattern.lower()
    for n in names:
        if n.lower() == low:
            return n
    for n in names:
        if low in n.lower():
            return n
    return None


def _find(kind: str, pattern: str) -> str:
    names = _names(kind)
    name = match_port(names, pattern)
    if name is None:
        what = "input" if kind == "in" else "output"
        raise MidiPortError(f"MIDI {what} {pattern!r} not found; available: {', '.join(names) or '(none)'}")
    return name


def _local_port_name(prefix: str, remote: str) -> str:
    # Our end of the connection, named after the other end so `jack_lsp -c` reads well.
    return f"{prefix} {remote.replace(':', '-')}"[:200]


# -- rtmidi ports with a mido-like surface ----------------------------------------------


_POLL_INTERVAL = 0.001  # seconds between polls of the open inputs
_DRIFT = 1e-3  # how fast (s/s) the arrival-time offset may creep up: JACK's clock vs monotonic


class _Poller:
    """One daemon thread that drains every open rtmidi input about once a millisecond.

    Inputs are polled instead of using rtmidi callbacks because on JACK the callback runs
    on the client's process thread, and jack2 cancels that thread asynchronously when the
    client closes: a callback caught waiting for the GIL dies holding the interpreter's
    GIL mutex and the whole process hangs. Polling keeps Python off JACK's threads.
    """

    def __init__(self) -> None:
        self._ports: list[RtMidiInputPort] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, port: "RtMidiInputPort") -> None:
        with self._lock:
            self._ports.append(port)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="livegen-midi-in", daemon=True)
                self._thread.start()

    def remove(self, port: "RtMidiInputPort") -> None:
        with self._lock:
            if port in self._ports:
                self._ports.remove(port)

    def _run(self) -> None:
        realtime.raise_thread_priority(realtime.CONTROL_IN)  # a panic acts on this thread
        while True:
            with self._lock:
                ports = list(self._ports)
                if not ports:
                    self._thread = None
                    return
            for port in ports:
                port._drain()
            time.sleep(_POLL_INTERVAL)


_poller = _Poller()


class RtMidiInputPort:
    """An rtmidi input delivering ``mido.Message`` objects to ``callback`` on the poll thread.

    Each message's ``time`` is its arrival on the ``time.monotonic()`` clock, rebuilt from
    rtmidi's (JACK/ALSA) inter-message deltas, so polling adds no timing jitter.
    """

    def __init__(self, rt: Any, name: str, callback: MessageCallback | None) -> None:
        self._rt = rt
        self.name = name
        self.closed = False
        self.callback = callback
        self._lock = threading.RLock()
        self._jack_time: float | None = None  # seconds of the device clock since the first message
        self._offset = 0.0  # monotonic time minus device time
        self._last_poll = 0.0
        rt.ignore_types(sysex=False, timing=False, active_sense=True)  # clock in, sensing out
        _poller.add(self)

    def _drain(self) -> None:
        with self._lock:
            if self.closed:
                return
            while True:
                try:
                    item = self._rt.get_message()
                except Exception:
                    return
                if not item:
                    return
                data, delta = item
                now = time.monotonic()
                if self._jack_time is None:
                    self._jack_time, self._offset = 0.0, now
                else:
                    self._jack_time += delta
                    # Arrival <= now, so the smallest (now - device time) is the best offset;
                    # let it creep up slowly in case the two clocks run at different rates.
                    self._offset = min(self._offset + (now - self._last_poll) * _DRIFT, now - self._jack_time)
                self._last_poll = now
                self._deliver(data, min(now, self._jack_time + self._offset))

    def _deliver(self, data: list[int], t: float) -> None:
        cb = self.callback
        if cb is None:
            return
        try:
            msg = mido.Message.from_bytes(data, time=t)
        except (ValueError, TypeError, IndexError):
            return  # junk from the device; the decoder would ignore it anyway
        try:
            cb(msg)
        except Exception:  # never let an exception kill the poll thread
            log.exception("MIDI input callback failed for %r", self.name)

    def close(self) -> None:
        _poller.remove(self)
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self.callback = None
            try:
                self._rt.close_port()
                self._rt.delete()
            except Exception:
                log.debug("closing MIDI input %r failed", self.name, exc_info=True)

    def __repr__(self) -> str:
        return f"<MIDI input {self.name!r}{' closed' if self.closed else ''}>"


class RtMidiOutputPort:
    """An rtmidi output with mido's ``send(msg)``; safe to call from any one thread at a time."""

    def __init__(self, rt: Any, name: str) -> None:
        self._rt = rt
        self.name = name
        self.closed = False
        self._lock = threading.Lock()

    def send(self, msg: mido.Message) -> None:
        with self._lock:
            if self.closed:
                raise OSError(f"MIDI output {self.name!r} is closed")
            self._rt.send_message(msg.bytes())

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            try:
                self._rt.close_port()
                self._rt.delete()
            except Exception:
                log.debug("closing MIDI output %r failed", self.name, exc_info=True)

    def __repr__(self) -> str:
        return f"<MIDI output {self.name!r}{' closed' if self.closed else ''}>"


def _rt_open(kind: str, name: str, client_name: str, callback: MessageCallback | None = None) -> Any:
    import rtmidi

    api = _rt_api()
    cls = rtmidi.MidiIn if kind == "in" else rtmidi.MidiOut
    try:
        rt = cls(rtapi=api, name=client_name)
    except Exception as exc:
        raise MidiPortError(f"cannot open MIDI {'input' if kind == 'in' else 'output'} {name!r}: {exc}") from exc
    try:
        ports = rt.get_ports()
        if name not in ports:
            raise MidiPortError(f"MIDI port {name!r} vanished; available: {', '.join(ports) or '(none)'}")
        if kind == "in":
            rt.open_port(ports.index(name), _local_port_name("in", name))
            return RtMidiInputPort(rt, name, callback)
        rt.open_port(ports.index(name), _local_port_name("out", name))
        return RtMidiOutputPort(rt, name)
    except MidiPortError:
        rt.delete()
        raise
    except Exception as exc:
        rt.delete()
        raise MidiPortError(f"cannot open MIDI port {name!r}: {exc}") from exc


# -- public openers ----------------------------------------------------------------------


def open_input(name_pattern: str, callback: MessageCallback, client_name: str = "livegen") -> Any:
    """Open the input matching ``name_pattern``; ``callback(msg)`` runs on the MIDI thread.

    With the rtmidi backend ``msg.time`` is the arrival time (``time.monotonic()``).
    """
    name = _find("in", name_pattern)
    if _uses_rtmidi():
        return _rt_open("in", name, client_name, callback)
    try:
        return mido.open_input(name, callback=callback)
    except Exception as exc:
        raise MidiPortError(f"cannot open MIDI input {name!r}: {exc}") from exc


def open_output(name_pattern: str, client_name: str = "livegen") -> Any:
    """Open the output matching ``name_pattern``; returns a port with ``send`` and ``close``."""
    name = _find("out", name_pattern)
    if _uses_rtmidi():
        return _rt_open("out", name, client_name)
    try:
        return mido.open_output(name)
    except Exception as exc:
        raise MidiPortError(f"cannot open MIDI output {name!r}: {exc}") from exc


def open_virtual_output(name: str = "livegen out", client_name: str = "livegen") -> Any:
    """A port other programs can connect to and hear us on (JACK/ALSA/CoreMIDI only)."""
    try:
        if _uses_rtmidi():
            import rtmidi

            rt = rtmidi.MidiOut(rtapi=_rt_api(), name=client_name)
            try:
                rt.open_virtual_port(name)
            except Exception:
                rt.delete()
                raise
            return RtMidiOutputPort(rt, name)
        return mido.open_output(name, virtual=True, client_name=client_name)
    except MidiPortError:
        raise
    except Exception as exc:
        raise MidiPortError(f"cannot create virtual MIDI output {name!r}: {exc}") from exc


def open_virtual_input(
    name: str = "livegen in", callback: MessageCallback | None = None, client_name: str = "livegen"
) -> Any:
    """A port other programs can send to (a sequencer driving us, a DAW's clock)."""
    try:
        if _uses_rtmidi():
            import rtmidi

            rt = rtmidi.MidiIn(rtapi=_rt_api(), name=client_name)
            try:
                rt.open_virtual_port(name)
            except Exception:
                rt.delete()
                raise
            return RtMidiInputPort(rt, name, callback)
        return mido.open_input(name, virtual=True, client_name=client_name, callback=callback)
    except MidiPortError:
        raise
    except Exception as exc:
        raise MidiPortError(f"cannot create virtual MIDI input {name!r}: {exc}") from exc


# -- an output that follows its destination ------------------------------------------------


class FollowedOutput:
    """A MIDI output to the destination matching ``pattern``, reconnected when it comes back.

    A synth switched off, or a JACK client that restarts, takes its port away: our end
    stays open but JACK drops the connection, and nothing would ever make it again.
    ``check`` (the timing server calls it twice a second with the current destinations)
    notices the destination gone and connects afresh once a port matching the pattern is
    there again. While it is gone ``send`` drops messages without an error, so the MIDI
    output in front of it neither fails nor floods the log. Thread-safe: ``send`` on the
    dispatch thread, ``check`` on a watcher thread.
    """

    def __init__(self, pattern: str, client_name: str = "livegen") -> None:
        self.pattern = pattern
        self.client_name = client_name
        self.name = pattern  # the destination's full name once connected
        self.connected = False
        self.closed = False
        self._port: Any = None
        self._lock = threading.Lock()  # held while sending, and to swap the port

    def _match(self, names: list[str]) -> str | None:
        """The destination for the pattern; never one of our own ports (named after our
        client) unless the pattern is its exact name: with the synth gone, a pattern like
        "synth" must not land on our own input from it and feed our notes back to us."""
        if self.name in names:
            return self.name
        own = self.client_name.lower()
        return match_port([n for n in names if own not in n.lower() or n == self.pattern], self.pattern)

    def connect(self, names: list[str] | None = None) -> str:
        """Connect to the destination matching the pattern now; raises MidiPortError if none."""
        names = _names("out") if names is None else names
        name = self._match(names)
        if name is None:
            raise MidiPortError(f"MIDI output {self.pattern!r} not found; available: {', '.join(names) or '(none)'}")
        port = open_output(name, client_name=self.client_name)
        with self._lock:
            old, self._port = self._port, port
            self.name, self.connected = name, True
            if self.closed:
                old, self._port = port, None
        _close_quietly(old)
        return name

    def check(self, names: list[str]) -> list[tuple[str, str]]:
        """Follow the destination given the destinations there are now: the changes made,
        as ("disappeared" | "connected", port name) pairs."""
        changes: list[tuple[str, str]] = []
        if self.closed:
            return changes
        if self.connected:
            if self.name in names:
                return changes
            with self._lock:
                old, self._port, self.connected = self._port, None, False
            _close_quietly(old)
            changes.append(("disappeared", self.name))
        if self._match(names) is not None:
            try:
                changes.append(("connected", self.connect(names)))
            except MidiPortError as exc:  # it went again, or JACK refused: the next check retries
                log.debug("reconnecting MIDI output %r failed: %s", self.pattern, exc)
        return changes

    def send(self, msg: mido.Message) -> None:
        with self._lock:
            if self._port is not None:
                self._port.send(msg)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            old, self._port, self.connected = self._port, None, False
        _close_quietly(old)

    def __repr__(self) -> str:
        return f"<MIDI output {self.pattern!r} -> {self.name!r}{'' if self.connected else ' (waiting)'}>"


def _close_quietly(port: Any) -> None:
    if port is None:
        return
    try:
        port.close()
    except Exception:
        log.debug("closing MIDI port %r failed", port, exc_info=True)
