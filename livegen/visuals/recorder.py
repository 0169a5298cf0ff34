"""Recording the show: what the window shows, to a video file, while playing.

The frame loop hands each frame to a :class:`Take` and moves on: the frame goes into a
bounded queue, and a writer thread feeds ffmpeg (imageio-ffmpeg's binary, or one on
PATH). When the encoder falls behind, the queue fills and further frames are dropped and
counted; the loop, and with it the music, never waits on the encoder.

The file has a constant frame rate, the show's: frame *n* of the video is what the window
showed at ``start + n / fps`` (within half a frame). A slot with no new frame (the renderer
was late, or frames were dropped) repeats the last one, so the video's clock is the show's wall clock and can
be lined up with a recording of the audio (the closing line gives the start time).

It is recorded at the visuals' working size (``[visuals] width`` x ``height``), not the
window's: those are the pixels the show makes (the window only scales them up), the size
stays the same when the window is resized or goes full screen, and it is the cheapest to
encode on a machine whose cores belong to the music and the style network. With
``record_hud`` the window itself is recorded instead (HUD included), at the window's size
when the take starts.

ffmpeg writes ``NAME.part`` next to the final name (fragmented MP4/MOV, or Matroska, which
a player can open even after a crash), and the file is renamed to ``NAME`` only when
ffmpeg has finished it: a crash never leaves a half-written file under the final name.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from livegen.patch.schema import RECORD_SUFFIXES

log = logging.getLogger("livegen")

DEFAULT_TEMPLATE = "recordings/livegen-{time}.mp4"  # what the record key / OSC start without a patch path
NO_FFMPEG = ("recording off: no ffmpeg with libx264 found (pip install imageio-ffmpeg, or apt-get install ffmpeg); "
             "the show plays on")
BUFFER_SECONDS = 1.0  # how far the encoder may fall behind before frames are dropped...
BUFFER_BYTES = 64 * 1024 * 1024  # ...and at most this much raw video waiting for it
_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
assert set(_CONTAINERS) == set(RECORD_SUFFIXES)


class RecordingUnavailable(RuntimeError):
    """Recording cannot start here (no ffmpeg); the message is the one line to show."""


class FrameSink(Protocol):
    """Where a take's frames go: an encoder (or a test's stand-in)."""

    def write(self, frame: np.ndarray) -> None: ...

    def close(self) -> None: ...


def expand_template(template: str, when: float | None = None) -> Path:
    """The path for a new take: ``{time}`` becomes a timestamp, relative to where livegen runs."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    return Path(template.replace("{time}", stamp)).expanduser().absolute()


def record_path_problem(template: str) -> str | None:
    """Why ``template`` cannot be a recording's file name, or None when it can."""
    suffix = Path(template).suffix.lower()
    if suffix not in RECORD_SUFFIXES:
        return f"{template!r}: a recording must end in {', '.join(RECORD_SUFFIXES)}"
    return None


def _free_name(path: Path) -> Path:
    """``path``, or ``name-2.ext``, ``name-3.ext``... when a file is already there (never overwrite a take)."""
    candidate, n = path, 1
    while candidate.exists() or candidate.with_name(candidate.name + ".part").exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


class EncoderPipe:
    """Raw RGB frames into an ffmpeg process writing H.264 at a constant rate to ``partial``."""

    def __init__(self, exe: str, partial: Path, fps: int, size: tuple[int, int], container: str) -> None:
        width, height = size
        cmd = [exe, "-hide_banner", "-loglevel", "error", "-y",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "-", "-an"]
        if width % 2 or height % 2:  # yuv420p needs even sizes
            cmd += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"]
        cmd += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
                "-g", str(2 * fps), "-r", str(fps), "-f", container]
        if container in ("mp4", "mov"):  # fragments every keyframe: what was written survives a crash
            cmd += ["-movflags", "+frag_keyframe+empty_moov+default_base_moof"]
        cmd.append(str(partial))
        self._stderr = tempfile.TemporaryFile()  # a file, not a pipe: ffmpeg can never block on it
        # A session of its own: Ctrl-C in the terminal goes to livegen, which then finishes
        # the file; ffmpeg interrupted by it would cut the video short.
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._stderr,
                                      start_new_session=True)
        try:  # the encoder yields to the music and the frame loop
            os.setpriority(os.PRIO_PROCESS, self._proc.pid, 10)
        except (AttributeError, OSError):
            pass

    def _error(self) -> str:
        self._stderr.seek(0)
        text = " ".join(self._stderr.read().decode(errors="replace").split())
        return text[-300:] or f"exit status {self._proc.returncode}"

    def write(self, frame: np.ndarray) -> None:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame, dtype=np.uint8).data)
        except (BrokenPipeError, OSError):
            self._proc.wait()
            raise RuntimeError(f"ffmpeg stopped: {self._error()}") from None

    def close(self) -> None:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        rc = self._proc.wait()
        error = self._error() if rc else ""
        self._stderr.close()
        if rc:
            raise RuntimeError(f"ffmpeg failed: {error}")


def open_encoder(partial: Path, fps: int, size: tuple[int, int]) -> FrameSink:
    """ffmpeg writing ``partial`` in the container its final suffix names (RecordingUnavailable without one)."""
    from livegen.visuals.video import find_ffmpeg

    exe = find_ffmpeg()
    if exe is None:
        raise RecordingUnavailable(NO_FFMPEG)
    final_suffix = Path(partial.name[:-len(".part")]).suffix.lower()
    return EncoderPipe(exe, partial, fps, size, _CONTAINERS[final_suffix])


SinkFactory = Callable[[Path, int, tuple[int, int]], FrameSink]


class Take:
    """One recording, from :meth:`add`'s first frame to :meth:`stop`; see the module docstring.

    ``add`` and ``stop`` are called from the frame loop and never block. Counters:
    ``offered`` (frames handed in), ``dropped`` (frames not in the video because the encoder
    was behind: the queue was full), ``replaced`` (a newer frame arrived for the same slot:
    the renderer's timing), ``repeated`` (slots that show the frame before), ``written``
    (frames in the file)."""

    def __init__(self, path: Path, fps: int, size: tuple[int, int], *, sink: SinkFactory = open_encoder,
                 buffer_seconds: float = BUFFER_SECONDS, source: str = "") -> None:
        self.requested = path
        self.source = source
        self.path = path  # the final name (may become name-2.ext if a file appears there)
        self.fps = int(fps)
        self.size = (int(size[0]), int(size[1]))
        if self.fps <= 0 or min(self.size) <= 0:
            raise ValueError(f"bad recording settings: {self.fps} fps, {self.size[0]}x{self.size[1]}")
        self._sink_factory = sink
        frame_bytes = self.size[0] * self.size[1] * 3
        self.capacity = max(2, min(round(buffer_seconds * self.fps), BUFFER_BYTES // frame_bytes))
        self._queue: queue.Queue[tuple[float, np.ndarray]] = queue.Queue(self.capacity)
        self._stop_time: float | None = None
        self._stopping = threading.Event()
        self.finished = threading.Event()
        self.start_time: float | None = None  # monotonic time of video frame 0 (the first frame added)
        self.start_wall: float | None = None
        self.offered = self.dropped = self.replaced = self.repeated = self.written = 0
        self.error: str | None = None
        self.result: Path | None = None  # the finished file
        self._thread = threading.Thread(target=self._run, name="livegen-record", daemon=True)

    def start(self) -> "Take":
        self._thread.start()
        return self

    # -- the frame loop's side -----------------------------------------------------------
    @property
    def recording(self) -> bool:
        return not self._stopping.is_set() and self.error is None

    def add(self, frame: np.ndarray, t: float, copy: bool = True) -> bool:
        """Hand over the frame shown for moment ``t`` (monotonic); False when it was dropped."""
        if not self.recording:
            return False
        if self.start_time is None:
            self.start_time = t
            self.start_wall = time.time() - (time.monotonic() - t)
        self.offered += 1
        try:
            self._queue.put_nowait((t, frame.copy() if copy else frame))
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def stop(self, t: float | None = None) -> None:
        """End the take at ``t`` (default now); the writer finishes the file on its own thread."""
        if self._stop_time is None:
            self._stop_time = time.monotonic() if t is None else t
        self._stopping.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the file to be finished (at shutdown); False if it is still being written."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def elapsed(self, now: float | None = None) -> float:
        if self.start_time is None:
            return 0.0
        return max(0.0, (time.monotonic() if now is None else now) - self.start_time)

    # -- the writer thread -------------------------------------------------------------
    def _slot(self, t: float, last: int) -> int:
        """The video slot for a frame of moment ``t``, the last frame having gone to ``last``.

        A frame within half a slot of the next one takes it, so frames that come at the
        show's rate fill the video one by one whatever their phase and small jitter; one
        later than that skips slots (they repeat the last frame: the video keeps the show's
        clock), one earlier replaces the last frame."""
        assert self.start_time is not None
        x = (t - self.start_time) * self.fps
        if x < last + 0.5:
            return last
        if x < last + 1.5:
            return last + 1
        return round(x)

    def _run(self) -> None:
        try:
            self._record()
        except RecordingUnavailable as e:
            self.error = str(e)
            log.warning("%s", e)
            self._discard_queue()
        except Exception as e:  # the show goes on
            self.error = " ".join(str(e).split()) or type(e).__name__
            partial = self.path.with_name(self.path.name + ".part")
            kept = f"; what was written is in {partial}" if partial.exists() else ""
            log.warning("recording %s stopped: %s%s (the show plays on)", self.path, self.error, kept)
            log.debug("recording failed", exc_info=True)
            self._discard_queue()
        finally:
            self.finished.set()

    def _discard_queue(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def _record(self) -> None:
        self.path = _free_name(self.requested)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".part")
        sink = self._sink_factory(partial, self.fps, self.size)
        log.info("recording the visuals to %s (%dx%d, %d fps; %s)", self.path, *self.size, self.fps,
                 self.source or "started")
        try:
            pending: np.ndarray | None = None
            pending_slot = 0
            while True:
                try:
                    t, frame = self._queue.get(timeout=0.05)
                except queue.Empty:
                    if self._stopping.is_set():
                        break
                    continue
                if self._stop_time is not None and t >= self._stop_time:
                    continue  # after the end of the take
                slot = self._slot(t, pending_slot)
                if pending is None:
                    pending, pending_slot = frame, 0  # the first frame also stands for anything before it
                elif slot <= pending_slot:
                    pending = frame  # two frames for one slot: the newer one wins
                    self.replaced += 1
                else:
                    self._write(sink, pending, slot - pending_slot)
                    pending, pending_slot = frame, slot
            if pending is not None:
                assert self._stop_time is not None
                end_slot = max(pending_slot + 1, math.ceil((self._stop_time - self.start_time) * self.fps - 1e-6))
                self._write(sink, pending, end_slot - pending_slot)
        except BaseException:
            try:
                sink.close()
            except Exception:
                pass
            raise
        sink.close()
        if self.written == 0:
            partial.unlink(missing_ok=True)
            log.info("recording %s: no frames were shown, nothing written", self.path)
            return
        self._finish(partial)

    def _write(self, sink: FrameSink, frame: np.ndarray, count: int) -> None:
        for _ in range(count):
            sink.write(frame)
            self.written += 1
        self.repeated += count - 1

    def _finish(self, partial: Path) -> None:
        if partial.exists():  # a test's sink may write nothing to disk
            with open(partial, "rb") as f:
                os.fsync(f.fileno())
            final = self.path if not self.path.exists() else _free_name(self.path)
            os.replace(partial, final)
            self.path = final
            try:
                fd = os.open(final.parent, os.O_RDONLY)
                try:
                    os.fsync(fd)  # make the rename itself durable
                finally:
                    os.close(fd)
            except OSError:
                pass
        self.result = self.path
        log.info("%s", self.summary())

    def summary(self) -> str:
        """The closing line: where the video is, its length, frames dropped."""
        started = time.strftime("%H:%M:%S", time.localtime(self.start_wall or time.time()))
        started += f".{int(((self.start_wall or 0.0) % 1) * 1000):03d}"
        return (f"recorded {self.path}: {self.written / self.fps:.2f} s, {self.written} frames at {self.fps} fps "
                f"(started {started}), {self.dropped} frames dropped (encoder behind); renderer timing: "
                f"{self.repeated} frames repeated, {self.replaced} replaced")


class Recorder:
    """The rig's record button: one take at a time, started by the patch, ``--record``, the
    record key or OSC. ``template`` is the patch's path (``{time}`` expands), or
    :data:`DEFAULT_TEMPLATE` when the patch names none."""

    def __init__(self, template: str, fps: int, size: tuple[int, int], *, sink: SinkFactory = open_encoder,
                 buffer_seconds: float = BUFFER_SECONDS) -> None:
        self.template = template or DEFAULT_TEMPLATE
        self.fps = int(fps)
        self.size = size
        self.sink = sink
        self.buffer_seconds = buffer_seconds
        self.take: Take | None = None
        self.takes: list[Take] = []

    @property
    def recording(self) -> bool:
        return self.take is not None and self.take.recording

    def start(self, size: tuple[int, int] | None = None, source: str = "") -> bool:
        """Start a new take (no-op while one is running); never blocks the caller."""
        if self.recording:
            return True
        path = expand_template(self.template)
        self.take = Take(path, self.fps, size or self.size, sink=self.sink, buffer_seconds=self.buffer_seconds,
                         source=source).start()
        self.takes.append(self.take)
        return True

    def stop(self, t: float | None = None, source: str = "") -> bool:
        """Stop the running take; its file is finished on the writer thread."""
        if self.take is None:
            return False
        self.take.stop(t)
        self.take = None
        log.debug("recording stopped (%s)", source or "?")
        return True

    def toggle(self, source: str = "") -> bool:
        if self.recording:
            return self.stop(source=source)
        return self.start(source=source)

    def add(self, frame: np.ndarray, t: float, copy: bool = True) -> None:
        if self.take is not None:
            if self.take.error is not None:
                self.take = None  # it failed (already said in one line); the key can start a new one
            else:
                self.take.add(frame, t, copy)

    def hud_line(self) -> str | None:
        take = self.take
        if take is None or not take.recording:
            return None
        seconds = take.elapsed()
        return f"REC {int(seconds // 60)}:{seconds % 60:04.1f}   dropped {take.dropped}"

    def close(self, timeout: float = 60.0) -> list[Path]:
        """Stop and finish every take (at shutdown); the finished files."""
        self.stop(source="shutdown")
        deadline = time.monotonic() + timeout
        for take in self.takes:
            if not take.join(max(0.0, deadline - time.monotonic())):
                log.warning("recording %s: the encoder has not finished; it stays at %s.part", take.path, take.path.name)
        return [t.result for t in self.takes if t.result is not None]
