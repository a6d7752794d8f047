"""One second of speech → the DS-CNN's description of it (268 numbers), no training.

MLPerf Tiny's keyword spotter (Apache-2.0, trained on 35 Speech Commands words) is used
as a fixed feature extractor. Its last class layer only knows twelve answers, but its
inner layers describe any short word: the raw features are the time-and-frequency means
of three of its activation maps (the third depthwise-separable block's two outputs and
the fourth, last block's output), the spread over time of the last one (how the word
moves), each scaled to unit length,
and 0.5 × the square roots of its 12 class probabilities (what it thinks was said).

Why these: measured on ../shared/data/voice with everything chosen on one half of the
speakers and reported on the other (docs/voice.md), one speaker enrolling with 3
takes, misses at 1 % false accepts: the last layer and probabilities alone (as before)
9.8 %, the three layers, the spread and the probabilities, normalised
(voice/normalise.py, voice/snorm.py) 2.5 %. The
earlier layers keep how this speaker says the word, which the last one was trained to
throw away; the whitening decides how much each part counts.

No back-propagation anywhere: enrolment stores these vectors, recognition compares.
"""

from __future__ import annotations

import warnings

import numpy as np

from mlsensors.errors import ModelError
from mlsensors.voice.mfcc import mfcc

MODEL = "kws_ref_model.tflite"
CLASSES = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes",
           "_silence_", "_unknown_")
"""The DS-CNN's outputs, in the order of MLPerf Tiny's training scripts."""
_BLOCK = "functional_1/activation_{}/Relu;"
LAYERS = (5, 6, 8)
"""Activation maps (25 time × 5 frequency × 64) whose means are kept: the outputs of
the 3rd block's depthwise and pointwise convolutions and of the 4th's pointwise one."""
PROBABILITY_WEIGHT = 0.5
RAW_DIM = 64 * len(LAYERS) + 64 + len(CLASSES)
PLAIN = np.r_[64 * (len(LAYERS) - 1):64 * len(LAYERS), RAW_DIM - len(CLASSES):RAW_DIM]
"""Where the last layer's mean and the probabilities sit in a raw vector (the part that
is not whitened: see voice/normalise.py)."""


def _unit(x: np.ndarray) -> np.ndarray:
    return x / max(float(np.linalg.norm(x)), 1e-9)


class CommandEmbedder:
    """The DS-CNN on LiteRT, built from verified bytes; reads inner layers too."""

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
        maps = {}
        for t in self._it.get_tensor_details():
            for k in LAYERS:
                if t["name"].startswith(_BLOCK.format(k)) and tuple(t["shape"]) == (1, 25, 5, 64):
                    maps[k] = (t["index"], *t["quantization"])
        if tuple(inp["shape"]) != (1, 49, 10, 1) or len(maps) != len(LAYERS) \
                or tuple(out["shape"]) != (1, len(CLASSES)):
            raise ModelError(f"{MODEL} does not have the DS-CNN layout this code reads")
        self._in = inp["index"]
        self._in_q = inp["quantization"]
        self._out = (out["index"], *out["quantization"])
        self._maps = [maps[k] for k in LAYERS]

    def _dequant(self, spec) -> np.ndarray:
        index, scale, zero = spec
        return (self._it.get_tensor(index).astype(np.float32) - zero) * scale

    def run(self, window: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """(the LAYERS' activation maps (25, 5, 64) each, class probabilities (12,))."""
        scale, zero = self._in_q
        q = np.clip(np.round(mfcc(window) / scale + zero), -128, 127).astype(np.int8)
        self._it.set_tensor(self._in, q[None, :, :, None])
        self._it.invoke()
        return [self._dequant(m)[0] for m in self._maps], self._dequant(self._out)[0]

    def embed(self, window: np.ndarray) -> np.ndarray:
        """The raw features (RAW_DIM,) of one second of audio."""
        maps, probs = self.run(window)
        return features(maps, probs)

    def probabilities(self, window: np.ndarray) -> np.ndarray:
        return self.run(window)[1]


def features(maps: list[np.ndarray], probs: np.ndarray) -> np.ndarray:
    """Pure: activation maps and probabilities → the raw feature vector."""
    parts = [_unit(m.reshape(-1, 64).mean(axis=0)) for m in maps]
    parts.append(_unit(maps[-1].mean(axis=1).std(axis=0)))
    parts.append(PROBABILITY_WEIGHT * _unit(np.sqrt(np.clip(probs, 0.0, None))))
    return np.concatenate(parts).astype(np.float32)
