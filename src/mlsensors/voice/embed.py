"""One second of speech → a 76-D command embedding, from MLPerf Tiny's DS-CNN.

The DS-CNN keyword spotter (Apache-2.0) was trained on 35 words of Speech Commands;
its last hidden layer (64 averaged channels) describes a short word well beyond the
twelve classes it outputs. The embedding is that layer, L2-normalised, beside
`PROBABILITY_WEIGHT` × the square roots of its 12 class probabilities (a unit vector
already), normalised again. Measured on ../shared/data/voice with speakers split in two
halves (bench/voice_bench.py): nearest command centre over 10 words, 5 shots, across
speakers: hidden layer alone 0.909, with the probabilities 0.915; openWakeWord's 96-D
speech embedding (disputed licence, see docs/voice.md) 0.56 in the same protocol.

No back-propagation anywhere: enrolment stores these vectors, recognition compares.
"""

from __future__ import annotations

import warnings

import numpy as np

from mlsensors.errors import ModelError
from mlsensors.voice.mfcc import mfcc

MODEL = "kws_ref_model.tflite"
HIDDEN_TENSOR = "functional_1/flatten/Reshape"
DIM = 64 + 12
PROBABILITY_WEIGHT = 0.5


class CommandEmbedder:
    """The DS-CNN on LiteRT, built from verified bytes; reads its hidden layer too."""

    def __init__(self, model_bytes: bytes | None = None, store=None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        from mlsensors.vision.model import native_notices_filtered

        if model_bytes is None:
            from mlsensors.models import ModelStore

            model_bytes = (store or ModelStore()).load_bytes(MODEL)
        try:
            with native_notices_filtered(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "preserve all tensors is for debugging"
                self._it = Interpreter(model_content=model_bytes, num_threads=1,
                                       experimental_preserve_all_tensors=True)
                self._it.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"LiteRT cannot load {MODEL}: {e}") from None
        (inp,) = self._it.get_input_details()
        (out,) = self._it.get_output_details()
        hidden = [t for t in self._it.get_tensor_details() if t["name"] == HIDDEN_TENSOR]
        if tuple(inp["shape"]) != (1, 49, 10, 1) or len(hidden) != 1:
            raise ModelError(f"{MODEL} does not have the DS-CNN layout this code reads")
        self._in = inp["index"]
        self._in_q = inp["quantization"]
        self._out = (out["index"], *out["quantization"])
        self._hidden = (hidden[0]["index"], *hidden[0]["quantization"])

    def _dequant(self, spec) -> np.ndarray:
        index, scale, zero = spec
        return (self._it.get_tensor(index).astype(np.float32) - zero) * scale

    def run(self, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(hidden layer (64,), class probabilities (12,)) for one second of audio."""
        scale, zero = self._in_q
        q = np.clip(np.round(mfcc(window) / scale + zero), -128, 127).astype(np.int8)
        self._it.set_tensor(self._in, q[None, :, :, None])
        self._it.invoke()
        return self._dequant(self._hidden)[0], self._dequant(self._out)[0]

    def embed(self, window: np.ndarray) -> np.ndarray:
        """The unit-length command embedding (DIM,) of one second of audio."""
        hidden, probs = self.run(window)
        return combine(hidden, probs)


def combine(hidden: np.ndarray, probs: np.ndarray) -> np.ndarray:
    h = hidden / max(float(np.linalg.norm(hidden)), 1e-9)
    p = np.sqrt(np.clip(probs, 0.0, None))
    p = p / max(float(np.linalg.norm(p)), 1e-9)
    v = np.concatenate([h, PROBABILITY_WEIGHT * p]).astype(np.float32)
    return v / float(np.linalg.norm(v))
