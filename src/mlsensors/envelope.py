"""The envelope around every biometric file: magic, version, optional AEAD, checksum.

Face galleries and voice templates say who a person is or how they speak, so both files
get the same treatment, from this one piece of code: a SHA-256 over the whole file (so
damage is told apart from a wrong key, which the checksum sits outside of), an optional
AES-256-GCM seal whose associated data is the header, and refusals that name the problem
in one line. With a key, a plaintext file is refused (`NotEncrypted`), never silently read
as if it had been sealed.

Layout, little-endian:

    0   8  magic (names the kind of file)
    8   1  version
    9   1  flags: bit 0 = body is AES-256-GCM sealed
    10  2  reserved, 0
    12  4  body length n
    16  n  body: the payload, or nonce(12) ‖ AESGCM(payload, aad = bytes 0..15)
    16+n 32 SHA-256 of bytes 0 .. 16+n
"""

from __future__ import annotations

import hashlib
import os
import secrets
import struct
from dataclasses import dataclass
from pathlib import Path

from mlsensors.errors import StateError

FLAG_SEALED = 0x01
HEADER = struct.Struct("<8sBBHI")
DIGEST = 32
NONCE = 12
TAG = 16
OVERHEAD = HEADER.size + NONCE + TAG + DIGEST
"""The most bytes the envelope adds to a payload."""


class NotEncrypted(StateError):
    """A plaintext file where a key was given: refused, never a silent downgrade, and
    never moved aside as if it were damaged (it is the user's, intact)."""


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of biometric file: its magic, format version and names in messages."""

    magic: bytes
    version: int
    noun: str
    """What a file of this kind is called: "gallery", "voice"."""
    key_flag: str = "--key"
    """The option that gives this kind's key file, for the messages."""

    def wrap(self, payload: bytes, key: bytes | None = None) -> bytes:
        """The file's bytes for `payload`, sealed with `key` when one is given."""
        if key is None:
            header = HEADER.pack(self.magic, self.version, 0, 0, len(payload))
            body = payload
        else:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            nonce = secrets.token_bytes(NONCE)
            header = HEADER.pack(self.magic, self.version, FLAG_SEALED, 0,
                                 NONCE + len(payload) + TAG)
            body = nonce + AESGCM(key).encrypt(nonce, payload, header)
        data = header + body
        return data + hashlib.sha256(data).digest()

    def is_sealed(self, data: bytes) -> bool:
        """Whether `data` (a file of this kind, not yet checked) says its body is sealed."""
        return len(data) > HEADER.size and bool(data[len(self.magic) + 1] & FLAG_SEALED)

    def unwrap(self, data: bytes, key: bytes | None = None, *, name: str) -> bytes:
        """The payload in `data`; StateError saying foreign, newer, truncated, corrupt,
        encrypted without a key, wrong key, or (NotEncrypted) plaintext with a key."""
        if data[:len(self.magic)] != self.magic:
            raise StateError(f"{name} is not an mlsensors {self.noun} file "
                             f"(no {self.noun} header)")
        if len(data) < HEADER.size + DIGEST:
            raise StateError(f"{name} is truncated ({len(data)} bytes)")
        _, version, flags, _, size = HEADER.unpack_from(data)
        if version != self.version:
            raise StateError(f"{name} has {self.noun} format version {version}; this "
                             f"mlsensors reads version {self.version}")
        end = HEADER.size + size
        if len(data) != end + DIGEST:
            raise StateError(f"{name} is truncated or has extra bytes "
                             f"({len(data)} bytes, header says {end + DIGEST})")
        if hashlib.sha256(data[:end]).digest() != data[end:]:
            raise StateError(f"{name} is corrupt (checksum mismatch)")
        body = data[HEADER.size:end]
        if flags == FLAG_SEALED:
            if key is None:
                raise StateError(f"{name} is encrypted; give its key file ({self.key_flag})")
            from cryptography.exceptions import InvalidTag
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            try:
                return AESGCM(key).decrypt(body[:NONCE], body[NONCE:], data[:HEADER.size])
            except (InvalidTag, ValueError):
                raise StateError(f"cannot decrypt {name}: wrong key") from None
        if flags:
            raise StateError(f"{name} uses unknown flags {flags:#x}")
        if key is not None:
            raise NotEncrypted(f"{name} is not encrypted, but a key was given")
        return body


def default_data_path(filename: str) -> Path:
    """`$XDG_DATA_HOME/mlsensors/FILENAME`, else ~/.local/share/mlsensors/FILENAME."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "mlsensors" / filename
