"""`mlsensors detect PATH...`: faces in image files and folders, as a table or JSON lines."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mlsensors.errors import MlsensorsError
from mlsensors.types import Face


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="find faces in image files or folders")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument("--json", action="store_true", help="one JSON object per input")
    p.add_argument("--model", choices=("auto", "yunet", "full", "short"), default="auto",
                   help="auto (default): YuNet when fetched (faces from ~16 px), else "
                        "BlazeFace full-range (faces up to ~5 m); short: BlazeFace < 2 m")
    p.add_argument("--threshold", type=float, default=None,
                   help="minimum confidence 0-1 on the calibrated scale (default 0.6)")
    p.add_argument("--no-tiling", action="store_true",
                   help="BlazeFace: one pass over the whole image only (faster, misses "
                        "tiny faces)")
    p.set_defaults(run=run)


def face_json(face: Face) -> dict:
    return {
        "box": [round(v, 1) for v in face.box],
        "score": round(face.score, 4),
        "model": face.model,
        "keypoints": {k.name.lower(): [round(v, 1) for v in face.keypoint(k)]
                      for k in face.landmarks},
        "facing": face.facing,
        "facing_score": round(face.facing_score, 3),
    }


def expand(paths: list[str]) -> list[Path | tuple[Path, MlsensorsError]]:
    """Folders become their image files (sorted); everything else is taken as given.

    A folder that holds no image file (empty, or a folder named like an image) stands as
    an error in its place, reported like an unreadable file: saying nothing and exiting
    0 would look like a run that found no faces.
    """
    from mlsensors.errors import SourceError
    from mlsensors.source_names import list_images

    out: list[Path | tuple[Path, MlsensorsError]] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            out.append(path)
            continue
        try:
            images = list_images(path)
        except SourceError as e:
            out.append((path, e))
            continue
        if not images:
            out.append((path, SourceError(f"{path}: a folder with no image files in it")))
        out.extend(images)
    return out


def run(args: argparse.Namespace) -> int:
    from mlsensors.cli.person import ensure_detector
    from mlsensors.sources.images import read_image
    from mlsensors.vision.detector import FaceDetector

    ensure_detector(args.model, stills=True)
    detector = FaceDetector(args.model, score_threshold=args.threshold,
                            tiling=not args.no_tiling)
    failed = False
    for item in expand(args.paths):
        path, problem = item if isinstance(item, tuple) else (item, None)
        try:
            if problem is not None:
                raise problem
            image = read_image(path)
            faces = detector.detect(image)
        except MlsensorsError as e:
            failed = True
            if args.json:
                print(json.dumps({"path": str(path), "error": str(e)}), flush=True)
            else:
                print(f"mlsensors: error: {e}", file=sys.stderr, flush=True)
            continue
        if args.json:
            print(json.dumps({"path": str(path), "width": image.shape[1],
                              "height": image.shape[0],
                              "faces": [face_json(f) for f in faces]}), flush=True)
        else:
            print(f"{path}  {image.shape[1]}×{image.shape[0]}  {len(faces)} face(s)")
            for i, f in enumerate(faces):
                x0, y0, x1, y1 = f.box
                facing = "facing" if f.facing else "not facing"
                print(f"  #{i}  box ({x0:.0f}, {y0:.0f})-({x1:.0f}, {y1:.0f})  "
                      f"score {f.score:.2f}  {facing} ({f.facing_score:.2f})", flush=True)
    return 1 if failed else 0
