"""The Person Sensor as a register-level state machine, independent of any transport.

Every transport that can configure the sensor (virtual I2C bus, a Pi answering on a real
bus, MQTT, HTTP) sends the same 2-byte register writes through `Hub.command`; the hub
forwards them here (`attach` makes this device the hub's controller). The device checks
each write against the register map and its current mode, asks the sensing side to act
through the small `SensorControl` protocol, and only then changes its state: a write
that is illegal, or that the sensing side refuses, changes nothing.

The device also derives the presence pin (high while at least one face is seen in
continuous mode) from the hub's snapshots and tells subscribers when it changes, so a
GPIO line, an MQTT topic or a web page can follow it without knowing about registers.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from mlsensors.errors import InputError, MlsensorsError, ProtocolError
from mlsensors.wire.registers import Mode, Register, check_write

if TYPE_CHECKING:
    from mlsensors.hub import Hub, RegisterWrite, Snapshot

log = logging.getLogger(__name__)


class SensorControl(Protocol):
    """What the device model asks of the sensing side (the sensor loop implements it).

    Each call either takes effect or raises MlsensorsError (the write is then refused
    and the device's state stays as it was). Calls come from transport threads and
    should return quickly: set a flag, queue the work.
    """

    def set_continuous(self, on: bool) -> None: ...

    def single_shot(self) -> None: ...

    def set_identification(self, on: bool) -> None: ...

    def calibrate(self, face_id: int) -> None: ...

    def set_persist(self, on: bool) -> None: ...

    def erase_ids(self) -> None: ...

    def set_debug(self, on: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class DeviceState:
    """The readable configuration; the defaults are the SEN21231's power-on values."""

    mode: Mode = Mode.CONTINUOUS
    enable_id: bool = False
    persist_ids: bool = True
    debug_mode: bool = True


PresenceListener = Callable[[bool], None]


class PersonSensorDevice:
    """Register writes in, `SensorControl` calls out, presence-pin events on the side."""

    def __init__(self, control: SensorControl, state: DeviceState | None = None) -> None:
        self._control = control
        self._state = state or DeviceState()
        self._lock = threading.Lock()
        # Re-entrant: a presence listener may write a register (which re-evaluates).
        self._presence_lock = threading.RLock()
        self._faces_seen = 0
        self._presence = False
        self._listeners: list[PresenceListener] = []

    @property
    def state(self) -> DeviceState:
        return self._state

    @property
    def presence(self) -> bool:
        return self._presence

    def reset(self) -> None:
        """Push the power-on configuration to the sensing side (once, at start-up)."""
        defaults = DeviceState()
        with self._lock:
            self._control.set_continuous(defaults.mode == Mode.CONTINUOUS)
            self._control.set_identification(defaults.enable_id)
            self._control.set_persist(defaults.persist_ids)
            self._control.set_debug(defaults.debug_mode)
            self._state = defaults
        self._update_presence()

    def write(self, write: RegisterWrite) -> DeviceState:
        """Apply one register write; raises ProtocolError (state unchanged) if refused."""
        reg = check_write(write.register, write.value)
        value = write.value
        with self._lock:
            state = self._state
            try:
                new = self._apply(state, reg, value)
            except ProtocolError:
                raise
            except MlsensorsError as e:
                raise ProtocolError(f"{reg.name} refused by the sensor: {e}") from None
            self._state = new
        if new.mode != state.mode:
            self._update_presence()
        return new

    def _apply(self, state: DeviceState, reg: Register, value: int) -> DeviceState:
        control = self._control
        if reg is Register.MODE:
            control.set_continuous(value == Mode.CONTINUOUS)
            return dataclasses.replace(state, mode=Mode(value))
        if reg is Register.ENABLE_ID:
            control.set_identification(bool(value))
            return dataclasses.replace(state, enable_id=bool(value))
        if reg is Register.SINGLE_SHOT:
            if state.mode != Mode.STANDBY:
                raise ProtocolError("SINGLE_SHOT works only in standby (write MODE=0 first)")
            control.single_shot()
            return state
        if reg is Register.CALIBRATE_ID:
            control.calibrate(value)
            return state
        if reg is Register.PERSIST_IDS:
            control.set_persist(bool(value))
            return dataclasses.replace(state, persist_ids=bool(value))
        if reg is Register.ERASE_IDS:
            control.erase_ids()
            return state
        control.set_debug(bool(value))
        return dataclasses.replace(state, debug_mode=bool(value))

    # -- presence pin ---------------------------------------------------------------

    def on_presence(self, listener: PresenceListener) -> Callable[[], None]:
        """Call `listener(level)` on every change of the presence pin; returns unsubscribe.

        Listeners run on the thread that caused the change (the sensor's publisher or a
        transport), so they must be quick; an exception in one is logged and ignored.
        """
        with self._presence_lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._presence_lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def observe(self, snapshot: Snapshot) -> None:
        """Feed one hub snapshot (attach subscribes this to the hub)."""
        self._faces_seen = snapshot.result.num_faces
        self._update_presence()

    def _update_presence(self) -> None:
        with self._presence_lock:
            level = self._state.mode == Mode.CONTINUOUS and self._faces_seen > 0
            if level == self._presence:
                return
            self._presence = level
            for listener in list(self._listeners):
                try:
                    listener(level)
                except Exception:
                    log.exception("presence listener %r failed", listener)

    # -- wiring ---------------------------------------------------------------------

    def attach(self, hub: Hub) -> Callable[[], None]:
        """Become `hub`'s controller and follow its snapshots; returns a detach function."""
        hub.set_controller(self.write)
        unsubscribe = hub.subscribe(self.observe)
        self.observe(hub.snapshot())

        def detach() -> None:
            unsubscribe()
            hub.set_controller(None)

        return detach


def identification_off(register: Register) -> InputError:
    """The refusal of an ID register by a sensor started without face identification."""
    return InputError(f"{register.name}: face identification is off (start the sensor "
                      "with --id)")


class RegisterLink:
    """A `SensorControl` on the far side of a pipe: each call becomes one register write.

    The device model runs beside the transports (in the guard's process); the sensing
    loop runs sealed in another. This carries the device's decisions across as the same
    2-byte writes the wire uses, and `apply_write` turns them back into calls there.
    """

    def __init__(self, send: Callable[[RegisterWrite], None], *, ids: bool = True) -> None:
        """`ids`: whether the far side can identify faces at all. Without, switching
        identification on or calibrating is refused here, synchronously, so the client's
        write fails as it would on a sensor without the ID model."""
        self._send = send
        self._ids = ids

    def _need_ids(self, register: Register) -> None:
        if not self._ids:
            raise identification_off(register)

    def _write(self, register: Register, value: int) -> None:
        from mlsensors.hub import RegisterWrite

        self._send(RegisterWrite(int(register), int(value)))

    def set_continuous(self, on: bool) -> None:
        self._write(Register.MODE, Mode.CONTINUOUS if on else Mode.STANDBY)

    def single_shot(self) -> None:
        self._write(Register.SINGLE_SHOT, 1)

    def set_identification(self, on: bool) -> None:
        if on:
            self._need_ids(Register.ENABLE_ID)
        self._write(Register.ENABLE_ID, on)

    def calibrate(self, face_id: int) -> None:
        self._need_ids(Register.CALIBRATE_ID)
        self._write(Register.CALIBRATE_ID, face_id)

    def set_persist(self, on: bool) -> None:
        self._write(Register.PERSIST_IDS, on)

    def erase_ids(self) -> None:
        self._write(Register.ERASE_IDS, 1)

    def set_debug(self, on: bool) -> None:
        self._write(Register.DEBUG_MODE, on)


def apply_write(control: SensorControl, write: RegisterWrite) -> None:
    """One register write as the `SensorControl` call it stands for (no mode rules: the
    device model on the other side of a `RegisterLink` has applied them already)."""
    reg = check_write(write.register, write.value)
    value = write.value
    if reg is Register.MODE:
        control.set_continuous(value == Mode.CONTINUOUS)
    elif reg is Register.ENABLE_ID:
        control.set_identification(bool(value))
    elif reg is Register.SINGLE_SHOT:
        control.single_shot()
    elif reg is Register.CALIBRATE_ID:
        control.calibrate(value)
    elif reg is Register.PERSIST_IDS:
        control.set_persist(bool(value))
    elif reg is Register.ERASE_IDS:
        control.erase_ids()
    else:
        control.set_debug(bool(value))
