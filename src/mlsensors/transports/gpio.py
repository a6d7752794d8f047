"""GPIO outputs (Raspberry Pi and others, through gpiozero): the presence pin, and one
pin per voice command (`CommandPins`, below).

The SEN21231 raises a pin while it sees at least one face in continuous mode, so a
microcontroller can wake on it instead of polling. `PresencePin` follows the device
model's presence events (wire/device.py) and drives a GPIO output to match.

Hardware edge: gpiozero is imported only in `start()`, so nothing else needs it.
"""

from __future__ import annotations

import argparse
import threading
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


PULSE_SECONDS = 0.2
"""How long a command's pin stays high: long enough for a microcontroller's interrupt
or a relay module's input, short enough that two commands 0.5 s apart are two pulses."""


class CommandPins:
    """One GPIO output per enrolled command ("an array of pins, one per command"): a
    published command pulses its pin high for `pulse` seconds. Commands the gate held
    back pulse nothing; the wake word has no pin."""

    def __init__(self, voice, pins: list[int], *, pulse: float = PULSE_SECONDS,
                 active_high: bool = True, pin_factory: object | None = None) -> None:
        bad = [p for p in pins if not 0 <= p <= 27]
        if bad:
            raise InputError(f"GPIO {bad[0]} is not a header GPIO (BCM 0-27)")
        if len(set(pins)) != len(pins):
            raise InputError("--command-pins names a GPIO twice")
        commands = voice.snapshot().commands
        if len(pins) != len(commands):
            raise InputError(f"--command-pins gives {len(pins)} GPIO(s) for "
                             f"{len(commands)} enrolled command(s) "
                             f"({', '.join(commands) or 'none'}): one per command, in "
                             f"`mlsensors voice list` order")
        self.voice = voice
        self.pins = list(pins)
        self.pulse = pulse
        self.active_high = active_high
        self._pin_factory = pin_factory
        self._outputs: list = []
        self._timers: list[threading.Timer] = []
        self._lock = threading.Lock()
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        try:
            from gpiozero import DigitalOutputDevice
            from gpiozero.exc import GPIOZeroError
        except ImportError:
            raise InputError(
                "command pins need gpiozero (pip install 'mlsensors[pi]')") from None
        try:
            for pin in self.pins:
                self._outputs.append(DigitalOutputDevice(
                    pin, active_high=self.active_high, initial_value=False,
                    pin_factory=self._pin_factory))
        except GPIOZeroError as e:
            self.stop()
            raise InputError(f"cannot drive GPIO {pin}: {e}") from None
        self._unsubscribe = self.voice.subscribe(self._on_snapshot)

    def _on_snapshot(self, snap) -> None:
        from mlsensors.voice.record import EventKind

        event = snap.new
        if event is None or event.kind != EventKind.COMMAND:
            return
        with self._lock:
            if event.command >= len(self._outputs):
                return
            output = self._outputs[event.command]
            output.on()
            timer = threading.Timer(self.pulse, self._off, (output,))
            timer.daemon = True
            self._timers = [t for t in self._timers if t.is_alive()] + [timer]
            timer.start()

    def _off(self, output) -> None:
        with self._lock:
            if output in self._outputs:
                output.off()

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        with self._lock:
            for timer in self._timers:
                timer.cancel()
            outputs, self._outputs, self._timers = self._outputs, [], []
        for output in outputs:
            output.off()
            output.close()


def _pins(text: str) -> list[int]:
    try:
        return [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r:.40} is not a list of BCM GPIO numbers such as 5,6,13") from None


def add_command_pin_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--command-pins", type=_pins, metavar="BCM,...",
        help="with --voice: pulse one GPIO per enrolled command, in `mlsensors voice list` "
             f"order ({PULSE_SECONDS:g} s high; needs gpiozero)")


def command_pins_from_args(args: argparse.Namespace, voice) -> CommandPins | None:
    pins = getattr(args, "command_pins", None)
    if pins is None:
        return None
    if voice is None:
        raise InputError("--command-pins needs --voice")
    return CommandPins(voice, pins)
