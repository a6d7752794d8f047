"""Capacity of what the seal cannot close: bits per second through /proc, measured.

A sender runs INSIDE the real sealed child (sealed exactly as `serve` seals it: the
work `proc_channels:sender` replaces the sensor loop) and modulates something any
local user can see of a process; a receiver here, outside, decodes it from /proc alone.
Both keep to a slot clock on CLOCK_REALTIME (shared across namespaces); the receiver
starts it with the go register write, sent early in a second so that both sides round
to the same start. Each channel sends random bits; the table gives the raw rate, the
bit error rate, the capacity of that binary symmetric channel (rate × (1 − H(e))) and
the time it would take to leak one 320×320 8-bit grayscale frame (819,200 bits) at it.

Channels (what the sender modulates → what the receiver reads):
- cpu: busy loop or sleep per slot → utime+stime in /proc/PID/stat (clock ticks);
- faults: touch 64·N fresh pages per slot → minflt in /proc/PID/stat (2–4 bits a slot);
- threads: N extra threads alive per slot → Threads in /proc/PID/status (2–3 bits);
- ctxsw: many short sleeps or none → voluntary_ctxt_switches of the sending thread;
- sigmask: the blocked real-time signals of one thread → SigBlk in
  /proc/PID/task/TID/status (a storage channel: 24 bits per slot);
- comm: the thread name → /proc/PID/task/TID/comm (15 bytes per slot; 0 when the seal
  forbids PR_SET_NAME and /proc/self writes);
- limits: soft resource limits whose hard limit is unlimited (CPU with a 2**40 s
  offset, RSS, locks, RT time) → /proc/PID/limits, world-readable (4 × 32 bits a slot;
  0 when the seal lets it read its limits but not set them);
- pagecache: which of 64 pages of its source it reads → which are in the page cache
  (mincore) after the receiver evicted them (posix_fadvise DONTNEED) before the slot.
  Not /proc, but any file both sides can read is shared kernel state;
- inotify: how many times it opens its source per slot → open/close events of an
  inotify watch outside (6–8 bits a slot).

The timing of records is not measured here: the guard publishes on its own clock, and
"nothing in this tick" is one of the symbols its computed bound already counts.

    PYTHONPATH=src .venv/bin/python bench/proc_channels.py [--bits 192] [--only cpu,comm] \
        [--json src/mlsensors/privacy/datasheet/residual_channels.json]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import math
import mmap
import os
import random
import signal
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from mlsensors.hub import Hub, RegisterWrite, SensorStatus
from mlsensors.types import PersonResult

FRAME_BITS = 320 * 320 * 8
GO_REGISTER = 0x07
RT_FIRST = 40
"""SigBlk bits used by the sigmask sender: real-time signals RT_FIRST.. (glibc keeps
32-33 for itself; Python may use the low ones)."""


@dataclass(frozen=True, slots=True)
class Setting:
    channel: str
    slot: float
    bits_per_slot: int


SETTINGS = (
    Setting("cpu", 0.1, 1), Setting("cpu", 0.05, 1),
    Setting("faults", 0.05, 2), Setting("faults", 0.02, 2), Setting("faults", 0.01, 4),
    Setting("faults", 0.005, 4),
    Setting("threads", 0.05, 2), Setting("threads", 0.02, 2), Setting("threads", 0.01, 3),
    Setting("threads", 0.005, 3),
    Setting("ctxsw", 0.05, 1), Setting("ctxsw", 0.02, 1),
    Setting("sigmask", 0.01, 24), Setting("sigmask", 0.004, 24),
    Setting("sigmask", 0.002, 24),
    Setting("comm", 0.01, 15 * 6), Setting("comm", 0.004, 15 * 6),
    Setting("limits", 0.01, 128), Setting("limits", 0.004, 128),
    Setting("limits", 0.002, 128),
    Setting("pagecache", 0.05, 64), Setting("pagecache", 0.02, 64),
    Setting("pagecache", 0.01, 64), Setting("pagecache", 0.005, 64),
    Setting("pagecache", 0.002, 64),
    Setting("inotify", 0.02, 6), Setting("inotify", 0.01, 6), Setting("inotify", 0.005, 8),
    Setting("inotify", 0.002, 8),
)


@dataclass(frozen=True, slots=True)
class Measured:
    channel: str
    slot: float
    bits: int
    raw_bps: float
    error_rate: float
    capacity_bps: float

    @property
    def frame_seconds(self) -> float:
        return FRAME_BITS / self.capacity_bps if self.capacity_bps > 0 else math.inf


# -- inside -------------------------------------------------------------------------


def _symbols(bits: list[int], per_slot: int) -> list[int]:
    return [int("".join(map(str, bits[i:i + per_slot])).ljust(per_slot, "0"), 2)
            for i in range(0, len(bits), per_slot)]


def sender(hub: Hub, stop: threading.Event, config, **_) -> None:
    """The work run inside the sealed child: wait for go, then send the plan's bits."""
    with open(config.source) as f:
        plan = json.load(f)
    setting = Setting(**plan["setting"])
    go = threading.Event()
    hub.set_controller(lambda w: go.set() if w.register == GO_REGISTER else None)
    while not go.wait(0.1):
        if stop.is_set():
            return
        hub.publish(PersonResult(time.time()), SensorStatus("running"))
    def keepalive() -> None:  # the guard's watchdog restarts a silent child
        while not stop.wait(0.2):
            hub.publish(PersonResult(time.time()), SensorStatus("running"))

    threading.Thread(target=keepalive, daemon=True).start()
    start = math.ceil(time.time()) + 1.0
    symbols = _symbols(plan["bits"], setting.bits_per_slot)
    send = _SOURCE_SENDERS[setting.channel](config.source) \
        if setting.channel in _SOURCE_SENDERS else _SENDERS[setting.channel](setting)
    for i, symbol in enumerate(symbols):
        slot_start = start + i * setting.slot
        _sleep_until(slot_start)
        send(symbol, slot_start + setting.slot * 0.8)
    stop.wait()


def _sleep_until(t: float) -> None:
    delay = t - time.time()
    if delay > 0:
        time.sleep(delay)


def _cpu(setting):
    def send(symbol: int, until: float) -> None:
        while symbol and time.time() < until:
            pass
    return send


def _faults(setting):
    def send(symbol: int, until: float) -> None:
        pages = symbol * 64
        if pages:
            m = mmap.mmap(-1, pages * 4096)
            for p in range(pages):
                m[p * 4096] = 1
            m.close()
    return send


class _Threads:
    def __init__(self) -> None:
        self.stops: list[threading.Event] = []

    def __call__(self, symbol: int, until: float) -> None:
        while len(self.stops) > symbol:
            self.stops.pop().set()
        while len(self.stops) < symbol:
            ev = threading.Event()
            threading.Thread(target=ev.wait, daemon=True).start()
            self.stops.append(ev)
        time.sleep(0.001)
        # thread exit is asynchronous; /proc shows a thread until it is reaped


def _ctxsw(setting):
    def send(symbol: int, until: float) -> None:
        while symbol and time.time() < until:
            time.sleep(0.0001)
    return send


class _Marker:
    """A thread that applies each symbol to itself (signal mask or name)."""

    def __init__(self, apply) -> None:
        self.apply = apply
        self.todo: list[int] = []
        self.cv = threading.Condition()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            with self.cv:
                while not self.todo:
                    self.cv.wait()
                symbol = self.todo.pop(0)
            with contextlib.suppress(Exception):
                self.apply(symbol)

    def __call__(self, symbol: int, until: float) -> None:
        with self.cv:
            self.todo.append(symbol)
            self.cv.notify()


def _set_mask(symbol: int) -> None:
    wanted = {RT_FIRST + b for b in range(24) if symbol >> (23 - b) & 1}
    signal.pthread_sigmask(signal.SIG_SETMASK, wanted)


_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"


def _set_name(symbol: int) -> None:
    name = "".join(_ALPHABET[symbol >> (6 * (14 - k)) & 63] for k in range(15))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(15, name.encode(), 0, 0, 0) != 0:
        with open(f"/proc/self/task/{threading.get_native_id()}/comm", "w") as f:
            f.write(name)


class _PageCache:
    def __init__(self, source: str) -> None:
        self.fd = os.open(source, os.O_RDONLY)
        os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_RANDOM)  # no readahead

    def __call__(self, symbol: int, until: float) -> None:
        for b in range(PAGE_BITS):
            if symbol >> (PAGE_BITS - 1 - b) & 1:
                os.pread(self.fd, 1, (1 + b) * PAGE)


PAGE = 4096
PAGE_BITS = 64

_LIMITS = ((0, "Max cpu time", 1 << 40), (5, "Max resident set", 0),
           (10, "Max file locks", 0), (15, "Max realtime timeout", 0))
"""(Linux RLIMIT_* number: CPU, RSS, LOCKS, RTTIME; its /proc/PID/limits row; offset):
limits whose hard value is unlimited here and whose soft value changes nothing."""


def _limits(setting):
    import resource

    def send(symbol: int, until: float) -> None:
        for k, (limit, _, offset) in enumerate(_LIMITS):
            value = offset + (symbol >> (32 * (3 - k)) & 0xFFFFFFFF)
            with contextlib.suppress(OSError, ValueError):
                resource.setrlimit(limit, (value, resource.getrlimit(limit)[1]))
    return send


_SENDERS = {"cpu": _cpu, "faults": _faults, "threads": lambda s: _Threads(),
            "ctxsw": _ctxsw, "limits": _limits, "sigmask": lambda s: _Marker(_set_mask),
            "comm": lambda s: _Marker(_set_name)}
def _opens(source: str):
    def send(symbol: int, until: float) -> None:
        for _ in range(symbol):
            os.close(os.open(source, os.O_RDONLY))
    return send


_SOURCE_SENDERS = {"pagecache": _PageCache, "inotify": _opens}
IN_OPEN = 0x20
IN_CLOSE_NOWRITE = 0x10
"""Both watched: the kernel merges identical successive events, an open and a close
alternate, so each open shows."""
_EVENT = 16
"""struct inotify_event without a name: wd, mask, cookie, len."""


# -- outside ------------------------------------------------------------------------


def _stat(pid: int, tid: int | None = None) -> list[str]:
    path = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    with open(path) as f:
        return f.read().rpartition(")")[2].split()


def _status(path: str) -> dict[str, str]:
    out = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def _tasks(pid: int) -> list[int]:
    return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))


class _Receiver:
    """Reads one value per slot; decodes symbols from values (deltas for counters)."""

    def __init__(self, setting: Setting, pid: int, source: str) -> None:
        self.s, self.pid = setting, pid
        self.main = pid
        if setting.channel == "pagecache":
            self.fd = os.open(source, os.O_RDONLY)
            self.map = mmap.mmap(self.fd, (1 + PAGE_BITS) * PAGE, access=mmap.ACCESS_COPY)
            self.addr = ctypes.addressof(ctypes.c_char.from_buffer(self.map))
            self.vec = (ctypes.c_ubyte * (1 + PAGE_BITS))()
        if setting.channel == "inotify":
            libc = ctypes.CDLL(None, use_errno=True)
            self.fd = libc.inotify_init1(os.O_NONBLOCK)
            libc.inotify_add_watch(self.fd, source.encode(), IN_OPEN | IN_CLOSE_NOWRITE)

    def evict(self) -> None:
        if self.s.channel == "pagecache":
            os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_DONTNEED)

    def read(self) -> object:
        c, pid = self.s.channel, self.pid
        if c == "inotify":  # events since the last read
            n = 0
            with contextlib.suppress(BlockingIOError):
                while True:
                    n += len(os.read(self.fd, 1 << 16)) // _EVENT
            return n // 2
        if c == "limits":
            rows = {}
            with open(f"/proc/{pid}/limits") as f:
                for line in f.readlines()[1:]:
                    head, soft = line[:26].strip(), line[26:].split()[0]
                    rows[head] = soft
            value = 0
            for _, row, offset in _LIMITS:
                soft = rows.get(row, "")
                word = int(soft) - offset if soft.isdigit() else 0
                value = value << 32 | (word & 0xFFFFFFFF if 0 <= word < 1 << 32 else 0)
            return value
        if c == "pagecache":
            libc = ctypes.CDLL(None, use_errno=True)
            libc.mincore(ctypes.c_void_p(self.addr), ctypes.c_size_t((1 + PAGE_BITS) * PAGE),
                         self.vec)
            return int("".join(str(self.vec[1 + b] & 1) for b in range(PAGE_BITS)), 2)
        if c == "cpu":
            f = _stat(pid)
            return int(f[11]) + int(f[12])
        if c == "faults":
            return int(_stat(pid)[7])
        if c == "threads":
            return int(_status(f"/proc/{pid}/status")["Threads"])
        if c == "ctxsw":
            return int(_status(f"/proc/{pid}/task/{self.main}/status")
                       ["voluntary_ctxt_switches"])
        values = {}
        for tid in _tasks(pid):
            with contextlib.suppress(OSError):
                if c == "sigmask":
                    values[tid] = int(_status(f"/proc/{pid}/task/{tid}/status")["SigBlk"], 16)
                else:
                    with open(f"/proc/{pid}/task/{tid}/comm") as f:
                        values[tid] = f.read().strip()
        return values

    def decode(self, samples: list[object], baseline: object) -> list[int]:
        c = self.s.channel
        top = (1 << self.s.bits_per_slot) - 1
        if c in ("cpu", "faults", "ctxsw"):
            deltas = [b - a for a, b in zip([baseline, *samples[:-1]], samples, strict=True)]
            if c == "faults":
                return [max(0, min(top, round((d - 2) / 64))) for d in deltas]
            # cpu and ctxsw: 1 when well above the idle slots' level
            cut = (min(deltas) + max(deltas)) / 2
            return [int(d > cut) for d in deltas]
        if c == "threads":
            return [max(0, min(top, v - baseline)) for v in samples]
        if c in ("pagecache", "limits"):
            return samples
        if c == "inotify":
            return [min(top, v) for v in samples]
        out = []
        for values in samples:  # the one thread whose value is not the baseline's
            changed = [v for t, v in values.items() if baseline.get(t) != v or
                       t not in baseline]
            v = changed[0] if changed else None
            if c == "sigmask":
                word = (v or 0) >> (RT_FIRST - 1)
                out.append(int(f"{word & 0xFFFFFF:024b}"[::-1], 2))
            else:
                out.append(sum(_ALPHABET.index(ch) << (6 * (14 - k)) if ch in _ALPHABET
                               else 0 for k, ch in enumerate((v or "").ljust(15)[:15])))
        return out


def _entropy(p: float) -> float:
    return 0.0 if p <= 0 or p >= 1 else -p * math.log2(p) - (1 - p) * math.log2(1 - p)


def measure(setting: Setting, nbits: int) -> Measured:
    from mlsensors.errors import ProtocolError
    from mlsensors.privacy.sealed import SealedSensor

    rng = random.Random(1)
    nbits = max(nbits - nbits % setting.bits_per_slot, 12 * setting.bits_per_slot)
    bits = [rng.randint(0, 1) for _ in range(nbits)]
    with tempfile.TemporaryDirectory(prefix="mlsensors-proc-bench-") as tmp:
        plan = Path(tmp) / "plan.json"
        text = json.dumps({"setting": asdict(setting), "bits": bits})
        # padded with spaces (still JSON) to the pages the pagecache channel uses
        with open(plan, "w") as f:
            f.write(text.ljust((2 + PAGE_BITS) * PAGE))
            f.flush()
            os.fsync(f.fileno())  # dirty pages would not be evicted
        hub = Hub()
        with SealedSensor(hub, str(plan), work="proc_channels:sender") as sensor:
            deadline = time.monotonic() + 60
            while hub.snapshot().status.state != "running":
                if time.monotonic() > deadline:
                    raise SystemExit(f"sender did not start: {hub.snapshot().status.detail}")
                time.sleep(0.02)
            pid = sensor.child_pid
            rx = _Receiver(setting, pid, str(plan))
            while time.time() % 1.0 > 0.3:  # send go early in a second: same rounding
                time.sleep(0.01)
            sent_at = time.time()
            while True:
                try:
                    sensor.guard.send(RegisterWrite(GO_REGISTER, 0))
                    break
                except ProtocolError:
                    time.sleep(0.01)
            start = math.ceil(sent_at) + 1.0
            _sleep_until(start - setting.slot * 0.5)
            baseline = rx.read()
            samples = []
            phase = 0.9 if setting.channel in ("cpu", "faults", "ctxsw") else 0.6
            for i in range(nbits // setting.bits_per_slot):
                _sleep_until(start + (i - 0.2) * setting.slot)
                rx.evict()
                _sleep_until(start + (i + phase) * setting.slot)
                samples.append(rx.read())
            symbols = rx.decode(samples, baseline)
    sent = _symbols(bits, setting.bits_per_slot)
    errors = sum(bin(a ^ b).count("1") for a, b in zip(sent, symbols, strict=True))
    e = errors / nbits
    raw = setting.bits_per_slot / setting.slot
    cap = raw * (1 - _entropy(min(e, 0.5))) if e < 0.5 else 0.0
    return Measured(setting.channel, setting.slot, nbits, raw, e, cap)


def _human(s: float) -> str:
    if math.isinf(s):
        return "never"
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if s >= 2 * size:
            return f"{s / size:.1f} {unit}"
    return f"{s:.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bits", type=int, default=192, help="bits sent per setting")
    parser.add_argument("--only", default="", help="comma-separated channels")
    parser.add_argument("--json", metavar="PATH", default="",
                        help="also write the rows there (the datasheet reads "
                             "src/mlsensors/privacy/datasheet/residual_channels.json)")
    args = parser.parse_args()
    here = str(Path(__file__).resolve().parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (here, os.environ.get("PYTHONPATH", "")) if p)
    sys.path.insert(0, here)
    only = set(filter(None, args.only.split(",")))
    print("| channel | slot | bits sent | raw bit/s | bit error rate | capacity bit/s | "
          "one 320×320 frame |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    rows = []
    for setting in SETTINGS:
        if only and setting.channel not in only:
            continue
        m = measure(setting, args.bits)
        rows.append({**asdict(m), "frame_seconds": None if math.isinf(m.frame_seconds)
                     else round(m.frame_seconds, 1)})
        print(f"| {m.channel} | {m.slot * 1000:g} ms | {m.bits} | {m.raw_bps:,.0f} | "
              f"{m.error_rate:.3f} | {m.capacity_bps:,.1f} | {_human(m.frame_seconds)} |",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"measured_by": "bench/proc_channels.py --bits " + str(args.bits),
             "date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
