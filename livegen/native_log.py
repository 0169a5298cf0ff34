"""JACK's own messages are kept off the performer's terminal.

libjack prints straight to stderr: when the JACK server is gone, every MIDI port rescan
printed five lines of "Cannot connect to server socket" and "JackShmReadWritePtr" around
livegen's one line saying what is wrong. libjack lets a program install its own message
handler, and ours drops the text: livegen says in its own words what failed (the port, the
device, "JACK server not running?").

The handler is a C function, not a Python callback: libjack calls it on its own threads
(a client thread that finds its server gone), and a Python callback there would need the
GIL, which the thread closing that client may hold while it waits for that very thread: a
deadlock in the middle of a show. libc's ``strlen`` takes one ``const char *`` and has no
effect, which is all a message handler needs to be.

python-rtmidi ships its own copy of libjack, so the handler goes into that copy as well as
the system's (PortAudio's). Each process that opens JACK clients calls this once. (ALSA is
kept quiet by not opening its sequencer where there is none; see ``livegen.control.midi_ports``.)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os

_installed: list[object] = []  # the libraries, kept loaded for the process's life


def _libjack_paths() -> list[str]:
    paths = ["libjack.so.0"]
    try:
        import rtmidi

        site = os.path.dirname(os.path.dirname(rtmidi.__file__))
        # auditwheel puts it in python_rtmidi.libs (or, for some builds, "python_rtmidi.")
        paths += sorted(glob.glob(os.path.join(site, "python_rtmidi.*", "libjack*.so*")))
    except ImportError:
        pass
    return paths


def route_native_messages() -> list[str]:
    """Silence libjack's own messages in this process (once); returns the libraries that took it."""
    if _installed:
        return [x for x in _installed if isinstance(x, str)]
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        quiet = ctypes.cast(libc.strlen, ctypes.c_void_p)
    except (OSError, AttributeError):
        return []
    _installed.append(libc)
    for path in _libjack_paths():
        try:
            lib = ctypes.CDLL(path)
            lib.jack_set_error_function.argtypes = [ctypes.c_void_p]
            lib.jack_set_info_function.argtypes = [ctypes.c_void_p]
            lib.jack_set_error_function(quiet)
            lib.jack_set_info_function(quiet)
        except (OSError, AttributeError):
            continue
        _installed.extend([lib, path])
    return [x for x in _installed if isinstance(x, str)]
