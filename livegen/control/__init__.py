"""Control in: the parameter store, MIDI and OSC input, mappings and MIDI learn."""
