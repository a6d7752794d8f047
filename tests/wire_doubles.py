"""Test doubles for the wire tests: a SensorControl that records what it was asked."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from mlsensors.errors import StateError


@dataclass
class RecordingControl:
    """Implements SensorControl by recording every call; can be told to refuse one."""

    calls: list[tuple[str, object]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _record(self, name: str, arg: object = None) -> None:
        if name in self.refuse:
            raise StateError(f"{name} is not available")
        with self.lock:
            self.calls.append((name, arg))

    def set_continuous(self, on: bool) -> None:
        self._record("set_continuous", on)

    def single_shot(self) -> None:
        self._record("single_shot")

    def set_identification(self, on: bool) -> None:
        self._record("set_identification", on)

    def calibrate(self, face_id: int) -> None:
        self._record("calibrate", face_id)

    def set_persist(self, on: bool) -> None:
        self._record("set_persist", on)

    def erase_ids(self) -> None:
        self._record("erase_ids")

    def set_debug(self, on: bool) -> None:
        self._record("set_debug", on)
