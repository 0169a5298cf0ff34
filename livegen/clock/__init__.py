"""Clocks: tempo and beat time, the deadline dispatcher, MIDI clock in and out."""
