"""The guard's keeper of the ID gallery: the file, its key, and what the sensor may learn.

With face IDs under `serve`, the sealed sensing process writes nothing to the file
system and never sees the key. This object, in the guard's process, does all of it:

- loads the gallery file (reading the key file itself) before the sensor starts, and
  hands the gallery to every (re)started sensing process as load blocks;
- accepts a calibration record only while a CALIBRATE_ID it forwarded is pending, for
  that ID, at most one per request and within CALIBRATION_WINDOW_S; every field is
  checked (`gallery_link.decode_record`); anything else is refused as malformed;
- applies the register writes that touch the file before they are acknowledged:
  PERSIST_IDS=1 saves now and is refused if it cannot (disk full); ERASE_IDS scrubs the
  file (and files set aside, and leftovers of interrupted saves) and the in-memory
  gallery, and must then reach the sensing process (or the guard restarts it); an
  erase is never refused, since refusing would keep the IDs: what could not be
  overwritten is in `problem` and the log;
  CALIBRATE_ID is refused while identification is off or the sensor is in standby,
  where it could learn nothing;
- keeps what went wrong (a file set aside, a failed save, a failed calibration) in
  `problem`, which the guard puts in the status detail, and says it in the log.

It implements the guard's `Keeper` protocol; the guard calls it from transport threads,
its store-pipe reader and its tick loop, so every method takes the one lock.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from mlsensors.errors import MlsensorsError, ProtocolError, StateError
from mlsensors.hub import RegisterWrite
from mlsensors.person.gallery_file import GalleryFile
from mlsensors.person.gallery_link import (
    MAX_LOAD_SAMPLES,
    RECORD_SIZE,
    decode_record,
    encode_load,
)
from mlsensors.person.identify import CALIBRATION_GIVE_UP_S, CALIBRATION_S, FAILURE_TEXT
from mlsensors.privacy.channel import encode_block
from mlsensors.wire.record import MAX_ID
from mlsensors.wire.registers import Mode, Register

log = logging.getLogger("mlsensors.gallery")

CALIBRATION_WINDOW_S = 10.0
"""How long after forwarding CALIBRATE_ID its record is accepted: the sensing process
calibrates for CALIBRATION_S (1.5 s) from its next frame and gives up
CALIBRATION_GIVE_UP_S (3 s) later without a sample; the rest is room for slow frames and
a last embedding on a Raspberry Pi."""

assert CALIBRATION_WINDOW_S > CALIBRATION_S + CALIBRATION_GIVE_UP_S


@dataclass(frozen=True, slots=True)
class _Pending:
    id: int
    deadline: float


class GalleryKeeper:
    """See the module docstring. Raises at construction (InputError, NotEncrypted,
    SourceError) for a gallery or key path that is a mistake, so `serve` stops with one
    line instead of starting on it; a damaged file is set aside and reported instead."""

    frame_size = RECORD_SIZE

    def __init__(self, gallery_file: GalleryFile, *, persist: bool = True,
                 enabled: bool = True, window_s: float = CALIBRATION_WINDOW_S) -> None:
        self.file = gallery_file
        self.persisting = persist
        self.enabled = enabled
        self.continuous = True
        self.window_s = window_s
        self._lock = threading.Lock()
        self._pending: _Pending | None = None
        self.accepted = 0
        self.gallery, load_problem = gallery_file.load_or_empty()
        self._problems = {"load": load_problem or ""}
        if load_problem:
            log.warning("gallery: %s", load_problem)
        unused = [i for i in self.gallery.ids() if i > MAX_ID] + [
            i for i in self.gallery.ids()
            if i <= MAX_ID and len(self.gallery.embeddings(i)) > MAX_LOAD_SAMPLES]
        if unused:
            note = (f"gallery {self.file.path}: IDs above {MAX_ID} are not used by the "
                    f"sensor, and only the newest {MAX_LOAD_SAMPLES} samples of an ID "
                    f"(IDs {unused})")
            self._problems["unused"] = note
            log.warning("%s", note)

    # -- what the guard asks -----------------------------------------------------------

    @property
    def problem(self) -> str:
        with self._lock:
            return "; ".join(p for p in self._problems.values() if p)

    def blocks(self) -> bytes:
        """The gallery as load blocks, for a sensing process that is starting."""
        with self._lock:
            return b"".join(
                encode_block(encode_load(i, self.gallery.embeddings(i)[-MAX_LOAD_SAMPLES:]))
                for i in self.gallery.ids() if i <= MAX_ID)

    def check(self, write: RegisterWrite) -> bool:
        """Before a register write is forwarded: refuse it (ProtocolError) or do the
        keeper's part. True when the write must reach the running sensing process (or
        that process must go): ERASE_IDS, because the IDs are in its memory too."""
        reg = Register(write.register)
        with self._lock:
            if reg is Register.CALIBRATE_ID:
                if not self.enabled:
                    raise ProtocolError("CALIBRATE_ID refused: identification is off "
                                        "(write ENABLE_ID=1 first)")
                if not self.continuous:
                    raise ProtocolError("CALIBRATE_ID refused: the sensor is in standby "
                                        "(MODE=0) and would see no face to learn")
            elif reg is Register.PERSIST_IDS and write.value:
                self._save("PERSIST_IDS refused")
            elif reg is Register.ERASE_IDS:
                self.gallery.clear()
                self._pending = None
                self._problems = {}
                try:
                    erased = self.file.erase()
                except StateError as e:
                    self._problems["erase"] = str(e)
                    log.warning("ERASE_IDS: IDs forgotten, but %s", e)
                else:
                    log.info("IDs erased (%d file(s) scrubbed)", len(erased))
                return True
        return False

    def forwarded(self, write: RegisterWrite, now: float) -> None:
        """The write reached the sensing process (or, for a setting, will reach the next
        one): follow the state it sets."""
        reg = Register(write.register)
        with self._lock:
            if reg is Register.MODE:
                self.continuous = write.value == Mode.CONTINUOUS
            elif reg is Register.ENABLE_ID:
                self.enabled = bool(write.value)
            elif reg is Register.PERSIST_IDS:
                self.persisting = bool(write.value)
            elif reg is Register.CALIBRATE_ID:
                self._pending = _Pending(write.value, now + self.window_s)
                self._problems.pop("calibration", None)

    def record(self, frame: bytes, now: float, send: Callable[[bytes], None]) -> None:
        """One frame from the store pipe: a calibration's outcome. Accepted only for the
        pending calibration, within its window, once; ProtocolError otherwise (the guard
        counts it as malformed). An accepted ID goes back to the sensing process through
        `send` at once, then to the file when persisting."""
        rec = decode_record(frame)
        with self._lock:
            pending = self._pending
            if pending is None or pending.id != rec.id or now > pending.deadline:
                raise ProtocolError(f"calibration record for ID {rec.id} while no "
                                    "calibration of it is pending")
            self._pending = None
            if not rec.ok:
                self._note_calibration(f"calibration of ID {rec.id} failed: "
                                       f"{FAILURE_TEXT[rec.failure]}")
                return
            self.gallery.set(rec.id, rec.samples)
            self.accepted += 1
            echo = encode_block(encode_load(rec.id, self.gallery.embeddings(rec.id)))
        send(echo)
        with self._lock:
            log.info("ID %d learnt from %d sample(s)%s", rec.id, len(rec.samples),
                     "" if self.persisting else " (in memory: PERSIST_IDS is 0)")
            if self.persisting:  # a failure is in the problem and the log; the ID
                with contextlib.suppress(ProtocolError):  # works from memory
                    self._save("IDs not saved")

    def tick(self, now: float) -> None:
        """A pending calibration past its window has failed."""
        with self._lock:
            pending = self._pending
            if pending is not None and now > pending.deadline:
                self._pending = None
                self._note_calibration(
                    f"calibration of ID {pending.id} failed: no result from the sensing "
                    f"process within {self.window_s:g} s")

    # -- inside the lock ---------------------------------------------------------------

    def _save(self, refusal: str) -> None:
        try:
            self.file.save(self.gallery)
        except MlsensorsError as e:  # the folder, the disk, or the key file
            self._problems["save"] = f"IDs not saved: {e}"
            log.warning("%s: %s", refusal, e)
            raise ProtocolError(f"{refusal}: {e}") from None
        if self._problems.pop("save", None):
            log.info("gallery saved again to %s", self.file.path)

    def _note_calibration(self, text: str) -> None:
        self._problems["calibration"] = text
        log.warning("%s", text)
