"""Where the gallery's distance threshold and confidence curve come from.

Embeds all 200 ORL faces (20 people × 10, grey 92×112 crops padded by half a face and
upscaled ×2 before detection) and the knn example photos with the real detector and
embedder, then prints the same-person / different-person distance distributions, the
false-reject and false-accept rates per threshold, and the ORL gallery gate (image 1 of
s1–s8 enrolled) at each threshold. docs/identification.md quotes its output.

    PYTHONPATH=src .venv/bin/python bench/identity_calibrate.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import cv2
import numpy as np

from mlsensors.person.face_identifier import FaceIdentifier
from mlsensors.person.gallery import THRESHOLD, confidence
from mlsensors.sources import read_image


def padded(path: Path) -> np.ndarray:
    grey = read_image(path)[:, :, 0]
    p = cv2.copyMakeBorder(grey, 56, 56, 46, 46, cv2.BORDER_CONSTANT, value=128)
    p = cv2.resize(p, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(cv2.cvtColor(p, cv2.COLOR_GRAY2RGB))


def pairs(vectors: np.ndarray, labels: list) -> tuple[np.ndarray, np.ndarray]:
    same, diff = [], []
    for i, j in itertools.combinations(range(len(labels)), 2):
        d = float(np.linalg.norm(vectors[i] - vectors[j]))
        (same if labels[i] == labels[j] else diff).append(d)
    return np.array(same), np.array(diff)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent
                        / "shared" / "data")
    args = parser.parse_args()
    ident = FaceIdentifier()

    labels, vecs = [], []
    for s in range(1, 21):
        for i in range(1, 11):
            path = args.data / "orl" / f"s{s}" / f"{i}.pgm"
            vecs.append(ident.largest_face(padded(path), str(path))[1])
            labels.append((s, i))
    orl = np.array(vecs)
    same, diff = pairs(orl, [s for s, _ in labels])
    print(f"ORL: {len(same)} same-person pairs, distance percentiles 50/90/99/max: "
          f"{np.percentile(same, [50, 90, 99, 100]).round(3)}")
    print(f"ORL: {len(diff)} different-person pairs, percentiles min/0.1/1/5/50: "
          f"{np.percentile(diff, [0, 0.1, 1, 5, 50]).round(3)}")

    knn = args.data / "faces" / "face_recognition_examples" / "knn_examples" / "train"
    kl, kv = [], []
    for person in sorted(knn.iterdir()):
        for f in sorted(person.iterdir()):
            kv.append(ident.largest_face(read_image(f), str(f))[1])
            kl.append(person.name)
    ksame, kdiff = pairs(np.array(kv), kl)
    print(f"knn train photos: same-person {np.sort(ksame).round(3)}, "
          f"different-person min {kdiff.min():.3f}")

    s_, i_ = np.array([s for s, _ in labels]), np.array([i for _, i in labels])
    gallery = orl[(s_ <= 8) & (i_ == 1)]
    dist = np.linalg.norm(orl[:, None] - gallery[None], axis=2)
    nearest, dmin = dist.argmin(1), dist.min(1)
    known, stranger = (s_ <= 8) & (i_ > 1), s_ > 8
    print("threshold  FRR(pairs)  FAR(pairs)  ORL gate: known right  strangers unknown")
    for th in (0.44, 0.46, 0.48, 0.50, 0.52, 0.54, 0.56, 0.58, 0.60):
        right = ((nearest[known] == s_[known] - 1) & (dmin[known] < th)).mean()
        rejected = (dmin[stranger] >= th).mean()
        mark = "  <- THRESHOLD" if abs(th - THRESHOLD) < 1e-9 else ""
        print(f"  {th:.2f}     {(same >= th).mean():8.4f}   {(diff < th).mean():9.5f}"
              f"   {right:17.3f}  {rejected:17.3f}{mark}")
    print("confidence(d):", {d: confidence(d) for d in (0.2, 0.31, 0.4, 0.45, 0.5, 0.519)})


if __name__ == "__main__":
    main()
