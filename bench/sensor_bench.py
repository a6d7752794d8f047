"""The running sensor on far faces: cost per frame, time to report, flicker, 20-px faces.

A synthetic 640×480, 30 fps video (bench/scenes.py: four faces of 20–22 px from the
shared portraits appear one by one over a panning, face-free background) goes through the
sensor's detection (`person.scan.Scanner`, or the BlazeFace fallback) frame by frame. In
the same run, interleaved, one bare full-range BlazeFace invoke is timed; the sensor's
cost is its mean time per frame over the video divided by the mean bare invoke.

    .venv/bin/python bench/sensor_bench.py [--data ../shared/data] [--rounds 2]

Prints, per detector: cost ratio (target ≤ 2.5), for each face the video time from its
first frame to its first report (target ≤ 0.3 s), flicker (frames on which a face that
was already reported and is still in view is not reported), the share of frames on which
each visible face is reported, and reported boxes that match no face.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scenes import DATA, FAR_SCENE, Scene

from mlsensors.person.sensor import SensorOptions, sensor_detector
from mlsensors.vision.detector import BlazeFace, FaceDetector
from mlsensors.vision.suppress import iou_matrix

FPS = 30.0
FRAMES = 120


def evaluate(reports: list[list], truths: list[list]) -> dict:
    """Latency, flicker, coverage and strays of per-frame reports against the truth."""
    latency, flicker, seen, visible, strays = {}, 0, 0, 0, 0
    reported_once: set[int] = set()
    for k, (faces, truth) in enumerate(zip(reports, truths, strict=True)):
        boxes = np.array([f.box for f in faces], np.float32).reshape(-1, 4)
        ids = [i for i, a in enumerate(FAR_SCENE) if a.first <= k <= a.last]
        tb = np.array(truth, np.float32).reshape(-1, 4)
        hit = iou_matrix(tb, boxes) >= 0.3 if len(tb) and len(boxes) else \
            np.zeros((len(tb), len(boxes)), bool)
        for row, i in enumerate(ids):
            visible += 1
            if hit[row].any():
                seen += 1
                if i not in latency:
                    latency[i] = (k - FAR_SCENE[i].first) / FPS
                reported_once.add(i)
            elif i in reported_once:
                flicker += 1
        strays += int((~hit.any(axis=0)).sum()) if len(boxes) else 0
    return {"latency": latency, "flicker": flicker, "coverage": seen / max(1, visible),
            "strays": strays}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--rounds", type=int, default=2, help="passes over the video")
    args = parser.parse_args()
    scene = Scene(args.data, FaceDetector().detect)
    frames, truths = zip(*(scene.frame(k) for k in range(FRAMES)), strict=True)
    bare = BlazeFace("full", tiling=False)
    bare.prepare(frames[0])
    sensors = {"YuNet scanner (default)": lambda: sensor_detector(SensorOptions()),
               "BlazeFace fallback": lambda: sensor_detector(SensorOptions(model="full"))}
    invoke: list[float] = []
    cost: dict[str, list[float]] = {name: [] for name in sensors}
    results = {}
    for _ in range(args.rounds):
        live = {name: make() for name, make in sensors.items()}
        reports: dict[str, list] = {name: [] for name in sensors}
        for frame in frames:
            t = time.perf_counter()
            bare.model.run()
            invoke.append(time.perf_counter() - t)
            for name, sensor in live.items():
                t = time.perf_counter()
                reports[name].append(sensor.detect(frame))
                cost[name].append(time.perf_counter() - t)
        results = {name: evaluate(r, list(truths)) for name, r in reports.items()}
    base = statistics.median(invoke)
    mean_invoke = statistics.fmean(invoke)
    print(f"{FRAMES} frames of 640×480 at {FPS:.0f} fps, {len(FAR_SCENE)} faces of "
          f"{min(a.height for a in FAR_SCENE):.0f}–{max(a.height for a in FAR_SCENE):.0f} px; "
          f"bare full-range invoke {base * 1000:.2f} ms (median)")
    for name, r in results.items():
        # amortised: mean per frame against the mean bare invoke of the same frames
        ratio = statistics.fmean(cost[name]) / mean_invoke
        lat = ", ".join(f"{r['latency'][i]:.2f}" if i in r["latency"] else "never"
                        for i in range(len(FAR_SCENE)))
        print(f"  {name:24} cost {ratio:5.2f}× (target ≤ 2.5)  time to report [s]: {lat}  "
              f"flicker {r['flicker']}  reported {r['coverage']:.0%} of visible  "
              f"stray boxes {r['strays']}")


if __name__ == "__main__":
    main()
