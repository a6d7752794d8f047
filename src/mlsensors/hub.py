"""The hub: where the sensor's results fan out to transports and commands fan in.

Everything that leaves the sensor goes through one `Hub`: the sensing side (in-process
loop or, later, the sealed child behind the guard) calls `publish`; every transport
(virtual I2C bus, MQTT, HTTP page, CLI) reads `snapshot()` or subscribes. Commands
from transports are register writes and go the other way through `command`, to the
single controller the sensing side registered. The hub holds only the latest result
and its packed record: no history, no pixels.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from mlsensors.errors import ProtocolError
from mlsensors.types import PersonResult
from mlsensors.wire.record import pack_record


@dataclass(frozen=True, slots=True)
class SensorStatus:
    """Health of the sensing side, published beside every result.

    `state` is one of "starting", "running", "standby", "fault", "stopped". Outside
    "running" and "standby" the sensor reports no faces (never stale ones).
    """

    state: str = "starting"
    fps: float = 0.0
    frames: int = 0
    restarts: int = 0
    sealed: bool = False
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One consistent view: a result, its 39-byte record and the status at that time."""

    result: PersonResult
    record: bytes
    status: SensorStatus
    sequence: int = 0


@dataclass(frozen=True, slots=True)
class RegisterWrite:
    """A command: the Person Sensor's 2-byte configuration write (register, value)."""

    register: int
    value: int


Subscriber = Callable[[Snapshot], None]
Controller = Callable[[RegisterWrite], None]
CommandWatcher = Callable[[RegisterWrite], None]


class _Listeners:
    """A thread-safe list of callbacks: `add` returns the matching unsubscribe, and
    `current` a copy to call outside any lock (a callback may subscribe another)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: list[Callable] = []

    def add(self, callback: Callable) -> Callable[[], None]:
        with self._lock:
            self._callbacks.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return unsubscribe

    def current(self) -> list[Callable]:
        with self._lock:
            return list(self._callbacks)


@dataclass
class Hub:
    """Thread-safe latest-value store with fan-out; see the module docstring."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _snapshot: Snapshot = field(
        default_factory=lambda: Snapshot(PersonResult(0.0), pack_record(PersonResult(0.0)),
                                         SensorStatus())
    )
    _subscribers: _Listeners = field(default_factory=_Listeners)
    _controller: Controller | None = None
    _command_watchers: _Listeners = field(default_factory=_Listeners)

    def publish(self, result: PersonResult, status: SensorStatus | None = None) -> Snapshot:
        """Replace the current result (and status); notify subscribers outside the lock."""
        record = pack_record(result)
        with self._lock:
            snap = Snapshot(result, record, status or self._snapshot.status,
                            self._snapshot.sequence + 1)
            self._snapshot = snap
            subscribers = self._subscribers.current()
        for callback in subscribers:
            callback(snap)
        return snap

    def set_status(self, status: SensorStatus) -> Snapshot:
        """Change the status; a fault or standby clears the faces so nothing stale remains."""
        with self._lock:
            result = self._snapshot.result
        if status.state not in ("running", "standby") and result.faces:
            result = PersonResult(result.timestamp, (), result.frame_index)
        return self.publish(result, status)

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._snapshot

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback` with every new snapshot (from the publisher's thread; be quick)."""
        return self._subscribers.add(callback)

    def set_controller(self, controller: Controller | None) -> None:
        with self._lock:
            self._controller = controller

    @property
    def accepting(self) -> bool:
        """True once something on the sensing side takes commands."""
        with self._lock:
            return self._controller is not None

    def command(self, write: RegisterWrite) -> None:
        """Forward a register write to the sensing side; raises if nothing is listening."""
        with self._lock:
            controller = self._controller
        if controller is None:
            raise ProtocolError("the sensor is not accepting commands")
        controller(write)
        for watcher in self._command_watchers.current():
            watcher(write)

    def watch_commands(self, callback: CommandWatcher) -> Callable[[], None]:
        """Call `callback` with every register write the sensing side accepted, whichever
        transport sent it (so that, e.g., Home Assistant drops its per-ID entities when
        the IDs are erased over I2C). Returns an unsubscribe function."""
        return self._command_watchers.add(callback)
