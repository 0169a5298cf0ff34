"""WAV files for ``livegen render``: 16-bit PCM, byte-identical for identical samples."""

from __future__ import annotations

import os
import wave

import numpy as np

from livegen.atomic import atomic_write


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
    with atomic_write(path) as fh, wave.open(fh, "wb") as w:
        w.setnchannels(data.shape[1])
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
