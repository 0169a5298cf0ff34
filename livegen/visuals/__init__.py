"""Visuals: music-reactive scenes, the window that shows them, and video export.

Frames are numpy ``uint8`` arrays of shape ``(height, width, 3)`` all the way through:
scene -> (style network, later) -> window / video writer. The window module imports
pygame, so it is loaded only when ``Window`` or ``DisplayUnavailable`` is first used;
headless renders never pay for it.
"""

from __future__ import annotations

from typing import Any

from livegen.visuals.output import VisualsOutput
from livegen.visuals.scenes import SCENES, FlowField, RippleField, Scene, create_scene
from livegen.visuals.video import FrameWriter, write_png

__all__ = [
    "SCENES", "DisplayUnavailable", "FlowField", "FrameWriter", "RippleField", "Scene",
    "VisualsOutput", "Window", "create_scene", "write_png",
]


def __getattr__(name: str) -> Any:
    if name in ("Window", "DisplayUnavailable", "display_available"):
        from livegen.visuals import window

        return getattr(window, name)
    raise AttributeError(f"module 'livegen.visuals' has no attribute {name!r}")
