"""Typed errors for everything a user can get wrong.

Every error a user can cause (a bad file, a wrong array, a corrupt state file, a
malformed packet) is one of these, carries a one-line message that names the
problem, and is caught at the edge (CLI, server) and reported without a traceback.
Anything else escaping is a bug in mlsensors, not in the user's input.
"""

from __future__ import annotations


class MlsensorsError(Exception):
    """Base class: a problem the user can understand and fix from the message alone."""


class InputError(MlsensorsError, ValueError):
    """An image, frame or array that cannot be used (wrong shape, dtype, empty, corrupt)."""


class SourceError(MlsensorsError):
    """A source (file, folder, video, camera) that cannot be opened or read."""


class ModelError(MlsensorsError):
    """A model file that is missing, unverifiable or does not match its pinned hash."""


class StateError(MlsensorsError):
    """A stored state file (gallery, settings) that is corrupt, truncated or foreign."""


class ProtocolError(MlsensorsError):
    """A malformed record, frame or register write on a wire interface."""
