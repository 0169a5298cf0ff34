"""Several livegens in one show: each has a name; /livegen/<name>/... reaches one, /livegen/... all."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from livegen.control.osc_addresses import instance_name_problem, reserved_instance_names, split_instance
from livegen.control.osc_server import OscServer
from livegen.patch.loader import PatchError, load_patch
from livegen.play import instance_name

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def msg(address: str, *args: tuple[str, object]) -> bytes:
    b = OscMessageBuilder(address)
    for tag, value in args:
        b.add_arg(value, tag)
    return b.build().dgram


def test_split_instance_only_takes_built_in_addresses() -> None:
    assert split_instance("/livegen/left/tempo") == ("left", "/livegen/tempo")
    assert split_instance("/livegen/left/param/arp.density/unit") == ("left", "/livegen/param/arp.density/unit")
    assert split_instance("/livegen/left/learn/save") == ("left", "/livegen/learn/save")
    assert split_instance("/livegen/tempo") == (None, "/livegen/tempo")
    assert split_instance("/livegen/param/x") == (None, "/livegen/param/x")  # "param" is ours, not a name
    assert split_instance("/livegen/left/nonsense") == (None, "/livegen/left/nonsense")
    assert split_instance("/td/left/tempo") == (None, "/td/left/tempo")


def test_instance_names() -> None:
    assert instance_name_problem("left") is None and instance_name_problem("proj_2-b") is None
    for bad in ("tempo", "value", "pong", "", "two words", "a/b", "x" * 33):
        assert instance_name_problem(bad), bad
    assert {"param", "tempo", "get", "value", "note", "beat"} <= reserved_instance_names()


def test_instance_name_comes_from_the_cli_the_patch_or_the_patch_name(tmp_path: Path) -> None:
    p = tmp_path / "a.toml"
    p.write_text('[patch]\nname = "My Big Show!"\n')
    assert instance_name(load_patch(p)) == "my-big-show"
    assert instance_name(load_patch(p), "left") == "left"
    p.write_text('[patch]\nname = "x"\n[osc]\ninstance = "right"\n')
    assert instance_name(load_patch(p)) == "right"
    p.write_text('[patch]\nname = "Tempo"\n')  # a reserved word: the fallback
    assert instance_name(load_patch(p)) == "livegen"


def test_patch_refuses_a_reserved_instance_name_and_unknown_prefix_fields(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text('[patch]\nname = "x"\n\n[osc]\ninstance = "tempo"\n')
    with pytest.raises(PatchError) as e:
        load_patch(p)
    assert "bad.toml:5" in str(e.value) and "osc.instance" in str(e.value)
    p.write_text('[[osc.targets]]\nname = "td"\nport = 7000\nprefix = "/x/{name}"\n')
    with pytest.raises(PatchError) as e:
        load_patch(p)
    assert "prefix" in str(e.value) and "{instance}" in str(e.value)


class Surface:
    """The part of the control surface these addresses reach."""

    def __init__(self) -> None:
        self.tempo: list[float] = []

    def set_tempo(self, bpm: float, source: str = "") -> bool:
        self.tempo.append(bpm)
        return True

    def get_param(self, name: str) -> float | None:
        return 120.0 if name == "tempo" else None

    def param_names(self) -> list[str]:
        return ["tempo"]


def test_server_answers_its_own_name_and_everyone_and_ignores_the_others() -> None:
    async def main() -> tuple[Surface, dict[str, int], list[str]]:
        surface = Surface()
        server = OscServer(surface, HOST, 0, instance="left")  # type: ignore[arg-type]
        await server.start()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((HOST, 0))
        sock.settimeout(2.0)
        try:
            for address, bpm in (("/livegen/left/tempo", 100.0), ("/livegen/right/tempo", 140.0),
                                 ("/livegen/tempo", 90.0)):
                sock.sendto(msg(address, ("f", bpm)), (HOST, server.port))
            replies = []
            for address in ("/livegen/left/get", "/livegen/get"):
                sock.sendto(msg(address, ("s", "tempo")), (HOST, server.port))
            sock.sendto(msg("/livegen/left/ping"), (HOST, server.port))
            sock.sendto(msg("/livegen/right/ping"), (HOST, server.port))  # not ours: no pong
            sock.sendto(msg("/livegen/elsewhere/bogus", ("f", 1.0)), (HOST, server.port))
            deadline = time.monotonic() + 3.0
            while len(replies) < 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
                try:
                    sock.setblocking(False)
                    data, _ = sock.recvfrom(65536)
                    replies.append(OscMessage(data).address)
                except BlockingIOError:
                    pass
            await asyncio.sleep(0.1)
            try:
                data, _ = sock.recvfrom(65536)
                replies.append(OscMessage(data).address)
            except BlockingIOError:
                pass
            return surface, dict(server.stats), replies
        finally:
            sock.close()
            server.close()

    surface, stats, replies = asyncio.run(main())
    assert surface.tempo == [100.0, 90.0]
    assert stats["other_instance"] == 2  # right's tempo and right's ping
    assert stats["rejected"] == 1  # /livegen/elsewhere/bogus: an unknown address, not an instance's
    assert replies == ["/livegen/left/value", "/livegen/value", "/livegen/left/pong"]


PATCH = """[patch]
name = "{name}"
[clock]
bpm = 120
[[generators]]
name = "arp"
kind = "arpeggiator"
voice = "pluck"
[audio]
enabled = false
[midi]
virtual_output = false
[osc]
port = {port}
[[osc.targets]]
name = "show"
port = {listen}
prefix = "/livegen/{{instance}}"
send = ["params"]
[visuals]
enabled = false
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def test_two_livegen_processes_in_one_show(tmp_path: Path) -> None:
    """One controller, two livegens: named addresses reach one, plain ones both; what each
    sends carries its name."""
    listen = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listen.bind((HOST, 0))
    listen.settimeout(0.2)
    ports = {"left": _free_port(), "right": _free_port()}
    procs = []
    try:
        for name, port in ports.items():
            patch = tmp_path / f"{name}.toml"
            patch.write_text(PATCH.format(name=f"show {name}", port=port, listen=listen.getsockname()[1]))
            procs.append(subprocess.Popen([sys.executable, "-m", "livegen", "--log-file", str(tmp_path / f"{name}.log"),
                                           "play", str(patch), "--no-window", "--no-audio", "--no-reload",
                                           "--name", name], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        ctl.bind((HOST, 0))
        ctl.settimeout(0.5)

        def ask(port: int, address: str) -> OscMessage | None:
            ctl.sendto(msg(address, ("s", "tempo")), (HOST, port))
            try:
                return OscMessage(ctl.recvfrom(65536)[0])
            except socket.timeout:
                return None

        deadline = time.monotonic() + 60
        while any(ask(p, "/livegen/get") is None for p in ports.values()):
            assert time.monotonic() < deadline, "the two livegens did not start"
            assert all(p.poll() is None for p in procs), "a livegen exited"
        seen: list[str] = []

        def drain() -> None:
            while True:
                try:
                    seen.append(OscMessage(listen.recvfrom(65536)[0]).address)
                except socket.timeout:
                    return

        drain()
        seen.clear()
        for port in ports.values():  # the controller sends everything to every machine
            ctl.sendto(msg("/livegen/left/tempo", ("f", 100.0)), (HOST, port))
        time.sleep(0.5)
        left, right = ask(ports["left"], "/livegen/left/get"), ask(ports["right"], "/livegen/get")
        assert left is not None and left.address == "/livegen/left/value" and left.params == ["tempo", 100.0]
        assert right is not None and right.address == "/livegen/value" and right.params == ["tempo", 120.0]
        for port in ports.values():
            ctl.sendto(msg("/livegen/tempo", ("f", 90.0)), (HOST, port))
        time.sleep(0.5)
        assert [ask(p, "/livegen/get").params[1] for p in ports.values()] == [90.0, 90.0]  # type: ignore[union-attr]
        drain()
        assert "/livegen/left/param/tempo" in seen and "/livegen/right/param/tempo" in seen
        assert seen.count("/livegen/left/param/tempo") == 2 and seen.count("/livegen/right/param/tempo") == 1
    finally:
        for name, port in ports.items():
            try:
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(msg("/livegen/quit"), (HOST, port))
            except OSError:
                pass
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        listen.close()
