"""The gallery on disk: a versioned, checksummed, optionally encrypted file, and its erasure.

Face embeddings are biometric data, so the file is treated as such:
- written atomically (temp file, fsync, rename, fsync of the folder) with mode 0600 in a
  0700 folder, so a crash leaves the old or the new gallery, never half of one;
- the previous version is overwritten and unlinked after each save, not just replaced,
  so old embeddings do not linger in freed blocks of the old file's inode;
- optionally sealed with AES-256-GCM under a key kept in a separate file;
- a file that is not ours, is truncated, corrupt or sealed with another key raises a
  StateError that says which; `load_or_empty` then moves it aside (never overwrites or
  deletes it) so the sensor can start empty and the user can still recover it.

Layout (version 1), little-endian:

    0   8  magic  b"MLSGALRY"
    8   1  version (1)
    9   1  flags: bit 0 = body is AES-256-GCM sealed
    10  2  reserved, 0
    12  4  body length n
    16  n  body: the payload, or nonce(12) ‖ AESGCM(payload, aad = bytes 0..15)
    16+n 32 SHA-256 of bytes 0 .. 16+n

    payload: u16 num_ids, u16 dim, u16 max_per_id, u16 reserved, f64 threshold,
             u32 count, count × u16 id, count × dim × f32 embedding

The checksum sits outside the seal so that damage ("corrupt") is told apart from a
wrong key ("cannot decrypt").
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import struct
import time
from pathlib import Path

import numpy as np

from mlsensors.errors import InputError, StateError
from mlsensors.sensors.gallery import Gallery
from mlsensors.vision.embed import EMBEDDING_DIM

MAGIC = b"MLSGALRY"
VERSION = 1
FLAG_SEALED = 0x01
_HEADER = struct.Struct("<8sBBHI")
_PAYLOAD_HEAD = struct.Struct("<HHHHdI")
_DIGEST = 32
_NONCE = 12
KEY_BYTES = 32


def default_gallery_path() -> Path:
    """`$XDG_DATA_HOME/mlsensors/gallery.bin`, else ~/.local/share/mlsensors/gallery.bin."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "mlsensors" / "gallery.bin"


def read_key(path: Path | str) -> bytes:
    """A 256-bit key from a file holding 64 hex digits (or the 32 raw bytes)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise StateError(f"cannot read key file {path}: {e.strerror}") from None
    if len(raw) == KEY_BYTES:
        return raw
    try:
        key = bytes.fromhex(raw.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise StateError(
            f"key file {path} must hold 64 hex digits (a 256-bit key); "
            f"make one with `mlsensors id keygen {path}`"
        )
    return key


def write_new_key(path: Path | str) -> Path:
    """Create a key file with a fresh random key, mode 0600; never replaces a file."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise StateError(f"{path} already exists; refusing to replace a key") from None
    except OSError as e:
        raise StateError(f"cannot create key file {path}: {e.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(KEY_BYTES) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return path


def encode(gallery: Gallery, key: bytes | None = None) -> bytes:
    """The file's bytes for `gallery`, sealed with `key` when one is given."""
    items = gallery.items()
    ids = np.array([i for i, rows in items for _ in range(len(rows))], dtype="<u2")
    rows = (np.concatenate([r for _, r in items]) if items
            else np.empty((0, EMBEDDING_DIM), np.float32)).astype("<f4")
    payload = (
        _PAYLOAD_HEAD.pack(gallery.num_ids, EMBEDDING_DIM, gallery.max_per_id, 0,
                           gallery.threshold, len(ids))
        + ids.tobytes() + rows.tobytes()
    )
    flags = 0
    if key is not None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        flags = FLAG_SEALED
        nonce = secrets.token_bytes(_NONCE)
        size = _NONCE + len(payload) + 16
        header = _HEADER.pack(MAGIC, VERSION, flags, 0, size)
        body = nonce + AESGCM(key).encrypt(nonce, payload, header)
    else:
        header = _HEADER.pack(MAGIC, VERSION, flags, 0, len(payload))
        body = payload
    data = header + body
    return data + hashlib.sha256(data).digest()


def decode(data: bytes, key: bytes | None = None, *, name: str = "gallery") -> Gallery:
    """The gallery in `data`; StateError saying foreign, newer, corrupt, or wrong key."""
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        raise StateError(f"{name} is not an mlsensors gallery file (no gallery header)")
    if len(data) < _HEADER.size + _DIGEST:
        raise StateError(f"{name} is truncated ({len(data)} bytes)")
    _, version, flags, _, size = _HEADER.unpack_from(data)
    if version != VERSION:
        raise StateError(f"{name} has gallery format version {version}; this mlsensors "
                         f"reads version {VERSION}")
    end = _HEADER.size + size
    if len(data) != end + _DIGEST:
        raise StateError(f"{name} is truncated or has extra bytes "
                         f"({len(data)} bytes, header says {end + _DIGEST})")
    if hashlib.sha256(data[:end]).digest() != data[end:]:
        raise StateError(f"{name} is corrupt (checksum mismatch)")
    body = data[_HEADER.size:end]
    if flags & FLAG_SEALED:
        if key is None:
            raise StateError(f"{name} is encrypted; give its key file (--key)")
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            payload = AESGCM(key).decrypt(body[:_NONCE], body[_NONCE:], data[:_HEADER.size])
        except (InvalidTag, ValueError):
            raise StateError(f"cannot decrypt {name}: wrong key") from None
    elif flags:
        raise StateError(f"{name} uses unknown flags {flags:#x}")
    else:
        payload = body
    return _parse_payload(payload, name)


def _parse_payload(payload: bytes, name: str) -> Gallery:
    if len(payload) < _PAYLOAD_HEAD.size:
        raise StateError(f"{name} is corrupt (short payload)")
    num_ids, dim, max_per_id, _, threshold, count = _PAYLOAD_HEAD.unpack_from(payload)
    if dim != EMBEDDING_DIM:
        raise StateError(f"{name} holds {dim}-D embeddings, expected {EMBEDDING_DIM}")
    want = _PAYLOAD_HEAD.size + count * 2 + count * dim * 4
    if len(payload) != want:
        raise StateError(f"{name} is corrupt (payload of {len(payload)} bytes, "
                         f"expected {want})")
    off = _PAYLOAD_HEAD.size
    ids = np.frombuffer(payload, "<u2", count, off)
    rows = np.frombuffer(payload, "<f4", count * dim, off + count * 2).reshape(count, dim)
    try:
        gallery = Gallery(num_ids, max_per_id=max_per_id, threshold=threshold)
        for id_ in np.unique(ids):
            gallery.set(int(id_), rows[ids == id_])
    except InputError as e:
        raise StateError(f"{name} is corrupt ({e})") from None
    return gallery


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def scrub(path: Path) -> None:
    """Overwrite a file's bytes with random data, fsync, then unlink it.

    This defeats reading the old bytes back through the file system. It cannot reach
    copies the storage keeps on its own (SSD wear levelling, journals, copy-on-write
    snapshots); for those, encrypt at rest and destroy the key (docs/identification.md).
    """
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        return
    try:
        size = os.fstat(fd).st_size
        written = 0
        while written < size:
            written += os.write(fd, secrets.token_bytes(min(1 << 16, size - written)))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.unlink(path)


class GalleryFile:
    """One gallery file (and its optional key file) on disk."""

    def __init__(self, path: Path | str | None = None, key_file: Path | str | None = None):
        self.path = Path(path) if path is not None else default_gallery_path()
        self.key_file = Path(key_file) if key_file is not None else None

    def _key(self) -> bytes | None:
        return read_key(self.key_file) if self.key_file is not None else None

    def exists(self) -> bool:
        return self.path.exists()

    def load(self, *, missing_ok: bool = True) -> Gallery:
        """The stored gallery (an empty default one if there is no file and missing_ok).

        Raises StateError for anything unreadable; the file is left exactly as it is.
        """
        key = self._key()
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            if missing_ok:
                return Gallery()
            raise StateError(f"no gallery at {self.path}") from None
        except IsADirectoryError:
            raise StateError(f"{self.path} is a folder, not a gallery file") from None
        except OSError as e:
            raise StateError(f"cannot read gallery {self.path}: {e.strerror}") from None
        return decode(data, key, name=str(self.path))

    def load_or_empty(self, **gallery_options) -> tuple[Gallery, str | None]:
        """For a sensor that must start anyway: the stored gallery, or an empty one.

        On a bad file the message says what was wrong and where the file was moved to;
        the file itself is kept, renamed, for the user to inspect or recover.
        """
        try:
            if not self.path.exists():
                return Gallery(**gallery_options), None
            return self.load(), None
        except StateError as e:
            try:
                aside = self.move_aside()
            except OSError as moved:
                return Gallery(**gallery_options), f"{e}; could not move it aside: {moved}"
            return Gallery(**gallery_options), f"{e}; kept as {aside}, starting empty"

    def move_aside(self) -> Path:
        """Rename the file to `<name>.bad-<UTC time>[-n]` beside it; never overwrites."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        for n in range(1000):
            aside = self.path.with_name(f"{self.path.name}.bad-{stamp}" + (f"-{n}" if n else ""))
            try:
                os.link(self.path, aside)
            except FileExistsError:
                continue
            os.unlink(self.path)
            return aside
        raise StateError(f"cannot find a free name to move {self.path} aside")

    def save(self, gallery: Gallery) -> None:
        """Atomically replace the file with `gallery`, then scrub the previous version."""
        data = encode(gallery, self._key())
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
            raise StateError(f"cannot write gallery {self.path}: {e.strerror or e}") from None

    def erase(self) -> list[Path]:
        """Scrub the gallery, leftovers of an interrupted save and files moved aside.

        Files set aside by `load_or_empty` hold embeddings too, so an explicit erase takes
        them as well. Returns the paths scrubbed (empty if there was nothing).
        """
        folder = self.path.parent
        if not folder.is_dir():
            return []
        victims = [p for p in (self.path, *folder.glob(f".{self.path.name}.*-*"),
                               *folder.glob(f"{self.path.name}.bad-*")) if p.is_file()]
        try:
            for victim in victims:
                scrub(victim)
            _fsync_dir(folder)
        except OSError as e:
            raise StateError(f"cannot erase gallery {self.path}: {e.strerror or e}") from None
        return victims
