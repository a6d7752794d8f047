"""Enrolled commands handed to the sealed voice process by the guard, never by a file.

The service (outside the seal) reads the template file, decrypting it with its key, and
gives every new sealed child the commands as blocks on its command pipe: a u32 length,
then the store's own unsealed encoding (`voice.store.encode`, checked by its SHA-256),
cut into blocks the channel can carry. So the sealed process needs neither the file nor
the key, can write neither, and a damaged file is set aside by the service, not by it.
"""

from __future__ import annotations

import struct
import threading

from mlsensors.errors import InputError, StateError
from mlsensors.privacy.channel import encode_block
from mlsensors.voice.matcher import CommandSet

_LENGTH = struct.Struct("<I")
_CHUNK = 60_000
MAX_BYTES = 1 << 20
"""More than any valid store (voice.store.MAX_FILE_BYTES): a larger hand-off is refused."""


def template_blocks(commands: CommandSet) -> bytes:
    """Command-pipe bytes that give a child `commands`."""
    from mlsensors.voice.store import encode

    data = encode(commands)
    data = _LENGTH.pack(len(data)) + data
    return b"".join(encode_block(data[i:i + _CHUNK]) for i in range(0, len(data), _CHUNK))


class TemplateReceiver:
    """The child's side: collects blocks until the whole hand-off is there."""

    def __init__(self) -> None:
        self._buf = b""
        self._done = threading.Event()
        self.commands: CommandSet | None = None
        self.error = ""

    def __call__(self, block: bytes) -> None:
        if self._done.is_set():
            return
        self._buf += block
        if len(self._buf) < _LENGTH.size:
            return
        (n,) = _LENGTH.unpack_from(self._buf)
        if n > MAX_BYTES:
            self.error = f"enrolled commands of {n} bytes are more than any store holds"
            self._done.set()
        elif len(self._buf) >= _LENGTH.size + n:
            from mlsensors.voice.store import decode

            try:
                self.commands = decode(self._buf[_LENGTH.size:_LENGTH.size + n],
                                       name="the enrolled commands from the guard")
            except StateError as e:
                self.error = str(e)
            self._buf = b""
            self._done.set()

    def wait(self, stop: threading.Event, timeout: float = 30.0) -> CommandSet:
        """The commands once they are all there; InputError if they never come whole."""
        waited = 0.0
        while not self._done.wait(0.1):
            waited += 0.1
            if stop.is_set() or waited >= timeout:
                raise InputError("the enrolled commands did not arrive from the guard")
        if self.commands is None:
            raise InputError(self.error)
        return self.commands
