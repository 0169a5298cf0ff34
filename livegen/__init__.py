"""livegen: real-time generative music and visuals, played from MIDI controllers and OSC."""

__version__ = "0.1.0"
