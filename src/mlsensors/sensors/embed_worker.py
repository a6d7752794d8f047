"""Where embeddings are computed: beside the detection loop, not in it.

dlib holds the GIL for the whole ~100 ms of a descriptor (measured: a 1 ms ticker
thread stalls for ~90 ms), so a worker *thread* would freeze the detection loop on every
embedding. `ProcessWorker` therefore runs the embedder in one child process at a lower
priority; what crosses over is a small crop around the face (`embed.crop_around`), never
the frame, and only on this machine. `InlineWorker` computes synchronously and
deterministically, for tests and one-shot tools.

Both have the same shape: `submit(tag, crop)` when `idle`, then `poll()` returns the
finished (tag, vector or error) results. One job at a time: the scheduler decides what
is most worth embedding at the moment the worker becomes free, so no backlog builds up.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlsensors.errors import MlsensorsError
from mlsensors.vision.embed import Crop, FaceEmbedder


@dataclass(frozen=True, slots=True)
class EmbedResult:
    tag: Any
    vector: np.ndarray | None
    error: str = ""


class InlineWorker:
    """Embeds at `submit` time in the caller's thread (deterministic; blocks ~100 ms)."""

    def __init__(self, embedder: FaceEmbedder | None = None) -> None:
        self.embedder = embedder if embedder is not None else FaceEmbedder()
        self._done: list[EmbedResult] = []
        self.count = 0

    @property
    def idle(self) -> bool:
        return True

    def submit(self, tag: Any, crop: Crop) -> None:
        self.count += 1
        try:
            self._done.append(EmbedResult(tag, self.embedder.embed_crop(crop)))
        except MlsensorsError as e:
            self._done.append(EmbedResult(tag, None, str(e)))

    def poll(self) -> list[EmbedResult]:
        done, self._done = self._done, []
        return done

    def wait(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None:
        pass


_embedder: FaceEmbedder | None = None


def _child_init(model_dir: str | None, jitter: int, niceness: int) -> None:
    global _embedder
    from mlsensors.models import ModelStore

    if niceness:
        with contextlib.suppress(OSError):
            os.nice(niceness)
    _embedder = FaceEmbedder(ModelStore(model_dir), jitter=jitter)


def _child_embed(crop: Crop | None) -> np.ndarray | None:
    if crop is None:
        return None
    assert _embedder is not None
    return _embedder.embed_crop(crop)


class ProcessWorker:
    """Embeds in one child process (spawned, models loaded once, niced by `niceness`)."""

    def __init__(self, model_dir: str | os.PathLike | None = None, *, jitter: int = 0,
                 niceness: int = 5) -> None:
        from mlsensors.models import ModelStore
        from mlsensors.vision.embed import RECOGNITION_MODEL, SHAPE_MODEL

        store = ModelStore(model_dir)
        store.path(SHAPE_MODEL)
        store.path(RECOGNITION_MODEL)
        self._args = (None if model_dir is None else str(model_dir), int(jitter), niceness)
        self.error = ""
        """Why the worker stopped, if it did (it then stays busy and embeds nothing)."""
        self._pool: ProcessPoolExecutor | None = None
        self._inflight: tuple[Any, Future] | None = None
        self._warmup: Future | None = None
        self.count = 0
        self._start()

    def _start(self) -> None:
        self._pool = ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"),
            initializer=_child_init, initargs=self._args,
        )
        self._warmup = self._pool.submit(_child_embed, None)

    @property
    def ready(self) -> bool:
        """True once the child has loaded its models."""
        return self._warmup is None or self._warmup.done()

    @property
    def idle(self) -> bool:
        return self._inflight is None and self.ready and self._pool is not None

    def submit(self, tag: Any, crop: Crop) -> None:
        if self._inflight is not None:
            raise RuntimeError("embedding worker is busy; submit only when idle")
        assert self._pool is not None
        self.count += 1
        self._inflight = (tag, self._pool.submit(_child_embed, crop))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job in flight (or the warm-up) finishes; True if it did."""
        from concurrent.futures import wait

        futures = [f for f in (self._warmup, self._inflight and self._inflight[1]) if f]
        if not futures:
            return True
        done, _ = wait(futures, timeout)
        return len(done) == len(futures)

    def poll(self) -> list[EmbedResult]:
        if self._warmup is not None and self._warmup.done():
            error = self._warmup.exception()
            self._warmup = None
            if error is not None:
                self.error = f"the embedding worker could not start: {error}"
                self.close()
                return []
        if self._inflight is None or not self._inflight[1].done():
            return []
        tag, fut = self._inflight
        self._inflight = None
        error = fut.exception()
        if error is None:
            return [EmbedResult(tag, fut.result())]
        if isinstance(error, BrokenProcessPool):
            self._restart()
        return [EmbedResult(tag, None, str(error) or type(error).__name__)]

    def _restart(self) -> None:
        self.close()
        self._start()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self._inflight = None
