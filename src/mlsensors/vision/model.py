"""The LiteRT interpreter, loaded only from verified bytes, with a zero-copy input.

The model is built from the exact bytes whose SHA-256 was checked (`ModelStore.load_bytes`),
never from a path that could change between check and load. The input tensor is written
in place through the interpreter's own buffer, so preprocessing needs no extra copy.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from mlsensors.errors import ModelError


def default_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


class TfliteModel:
    """One LiteRT interpreter with a single float32 input and named outputs."""

    def __init__(self, model_bytes: bytes, threads: int | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        try:
            self._interpreter = Interpreter(
                model_content=model_bytes, num_threads=threads or default_threads()
            )
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"LiteRT cannot load the model: {e}") from None
        (inp,) = self._interpreter.get_input_details()
        self.input_shape: tuple[int, ...] = tuple(int(v) for v in inp["shape"])
        self._input: Callable[[], np.ndarray] = self._interpreter.tensor(inp["index"])
        self._outputs = {
            d["name"]: (d["index"], tuple(int(v) for v in d["shape"]))
            for d in self._interpreter.get_output_details()
        }

    @property
    def output_shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: shape for name, (_, shape) in self._outputs.items()}

    def input_view(self) -> np.ndarray:
        """A writable view of the input tensor's batch element (H × W × C).

        Drop the view before `invoke`: LiteRT refuses to run while views are alive.
        """
        return self._input()[0]

    def invoke(self) -> dict[str, np.ndarray]:
        """Run the model; return copies of the outputs keyed by tensor name."""
        self._interpreter.invoke()
        return {name: self._interpreter.get_tensor(index) for name, (index, _) in
                self._outputs.items()}
