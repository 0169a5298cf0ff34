"""scsynth out: play the performance on a SuperCollider server.

Each note starts a synth (``/s_new``) with ``freq``, ``amp`` and ``gate 1`` and is ended by
setting ``gate 0`` (``/n_set``), so the SynthDef's envelope releases it and frees the node
itself (``doneAction: 2``, as SuperCollider's ``default`` SynthDef does). Panic releases
every live node the same way rather than ``/g_freeAll``: release tails stay musical and
other clients' nodes in the group are left alone.

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

from pythonosc.osc_message import OscMessage, ParseError

from livegen.events import AllNotesOff, NoteOff, NoteOn, OutEvent
from livegen.outputs.osc_out import UdpSender, encode

FIRST_NODE_ID = 2000
_MAX_NODE_ID = 2**31 - 1


def midi_to_freq(pitch: float) -> float:
    """Equal temperament, A4 (MIDI 69) = 440 Hz."""
    return 440.0 * 2.0 ** ((pitch - 69) / 12.0)


class ScsynthOutput:
    """Sends notes to scsynth as synth nodes of ``synthdef`` at the head of ``group``."""

    lead = 0.0

    def __init__(self, host: str = "127.0.0.1", port: int = 57110, synthdef: str = "default",
                 group: int = 1, *, name: str = "scsynth") -> None:
        self.name = name
        self.synthdef = synthdef
        self.group = group
        self._udp = UdpSender(name, host, port)
        self._next_id = FIRST_NODE_ID
        self._live: dict[tuple[int, int], deque[int]] = {}
        self._lock = threading.Lock()  # send runs on the dispatch thread, close may not

    @property
    def errors(self) -> int:
        """Messages lost to send errors."""
        return self._udp.errors

    @property
    def live_nodes(self) -> list[int]:
        """Node ids started and not yet released, oldest first per note."""
        with self._lock:
            return [n for q in self._live.values() for n in q]

    def send(self, event: OutEvent) -> None:
        with self._lock:
            if isinstance(event, NoteOn):
                if event.velocity > 0:
                    self._note_on(event)
                else:
                    self._note_off(event.channel, event.pitch)
            elif isinstance(event, NoteOff):
                self._note_off(event.channel, event.pitch)
            elif isinstance(event, AllNotesOff):
                self._release_all()
            # ParamChanged (synth.master and the rest), beats and clock mean nothing to scsynth.

    def _alloc(self) -> int:
        node = self._next_id
        self._next_id = FIRST_NODE_ID if node >= _MAX_NODE_ID else node + 1
        return node

    def _note_on(self, ev: NoteOn) -> None:
        node = self._alloc()
        self._live.setdefault((ev.channel, ev.pitch), deque()).append(node)
        self._udp.send(encode(
            "/s_new", ("s", self.synthdef), ("i", node), ("i", 0), ("i", self.group),
            ("s", "freq"), ("f", midi_to_freq(ev.pitch)),
            ("s", "amp"), ("f", max(0.0, min(1.0, ev.velocity / 127.0))),
            ("s", "gate"), ("i", 1),
        ))

    def _note_off(self, channel: int, pitch: int) -> None:
        q = self._live.get((channel, pitch))
        if not q:
            return
        node = q.popleft()
        if not q:
            del self._live[(channel, pitch)]
        self._gate_off(node)

    def _gate_off(self, node: int) -> None:
        self._udp.send(encode("/n_set", ("i", node), ("s", "gate"), ("i", 0)))

    def _release_all(self) -> None:
        for q in self._live.values():
            for node in q:
                self._gate_off(node)
        self._live.clear()

    def close(self) -> None:
        """Release every sounding note, then close the socket."""
        with self._lock:
            self._release_all()
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
