"""Look and speak: whether a recognised command counts, decided outside every seal.

The gate runs in the service, between the voice guard and the transports. It consults
what the person sensor's hub has said (someone facing the sensor within the last
`facing_seconds`) and the wake word's events (a command within `wake_seconds` after
it). Modes: "facing" (gaze instead of a wake word), "wake", "both", "none". A command
that fails the gate is counted by the hub and never published; wake-word events
themselves always pass (they are what opens the wake gate).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from mlsensors.errors import InputError
from mlsensors.hub import Hub, Snapshot
from mlsensors.voice.record import EventKind, VoiceEvent

GATES = ("facing", "wake", "both", "none")
FACING_SECONDS = 1.0
WAKE_SECONDS = 5.0


def default_gate(person: bool) -> str:
    """facing when the person sensor runs, else the wake word."""
    return "facing" if person else "wake"


class Gate:
    def __init__(self, mode: str, person: Hub | None = None, *,
                 facing_seconds: float = FACING_SECONDS, wake_seconds: float = WAKE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if mode not in GATES:
            raise InputError(f"--gate {mode!r:.20}: give one of {', '.join(GATES)}")
        if mode in ("facing", "both") and person is None:
            raise InputError(f"--gate {mode} needs the person sensor (drop --no-person, "
                             f"or use --gate wake)")
        self.mode = mode
        self.facing_seconds = facing_seconds
        self.wake_seconds = wake_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._facing_at: float | None = None
        self._wake_at: float | None = None
        self._detach = person.subscribe(self._saw) if person is not None else None

    def close(self) -> None:
        if self._detach is not None:
            self._detach()
            self._detach = None

    def _saw(self, snapshot: Snapshot) -> None:
        if snapshot.status.state == "running" and any(
                f.is_facing for f in snapshot.result.faces):
            with self._lock:
                self._facing_at = self._clock()

    def facing(self) -> bool:
        """Someone faced the sensor within the last `facing_seconds`."""
        with self._lock:
            at = self._facing_at
        return at is not None and self._clock() - at <= self.facing_seconds

    def woken(self) -> bool:
        with self._lock:
            at = self._wake_at
        return at is not None and self._clock() - at <= self.wake_seconds

    def __call__(self, event: VoiceEvent) -> bool:
        if event.kind == EventKind.WAKE:
            with self._lock:
                self._wake_at = self._clock()
            return True
        if self.mode == "none":
            return True
        if self.mode == "facing":
            return self.facing()
        if self.mode == "wake":
            return self.woken()
        return self.facing() and self.woken()
