"""mlsensors: turn a camera on a Linux box into a private ML sensor.

The sensor hands the rest of the system a few high-level facts (how many faces, where,
who is looking, which enrolled ID) and nothing else: no pixels leave it.
"""

from mlsensors.errors import (
    InputError,
    MlsensorsError,
    ModelError,
    ProtocolError,
    SourceError,
    StateError,
)
from mlsensors.types import Face, Frame, Keypoint, PersonFace, PersonResult

__all__ = [
    "Face",
    "Frame",
    "InputError",
    "Keypoint",
    "MlsensorsError",
    "ModelError",
    "PersonFace",
    "PersonResult",
    "ProtocolError",
    "SourceError",
    "StateError",
]
__version__ = "0.1.0"
