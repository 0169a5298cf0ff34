"""Benchmarks: the figures the targets are stated in, measured on this machine."""
