"""OSC in: TouchDesigner, Max, Pure Data and phones drive the engine over UDP.

A thread of its own receives the datagrams and hands them to the event loop, where they
are handled; the server talks to the engine only through
:class:`~livegen.control.surface.ControlSurface`. Receiving off the loop means a burst is
read as fast as it comes (an asyncio endpoint reads one datagram per pass of a busy loop,
and the kernel drops the rest), and a ``/livegen/panic`` acts on that thread at once
(``urgent``, :mod:`livegen.control.urgent`) instead of waiting for the loop. Every
datagram is parsed, checked against the allowlist, and its messages are dispatched in this
order: the patch's :class:`OscMap` faders and OSC :class:`Trigger` buttons (so a patch can
take over any address), then the built-in table in :mod:`livegen.control.osc_addresses`.

The network is hostile territory on stage: a flaky Wi-Fi phone, a runaway Max patch, a
port scanner. Nothing a peer sends may raise out of the handler or flood the log, and
bundles timed in the future are bounded in number and in how far ahead they may be.

Parsing uses python-osc's type readers (``pythonosc.parsing.osc_types``) with a strict walk
of our own rather than ``OscPacket``/``OscMessage``/``OscBundle``, because those recurse
into nested bundles without a depth limit, log a root-logger warning per unknown type tag
(a flood), pad truncated floats with zeros, and let ``UnicodeDecodeError`` escape.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import math
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Collection, Sequence

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.parsing import osc_types

from livegen import realtime
from livegen.control.mapping import OscMap, Trigger, apply_curve, mapped_value
from livegen.control.osc_addresses import ADDRESSES, PREFIX, OscAddress, lookup, split_instance
from livegen.control.params import ParamSpec
from livegen.control.surface import ControlSurface
from livegen.log import RateLimitedLog

if TYPE_CHECKING:
    from livegen.control.urgent import UrgentPanic

log = logging.getLogger("livegen.osc")

MAX_BUNDLE_DEPTH = 8
_BUNDLE = b"#bundle\x00"
_NUMERIC = "ifhd"
_STAT_KEYS = ("received", "applied", "malformed", "rejected", "blocked", "scheduled", "dropped_future", "errors",
              "other_instance", "overflow")
MAX_QUEUED = 8192  # datagrams received and not yet handled: a flood past this is dropped (counted)
PER_PASS = 64  # datagrams handled per pass of the loop before it gets to other work
RECV_POLL = 0.2  # s: the receiver thread looks at its stop flag this often


# -- parsing ------------------------------------------------------------------------------
class OscParseError(ValueError):
    """A datagram that is not valid OSC; the message says what was wrong."""


@dataclass(frozen=True, slots=True)
class OscIn:
    """One received message: its address, its type tags (without the comma) and values."""

    address: str
    tags: str
    args: tuple[Any, ...]


def _need(dgram: bytes, i: int, n: int, what: str) -> None:
    if len(dgram) - i < n:
        raise OscParseError(f"truncated {what} argument at byte {i}")


def parse_message(dgram: bytes) -> OscIn:
    """Parse one OSC message strictly; raise :class:`OscParseError` saying what is wrong."""
    try:
        address, i = osc_types.get_string(dgram, 0)
    except UnicodeDecodeError:
        raise OscParseError("address is not UTF-8") from None
    except osc_types.ParseError:
        raise OscParseError("address string is not terminated and padded") from None
    if not address.startswith("/"):
        raise OscParseError("address does not start with '/'")
    if i >= len(dgram):
        return OscIn(address, "", ())  # no type tag string: old-style message without arguments
    try:
        tags, i = osc_types.get_string(dgram, i)
    except UnicodeDecodeError:
        raise OscParseError(f"type tags of {address} are not UTF-8") from None
    except osc_types.ParseError:
        raise OscParseError(f"type tag string of {address} is not terminated and padded") from None
    if not tags.startswith(","):
        raise OscParseError(f"type tag string of {address} does not start with ','")
    tags = tags[1:]
    stack: list[list[Any]] = [[]]
    try:
        for t in tags:
            val: Any
            if t == "i":
                val, i = osc_types.get_int(dgram, i)
            elif t == "f":
                _need(dgram, i, 4, "float")
                val, i = osc_types.get_float(dgram, i)
            elif t == "s" or t == "S":
                val, i = osc_types.get_string(dgram, i)
            elif t == "h":
                val, i = osc_types.get_int64(dgram, i)
            elif t == "d":
                val, i = osc_types.get_double(dgram, i)
            elif t == "b":
                _need(dgram, i, 4, "blob")
                size = int.from_bytes(dgram[i:i + 4], "big", signed=True)
                if size < 0 or size > len(dgram) - i - 4:
                    raise OscParseError(f"blob length {size} does not fit the datagram")
                val, i = osc_types.get_blob(dgram, i)
            elif t == "T" or t == "F":
                val = t == "T"
            elif t == "N" or t == "I":
                val = None
            elif t == "t":
                _need(dgram, i, 8, "timetag")
                val, i = osc_types.get_date(dgram, i)
            elif t == "m":
                _need(dgram, i, 4, "midi")
                val, i = osc_types.get_midi(dgram, i)
            elif t == "r":
                _need(dgram, i, 4, "rgba")
                val, i = osc_types.get_rgba(dgram, i)
            elif t == "c":
                code, i = osc_types.get_int(dgram, i)
                val = chr(code)
            elif t == "[":
                stack.append([])
                continue
            elif t == "]":
                if len(stack) < 2:
                    raise OscParseError(f"unbalanced ']' in type tags ,{tags}")
                inner = stack.pop()
                stack[-1].append(inner)
                continue
            else:
                raise OscParseError(f"unsupported type tag {t!r} in ,{tags}")
            stack[-1].append(val)
    except UnicodeDecodeError:
        raise OscParseError(f"string argument of {address} is not UTF-8") from None
    except (osc_types.ParseError, ValueError, OverflowError) as e:
        if isinstance(e, OscParseError):
            raise
        raise OscParseError(f"bad arguments for ,{tags}: {e}") from None
    if len(stack) != 1:
        raise OscParseError(f"unbalanced '[' in type tags ,{tags}")
    if i > len(dgram):
        raise OscParseError("arguments run past the end of the datagram")
    return OscIn(address, tags, tuple(stack[0]))


def parse_packet(dgram: bytes, max_depth: int = MAX_BUNDLE_DEPTH) -> list[tuple[float | None, list[OscIn]]]:
    """Parse a datagram into groups of messages with their time (``time.time()`` seconds).

    The time is None for "now" (a plain message or an ``immediately`` bundle). A bundle's
    messages form one group, each nested bundle another, in the order they came. The whole
    datagram is refused if any part of it is malformed: a bundle is applied all or nothing.
    """
    if dgram.startswith(_BUNDLE):
        out: list[tuple[float | None, list[OscIn]]] = []
        _parse_bundle(dgram, None, 1, max_depth, out)
        return [g for g in out if g[1]]
    if dgram[:1] == b"/":
        return [(None, [parse_message(dgram)])]
    if not dgram:
        raise OscParseError("empty datagram")
    raise OscParseError(f"neither a message (starts with '/') nor a bundle, starts with {dgram[:8]!r}")


def _parse_bundle(dgram: bytes, parent: float | None, depth: int, max_depth: int,
                  out: list[tuple[float | None, list[OscIn]]]) -> None:
    if depth > max_depth:
        raise OscParseError(f"bundles nested deeper than {max_depth}")
    if len(dgram) < 16:
        raise OscParseError("bundle shorter than its 16-byte header")
    tt, i = osc_types.get_date(dgram, 8)
    own = None if tt == osc_types.IMMEDIATELY else float(tt)
    # A nested bundle may not be earlier than the one holding it (OSC 1.0).
    when = own if parent is None else parent if own is None else max(own, parent)
    msgs: list[OscIn] = []
    out.append((when, msgs))
    n = len(dgram)
    while i < n:
        if n - i < 4:
            raise OscParseError("truncated bundle element size")
        size, i = osc_types.get_int(dgram, i)
        if size <= 0 or size > n - i:
            raise OscParseError(f"bundle element length {size} does not fit the {n - i} bytes left")
        elem = dgram[i:i + size]
        i += size
        if elem.startswith(_BUNDLE):
            _parse_bundle(elem, when, depth + 1, max_depth, out)
        elif elem[:1] == b"/":
            msgs.append(parse_message(elem))
        else:
            raise OscParseError(f"bundle element is neither a message nor a bundle: {elem[:8]!r}")


def encode(address: str, *args: tuple[str, Any]) -> bytes:
    """An OSC message datagram from ``(type_tag, value)`` pairs, built by python-osc."""
    b = OscMessageBuilder(address)
    for tag, value in args:
        b.add_arg(value, tag)
    return b.build().dgram


def _short(value: object, limit: int = 80) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _coerce(expected: str, tags: str, args: tuple[Any, ...]) -> list[Any] | None:
    """The arguments converted to what ``expected`` asks for, or None if they do not fit.

    Ints are accepted for floats (TouchDesigner, Max) and whole floats for ints (Pure Data).
    Non-finite numbers are refused: nan/inf make no sense for any control.
    """
    if len(tags) != len(expected) or len(args) != len(expected):
        return None
    out: list[Any] = []
    for want, tag, v in zip(expected, tags, args):
        if want == "f":
            if tag not in _NUMERIC or not math.isfinite(v):
                return None
            out.append(float(v))
        elif want == "i":
            if tag in "ih":
                out.append(int(v))
            elif tag in "fd" and math.isfinite(v) and float(v).is_integer():
                out.append(int(v))
            else:
                return None
        elif want == "s":
            if tag not in "sS":
                return None
            out.append(v)
        else:  # pragma: no cover - the table only uses f, i, s
            return None
    return out


# -- the server ---------------------------------------------------------------------------
Handler = Callable[[str | None, list[Any], Any, str], bool]


class OscServer:
    """Receives OSC over UDP and applies it to a :class:`ControlSurface`.

    ``specs`` looks up a parameter's :class:`ParamSpec` (``store.spec``) so OscMaps can map
    their 0..1 argument through their curve and range. ``allow`` holds IP addresses or
    networks (``"10.0.0.0/24"``); when non-empty, datagrams from anyone else are ignored.
    Future bundles: at most ``max_pending`` messages wait, none more than ``max_ahead``
    seconds ahead. ``on_applied(t)`` is called after each applied message with the
    ``time.monotonic()`` at which it arrived (for a scheduled bundle: when it was due), for
    the OSC-in to applied latency benchmark; ``last_applied_latency`` keeps the last one.

    ``stats`` counts: ``received`` datagrams, ``applied`` messages, ``malformed`` datagrams,
    ``rejected`` messages (unknown address, wrong arguments), ``blocked`` datagrams (allow
    list), ``scheduled`` and ``dropped_future`` bundled messages, ``errors`` (exceptions
    caught, with tracebacks at debug level).
    """

    def __init__(
        self,
        surface: ControlSurface,
        host: str = "127.0.0.1",
        port: int = 9000,
        maps: Sequence[OscMap] = (),
        triggers: Sequence[Trigger] = (),
        specs: Callable[[str], ParamSpec] | None = None,
        allow: Collection[str] = (),
        max_pending: int = 1024,
        max_ahead: float = 60.0,
        *,
        on_applied: Callable[[float], None] | None = None,
        max_depth: int = MAX_BUNDLE_DEPTH,
        on_record: Callable[[bool, str], bool] | None = None,
        instance: str = "",
        urgent: UrgentPanic | None = None,
    ) -> None:
        self.surface = surface
        self.urgent = urgent
        self.host = host
        self._port = port
        self.specs = specs
        self.max_pending = max_pending
        self.max_ahead = max_ahead
        self.max_depth = max_depth
        self.on_applied = on_applied
        self.on_record = on_record  # start/stop recording the visuals (the live rig's; None: no visuals)
        # Several livegens in one show: /livegen/<instance>/... reaches this one alone,
        # /livegen/... reaches every one; a request's reply carries the address form it came with.
        self.instance = instance
        self._reply_prefix = PREFIX
        self._other_instances: set[str] = set()
        self.last_applied_latency: float | None = None
        self.stats: dict[str, int] = dict.fromkeys(_STAT_KEYS, 0)
        self.problems = RateLimitedLog(log)
        try:
            self._allow = tuple(ipaddress.ip_network(a.strip(), strict=False) for a in allow)
        except ValueError as e:
            raise ValueError(f"OSC allow list takes IP addresses or networks: {e}") from None
        self._allowed_cache: dict[str, bool] = {}
        self._maps: dict[str, list[OscMap]] = {}
        self._triggers: dict[str, list[Trigger]] = {}
        self.set_mappings(maps, triggers)
        self._handlers: dict[str, Handler] = {
            f"{PREFIX}/param/<name>": self._h_param,
            f"{PREFIX}/param/<name>/unit": self._h_param_unit,
            f"{PREFIX}/tempo": self._h_tempo,
            f"{PREFIX}/note": self._h_note,
            f"{PREFIX}/scene": self._h_scene,
            f"{PREFIX}/trigger": self._h_trigger,
            f"{PREFIX}/panic": self._h_panic,
            f"{PREFIX}/quit": self._h_quit,
            f"{PREFIX}/screenshot": self._h_screenshot,
            f"{PREFIX}/record": self._h_record,
            f"{PREFIX}/get": self._h_get,
            f"{PREFIX}/dump": self._h_dump,
            f"{PREFIX}/learn": self._h_learn,
            f"{PREFIX}/learn/save": self._h_learn_save,
            f"{PREFIX}/ping": self._h_ping,
            f"{PREFIX}/stats": self._h_stats,
        }
        missing = [a.pattern for a in ADDRESSES if a.pattern not in self._handlers]
        if missing:
            raise RuntimeError(f"OSC addresses without a handler: {missing}")
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._running = False
        self._queue: deque[tuple[bytes, Any, float]] = deque()
        self._drain_due = False  # a _drain is scheduled on the loop
        self._overflow = 0  # counted on the receiver thread; moved into stats on the loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._timer_ids = itertools.count()
        self._pending = 0

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind the UDP socket and start receiving; datagrams are handled on this loop."""
        self._loop = asyncio.get_running_loop()
        infos = await self._loop.getaddrinfo(self.host, self._port, type=socket.SOCK_DGRAM)
        family, _type, _proto, _name, address = infos[0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            try:  # bursts of faders at 60 fps must not overflow the kernel buffer
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            except OSError:
                pass
            sock.bind(address)
        except OSError:
            sock.close()
            raise
        sock.settimeout(RECV_POLL)
        self._sock = sock
        self._running = True
        self._thread = threading.Thread(target=self._receive, name="livegen-osc-in", daemon=True)
        self._thread.start()
        log.info("OSC listening on %s:%d", self.host, self.port)

    @property
    def port(self) -> int:
        """The bound port (useful with port=0), or the configured one before start()."""
        if self._sock is not None:
            try:
                return int(self._sock.getsockname()[1])
            except OSError:
                pass
        return self._port

    def close(self) -> None:
        """Stop listening (the receiver thread is joined) and forget bundles still waiting."""
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self._pending = 0
        self._running = False
        if self._thread is not None:
            self._thread.join(2 * RECV_POLL + 1.0)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._queue.clear()

    def set_mappings(self, maps: Sequence[OscMap] = (), triggers: Sequence[Trigger] = ()) -> None:
        """Replace the patch's OSC mappings (on patch reload). Triggers without an address are MIDI's."""
        by_addr: dict[str, list[OscMap]] = {}
        for m in maps:
            apply_curve(0.5, m.curve)  # unknown curve: fail at load, not mid-show
            by_addr.setdefault(m.address, []).append(m)
        trig: dict[str, list[Trigger]] = {}
        for t in triggers:
            if t.address:
                trig.setdefault(t.address, []).append(t)
        self._maps, self._triggers = by_addr, trig

    def dispatch(self, address: str, args: Sequence[Any] = (), sender: tuple[str, Any] = ("local", 0)) -> bool:
        """Apply one message given as Python values, as if it had arrived now from ``sender``.

        For ``livegen render --events`` (scripted OSC on the virtual clock) and tools that
        have no socket. Types are inferred (int -> ``i``, float -> ``f``, str -> ``s``);
        the allow list does not apply; replies go nowhere unless the server is started.
        Returns whether it was applied.
        """
        tags = "".join(_tag_of(a) for a in args)
        before = self.stats["applied"]
        self._dispatch(OscIn(address, tags, tuple(args)), sender, time.monotonic())
        return self.stats["applied"] > before

    @property
    def pending(self) -> int:
        """Messages in future bundles waiting for their time."""
        return self._pending

    # -- receiving (a thread of its own) --------------------------------------------------
    def _receive(self) -> None:
        sock, queue, loop = self._sock, self._queue, self._loop
        assert sock is not None and loop is not None
        realtime.raise_thread_priority(realtime.CONTROL_IN)  # a panic acts here (urgent)
        while self._running:
            try:
                data, addr = sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError as e:  # closed under us, or an ICMP error after a reply: go on
                if not self._running:
                    return
                log.debug("OSC socket error: %s", e)
                time.sleep(0.01)
                continue
            t = time.monotonic()
            if self.urgent is not None and data.startswith(b"/livegen/"):
                self._urgent(data, addr)
            if len(queue) >= MAX_QUEUED:
                self._overflow += 1
                continue
            queue.append((data, addr, t))
            if not self._drain_due:
                self._drain_due = True
                try:
                    loop.call_soon_threadsafe(self._drain)
                except RuntimeError:  # the loop is closed: we are shutting down
                    return

    def _urgent(self, data: bytes, addr: Any) -> None:
        """A panic acts here, on the receiving thread; the loop still handles the datagram."""
        assert self.urgent is not None
        end = data.find(b"\0")  # the address: only a panic's is worth parsing here (the loop parses all)
        if end < 0 or data[:end].decode("utf-8", "replace") not in self.urgent.osc_addresses:
            return
        try:
            msg = parse_message(data)
            if msg.tags or msg.address in self._maps or msg.address in self._triggers:
                return  # what the loop would refuse, or what the patch has taken over
            if not self._allow or self._allowed(addr[0]):
                self.urgent.osc(msg.address, f"osc:{_peer(addr)}")
        except Exception:  # junk is the loop's to count and report
            return

    def _drain(self) -> None:
        """On the loop: handle what the receiver queued, ``PER_PASS`` at a time."""
        self._drain_due = False
        queue = self._queue
        if self._overflow:
            n, self._overflow = self._overflow, 0
            self.stats["overflow"] += n
            self.problems.warn("overflow", "OSC: %d datagrams dropped: more than %d were waiting to be handled",
                               n, MAX_QUEUED)
        for _ in range(PER_PASS):
            if not queue:
                return
            data, addr, t = queue.popleft()
            self._datagram(data, addr, t)
        if queue and not self._drain_due and self._loop is not None:
            self._drain_due = True
            self._loop.call_soon(self._drain)

    # -- per datagram ---------------------------------------------------------------------
    def _datagram(self, data: bytes, addr: Any, t_received: float) -> None:
        self.stats["received"] += 1
        try:
            self._handle(data, addr, t_received)
        except Exception:  # a bug here must not take OSC down for the rest of the show
            self.stats["errors"] += 1
            log.debug("OSC: handling a datagram from %s failed", addr, exc_info=True)
            self.problems.warn("error:datagram", "OSC: handling a datagram from %s failed (details in the log file)", _peer(addr))

    def _allowed(self, host: str) -> bool:
        ok = self._allowed_cache.get(host)
        if ok is None:
            try:
                ip = ipaddress.ip_address(host.split("%", 1)[0])
                if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                    ip = ip.ipv4_mapped
                ok = any(ip in net for net in self._allow)
            except ValueError:
                ok = False
            if len(self._allowed_cache) > 1024:
                self._allowed_cache.clear()
            self._allowed_cache[host] = ok
        return ok

    def _handle(self, data: bytes, addr: Any, t_received: float) -> None:
        if self._allow and not self._allowed(str(addr[0])):
            self.stats["blocked"] += 1
            self.problems.warn(f"blocked:{addr[0]}", "OSC: ignoring %s, not in the allow list", _peer(addr))
            return
        try:
            groups = parse_packet(data, self.max_depth)
        except OscParseError as e:
            self.stats["malformed"] += 1
            self.problems.warn(f"malformed:{addr[0]}", "OSC from %s: dropped a malformed datagram (%d bytes): %s",
                               _peer(addr), len(data), e)
            return
        now_wall: float | None = None
        for when, msgs in groups:
            if when is not None:
                if now_wall is None:
                    now_wall = time.time()
                delay = when - now_wall
                if delay > 0:
                    self._schedule(delay, msgs, addr)
                    continue
            for m in msgs:
                self._dispatch(m, addr, t_received)

    def _schedule(self, delay: float, msgs: list[OscIn], addr: Any) -> None:
        if delay > self.max_ahead:
            self.stats["dropped_future"] += len(msgs)
            self.problems.warn(f"ahead:{addr[0]}", "OSC from %s: dropped a bundle timed %.1f s ahead (max_ahead is %g s; are the clocks in sync?)",
                               _peer(addr), delay, self.max_ahead)
            return
        if self._pending + len(msgs) > self.max_pending:
            self.stats["dropped_future"] += len(msgs)
            self.problems.warn(f"pending:{addr[0]}", "OSC from %s: dropped a future bundle, %d messages already waiting (max_pending %d)",
                               _peer(addr), self._pending, self.max_pending)
            return
        loop = self._loop or asyncio.get_running_loop()
        key = next(self._timer_ids)
        due = time.monotonic() + delay
        self._timers[key] = loop.call_at(loop.time() + delay, self._run_scheduled, key, msgs, addr, due)
        self._pending += len(msgs)
        self.stats["scheduled"] += len(msgs)

    def _run_scheduled(self, key: int, msgs: list[OscIn], addr: Any, due: float) -> None:
        if self._timers.pop(key, None) is None:
            return
        self._pending -= len(msgs)
        for m in msgs:
            self._dispatch(m, addr, due)

    def _dispatch(self, msg: OscIn, addr: Any, t_ref: float) -> None:
        source = f"osc:{_peer(addr)}"
        try:
            if not self._apply(msg, addr, source):
                return
            self.stats["applied"] += 1
            self.last_applied_latency = time.monotonic() - t_ref
            if self.on_applied is not None:
                self.on_applied(t_ref)
        except Exception:
            self.stats["errors"] += 1
            log.debug("OSC %s from %s failed", _short(msg.address), source, exc_info=True)
            self.problems.warn(f"error:{_short(msg.address, 64)}", "OSC %s from %s: applying it failed (details in the log file)",
                               _short(msg.address), source)

    def _apply(self, msg: OscIn, addr: Any, source: str) -> bool:
        """Apply one message; False if it was refused (already logged and counted)."""
        maps = self._maps.get(msg.address)
        triggers = self._triggers.get(msg.address)
        if maps or triggers:
            ok = False
            for m in maps or ():
                ok = self._apply_map(m, msg, source) or ok
            for t in triggers or ():
                ok = self._apply_trigger(t, msg, source) or ok
            return ok
        self._reply_prefix = PREFIX
        found = lookup(msg.address)
        target, address = split_instance(msg.address) if found is None else (None, msg.address)
        if target is not None:
            if target != self.instance:  # for another livegen of the show
                self.stats["other_instance"] += 1
                name = _short(target, 64)  # a peer's choice: bounded in the log and in memory
                if name not in self._other_instances and len(self._other_instances) < 64:
                    self._other_instances.add(name)  # normal in a show of several: said once per name
                    log.info("OSC from %s: %s is for instance %r, not this one (%r); such messages are ignored",
                             source, _short(msg.address), name, self.instance or "unnamed")
                return False
            msg = OscIn(address, msg.tags, msg.args)
            self._reply_prefix = f"{PREFIX}/{target}"
            found = lookup(address)
        if found is None:
            self._reject(f"unknown:{addr[0]}", "OSC from %s: unknown address %s (args ,%s %s); see /livegen/* in the docs",
                         source, _short(msg.address), msg.tags, _short(msg.args))
            return False
        entry, name = found
        values = _coerce(entry.args, msg.tags, msg.args)
        if values is None:
            self._reject_args(entry, msg, source)
            return False
        return self._handlers[entry.pattern](name, values, addr, source)

    def _reject(self, key: str, message: str, *args: object) -> None:
        self.stats["rejected"] += 1
        self.problems.warn(key, message, *args)

    def _reject_args(self, entry: OscAddress, msg: OscIn, source: str) -> None:
        expected = f",{entry.args}" if entry.args else "no arguments"
        got = f",{msg.tags} {_short(msg.args)}" if msg.tags else "no arguments"
        self._reject(f"args:{entry.pattern}", "OSC %s from %s: expected %s, got %s",
                     _short(msg.address), source, expected, got)

    def _first_number(self, msg: OscIn) -> float | None:
        if not msg.tags or msg.tags[0] not in _NUMERIC + "TF":
            return None
        x = float(msg.args[0])
        return x if math.isfinite(x) else None

    def _apply_map(self, m: OscMap, msg: OscIn, source: str) -> bool:
        x = self._first_number(msg)
        if x is None:
            self._reject(f"map:{m.address}", "OSC %s from %s: expected a number for %s, got %s",
                         m.address, source, m.param, f",{msg.tags} {_short(msg.args)}" if msg.tags else "no arguments")
            return False
        if m.raw:
            return self.surface.set_param(m.param, x, source)
        spec = self._spec(m.param)
        if spec is not None:
            return self.surface.set_param(m.param, mapped_value(spec, x, m.min, m.max, m.curve), source)
        y = apply_curve(x, m.curve)  # no spec to hand: let the engine place it in the range
        if m.min is not None and m.max is not None:
            return self.surface.set_param(m.param, m.min + (m.max - m.min) * y, source)
        return self.surface.set_param_unit(m.param, y, source)

    def _spec(self, name: str) -> ParamSpec | None:
        if self.specs is None:
            return None
        try:
            return self.specs(name)
        except KeyError:
            return None

    def _apply_trigger(self, t: Trigger, msg: OscIn, source: str) -> bool:
        # A button sends 1 on press and 0 on release; fire on press only.
        if msg.tags and msg.tags[0] in _NUMERIC + "TF" and not msg.args[0]:
            return False
        self._fire(t.action, source)
        return True

    def _fire(self, action: str, source: str) -> bool:
        """Route an action string to the surface: the same vocabulary as MIDI triggers."""
        if action == "panic":
            self.surface.panic(source)
            return True
        if action == "quit":
            self.surface.quit(source)
            return True
        if action.startswith("scene:"):
            return self.surface.scene(action[6:], source)
        if action.startswith("learn:"):
            return self.surface.learn(action[6:], source)
        return self.surface.trigger(action, source)

    def _reply(self, addr: Any, dgram: bytes) -> None:
        if self._sock is not None:
            try:
                self._sock.sendto(dgram, addr)
            except OSError as e:  # the peer's network went away: its problem, not the show's
                log.debug("OSC reply to %s failed: %s", _peer(addr), e)

    # -- built-in handlers (one per table entry) -------------------------------------------
    def _h_param(self, name: str | None, v: list[Any], addr: Any, source: str) -> bool:
        return self.surface.set_param(name or "", v[0], source)

    def _h_param_unit(self, name: str | None, v: list[Any], addr: Any, source: str) -> bool:
        return self.surface.set_param_unit(name or "", v[0], source)

    def _h_tempo(self, name: str | None, v: list[Any], addr: Any, source: str) -> bool:
        return self.surface.set_tempo(v[0], source)

    def _h_note(self, name: str | None, v: list[Any], addr: Any, source: str) -> bool:
        pitch, velocity = v
        if not (0 <= pitch <= 127 and 0 <= velocity <= 127):
            self._reject(f"note-range:{addr[0]}", "OSC %s/note from %s: pitch and velocity must be 0..127, got %d %d",
                         PREFIX, source, pitch, velocity)
            return False
        self.surface.play_note(pitch, velocity, source)
        return True

    def _h_scene(self, name: str | None, v: list[Any], addr: Any, source: str) -> bool:
        return self.surface.scene(v[0], source)

    def _h_trigger(self, name: str | None, v: list[Any], addr: Any, source: str) -> bool:
        return self._fire(v[0], source)

    def _h_panic(self, name: str | None, v: list[Any], addr: Any, source: str) -> bool:
        self.surface.panic(source)
        return True

    def _h_quit(self, name: str | None, v: list[Any], addr: Any, source: str) -> bool:
        self.surface.quit(source)
        return True

    def _h_screenshot(self, name: str | None, v: list[Any], addr: Any, source: str) -> bool:
        screenshot = getattr(self.surface, "screenshot", None)
        return bool(screenshot(source)) if screenshot is not None else False

    def _h_record(self, name: str | None, v: list[Any], addr: Any, source: str) -> bool:
        if self.on_record is None:
            self.problems.warn("record", "recording asked for (%s) but there are no visuals to record", source)
            return False
        return bool(self.on_record(bool(v[0]), source))

    def _h_get(self, name: str | None, v: list[Any], addr: Any, source: str) -> bool:
        param = v[0]
        value = self.surface.get_param(param)
        if value is None:
            self._reply(addr, encode(f"{self._reply_prefix}/error", ("s", f"unknown parameter {param!r}")))
        else:
            self._reply(addr, encode(f"{self._reply_prefix}/value", ("s", param), ("f", float(value))))
        return True

    def _h_dump(self, name: str | None, v: list[Any], addr: Any, source: str) -> bool:
        for param in self.surface.param_names():
            value = self.surface.get_param(param)
            if value is not None:
                self._reply(addr, encode(f"{self._reply_prefix}/value", ("s", param), ("f", float(value))))
        return True

    def _h_learn(self, name: str | None, v: list[Any], addr: Any, source: str) -> bool:
        return self.surface.learn(v[0], source)

    def _h_learn_save(self, name: str | None, v: list[Any], addr: Any, source: str) -> bool:
        return self.surface.save_learned(source)

    def _h_ping(self, name: str | None, v: list[Any], addr: Any, source: str) -> bool:
        self._reply(addr, encode(f"{self._reply_prefix}/pong"))
        return True

    def _h_stats(self, name: str | None, v: list[Any], addr: Any, source: str) -> bool:
        # For a monitor on stage and the fuzz benchmark: is junk arriving, are bundles piling up?
        counts = {**self.stats, "pending": self._pending}
        args = [a for k, n in counts.items() for a in (("s", k), ("i", min(n, 2**31 - 1)))]
        self._reply(addr, encode(f"{self._reply_prefix}/stats", *args))
        return True


def _tag_of(value: Any) -> str:
    """The OSC type tag python-osc would send for a Python value ('?' for none)."""
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, int):
        return "i" if -2**31 <= value < 2**31 else "h"
    if isinstance(value, float):
        return "f"
    if isinstance(value, str):
        return "s"
    if isinstance(value, (bytes, bytearray)):
        return "b"
    if value is None:
        return "N"
    return "?"


def _peer(addr: Any) -> str:
    try:
        host, port = addr[0], addr[1]
    except (TypeError, IndexError):
        return str(addr)
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
