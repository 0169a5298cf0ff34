"""What a loaded patch is: frozen, validated configuration, one dataclass per TOML section.

The loader builds these from a TOML file after checking every key, so the engine can read
them without re-validating. Defaults here are the defaults of an empty patch file.
Mappings and triggers use the control layer's own dataclasses (``MidiMap``, ``OscMap``,
``Trigger``) so MIDI learn and patches speak the same language.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from livegen.control.mapping import MidiMap, OscMap, Trigger
from livegen.music.scales import Key, parse_tonic

#: Fields of ``[voices.<name>]`` and their kind: "wave" (a waveform name) or "float".
VOICE_FIELDS: dict[str, str] = {
    "waveform": "wave",
    "detune": "float",
    "attack": "float",
    "decay": "float",
    "sustain": "float",
    "release": "float",
    "cutoff": "float",
    "resonance": "float",
    "env_amount": "float",
    "gain": "float",
    "pan": "float",
}
#: Allowed ranges of the float voice fields: the same as livegen.sound.synth's VoiceSpec
#: checks (kept here so the loader need not import the synth), so that a voice the patch
#: accepts never fails when the synth builds it. detune is in cents, env_amount in octaves.
VOICE_RANGES: dict[str, tuple[float, float]] = {
    "detune": (0.0, 100.0),
    "attack": (0.001, 10.0),
    "decay": (0.005, 10.0),
    "sustain": (0.0, 1.0),
    "release": (0.005, 20.0),
    "cutoff": (20.0, 20000.0),
    "resonance": (0.0, 1.0),
    "env_amount": (-4.0, 8.0),
    "gain": (0.0, 1.0),
    "pan": (-1.0, 1.0),
}
WAVEFORMS = ("saw", "square", "triangle", "sine")
TRIGGER_ACTIONS = ("panic", "mutate", "answer", "tap", "start", "stop", "continue", "quit")
TRIGGER_PREFIXES = ("scene:", "learn:")
OSC_SEND_KINDS = ("notes", "beats", "params", "clock", "transport")  # = outputs.osc_out.SEND_KINDS (tested)
RECORD_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv")  # what ``[visuals] record`` may write (H.264 in each)
SHARE_KINDS = ("", "ndi", "syphon", "spout")  # ``[visuals] share``: frames to other programs
ON_CLOSE = ("continue", "quit")  # ``[visuals] on_close``: the window closed by the system stops the show?
CLOCK_SOURCES = ("internal", "midi", "link")


@dataclass(frozen=True)
class ClockConfig:
    """Tempo and transport. ``lookahead`` is how far ahead (seconds) notes are generated."""

    bpm: float = 120.0
    beats_per_bar: int = 4
    source: str = "internal"  # "internal", "midi" (follow an external MIDI clock) or "link" (Ableton Link)
    send_clock: bool = False
    lookahead: float = 0.25


@dataclass(frozen=True)
class KeyConfig:
    """The key as written in the patch ("F#", "dorian"); ``.key`` is the music-layer Key."""

    tonic: str = "C"
    scale: str = "major"

    @property
    def key(self) -> Key:
        return Key(parse_tonic(self.tonic), self.scale)


@dataclass(frozen=True)
class AudioConfig:
    """The built-in synth's output. ``device`` "" = default, a str = name substring, an int = index."""

    enabled: bool = True
    device: str | int = ""
    sample_rate: int = 48000
    blocksize: int = 256
    master_gain: float = 0.5


@dataclass(frozen=True)
class GeneratorConfig:
    """One ``[[generators]]`` entry. ``params`` are initial live values (names without prefix);
    ``options`` go to the generator's constructor."""

    name: str
    kind: str = "arpeggiator"
    voice: str = "lead"
    channel: int = 0
    enabled: bool = True
    seed: int | None = None
    params: dict[str, float] = field(default_factory=dict)
    options: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class MidiConfig:
    """MIDI ports (name substrings; "*" = all inputs), mappings and triggers."""

    inputs: tuple[str, ...] = ("*",)
    outputs: tuple[str, ...] = ()
    virtual_output: bool = True
    client_name: str = "livegen"
    maps: tuple[MidiMap, ...] = ()
    triggers: tuple[Trigger, ...] = ()
    panic_on_all_notes_off: bool = True  # CC 120 / 123 from a MIDI input panics livegen


@dataclass(frozen=True)
class OscTarget:
    """Somewhere OSC is sent (TouchDesigner, Max, another laptop)."""

    name: str
    port: int
    host: str = "127.0.0.1"
    prefix: str = "/livegen"
    send: tuple[str, ...] = ("notes", "beats", "params")


@dataclass(frozen=True)
class OscConfig:
    """The OSC server (``allow`` empty = any sender), its mappings, triggers and send targets."""

    host: str = "127.0.0.1"
    port: int = 9000
    enabled: bool = True
    allow: tuple[str, ...] = ()
    instance: str = ""  # this livegen's name in a show of several ("" = the patch's name)
    maps: tuple[OscMap, ...] = ()
    triggers: tuple[Trigger, ...] = ()
    targets: tuple[OscTarget, ...] = ()


@dataclass(frozen=True)
class SuperColliderConfig:
    """Optional scsynth output (notes as /s_new with ``synthdef`` in ``group``).

    ``synthdef_file``: a compiled ``.scsyndef`` livegen sends to the server at start (path
    relative to the patch; "" = the SynthDef is already there, e.g. added from sclang)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 57110
    synthdef: str = "default"
    group: int = 1
    synthdef_file: str = ""


@dataclass(frozen=True)
class VisualsConfig:
    """The visuals window: an internal ``width`` x ``height`` image drawn ``scale`` times larger."""

    enabled: bool = True
    width: int = 320
    height: int = 240
    fps: int = 30
    scale: int = 2
    source: str = "ripples"
    fullscreen: bool = False
    sources: tuple[str, ...] = ()      # the sources ``visuals.source`` switches between (default: source)
    source_file: str = ""              # picture / video file (or camera number) for those kinds
    latent_model: str = ""             # "latent" source: a latent model (VAE/GAN) file; "" = the shipped one
    latent_anchors: str = ""           # "latent" source: anchors (.json or .npy latent vectors); "" = generated
    latent_seed: int = 0               # "latent" source: seeds its pitch directions and generated anchors
    style: bool = False                # run the style network on the frames
    style_model: str = ""              # a trained style model; "" = the shipped one
    style_quantize: str = "none"       # "bar": style weight changes land on the next downbeat
    style_threads: int = 1             # torch threads for the style network
    style_compile: bool = False        # torch.compile the network (first run compiles; cached after)
    style_worker: str = "process"      # "process" (own interpreter, restarted if it dies) or "thread"
    style_processes: int = 2           # style processes working on alternate frames ("process" worker)
    display: int = 0                   # which screen the window opens on
    screenshot_dir: str = ""           # where screenshots go ("" = ./screenshots)
    record: str = ""                   # record the show to this video ({time} = a timestamp); "" = not at start
    record_hud: bool = False           # record the window as shown, HUD included (else the frames, without it)
    virtual_camera: bool = False       # send the frames to a virtual webcam (pyvirtualcam)
    share: str = ""                    # "ndi": send the frames as an NDI source ("syphon"/"spout": not built in)
    on_close: str = "continue"         # window closed by the system / display lost: "continue" the music, or "quit"

    def source_list(self) -> tuple[str, ...]:
        """The switchable sources, the initial ``source`` among them."""
        if not self.sources:
            return (self.source,)
        return self.sources if self.source in self.sources else (self.source, *self.sources)


@dataclass(frozen=True)
class Patch:
    """A whole performance setup.

    ``scenes`` maps a scene name to parameter values (a scene may also hold "bpm").
    ``path`` and ``source_text`` are kept so later checks (``check_params``) can point at
    the line in the file that is wrong.
    """

    name: str = "untitled"
    description: str = ""
    clock: ClockConfig = field(default_factory=ClockConfig)
    key: KeyConfig = field(default_factory=KeyConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    voices: dict[str, dict[str, float | str]] = field(default_factory=dict)
    generators: tuple[GeneratorConfig, ...] = ()
    midi: MidiConfig = field(default_factory=MidiConfig)
    osc: OscConfig = field(default_factory=OscConfig)
    supercollider: SuperColliderConfig = field(default_factory=SuperColliderConfig)
    scenes: dict[str, dict[str, float]] = field(default_factory=dict)
    visuals: VisualsConfig = field(default_factory=VisualsConfig)
    params: dict[str, float] = field(default_factory=dict)
    path: str | None = None  # the file it came from; None when parsed from a string
    source_text: str = field(default="", repr=False, compare=False)

    def generator(self, name: str) -> GeneratorConfig:
        """The generator called ``name`` (KeyError if none)."""
        for g in self.generators:
            if g.name == name:
                return g
        raise KeyError(name)
