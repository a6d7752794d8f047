"""Sensors: loops that turn a stream of frames into a stream of high-level results."""
