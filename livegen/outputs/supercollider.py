"""scsynth out: play the performance on a SuperCollider server.

Each note starts a synth (``/s_new``) with ``freq``, ``amp`` and ``gate 1`` and is ended by
setting ``gate 0`` (``/n_set``), so the SynthDef's envelope releases it and frees the node
itself (``doneAction: 2``, as SuperCollider's ``default`` SynthDef does).

Notes go as OSC bundles time-tagged with the note's own time, ``lead`` seconds early, and
scsynth runs each at its sample. That keeps a note-off out of the control block of its
note-on: scsynth runs untimed commands together at the start of its next period, and a
``gate 0`` that lands in the same control block as the ``/s_new`` means a plain gated
envelope never opens, never ends, and the node stays on the server for good (SuperCollider's
stock ``default`` does this). So a note-off is also never time-tagged less than
``MIN_GATE`` after the moment its note-on surely ran.

Panic silences every node we started, release tails of the last ``RELEASE_TAIL`` seconds
included, whatever the SynthDef, and leaves other clients' nodes in the group alone: a
node already running gets a forced release (``gate`` set to
``-1 - PANIC_RELEASE``: EnvGen and Linen fade out over that time and free the node, even
when their gate never opened); a node whose time-tagged ``/s_new`` still waits on the
server is freed in the same control block it starts in, before it makes a sound; and
``PANIC_BACKSTOP`` later every one of them is ``/n_free``d, for SynthDefs whose gate frees
nothing. Errors for nodes already gone are switched off inside those bundles (``/error -1``).

Node ids are ours from 2000 upward (sclang allocates from 1000, so they do not collide with
a sclang session on the same server). Notes are matched by (channel, pitch), oldest first,
so a retriggered pitch releases its notes in order.

``prepare_server`` readies a server before the show, so a performer need not run sclang:
it sends the patch's compiled SynthDef file (``/d_recv``) and creates the group if a bare
``scsynth`` has none (sclang's ``s.boot`` makes group 1; plain scsynth only has node 0).
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from pythonosc.osc_message import OscMessage, ParseError

from livegen.events import AllNotesOff, NoteOff, NoteOn, OutEvent
from livegen.outputs.osc_out import UdpSender, encode

FIRST_NODE_ID = 2000
_MAX_NODE_ID = 2**31 - 1

# Measured on scsynth 3.13 on JACK (256 frames, 48 kHz): a bundle 10 ms ahead was never
# late, 5 ms ahead half the time. The timing server hands events over 20 ms early.
LEAD_SECONDS = 0.015
MIN_GATE = 0.005  # s: a note-off runs at least this long after its note-on (>= 3 control blocks)
PANIC_RELEASE = 0.0015  # s: the forced release on panic, about the built-in synth's fade (64 frames)
PANIC_BACKSTOP = 0.1  # s: after a panic, /n_free whatever of ours is still on the server
RELEASE_TAIL = 5.0  # s: a released note may still sound this long (its SynthDef's release): panic cuts it too
_NTP_EPOCH = 2208988800  # seconds from 1900 (OSC time tags) to 1970 (time.time())
_FREES_PER_BUNDLE = 200  # messages per bundle: a datagram under 9 KB (macOS drops bigger ones by default)


def midi_to_freq(pitch: float) -> float:
    """Equal temperament, A4 (MIDI 69) = 440 Hz."""
    return 440.0 * 2.0 ** ((pitch - 69) / 12.0)


_wall = [time.time() - time.monotonic(), time.monotonic()]  # wall minus monotonic, when read


def timetag(t: float) -> int:
    """The OSC (NTP) time tag of monotonic time ``t``: scsynth schedules by the wall clock.

    The clocks' offset is read again once a second, so notes of one time (a chord) get one
    time tag, and a wall clock that NTP steps is followed within a second.
    """
    now = time.monotonic()
    if now - _wall[1] > 1.0:
        _wall[:] = [time.time() - time.monotonic(), now]
    return int((t + _wall[0] + _NTP_EPOCH) * 4294967296.0)


def bundle(tag: int, *messages: bytes) -> bytes:
    """An OSC bundle datagram of encoded ``messages`` at time tag ``tag``."""
    parts = [b"#bundle\x00", struct.pack(">Q", tag)]
    for m in messages:
        parts.append(struct.pack(">i", len(m)))
        parts.append(m)
    return b"".join(parts)


@dataclass
class _Node:
    """A synth we started: its id, its ``/s_new`` time tag (0: sent untimed), when it
    starts, and by when its gate has surely been open for a control block."""

    node: int
    tag: int
    start: float
    opened: float


class ScsynthOutput:
    """Sends notes to scsynth as synth nodes of ``synthdef`` at the head of ``group``.

    ``lead``: how early each note is sent, time-tagged; it must cover scsynth's hardware
    period (raise it for a JACK period above 256 frames at 48 kHz).
    """

    lead = LEAD_SECONDS

    def __init__(self, host: str = "127.0.0.1", port: int = 57110, synthdef: str = "default",
                 group: int = 1, *, name: str = "scsynth", lead: float = LEAD_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.synthdef = synthdef
        self.group = group
        self.lead = float(lead)
        self._now = clock
        self._udp = UdpSender(name, host, port)
        self._next_id = FIRST_NODE_ID
        self._live: dict[tuple[int, int], deque[_Node]] = {}
        self._releasing: deque[tuple[float, _Node]] = deque()  # (gate-off time, node), oldest first
        self._lock = threading.Lock()  # send runs on the dispatch thread, close may not
        self.panics = 0

    @property
    def errors(self) -> int:
        """Messages lost to send errors."""
        return self._udp.errors

    @property
    def live_nodes(self) -> list[int]:
        """Node ids started and not yet released, oldest first per note."""
        with self._lock:
            return [n.node for q in self._live.values() for n in q]

    def send(self, event: OutEvent) -> None:
        with self._lock:
            if isinstance(event, NoteOn):
                if event.velocity > 0:
                    self._note_on(event)
                else:
                    self._note_off(event.channel, event.pitch, event.time)
            elif isinstance(event, NoteOff):
                self._note_off(event.channel, event.pitch, event.time)
            elif isinstance(event, AllNotesOff):
                self._panic()
            # ParamChanged (synth.master and the rest), beats and clock mean nothing to scsynth.

    def _alloc(self) -> int:
        node = self._next_id
        self._next_id = FIRST_NODE_ID if node >= _MAX_NODE_ID else node + 1
        return node

    def _note_on(self, ev: NoteOn) -> None:
        node = self._alloc()
        msg = encode(
            "/s_new", ("s", self.synthdef), ("i", node), ("i", 0), ("i", self.group),
            ("s", "freq"), ("f", midi_to_freq(ev.pitch)),
            ("s", "amp"), ("f", max(0.0, min(1.0, ev.velocity / 127.0))),
            ("s", "gate"), ("i", 1),
        )
        now = self._now()
        if ev.time > now:  # on time: scsynth starts it on its sample
            tag = timetag(ev.time)
            self._udp.send(bundle(tag, msg))
        else:  # due now (the performer's own note) or late: at scsynth's next period, which
            tag = 0  # `lead` covers; a time tag in the past would only add a "late" line there
            self._udp.send(msg)
        start = max(ev.time, now)
        opened = max(ev.time, now + self.lead)
        self._live.setdefault((ev.channel, ev.pitch), deque()).append(_Node(node, tag, start, opened))

    def _note_off(self, channel: int, pitch: int, t: float) -> None:
        q = self._live.get((channel, pitch))
        if not q:
            return
        n = q.popleft()
        if not q:
            del self._live[(channel, pitch)]
        msg = encode("/n_set", ("i", n.node), ("s", "gate"), ("i", 0))
        at = max(t, n.opened + MIN_GATE)
        now = self._now()
        if at > now:  # a panic before then frees the node: no "not found" line for this one
            self._udp.send(bundle(timetag(at), encode("/error", ("i", -1)), msg))
        else:
            self._udp.send(msg)
        rel = self._releasing
        rel.append((at, n))
        while rel and rel[0][0] < now - RELEASE_TAIL:
            rel.popleft()

    def _panic(self) -> None:
        """Every node of ours silenced now, freed soon: held, releasing, or not started yet."""
        now = self._now()
        nodes = [n for q in self._live.values() for n in q] + [n for _, n in self._releasing]
        # Note-offs already sent to scsynth for later: at that time their gate 0 would undo
        # the forced release (when both land in one control block, the node just releases
        # as usual, 0.1 s and more), so the forced release is said again right after each.
        gate_offs = [(at, n) for at, n in self._releasing if at > now]
        self._live.clear()
        self._releasing.clear()
        if not nodes:
            return
        self.panics += 1
        off = encode("/error", ("i", -1))
        forced = ("s", "gate"), ("f", -1.0 - PANIC_RELEASE)
        running = [n for n in nodes if not (n.tag and n.start > now)]
        if running:  # time-tagged (not plain) so it runs after any /s_new still queued there
            tag = max([timetag(now)] + [n.tag + 1 for n in running if n.tag])
            release = [encode("/n_set", ("i", n.node), *forced) for n in running]
            for i in range(0, len(release), _FREES_PER_BUNDLE):
                self._udp.send(bundle(tag, off, *release[i:i + _FREES_PER_BUNDLE]))
        for at, n in gate_offs:
            self._udp.send(bundle(timetag(at) + 1, off, encode("/n_set", ("i", n.node), *forced)))
        waiting: dict[int, list[int]] = {}
        for n in nodes:
            if n.tag and n.start > now:  # starts later: freed right after its /s_new runs
                waiting.setdefault(n.tag, []).append(n.node)
        for tag, ids in waiting.items():
            self._udp.send(bundle(tag + 1, off, *(encode("/n_free", ("i", i)) for i in ids)))
        frees = [encode("/n_free", ("i", n.node)) for n in nodes]  # one each: /n_free stops at the first missing
        backstop = timetag(now + PANIC_BACKSTOP)
        for i in range(0, len(frees), _FREES_PER_BUNDLE):
            self._udp.send(bundle(backstop, off, *frees[i:i + _FREES_PER_BUNDLE]))

    def close(self) -> None:
        """Silence every sounding note (as panic does), then close the socket."""
        with self._lock:
            self._panic()
            self._udp.close()


# ---------------------------------------------------------------------------------------
# readying the server at start
# ---------------------------------------------------------------------------------------
SETUP_TIMEOUT = 2.0  # seconds to wait for each reply from scsynth at start
_D_RECV_LIMIT = 65000  # a larger file does not fit one UDP datagram: /d_load its path instead


class ScsynthSetupError(Exception):
    """Why a server could not be readied; ``str()`` is one line naming the file or the server."""


def synthdef_file_header(data: bytes) -> tuple[int, str]:
    """(number of SynthDefs, the first one's name) from a compiled ``.scsyndef`` file.

    Read from the header (``SCgf``, version, count, then each def's name as a Pascal
    string) so that a wrong file or a patch naming another SynthDef is one clear line here,
    not "SynthDef not found" on the server's console for every note.
    """
    if len(data) < 11 or data[:4] != b"SCgf":
        raise ValueError("not a compiled SynthDef file (no SCgf header)")
    version, count = struct.unpack(">iH", data[4:10])
    name = data[11:11 + data[10]]
    if version not in (1, 2) or count < 1 or len(name) < data[10]:
        raise ValueError(f"not a SynthDef file scsynth reads (version {version}, {count} definitions)")
    return count, name.decode("latin-1")


def prepare_server(host: str, port: int, *, synthdef: str = "default", synthdef_file: str = "",
                   group: int = 1, timeout: float = SETUP_TIMEOUT) -> list[str]:
    """Send ``synthdef_file`` to scsynth and make sure ``group`` exists; returns what was done.

    Blocking, for start-up only (``livegen play`` calls it before the clock starts). The file
    goes by value (``/d_recv``), so the server may be on another machine; only a file too
    big for one datagram is sent by path (``/d_load``). Raises ScsynthSetupError when the
    file cannot be read or does not define ``synthdef``, or the server does not answer.
    """
    data = _read_synthdef_file(synthdef_file, synthdef) if synthdef_file else None
    where = f"scsynth at {host}:{port}"
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    done: list[str] = []
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect(address)  # replies from anything else are not ours

        def ask(dgram: bytes, command: str, answers: tuple[str, ...]) -> OscMessage:
            """Send; the reply in ``answers`` or the ``/fail`` of ``command``."""
            sock.send(dgram)
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                try:
                    msg = OscMessage(sock.recv(65536))
                except socket.timeout:
                    break
                except (ConnectionRefusedError, ParseError):
                    continue  # nothing listening yet (ICMP), or not OSC: keep waiting for the answer
                if msg.address in ("/done", "/fail") and msg.params[:1] != [command]:
                    continue  # the answer to another command
                if msg.address in answers or msg.address == "/fail":
                    return msg
            raise ScsynthSetupError(f"{where} did not answer {command} within {timeout:g} s "
                                    "(is it running? see examples/supercollider/README.md)")

        if data is not None:
            if len(data) <= _D_RECV_LIMIT:
                command, dgram = "/d_recv", encode("/d_recv", ("b", data))
            else:
                command, dgram = "/d_load", encode("/d_load", ("s", os.path.abspath(synthdef_file)))
            reply = ask(dgram, command, ("/done",))
            if reply.address == "/fail":
                raise ScsynthSetupError(f"{where} refused {synthdef_file}: {' '.join(map(str, reply.params[1:]))}")
            done.append(f"{where}: SynthDef {synthdef!r} loaded from {os.path.normpath(synthdef_file)}")
        if group != 0:  # /g_queryTree answers the sender (/n_query only registered clients)
            reply = ask(encode("/g_queryTree", ("i", group), ("i", 0)), "/g_queryTree", ("/g_queryTree.reply",))
            if reply.address == "/fail":  # a bare scsynth: make the group, at the head of the root
                sock.send(encode("/g_new", ("i", group), ("i", 0), ("i", 0)))
                reply = ask(encode("/sync", ("i", group)), "/g_new", ("/synced",))
                if reply.address == "/fail":  # e.g. a synth has that node id
                    raise ScsynthSetupError(f"{where} could not create group {group} (supercollider.group): "
                                            f"{' '.join(map(str, reply.params[1:]))}")
                done.append(f"{where}: created group {group}")
    return done


def _read_synthdef_file(path: str, synthdef: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ScsynthSetupError(f"supercollider.synthdef_file: cannot read {path}: {e.strerror or e}") from None
    try:
        count, first = synthdef_file_header(data)
    except ValueError as e:
        raise ScsynthSetupError(f"supercollider.synthdef_file: {path}: {e}") from None
    if count == 1 and first != synthdef:
        raise ScsynthSetupError(f"supercollider.synthdef_file: {path} defines {first!r}, "
                                f"not the patch's synthdef {synthdef!r}")
    return data
