"""Where the sensor's next read byte comes from: the read pointer of one controller link.

The SEN21231 is read with plain I2C reads and no register address, yet the vendor's own
Arduino driver reads its 39 bytes as 32 then 7 (the Wire library buffers 32 bytes) and
works on a real Uno: the device continues a read where the previous one stopped. This
is what a target that clocks its record out of a transmit FIFO or DMA buffer does, and
it is the model here:

- a *read sequence* starts at byte 0 and latches the record current at that moment;
  until the sequence ends, every read continues where the last one stopped, from the
  same latched record, so a sequence that spans a new frame never mixes two records;
- the sequence ends when the record's last byte (38) has been read: the next read
  starts again at byte 0 with the newest record. Bytes asked for past the end of the
  record read as zeros (a 40-byte read gets the 39 bytes and one zero) and do not spill
  into the next record;
- any write ends the sequence (ESPHome writes one byte, SMBus-style code writes a
  register address, i2cdetect a zero-length probe: each then reads from byte 0).

So whole 39- and 40-byte reads, 32 + 7 chunks and write-then-read all see the same
record. A controller that abandons a sequence midway gets the rest of that record on
its next read; any write resynchronises it.

One pointer per controller link: per connection on the virtual bus, one for the whole
bus on a real I2C target (the device cannot tell controllers apart). Not thread-safe;
each link uses its own from one thread.
"""

from __future__ import annotations

from collections.abc import Callable

from mlsensors.errors import ProtocolError
from mlsensors.wire.record import MAX_READ


class ReadPointer:
    """The read sequence of one controller link; see the module docstring."""

    def __init__(self) -> None:
        self._record: bytes | None = None
        self._offset = 0

    @property
    def offset(self) -> int:
        """The record byte the next read starts at (0 when no sequence is open)."""
        return self._offset

    @property
    def latched(self) -> bytes | None:
        """The record the open sequence reads from, or None before its first read."""
        return self._record

    def pending(self, current: Callable[[], bytes]) -> bytes:
        """The bytes the next reads would get, up to MAX_READ of them: the rest of the
        latched record, then zeros. Latches `current()` if no sequence is open."""
        if self._record is None:
            self._record = current()
            self._offset = 0
        rest = self._record[self._offset:]
        return rest + bytes(MAX_READ - len(rest))

    def advance(self, count: int) -> None:
        """`count` bytes were clocked out; reaching the record's end ends the sequence."""
        if count <= 0:
            return
        self._offset += count
        if self._offset >= len(self._record or b""):  # the latched record's own size
            self.rewind()

    def read(self, length: int, current: Callable[[], bytes]) -> bytes:
        """One read transaction of `length` bytes (0-255)."""
        if not 0 <= length <= MAX_READ:
            raise ProtocolError(f"read length {length} is outside 0-{MAX_READ}")
        if length == 0:
            return b""
        data = self.pending(current)[:length]
        self.advance(length)
        return data

    def rewind(self) -> None:
        """End the sequence: the next read starts at byte 0 with the newest record."""
        self._record = None
        self._offset = 0
