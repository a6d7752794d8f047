"""Pixels in, faces out: preprocess → model → decode → suppress, each stage its own module.

`detector.FaceDetector` composes them; every stage is also usable and testable alone.
"""
