"""Detector speed, measured in one run so that ratios survive a noisy machine.

Timed interleaved round by round: the bare LiteRT invoke of the model, the end-to-end
`detect()` at 640×480 (letterbox + invoke + decode + NMS + back to pixels), and decode +
NMS alone on a saved model output. The ratio end-to-end / bare invoke is the overhead of
everything that is not the network.

`bench_costs` puts every detector and the sensor loop on the same yardstick: the cost of
one 640×480 frame as a multiple of one bare full-range BlazeFace invoke, all measured
interleaved in one run (the sensor loop over a moving demo video, amortised per frame).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from mlsensors.vision.detector import BlazeFace
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
    single = BlazeFace(model, threads=threads, tiling=False)
    tiled = BlazeFace(model, threads=threads, tiling=True)
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


@dataclass(frozen=True, slots=True)
class Cost:
    name: str
    ms: float
    ratio: float
    """ms / one bare full-range BlazeFace invoke, measured in the same run."""


def bench_costs(rounds: int = 40, threads: int | None = None,
                frames: list[np.ndarray] | None = None, store=None) -> list[Cost]:
    """Per-frame cost of each detector and of the sensor loop, as ratios to one bare
    full-range BlazeFace invoke, interleaved in one run. `frames` (640×480) default to
    the demo's moving face; the sensor loop runs over them in order, one per round."""
    from mlsensors.models import ModelStore
    from mlsensors.models.manifest import DETECTOR_MODELS
    from mlsensors.person.scan import CHEAP_SCALE, regions
    from mlsensors.person.sensor import SensorOptions, sensor_detector
    from mlsensors.sources.demo import DemoSource
    from mlsensors.vision.detector import BlazeFace

    store = store or ModelStore()
    if frames is None:
        demo = DemoSource(width=640, height=480)
        frames = [demo.render(i) for i in range(rounds)]
    image = frames[0]
    bare = BlazeFace("full", threads, store=store, tiling=False)
    bare.prepare(image)
    runs: dict[str, Callable[[int], object]] = {
        "BlazeFace full-range detect()": lambda i: bare.detect(image),
    }
    tiled = BlazeFace("full", threads, store=store, tiling=True)
    runs["BlazeFace full-range, 4 tiles"] = lambda i: tiled.detect(image)
    short = BlazeFace("short", threads, store=store, tiling=False)
    runs["BlazeFace short-range detect()"] = lambda i: short.detect(image)
    fallback = sensor_detector(SensorOptions(model="full"), store)
    runs["sensor loop, BlazeFace (no YuNet)"] = lambda i: fallback.detect(frames[i])
    if not store.missing([DETECTOR_MODELS["yunet"]]):
        from mlsensors.vision.detector import make_engine
        from mlsensors.vision.yunet_detector import YunetDetector

        yunet = YunetDetector(store.load_bytes(DETECTOR_MODELS["yunet"]), threads)
        still = make_engine("yunet", threads, 0.6, store)
        region = regions(640, 480)[0]
        runs["YuNet, whole frame, one pass"] = lambda i: yunet.candidates(image)
        runs[f"YuNet, frame at {CHEAP_SCALE:g} size (cheap pass)"] = \
            lambda i: yunet.candidates(image, CHEAP_SCALE)
        runs["YuNet, one region (far-field look)"] = \
            lambda i: yunet.detect_region(image, region, check=False)
        runs["YuNet detect() (still picture, checked by RetinaFace too)"] = \
            lambda i: still.detect(image)
        sensor = sensor_detector(SensorOptions(model="yunet"), store)
        runs["sensor loop, YuNet (amortised)"] = lambda i: sensor.detect(frames[i])
    times: dict[str, list[float]] = {name: [] for name in runs}
    invoke: list[float] = []
    for run in runs.values():
        run(0)
    for i in range(rounds):
        bare.prepare(image)
        t = time.perf_counter()
        bare.model.run()
        invoke.append(_ms(t))
        for name, run in runs.items():
            t = time.perf_counter()
            run(i % len(frames))
            times[name].append(_ms(t))
    base = statistics.median(invoke)
    out = [Cost("bare full-range BlazeFace invoke", base, 1.0)]
    for name, values in times.items():
        if name.startswith("sensor"):
            # amortised: the mean over the frames, against the mean bare invoke of the
            # same rounds (a busy machine's stalls then weigh on both sides alike)
            ms = statistics.fmean(values)
            out.append(Cost(name, ms, ms / statistics.fmean(invoke)))
        else:
            ms = statistics.median(values)
            out.append(Cost(name, ms, ms / base))
    return out
