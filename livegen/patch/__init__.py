"""Patches: a performance setup (tempo, key, generators, mappings, outputs) as a TOML file.

Patches are data, never code. ``load_patch`` validates a file into frozen dataclasses and
reports mistakes as one-line ``PatchError``s with file, line and key; ``PatchWatcher``
reloads a patch while it is edited live; ``add_midi_map`` writes MIDI-learned mappings
back into the file without disturbing the performer's comments.
"""

from livegen.patch.loader import PatchError, check_params, load_patch, locate, parse_patch
from livegen.patch.save import add_midi_map
from livegen.patch.schema import (
    AudioConfig,
    ClockConfig,
    GeneratorConfig,
    KeyConfig,
    MidiConfig,
    OscConfig,
    OscTarget,
    Patch,
    SuperColliderConfig,
    VisualsConfig,
)
from livegen.patch.watch import PatchWatcher

__all__ = [
    "AudioConfig",
    "ClockConfig",
    "GeneratorConfig",
    "KeyConfig",
    "MidiConfig",
    "OscConfig",
    "OscTarget",
    "Patch",
    "PatchError",
    "PatchWatcher",
    "SuperColliderConfig",
    "VisualsConfig",
    "add_midi_map",
    "check_params",
    "load_patch",
    "locate",
    "parse_patch",
]
