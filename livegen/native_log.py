"""JACK's own messages go to the log file, not the performer's terminal.

libjack prints straight to stderr: when the JACK server is gone, every MIDI port rescan
(twice a second) printed five lines of "Cannot connect to server socket" and
"JackShmReadWritePtr" around livegen's one line saying what is wrong. libjack lets a
program install its own message handler; ours sends the text to the log at debug level.

(ALSA's ``snd_lib_error_set_handler`` takes a variadic handler, which a ctypes callback
cannot be: one that did any work crashed the process. ALSA is kept quiet by not opening
its sequencer where there is none; see ``livegen.control.midi_ports``.)

python-rtmidi ships its own copy of libjack, so the handler is installed in that copy as
well as in the system's (used by PortAudio). Each process that opens ports calls this once.
"""

from __future__ import annotations

import ctypes
import glob
import logging
import os

log = logging.getLogger("livegen.native")

_JACK_MESSAGE = ctypes.CFUNCTYPE(None, ctypes.c_char_p)
_installed: list[object] = []  # the libraries and callbacks, kept alive for the process's life


def _jack_handler(text: bytes | None) -> None:
    log.debug("libjack: %s", (text or b"").decode("utf-8", "replace").strip())


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
    """Install the handlers (once per process); returns the libraries that took them."""
    if _installed:
        return [str(x) for x in _installed if isinstance(x, str)]
    jack_cb = _JACK_MESSAGE(_jack_handler)
    _installed.append(jack_cb)
    for path in _libjack_paths():
        try:
            lib = ctypes.CDLL(path)
            lib.jack_set_error_function(jack_cb)
            lib.jack_set_info_function(jack_cb)
        except (OSError, AttributeError):
            continue
        _installed.extend([lib, path])
    return [str(x) for x in _installed if isinstance(x, str)]
