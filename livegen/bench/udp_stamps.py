"""UDP sockets that date each datagram by the kernel's receive time, for benchmarks that
time what other programs send back (scsynth's ``/n_go``, a panic reaching an OSC target):
the time the reading thread got to it would add its own scheduling delay."""

from __future__ import annotations

import socket
import struct
import time

HOST = "127.0.0.1"
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux's value; Python's socket module lacks it


def open_stamped(connect_port: int | None = None, timeout: float = 0.1) -> tuple[socket.socket, bool]:
    """A socket on 127.0.0.1 (connected to ``connect_port`` when given) asking the kernel
    for receive stamps; also whether it got them."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    if connect_port is not None:
        sock.connect((HOST, connect_port))
    sock.settimeout(timeout)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        return sock, True
    except OSError:
        return sock, False


def receive(sock: socket.socket, wall_minus_mono: float | None = None) -> tuple[bytes, float] | None:
    """The next datagram and when it arrived (``time.monotonic()`` seconds); None after the
    socket's timeout. Kernel stamps are wall-clock time: ``wall_minus_mono`` converts them
    (read now when None). Raises OSError once the socket is closed."""
    try:
        data, ancillary, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(16))
    except socket.timeout:
        return None
    t = time.monotonic()
    for level, kind, stamp in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(stamp) >= 16:
            sec, nsec = struct.unpack("qq", stamp[:16])
            offset = time.time() - time.monotonic() if wall_minus_mono is None else wall_minus_mono
            t = sec + nsec * 1e-9 - offset
    return data, t
