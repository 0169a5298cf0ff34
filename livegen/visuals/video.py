"""Writing the visuals to disk: an H.264 video when ffmpeg is at hand, PNG frames if not.

``livegen render`` (and recording a live set) pipes raw RGB frames into an ffmpeg
process, so encoding runs on another core and the renderer never holds a whole video in
memory. Without ffmpeg the frames are still kept, as numbered PNGs written by a small
zlib encoder (no display, no pygame needed), which ffmpeg can turn into a video later.
"""

from __future__ import annotations

import functools
import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import numpy as np

from livegen.atomic import atomic_write


@functools.lru_cache(maxsize=1)
def find_ffmpeg() -> str | None:
    """An ffmpeg that runs and has libx264: imageio-ffmpeg's, else one on PATH."""
    candidates: list[str] = []
    try:
        import imageio_ffmpeg

        candidates.append(imageio_ffmpeg.get_ffmpeg_exe())
    except Exception:  # not installed, or its binary is missing for this platform
        pass
    on_path = shutil.which("ffmpeg")
    if on_path:
        candidates.append(on_path)
    for exe in candidates:
        try:
            r = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if r.returncode == 0 and b"libx264" in r.stdout:
            return exe
    return None


def write_png(path: str | Path, frame: np.ndarray, level: int = 3) -> None:
    """Write an (h, w, 3) uint8 frame as an RGB PNG (filter 0, zlib): small and dependency-free."""
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be (height, width, 3), got {frame.shape}")
    h, w = frame.shape[:2]
    raw = np.zeros((h, 1 + 3 * w), np.uint8)  # each row: filter byte 0, then RGB
    raw[:, 1:] = np.asarray(frame, dtype=np.uint8).reshape(h, 3 * w)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n"
           + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw.tobytes(), level))
           + chunk(b"IEND", b""))
    with atomic_write(path) as f:
        f.write(png)


class FrameWriter:
    """Frames of one size at a constant rate -> ``out_dir/visuals.mp4`` or ``out_dir/frames/``."""

    def __init__(self, out_dir: str | Path, fps: int, size: tuple[int, int], force_png: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.fps = int(fps)
        self.width, self.height = int(size[0]), int(size[1])
        if self.fps <= 0 or self.width <= 0 or self.height <= 0:
            raise ValueError(f"bad video settings: {self.fps} fps, {self.width}x{self.height}")
        self.frames = 0
        self._closed = False
        self._proc: subprocess.Popen[bytes] | None = None
        exe = None if force_png else find_ffmpeg()
        if exe is not None:
            self.path = self.out_dir / "visuals.mp4"
            self._start_ffmpeg(exe)
        else:
            self.path = self.out_dir / "frames"
            self.path.mkdir(exist_ok=True)

    def _start_ffmpeg(self, exe: str) -> None:
        cmd = [exe, "-hide_banner", "-loglevel", "error", "-y",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{self.width}x{self.height}",
               "-r", str(self.fps), "-i", "-", "-an"]
        if self.width % 2 or self.height % 2:  # yuv420p needs even sizes
            cmd += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"]
        cmd += ["-c:v", "libx264", "-preset", "fast", "-pix_fmt", "yuv420p", "-r", str(self.fps),
                "-movflags", "+faststart", "-fflags", "+bitexact", "-flags", "+bitexact",
                str(self.path)]
        self._stderr = tempfile.TemporaryFile()  # a file, not a pipe: ffmpeg can never block on it
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._stderr)

    @property
    def kind(self) -> str:
        """'video' (an mp4 is being written) or 'png' (numbered frames)."""
        return "png" if self._proc is None else "video"

    def _ffmpeg_error(self) -> str:
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace").strip()
        return text[-2000:] or f"exit status {self._proc.returncode if self._proc else '?'}"

    def write(self, frame: np.ndarray) -> None:
        """Append one frame; it must be (height, width, 3) at the writer's size."""
        if self._closed:
            raise RuntimeError("FrameWriter is closed")
        if frame.shape != (self.height, self.width, 3):
            raise ValueError(f"frame is {frame.shape}, writer wants ({self.height}, {self.width}, 3)")
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        if self._proc is None:
            write_png(self.path / f"{self.frames:06d}.png", frame)
        else:
            assert self._proc.stdin is not None
            try:
                self._proc.stdin.write(frame.tobytes())
            except (BrokenPipeError, OSError):
                self._proc.wait()
                raise RuntimeError(f"ffmpeg stopped: {self._ffmpeg_error()}") from None
        self.frames += 1

    def close(self) -> Path:
        """Finish the file (waits for ffmpeg) and return the video or the frames folder."""
        if self._closed:
            return self.path
        self._closed = True
        if self._proc is not None:
            assert self._proc.stdin is not None
            try:
                self._proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            rc = self._proc.wait()
            error = self._ffmpeg_error() if rc != 0 else ""
            self._stderr.close()
            if rc != 0:
                raise RuntimeError(f"ffmpeg failed writing {self.path}: {error}")
        return self.path

    def __enter__(self) -> "FrameWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
