"""The gallery on disk: a versioned, checksummed, optionally encrypted file, and its erasure.

Face embeddings are biometric data, so the file is treated as such:
- written atomically (temp file, fsync, rename, fsync of the folder) with mode 0600 in a
  0700 folder, so a crash leaves the old or the new gallery, never half of one;
- the previous version is overwritten through a descriptor opened before the rename, so
  its embeddings do not linger in the freed blocks, and at no moment does a second name
  point at it: a process killed mid-save leaves no name holding replaced embeddings.
  A temp file left by a killed save holds the new ones; loading scrubs it;
- optionally sealed with AES-256-GCM under a key kept in a separate file; with a key, a
  plaintext file is refused (never silently read as if it were sealed);
- read only when it is a regular file of at most MAX_FILE_BYTES (a FIFO, a device or a
  huge file is an InputError before a byte is read);
- a file that is not ours, is truncated, corrupt or sealed with another key raises a
  StateError that says which; `load_or_empty` then moves it aside (never overwrites or
  deletes it) so the sensor can start empty and the user can still recover it.

Layout (version 1): the biometric envelope of `mlsensors.envelope` with magic
b"MLSGALRY", around this little-endian payload:

    payload: u16 num_ids, u16 dim, u16 max_per_id, u16 reserved, f64 threshold,
             u32 count, count × u16 id, count × dim × f32 embedding

The checksum sits outside the seal so that damage ("corrupt") is told apart from a
wrong key ("cannot decrypt").
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import struct
import time
from pathlib import Path

import numpy as np

from mlsensors.envelope import Kind, NotEncrypted, default_data_path
from mlsensors.errors import InputError, StateError
from mlsensors.files import read_regular
from mlsensors.person.gallery import Gallery
from mlsensors.vision.embed import EMBEDDING_DIM

GALLERY = Kind(b"MLSGALRY", 1, "gallery")
_PAYLOAD_HEAD = struct.Struct("<HHHHdI")
KEY_BYTES = 32
KEY_FILE_LIMIT = 4096
"""A key file holds 64 hex digits (or 32 raw bytes); anything past 4 KiB is not one."""
MAX_FILE_BYTES = 4 << 20
"""Largest gallery file read: ~8,000 embeddings (the sensor's 8 IDs × 8 samples take
33 KiB)."""
_LEFTOVER = ("tmp", "old")
"""`.NAME.tmp-PID` (a save in progress) and `.NAME.old-PID` (older versions' second name)."""


def default_gallery_path() -> Path:
    """`$XDG_DATA_HOME/mlsensors/gallery.bin`, else ~/.local/share/mlsensors/gallery.bin."""
    return default_data_path("gallery.bin")


def read_key(path: Path | str) -> bytes:
    """A 256-bit key from a file holding 64 hex digits (or the 32 raw bytes)."""
    path = Path(path)
    raw = read_regular(path, KEY_FILE_LIMIT, "key file")
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
    return GALLERY.wrap(payload, key)


def decode(data: bytes, key: bytes | None = None, *, name: str = "gallery") -> Gallery:
    """The gallery in `data`; StateError saying foreign, newer, corrupt, or wrong key."""
    return _parse_payload(GALLERY.unwrap(data, key, name=name), name)


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


def _open_regular_for_overwrite(path: Path) -> int | None:
    """A write descriptor on the regular file at `path` itself, or None when there is
    none: never through a symbolic link (its target is not ours to overwrite), never
    blocking on a FIFO."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):  # link, FIFO, folder
            return None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def _overwrite(fd: int) -> None:
    """Replace every byte of the open file with random data and fsync it."""
    size = os.fstat(fd).st_size
    os.lseek(fd, 0, os.SEEK_SET)
    written = 0
    while written < size:
        written += os.write(fd, secrets.token_bytes(min(1 << 16, size - written)))
    os.fsync(fd)


def scrub(path: Path) -> None:
    """Overwrite a file's bytes with random data, fsync, then unlink it.

    This defeats reading the old bytes back through the file system. It cannot reach
    copies the storage keeps on its own (SSD wear levelling, journals, copy-on-write
    snapshots); for those, encrypt at rest and destroy the key (docs/identification.md).
    A symbolic link is removed without touching what it points to. When the bytes
    cannot all be overwritten (disk full, a file size limit) the name is removed anyway
    and the error raised after: erasure never stops at a failure it can go past.
    """
    fd = _open_regular_for_overwrite(path)
    failed = None
    if fd is not None:
        try:
            _overwrite(fd)
        except OSError as e:
            failed = e
        finally:
            os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    if failed is not None:
        raise failed


def _writer_alive(name: str) -> bool:
    """Whether the process that a leftover's `-PID` suffix names still runs (it may be
    saving right now); an unparsable suffix counts as gone."""
    pid = name.rpartition("-")[2]
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process: alive
    return True


class GalleryFile:
    """One gallery file (and its optional key file) on disk.

    Every biometric file is kept this way; another kind (voice templates) subclasses it
    and changes only what the file holds: `envelope`, `noun`, `max_bytes`, `default_path`,
    `_encode`, `_decode`, `_empty` and `encrypt_command`.
    """

    envelope = GALLERY
    noun = "gallery"
    max_bytes = MAX_FILE_BYTES
    encrypt_command = "mlsensors id encrypt --gallery"

    def __init__(self, path: Path | str | None = None, key_file: Path | str | None = None):
        self.path = Path(path) if path is not None else self.default_path()
        self.key_file = Path(key_file) if key_file is not None else None

    @staticmethod
    def default_path() -> Path:
        return default_gallery_path()

    def _encode(self, value: Gallery, key: bytes | None) -> bytes:
        return encode(value, key)

    def _decode(self, data: bytes, key: bytes | None) -> Gallery:
        return decode(data, key, name=str(self.path))

    def _empty(self, **options) -> Gallery:
        return Gallery(**options)

    def _key(self) -> bytes | None:
        return read_key(self.key_file) if self.key_file is not None else None

    def exists(self) -> bool:
        return self.path.exists()

    def leftovers(self) -> list[Path]:
        """Files an interrupted save left beside the gallery (temp files, second names
        of older versions); they hold embeddings."""
        folder = self.path.parent
        if not folder.is_dir():
            return []
        return sorted(p for kind in _LEFTOVER
                      for p in folder.glob(f".{self.path.name}.{kind}-*"))

    def scrub_leftovers(self) -> list[Path]:
        """Scrub what killed saves left behind (a save still running in another live
        process is left alone). StateError if one cannot be scrubbed."""
        done = []
        for p in self.leftovers():
            if _writer_alive(p.name):
                continue
            try:
                scrub(p)
            except OSError as e:
                raise StateError(f"cannot scrub {p}, left by an interrupted save: "
                                 f"{e.strerror or e}") from None
            done.append(p)
        return done

    def read(self, key: bytes | None) -> Gallery | None:
        """The gallery in the file decoded with `key`, or None when there is no file.
        InputError when the path is not a regular file or is too large to be one."""
        if not os.path.lexists(self.path):
            return None
        return self._decode(read_regular(self.path, self.max_bytes, self.noun), key)

    def load(self, *, missing_ok: bool = True) -> Gallery:
        """The stored gallery (an empty default one if there is no file and missing_ok).

        Leftovers of interrupted saves are scrubbed first. Raises StateError for a file
        that is unreadable as a gallery (the file is left exactly as it is), NotEncrypted
        for a plaintext one when a key is given, InputError for something that is not a
        regular file.
        """
        key = self._key()
        self.scrub_leftovers()
        try:
            gallery = self.read(key)
        except NotEncrypted as e:
            raise NotEncrypted(f"{e}; encrypt it with `{self.encrypt_command} "
                               f"{self.path} --key {self.key_file}` (or leave out the key)"
                               ) from None
        if gallery is None:
            if missing_ok:
                return self._empty()
            raise StateError(f"no {self.noun} at {self.path}")
        return gallery

    def load_or_empty(self, **gallery_options) -> tuple[Gallery, str | None]:
        """For a sensor that must start anyway: the stored gallery, or an empty one.

        On a bad file the message says what was wrong and where the file was moved to;
        the file itself is kept, renamed, for the user to inspect or recover. A wrong
        path (not a regular file) and a plaintext file under a key are not damage: they
        raise, so the sensor does not start on a mistake.
        """
        self._key()  # a key path that is a mistake stops the start, file or not
        try:
            if not os.path.lexists(self.path):
                self.scrub_leftovers()
                return self._empty(**gallery_options), None
            return self.load(), None
        except NotEncrypted:
            raise
        except StateError as e:
            if not os.path.lexists(self.path):  # a leftover could not be scrubbed
                return self._empty(**gallery_options), str(e)
            try:
                aside = self.move_aside()
            except OSError as moved:
                return self._empty(**gallery_options), f"{e}; could not move it aside: {moved}"
            return self._empty(**gallery_options), f"{e}; kept as {aside}, starting empty"

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
        """Atomically replace the file with `gallery`, then scrub the previous version.

        The previous version is opened before the rename and overwritten through that
        descriptor after it, so it never has a second name: a kill at any point leaves
        the old or the new file under the gallery's name, and at most a temp file with
        the new embeddings (scrubbed by the next load).
        """
        data = self._encode(gallery, self._key())
        folder = self.path.parent
        old = None
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = folder / f".{self.path.name}.tmp-{os.getpid()}"
            scrub(tmp)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError:
                os.close(fd)
                scrub(tmp)
                raise
            os.close(fd)
            old = _open_regular_for_overwrite(self.path)
            os.replace(tmp, self.path)
            _fsync_dir(folder)
            if old is not None:
                _overwrite(old)
        except OSError as e:
            raise StateError(f"cannot write {self.noun} {self.path}: {e.strerror or e}"
                             ) from None
        finally:
            if old is not None:
                os.close(old)

    def encrypt(self) -> Gallery:
        """Seal a plaintext gallery with this file's key, in place (the plaintext version
        is scrubbed like any replaced version). StateError if there is no key, no file,
        or it is encrypted already."""
        if self.key_file is None:
            raise StateError("give the key file to encrypt with (--key)")
        self._key()  # a bad key file fails before anything changes
        self.scrub_leftovers()
        if not os.path.lexists(self.path):
            raise StateError(f"no {self.noun} at {self.path}")
        data = read_regular(self.path, self.max_bytes, self.noun)
        if self.envelope.is_sealed(data):
            raise StateError(f"{self.path} is encrypted already")
        gallery = self._decode(data, None)
        self.save(gallery)
        return gallery

    def erase(self) -> list[Path]:
        """Scrub the gallery, leftovers of an interrupted save and files moved aside.

        Files set aside by `load_or_empty` hold embeddings too, so an explicit erase takes
        them as well. Returns the paths scrubbed (empty if there was nothing).
        """
        folder = self.path.parent
        if not folder.is_dir():
            return []
        victims = [p for p in (self.path, *folder.glob(f".{self.path.name}.*-*"),
                               *folder.glob(f"{self.path.name}.bad-*")) if os.path.lexists(p)]
        problems = []
        for victim in victims:  # each one, whatever happened to the one before
            try:
                scrub(victim)
            except OSError as e:
                gone = "removed, " if not os.path.lexists(victim) else ""
                problems.append(f"{victim} {gone}not overwritten: {e.strerror or e}")
        with contextlib.suppress(OSError):
            _fsync_dir(folder)
        if problems:
            raise StateError(f"erase of {self.noun} {self.path} incomplete: "
                             + "; ".join(problems))
        return victims
