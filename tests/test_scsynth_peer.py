"""scsynth as a real peer: livegen loads its SynthDef into a SuperCollider server running
on JACK, plays notes there, and every node starts, sounds and ends.

The server is the Debian ``scsynth`` on the dummy-driver JACK server of ``jack_server``,
started with ``-D 0`` (no SynthDefs from disk), so the only way the ``livegen`` SynthDef
gets there is livegen's own ``prepare_server``. Node life is watched as a second client
registered with ``/notify 1`` (``/n_go``, ``/n_end``); sound is recorded from scsynth's
JACK output ports by ``jack_rec``, a program that knows nothing of SuperCollider.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from pythonosc.osc_message import OscMessage

from livegen.events import AllNotesOff, NoteOff, NoteOn
from livegen.outputs.osc_out import encode
from livegen.outputs.supercollider import (
    FIRST_NODE_ID,
    ScsynthOutput,
    ScsynthSetupError,
    prepare_server,
    synthdef_file_header,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "supercollider"
SCSYNDEF = EXAMPLE / "livegen.scsyndef"
HOST = "127.0.0.1"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class ServerWatch:
    """A client registered for the server's notifications; every message kept with its arrival time."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.connect((HOST, port))
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str, list]] = []
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            t = time.monotonic()
            msg = OscMessage(data)
            with self._cond:
                self.messages.append((t, msg.address, list(msg.params)))
                self._cond.notify_all()

    def send(self, address: str, *args: tuple[str, object]) -> None:
        self.sock.send(encode(address, *args))

    def wait_for(self, match, timeout: float = 3.0, since: int = 0) -> tuple[float, str, list]:
        """The first message from index ``since`` on for which ``match(address, params)`` holds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for m in self.messages[since:]:
                    if match(m[1], m[2]):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching reply from scsynth in {timeout} s; got {self.messages[since:]!r}")
                self._cond.wait(left)

    def node_times(self, address: str) -> dict[int, float]:
        """Node id -> arrival time of its ``/n_go`` or ``/n_end``."""
        with self._cond:
            return {p[0]: t for t, a, p in self.messages if a == address}

    def tree(self, group: int) -> list:
        """The ``/g_queryTree`` reply of ``group`` (flag 0): [flag, group, count, (id, children|-1, def)...]."""
        n = len(self.messages)
        self.send("/g_queryTree", ("i", group), ("i", 0))
        return self.wait_for(lambda a, p: a == "/g_queryTree.reply" and p[1] == group, since=n)[2]

    def close(self) -> None:
        self._stop = True
        self._thread.join(1.0)
        self.sock.close()


class Scsynth:
    def __init__(self, port: int, client: str, proc: subprocess.Popen, log: Path) -> None:
        self.port, self.client, self.proc, self.log = port, client, proc, log

    def watch(self) -> ServerWatch:
        """A new client registered for notifications."""
        w = ServerWatch(self.port)
        w.send("/notify", ("i", 1))
        w.wait_for(lambda a, p: a == "/done" and p[:1] == ["/notify"])
        return w


@pytest.fixture
def scsynth(jack_server, tmp_path):
    """scsynth on the test JACK server, on a free UDP port, its outputs left unconnected."""
    if not shutil.which("scsynth"):
        pytest.skip("scsynth not installed (apt-get install supercollider-server); .ci/run installs it")
    port = free_udp_port()
    client = f"livegen_sc{port}"
    log = tmp_path / "scsynth.log"
    env = dict(os.environ, SC_JACK_DEFAULT_OUTPUTS="", SC_JACK_DEFAULT_INPUTS="")
    with open(log, "wb") as out:
        proc = subprocess.Popen(["scsynth", "-u", str(port), "-i", "0", "-o", "2", "-R", "0", "-D", "0", "-H", client],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.settimeout(0.2)
    deadline = time.monotonic() + 15
    try:
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"scsynth did not start on JACK: {log.read_text(errors='replace')[-800:]}")
            probe.sendto(encode("/status"), (HOST, port))
            try:
                if OscMessage(probe.recv(4096)).address == "/status.reply":
                    break
            except OSError:  # nothing there yet (timeout or ICMP refused)
                time.sleep(0.1)
    finally:
        probe.close()
    yield Scsynth(port, client, proc, log)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(encode("/quit"), (HOST, port))
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# ---------------------------------------------------------------------------------------
# the SynthDef file
# ---------------------------------------------------------------------------------------
def test_committed_synthdef_is_what_sclang_compiles_from_livegen_scd(tmp_path):
    """livegen.scsyndef is not edited by hand: build_synthdef.sh makes it from livegen.scd."""
    if not shutil.which("sclang"):
        pytest.skip("sclang not installed (apt-get install --no-install-recommends supercollider-language)")
    for name in ("livegen.scd", "write_synthdef.scd", "build_synthdef.sh"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    run = subprocess.run(["sh", str(tmp_path / "build_synthdef.sh")], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "livegen.scsyndef").read_bytes() == SCSYNDEF.read_bytes(), \
        "livegen.scsyndef is out of date: run sh examples/supercollider/build_synthdef.sh"


def test_synthdef_header_and_setup_errors_are_one_line(tmp_path):
    assert synthdef_file_header(SCSYNDEF.read_bytes()) == (1, "livegen")
    not_def = tmp_path / "notes.txt"
    not_def.write_text("hello")
    silent_port = free_udp_port()  # nothing listens there
    cases = [
        (dict(synthdef="livegen", synthdef_file=str(tmp_path / "missing.scsyndef")), "cannot read"),
        (dict(synthdef="livegen", synthdef_file=str(not_def)), "not a compiled SynthDef file"),
        (dict(synthdef="default", synthdef_file=str(SCSYNDEF)), "defines 'livegen', not the patch's synthdef 'default'"),
        (dict(synthdef="livegen", synthdef_file=str(SCSYNDEF)), f"{silent_port} did not answer /d_recv"),
    ]
    for kwargs, words in cases:
        with pytest.raises(ScsynthSetupError) as err:
            prepare_server(HOST, silent_port, timeout=0.3, **kwargs)
        assert words in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------------------------------
# with a real server
# ---------------------------------------------------------------------------------------
def test_livegen_loads_its_synthdef_and_every_node_starts_and_ends(scsynth):
    watch = scsynth.watch()
    try:
        assert watch.tree(0)[2] == 0  # a bare server: no group 1 yet
        done = prepare_server(HOST, scsynth.port, synthdef="livegen", synthdef_file=str(SCSYNDEF), group=1)
        assert any("loaded" in line for line in done) and any("created group 1" in line for line in done)
        assert prepare_server(HOST, scsynth.port, group=1) == []  # the group is there now

        out = ScsynthOutput(HOST, scsynth.port, "livegen", 1)
        chord = (57, 60, 64, 69)
        for i, pitch in enumerate(chord):
            out.send(NoteOn(0.0, pitch, 100, channel=i % 2))
        nodes = list(range(FIRST_NODE_ID, FIRST_NODE_ID + len(chord)))
        for node in nodes:  # /n_go: node, parent group, ..., is-group 0
            _, _, p = watch.wait_for(lambda a, p, node=node: a == "/n_go" and p[0] == node)
            assert p[1] == 1 and p[4] == 0
        tree = watch.tree(1)
        assert tree[2] == len(chord) and tree[5::3] == ["livegen"] * len(chord)

        out.send(NoteOff(0.0, 57, channel=0))  # one released: only its node ends
        watch.wait_for(lambda a, p: a == "/n_end" and p[0] == nodes[0])
        time.sleep(0.2)
        assert set(watch.node_times("/n_end")) == {nodes[0]}
        out.send(AllNotesOff(0.0))  # panic: the rest release and end
        for node in nodes[1:]:
            watch.wait_for(lambda a, p, node=node: a == "/n_end" and p[0] == node)
        assert watch.tree(1)[2] == 0 and out.live_nodes == []

        out.send(NoteOn(0.0, 72, 90))  # still playing after a panic; close releases it
        watch.wait_for(lambda a, p: a == "/n_go" and p[0] == nodes[-1] + 1)
        out.close()
        watch.wait_for(lambda a, p: a == "/n_end" and p[0] == nodes[-1] + 1)
        assert watch.tree(1)[2] == 0
        assert out.errors == 0
    finally:
        watch.close()


def test_a_note_off_in_the_same_server_period_as_its_note_on_still_frees_the_node(scsynth):
    """Microseconds apart, /s_new and /n_set gate 0 run in one control block: with a bare
    gate EnvGen never starts, so the node would never end (seen here before the SynthDef
    opened its envelope with gate + Impulse.kr(0))."""
    prepare_server(HOST, scsynth.port, synthdef="livegen", synthdef_file=str(SCSYNDEF), group=1)
    watch = scsynth.watch()
    out = ScsynthOutput(HOST, scsynth.port, "livegen", 1)
    try:
        for i in range(10):
            out.send(NoteOn(0.0, 60 + i, 100))
            out.send(NoteOff(0.0, 60 + i))
        for node in range(FIRST_NODE_ID, FIRST_NODE_ID + 10):
            watch.wait_for(lambda a, p, node=node: a == "/n_end" and p[0] == node)
        assert watch.tree(1)[2] == 0
    finally:
        out.close()
        watch.close()


def _jack_connected(port: str) -> bool:
    lines = subprocess.run(["jack_lsp", "-c", port], capture_output=True, text=True, timeout=5).stdout.splitlines()
    return len(lines) > 1


def test_notes_sound_on_scsynths_jack_outputs_and_are_silent_after(scsynth, tmp_path):
    """Recorded off scsynth's JACK ports by jack_rec: sound while the notes play, zeros after."""
    if not shutil.which("jack_rec"):
        pytest.skip("jack_rec not installed (it comes with jackd2: apt-get install jackd2)")
    prepare_server(HOST, scsynth.port, synthdef="livegen", synthdef_file=str(SCSYNDEF), group=1)
    watch = scsynth.watch()
    wav = tmp_path / "scsynth.wav"
    seconds = 4
    rec = subprocess.Popen(["jack_rec", "-f", str(wav), "-d", str(seconds),
                            f"{scsynth.client}:out_1", f"{scsynth.client}:out_2"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = ScsynthOutput(HOST, scsynth.port, "livegen", 1)
    try:
        deadline = time.monotonic() + 5
        while not _jack_connected(f"{scsynth.client}:out_2"):
            assert rec.poll() is None and time.monotonic() < deadline, "jack_rec did not connect"
            time.sleep(0.01)
        t_rec = time.monotonic()  # recording starts once its ports are connected
        time.sleep(0.5)
        t_on = time.monotonic()
        for pitch in (57, 60, 64):
            out.send(NoteOn(t_on, pitch, 100))
        time.sleep(1.0)
        t_off = time.monotonic()
        out.send(AllNotesOff(t_off))
        for node in range(FIRST_NODE_ID, FIRST_NODE_ID + 3):
            watch.wait_for(lambda a, p, node=node: a == "/n_end" and p[0] == node)
        t_end = time.monotonic()
        assert rec.wait(seconds + 5) == 0
    finally:
        if rec.poll() is None:
            rec.kill()
        out.close()
        watch.close()
    assert t_end - t_rec < seconds - 1.0, "the notes took too long to end to leave silence in the recording"
    with wave.open(str(wav), "rb") as w:
        sr, channels = w.getframerate(), w.getnchannels()
        audio = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, channels) / 32768.0
    assert sr == 48000 and channels == 2 and len(audio) == seconds * sr
    level = np.abs(audio).max(axis=1)
    sounding = np.flatnonzero(level > 1e-3)
    assert len(sounding), "scsynth made no sound"
    # Where the recording began is known only roughly (jack_lsp saw the connection after
    # it was made), so the sound is placed by its own onset and its length is what counts.
    first, last = sounding[0], sounding[-1]
    assert t_on - 0.05 < t_rec + first / sr < t_on + 0.3, (t_rec + first / sr - t_on)
    expected = t_end - t_on  # held, then released until scsynth freed the nodes
    assert abs((last - first) / sr - expected) < 0.1, ((last - first) / sr, expected)
    held = audio[first + int(0.1 * sr):first + int((t_off - t_on - 0.1) * sr)]
    rms = float(np.sqrt(np.mean(held ** 2)))
    assert rms > 0.01, f"held chord RMS {rms:.5f}"
    assert np.abs(held[:, 0] - held[:, 1]).max() < 1e-3  # pan 0: the same on both sides
    assert len(audio) - last > sr, "the recording ended before the silence after the notes"
    # Zeros before the attack and once scsynth has freed the nodes (the release's last
    # milliseconds are quieter than 1e-3, so the margins are taken from the notes' times).
    freed = first + int((t_end - t_on + 0.05) * sr)
    assert level[:first - int(0.02 * sr)].max() < 1e-4 and level[freed:].max() < 1e-4


PATCH = """
[clock]
bpm = 150
[audio]
enabled = false
[[generators]]
name = "arp"
kind = "arpeggiator"
[generators.params]
density = 1.0
rest = 0.0
gate = 0.5
[midi]
inputs = []
virtual_output = false
[osc]
enabled = false
[supercollider]
enabled = true
port = {port}
synthdef = "livegen"
synthdef_file = "{synthdef_file}"
group = 1
[visuals]
enabled = false
"""


def test_livegen_play_readies_a_bare_scsynth_and_plays_on_it(scsynth, tmp_path):
    """The patch's [supercollider] synthdef_file through the live rig: no sclang anywhere."""
    from livegen.patch.loader import load_patch
    from livegen.play import LiveRig, RigOptions

    patch_file = tmp_path / "sc.toml"
    patch_file.write_text(PATCH.format(port=scsynth.port, synthdef_file=SCSYNDEF.as_posix()))
    watch = scsynth.watch()

    async def main():
        rig = LiveRig(load_patch(patch_file), RigOptions(window=False, audio=False, seed=5, watch_patch=False))
        await rig.start()
        try:
            assert rig.missing == []
            watch.wait_for(lambda a, p: a == "/n_go" and p[0] == 1 and p[4] == 1)  # group 1 made
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: watch.wait_for(lambda a, p: a == "/n_go" and p[0] >= FIRST_NODE_ID + 7, timeout=10))
        finally:
            await rig.close()

    try:
        asyncio.run(main())
        started = {n for n in watch.node_times("/n_go") if n >= FIRST_NODE_ID}
        assert len(started) >= 8
        deadline = time.monotonic() + 3
        while set(watch.node_times("/n_end")) < started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started <= set(watch.node_times("/n_end")), "nodes still sounding after livegen stopped"
        assert watch.tree(1)[2] == 0
    finally:
        watch.close()
