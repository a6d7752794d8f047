"""The voice service's hub: command events fan out to transports, behind the gate.

The guard publishes every checked event here (as it publishes person results into
`hub.Hub`); the gate (voice/gate.py), outside every seal, decides whether a command
counts. Transports see only the events that passed, and the counts: heard, published,
gated. Like `Hub`, it holds no audio, only the last few events (command, confidence,
time), which is all the status page may show.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from mlsensors.errors import ProtocolError
from mlsensors.hub import SensorStatus, _Listeners
from mlsensors.voice.record import EventKind, VoiceEvent

RECENT = 20
"""Events kept for the status page; older ones are forgotten."""
WAKE_NAME = "wake"


@dataclass(frozen=True, slots=True)
class VoiceSnapshot:
    """One consistent view of the voice sensor for transports."""

    events: tuple[VoiceEvent, ...] = ()
    """The last RECENT published events, oldest first, each with its name."""
    status: SensorStatus = field(default_factory=SensorStatus)
    heard: int = 0
    """Events the guard passed (gated or not)."""
    published: int = 0
    gated: int = 0
    """Commands the gate held back: counted, never published."""
    commands: tuple[str, ...] = ()
    new: VoiceEvent | None = None
    """The event this snapshot announces (None for a status change or a gated event)."""
    sequence: int = 0

    @property
    def last(self) -> VoiceEvent | None:
        return self.events[-1] if self.events else None


Gate = Callable[[VoiceEvent], bool]


class VoiceHub:
    """Latest events and status with fan-out; the guard's `hub` for the voice kind."""

    def __init__(self, commands: tuple[str, ...] = (), gate: Gate | None = None) -> None:
        self._lock = threading.Lock()
        self._snapshot = VoiceSnapshot(commands=tuple(commands))
        self._subscribers = _Listeners()
        self._gate = gate
        self._controller = None

    def publish(self, event: VoiceEvent, status: SensorStatus | None = None) -> VoiceSnapshot:
        """One event from the guard: named, gated, and if it passes, published. An empty
        record (no event yet) only carries the status."""
        if event.kind == EventKind.NONE:
            return self.set_status(status) if status is not None else self.snapshot()
        with self._lock:
            snap = self._snapshot
            names = snap.commands
        if event.kind == EventKind.WAKE:
            event = replace(event, name=WAKE_NAME)
        elif event.kind == EventKind.COMMAND and event.command < len(names):
            event = replace(event, name=names[event.command])
        passed = self._gate is None or self._gate(event)
        with self._lock:
            snap = self._snapshot
            snap = replace(
                snap, status=status or snap.status, heard=snap.heard + 1,
                published=snap.published + passed, gated=snap.gated + (not passed),
                events=(*snap.events, event)[-RECENT:] if passed else snap.events,
                new=event if passed else None, sequence=snap.sequence + 1)
            self._snapshot = snap
        self._notify(snap)
        return snap

    def set_status(self, status: SensorStatus) -> VoiceSnapshot:
        with self._lock:
            snap = replace(self._snapshot, status=status, new=None,
                           sequence=self._snapshot.sequence + 1)
            self._snapshot = snap
        self._notify(snap)
        return snap

    def _notify(self, snap: VoiceSnapshot) -> None:
        for callback in self._subscribers.current():
            callback(snap)

    def snapshot(self) -> VoiceSnapshot:
        with self._lock:
            return self._snapshot

    def subscribe(self, callback: Callable[[VoiceSnapshot], None]) -> Callable[[], None]:
        """Call `callback` with every new snapshot (from the guard's thread; be quick)."""
        return self._subscribers.add(callback)

    # The guard registers itself as the controller; the voice sensor takes no writes.
    def set_controller(self, controller) -> None:
        with self._lock:
            self._controller = controller

    @property
    def accepting(self) -> bool:
        return False

    def command(self, write) -> None:
        raise ProtocolError("the voice sensor takes no register writes")
