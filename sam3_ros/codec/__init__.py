"""Conversions at the edges: mask run-length encoding and camera image encodings. Pure numpy."""
