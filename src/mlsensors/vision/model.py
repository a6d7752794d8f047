"""The LiteRT interpreter, loaded only from verified bytes, with a zero-copy input.

The model is built from the exact bytes whose SHA-256 was checked (`ModelStore.load_bytes`),
never from a path that could change between check and load. The input tensor is written
in place through the interpreter's own buffer, so preprocessing needs no extra copy.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable

import numpy as np

from mlsensors.errors import ModelError

NATIVE_NOTICES = (
    b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    b"Failed to persist telemetry device ID",
    b"GPU device discovery failed",
)
"""Parts of lines that LiteRT's and onnxruntime's C++ runtimes print to stderr on every
load (a delegate created; no telemetry file or GPU in a sealed process): they say
nothing useful."""


@contextlib.contextmanager
def native_notices_filtered():
    """Hold back the runtime's known start-up notices on file descriptor 2 and pass on
    anything else it printed, so a user sees only lines that mean something.

    A pipe drained by a thread, not a file: the sealed sensing process may not write
    files, and the pipe never fills up however much the runtime prints.
    """
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    chunks: list[bytes] = []

    def drain() -> None:
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    saved = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        reader.join()
        os.close(read_end)
        for line in b"".join(chunks).splitlines(keepends=True):
            if not any(notice in line for notice in NATIVE_NOTICES):
                os.write(2, line)


def default_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


class TfliteModel:
    """One LiteRT interpreter with a single float32 input and named outputs."""

    def __init__(self, model_bytes: bytes, threads: int | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        try:
            with native_notices_filtered():
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

    def run(self) -> None:
        """Run the network on whatever the input tensor holds (the bare invoke)."""
        self._interpreter.invoke()

    def outputs(self) -> dict[str, np.ndarray]:
        """Copies of the outputs of the last run, keyed by tensor name."""
        return {name: self._interpreter.get_tensor(index) for name, (index, _) in
                self._outputs.items()}

    def invoke(self) -> dict[str, np.ndarray]:
        """Run the model and return its outputs."""
        self.run()
        return self.outputs()
