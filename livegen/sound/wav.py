"""WAV files for ``livegen render``: 16-bit PCM, byte-identical for identical samples."""

from __future__ import annotations

import os
import tempfile
import wave
from pathlib import Path

import numpy as np

_UMASK = os.umask(0o022)  # read the umask (set it back at once) for the final file's mode
os.umask(_UMASK)


def write_wav(path: str | os.PathLike[str], samples: np.ndarray, sample_rate: int) -> None:
    """Write float samples (n, channels) in -1..1 as 16-bit PCM, atomically.

    Values are clipped and rounded (no dither, so the file depends only on the samples).
    The file is written next to ``path`` and renamed over it, so a reader never sees half
    a file and an interrupted render leaves the old one.
    """
    data = np.asarray(samples, dtype=np.float64)
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2 or data.shape[1] < 1:
        raise ValueError(f"samples must have shape (frames, channels), got {data.shape}")
    if sample_rate <= 0:
        raise ValueError(f"sample rate must be positive, got {sample_rate}")
    pcm = np.rint(np.clip(np.nan_to_num(data, nan=0.0), -1.0, 1.0) * 32767.0).astype("<i2")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it 0600
            with wave.open(fh, "wb") as w:
                w.setnchannels(data.shape[1])
                w.setsampwidth(2)
                w.setframerate(int(sample_rate))
                w.writeframes(pcm.tobytes())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
