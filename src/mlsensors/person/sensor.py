"""The Person Sensor loop: frames in, `PersonResult`s out, one per processed frame.

source → detect (preprocess, model, decode, suppress) → [track → identify] → result

`PersonSensor` is iterable (for scripts and `mlsensors person run`) and can also be run
against a `Hub` (for `mlsensors serve`), where it publishes every result with a status
and obeys the Person Sensor's register commands (mode, single shot, ...). Exactly one
frame is alive at a time: nothing here queues pictures.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

from mlsensors.hub import Hub, SensorStatus
from mlsensors.types import MAX_FACES, Face, Frame, PersonFace, PersonResult, SourceGap
from mlsensors.wire.device import identification_off
from mlsensors.wire.registers import Register


@dataclass(frozen=True, slots=True)
class SensorOptions:
    """How the sensor runs: which detector, how it is tuned, how fast it may go."""

    model: str = "auto"
    """"auto": YuNet when its file is fetched, else BlazeFace; or "yunet", "full", "short"."""
    score_threshold: float | None = None
    threads: int | None = None
    tiling: bool = False
    """BlazeFace only: the four-tile pass of still pictures. Off in the sensor: measured,
    it found no extra face in 640×480 video and made each frame 2.7× slower."""
    max_fps: float | None = None
    """Upper bound on processed frames per second (None: as fast as the source allows)."""


def sensor_detector(options: SensorOptions, store=None):
    """What the loop detects with: `person.scan.Scanner` over YuNet, or BlazeFace
    (`scan.BlazeFaceScanner`) when the options ask for it or YuNet is not fetched."""
    from mlsensors.models import ModelStore
    from mlsensors.person.scan import BlazeFaceScanner, Scanner
    from mlsensors.vision.detector import BlazeFace, check_threshold, make_engine, resolve_model

    store = store or ModelStore()
    model = resolve_model(options.model, store)
    threshold = check_threshold(options.score_threshold)
    if model == "yunet":
        # one thread: the sensor's YuNet inputs are small, and measured here a second
        # thread cost more than it gave (0.39 → 0.62 of a BlazeFace invoke per region)
        return Scanner(make_engine(model, options.threads or 1, threshold, store,
                                   judge=False))
    main = BlazeFace(model, options.threads, threshold, store, options.tiling)
    short = BlazeFace("short", options.threads, threshold, store, False) \
        if model == "full" else None
    return BlazeFaceScanner(main, short)


def to_unit_255(value: float, extent: int) -> int:
    """A pixel coordinate as the record's 0–255 fraction of the frame, clamped, rounded
    half up."""
    return int(min(max(value / extent, 0.0), 1.0) * 255 + 0.5)


def person_face(face: Face, width: int, height: int) -> PersonFace:
    """A detector Face in frame pixels → the record's PersonFace (no identity yet)."""
    x0, y0, x1, y1 = face.box
    return PersonFace(
        box=(to_unit_255(x0, width), to_unit_255(y0, height),
             to_unit_255(x1, width), to_unit_255(y1, height)),
        confidence=max(0, min(100, round(face.score * 100))),
        is_facing=face.facing,
    )


def with_identity(face: PersonFace, id_: int, id_confidence: int) -> PersonFace:
    """The face with the identity stage's answer; IDs beyond the record's 0–7 stay
    unknown (−1), because Person Sensor clients index arrays of eight."""
    if not 0 <= id_ < 8:
        return face
    return replace(face, id=id_, id_confidence=max(0, min(100, id_confidence)))


def largest_first(faces: list[Face], limit: int = MAX_FACES) -> list[Face]:
    return sorted(faces, key=lambda f: f.area, reverse=True)[:limit]


class FpsMeter:
    """Frames per second as an exponential moving average of frame intervals."""

    def __init__(self, smoothing: float = 0.1) -> None:
        self.smoothing = smoothing
        self.fps = 0.0
        self._last: float | None = None

    def tick(self, now: float) -> float:
        if self._last is not None and now > self._last:
            instant = 1.0 / (now - self._last)
            self.fps = instant if self.fps == 0 else (
                self.fps + self.smoothing * (instant - self.fps))
        self._last = now
        return self.fps

    def reset(self) -> None:
        self._last = None
        self.fps = 0.0


class PersonSensor:
    """The sensor: a source and a detector (and optionally an identity stage), producing
    the Person Sensor's results. It implements `wire.device.SensorControl`, so the
    Person Sensor's registers map onto its methods one to one."""

    def __init__(self, source=None, options: SensorOptions | None = None, detector=None,
                 identity=None) -> None:
        """`source` is a Source (anything with frames() and close()) or what
        `open_source` accepts: None (camera, else demo), "demo", "camera:N", a path.
        `identity` is a `person.id_stage.IdentityStage` (None: no face IDs; every face
        is reported with id −1 and the ID registers are refused)."""
        from mlsensors.sources import open_source

        self.options = options or SensorOptions()
        if source is None or isinstance(source, str | os.PathLike):
            source = open_source(source)
        self.source = source
        if detector is None:
            detector = sensor_detector(self.options)
        self.detector = detector
        self.identity = identity
        self.debug = False
        self.frames_processed = 0
        self.fps = FpsMeter()
        self._frames: Iterator[Frame | SourceGap] | None = None
        self._continuous = threading.Event()
        self._continuous.set()
        self._single_shot = threading.Event()
        self._wake = threading.Event()

    def close(self) -> None:
        try:
            self.source.close()
        finally:
            if self.identity is not None:
                self.identity.close()

    def __enter__(self) -> PersonSensor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def process(self, frame: Frame) -> PersonResult:
        """Detect in one frame and make its result (the four largest faces)."""
        faces = largest_first(self.detector.detect(frame.image))
        reported = [person_face(f, frame.width, frame.height) for f in faces]
        if self.identity is not None:
            who = self.identity.process(frame.image, faces, time.monotonic())
            reported = [with_identity(face, i.id, i.id_confidence)
                        for face, i in zip(reported, who, strict=True)]
        self.frames_processed += 1
        return PersonResult(
            timestamp=time.time(),
            faces=tuple(reported),
            frame_index=self.frames_processed - 1,
        )

    def _gap(self) -> PersonResult:
        """A source gap: no faces, and the tracker learns that a frame went missing."""
        if self.identity is not None:
            self.identity.gap()
        return PersonResult(timestamp=time.time(), frame_index=self.frames_processed)

    def _next_item(self) -> Frame | SourceGap | None:
        if self._frames is None:
            self._frames = iter(self.source.frames())
        return next(self._frames, None)

    def __iter__(self) -> Iterator[PersonResult]:
        """One result per frame; a source gap yields an empty result (no stale faces)."""
        while (item := self._next_item()) is not None:
            if isinstance(item, SourceGap):
                yield self._gap()
                continue
            yield self.process(item)
            del item

    # -- commands: the register writes of the Person Sensor ------------------------------

    def set_continuous(self, on: bool) -> None:
        """MODE register: 1 continuous (default), 0 standby (no frames are read)."""
        if on:
            self._continuous.set()
        else:
            self._continuous.clear()
        self._wake.set()

    def single_shot(self) -> None:
        """SINGLE_SHOT register: process exactly one frame while in standby."""
        self._single_shot.set()
        self._wake.set()

    def set_identification(self, on: bool) -> None:
        """ENABLE_ID register: compute IDs (1) or report every face with id −1 (0).
        Switching off without an identity stage is accepted: it is off already."""
        if self.identity is not None:
            self.identity.set_enabled(on)
        elif on:
            raise identification_off(Register.ENABLE_ID)

    def calibrate(self, face_id: int) -> None:
        """CALIBRATE_ID register: learn the largest face of the next frames as `face_id`."""
        if self.identity is None:
            raise identification_off(Register.CALIBRATE_ID)
        self.identity.calibrate(face_id)

    def set_persist(self, on: bool) -> None:
        """PERSIST_IDS register: keep the IDs in the gallery file across restarts."""
        if self.identity is not None:
            self.identity.set_persist(on)

    def erase_ids(self) -> None:
        """ERASE_IDS register: forget every ID, in memory and on disk, now."""
        if self.identity is not None:
            self.identity.erase()

    def set_debug(self, on: bool) -> None:
        """DEBUG_MODE register: on the SEN21231 it lights an LED while a face is seen.
        There is no LED here; the flag is kept so it reads back, and the presence pin
        (transports.gpio) serves the same purpose."""
        self.debug = bool(on)

    # -- serving ---------------------------------------------------------------------

    def run(self, hub: Hub, stop: threading.Event) -> None:
        """Publish results into `hub` until `stop` is set or a finite source ends."""
        min_interval = 1.0 / self.options.max_fps if self.options.max_fps else 0.0
        hub.set_status(SensorStatus(state="starting"))
        next_due = time.monotonic()
        while not stop.is_set():
            if not self._continuous.is_set() and not self._single_shot.is_set():
                hub.set_status(self._status("standby"))
                self.fps.reset()
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            shot = self._single_shot.is_set()
            self._single_shot.clear()
            if min_interval and not shot:
                delay = next_due - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    break
                next_due = max(next_due + min_interval, time.monotonic())
            item = self._next_item()
            if item is None:
                break
            if isinstance(item, SourceGap):
                self.fps.reset()
                hub.publish(self._gap(), self._status("fault", item.reason))
                continue
            result = self.process(item)
            del item
            self.fps.tick(time.monotonic())
            state = "running" if self._continuous.is_set() else "standby"
            hub.publish(result, self._status(state))
        hub.set_status(self._status("stopped"))

    def _status(self, state: str, detail: str = "") -> SensorStatus:
        """The status, with why identification is degraded (a bad gallery file set
        aside, a failed save or embedding process) added to the detail."""
        problem = self.identity.problem if self.identity is not None else ""
        if problem:
            detail = f"{detail}; {problem}" if detail else problem
        return SensorStatus(state=state, fps=round(self.fps.fps, 2),
                            frames=self.frames_processed, detail=detail)
