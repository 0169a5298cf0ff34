"""``livegen bench fuzz``: junk thrown at a real ``livegen play``; the show must go on.

A stage network carries whatever a flaky phone, a runaway Max patch or a port scanner
sends, and a MIDI cable whatever a dying controller spits out. This benchmark starts
``livegen play`` as a subprocess (a patch with a generator playing, a virtual MIDI output
and a MIDI input listening for our fuzz controller) and sends it:

* OSC over UDP loopback, every datagram from one category: valid messages to real
  addresses, wrong arguments, non-finite and huge numbers, truncated, bad type tags,
  byte-mangled, huge blobs, deep and self-similar bundles, lying bundle lengths, future,
  far-future and past timetags, non-UTF-8 addresses and strings, very long strings, other
  instances' addresses, random bytes. The sender waits for a ``/livegen/ping`` round
  trip every few dozen datagrams so the kernel buffer never drops them unseen.
* MIDI over a JACK virtual port (when JACK runs): notes, CCs, pitch bend, program and
  pressure, sysex (whole, unterminated, stray ends), clock and realtime, undefined status
  bytes, running status, truncated messages, random bytes, random mido messages.

It checks the properties of a show that never stops: the process stays up and exits 0
on ``/livegen/quit``, answers ``/livegen/ping`` at the end, writes no traceback, keeps its
memory bounded (future bundles capped and counted, read from ``/livegen/stats``), reaches
the end of the MIDI junk still hearing its controller, and leaves no note sounding on its
MIDI output (every note-on heard by a listener process ended by its note-off or an
all-notes-off). The figures: datagrams per category, the server's counters, RSS
start/end/max, datagrams per second, note-ons and notes left sounding, log lines written.
``run`` is what the tests call with a few thousand datagrams; ``main`` is the command.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livegen.bench.procs import descendants, rss_mb

HOST = "127.0.0.1"
INSTANCE = "fuzz"
CONTROLLER = "fuzz ctl"      # the fuzz controller's JACK MIDI port (never named "livegen": those are skipped)
SENTINEL_NOTE = 127          # on channel 16 (0x9F): the patch's "scene:sentinel" trigger, never sent as junk
MAX_PENDING = 1024           # the OSC server's default cap on messages in future bundles
MAX_AHEAD = 60.0             # and how far ahead (seconds) a bundle may be
NTP_DELTA = 2208988800       # seconds from 1900 (NTP) to 1970 (Unix)
BATCH_DATAGRAMS = 48         # datagrams sent between two ping round trips
BATCH_BYTES = 96 * 1024      # and their most bytes: well inside the server's receive buffer
MIDI_INTERVAL = 0.0005       # seconds between MIDI events (2000 a second)
RESTORE_EVERY = 1000         # datagrams between two returns to the patch's tempo and arpeggio

FUZZ_PATCH = """
[patch]
name = "{instance}"
description = "livegen bench fuzz: a generator always playing, MIDI out, MIDI and OSC in."
[clock]
bpm = 140
[key]
tonic = "D"
scale = "dorian"
[audio]
enabled = {audio}
device = "{device}"
sample_rate = 48000
blocksize = 256
[[generators]]
name = "arp"
kind = "arpeggiator"
voice = "lead"
seed = 1
[generators.params]
density = 1.0
rest = 0.0
gate = 0.6
[midi]
inputs = [{inputs}]
virtual_output = {virtual_output}
client_name = "{client}"
[[midi.map]]
param = "arp.gate"
cc = 70
[[midi.map]]
param = "synth.lead.cutoff"
cc = 1
cc14 = true
curve = "exp"
[[midi.map]]
param = "tempo"
pitchbend = true
min = 60.0
max = 200.0
[[midi.triggers]]
action = "mutate"
note = 36
[[midi.triggers]]
action = "panic"
note = 40
[[midi.triggers]]
action = "tap"
cc = 64
[[midi.triggers]]
action = "scene:sentinel"
note = {sentinel}
channel = 16
[osc]
host = "127.0.0.1"
port = {port}
[[osc.map]]
address = "/fuzz/gate"
param = "arp.gate"
[[osc.map]]
address = "/fuzz/cutoff"
param = "synth.lead.cutoff"
min = 200.0
max = 8000.0
curve = "exp"
[[osc.map]]
address = "/fuzz/tempo"
param = "tempo"
raw = true
[[osc.triggers]]
address = "/fuzz/mutate"
action = "mutate"
[scenes.verse]
"arp.gate" = 0.4
[scenes.drop]
bpm = 150
"arp.gate" = 0.8
[scenes.sentinel]
"arp.gate" = 0.6
[visuals]
enabled = false
"""


# -- OSC encoding, including what no encoder would write ---------------------------------------
def _ostr(s: str | bytes) -> bytes:
    """An OSC string: the bytes, NUL-terminated and padded to 4 (no UTF-8 check)."""
    b = s.encode("utf-8", "surrogatepass") if isinstance(s, str) else s
    return b + b"\x00" * (4 - len(b) % 4)


def _blob(b: bytes) -> bytes:
    return struct.pack(">i", len(b)) + b + b"\x00" * (-len(b) % 4)


_FIXED = {"i": ">i", "c": ">i", "h": ">q", "f": ">f", "d": ">d", "t": ">Q", "r": ">I"}


def _arg(tag: str, value: Any) -> bytes:
    if tag in _FIXED:
        return struct.pack(_FIXED[tag], value)
    if tag in "sS":
        return _ostr(value)
    if tag == "b":
        return _blob(value)
    if tag == "m":
        return bytes(value)[:4].ljust(4, b"\x00")
    return b""  # T F N I [ ]: no data


def osc_message(address: str | bytes, *args: tuple[str, Any]) -> bytes:
    """An OSC message from ``(tag, value)`` pairs, encoded by hand so anything can be sent."""
    return _ostr(address) + _ostr("," + "".join(t for t, _ in args)) + b"".join(_arg(t, v) for t, v in args)


def osc_bundle(timetag: int, *elements: bytes) -> bytes:
    """An OSC bundle of already-encoded elements; ``timetag`` is the raw 64-bit NTP value."""
    return b"#bundle\x00" + struct.pack(">Q", timetag) + b"".join(struct.pack(">i", len(e)) + e for e in elements)


def ntp(unix_seconds: float) -> int:
    """The 64-bit NTP timetag of a ``time.time()`` moment (wrapped, as NTP does in 2036)."""
    secs = unix_seconds + NTP_DELTA
    whole = int(secs)
    return ((whole << 32) | int((secs - whole) * (1 << 32))) & 0xFFFFFFFFFFFFFFFF


IMMEDIATELY = 1
_NAN32 = struct.unpack(">f", b"\x7f\xc0\x00\x00")[0]


# -- the OSC junk ---------------------------------------------------------------------------------
OSC_WEIGHTS: dict[str, int] = {
    "valid": 14, "wrong_args": 8, "nonfinite": 6, "truncated": 7, "bad_tags": 7, "mangled": 7,
    "huge_blob": 2, "deep_bundle": 4, "recursive_bundle": 4, "lying_bundle": 3, "future_bundle": 5,
    "far_future_bundle": 3, "past_bundle": 4, "non_utf8": 5, "long_string": 3, "instance": 3,
    "random_bytes": 8,
}

# Actions and scenes a fuzzer may name: not "quit" (that ends the run), not "sentinel"
# (the MIDI check's scene); the rest, start and stop included, are fair game.
ACTIONS = ("mutate", "answer", "tap", "start", "stop", "panic", "continue", "scene:verse", "scene:drop",
           "scene:nowhere", "learn:arp.gate", "learn:nope", "bogus", "")
SCENES = ("verse", "drop", "chorus", "", "Verse ")


class OscJunk:
    """Datagrams for a livegen OSC server, each drawn from one category (``OSC_WEIGHTS``).

    ``params`` are the parameter names livegen has (from ``/livegen/dump``). Nothing drawn
    asks livegen to quit, so a run ends only when the bench says so.
    """

    def __init__(self, rng: random.Random, params: list[str] | None = None, instance: str = INSTANCE) -> None:
        self.rng = rng
        self.params = list(params or ["tempo", "arp.gate", "arp.density", "synth.lead.cutoff", "synth.master"])
        self.instance = instance
        self._cats = list(OSC_WEIGHTS)
        self._weights = list(OSC_WEIGHTS.values())

    def next(self) -> tuple[str, bytes]:
        """One datagram and its category."""
        cat = self.rng.choices(self._cats, self._weights)[0]
        return cat, self.make(cat)

    def make(self, category: str) -> bytes:
        """One datagram of ``category``; it always fits a UDP datagram."""
        data = getattr(self, f"_{category}")()
        return data[:65000]

    # numbers and strings
    def _number(self, tag: str) -> tuple[str, Any]:
        r = self.rng
        if tag == "f":
            return "f", r.choice([r.uniform(-2, 2), r.uniform(0, 1), r.uniform(-1e4, 1e4), 0.0, 3.0e38])
        if tag == "d":
            return "d", r.choice([r.uniform(-1e6, 1e6), 1e308, -1e308, 5e-324])
        if tag == "h":
            return "h", r.choice([r.randint(-2**63, 2**63 - 1), 2**63 - 1, -2**63, r.randint(0, 200)])
        return "i", r.choice([r.randint(-2**31, 2**31 - 1), r.randint(0, 127), r.randint(-5, 300)])

    def _any_number(self) -> tuple[str, Any]:
        return self._number(self.rng.choice("ffffiihd"))

    def _word(self, n: int | None = None) -> str:
        r = self.rng
        n = r.randint(0, 12) if n is None else n
        return "".join(r.choice("abcdefghijklmnopqrstuvwxyz._-/0123456789 éß🎹") for _ in range(n))

    def _param(self) -> str:
        return self.rng.choice(self.params) if self.rng.random() < 0.85 else self._word().replace("/", "")

    # categories
    def _valid_parts(self) -> tuple[str, list[tuple[str, Any]]]:
        """A message to a real address with arguments of the right kinds (values anything)."""
        r = self.rng
        p = "/livegen"
        k = r.randrange(20)
        if k < 5:
            return f"{p}/param/{self._param()}", [self._any_number()]
        if k < 7:
            return f"{p}/param/{self._param()}/unit", [self._any_number()]
        if k == 7:
            return f"{p}/tempo", [self._any_number()]
        if k == 8:
            return f"{p}/note", [self._number(r.choice("iif")), self._number(r.choice("iif"))]
        if k == 9:
            return f"{p}/scene", [("s", r.choice(SCENES))]
        if k == 10:
            return f"{p}/trigger", [(r.choice("sS"), r.choice(ACTIONS))]
        if k == 11:
            return r.choice([f"{p}/panic", f"{p}/screenshot", f"{p}/ping", f"{p}/stats"]), []
        if k == 12:
            return f"{p}/record", [self._number(r.choice("if"))]
        if k == 13:
            return f"{p}/get", [("s", self._param())]
        if k == 14:
            return r.choice([f"{p}/dump", f"{p}/learn/save", f"{p}/ping"]) if r.random() < 0.2 else f"{p}/ping", []
        if k == 15:
            return f"{p}/learn", [("s", self._param())]
        if k in (16, 17):
            return r.choice(["/fuzz/gate", "/fuzz/cutoff", "/fuzz/tempo"]), [self._any_number()]
        if k == 18:
            return "/fuzz/mutate", [self._number("i")] if r.random() < 0.7 else []
        return f"{p}/{self._word()}", [self._any_number()]

    def _valid(self) -> bytes:
        address, args = self._valid_parts()
        return osc_message(address, *args)

    def _random_args(self) -> list[tuple[str, Any]]:
        r = self.rng
        out: list[tuple[str, Any]] = []
        for _ in range(r.randint(0, 6)):
            t = r.choice("ifdhsSbTFNIcmrt")
            if t in "ifdh":
                out.append(self._number(t))
            elif t in "sS":
                out.append((t, self._word()))
            elif t == "b":
                out.append((t, r.randbytes(r.randint(0, 40))))
            elif t == "c":
                out.append((t, r.choice([65, 0x10FFFF, 0x110000, -1, 0xD800])))
            elif t == "m":
                out.append((t, r.randbytes(4)))
            elif t in "rt":
                out.append((t, r.getrandbits(32 if t == "r" else 64)))
            else:
                out.append((t, None))
        return out

    def _wrong_args(self) -> bytes:
        address, _ = self._valid_parts()
        return osc_message(address, *self._random_args())

    def _nonfinite(self) -> bytes:
        r = self.rng
        address, _ = self._valid_parts()
        if r.random() < 0.6:
            address = r.choice([f"/livegen/param/{self._param()}", f"/livegen/param/{self._param()}/unit",
                                "/livegen/tempo", "/fuzz/gate", "/fuzz/tempo", "/livegen/note"])
        specials = [("f", _NAN32), ("f", float("inf")), ("f", float("-inf")), ("d", float("nan")),
                    ("d", float("inf")), ("d", 1e308), ("d", -1e308), ("h", 2**63 - 1), ("h", -2**63),
                    ("i", 2**31 - 1), ("i", -2**31), ("f", 3.4028234e38), ("f", -0.0), ("d", 5e-324)]
        return osc_message(address, *[r.choice(specials) for _ in range(r.choice([1, 1, 1, 2, 3]))])

    def _truncated(self) -> bytes:
        r = self.rng
        base = self._valid() if r.random() < 0.6 else osc_bundle(IMMEDIATELY, self._valid(), self._valid())
        return base[:r.randrange(0, len(base))]

    def _bad_tags(self) -> bytes:
        r = self.rng
        address, args = self._valid_parts()
        payload = b"".join(_arg(t, v) for t, v in args)
        k = r.randrange(6)
        if k == 0:  # unsupported tags
            tags = "," + "".join(r.choice("xyzQ?!*0 \x7f") for _ in range(r.randint(1, 4)))
        elif k == 1:  # no comma
            tags = "".join(t for t, _ in args) or "f"
        elif k == 2:  # unbalanced arrays
            tags = "," + r.choice(["[", "]", "[[f]", "f]", "[f", "]["]) + "".join(t for t, _ in args)
        elif k == 3:  # more tags than data
            tags = "," + "".join(t for t, _ in args) + "".join(r.choice("ifdhsbtmrc") for _ in range(r.randint(1, 5)))
        elif k == 4:  # an unterminated tag string running into the data
            return _ostr(address) + ("," + "f" * 8).encode() + payload
        else:  # a tag string that is not UTF-8
            return _ostr(address) + _ostr(b",\xff\xfe" + bytes(r.randrange(256) for _ in range(2))) + payload
        return _ostr(address) + _ostr(tags) + payload

    def _mangled(self) -> bytes:
        r = self.rng
        data = bytearray(self._valid() if r.random() < 0.7 else osc_bundle(IMMEDIATELY, self._valid()))
        for _ in range(r.randint(1, 4)):
            k = r.randrange(3)
            if k == 0 and data:
                data[r.randrange(len(data))] = r.randrange(256)
            elif k == 1:
                pos = r.randrange(len(data) + 1)
                data[pos:pos] = r.randbytes(r.randint(1, 8))
            elif data:
                pos = r.randrange(len(data))
                del data[pos:pos + r.randint(1, 8)]
        return bytes(data)

    def _huge_blob(self) -> bytes:
        r = self.rng
        size = r.choice([r.randint(1000, 60000), 60000, r.randint(30000, 60000)])
        blob = r.randbytes(size)
        address = r.choice(["/livegen/param/arp.gate", "/livegen/scene", "/fuzz/gate", "/livegen/note",
                            f"/livegen/{self._word()}"])
        if r.random() < 0.3:  # a blob whose length says more than the datagram holds
            return _ostr(address) + _ostr(",b") + struct.pack(">i", size * 4) + blob
        return osc_message(address, ("b", blob), *self._random_args()[:2])

    def _deep_bundle(self) -> bytes:
        r = self.rng
        depth = r.choice([r.randint(2, 8), r.randint(9, 40), r.randint(100, 3000)])
        inner = self._valid()
        for _ in range(depth):
            inner = osc_bundle(IMMEDIATELY, inner)
        return inner

    def _recursive_bundle(self) -> bytes:
        """Self-similar bundles: each level holds copies of the level below (a "bundle bomb")."""
        r = self.rng
        inner = osc_message("/livegen/param/arp.gate", ("f", r.random()))
        width = r.choice([2, 2, 3, 4])
        limit = r.choice([4000, 4000, 16000, 64000])  # up to ~2500 messages in one datagram
        for _ in range(r.randint(2, 12)):
            nxt = osc_bundle(IMMEDIATELY, *[inner] * width)
            if len(nxt) > limit:
                break
            inner = nxt
        return inner

    def _lying_bundle(self) -> bytes:
        """Bundles whose element sizes lie: the whole datagram, past its end, negative, zero."""
        r = self.rng
        elem = self._valid()
        head = b"#bundle\x00" + struct.pack(">Q", IMMEDIATELY)
        k = r.randrange(5)
        if k == 0:  # an element claiming to be the whole bundle: itself
            total = len(head) + 4 + len(elem)
            return head + struct.pack(">i", total) + elem
        if k == 1:
            return head + struct.pack(">i", r.choice([-1, -2**31, 0])) + elem
        if k == 2:
            return head + struct.pack(">i", 2**31 - 1) + elem
        if k == 3:  # the bundle itself as its own element, header and all
            return head + struct.pack(">i", len(head)) + head
        return head + struct.pack(">i", len(elem)) + elem + r.randbytes(r.randint(1, 3))

    def _future_bundle(self) -> bytes:
        r = self.rng
        ahead = r.choice([r.uniform(0.05, 2.0), r.uniform(2.0, MAX_AHEAD - 1), r.uniform(MAX_AHEAD + 1, 600)])
        msgs = [self._valid() for _ in range(r.randint(1, 4))]
        if r.random() < 0.2:  # a future bundle inside an immediate one
            return osc_bundle(IMMEDIATELY, osc_bundle(ntp(time.time() + ahead), *msgs))
        return osc_bundle(ntp(time.time() + ahead), *msgs)

    def _far_future_bundle(self) -> bytes:
        r = self.rng
        tt = r.choice([0xFFFFFFFFFFFFFFFF, ntp(time.time() + 86400 * 365 * 9), 0xFFFFFFFF00000000,
                       ntp(time.time() + r.uniform(3600, 1e8))])
        return osc_bundle(tt, *[self._valid() for _ in range(r.randint(1, 3))])

    def _past_bundle(self) -> bytes:
        r = self.rng
        tt = r.choice([0, 2, 1 << 32, ntp(time.time() - r.uniform(0.001, 5)), ntp(time.time() - 1e9), IMMEDIATELY])
        inner = [self._valid() for _ in range(r.randint(1, 3))]
        if r.random() < 0.3:  # a past bundle inside a future one: it waits for its parent
            return osc_bundle(ntp(time.time() + r.uniform(0.1, 3)), osc_bundle(tt, *inner))
        return osc_bundle(tt, *inner)

    def _non_utf8(self) -> bytes:
        r = self.rng
        junk = bytes(r.choice([0xFF, 0xFE, 0xC3, 0x80, 0xED, 0xA0, 0xC0]) for _ in range(r.randint(1, 6)))
        k = r.randrange(3)
        if k == 0:
            return osc_message(b"/livegen/" + junk, self._any_number())
        if k == 1:
            return osc_message(b"/livegen/param/" + junk + b"/unit", self._any_number())
        return osc_message(r.choice(["/livegen/scene", "/livegen/trigger", "/livegen/get", "/livegen/learn"]),
                           ("s", b"x" + junk))

    def _long_string(self) -> bytes:
        r = self.rng
        n = r.choice([r.randint(300, 3000), r.randint(3000, 60000)])
        text = "".join(r.choice("abcdefghij") for _ in range(64)) * (n // 64 + 1)
        text = text[:n] + str(r.getrandbits(32))  # unique: a new name every time
        k = r.randrange(6)
        if k == 0:
            return osc_message(f"/livegen/param/{text}", ("f", 0.5))
        if k == 1:
            return osc_message(f"/livegen/{text}", ("f", 0.5))
        address = ["/livegen/scene", "/livegen/trigger", "/livegen/get", "/livegen/learn", "/livegen/trigger"][k - 1]
        if address == "/livegen/trigger" and r.random() < 0.5:
            text = r.choice(["scene:", "learn:"]) + text
        return osc_message(address, ("s", text))

    def _instance(self) -> bytes:
        r = self.rng
        address, args = self._valid_parts()
        if not address.startswith("/livegen/"):
            address = "/livegen/tempo"
            args = [self._any_number()]
        name = r.choice([self.instance, self.instance, self._word(r.randint(1, 8)).replace("/", ""),
                         f"other{r.randrange(200)}"])
        return osc_message(f"/livegen/{name}/{address[len('/livegen/'):]}", *args)

    def _random_bytes(self) -> bytes:
        r = self.rng
        n = r.choice([0, 1, r.randint(2, 64), r.randint(64, 1500), r.randint(1500, 65000)])
        head = r.choice([b"", b"", b"/", b"/livegen/", b"#bundle\x00", b"#bundle"])
        return head + r.randbytes(n)


# -- the MIDI junk ---------------------------------------------------------------------------------
MIDI_WEIGHTS: dict[str, int] = {
    "note": 12, "cc": 10, "pitchbend": 4, "program": 2, "pressure": 3, "sysex": 4, "realtime": 6,
    "junk_status": 4, "running_status": 5, "truncated": 5, "random_bytes": 6, "mido_random": 8,
}


class MidiJunk:
    """MIDI events (lists of bytes, one JACK MIDI event each), one category at a time.

    python-rtmidi sends 1..3 bytes, or more when the first is 0xF0, so longer junk goes as
    a sysex-headed stream or as a run of short events. The sentinel note (channel 16,
    note 127) is never produced.
    """

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._cats = list(MIDI_WEIGHTS)
        self._weights = list(MIDI_WEIGHTS.values())

    def next(self) -> tuple[str, list[list[int]]]:
        cat = self.rng.choices(self._cats, self._weights)[0]
        events = [e for e in getattr(self, f"_{cat}")() if e and not _is_sentinel(e)]
        return cat, events

    def _ch(self) -> int:
        return self.rng.randrange(16)

    def _d(self) -> int:
        return self.rng.randrange(128)

    def _note(self) -> list[list[int]]:
        r = self.rng
        status = r.choice([0x90, 0x90, 0x80])
        return [[status | self._ch(), self._d(), r.choice([0, self._d(), 127, 1])]]

    def _cc(self) -> list[list[int]]:
        r = self.rng
        control = r.choice([self._d(), 1, 33, 70, 64, 120, 121, 123, 0, 32])
        return [[0xB0 | self._ch(), control, self._d()]]

    def _pitchbend(self) -> list[list[int]]:
        return [[0xE0 | self._ch(), self._d(), self._d()]]

    def _program(self) -> list[list[int]]:
        return [[0xC0 | self._ch(), self.rng.choice([0, 1, 2, self._d()])]]

    def _pressure(self) -> list[list[int]]:
        if self.rng.random() < 0.5:
            return [[0xD0 | self._ch(), self._d()]]
        return [[0xA0 | self._ch(), self._d(), self._d()]]

    def _sysex(self) -> list[list[int]]:
        r = self.rng
        body = [self._d() for _ in range(r.choice([0, 1, 5, r.randint(6, 200), r.randint(200, 1000)]))]
        k = r.randrange(5)
        if k <= 1:
            return [[0xF0, *body, 0xF7]]
        if k == 2:  # unterminated, then the end comes in a later event
            return [[0xF0, *body], [self._d(), 0xF7]]
        if k == 3:  # a stray end of sysex
            return [[0xF7]]
        return [[0xF0, *body, r.choice([0x90, 0xF8, 0xFF]), *body[:3], 0xF7]]  # status bytes inside

    def _realtime(self) -> list[list[int]]:
        return [[self.rng.choice([0xF8, 0xF8, 0xF8, 0xFA, 0xFB, 0xFC, 0xFE, 0xFF])]]

    def _junk_status(self) -> list[list[int]]:
        r = self.rng
        s = r.choice([0xF4, 0xF5, 0xF9, 0xFD, 0xF1, 0xF2, 0xF3, 0xF6])
        return [[s, *[self._d() for _ in range(r.randint(0, 2))]]]

    def _running_status(self) -> list[list[int]]:
        """Data bytes with no status byte: running status, split over events as a stream."""
        r = self.rng
        out = [[0x90 | self._ch(), self._d(), self._d()]] if r.random() < 0.5 else []
        for _ in range(r.randint(1, 4)):
            out.append([self._d() for _ in range(r.choice([1, 2, 2, 3]))])
        return out

    def _truncated(self) -> list[list[int]]:
        r = self.rng
        s = r.choice([0x80, 0x90, 0xA0, 0xB0, 0xE0, 0xF2]) | (self._ch() if r.random() < 0.9 else 0)
        return [[s & 0xFF, *[self._d() for _ in range(r.randint(0, 1))]]]

    def _random_bytes(self) -> list[list[int]]:
        r = self.rng
        stream = [r.randrange(256) for _ in range(r.randint(1, 40))]
        if r.random() < 0.4:  # as one sysex-headed event, the only way rtmidi sends > 3 bytes
            return [[0xF0, *stream]]
        return [stream[i:i + 3] for i in range(0, len(stream), 3)]

    def _mido_random(self) -> list[list[int]]:
        import mido

        r = self.rng
        kind = r.choice(["note_on", "note_off", "control_change", "pitchwheel", "program_change", "aftertouch",
                         "polytouch", "songpos", "song_select", "quarter_frame", "sysex", "clock", "start",
                         "stop", "continue", "reset", "active_sensing", "tune_request"])
        fields: dict[str, Any] = {}
        if kind in ("note_on", "note_off", "polytouch"):
            fields = {"channel": self._ch(), "note": self._d(), ("value" if kind == "polytouch" else "velocity"): self._d()}
        elif kind == "control_change":
            fields = {"channel": self._ch(), "control": self._d(), "value": self._d()}
        elif kind == "pitchwheel":
            fields = {"channel": self._ch(), "pitch": r.randint(-8192, 8191)}
        elif kind == "program_change":
            fields = {"channel": self._ch(), "program": self._d()}
        elif kind == "aftertouch":
            fields = {"channel": self._ch(), "value": self._d()}
        elif kind == "songpos":
            fields = {"pos": r.randint(0, 16383)}
        elif kind == "song_select":
            fields = {"song": self._d()}
        elif kind == "quarter_frame":
            fields = {"frame_type": r.randrange(8), "frame_value": r.randrange(16)}
        elif kind == "sysex":
            fields = {"data": [self._d() for _ in range(r.randint(0, 64))]}
        return [mido.Message(kind, **fields).bytes()]


def _is_sentinel(event: list[int]) -> bool:
    return len(event) >= 2 and event[0] == 0x9F and event[1] == SENTINEL_NOTE


# -- the livegen under test ------------------------------------------------------------------------
def _jack_running() -> bool:
    if not shutil.which("jack_lsp"):
        return False
    try:
        return subprocess.run(["jack_lsp"], capture_output=True, timeout=5, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def ensure_jack() -> tuple[subprocess.Popen | None, str]:
    """A JACK server on the dummy driver when none runs and jackd is installed: real-time
    scheduling where the OS allows it (a JACK client that misses a period loses that period's
    MIDI, which a busy machine without it does now and then), else --no-realtime. Returns the
    server we started (to stop afterwards) or None, and what runs."""
    if _jack_running():
        return None, "already running"
    if not shutil.which("jackd"):
        return None, "none (jackd not installed)"
    for flag, mode in (("-R", "started, realtime"), ("--no-realtime", "started, not realtime")):
        proc = subprocess.Popen(["jackd", flag, "-d", "dummy", "-r", "48000", "-p", "256"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            if _jack_running():
                return proc, mode
            time.sleep(0.1)
        proc.kill()
        proc.wait()
    return None, "none (jackd did not start)"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _parse_reply(data: bytes) -> tuple[str, tuple[Any, ...]] | None:
    from livegen.control.osc_server import OscParseError, parse_message

    try:
        m = parse_message(data)
    except OscParseError:
        return None
    return m.address, m.args


class Control:
    """The bench's own OSC socket to livegen: pings, stats and quit (fuzz goes elsewhere)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.target = (HOST, port)
        self.ping_timeouts = 0
        self.sent = 0  # datagrams sent: the server counts them among those it received

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.target)
        self.sent += 1

    def request(self, address: str, reply: str, timeout: float = 2.0) -> tuple[Any, ...] | None:
        """Send ``address`` (no arguments) and wait for the ``reply`` address; None on timeout."""
        self.sock.setblocking(False)
        try:  # a late answer to an earlier request must not pass for this one's
            while True:
                self.sock.recv(65536)
        except (BlockingIOError, InterruptedError, ConnectionError):
            pass
        self.send(osc_message(address))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return None
            got = _parse_reply(data)
            if got is not None and got[0] == reply:
                return got[1]

    def ping(self, timeout: float = 2.0) -> bool:
        ok = self.request("/livegen/ping", "/livegen/pong", timeout) is not None
        if not ok:
            self.ping_timeouts += 1
        return ok

    def stats(self, timeout: float = 2.0) -> dict[str, int] | None:
        args = self.request("/livegen/stats", "/livegen/stats", timeout)
        if args is None:
            return None
        return {str(args[i]): int(args[i + 1]) for i in range(0, len(args) - 1, 2)}

    def dump(self, timeout: float = 1.0) -> dict[str, float]:
        """Every parameter and its value, from the ``/livegen/value`` replies to ``/livegen/dump``."""
        self.send(osc_message("/livegen/dump"))
        values: dict[str, float] = {}
        self.sock.settimeout(timeout)
        try:
            while True:
                got = _parse_reply(self.sock.recv(65536))
                if got is not None and got[0] == "/livegen/value" and len(got[1]) == 2:
                    values[str(got[1][0])] = float(got[1][1])
        except TimeoutError:
            pass
        return values

    def close(self) -> None:
        self.sock.close()


class MemoryWatch:
    """Samples the RSS of livegen's process (and of its children) every ``interval`` s."""

    def __init__(self, proc: subprocess.Popen, interval: float = 1.0) -> None:
        self.proc = proc
        self.interval = interval
        self.samples: list[tuple[float, float, float]] = []  # (t, main MiB, children MiB)
        self.died_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fuzz-rss", daemon=True)
        self._t0 = time.monotonic()

    def start(self) -> None:
        self._thread.start()

    def sample(self) -> None:
        main = rss_mb(self.proc.pid)
        if main is None or self.proc.poll() is not None:
            if self.died_at is None and self.proc.poll() is not None:
                self.died_at = time.monotonic() - self._t0
            return
        kids = sum(rss_mb(p) or 0.0 for p in descendants(self.proc.pid))
        self.samples.append((round(time.monotonic() - self._t0, 2), round(main, 1), round(kids, 1)))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)


class OutputListener:
    """Every message livegen sends on its virtual MIDI output, for the stuck-notes check.

    It listens from a process of its own: a JACK client that misses a period loses that
    period's MIDI, and on a busy machine with JACK not in real time, a client in the bench
    process (busy sending junk) missed note-offs that livegen had sent.
    """

    def __init__(self, work: Path) -> None:
        self.path = work / "midi-out.json"
        self.proc: subprocess.Popen | None = None

    def open(self, port: str, client_name: str, env: dict[str, str]) -> bool:
        """Start listening to ``port``; False if the listener could not connect."""
        self.path.unlink(missing_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-m", "livegen.bench.fuzz", "--listen", port, client_name,
                                      str(self.path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        line = self.proc.stdout.readline() if self.proc.stdout else b""
        return line.strip() == b"listening"

    def close(self) -> list[list[int]]:
        """Stop listening; every message heard (raw bytes)."""
        if self.proc is None:
            return []
        with contextlib.suppress(OSError):
            self.proc.stdin.close()  # type: ignore[union-attr]
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return []


def _listen(port: str, client_name: str, out: str) -> int:
    """The listener process: JACK MIDI from ``port`` until stdin closes, then JSON to ``out``."""
    import select

    import rtmidi

    rt = rtmidi.MidiIn(rtapi=rtmidi.API_UNIX_JACK, name=client_name, queue_size_limit=1 << 16)
    rt.ignore_types(sysex=False, timing=False, active_sense=False)
    ports = rt.get_ports()
    if port not in ports:
        print("no such port", flush=True)
        return 1
    rt.open_port(ports.index(port), "in")
    print("listening", flush=True)
    msgs: list[list[int]] = []
    while True:
        item = rt.get_message()
        if item:
            msgs.append(list(item[0]))
            continue
        if select.select([sys.stdin], [], [], 0.002)[0] and not sys.stdin.read(1):
            break
    while (item := rt.get_message()):
        msgs.append(list(item[0]))
    rt.close_port()
    rt.delete()
    Path(out).write_text(json.dumps(msgs))
    return 0


def notes_summary(msgs: list[list[int]]) -> dict[str, Any]:
    """Note-ons, note-offs and what is left sounding after raw MIDI ``msgs``: strictly (every
    note-on needs its own note-off, as MidiOutput keeps count) and for a synth that honours
    CC 123 (all notes off) and CC 120 (all sound off)."""
    held: Counter[tuple[int, int]] = Counter()
    soft: set[tuple[int, int]] = set()
    ons = offs = 0
    for m in msgs:
        if len(m) != 3:
            continue
        kind, key = m[0] & 0xF0, (m[0] & 0x0F, m[1])
        if kind == 0x90 and m[2] > 0:
            ons += 1
            held[key] += 1
            soft.add(key)
        elif kind in (0x80, 0x90):
            offs += 1
            if held[key] > 0:
                held[key] -= 1
            soft.discard(key)
        elif kind == 0xB0 and m[1] in (120, 123):
            soft = {k for k in soft if k[0] != key[0]}
    left = sorted(k for k, n in held.items() if n > 0)
    return {"messages": len(msgs), "note_ons": ons, "note_offs": offs,
            "sounding_after": sum(held.values()), "sounding_after_cc123": len(soft),
            "stuck": [list(k) for k in left[:20]]}


# -- the run ---------------------------------------------------------------------------------------
@dataclass
class FuzzOptions:
    datagrams: int = 100_000
    midi_messages: int = 20_000
    seed: int = 1
    jack: bool | None = None          # None: use JACK when a server runs
    startup_timeout: float = 90.0
    quit_timeout: float = 30.0
    keep_dir: Path | None = None      # write the patch, stderr and log here (else a temp dir)
    progress: Callable[[str], None] = field(default=lambda s: None)


def _send_osc(opts: FuzzOptions, port: int, control: Control, start: dict[str, float],
              alive: Callable[[], bool]) -> dict[str, Any]:
    """Send the OSC junk, pacing with ping round trips; counts per category. ``start`` holds
    the parameters' values before the junk; sending stops early if livegen is gone."""
    junk = OscJunk(random.Random(opts.seed), list(start))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    sock.setblocking(False)
    target = (HOST, port)
    sent: Counter[str] = Counter()
    sent_bytes = 0
    send_errors = 0
    replies: Counter[str] = Counter()
    control_before, timeouts_before = control.sent, control.ping_timeouts
    batch_n = batch_b = 0
    t0 = time.monotonic()
    for i in range(opts.datagrams):
        cat, data = junk.next()
        try:
            sock.sendto(data, target)
            sent[cat] += 1
            sent_bytes += len(data)
        except OSError:  # e.g. EMSGSIZE; counted, never expected
            send_errors += 1
        batch_n += 1
        batch_b += len(data)
        if batch_n >= BATCH_DATAGRAMS or batch_b >= BATCH_BYTES:
            _drain(sock, replies)
            for _ in range(3):  # a lost ping: ask again
                if control.ping(2.0):
                    break
            batch_n = batch_b = 0
            if not alive():
                break
        if i % RESTORE_EVERY == RESTORE_EVERY - 1:  # notes playing (and being cut) while junk arrives
            restore(control, start)
        if i % 10000 == 9999:
            opts.progress(f"OSC: {i + 1} datagrams sent")
    answered = control.ping(5.0)
    elapsed = time.monotonic() - t0
    time.sleep(0.2)
    _drain(sock, replies)
    sock.close()
    return {"sent": sum(sent.values()), "per_category": dict(sorted(sent.items())), "bytes": sent_bytes,
            "send_errors": send_errors, "pacing_pings": control.sent - control_before,
            "ping_timeouts": control.ping_timeouts - timeouts_before,
            "last_ping_answered": answered, "seconds": round(elapsed, 3),
            "datagrams_per_s": round(sum(sent.values()) / max(elapsed, 1e-9), 1),
            "replies_to_fuzz_socket": dict(sorted(replies.items()))}


def restore(control: Control, start: dict[str, float]) -> None:
    """Back to playing: the junk may have stopped the transport or silenced the generator."""
    for name, value in start.items():
        if name == "tempo" or name.startswith("arp."):
            control.send(osc_message(f"/livegen/param/{name}", ("f", value)))
    control.send(osc_message("/livegen/trigger", ("s", "start")))


def _drain(sock: socket.socket, replies: Counter[str]) -> None:
    while True:
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # ICMP errors surfacing on the socket
            continue
        got = _parse_reply(data)
        replies[got[0] if got else "unparsable"] += 1


def _send_midi(opts: FuzzOptions, out: Any, stop: threading.Event) -> dict[str, Any]:
    """Send the MIDI junk on the fuzz controller's port; counts per category."""
    junk = MidiJunk(random.Random(opts.seed + 1))
    sent: Counter[str] = Counter()
    events = refused = 0
    next_t = time.monotonic()
    for i in range(opts.midi_messages):
        if stop.is_set():
            break
        cat, evs = junk.next()
        for ev in evs:
            next_t += MIDI_INTERVAL
            delay = next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                out.send_message(ev)
                events += 1
            except (ValueError, TypeError, RuntimeError):
                refused += 1
        sent[cat] += 1
        if i % 5000 == 4999:
            opts.progress(f"MIDI: {i + 1} messages sent")
    return {"sent": sum(sent.values()), "per_category": dict(sorted(sent.items())), "events": events,
            "refused_by_rtmidi": refused}


def _sentinel(midi_out: Any, log_file: Path) -> dict[str, bool]:
    """Does livegen still hear the controller? Its sentinel pad recalls a scene, said in the log
    (junk program changes may have recalled it too: lines are counted). rtmidi's JACK input
    takes every event after an unterminated sysex as part of it until an 0xF7 comes, so when
    the first try is not heard, a lone 0xF7 goes first on the next (two: an event can be lost
    when JACK does not run in real time)."""
    out: dict[str, bool] = {}
    tries = (("controller_heard_after", []), ("controller_heard_after_sysex_end", [[0xF7]]),
             ("controller_heard_after_sysex_end", [[0xF7]]))
    for key, prefix in tries:
        before = _read(log_file).count("scene sentinel")
        for event in [*prefix, [0x9F, SENTINEL_NOTE, 100], [0x8F, SENTINEL_NOTE, 0]]:
            midi_out.send_message(event)
        out[key] = _wait_for(lambda n=before: _read(log_file).count("scene sentinel") > n, 2)
        if out[key]:
            break
    return out


def _wait_for(pred: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


_SHAPE = re.compile(r"\d+(\.\d+)?")


def log_summary(text: str) -> dict[str, Any]:
    """Lines, warnings, errors and tracebacks in a livegen log file, and the commonest lines."""
    lines = text.splitlines()
    shapes: Counter[str] = Counter()
    levels: Counter[str] = Counter()
    for line in lines:
        parts = line.split(" ", 5)
        if len(parts) == 6 and parts[4] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            levels[parts[4]] += 1
            shapes[f"{parts[4]} " + _SHAPE.sub("N", parts[5][:60])] += 1
    return {"lines": len(lines), "bytes": len(text.encode("utf-8", "replace")), "levels": dict(levels),
            "tracebacks": text.count("Traceback (most recent call last)"),
            "longest_line": max((len(x) for x in lines), default=0),
            "commonest": [[s, n] for s, n in shapes.most_common(8)]}


def run(opts: FuzzOptions) -> dict[str, Any]:
    """Start ``livegen play``, fuzz it over OSC (and MIDI on JACK), quit it; the report."""
    jack = _jack_running() if opts.jack is None else opts.jack
    tmp = None
    if opts.keep_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="livegen-fuzz-")
        work = Path(tmp.name)
    else:
        work = opts.keep_dir
        work.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}x{random.Random().randrange(10**6)}"
    client = f"lgfuzz{tag}"          # livegen's JACK client (its outputs are ignored by its inputs)
    controller_client = f"fuzzctl{tag}"
    port = _free_port()
    env = dict(os.environ)
    # livegen runs in the temp folder (screenshots, recordings land there): it must still import
    package_root = str(Path(__file__).resolve().parent.parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    midi_out: Any = None
    listener = OutputListener(work)
    listening = False
    report: dict[str, Any] = {"seed": opts.seed, "jack": jack, "machine": f"{os.cpu_count()} cores, python {sys.version.split()[0]}"}
    if jack:
        import mido
        import rtmidi

        env["MIDO_BACKEND"] = "mido.backends.rtmidi/UNIX_JACK"  # every port on JACK, ours and livegen's
        mido.set_backend(env["MIDO_BACKEND"], load=True)
        if opts.midi_messages > 0:
            midi_out = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name=controller_client)
            midi_out.open_virtual_port(CONTROLLER)  # before livegen starts: connected at once
    patch = work / "fuzz.toml"
    # Without JACK no MIDI at all: probing for a MIDI system that is not there is not what is fuzzed.
    patch.write_text(FUZZ_PATCH.format(instance=INSTANCE, audio="true" if jack else "false",
                                       device="JACK" if jack else "", client=client, sentinel=SENTINEL_NOTE, port=port,
                                       inputs=f'"{controller_client}"' if jack else "",
                                       virtual_output="true" if jack else "false"), encoding="utf-8")
    log_file, stderr_file = work / "livegen.log", work / "stderr.txt"
    log_file.unlink(missing_ok=True)  # livegen appends to its log file
    cmd = [sys.executable, "-m", "livegen", "--log-file", str(log_file), "play", str(patch), "--no-window",
           "--osc-port", str(port), "--seed", "1", "--no-reload"] + ([] if jack else ["--no-audio"])
    report["command"] = " ".join(cmd[1:])
    control = Control(port)
    with open(stderr_file, "wb") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT, env=env,
                                cwd=work)
    watch = MemoryWatch(proc)
    try:
        t_start = time.monotonic()
        if not _wait_for(lambda: proc.poll() is not None or control.ping(0.5), opts.startup_timeout, 0.0) \
                or proc.poll() is not None:
            raise RuntimeError(f"livegen play did not start (exit code {proc.poll()}):\n{_read(stderr_file)[-2000:]}")
        report["startup_s"] = round(time.monotonic() - t_start, 2)
        params = control.dump()
        midi_wired = False
        if jack:
            from livegen.control import midi_ports

            out_name = f"{client}:livegen out"
            if _wait_for(lambda: out_name in midi_ports.input_names(), 10):
                listening = listener.open(out_name, f"fuzzlisten{tag}", env)
            if midi_out is not None:
                midi_wired = _wait_for(lambda: f"MIDI input '{controller_client}:{CONTROLLER}' connected"
                                       in _read(log_file), 10)
        time.sleep(1.0)  # the first bars
        watch.sample()
        watch.start()
        stats0 = control.stats(5.0)
        control_sent0 = control.sent
        report["params"] = len(params)

        stop_midi = threading.Event()
        midi_result: dict[str, Any] = {}
        midi_thread = None
        if midi_out is not None:
            def midi_job() -> None:
                midi_result.update(_send_midi(opts, midi_out, stop_midi))

            midi_thread = threading.Thread(target=midi_job, name="fuzz-midi", daemon=True)
            midi_thread.start()
        report["osc"] = _send_osc(opts, port, control, params, lambda: proc.poll() is None)
        if midi_thread is not None:
            if proc.poll() is not None:
                stop_midi.set()
            midi_thread.join()
        alive_after_fuzz = proc.poll() is None

        # After the junk: playing again, still hearing its controller, still answering.
        restore(control, params)
        if midi_out is not None:
            midi_result.update(_sentinel(midi_out, log_file))
        time.sleep(1.5)  # notes sounding when it is told to quit
        report["ping_after"] = control.ping(5.0)
        stats1 = control.stats(5.0)
        control_sent = control.sent - control_sent0
        watch.sample()
        watch.stop()

        control.send(osc_message("/livegen/quit"))
        try:
            rc = proc.wait(opts.quit_timeout)
        except subprocess.TimeoutExpired:
            rc = None
        time.sleep(0.5)  # the last note-offs through JACK
        report["alive_throughout"] = alive_after_fuzz and watch.died_at is None
        report["exit_code"] = rc
        report["stats_before"] = stats0
        report["stats_after"] = stats1
        if stats0 is not None and stats1 is not None:
            report["stats_delta"] = {k: v - stats0.get(k, 0) for k, v in stats1.items() if k != "pending"}
            # the server counts our own pings and requests too: all that was sent between the two stats
            report["osc"]["lost_in_kernel"] = (report["osc"]["sent"] + control_sent
                                               - report["stats_delta"].get("received", 0))
        if midi_out is not None:
            report["midi"] = dict(midi_result, wired=midi_wired)
        else:
            report["midi"] = {"skipped": "no JACK" if not jack else "--midi-messages 0"}
        heard = listener.close()
        report["midi_out"] = (notes_summary(heard) if listening else
                              {"skipped": "livegen's MIDI output did not appear" if jack else "no JACK"})
        report["files"] = str(work) if tmp is None else None
        return _summarise(report, watch.samples, _read(stderr_file), _read(log_file))
    finally:
        watch.stop()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        listener.close()
        if midi_out is not None:
            midi_out.close_port()
            midi_out.delete()
        control.close()
        if tmp is not None:
            tmp.cleanup()


def _summarise(report: dict[str, Any], samples: list[tuple[float, float, float]], stderr_text: str,
               log_text: str) -> dict[str, Any]:
    """Memory, what livegen wrote, and the properties, added to ``report``."""
    mains = [s[1] for s in samples]
    report["rss_mb"] = {"start": mains[0] if mains else None, "end": mains[-1] if mains else None,
                        "max": max(mains) if mains else None,
                        "children_max": max((s[2] for s in samples), default=None),
                        "samples": len(samples), "series": samples}
    report["stderr"] = {"lines": len(stderr_text.splitlines()),
                        "tracebacks": stderr_text.count("Traceback (most recent call last)"),
                        "tail": stderr_text.splitlines()[-5:]}
    report["log"] = log_summary(log_text)
    report["properties"] = properties(report)
    return report


def properties(r: dict[str, Any]) -> dict[str, bool | None]:
    """What must hold after any junk; None where it could not be checked here."""
    stats = r.get("stats_after") or {}
    rss = r["rss_mb"]
    midi_out = r.get("midi_out", {})
    midi = r.get("midi", {})
    return {
        "process_up_throughout": bool(r["alive_throughout"]),
        "exit_code_0_after_quit": r["exit_code"] == 0,
        "answers_ping_at_the_end": bool(r["ping_after"]),
        "no_traceback": r["stderr"]["tracebacks"] == 0 and r["log"]["tracebacks"] == 0,
        "no_handler_errors": stats.get("errors") == 0 if stats else None,
        "future_bundles_capped": (stats.get("pending", 0) <= MAX_PENDING) if stats else None,
        "rss_growth_under_100_mb": (rss["end"] - rss["start"] < 100.0) if rss["start"] is not None else None,
        # every note-on matched by its note-off or an all-notes-off (the strict count, note-off by
        # note-off, is a figure: JACK not in real time loses events now and then)
        "no_stuck_notes": (midi_out["sounding_after_cc123"] == 0) if "sounding_after" in midi_out else None,
        "controller_heard_after_midi_junk": (bool(midi.get("controller_heard_after")
                                                  or midi.get("controller_heard_after_sysex_end"))
                                             if "sent" in midi else None),
    }


def format_report(r: dict[str, Any]) -> str:
    o = r["osc"]
    jack = f"JACK {r.get('jack_server', 'running')}" if r["jack"] else "no JACK"
    lines = [f"livegen bench fuzz — seed {r['seed']}; {r['machine']}; {jack}",
             f"livegen: python {r['command']}",
             f"started in {r['startup_s']} s with {r['params']} parameters",
             (f"OSC: {o['sent']} datagrams ({o['bytes'] / 1e6:.1f} MB) in {o['seconds']} s = {o['datagrams_per_s']:.0f}/s, "
              f"{o['pacing_pings']} pacing pings ({o['ping_timeouts']} unanswered), "
              f"lost in the kernel {o.get('lost_in_kernel', '?')}"),
             "  per category: " + ", ".join(f"{k} {v}" for k, v in o["per_category"].items())]
    d = r.get("stats_delta")
    if d:
        lines.append("  server counted: " + ", ".join(f"{k} {v}" for k, v in d.items())
                     + f"; pending at the end {r['stats_after'].get('pending')}")
    else:
        lines.append("  server counters: no answer to /livegen/stats")
    if o["replies_to_fuzz_socket"]:
        lines.append("  replies to the fuzz socket: " + ", ".join(f"{k} {v}" for k, v in o["replies_to_fuzz_socket"].items()))
    m = r["midi"]
    if "sent" in m:
        lines.append(f"MIDI: {m['sent']} messages as {m['events']} JACK events ({m['refused_by_rtmidi']} refused by rtmidi), "
                     f"controller connected {'yes' if m['wired'] else 'NO'}, heard after the junk "
                     + ("yes" if m.get("controller_heard_after") else
                        "only after an 0xF7 ended the sysex rtmidi was still gathering"
                        if m.get("controller_heard_after_sysex_end") else "NO"))
        lines.append("  per category: " + ", ".join(f"{k} {v}" for k, v in m["per_category"].items()))
    else:
        lines.append(f"MIDI: skipped: {m['skipped']}")
    mo = r["midi_out"]
    if "note_ons" in mo:
        lines.append(f"MIDI out: {mo['note_ons']} note-ons, {mo['note_offs']} note-offs; sounding after quit "
                     f"for a synth honouring all-notes-off: {mo['sounding_after_cc123']}, "
                     f"note-ons without their own note-off: {mo['sounding_after']}")
    else:
        lines.append(f"MIDI out: skipped: {mo['skipped']}")
    rss = r["rss_mb"]
    lines.append(f"RSS of livegen's main process: start {rss['start']} MiB, end {rss['end']} MiB, max {rss['max']} MiB "
                 f"({rss['samples']} samples); its children at most {rss['children_max']} MiB")
    lg = r["log"]
    lines.append(f"log: {lg['lines']} lines ({lg['bytes'] / 1e6:.2f} MB, longest {lg['longest_line']} chars), "
                 f"levels {lg['levels']}, tracebacks {lg['tracebacks']}; stderr {r['stderr']['lines']} lines, "
                 f"tracebacks {r['stderr']['tracebacks']}")
    for shape, n in lg["commonest"][:5]:
        lines.append(f"  {n:7d}  {shape}")
    lines.append(f"exit code after /livegen/quit: {r['exit_code']}")
    props = r["properties"]
    lines.append("properties: " + ", ".join(f"{k} {'ok' if v else ('n/a' if v is None else 'FAILED')}"
                                            for k, v in props.items()))
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--datagrams", type=int, default=100_000, help="OSC datagrams to send")
    p.add_argument("--midi-messages", type=int, default=20_000, help="MIDI messages to send (JACK only)")
    p.add_argument("--seed", type=int, default=1, help="seed of the junk")
    p.add_argument("--keep", type=Path, help="keep the patch, livegen's log and stderr in this folder")
    p.add_argument("--json", type=Path, help="also write the figures as JSON here")


def main(args: Any) -> int:
    """Run the fuzz; exit 1 when a property failed."""
    jack_proc, jack_mode = ensure_jack()
    try:
        r = run(FuzzOptions(datagrams=args.datagrams, midi_messages=args.midi_messages, seed=args.seed,
                            keep_dir=getattr(args, "keep", None),
                            progress=lambda s: print(s, file=sys.stderr, flush=True)))
        r["jack_server"] = jack_mode
    finally:
        if jack_proc is not None:
            from livegen.control.midi_ports import close_listers

            close_listers()
            jack_proc.terminate()
            jack_proc.wait(5)
    print(format_report(r))
    if args.json:
        args.json.write_text(json.dumps(r, indent=1))
    return 0 if all(v is not False for v in r["properties"].values()) else 1


if __name__ == "__main__":  # the MIDI output listener's process (see OutputListener)
    if len(sys.argv) == 5 and sys.argv[1] == "--listen":
        sys.exit(_listen(*sys.argv[2:]))
    sys.exit("usage: python -m livegen.bench.fuzz --listen PORT CLIENT_NAME OUT.json (livegen bench fuzz runs it)")
