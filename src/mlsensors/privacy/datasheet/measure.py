"""Everything the datasheet states about performance, measured now on this machine.

Nothing here is a constant copied from a document: detection quality is scored against
the labelled photos in the data folder, latency and throughput are timed, memory and the
privacy label come from a real `run_audit`. What cannot be measured (no data folder, no
identity model in this build) is recorded as a reason, and the datasheet prints it.
"""

from __future__ import annotations

import platform
import re
import statistics
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from mlsensors.privacy.audit import AuditReport, run_audit

IOU_MATCH = 0.3
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))
PORTRAITS = {"obama.jpg": 1, "obama2.jpg": 1, "biden.jpg": 1, "alex-lacamoire.png": 1,
             "lin-manuel-miranda.png": 1, "two_people.jpg": 2}


@dataclass(frozen=True, slots=True)
class PrPoint:
    threshold: float
    precision: float
    recall: float
    true_positives: int
    false_positives: int


@dataclass(frozen=True, slots=True)
class DetectionQuality:
    images: int
    labelled_faces: int
    default_threshold: float
    at_default: PrPoint
    curve: tuple[PrPoint, ...]
    portraits_counted: int
    portraits: int


@dataclass(frozen=True, slots=True)
class Timing:
    frame: str
    latencies_ms: tuple[float, ...]
    sealed_fps: float

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p95_ms(self) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]

    @property
    def fps(self) -> float:
        return 1000.0 / self.median_ms


@dataclass(frozen=True, slots=True)
class Measurements:
    generated: str
    machine: str
    data_dir: str | None
    detection: DetectionQuality | None
    timing: Timing | None
    audit: AuditReport | None
    not_measured: tuple[str, ...] = field(default_factory=tuple)


def _iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _matches(det, truth) -> bool:
    cx, cy = (det[0] + det[2]) / 2, (det[1] + det[3]) / 2
    return _iou(det, truth) >= IOU_MATCH or (truth[0] <= cx <= truth[2]
                                              and truth[1] <= cy <= truth[3])


def labelled_images(folder: Path) -> list[tuple[Path, list[tuple[float, ...]]]]:
    """dlib's training.xml boxes (x0, y0, x1, y1), plus its face-free dogs.jpg."""
    root = ET.parse(folder / "training.xml").getroot()
    out = []
    for image in root.iter("image"):
        boxes = []
        for b in image.iter("box"):
            left, top = float(b.get("left")), float(b.get("top"))
            boxes.append((left, top, left + float(b.get("width")),
                          top + float(b.get("height"))))
        out.append((folder / image.get("file"), boxes))
    if (folder / "dogs.jpg").exists():
        out.append((folder / "dogs.jpg", []))
    return out


def detection_quality(data: Path) -> DetectionQuality:
    from mlsensors.sources.images import read_image
    from mlsensors.vision.detector import OPTIONS, FaceDetector

    detector = FaceDetector("full", score_threshold=THRESHOLDS[0])
    scored: list[tuple[float, bool]] = []  # (score, matched) per detection
    labelled = 0
    sets = labelled_images(data / "faces" / "dlib_training")
    for path, truth in sets:
        labelled += len(truth)
        faces = sorted(detector.detect(read_image(path)), key=lambda f: -f.score)
        free = list(truth)
        for face in faces:
            hit = next((t for t in free if _matches(face.box, t)), None)
            if hit is not None:
                free.remove(hit)
            scored.append((face.score, hit is not None))

    def point(threshold: float) -> PrPoint:
        kept = [m for s, m in scored if s >= threshold]
        tp = sum(kept)
        fp = len(kept) - tp
        return PrPoint(threshold, tp / len(kept) if kept else 1.0,
                       tp / labelled if labelled else 0.0, tp, fp)

    default = OPTIONS["full"].score_threshold
    portraits = data / "faces" / "face_recognition_examples"
    standard = FaceDetector("full")
    counted = sum(len(standard.detect(read_image(portraits / name))) == n
                  for name, n in PORTRAITS.items() if (portraits / name).exists())
    present = sum((portraits / name).exists() for name in PORTRAITS)
    return DetectionQuality(len(sets), labelled, default, point(default),
                            tuple(point(t) for t in THRESHOLDS), counted, present)


def timing(frames: int = 120, sealed_seconds: float = 3.0) -> Timing:
    """Per-frame latency of the sensor loop in process, and the sealed child's fps."""
    from mlsensors.hub import Hub
    from mlsensors.person.sensor import PersonSensor
    from mlsensors.privacy.sealed import SealedSensor
    from mlsensors.sources.demo import DemoSource

    latencies = []
    with PersonSensor(DemoSource(realtime=False)) as sensor:
        items = iter(sensor.source.frames())
        shape = ""
        for i in range(frames + 5):
            frame = next(items)
            shape = f"{frame.width}×{frame.height}"
            start = time.perf_counter()
            sensor.process(frame)
            if i >= 5:  # the first frames warm caches and LiteRT up
                latencies.append((time.perf_counter() - start) * 1000)
    hub = Hub()
    count = [0]
    hub.subscribe(lambda s: count.__setitem__(0, count[0] + (s.status.state == "running")))
    with SealedSensor(hub, "demo", max_rate=500.0, realtime=False):
        deadline = time.monotonic() + 60
        while count[0] < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        first, start = count[0], time.monotonic()
        time.sleep(sealed_seconds)
        fps = (count[0] - first) / (time.monotonic() - start)
    return Timing(shape, tuple(latencies), fps)


def measure(data_dir: Path | None, audit_seconds: float = 3.0) -> Measurements:
    not_measured = []
    detection = None
    if data_dir is not None and (data_dir / "faces" / "dlib_training").is_dir():
        detection = detection_quality(data_dir)
    else:
        not_measured.append(
            f"detection recall/precision: no labelled data at {data_dir or '(none given)'} "
            f"(pass --data DIR with faces/dlib_training/training.xml)")
    not_measured.append("ID accuracy, false-accept rate and ID distance distributions: "
                        "this build has no identity pipeline in the sensing process yet")
    measured_timing = timing()
    audit = run_audit("demo", seconds=audit_seconds)
    cpu = _cpu_name()
    return Measurements(
        generated=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        machine=f"{platform.machine()}, {cpu}, Linux {platform.release()}, "
                f"Python {platform.python_version()}",
        data_dir=str(data_dir) if detection else None,
        detection=detection, timing=measured_timing, audit=audit,
        not_measured=tuple(not_measured),
    )


def _cpu_name() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    m = re.search(r"^(?:model name|Model)\s*:\s*(.+)$", text, re.M)
    cores = len(re.findall(r"^processor\s*:", text, re.M))
    return f"{m.group(1).strip() if m else 'unknown CPU'} ({cores} cores)"
