"""mlsensors: turn a camera on a Linux box into a private ML sensor.

The sensor hands the rest of the system a few high-level facts (how many faces, where,
who is looking, which enrolled ID) and nothing else: no pixels leave it.
"""

from mlsensors.limits import apply_decoder_limits

apply_decoder_limits()  # before anything imports OpenCV

from mlsensors.errors import (  # noqa: E402
    InputError,
    MlsensorsError,
    ModelError,
    ProtocolError,
    SourceError,
    StateError,
)
from mlsensors.types import Face, Frame, Keypoint, PersonFace, PersonResult  # noqa: E402

__all__ = [
    "Face",
    "FaceDetector",
    "Frame",
    "InputError",
    "Keypoint",
    "MlsensorsError",
    "ModelError",
    "PersonFace",
    "PersonResult",
    "PersonSensor",
    "ProtocolError",
    "SourceError",
    "StateError",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    # The detector and sensor pull in LiteRT and OpenCV; import them only when asked for,
    # so that `import mlsensors` (types, errors, wire formats) stays light.
    if name == "FaceDetector":
        from mlsensors.vision.detector import FaceDetector

        return FaceDetector
    if name == "PersonSensor":
        from mlsensors.person.sensor import PersonSensor

        return PersonSensor
    raise AttributeError(f"module 'mlsensors' has no attribute {name!r}")
