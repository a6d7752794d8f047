"""The enrolled commands on disk: biometric data, kept like the face gallery.

A voice template says how one person says a word, so the file gets the face gallery's
treatment, from the same code (sensors.gallery_file): written atomically with mode 0600
in a 0700 folder, the previous version scrubbed, a SHA-256 over the whole file, optional
AES-256-GCM with a key file, a damaged file moved aside (never deleted) with a one-line
reason, and `erase` that overwrites before it unlinks.

Layout (version 1), little-endian, the gallery's frame with its own magic:

    0   8  magic b"MLSVOICE"   8 1 version   9 1 flags (bit 0 sealed)   10 2 zero
    12  4  body length n       16 n body (payload, or nonce ‖ AESGCM(payload, aad=0..15))
    16+n 32 SHA-256 of bytes 0 .. 16+n

    payload: u16 count, u16 dim (raw features, voice.embed.RAW_DIM), f32 threshold
             (NaN: the shipped one), then per command:
             u8 name length, name (UTF-8), u16 rows, rows × dim × f32
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import secrets
import struct
from pathlib import Path

import numpy as np

from mlsensors.errors import InputError, StateError
from mlsensors.sensors.gallery_file import _NONCE, GalleryFile, _fsync_dir, scrub
from mlsensors.voice.embed import RAW_DIM as DIM
from mlsensors.voice.matcher import MAX_COMMANDS, MAX_TEMPLATES, CommandSet

MAGIC = b"MLSVOICE"
VERSION = 1
FLAG_SEALED = 0x01
_HEADER = struct.Struct("<8sBBHI")
_HEAD = struct.Struct("<HHf")
_DIGEST = 32
MAX_FILE_BYTES = _HEADER.size + _NONCE + 16 + _DIGEST + _HEAD.size + MAX_COMMANDS * (
    1 + 32 * 4 + 2 + MAX_TEMPLATES * DIM * 4)
"""No valid file is larger; a larger one is refused before it is read."""


def default_store_path() -> Path:
    """`$XDG_DATA_HOME/mlsensors/voice.bin`, else ~/.local/share/mlsensors/voice.bin."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "mlsensors" / "voice.bin"


def encode(commands: CommandSet, key: bytes | None = None) -> bytes:
    override = commands.threshold_override
    parts = [_HEAD.pack(len(commands), DIM, math.nan if override is None else override)]
    for name in commands.names():
        raw = name.encode()
        rows = commands.templates(name).astype("<f4")
        parts += [bytes([len(raw)]), raw, struct.pack("<H", len(rows)), rows.tobytes()]
    payload = b"".join(parts)
    if key is None:
        header = _HEADER.pack(MAGIC, VERSION, 0, 0, len(payload))
        body = payload
    else:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = secrets.token_bytes(_NONCE)
        header = _HEADER.pack(MAGIC, VERSION, FLAG_SEALED, 0, _NONCE + len(payload) + 16)
        body = nonce + AESGCM(key).encrypt(nonce, payload, header)
    data = header + body
    return data + hashlib.sha256(data).digest()


def decode(data: bytes, key: bytes | None = None, *, name: str = "voice store") -> CommandSet:
    """The commands in `data`; StateError saying foreign, newer, corrupt or wrong key."""
    if data[:len(MAGIC)] != MAGIC:
        raise StateError(f"{name} is not an mlsensors voice file (no voice header)")
    if len(data) < _HEADER.size + _DIGEST:
        raise StateError(f"{name} is truncated ({len(data)} bytes)")
    _, version, flags, _, size = _HEADER.unpack_from(data)
    if version != VERSION:
        raise StateError(f"{name} has voice format version {version}; this mlsensors reads "
                         f"version {VERSION}")
    end = _HEADER.size + size
    if len(data) != end + _DIGEST:
        raise StateError(f"{name} is truncated or has extra bytes ({len(data)} bytes, "
                         f"header says {end + _DIGEST})")
    if hashlib.sha256(data[:end]).digest() != data[end:]:
        raise StateError(f"{name} is corrupt (checksum mismatch)")
    body = data[_HEADER.size:end]
    if flags == FLAG_SEALED:
        if key is None:
            raise StateError(f"{name} is encrypted; give its key file (--key)")
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            body = AESGCM(key).decrypt(body[:_NONCE], body[_NONCE:], data[:_HEADER.size])
        except (InvalidTag, ValueError):
            raise StateError(f"cannot decrypt {name}: wrong key") from None
    elif flags:
        raise StateError(f"{name} uses unknown flags {flags:#x}")
    return _parse(body, name)


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
    """The voice store file (and its optional key file); erase and move-aside are the
    gallery's own."""

    def __init__(self, path: Path | str | None = None, key_file: Path | str | None = None):
        super().__init__(path if path is not None else default_store_path(), key_file)

    def load(self, *, missing_ok: bool = True) -> CommandSet:  # type: ignore[override]
        from mlsensors.files import read_regular

        key = self._key()
        if not self.path.exists() and not self.path.is_symlink():
            if missing_ok:
                return CommandSet()
            raise StateError(f"no voice commands at {self.path}")
        try:
            data = read_regular(self.path, MAX_FILE_BYTES, "voice store")
        except InputError as e:
            raise StateError(str(e)) from None
        except Exception as e:  # SourceError: cannot open
            raise StateError(str(e)) from None
        return decode(data, key, name=str(self.path))

    def load_or_empty(self) -> tuple[CommandSet, str | None]:  # type: ignore[override]
        try:
            return self.load(), None
        except StateError as e:
            try:
                aside = self.move_aside()
            except OSError as moved:
                return CommandSet(), f"{e}; could not move it aside: {moved}"
            return CommandSet(), f"{e}; kept as {aside}, starting empty"

    def save(self, commands: CommandSet) -> None:  # type: ignore[override]
        """Atomically replace the file, then scrub the previous version."""
        data = encode(commands, self._key())
        folder = self.path.parent
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = folder / f".{self.path.name}.tmp-{os.getpid()}"
            old = folder / f".{self.path.name}.old-{os.getpid()}"
            with contextlib.suppress(FileNotFoundError):
                scrub(tmp)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            had_old = self.path.exists()
            if had_old:
                with contextlib.suppress(FileNotFoundError):
                    scrub(old)
                os.link(self.path, old)
            os.replace(tmp, self.path)
            _fsync_dir(folder)
            if had_old:
                scrub(old)
                _fsync_dir(folder)
        except OSError as e:
            raise StateError(f"cannot write voice store {self.path}: {e.strerror or e}") from None
