"""A fixed wake word from a shipped microWakeWord model, streaming on LiteRT.

The models (pymicro-wakeword 2.5.0, Apache-2.0) are streaming networks: each call takes
three 10 ms feature frames from the TFLite Micro audio front end (pymicro-features) and
keeps its own state between calls. The decision is the package's: the mean of the last
`window` probabilities above the model's cutoff (alexa 0.90 over 5). After a detection
the model is rebuilt (its state cleared) and stays quiet for `refractory` seconds, so
one utterance fires once.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from mlsensors.errors import InputError, ModelError
from mlsensors.voice.audio import SAMPLE_RATE


@dataclass(frozen=True, slots=True)
class WakeModel:
    """One shipped wake word and the package's decision constants for it."""

    name: str
    phrase: str
    cutoff: float
    window: int = 5

    @property
    def file(self) -> str:
        return f"microwakeword_{self.name}.tflite"


WAKE_MODELS = {m.name: m for m in (
    WakeModel("alexa", "Alexa", 0.90),
    WakeModel("hey_jarvis", "Hey Jarvis", 0.97),
    WakeModel("hey_mycroft", "Hey Mycroft", 0.95),
    WakeModel("okay_nabu", "Okay Nabu", 0.85),
)}
"""Cutoffs and windows from the JSON files beside each model in pymicro-wakeword 2.5.0."""

STEP = SAMPLE_RATE // 100


def wake_model(name: str) -> WakeModel:
    try:
        return WAKE_MODELS[name]
    except KeyError:
        raise InputError(f"unknown wake word {name!r}; shipped: "
                         f"{', '.join(sorted(WAKE_MODELS))}") from None


@dataclass(frozen=True, slots=True)
class WakeScore:
    """After each 30 ms step: the smoothed probability and whether it fired."""

    position: int
    probability: float
    fired: bool


class WakeWordDetector:
    def __init__(self, name: str = "alexa", *, store=None, model_bytes: bytes | None = None,
                 refractory: float = 1.0, cutoff: float | None = None) -> None:
        from pymicro_features import MicroFrontend

        self.model = wake_model(name)
        self.cutoff = self.model.cutoff if cutoff is None else float(cutoff)
        if model_bytes is None:
            from mlsensors.models import ModelStore

            model_bytes = (store or ModelStore()).load_bytes(self.model.file)
        self._bytes = model_bytes
        self._frontend_type = MicroFrontend
        self.refractory = int(refractory * SAMPLE_RATE)
        self._build()
        self.reset()

    def _build(self) -> None:
        from ai_edge_litert.interpreter import Interpreter

        from mlsensors.vision.model import native_notices_filtered

        try:
            with native_notices_filtered():
                self._it = Interpreter(model_content=self._bytes, num_threads=1)
                self._it.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"LiteRT cannot load {self.model.file}: {e}") from None
        (inp,) = self._it.get_input_details()
        (out,) = self._it.get_output_details()
        self._in, self._stride = inp["index"], int(inp["shape"][1])
        self._in_q, self._in_type = inp["quantization"], inp["dtype"]
        self._out, self._out_q = out["index"], out["quantization"]

    def reset(self) -> None:
        """Forget everything heard: front end, model state, smoothing window."""
        self._frontend = self._frontend_type()
        self._pending = b""
        self._features: list[np.ndarray] = []
        self._probs: deque[float] = deque(maxlen=self.model.window)
        self.position = 0
        self._quiet_until = 0

    def feed(self, samples: np.ndarray) -> list[WakeScore]:
        """int16 samples in stream order → one WakeScore per model step."""
        data = self._pending + np.asarray(samples, "<i2").tobytes()
        scores = []
        offset = 0
        while offset + 2 * STEP <= len(data):
            result = self._frontend.process_samples(data[offset:offset + 2 * STEP])
            offset += result.samples_read * 2
            self.position += result.samples_read
            if not result.features:
                continue
            self._features.append(np.asarray(result.features, np.float32))
            if len(self._features) == self._stride:
                scores.append(self._step())
        self._pending = data[offset:]
        return scores

    def _step(self) -> WakeScore:
        scale, zero = self._in_q
        q = np.round(np.stack(self._features) / scale + zero)
        info = np.iinfo(self._in_type)
        self._it.set_tensor(self._in, np.clip(q, info.min, info.max).astype(self._in_type)[None])
        self._features = []
        self._it.invoke()
        out_scale, out_zero = self._out_q
        p = (float(self._it.get_tensor(self._out).reshape(-1)[0]) - out_zero) * out_scale
        self._probs.append(p)
        mean = sum(self._probs) / len(self._probs) if len(self._probs) == self._probs.maxlen \
            else 0.0
        fired = mean > self.cutoff and self.position >= self._quiet_until
        if fired:
            position = self.position
            self._build()  # clears the streaming state, as the package's reset does
            self._probs.clear()
            self._quiet_until = position + self.refractory
        return WakeScore(self.position, mean, fired)
