"""What the status page is given: a JSON-ready view of a snapshot, never more.

The page's only data are the guarded facts the hub holds (boxes in 0–255 units, facing,
IDs, the sensor's status); this module turns them into plain JSON values and keeps the
one piece of history the page shows, a presence timeline of face counts. It has no
pixels to give and no way to ask for any.
"""

from __future__ import annotations

import dataclasses
from collections import deque

from mlsensors.hub import Snapshot
from mlsensors.types import MAX_FACES
from mlsensors.wire.record import DATA_SIZE, MAX_ID, RECORD_SIZE

DECLARED_INTERFACE = {
    "outputs": "per processed frame: up to 4 faces (box, confidence, facing, ID); never pixels",
    "record_bytes": RECORD_SIZE,
    "data_size": DATA_SIZE,
    "max_faces": MAX_FACES,
    "box_units": "0-255 of the field of view (left, top, right, bottom)",
    "confidence": "0-100",
    "ids": f"0-{MAX_ID}, -1 when not recognised",
    "checksum": "CRC-16/CCITT-FALSE",
    "i2c_address": "0x62",
    "registers": "MODE 0x01, ENABLE_ID 0x02, SINGLE_SHOT 0x03, CALIBRATE_ID 0x04, "
                 "PERSIST_IDS 0x05, ERASE_IDS 0x06, DEBUG_MODE 0x07",
}
"""The interface the sensor declares, from the record module's own constants."""


def snapshot_view(snapshot: Snapshot) -> dict:
    """The page's view of one snapshot: faces and status as plain JSON values."""
    result, status = snapshot.result, snapshot.status
    faces = [] if status.state in ("fault", "starting") else [
        {"box": list(f.box), "confidence": f.confidence, "facing": bool(f.is_facing),
         "id": f.id, "id_confidence": f.id_confidence}
        for f in result.faces
    ]
    status_fields = dataclasses.asdict(status)
    # The audit (privacy issue) reports through the status when it has run; until then
    # the page says so rather than showing nothing.
    audit = status_fields.pop("audit", None)
    return {
        "sequence": snapshot.sequence,
        "timestamp": result.timestamp,
        "frame_index": result.frame_index,
        "count": len(faces),
        "faces": faces,
        "status": status_fields,
        "audit": audit if audit not in (None, "") else "not run",
    }


class PresenceTimeline:
    """Face counts over the last `window` seconds, stored only when the count changes.

    Not thread-safe: the server calls it under its own lock.
    """

    def __init__(self, window: float = 300.0, max_points: int = 2000) -> None:
        self.window = window
        self._points: deque[tuple[float, int]] = deque(maxlen=max_points)
        self.version = 0

    def add(self, when: float, count: int) -> None:
        if self._points and self._points[-1][1] == count:
            return
        self._points.append((when, count))
        self.version += 1
        self._prune(when)

    def points(self, now: float) -> list[list[float]]:
        """[time, count] pairs covering the window: the count in force at its start first."""
        self._prune(now)
        return [[round(t, 3), c] for t, c in self._points]

    def _prune(self, now: float) -> None:
        # Keep the last change before the window so the window's start has a known count.
        while len(self._points) > 1 and self._points[1][0] < now - self.window:
            self._points.popleft()


def voice_view(snapshot) -> dict:
    """The page's view of the voice sensor: its events (command, confidence, time) and
    counts. There is no audio anywhere to show: the hub never had any."""
    return {
        "events": [{"command": e.name, "kind": e.kind.name.lower(),
                    "confidence": e.confidence, "time": round(e.timestamp, 3)}
                   for e in reversed(snapshot.events)],
        "heard": snapshot.heard,
        "published": snapshot.published,
        "gated": snapshot.gated,
        "commands": list(snapshot.commands),
        "state": snapshot.status.state,
    }
