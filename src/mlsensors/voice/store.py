"""The enrolled commands on disk: biometric data, kept like the face gallery.

A voice template says how one person says a word, so the file gets the face gallery's
treatment, from the same code (person.gallery_file): written atomically with mode 0600
in a 0700 folder, the previous version scrubbed, a SHA-256 over the whole file, optional
AES-256-GCM with a key file, a damaged file moved aside (never deleted) with a one-line
reason, and `erase` that overwrites before it unlinks.

Layout (version 1): the biometric envelope of `mlsensors.envelope` with magic
b"MLSVOICE", around this little-endian payload:

    payload: u16 count, u16 dim (raw features, voice.embed.RAW_DIM), f32 threshold
             (NaN: the shipped one), then per command:
             u8 name length, name (UTF-8), u16 rows, rows × dim × f32
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np

from mlsensors.envelope import OVERHEAD, Kind, default_data_path
from mlsensors.errors import InputError, StateError
from mlsensors.person.gallery_file import GalleryFile
from mlsensors.voice.embed import RAW_DIM as DIM
from mlsensors.voice.matcher import MAX_COMMANDS, MAX_TEMPLATES, CommandSet

VOICE = Kind(b"MLSVOICE", 1, "voice", "--key; serve: --voice-key")
_HEAD = struct.Struct("<HHf")
MAX_FILE_BYTES = OVERHEAD + _HEAD.size + MAX_COMMANDS * (
    1 + 32 * 4 + 2 + MAX_TEMPLATES * DIM * 4)
"""No valid file is larger; a larger one is refused before it is read."""


def default_store_path() -> Path:
    """`$XDG_DATA_HOME/mlsensors/voice.bin`, else ~/.local/share/mlsensors/voice.bin."""
    return default_data_path("voice.bin")


def encode(commands: CommandSet, key: bytes | None = None) -> bytes:
    override = commands.threshold_override
    parts = [_HEAD.pack(len(commands), DIM, math.nan if override is None else override)]
    for name in commands.names():
        raw = name.encode()
        rows = commands.templates(name).astype("<f4")
        parts += [bytes([len(raw)]), raw, struct.pack("<H", len(rows)), rows.tobytes()]
    return VOICE.wrap(b"".join(parts), key)


def decode(data: bytes, key: bytes | None = None, *, name: str = "voice store") -> CommandSet:
    """The commands in `data`; StateError saying foreign, newer, corrupt or wrong key."""
    return _parse(VOICE.unwrap(data, key, name=name), name)


def _parse(payload: bytes, name: str) -> CommandSet:
    try:
        count, dim, threshold = _HEAD.unpack_from(payload)
        if dim != DIM:
            raise StateError(f"{name} holds {dim}-D templates, expected {DIM}")
        commands = CommandSet(None if math.isnan(threshold) else threshold)
        off = _HEAD.size
        for _ in range(count):
            n = payload[off]
            label = payload[off + 1:off + 1 + n].decode()
            (rows,) = struct.unpack_from("<H", payload, off + 1 + n)
            off += 3 + n
            values = np.frombuffer(payload, "<f4", rows * dim, off).reshape(rows, dim)
            off += rows * dim * 4
            commands.set(label, values)
        if off != len(payload):
            raise StateError(f"{name} is corrupt ({len(payload) - off} stray bytes)")
        return commands
    except (struct.error, IndexError, ValueError, UnicodeDecodeError, InputError) as e:
        raise StateError(f"{name} is corrupt ({e})") from None


class TemplateFile(GalleryFile):
    """The voice store file (and its optional key file): kept, encrypted, moved aside
    and erased by the gallery's own code; only what it holds differs."""

    envelope = VOICE
    noun = "voice store"
    max_bytes = MAX_FILE_BYTES
    encrypt_command = "mlsensors voice encrypt --store"

    @staticmethod
    def default_path() -> Path:
        return default_store_path()

    def _encode(self, value: CommandSet, key: bytes | None) -> bytes:  # type: ignore[override]
        return encode(value, key)

    def _decode(self, data: bytes, key: bytes | None) -> CommandSet:  # type: ignore[override]
        return decode(data, key, name=str(self.path))

    def _empty(self, **options) -> CommandSet:  # type: ignore[override]
        return CommandSet()
