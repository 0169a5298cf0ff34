"""Loading weight files safely: ``torch.load(weights_only=True)`` and one line on failure.

A weights file is data from anywhere (a download, a USB stick, a half-copied file), so it
is never unpickled with code, and what went wrong is said in words a performer can act on
(not torch's paragraph about pickles); torch's own message goes to the log file.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import Any

log = logging.getLogger("livegen")


class WeightsFileError(ValueError):
    """A weights file that cannot be read; the message is the reason, without the path."""


def load_weights(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; raise WeightsFileError saying why not."""
    import torch

    path = Path(path)
    try:
        with path.open("rb") as f:
            f.read(1)
    except OSError as exc:
        raise WeightsFileError(f"cannot read it ({exc.strerror or exc})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, corrupt, not a torch file, pickled code
        log.debug("torch.load(%s) failed", path, exc_info=True)
        if not zipfile.is_zipfile(path):
            raise WeightsFileError("not a torch file (truncated or corrupt?)") from None
        if "Weights only load failed" in str(exc):
            raise WeightsFileError("it holds objects other than tensors and plain data; refused "
                                   "(weights are loaded with weights_only=True)") from None
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
        raise WeightsFileError(f"truncated or corrupt ({first})") from None
