"""The identification stage of the sensor loop: tracker + identifier + stored gallery.

One object for PersonSensor to hold: per frame it takes the image and the detector's
faces and returns each face's ID and id_confidence; per missing frame it is told so;
the Person Sensor's ID registers map onto `set_enabled`, `calibrate`, `set_persist` and
`erase`.
In one process the stage keeps the gallery file itself (`FileStore`). Starting never
fails because of a damaged gallery: it is moved aside and the reason kept in `problem`
for the sensor's status. In the sealed sensing process the guard keeps the file and the
stage is given a `gallery_link.GuardStore` instead: it opens no file at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlsensors.errors import MlsensorsError
from mlsensors.person.gallery import DEFAULT_NUM_IDS, Gallery
from mlsensors.person.gallery_file import GalleryFile
from mlsensors.person.identify import (
    REFRESH_S,
    Apply,
    CalibrationResult,
    IdStore,
    TrackIdentifier,
    TrackIdentity,
)
from mlsensors.person.track import Tracker
from mlsensors.types import Face


@dataclass(frozen=True, slots=True)
class IdOptions:
    gallery: Path | None = None
    """Gallery file (None: $XDG_DATA_HOME/mlsensors/gallery.bin)."""
    key_file: Path | None = None
    """Encrypt the gallery at rest with this key (see `mlsensors id keygen`)."""
    persist: bool = False
    """Save the gallery after every calibration (the Person Sensor's PERSIST_IDS)."""
    num_ids: int = DEFAULT_NUM_IDS
    refresh_s: float = REFRESH_S
    worker_niceness: int = 0
    """Added to the embedding process's niceness. 0: embeddings share the CPU fairly with
    detection (IDs come fast, the loop slows while a face is unresolved); higher values
    favour the detection loop and make IDs slower on a busy CPU (bench/identity_bench.py)."""
    in_process: bool = False
    """Embed in the calling thread (blocks ~100 ms per embedding; for tests and tools)."""


class FileStore:
    """IDs kept in a gallery file by this process: a calibration applies at once and is
    saved while persisting; a failed save leaves the IDs working from memory and says so
    in `problem`."""

    def __init__(self, gallery_file: GalleryFile, gallery: Gallery, *,
                 persist: bool = False, load_problem: str = "") -> None:
        self.file = gallery_file
        self.gallery = gallery
        """The identifier's gallery (the same object), saved after each calibration."""
        self.persisting = persist
        self.load_problem = load_problem or ""
        self.save_problem = ""

    @property
    def problem(self) -> str:
        return "; ".join(p for p in (self.load_problem, self.save_problem) if p)

    def learnt(self, id_: int, samples, apply: Apply) -> None:
        apply(id_, samples)
        if self.persisting:
            with contextlib.suppress(MlsensorsError):  # kept in save_problem
                self.save(self.gallery)

    def failed(self, result: CalibrationResult) -> None:
        pass

    def save(self, gallery: Gallery) -> None:
        try:
            self.file.save(gallery)
        except MlsensorsError as e:  # the IDs still work, from memory
            self.save_problem = f"IDs not saved: {e}"
            raise
        self.save_problem = ""

    def erased(self) -> None:
        self.file.erase()
        self.load_problem = ""

    def persist(self, on: bool, gallery: Gallery) -> None:
        """Switched on: saved now (StateError if that fails, and persisting stays as it
        was)."""
        if on:
            self.save(gallery)
        self.persisting = bool(on)


class IdentityStage:
    """Track faces across frames and give each track a gallery ID. One per sensor."""

    def __init__(self, options: IdOptions | None = None, *, store=None, worker=None,
                 id_store: IdStore | None = None) -> None:
        """`store`: the ModelStore; `id_store`: where IDs are kept (default: the gallery
        file of `options`, loaded now)."""
        self.options = options = options or IdOptions()
        if id_store is None:
            gallery_file = GalleryFile(options.gallery, options.key_file)
            gallery, problem = gallery_file.load_or_empty(num_ids=options.num_ids)
            id_store = FileStore(gallery_file, gallery, persist=options.persist,
                                 load_problem=problem or "")
        else:
            gallery = Gallery(options.num_ids)
        if worker is None:
            if options.in_process:
                from mlsensors.person.embed_worker import InlineWorker
                from mlsensors.vision.embed import FaceEmbedder

                worker = InlineWorker(FaceEmbedder(store))
            else:
                from mlsensors.person.embed_worker import ProcessWorker

                worker = ProcessWorker(None if store is None else store.root,
                                       niceness=options.worker_niceness)
        self.tracker = Tracker()
        self.id_store = id_store
        self.identifier = TrackIdentifier(gallery, worker, store=id_store,
                                          refresh_s=options.refresh_s)

    @property
    def gallery(self):
        return self.identifier.gallery

    @property
    def problem(self) -> str:
        """What is wrong with identification right now, for the sensor's status: a bad
        gallery file set aside at start, a failed save, a broken embedding process."""
        worker_error = getattr(self.identifier.worker, "error", "")
        problems = [self.id_store.problem,
                    f"embedding: {worker_error}" if worker_error else ""]
        return "; ".join(p for p in problems if p)

    def load(self, id_: int, samples) -> None:
        """Set `id_` to `samples` (none: forget it): how the guard hands the sealed
        sensing process its gallery and each calibration it accepted."""
        self.identifier.load(id_, samples)

    def process(self, image: np.ndarray, faces: Sequence[Face], now: float) -> list[TrackIdentity]:
        """Identities of `faces` (same order). `now`: the frame's monotonic timestamp."""
        return self.identifier.update(image, self.tracker.update(faces), now)

    def gap(self) -> None:
        """The source had no picture (or an undecodable one) for this frame."""
        self.identifier.skip(self.tracker.skip())

    def set_enabled(self, on: bool) -> None:
        """ENABLE_ID: off → no embeddings at all, every face reported with id −1."""
        self.identifier.set_enabled(on)

    def calibrate(self, id_: int) -> None:
        """CALIBRATE_ID: learn the largest face of the next ~1.5 s as `id_` (StateError
        while identification is off)."""
        self.identifier.calibrate(id_)

    def set_persist(self, on: bool) -> None:
        """PERSIST_IDS: when switched on, the gallery is saved now (StateError if it
        cannot be, and nothing changes) and after each calibration."""
        self.identifier.set_persist(on)

    def erase(self) -> None:
        """ERASE_IDS: memory and file, now."""
        self.identifier.erase()

    def close(self) -> None:
        """Stop the embedding process. Saves nothing: saving follows `persist`."""
        self.identifier.close()

    def __enter__(self) -> IdentityStage:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

