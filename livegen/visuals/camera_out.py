"""Frames out to other programs while playing: a virtual webcam, or an NDI source.

- ``[visuals] virtual_camera = true`` (``--virtual-camera``): the frames become a webcam
  that OBS, Zoom or a browser can pick (pyvirtualcam: v4l2loopback on Linux, OBS's virtual
  camera on macOS and Windows; ``pip install 'livegen[camera-out]'``).
- ``[visuals] share = "ndi"``: the frames are sent as an NDI source on the network
  (ndi-python, which ships the NDI runtime; ``pip install 'livegen[ndi]'``). NDI listens on
  every network interface (TCP 5960 and up): sharing with other machines is its purpose.
- ``share = "syphon"`` (macOS) and ``"spout"`` (Windows) are not built in; asking for them
  is one line saying what they need.

Each output runs on its own thread with a one-frame mailbox: the frame loop leaves the
newest frame and moves on, and a slow receiver only means older frames are skipped (a
live feed wants the newest picture; the recording is where every frame counts).
Anything missing is one line, and the show goes on without it.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Callable

import numpy as np

log = logging.getLogger("livegen")

SYPHON_NOT_BUILT_IN = ("share = \"syphon\": Syphon output is not built into livegen (it needs macOS and a Syphon "
                       "binding such as syphon-python); use virtual_camera = true or share = \"ndi\" instead; "
                       "the show goes on without it")
SPOUT_NOT_BUILT_IN = ("share = \"spout\": Spout output is not built into livegen (it needs Windows and the SpoutGL "
                      "binding); use virtual_camera = true or share = \"ndi\" instead; the show goes on without it")


class ShareUnavailable(RuntimeError):
    """The output cannot open here; the message is the one line to show."""


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


class FrameShare:
    """A newest-frame mailbox and the thread that hands frames to a device."""

    name = "frames out"

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = (int(size[0]), int(size[1]))
        self.sent = 0
        self.skipped = 0  # frames replaced in the mailbox before the device took them
        self.error: str | None = None
        self._frame: np.ndarray | None = None
        self._closed = False
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="livegen-share", daemon=True)

    def start(self) -> "FrameShare":
        self._thread.start()
        return self

    def send(self, frame: np.ndarray) -> None:
        """Leave the newest frame for the device (frame loop; never waits on the device)."""
        if self._closed or self.error is not None:
            return
        frame = frame.copy()  # the next frame is drawn while the device reads this one
        with self._wake:
            if self._frame is not None:
                self.skipped += 1
            self._frame = frame
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._frame is None and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                frame, self._frame = self._frame, None
            try:
                if frame.shape != (self.size[1], self.size[0], 3):
                    raise ValueError(f"frame is {frame.shape[1]}x{frame.shape[0]}, "
                                     f"the output is {self.size[0]}x{self.size[1]}")
                self._deliver(frame)
                self.sent += 1
            except Exception as e:  # the show goes on without this output
                self.error = _one_line(e)
                log.warning("%s stopped: %s (the show goes on)", self.name, self.error)
                log.debug("%s failed", self.name, exc_info=True)
                return

    def _deliver(self, frame: np.ndarray) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        """Close the device (after the thread has stopped)."""

    def close(self) -> None:
        """Stop the thread and close the device; safe to call twice."""
        if self._closed:
            return
        with self._wake:
            self._closed = True
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join(5.0)
        try:
            self._release()
        except Exception:
            log.debug("closing %s failed", self.name, exc_info=True)


def _camera_hint() -> str:
    if sys.platform.startswith("linux"):
        return ("install and load v4l2loopback (apt-get install v4l2loopback-dkms; "
                "modprobe v4l2loopback exclusive_caps=1)")
    if sys.platform == "darwin":
        return "install OBS Studio and start its virtual camera once"
    return "install OBS Studio (its virtual camera) or Unity Capture"


class VirtualCamera(FrameShare):
    """The frames as a webcam, through pyvirtualcam."""

    def __init__(self, width: int, height: int, fps: int) -> None:
        try:
            import pyvirtualcam
        except ImportError:
            raise ShareUnavailable("virtual camera off: pyvirtualcam is not installed "
                                   "(pip install 'livegen[camera-out]'); the show goes on") from None
        try:
            self._cam = pyvirtualcam.Camera(int(width), int(height), float(fps),
                                            fmt=pyvirtualcam.PixelFormat.RGB, print_fps=False)
        except Exception as e:  # pyvirtualcam raises RuntimeError when no device or backend is there
            raise ShareUnavailable(f"virtual camera off: {_one_line(e)} To use it, {_camera_hint()}; "
                                   "the show goes on") from None
        super().__init__((width, height))
        self.device = str(self._cam.device)
        self.name = f"virtual camera {self.device}"

    def _deliver(self, frame: np.ndarray) -> None:
        self._cam.send(frame)

    def _release(self) -> None:
        self._cam.close()


class NdiSender(FrameShare):
    """The frames as an NDI video source, through ndi-python."""

    def __init__(self, source_name: str, width: int, height: int, fps: int) -> None:
        try:
            import NDIlib as ndi
        except ImportError:
            raise ShareUnavailable("NDI off: ndi-python is not installed (pip install 'livegen[ndi]'); "
                                   "the show goes on") from None
        if not ndi.initialize():
            raise ShareUnavailable("NDI off: the NDI runtime does not run on this CPU or system; the show goes on")
        create = ndi.SendCreate()
        create.ndi_name = source_name
        create.clock_video = False  # livegen paces the frames; NDI must never make the sender wait
        sender = ndi.send_create(create)
        if sender is None:
            ndi.destroy()
            raise ShareUnavailable(f"NDI off: cannot create the NDI source {source_name!r}; the show goes on")
        super().__init__((width, height))
        self._ndi, self._sender = ndi, sender
        self._rgbx = np.full((int(height), int(width), 4), 255, np.uint8)
        self._video = ndi.VideoFrameV2()
        self._video.FourCC = ndi.FOURCC_VIDEO_TYPE_RGBX
        self._video.frame_rate_N, self._video.frame_rate_D = int(fps), 1
        self.source = ndi.send_get_source_name(sender).ndi_name
        self.name = f"NDI source {self.source!r}"

    def connections(self) -> int:
        """How many NDI receivers are taking the frames now."""
        return int(self._ndi.send_get_no_connections(self._sender, 0))

    def _deliver(self, frame: np.ndarray) -> None:
        self._rgbx[..., :3] = frame
        self._video.data = self._rgbx
        self._ndi.send_send_video_v2(self._sender, self._video)  # synchronous: the buffer is free after

    def _release(self) -> None:
        self._ndi.send_destroy(self._sender)
        self._ndi.destroy()


def open_frame_shares(visuals, *, virtual_camera: bool, warn: Callable[[str], None],
                      ndi_name: str = "livegen") -> list[FrameShare]:
    """The outputs the patch (and ``--virtual-camera``) ask for; each missing one is one ``warn`` line."""
    shares: list[FrameShare] = []
    v = visuals
    if virtual_camera:
        try:
            cam = VirtualCamera(v.width, v.height, v.fps)
            shares.append(cam.start())
            log.info("virtual camera: the frames go to %s (%dx%d, %d fps)", cam.device, v.width, v.height, v.fps)
        except ShareUnavailable as e:
            warn(str(e))
    if v.share == "ndi":
        try:
            sender = NdiSender(ndi_name, v.width, v.height, v.fps)
            shares.append(sender.start())
            log.info("NDI: the frames are the source %r on every network interface (%dx%d, %d fps)",
                     sender.source, v.width, v.height, v.fps)
        except ShareUnavailable as e:
            warn(str(e))
    elif v.share == "syphon":
        warn(SYPHON_NOT_BUILT_IN)
    elif v.share == "spout":
        warn(SPOUT_NOT_BUILT_IN)
    return shares
