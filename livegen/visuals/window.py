"""The performance window: shows frames, reports keys.

Only pygame's display is initialised (never ``pygame.init()``), so opening the window can
not grab or disturb the sound device that the synth process owns. Without a display the
window refuses with a one-line ``DisplayUnavailable`` before SDL is touched, because
SDL's own failure messages on a headless box are long and unhelpful.

All methods must be called from the main thread (SDL's rule on most platforms).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import numpy as np  # noqa: E402
import pygame  # noqa: E402

NO_DISPLAY = "no display (DISPLAY is not set): run with --no-window, or use livegen render"


class DisplayUnavailable(RuntimeError):
    """There is no screen to open a window on (headless machine, SSH without X)."""


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
        self._font: pygame.font.Font | None = None
        self._open = False
        try:
            pygame.display.init()
            if not 0 <= self.display < max(1, pygame.display.get_num_displays()):
                self.display = 0  # the named screen is not connected: use the first
            pygame.display.set_caption(title)
            self._screen = self._set_mode(fullscreen)
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
        """Actions since the last poll: "quit", "panic", "fullscreen", "hud", "screenshot",
        "record", or "key:<name>"."""
        actions: list[str] = []
        close_events = {pygame.QUIT, getattr(pygame, "WINDOWCLOSE", pygame.QUIT)}
        for ev in pygame.event.get():
            if ev.type in close_events:
                action = "quit"
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
            if action == "quit" and action in actions:
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
        pygame.image.save(self._screen, str(path))
        return path

    def pixels(self, size: tuple[int, int] | None = None) -> np.ndarray:
        """What the window shows now (HUD included) as a new ``(h, w, 3)`` array, scaled to
        ``size`` (width, height) when given: a recording keeps one size while the window changes."""
        surface = self._screen
        if size is not None and surface.get_size() != tuple(size):
            surface = pygame.transform.scale(surface, tuple(size))
        return pygame.surfarray.array3d(surface).swapaxes(0, 1)

    def close(self) -> None:
        """Close the window; safe to call twice."""
        if self._open:
            self._open = False
            if self._font is not None:
                pygame.font.quit()
            pygame.display.quit()

    def __enter__(self) -> "Window":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
