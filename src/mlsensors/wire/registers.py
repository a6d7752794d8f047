"""The Person Sensor's configuration registers: addresses, legal values, power-on defaults.

A configuration write on the wire is two bytes, register then value. This module only
says which writes are legal; what they do is the device model's job (device.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from mlsensors.errors import ProtocolError
from mlsensors.wire.record import MAX_ID


class Register(IntEnum):
    MODE = 0x01
    ENABLE_ID = 0x02
    SINGLE_SHOT = 0x03
    CALIBRATE_ID = 0x04
    PERSIST_IDS = 0x05
    ERASE_IDS = 0x06
    DEBUG_MODE = 0x07


class Mode(IntEnum):
    STANDBY = 0
    CONTINUOUS = 1


@dataclass(frozen=True, slots=True)
class RegisterSpec:
    """One register: the values it accepts and its power-on default (None: a trigger)."""

    register: Register
    values: range
    default: int | None
    summary: str


_BOOL = range(2)
_ANY = range(256)

REGISTER_MAP: dict[Register, RegisterSpec] = {
    spec.register: spec
    for spec in (
        RegisterSpec(Register.MODE, _BOOL, Mode.CONTINUOUS,
                     "0 standby (not capturing), 1 continuous"),
        RegisterSpec(Register.ENABLE_ID, _BOOL, 0, "1 recognises calibrated faces"),
        # Triggers: client code in the wild writes 0 or 1; the value carries no meaning.
        RegisterSpec(Register.SINGLE_SHOT, _ANY, None,
                     "run one inference; only in standby"),
        RegisterSpec(Register.CALIBRATE_ID, range(MAX_ID + 1), None,
                     "label the next recognised largest face as ID N"),
        RegisterSpec(Register.PERSIST_IDS, _BOOL, 1, "1 keeps learnt IDs across restarts"),
        RegisterSpec(Register.ERASE_IDS, _ANY, None, "wipe stored IDs"),
        RegisterSpec(Register.DEBUG_MODE, _BOOL, 1, "the indicator LED"),
    )
}


def check_write(register: int, value: int) -> Register:
    """The register a 2-byte write addresses, or ProtocolError naming why it is illegal."""
    try:
        reg = Register(register)
    except ValueError:
        raise ProtocolError(f"unknown register 0x{register:02x}") from None
    spec = REGISTER_MAP[reg]
    if value not in spec.values:
        raise ProtocolError(
            f"value {value} is not valid for {reg.name} "
            f"(0x{reg:02x}; accepts {spec.values.start}-{spec.values.stop - 1})"
        )
    return reg
