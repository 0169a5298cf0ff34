"""Outputs: everything that sounds or shows the performance (MIDI ports, OSC, synths, visuals)."""
