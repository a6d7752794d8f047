"""Detector speed, measured in one run so that ratios survive a noisy machine.

Three things are timed, interleaved round by round: the bare LiteRT invoke of the
model, the end-to-end `detect()` at 640×480 (letterbox + invoke + decode + NMS +
back to pixels), and decode + NMS alone on a saved model output. The ratio
end-to-end / bare invoke is the overhead of everything that is not the network.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import numpy as np

from mlsensors.vision.detector import FaceDetector
from mlsensors.vision.suppress import weighted_nms


@dataclass(frozen=True, slots=True)
class DetectorBench:
    model: str
    frame: str
    rounds: int
    invoke_ms: float
    detect_ms: float
    detect_tiled_ms: float
    decode_nms_ms: float
    faces: int

    @property
    def ratio(self) -> float:
        return self.detect_ms / self.invoke_ms

    @property
    def fps(self) -> float:
        return 1000.0 / self.detect_ms

    def as_dict(self) -> dict:
        return asdict(self) | {"ratio": round(self.ratio, 3), "fps": round(self.fps, 1)}


def bench_frame(width: int = 640, height: int = 480) -> np.ndarray:
    """A real photograph (the astronaut scikit-image ships), as the demo frames it."""
    from mlsensors.sources.demo import DemoSource

    return DemoSource(width=width, height=height).render(0)


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def bench_detector(model: str = "full", rounds: int = 200, threads: int | None = None,
                   frame: np.ndarray | None = None) -> DetectorBench:
    image = bench_frame() if frame is None else frame
    single = FaceDetector(model, threads=threads, tiling=False)
    tiled = FaceDetector(model, threads=threads, tiling=True)
    faces = single.detect(image)
    single.prepare(image)
    raw = single.infer()
    for _ in range(10):
        single.detect(image)
        tiled.detect(image)
    invoke, detect, detect_tiled, post = [], [], [], []
    for i in range(rounds):
        single.prepare(image)
        t = time.perf_counter()
        single.model.run()
        invoke.append(_ms(t))
        t = time.perf_counter()
        single.detect(image)
        detect.append(_ms(t))
        t = time.perf_counter()
        weighted_nms(single.decode(raw))
        post.append(_ms(t))
        if i % 4 == 0:
            t = time.perf_counter()
            tiled.detect(image)
            detect_tiled.append(_ms(t))
    return DetectorBench(
        model=model, frame=f"{image.shape[1]}x{image.shape[0]}", rounds=rounds,
        invoke_ms=statistics.median(invoke), detect_ms=statistics.median(detect),
        detect_tiled_ms=statistics.median(detect_tiled),
        decode_nms_ms=statistics.median(post), faces=len(faces),
    )

