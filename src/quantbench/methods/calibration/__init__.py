"""Calibration plumbing shared by AWQ and SmoothQuant: per-channel input statistics and scale folding."""
