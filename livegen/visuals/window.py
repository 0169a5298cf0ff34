"""The performance window: shows frames, reports keys.

Only pygame's display is initialised (never ``pygame.init()``), so opening the window can
not grab or disturb the sound device that the synth process owns. Without a display the
window refuses with a one-line ``DisplayUnavailable`` before SDL is touched, because
SDL's own failure messages on a headless box are long and unhelpful.

All methods must be called from the main thread (SDL's rule on most platforms).

Closing the window from the window manager is the "close" action, not "quit": the rig
decides (the music plays on unless the patch says ``[visuals] on_close = "quit"``); Esc
is "quit". On X11 the loss of the display (the X server killed, an SSH tunnel dropped) is
the "lost" action: by default Xlib ends the whole process when its connection dies, which
would stop the music with the picture, so the window installs an exit handler that lets
Xlib return instead (libX11 1.7 or later), and never touches SDL's video again.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import sys
from pathlib import Path

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import numpy as np  # noqa: E402
import pygame  # noqa: E402

from livegen.atomic import atomic_path  # noqa: E402

NO_DISPLAY = "no display (DISPLAY is not set): run with --no-window, or use livegen render"


class DisplayUnavailable(RuntimeError):
    """There is no screen to open a window on (headless machine, SSH without X)."""


# Displays (X11 ``Display *`` addresses) whose connection has died. Xlib calls the handlers
# on whatever thread hit the error; a set add is atomic under the GIL.
_LOST_DISPLAYS: set[int] = set()
_X11_HANDLERS: tuple | None = None  # the ctypes callbacks, alive as long as the process


def _x11_handlers() -> tuple:
    """The C callbacks (made once): an I/O error handler that does not print Xlib's
    multi-line message, and an exit handler that returns instead of calling exit()."""
    global _X11_HANDLERS
    if _X11_HANDLERS is None:
        @ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
        def on_io_error(dpy: int) -> int:
            _LOST_DISPLAYS.add(int(dpy or 0))
            return 0

        @ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
        def on_io_exit(dpy: int, _data: int) -> None:
            _LOST_DISPLAYS.add(int(dpy or 0))

        _X11_HANDLERS = (on_io_error, on_io_exit)
    return _X11_HANDLERS


def _survive_x11_loss() -> int | None:
    """Let the process outlive its X connection; the ``Display *`` watched, or None where
    that cannot be done (not X11, libX11 older than 1.7): there losing X still ends livegen."""
    try:
        if pygame.display.get_driver() != "x11":
            return None
        capsule = pygame.display.get_wm_info().get("display")
        get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
        get_pointer.restype = ctypes.c_void_p
        get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
        dpy = get_pointer(capsule, b"display")
        x11 = ctypes.CDLL("libX11.so.6")
        set_exit = x11.XSetIOErrorExitHandler  # AttributeError before libX11 1.7
        on_io_error, on_io_exit = _x11_handlers()
        set_exit.argtypes = [ctypes.c_void_p, type(on_io_exit), ctypes.c_void_p]
        set_exit.restype = None
        x11.XSetIOErrorHandler.argtypes = [type(on_io_error)]
        x11.XSetIOErrorHandler.restype = ctypes.c_void_p
        set_exit(dpy, on_io_exit, None)
        x11.XSetIOErrorHandler(on_io_error)
        return int(dpy)
    except Exception:
        return None


def display_available() -> bool:
    """Whether a window can plausibly open here (always true off Linux)."""
    if not sys.platform.startswith("linux"):
        return True
    return any(os.environ.get(k) for k in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"))


class Window:
    """A pygame window showing ``(h, w, 3)`` uint8 frames, scaled to fit it."""

    def __init__(self, width: int, height: int, scale: int = 2, title: str = "livegen",
                 fullscreen: bool = False, display: int = 0) -> None:
        if not display_available():
            raise DisplayUnavailable(NO_DISPLAY)
        self.width, self.height, self.scale = int(width), int(height), max(1, int(scale))
        self.title = title
        self.fullscreen = fullscreen
        self.display = int(display)
        self.hud_visible = False
        self.lost = False  # the display's connection died: SDL's video is left alone from then on
        self._x11: int | None = None  # the X11 display watched for loss
        self._font: pygame.font.Font | None = None
        self._open = False
        try:
            pygame.display.init()
            if not 0 <= self.display < max(1, pygame.display.get_num_displays()):
                self.display = 0  # the named screen is not connected: use the first
            pygame.display.set_caption(title)
            self._screen = self._set_mode(fullscreen)
            self._x11 = _survive_x11_loss()
        except pygame.error as e:
            pygame.display.quit()
            reason = " ".join(str(e).split()) or "SDL error"
            raise DisplayUnavailable(f"cannot open a window ({reason}): run with --no-window, "
                                     "or use livegen render") from None
        self._open = True

    def _set_mode(self, fullscreen: bool) -> pygame.Surface:
        if fullscreen:
            screen = pygame.display.set_mode((0, 0), pygame.FULLSCREEN, display=self.display)
        else:
            screen = pygame.display.set_mode((self.width * self.scale, self.height * self.scale),
                                             pygame.RESIZABLE, display=self.display)
        pygame.mouse.set_visible(not fullscreen)
        return screen

    @property
    def size(self) -> tuple[int, int]:
        """The window's size in pixels (width, height)."""
        return self._screen.get_size()

    def show(self, frame: np.ndarray, hud: list[str] | None = None) -> None:
        """Draw a frame of any size, scaled to fit the window (aspect kept), and flip.

        ``hud`` lines are drawn over the top-left corner while the HUD is toggled on."""
        if not self._open:
            raise RuntimeError("window is closed")
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame must be (height, width, 3), got {frame.shape}")
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        h, w = frame.shape[:2]
        surf = pygame.image.frombuffer(frame, (w, h), "RGB")
        self._screen = pygame.display.get_surface()  # may have been resized
        sw, sh = self._screen.get_size()
        k = min(sw / w, sh / h)
        dw, dh = max(1, round(w * k)), max(1, round(h * k))
        if (dw, dh) != (sw, sh):
            self._screen.fill((0, 0, 0))
        if (dw, dh) != (w, h):
            surf = pygame.transform.scale(surf, (dw, dh))
        self._screen.blit(surf, ((sw - dw) // 2, (sh - dh) // 2))
        if hud and self.hud_visible:
            self._draw_hud(hud)
        pygame.display.flip()

    def _draw_hud(self, lines: list[str]) -> None:
        if self._font is None:
            pygame.font.init()
            self._font = pygame.font.Font(None, 20)
        y = 6
        for line in lines:
            text = self._font.render(line, True, (255, 255, 255))
            back = pygame.Surface((text.get_width() + 8, text.get_height() + 2), pygame.SRCALPHA)
            back.fill((0, 0, 0, 150))
            self._screen.blit(back, (4, y - 1))
            self._screen.blit(text, (8, y))
            y += text.get_height() + 3

    def toggle_hud(self) -> None:
        self.hud_visible = not self.hud_visible

    def poll(self) -> list[str]:
        """Actions since the last poll: "close" (the window manager closed the window),
        "lost" (the display went away; said once), "quit" (Esc), "panic", "fullscreen",
        "hud", "screenshot", "record", or "key:<name>"."""
        if self.lost:
            return []
        if self._x11 is not None and self._x11 in _LOST_DISPLAYS:
            self.lost = True
            return ["lost"]
        actions: list[str] = []
        close_events = {pygame.QUIT, getattr(pygame, "WINDOWCLOSE", pygame.QUIT)}
        for ev in pygame.event.get():
            if ev.type in close_events:
                action = "close"
            elif ev.type == pygame.KEYDOWN:
                key = getattr(ev, "key", None)
                if key == pygame.K_ESCAPE:
                    action = "quit"
                elif key == pygame.K_SPACE:
                    action = "panic"
                elif key == pygame.K_f:
                    action = "fullscreen"
                elif key == pygame.K_h:
                    action = "hud"
                elif key in (pygame.K_s, pygame.K_F12):
                    action = "screenshot"
                elif key == pygame.K_r:
                    action = "record"
                elif key is None:
                    continue
                else:
                    action = f"key:{pygame.key.name(key)}"
            else:
                continue
            if action == "close" and action in actions:
                continue  # closing the window sends both WINDOWCLOSE and QUIT
            actions.append(action)
        return actions

    def toggle_fullscreen(self) -> None:
        """Switch between the scaled window and the whole screen."""
        self.fullscreen = not self.fullscreen
        self._screen = self._set_mode(self.fullscreen)

    def screenshot(self, path: str | Path) -> Path:
        """Save what the window shows now (PNG by extension)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:  # never half a PNG, whatever happens mid-save
            pygame.image.save(self._screen, tmp)
        return path

    def pixels(self, size: tuple[int, int] | None = None) -> np.ndarray:
        """What the window shows now (HUD included) as a new ``(h, w, 3)`` array, scaled to
        ``size`` (width, height) when given: a recording keeps one size while the window changes."""
        surface = self._screen
        if size is not None and surface.get_size() != tuple(size):
            surface = pygame.transform.scale(surface, tuple(size))
        return pygame.surfarray.array3d(surface).swapaxes(0, 1)

    def close(self) -> None:
        """Close the window; safe to call twice. After the display was lost SDL is not
        asked to close anything: it would wait forever on the dead connection (or Xlib
        would end the process), at once or when pygame quits at exit."""
        if self._open:
            self._open = False
            if self._font is not None:
                pygame.font.quit()
            if self.lost or (self._x11 is not None and self._x11 in _LOST_DISPLAYS):
                self.lost = True
                atexit.unregister(pygame.quit)
                return
            pygame.display.quit()

    def __enter__(self) -> "Window":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
