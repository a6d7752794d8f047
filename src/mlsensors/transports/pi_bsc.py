"""A Raspberry Pi as a drop-in SEN21231: an I2C target at 0x62 through the BSC peripheral.

The Pi's BSC ("Broadcom Serial Controller") block can act as an I2C target; pigpio
drives it (`bsc_xfer`/`bsc_i2c`). Microcontroller code written for a Person Sensor then
reads a Pi Zero 2 W with a camera exactly as it read the discontinued module. Wiring
and limits are in docs/raspberry-pi.md.

What the peripheral gives us shapes the design. It has a 16-byte transmit FIFO and a
16-byte receive FIFO, cannot stretch the clock and does not report where a transaction
starts or ends; we learn only FIFO levels and busy flags when we poll. So:

- reads: one read pointer for the bus (wire/read_pointer.py; the device cannot tell
  controllers apart). The FIFO is kept preloaded with the next bytes of the latched
  record and topped up while the controller reads, then zeros past its end, so one
  read sequence never mixes two records. Bytes the controller clocked out are counted
  from the FIFO level. A read that stops inside the record leaves the rest queued, so
  the next read continues there (32 + 7 chunks); once the whole record has been read,
  or after any write, the FIFO is cleared and preloaded from byte 0 with the newest
  record, and an idle FIFO at byte 0 is reloaded whenever a newer record arrives.
- writes: bytes the controller wrote are collected until the receive side is idle,
  then split into writes (`split_writes`) and handed to the shared `I2CTarget`
  (register writes go to the device model). The FIFO does not mark boundaries, so
  bytes of several writes that arrive between two polls are split into 2-byte or
  3-byte writes, whichever makes every part a legal write. The BSC acknowledges every
  byte, so a refused write cannot be NACKed here: it is refused by the device model
  and logged.

`BscResponder` is that logic with no hardware (tested against a simulated FIFO);
`PigpioBsc` is the thin layer that talks to the pigpio daemon; `PiBscTarget` runs the
poll loop on a thread. pigpio is imported only when `PigpioBsc` is created.
"""

from __future__ import annotations

import argparse
import logging
import threading
from dataclasses import dataclass
from typing import Protocol

from mlsensors.errors import InputError, ProtocolError
from mlsensors.hub import Hub
from mlsensors.transports.i2c_frames import SENSOR_ADDRESS, Status
from mlsensors.transports.i2c_target import I2CTarget
from mlsensors.wire.registers import decode_write

log = logging.getLogger(__name__)

FIFO_SIZE = 16


@dataclass(frozen=True, slots=True)
class BscStatus:
    """The fields of pigpio's bsc_xfer status word that the responder uses."""

    tx_level: int
    rx_level: int
    tx_busy: bool
    rx_busy: bool

    @classmethod
    def from_word(cls, word: int) -> BscStatus:
        # pigpio: bits 10-6 TX FIFO level, 15-11 RX FIFO level, 5 RX busy, 0 TX busy.
        return cls(
            tx_level=(word >> 6) & 0x1F,
            rx_level=(word >> 11) & 0x1F,
            tx_busy=bool(word & 0x01),
            rx_busy=bool(word & 0x20),
        )


@dataclass(frozen=True, slots=True)
class BscAction:
    """What to do at the next transfer: clear both FIFOs first, then queue `tx`."""

    clear: bool
    tx: bytes


class BscResponder:
    """The target's side of the BSC conversation, one poll at a time; no hardware."""

    def __init__(self, target: I2CTarget, fifo_size: int = FIFO_SIZE) -> None:
        self.target = target
        self.fifo_size = fifo_size
        self._stream = b""
        self._sequence = -1
        self._queued = 0  # bytes of _stream given to the FIFO since it was last cleared
        self._counted = 0  # of those, how many the read pointer has been advanced by
        self._rx = b""

    def start(self) -> BscAction:
        """The first action: load the FIFO with the current record's head."""
        return self._reload()

    def step(self, status: BscStatus, received: bytes) -> BscAction:
        """Given the status and received bytes of the last transfer, the next action."""
        self._rx += received
        if self._rx and not status.rx_busy and status.rx_level == 0:
            self._apply_writes(self._rx)
            self._rx = b""
            return self._reload()  # every write ends the read sequence
        if status.tx_busy:
            return self._top_up(status)
        clocked = self._queued - status.tx_level - self._counted
        pointer = self.target.pointer
        if clocked > 0:
            self._counted += clocked
            pointer.advance(clocked)
            if pointer.latched is None:  # the record was read to its end
                return self._reload()
            return self._top_up(status)
        if pointer.offset == 0 and self.target.hub.snapshot().sequence != self._sequence:
            return self._reload()  # idle at byte 0: offer the newest record
        return BscAction(False, b"")

    def _top_up(self, status: BscStatus) -> BscAction:
        room = max(0, self.fifo_size - status.tx_level)
        tx = self._stream[self._queued:self._queued + room]
        self._queued += len(tx)
        return BscAction(False, tx)

    def _reload(self) -> BscAction:
        snapshot = self.target.hub.snapshot()
        self._sequence = snapshot.sequence
        self.target.pointer.rewind()
        self._stream = self.target.pointer.pending(lambda: snapshot.record)
        self._queued = self.fifo_size
        self._counted = 0
        return BscAction(True, self._stream[:self.fifo_size])

    def _apply_writes(self, data: bytes) -> None:
        parts = split_writes(data)
        if parts is None:
            log.warning("refused %d bytes from the I2C controller: no split into legal "
                        "register writes", len(data))
            return
        for part in parts:
            if self.target.write(part) is not Status.ACK:
                log.warning("refused register write %s from the I2C controller", part.hex())


def split_writes(data: bytes) -> list[bytes] | None:
    """The writes that `data`, bytes received with no boundary between them, most
    plausibly were; None if no split makes every part a legal write.

    Up to 3 bytes are one write. Longer runs come from a client writing several
    registers in a row, each the same shape: 2-byte writes if every pair is legal,
    else 3-byte (register, 16-bit value) writes if every triple is.
    """
    if len(data) <= 3:
        return [bytes(data)]
    for size in (2, 3):
        if len(data) % size:
            continue
        parts = [bytes(data[i:i + size]) for i in range(0, len(data), size)]
        try:
            for part in parts:
                decode_write(part)
        except ProtocolError:
            continue
        return parts
    return None


class BscHardware(Protocol):
    """One BSC transfer: optionally clear the FIFOs, queue bytes, read status and RX."""

    def transfer(self, action: BscAction) -> tuple[BscStatus, bytes]: ...

    def wait(self, timeout: float) -> None: ...

    def close(self) -> None: ...


# ---- hardware layer: pigpio (untested here; keep it this thin) -----------------------

_BSC_I2C_ENABLE = 0x305  # EN | I2C | TXE | RXE
_BSC_BREAK = 0x80  # stop and clear both FIFOs


class PigpioBsc:
    """pigpio's BSC calls, and nothing else. Needs the pigpiod daemon running."""

    def __init__(self, address: int = SENSOR_ADDRESS, host: str = "localhost") -> None:
        try:
            import pigpio
        except ImportError:
            raise InputError(
                "the Pi I2C target needs pigpio (pip install 'mlsensors[pi]')"
            ) from None
        self._pi = pigpio.pi(host)
        if not self._pi.connected:
            raise InputError("cannot reach the pigpio daemon (sudo systemctl start pigpiod)")
        self._control = (address << 16) | _BSC_I2C_ENABLE
        self._event = threading.Event()
        self._callback = self._pi.event_callback(pigpio.EVENT_BSC,
                                                 lambda *_: self._event.set())

    def transfer(self, action: BscAction) -> tuple[BscStatus, bytes]:
        received = b""
        if action.clear:
            received = self._xfer(self._control, b"")[1]  # drain RX before the break
            self._xfer(self._control | _BSC_BREAK, b"")
        word, data = self._xfer(self._control, action.tx)
        return BscStatus.from_word(word), received + data

    def _xfer(self, control: int, tx: bytes) -> tuple[int, bytes]:
        word, count, data = self._pi.bsc_xfer(control, list(tx))
        if word < 0:
            raise InputError(f"pigpio bsc_xfer failed with error {word}")
        return word, bytes(data[:count]) if count > 0 else b""

    def wait(self, timeout: float) -> None:
        self._event.wait(timeout)
        self._event.clear()

    def close(self) -> None:
        self._callback.cancel()
        self._pi.bsc_xfer(0, [])  # release the BSC peripheral and its GPIOs
        self._pi.stop()


# ---- the poll loop -----------------------------------------------------------------


class PiBscTarget:
    """Answer as the Person Sensor on a real I2C bus; start()/stop() or a with-block."""

    def __init__(self, hub: Hub, hardware: BscHardware | None = None,
                 address: int = SENSOR_ADDRESS, idle_wait: float = 0.02) -> None:
        self.responder = BscResponder(I2CTarget(hub, address))
        self.hub = hub
        self.address = address
        self.idle_wait = idle_wait
        self._hardware = hardware
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._hardware is None:
            self._hardware = PigpioBsc(self.address)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="pi-bsc", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        hw = self._hardware
        assert hw is not None
        action = self.responder.start()
        while not self._stop.is_set():
            status, received = hw.transfer(action)
            action = self.responder.step(status, received)
            if not (status.tx_busy or status.rx_busy or received or action.tx):
                hw.wait(self.idle_wait)  # woken early by BSC activity

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._hardware is not None:
            self._hardware.close()

    def __enter__(self) -> PiBscTarget:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--i2c-target", action="store_true",
        help="answer as a Person Sensor at 0x62 on the Pi's I2C target pins (needs pigpiod)",
    )


def from_args(args: argparse.Namespace, hub: Hub) -> PiBscTarget | None:
    return PiBscTarget(hub) if getattr(args, "i2c_target", False) else None
