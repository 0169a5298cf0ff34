"""Safe defaults: what livegen opens to the network, loads and writes.

* every listener binds 127.0.0.1 unless the patch names another address (read from the
  kernel's socket tables for a real ``livegen play`` and all its processes);
* weights load only through ``torch.load(weights_only=True)``; nothing is unpickled,
  evaluated or run through a shell (read from the source's syntax tree);
* patches are data: TOML parsed, never executed;
* files are written atomically: a writer killed half-way leaves the old file whole.
"""

from __future__ import annotations

import ast
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from livegen.atomic import atomic_path, atomic_write
from livegen.patch.loader import PatchError, parse_patch

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "livegen").rglob("*.py"))


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            # owner: the module or object a method is called on; None for a bare name (eval(...))
            owner = None if isinstance(f, ast.Name) else f.value.id if isinstance(f, ast.Attribute) and isinstance(
                f.value, ast.Name) else ""
            yield node, owner, name


def _kw(node: ast.Call, name: str):
    for k in node.keywords:
        if k.arg == name:
            return k.value
    return None


def test_weights_are_only_loaded_with_weights_only_true():
    loads = []
    for path in SOURCES:
        for node, owner, name in _calls(ast.parse(path.read_text(), str(path))):
            if name in ("load", "load_state_dict_from_url") and owner in ("torch", "hub") or (
                    name == "load_state_dict_from_url"):
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                loads.append(where)
                value = _kw(node, "weights_only")
                assert isinstance(value, ast.Constant) and value.value is True, f"{where}: without weights_only=True"
    assert len(loads) >= 3, loads  # the weights loader, the VGG file and URL loaders, the checkpoints


def test_nothing_is_unpickled_evaluated_or_run_through_a_shell():
    for path in SOURCES:
        tree = ast.parse(path.read_text(), str(path))
        for node, owner, name in _calls(tree):
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            assert not (owner is None and name in ("eval", "exec", "compile", "__import__")), f"{where}: {name}()"
            assert not (owner in ("pickle", "marshal", "dill", "shelve") and name in ("load", "loads", "open")), where
            assert not (owner == "os" and name in ("system", "popen")), f"{where}: os.{name}"
            shell = _kw(node, "shell")
            assert not (isinstance(shell, ast.Constant) and shell.value is True), f"{where}: shell=True"
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                assert not {"pickle", "yaml", "dill", "marshal"} & set(names), f"{path}:{node.lineno}: imports {names}"


def test_a_patch_is_data_and_never_executed(tmp_path):
    marker = tmp_path / "ran"
    code = f"__import__('os').system('touch {marker}')"
    patch = parse_patch(f'[patch]\nname = "{code}"\n[osc]\ninstance = "x"\n', "<test>")
    assert patch.name == code and not marker.exists()
    with pytest.raises(PatchError, match="<test>:2"):  # a Python expression is not a TOML value
        parse_patch(f"[clock]\nbpm = {code}\n", "<test>")
    assert not marker.exists()


def test_the_osc_allow_list_takes_addresses_and_networks():
    p = parse_patch('[osc]\nallow = ["127.0.0.1", "10.0.0.0/24", "::1"]\n', "show.toml")
    assert p.osc.allow == ("127.0.0.1", "10.0.0.0/24", "::1")
    with pytest.raises(PatchError) as e:
        parse_patch('[osc]\nallow = ["127.0.0.1", "my laptop"]\n', "show.toml")
    assert "show.toml:2" in str(e.value) and "osc.allow" in str(e.value) and "\n" not in str(e.value)


# -- listeners ------------------------------------------------------------------------------
def _socket_inodes(pids: list[int]) -> set[str]:
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            pass
    return inodes


def _bound(inodes: set[str]) -> list[tuple[str, str, int]]:
    """(protocol, local address, port) of the sockets with these inodes that are bound to a port."""
    out = []
    for proto in ("udp", "tcp", "udp6", "tcp6"):
        try:
            lines = Path(f"/proc/net/{proto}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            local, inode = f[1], f[9]
            if inode not in inodes:
                continue
            hexaddr, hexport = local.split(":")
            port = int(hexport, 16)
            if proto.endswith("6"):
                raw = bytes.fromhex(hexaddr)
                addr = socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
            else:
                addr = socket.inet_ntoa(bytes.fromhex(hexaddr)[::-1])
            if proto.startswith("tcp") and f[3] != "0A":  # only listening TCP sockets
                continue
            if port:
                out.append((proto, addr, port))
    return out


def _tree(pid: int) -> list[int]:
    from livegen.bench.procs import descendants

    return [pid, *descendants(pid)]


def _play_and_list_sockets(tmp_path: Path, osc_host: str) -> list[tuple[str, str, int]]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    patch = tmp_path / "listen.toml"
    patch.write_text(f'[patch]\nname = "listen"\n[osc]\nhost = "{osc_host}"\nport = {port}\n'
                     '[[osc.targets]]\nname = "out"\nport = 9\n[midi]\ninputs = []\nvirtual_output = false\n'
                     '[visuals]\nenabled = false\n')
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.Popen([sys.executable, "-m", "livegen", "--log-file", str(tmp_path / "log"), "play",
                             str(patch), "--no-audio", "--no-window"], env=dict(env, PYTHONPATH=str(ROOT)),
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        for line in proc.stderr:
            if "playing" in line or time.monotonic() > deadline:
                break
        time.sleep(0.5)
        bound = _bound(_socket_inodes(_tree(proc.pid)))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert any(p == port for _proto, _a, p in bound), f"the OSC server's port {port} is not among {bound}"
    return [b for b in bound if b[2] == port or b[0].startswith("tcp")]


def test_every_listener_binds_loopback_by_default(tmp_path):
    listeners = _play_and_list_sockets(tmp_path, "127.0.0.1")
    assert listeners and all(addr in ("127.0.0.1", "::1") for _proto, addr, _port in listeners), listeners


def test_a_patch_may_open_the_osc_server_to_the_network(tmp_path):
    listeners = _play_and_list_sockets(tmp_path, "0.0.0.0")
    assert [addr for _proto, addr, _port in listeners if _proto == "udp"] == ["0.0.0.0"]


# -- atomic files ---------------------------------------------------------------------------
WRITER = r"""
import sys, time
from livegen.atomic import atomic_write
with atomic_write(sys.argv[1]) as f:
    f.write(b"new" * 1000)
    f.flush()
    print("half", flush=True)
    time.sleep(60)
    f.write(b"end")
"""


def test_a_writer_killed_half_way_leaves_the_old_file_whole(tmp_path):
    target = tmp_path / "show.toml"
    target.write_text("[clock]\nbpm = 90\n")
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.stdout.readline().strip() == "half"
    proc.send_signal(signal.SIGKILL)  # a crash, a power cut: no cleanup runs
    proc.wait()
    assert target.read_text() == "[clock]\nbpm = 90\n"


def test_a_failed_write_changes_nothing_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "card.png"
    target.write_bytes(b"old")
    for opener in (lambda: atomic_write(target), lambda: atomic_path(target)):
        with pytest.raises(RuntimeError):
            with opener() as f:
                if isinstance(f, str):
                    Path(f).write_bytes(b"half")
                else:
                    f.write(b"half")
                raise RuntimeError("disk full")
        assert target.read_bytes() == b"old"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["card.png"]
    with atomic_path(target) as name:
        assert name.endswith(".png")  # libraries that choose a format by extension still can
        Path(name).write_bytes(b"new")
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["card.png"]
