"""The few register writes a remote transport (MQTT, the status page) may send.

Remote control reaches the sensor as exactly the Person Sensor's 2-byte register writes
(register, value), so a command from Home Assistant or the page means the same thing as
one from I2C client code. This module validates a remote request and builds that write;
anything outside the documented commands and value ranges raises ProtocolError with a
one-line reason and nothing is sent.
"""

from __future__ import annotations

from mlsensors.errors import ProtocolError
from mlsensors.hub import RegisterWrite
from mlsensors.wire.record import MAX_ID

REG_MODE = 0x01
REG_ENABLE_ID = 0x02
REG_CALIBRATE_ID = 0x04
REG_ERASE_IDS = 0x06

MODE_STANDBY = 0
MODE_CONTINUOUS = 1
MODES = {"standby": MODE_STANDBY, "continuous": MODE_CONTINUOUS}

ERASE_VALUE = 0
"""The Person Sensor ignores the value written to ERASE_IDS; the vendor's examples write 0."""


def calibrate(slot: int | str) -> RegisterWrite:
    """Label the next recognised largest face as ID `slot` (0–7)."""
    value = _integer(slot, "calibrate ID")
    if not 0 <= value <= MAX_ID:
        raise ProtocolError(f"calibrate ID must be 0-{MAX_ID}, got {value}")
    return RegisterWrite(REG_CALIBRATE_ID, value)


def erase() -> RegisterWrite:
    """Wipe every stored ID."""
    return RegisterWrite(REG_ERASE_IDS, ERASE_VALUE)


def set_mode(mode: str) -> RegisterWrite:
    """`standby` (not capturing) or `continuous` (the default)."""
    key = mode.strip().lower() if isinstance(mode, str) else None
    if key not in MODES:
        raise ProtocolError(f"mode must be one of {', '.join(MODES)}, got {mode!r:.40}")
    return RegisterWrite(REG_MODE, MODES[key])


def enable_id(on: bool) -> RegisterWrite:
    """Turn recognition of stored IDs on or off."""
    return RegisterWrite(REG_ENABLE_ID, 1 if on else 0)


def _integer(text: int | str, what: str) -> int:
    if isinstance(text, bool):
        raise ProtocolError(f"{what} must be an integer, got {text!r}")
    if isinstance(text, int):
        return text
    stripped = text.strip() if isinstance(text, str) else ""
    if not stripped.isascii() or not stripped.lstrip("-").isdigit() or len(stripped) > 4:
        raise ProtocolError(f"{what} must be an integer, got {text!r:.40}")
    return int(stripped)
