"""The presence pin on a real GPIO line (Raspberry Pi and others, through gpiozero).

The SEN21231 raises a pin while it sees at least one face in continuous mode, so a
microcontroller can wake on it instead of polling. `PresencePin` follows the device
model's presence events (wire/device.py) and drives a GPIO output to match.

Hardware edge: gpiozero is imported only in `start()`, so nothing else needs it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from mlsensors.errors import InputError
from mlsensors.wire.device import PersonSensorDevice


class PresencePin:
    """Drive BCM GPIO `pin` high while the device reports presence; start()/stop()."""

    def __init__(self, device: PersonSensorDevice, pin: int, *, active_high: bool = True,
                 pin_factory: object | None = None) -> None:
        if not 0 <= pin <= 27:
            raise InputError(f"GPIO {pin} is not a header GPIO (BCM 0-27)")
        self.device = device
        self.pin = pin
        self.active_high = active_high
        self._pin_factory = pin_factory
        self._output = None
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        try:
            from gpiozero import DigitalOutputDevice
            from gpiozero.exc import GPIOZeroError
        except ImportError:
            raise InputError(
                "the presence pin needs gpiozero (pip install 'mlsensors[pi]')"
            ) from None
        try:
            self._output = DigitalOutputDevice(
                self.pin, active_high=self.active_high, initial_value=self.device.presence,
                pin_factory=self._pin_factory,
            )
        except GPIOZeroError as e:
            raise InputError(f"cannot drive GPIO {self.pin}: {e}") from None
        self._unsubscribe = self.device.on_presence(self._set)
        self._set(self.device.presence)  # in case it changed while we were opening

    def _set(self, level: bool) -> None:
        output = self._output
        if output is not None:
            output.value = level

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._output is not None:
            self._output.close()
            self._output = None

    def __enter__(self) -> PresencePin:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--presence-pin", type=int, metavar="BCM",
        help="drive this GPIO high while a face is seen in continuous mode (needs gpiozero)",
    )


def from_args(args: argparse.Namespace, device: PersonSensorDevice) -> PresencePin | None:
    pin = getattr(args, "presence_pin", None)
    return None if pin is None else PresencePin(device, pin)
