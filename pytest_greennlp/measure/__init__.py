"""Meters: timing, memory, FLOPs, energy and the hardware fingerprint (one module each)."""
