"""The sound domain: livegen's own "scsynth".

``synth`` is a deterministic numpy synth (used live and by ``livegen render``), ``server``
runs it in an audio process fed over a pipe, ``wav`` writes what ``render`` produced. This
package imports nothing from livegen but ``livegen.events`` and ``livegen.log``: it knows
nothing of models or visuals, so the audio process stays small and never loads torch.
"""

from livegen.sound.server import AudioUnavailable, SynthOutput
from livegen.sound.synth import DEFAULT_VOICES, Synth, VoiceSpec
from livegen.sound.wav import write_wav

__all__ = ["AudioUnavailable", "DEFAULT_VOICES", "Synth", "SynthOutput", "VoiceSpec", "write_wav"]
