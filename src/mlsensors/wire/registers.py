"""The Person Sensor's configuration registers: addresses, legal values, power-on defaults.

A configuration write on the wire is two bytes, register then value. Client code in the
wild also sends other shapes, and `decode_write` says what each means (docs/wire.md):

- 0 bytes: an address probe (i2cdetect); 1 byte that names no register: a register
  pointer (ESPHome sends 0x62, SMBus-style code 0x00). Neither sets anything; the
  transport rewinds its read pointer (the only effect a write without a register has);
- 1 byte naming SINGLE_SHOT: the trigger itself, whose value carries no meaning (a
  CircuitPython library's single capture). Any other register named alone is refused:
  a setting needs its value, and ERASE_IDS is too destructive to fire on the one byte
  that `i2cget 0x62 6` sends as a pointer;
- 3 bytes: register, then a 16-bit value high byte first (the same CircuitPython
  library's "write 16 bit value to register"); legal when the value is in range, so a
  little-endian value other than 0 is refused rather than misread;
- 4 or more bytes: refused whole.

This module only says which writes are legal; what they do is the device model's job
(device.py).
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


_ADDRESSES = frozenset(int(r) for r in Register)
_TRIGGERS_BY_ONE_BYTE = frozenset({Register.SINGLE_SHOT})


def decode_write(data: bytes) -> tuple[int, int] | None:
    """The (register, value) a write transaction asks for, or None for a probe or a
    register pointer; ProtocolError (nothing applied) for a write that would set nothing.

    The value is checked against the register map here; the device model still applies
    its mode rules (a single shot only in standby).
    """
    data = bytes(data)
    if not data:
        return None
    if len(data) == 1:
        byte = data[0]
        if byte not in _ADDRESSES:
            return None
        reg = Register(byte)
        if reg not in _TRIGGERS_BY_ONE_BYTE:
            raise ProtocolError(f"a 1-byte write names {reg.name} (0x{byte:02x}) without a "
                                "value; write register then value")
        return byte, 0
    if len(data) == 2:
        register, value = data
    elif len(data) == 3:
        register, value = data[0], int.from_bytes(data[1:], "big")
    else:
        raise ProtocolError(f"a {len(data)}-byte write is not a register write "
                            "(register then value, 2 or 3 bytes)")
    check_write(register, value)
    return register, value
