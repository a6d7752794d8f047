"""BlazeFace (this project) against dlib's HOG face detector, on the same 640×480 photo.

dlib's HOG detector is the default of the popular face_recognition library, so it is
the yardstick many users know. Both are timed interleaved in one run; the figure that
matters is the ratio. Needs the `id` extra (dlib).

    .venv/bin/python bench/detector_vs_hog.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import time

from mlsensors.benchmark import bench_frame
from mlsensors.vision.detector import FaceDetector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    import dlib

    image = bench_frame()
    hog = dlib.get_frontal_face_detector()
    blaze = FaceDetector(tiling=False)
    tiled = FaceDetector(tiling=True)
    timings: dict[str, list[float]] = {"blazeface": [], "blazeface tiled": [], "dlib HOG": []}
    found = {}
    for _ in range(args.rounds):
        for name, run in (("blazeface", lambda: blaze.detect(image)),
                          ("blazeface tiled", lambda: tiled.detect(image)),
                          ("dlib HOG", lambda: hog(image, 1))):
            start = time.perf_counter()
            found[name] = len(run())
            timings[name].append((time.perf_counter() - start) * 1000)
    base = statistics.median(timings["blazeface"])
    print(f"640×480 photo, {args.rounds} interleaved rounds, medians:")
    for name, values in timings.items():
        ms = statistics.median(values)
        print(f"  {name:16} {ms:8.2f} ms  {1000 / ms:7.1f} FPS  {ms / base:6.1f}× "
              f"blazeface  faces {found[name]}")


if __name__ == "__main__":
    main()
