"""The guard: the only thing between the sealed sensing process and the rest of the system.

It starts the child with two pipes and nothing else, reads fixed-size frames from it,
and on a fixed clock of `max_rate` ticks per second passes at most one of them on to
the Hub, after decoding and checking every field. Anything else the child writes is
dropped and counted: frames with a bad tag, checksum or value (malformed), and frames
superseded before their tick (over rate). The published result is rebuilt from the
decoded values and stamped with the guard's clock, so neither the child's bytes nor its
timing pass through.

It also keeps the child alive: a child that exits is a crash, one that is silent for
longer than the watchdog allows is a hang and is killed; either way the Hub goes to
the "fault" state with no faces at once (never stale ones) and the child is restarted
after an exponential backoff. Restarts within the last minute are reported in the
status detail and the log, so a crash loop is visible. Faces never outlive the child's
stream: when no result comes for about two of its recent frame intervals (`late_after`)
they are withdrawn, and after LATE_FAULT_S without one the status is "fault" and the
log says so, long before the watchdog (a stopped or stuck process).

What the records are is the sensor kind's business (privacy/kind.py): its frame tag,
its checker (stateful across one child's records), how a record is stamped, whether
records are a stream of states (the person sensor: withdrawn when late) or sparse
events (the voice sensor: a short FIFO, never "late"), and its own rate cap. The guard
itself is the same for every kind.

A sensor that keeps state across restarts (face IDs: the gallery) gives the guard a
`Keeper`. The child then has a third pipe, the store pipe, for fixed-size records the
keeper validates; the keeper holds the file, acts on the register writes that touch it
before they are acknowledged, and hands its state to every new child as blocks on the
command pipe. The child itself writes nothing to the file system.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from mlsensors.errors import MlsensorsError, ProtocolError
from mlsensors.hub import Hub, RegisterWrite, SensorStatus
from mlsensors.person.kind import PERSON
from mlsensors.privacy import launch
from mlsensors.privacy.channel import (
    FRAME_SIZE,
    PIPE_BUF,
    REASON_TEXT,
    TAG_RESULT,
    TAG_STATUS,
    ChildState,
    ChildStatus,
    Reason,
    decode_status,
    encode_command,
)
from mlsensors.privacy.child import THREAD_ENV, ChildConfig, launch_spec
from mlsensors.privacy.kind import RecordKind
from mlsensors.privacy.launch import EXIT_SEAL_FAILED, sealed_pid
from mlsensors.privacy.logfilter import LogFilter
from mlsensors.privacy.policy import Policy, role
from mlsensors.wire.registers import REGISTER_MAP, check_write

log = logging.getLogger("mlsensors.guard")

F_SETPIPE_SZ = 1031


LATE_FAULT_S = 1.0
"""Without a new result for this long, a streaming child is a fault (status and log)."""
LATE_DEFAULT_S = 1.0
"""Faces are withdrawn after this long without a result while the child's frame
interval is not known yet (its first few results)."""
LATE_LOG_EVERY_S = 60.0


def late_after(intervals: Sequence[float], period: float) -> float:
    """Seconds after the last result at which its faces are stale: two of the longest of
    the child's recent result intervals, plus one tick (the guard only looks on ticks);
    LATE_DEFAULT_S until three intervals are known."""
    if len(intervals) < 3:
        return LATE_DEFAULT_S
    return 2.0 * max(intervals) + period


class Keeper(Protocol):
    """State the guard keeps for a sensor across child restarts (e.g. the ID gallery).

    The guard calls it from transport threads (`check`, `forwarded`), the store-pipe
    reader (`record`) and the tick loop (`tick`, `problem`); it must be thread-safe and
    must not call back into the guard except through `send`.
    """

    frame_size: int
    """Bytes of one store-pipe record (below PIPE_BUF: one atomic write)."""

    @property
    def problem(self) -> str:
        """What is wrong with the kept state ("" if nothing), for the status detail."""

    def blocks(self) -> bytes:
        """Command-pipe bytes (blocks) that give a new child the kept state."""

    def check(self, write: RegisterWrite) -> bool:
        """Before forwarding `write`: raise ProtocolError to refuse it, else do the
        keeper's part; True if it must reach the running child (or the child must go)."""

    def forwarded(self, write: RegisterWrite, now: float) -> None:
        """`write` was forwarded (a setting: or will be, to the next child)."""

    def record(self, frame: bytes, now: float, send: Callable[[bytes], None]) -> None:
        """One store-pipe frame: validate and apply, or raise ProtocolError (counted as
        malformed). `send(blocks)` writes to the child's command pipe."""

    def tick(self, now: float) -> None:
        """Called on every tick (expire what waits for the child)."""


_ENV_PASSED = ("PATH", "PYTHONPATH", "HOME", "LANG", "LC_ALL", "XDG_CACHE_HOME",
               "MLSENSORS_MODEL_DIR", "MLSENSORS_TEST_DATA")


def _silent(message) -> bool:
    """A "running" status publishes nothing (it only feeds the watchdog), so it needs
    no slot of the rate: an event right after one is not held back for a period."""
    return isinstance(message, ChildStatus) and message.state == ChildState.RUNNING


@dataclass(frozen=True, slots=True)
class GuardStats:
    """Counters since the guard started; `published` never exceeds ticks elapsed."""

    received: int = 0
    published: int = 0
    malformed: int = 0
    over_rate: int = 0
    restarts: int = 0
    crashes: int = 0
    hangs: int = 0
    recent_restarts: int = 0
    child_pid: int = 0
    last_exit: int | None = None
    log_lines_dropped: int = 0
    kept: int = 0
    """Store-pipe records the keeper accepted (calibration outcomes)."""
    late: int = 0
    """Times the child's results stopped for longer than `late_after` and its faces
    were withdrawn."""


@dataclass(frozen=True, slots=True)
class GuardTiming:
    """Watchdog and backoff; defaults suit a Raspberry Pi at a few frames per second."""

    startup_timeout: float = 30.0
    watchdog: float = 5.0
    backoff_first: float = 0.5
    backoff_max: float = 30.0
    healthy_after: float = 30.0
    """A child that ran this long resets the backoff to its first step."""
    crash_window: float = 60.0


class _Inbox:
    """The reader thread's side: the newest results (up to `backlog`) and the newest
    status, counters for the rest.

    Two kinds of slot, so that a status written right after a result (a single shot
    followed by "standby") does not hide the result; a status older than the next
    pending result is stale and dropped. Each tick still passes at most one frame. A
    kind whose records are states keeps one result (the newest wins); one whose records
    are events keeps a short FIFO, and counts the oldest it drops (`skipped`) so that the
    checker can still force the event counter.
    """

    def __init__(self, tag: int = TAG_RESULT, backlog: int = 1) -> None:
        self.lock = threading.Lock()
        self.tag = tag
        self.backlog = max(1, backlog)
        self.results: deque[tuple[int, bytes]] = deque()
        self.status: tuple[int, bytes] | None = None
        self.received = 0
        self.malformed = 0
        self.over_rate = 0
        self.skipped = 0
        self.eof = False

    def take(self) -> bytes | None:
        return self.take_counted()[0]

    def take_counted(self) -> tuple[bytes | None, int]:
        """The frame for this tick (a pending result first, else a status not older
        than the last result) and the results dropped before it."""
        with self.lock:
            status = self.status
            if self.results:
                seq, frame = self.results.popleft()
                if status is not None and status[0] < seq:
                    self.status = None
                    self.over_rate += 1
                skipped, self.skipped = self.skipped, 0
                return frame, skipped
            self.status = None
            return (status[1] if status is not None else None), 0

    def drained(self) -> bool:
        """The pipe is closed and every frame kept from it has been taken."""
        with self.lock:
            return self.eof and not self.results and self.status is None

    def feed(self, frames: bytes) -> None:
        """Account for a whole number of frames; keep the newest of each kind."""
        n = len(frames) // FRAME_SIZE
        tags = frames[0::FRAME_SIZE]
        results = tags.count(self.tag)
        statuses = tags.count(TAG_STATUS)
        with self.lock:
            base = self.received
            self.received += n
            self.malformed += n - results - statuses
            newest: list[int] = []  # the last `backlog` results, found from the end
            end = len(tags)
            while len(newest) < min(results, self.backlog):
                end = tags.rfind(bytes([self.tag]), 0, end)
                newest.append(end)
            for i in reversed(newest):
                if len(self.results) == self.backlog:
                    self.results.popleft()
                    self.over_rate += 1
                    self.skipped += 1
                self.results.append((base + i, frames[i * FRAME_SIZE:(i + 1) * FRAME_SIZE]))
            self.over_rate += results - len(newest)
            self.skipped += results - len(newest)
            if statuses:
                i = tags.rfind(bytes([TAG_STATUS]))
                self.over_rate += (self.status is not None) + statuses - 1
                self.status = (base + i, frames[i * FRAME_SIZE:(i + 1) * FRAME_SIZE])


class Guard:
    """Run the sealed child for `hub`; see the module docstring.

    `config` is the child's configuration without its pipe numbers (the guard fills
    them in for every start). `max_rate` is the most records per second the Hub will
    ever see from the child (never more than the kind's own cap). `kind` says what the
    records are and how each is checked (privacy/kind.py); `handoff` is state the
    service gives every new child as blocks on its command pipe (e.g. the enrolled
    voice commands), besides a keeper's.
    """

    def __init__(
        self,
        hub: Hub,
        config: ChildConfig,
        *,
        max_rate: float = 30.0,
        timing: GuardTiming | None = None,
        python: str | None = None,
        keeper: Keeper | None = None,
        kind: RecordKind = PERSON,
        handoff: bytes = b"",
        policy: Policy | None = None,
    ) -> None:
        """`policy`: the child's role policy (None: `policy.role(config.role)`); only
        tests give another, to reopen one channel and see the audit fail."""
        if kind.max_rate is not None:
            max_rate = min(max_rate, kind.max_rate)
        if not 0 < max_rate <= 1000:
            raise ProtocolError(f"max rate {max_rate} is outside (0, 1000] records/s")
        if config.identify and keeper is None:
            raise ValueError("a child with face IDs needs a keeper for its gallery")
        if keeper is not None and not 0 < keeper.frame_size <= PIPE_BUF:
            raise ValueError(f"store records of {keeper.frame_size} bytes are not atomic")
        self.hub = hub
        self.keeper = keeper
        self.kind = kind
        self.handoff = handoff
        self.config = replace(config, kind=kind.name)
        self._check = kind.checker(self.config)
        self.policy = policy
        self.max_rate = float(max_rate)
        self._wall_offset = time.time() - time.monotonic()
        self._take_after = 0.0
        """No frame is taken before this monotonic time: one period after the last
        published one, across children (a crash must not buy an early record)."""
        """Wall minus monotonic time, fixed at start: published stamps follow the ticks."""
        self.timing = timing or GuardTiming()
        self.python = python or sys.executable
        self.logs = LogFilter(log)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._child: subprocess.Popen | None = None
        self._command_fd: int | None = None
        self._inbox = self._new_inbox()
        self._totals = GuardStats()
        self._published = 0
        self._restart_times: deque[float] = deque()
        self._publish_times: deque[float] = deque(maxlen=64)
        self._peak_rss_kb = 0
        self._child_state = ChildState.STARTING
        self._failure = Reason.NONE
        self._settings: dict[int, int] = {}
        self._shown = ("starting", "")
        """The state and detail last published, without the keeper's problem."""
        self._shown_problem = ""
        self._result_times: deque[float] = deque(maxlen=9)
        self._streaming = False
        self._late_since: float | None = None
        self._late_faulted = False
        self._late_logged_at = -1e9
        self._late_unlogged = 0
        self._late_count = 0
        self._kept = 0
        self._owed: list[bytes] = []
        """Writes that must reach the next child (ERASE_IDS sent while none ran)."""

    # -- public ------------------------------------------------------------------

    def start(self) -> Guard:
        self.hub.set_controller(self.send)
        self.hub.set_status(self._status("starting", "starting the sealed sensing process"))
        self._thread = threading.Thread(target=self._supervise, name="guard", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.hub.set_controller(None)

    def __enter__(self) -> Guard:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True while the guard supervises a child (or waits to restart one); False once
        stopped, once a finite source has ended, or when the child cannot be sealed."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def child_pid(self) -> int:
        """The sensing process (inside its sandbox; 0 until it is sealed). The guard's
        own child is the launcher's waiter, whose death kills it."""
        with self._lock:
            child = self._child
        if child is None:
            return 0
        if self.config.insecure:
            return child.pid
        return sealed_pid(child.pid, (self.policy or role(self.config.role)).comm)

    @property
    def peak_rss_kb(self) -> int:
        """The highest VmHWM seen in the child's /proc/PID/status (sampled every second)."""
        return self._peak_rss_kb

    def stats(self) -> GuardStats:
        # The inbox and the totals are swapped together under _lock when a child ends,
        # so reading both under it never counts a child's frames twice.
        child_pid = self.child_pid
        with self._lock:
            inbox, totals = self._inbox, self._totals
            with inbox.lock:
                return replace(totals, published=self._published,
                               received=totals.received + inbox.received,
                               malformed=totals.malformed + inbox.malformed,
                               over_rate=totals.over_rate + inbox.over_rate,
                               recent_restarts=len(self._restart_times),
                               child_pid=child_pid,
                               log_lines_dropped=self.logs.dropped,
                               kept=self._kept, late=self._late_count)

    # -- commands ----------------------------------------------------------------

    def send(self, write: RegisterWrite) -> None:
        """Pass one register write to the sensing process; ProtocolError if it is not a
        legal Person Sensor write, the keeper refuses it, or the process cannot take it
        now. Returning means the write was applied (or, for a setting while the child
        restarts, will be, first thing): that is what lets a transport acknowledge it.

        Settings (mode, ID on/off, persist, debug) are remembered and replayed to every
        restarted child, so a crash does not silently undo what a client configured. A
        write the keeper says must reach the child (ERASE_IDS) either does, or the child
        is killed so that nothing it held survives (a restarted child gets the kept
        state as it is now).
        """
        if not self.kind.takes_writes:
            raise ProtocolError(f"the {self.kind.name} sensor takes no register writes")
        reg = check_write(write.register, write.value)
        data = encode_command(write.register, write.value)
        setting = REGISTER_MAP[reg].default is not None
        must_reach = self.keeper.check(write) if self.keeper is not None else False
        failure = ""
        with self._lock:
            fd = self._command_fd
            if fd is None:
                if setting:
                    self._settings[reg] = write.value  # the next child starts with it
                elif must_reach:  # the next child may have been given the old state
                    self._owed.append(data)
                else:
                    failure = "the sensing process is restarting; try again"
            else:
                try:
                    os.write(fd, data)
                except BlockingIOError:  # a child that does not read must not block
                    failure = "the sensing process is not taking commands"
                except OSError:
                    failure = "the sensing process is restarting; try again"
                if failure and must_reach and self._child is not None:
                    log.warning("%s could not reach the sensing process (%s); killing "
                                "it so that nothing it held survives", reg.name, failure)
                    self._child.kill()
                    failure = ""
                elif not failure and setting:
                    self._settings[reg] = write.value
        if failure:
            raise ProtocolError(failure)
        if self.keeper is not None:
            self.keeper.forwarded(write, time.monotonic())

    def _send_blocks(self, data: bytes) -> None:
        """Keeper blocks for the running child (never blocks; a child that does not read
        its commands misses them, and the log says so)."""
        with self._lock:
            fd = self._command_fd
            try:
                if fd is None:
                    raise OSError("no child")
                os.write(fd, data)
            except OSError as e:
                log.warning("kept state not delivered to the sensing process: %s", e)

    # -- supervision ---------------------------------------------------------------

    def _status(self, state: str, detail: str = "") -> SensorStatus:
        """The status to publish now; remembers (state, detail) so that a change of the
        keeper's problem can be shown at once with the same state."""
        self._shown = (state, detail)
        with self._lock:
            restarts = self._totals.restarts
            recent = len(self._restart_times)
        if recent >= 3:
            detail = (f"{detail}; crash loop: {recent} restarts in the last "
                      f"{self.timing.crash_window:.0f} s").lstrip("; ")
        problem = self.keeper.problem if self.keeper is not None else ""
        self._shown_problem = problem
        if problem:
            detail = f"{detail}; {problem}" if detail else problem
        now = time.monotonic()
        times = [t for t in self._publish_times if now - t < 2.0]
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 2 else 0.0
        return SensorStatus(state=state, fps=round(fps, 2), frames=self._published,
                            restarts=restarts, sealed=not self.config.insecure, detail=detail)

    def _supervise(self) -> None:
        failures = 0
        while not self._stop.is_set():
            started = time.monotonic()
            outcome = self._run_child()
            if self._stop.is_set():
                break
            ran = time.monotonic() - started
            if self._totals.last_exit == 0 and self._child_state == ChildState.ENDED:
                log.info("the source ended; the sensing process exited")
                return
            if self._totals.last_exit == EXIT_SEAL_FAILED:
                status = self._status("fault", "the sensing process cannot be sealed on this "
                                               "kernel; not restarting (see the log; "
                                               "--insecure runs it unsealed)")
                log.error("%s", status.detail)
                self.hub.set_status(status)
                return
            failures = 1 if ran >= self.timing.healthy_after else failures + 1
            delay = min(self.timing.backoff_max,
                        self.timing.backoff_first * 2 ** (failures - 1))
            now = time.monotonic()
            with self._lock:
                self._restart_times.append(now)
                while now - self._restart_times[0] > self.timing.crash_window:
                    self._restart_times.popleft()
            detail = f"{outcome}; restarting in {delay:.1f} s"
            status = self._status("fault", detail)
            log.warning("sensing process %s", status.detail)
            self.hub.set_status(status)
            if self._stop.wait(delay):
                break
            with self._lock:
                self._totals = replace(self._totals, restarts=self._totals.restarts + 1)

    def _spawn(self) -> tuple[subprocess.Popen, int, int, int | None]:
        record_r, record_w = os.pipe()
        command_r, command_w = os.pipe()
        store_r, store_w = os.pipe() if self.keeper is not None else (None, -1)
        config = replace(self.config, record_fd=record_w, command_fd=command_r,
                         store_fd=store_w)
        env = {k: v for k, v in os.environ.items() if k in _ENV_PASSED}
        env.update(THREAD_ENV)
        passed = (record_w, command_r) + ((store_w,) if store_r is not None else ())
        try:
            child = launch.start(launch_spec(config, self.policy), env=env,
                                 python=self.python, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 pass_fds=passed)
        except BaseException:
            for fd in (record_r, command_w, store_r):
                if fd is not None:
                    os.close(fd)
            raise
        finally:
            for fd in passed:
                os.close(fd)
        # Into an empty pipe, before anything else can write to it: the kept state
        # (at most 8 IDs x 8 samples, 33 KB) first, then the settings to replay.
        kept = (self.keeper.blocks() if self.keeper is not None else b"") + self.handoff
        with self._lock:
            replay = b"".join(encode_command(r, v) for r, v in self._settings.items())
        if len(kept) + len(replay) > 60_000:  # more than a default pipe holds
            with contextlib.suppress(OSError):
                fcntl.fcntl(command_w, F_SETPIPE_SZ, len(kept) + len(replay) + 4096)
        view = memoryview(kept + replay)
        with contextlib.suppress(OSError):  # a child that died at once: seen as an exit
            while view:
                view = view[os.write(command_w, view):]
        os.set_blocking(command_w, False)
        return child, record_r, command_w, store_r

    def _run_child(self) -> str:
        """Run one child to its end; return how it ended (for the status and the log)."""
        try:
            child, record_r, command_w, store_r = self._spawn()
        except OSError as e:
            with self._lock:
                self._totals = replace(self._totals, crashes=self._totals.crashes + 1)
            return f"could not be started ({e.strerror or e})"
        inbox = self._new_inbox()
        self._check = self.kind.checker(self.config)  # the rules start again
        with self._lock:
            self._child, self._command_fd, self._inbox = child, command_w, inbox
            owed, self._owed = self._owed, []
            for data in owed:  # two bytes each, into a pipe holding at most 33 KB
                with contextlib.suppress(OSError):
                    os.write(command_w, data)
        self._child_state = ChildState.STARTING
        self._failure = Reason.NONE
        self._streaming = False
        self._late_since = None
        log.info("sealed sensing process started, pid %d", child.pid)
        readers = [
            threading.Thread(target=self._read_records, args=(record_r, inbox), daemon=True,
                             name="guard-records"),
            threading.Thread(target=self.logs.pump, args=(child.stdout, child.pid),
                             daemon=True, name="guard-log"),
        ]
        if store_r is not None:
            readers.append(threading.Thread(target=self._read_store, args=(store_r, inbox),
                                            daemon=True, name="guard-store"))
        for t in readers:
            t.start()
        outcome = self._tick_loop(child, inbox)
        with self._lock:
            self._command_fd = None
        os.close(command_w)  # the child's command thread sees EOF and stops the loop
        if child.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(1.0 if self._stop.is_set() else 0.0)
        if child.poll() is None:
            child.kill()
        code = child.wait()
        for t in readers:
            t.join(2.0)
        os.close(record_r)
        if store_r is not None:
            os.close(store_r)
        with self._lock:
            self._totals = replace(
                self._totals,
                received=self._totals.received + inbox.received,
                malformed=self._totals.malformed + inbox.malformed,
                over_rate=self._totals.over_rate + inbox.over_rate,
                crashes=self._totals.crashes + (outcome.startswith("exited") and not (
                    code == 0 and self._child_state == ChildState.ENDED)),
                hangs=self._totals.hangs + (outcome.startswith("hung")),
                last_exit=code,
            )
            self._inbox = self._new_inbox()
        if not outcome.startswith("exited"):
            return outcome
        why = REASON_TEXT.get(self._failure)
        return f"exited with status {code}" + (f" ({why})" if why else "")

    def _new_inbox(self) -> _Inbox:
        return _Inbox(self.kind.tag, self.kind.backlog)

    def _decode(self, frame: bytes, now: float, skipped: int):
        """One frame → this kind's checked record or a status; ProtocolError otherwise."""
        if len(frame) != FRAME_SIZE:
            raise ProtocolError(f"frame is {len(frame)} bytes, expected {FRAME_SIZE}")
        tag, body = frame[0], bytes(frame[1:])
        if tag == self.kind.tag:
            return self._check(body, now, skipped)
        if tag == TAG_STATUS:
            return decode_status(body)
        raise ProtocolError(f"frame tag 0x{tag:02x} is neither a {self.kind.name} record "
                            f"nor a status")

    def _read_records(self, fd: int, inbox: _Inbox) -> None:
        for data in _whole_frames(fd, FRAME_SIZE):
            inbox.feed(data)
        with inbox.lock:
            inbox.eof = True

    def _read_store(self, fd: int, inbox: _Inbox) -> None:
        """The store pipe: whole records to the keeper; refusals count as malformed."""
        size = self.keeper.frame_size
        for data in _whole_frames(fd, size):
            for i in range(0, len(data), size):
                try:
                    self.keeper.record(data[i:i + size], time.monotonic(), self._send_blocks)
                except ProtocolError as e:
                    with inbox.lock:
                        inbox.received += 1
                        inbox.malformed += 1
                    log.debug("dropped a store record: %s", e)
                except MlsensorsError as e:  # the keeper's own trouble (it says so)
                    log.warning("store record not kept: %s", e)
                else:
                    with inbox.lock:
                        inbox.received += 1
                    self._kept += 1

    def _tick_loop(self, child: subprocess.Popen, inbox: _Inbox) -> str:
        period = 1.0 / self.max_rate
        clock = min(period, self.kind.tick or period)
        drain_for = self.kind.backlog * period + 2 * clock + 1.0  # an exited child's backlog
        started = now = time.monotonic()
        last_valid: float | None = None
        exited_at = 0.0
        next_sample = started
        while True:
            # Each tick is at least one clock step after the previous one actually
            # happened, and a frame is taken at least one period after the last one, so a
            # late tick never lets two records through closer than 1/max_rate.
            next_tick = now + clock
            while (remaining := next_tick - time.monotonic()) > 0:
                if self._stop.wait(remaining):
                    return "stopped"
            if self._stop.is_set():
                return "stopped"
            now = time.monotonic()
            if self.keeper is not None:
                self.keeper.tick(now)
            frame, skipped = (inbox.take_counted() if now >= self._take_after
                              else (None, 0))
            published = False
            if frame is not None:
                try:
                    message = self._decode(frame, now, skipped)
                except ProtocolError as e:
                    with inbox.lock:
                        inbox.malformed += 1
                    log.debug("dropped a malformed frame: %s", e)
                else:
                    last_valid = now
                    if not _silent(message):
                        self._take_after = now + period
                    self._deliver(message, now)
                    published = True
            published = self._check_late(now, period) or published
            if not published and self.keeper is not None \
                    and self.keeper.problem != self._shown_problem:
                # at most one publication per tick: a change the keeper made since
                # (e.g. a failed save) waits for a tick without a record
                self.hub.set_status(self._status(*self._shown))
            if now >= next_sample:
                self._sample_memory(self.child_pid)
                next_sample = now + 1.0
            if child.poll() is not None:
                # Give its last frames their ticks first: a finite source's child writes
                # its final result and "ended" just before it exits. (Bounded: a pipe
                # some other process keeps open must not stall the restart.)
                exited_at = exited_at or now
                if inbox.drained() or now - exited_at > drain_for:
                    return "exited"
            limit = self.timing.startup_timeout if last_valid is None else self.timing.watchdog
            if now - (last_valid if last_valid is not None else started) > limit:
                child.kill()
                return f"hung (silent for more than {limit:g} s), killed"

    def _check_late(self, now: float, period: float) -> bool:
        """Withdraw the faces of a stream that stopped (see `late_after`), and make it a
        fault, in the status and the log, after LATE_FAULT_S. True if it published."""
        if not self._streaming:
            return False
        last = self._result_times[-1]
        silent = now - last
        if self._late_since is None:
            gaps = [b - a for a, b in zip(self._result_times, list(self._result_times)[1:],
                                          strict=False)]
            if silent <= late_after(gaps, period):
                return False
            self._late_since = last
            self._late_faulted = False
            self._late_count += 1
            self.hub.publish(self.kind.empty(self._published), self._status(
                "running", f"no frame from the sensing process for {silent:.2f} s; its "
                           "faces are withdrawn"))
            return True
        if self._late_faulted or silent <= LATE_FAULT_S:
            return False
        self._late_faulted = True
        detail = (f"the sensing process sent no frame for {LATE_FAULT_S:g} s (stopped "
                  "or stuck); the watchdog kills it after "
                  f"{self.timing.watchdog:g} s")
        self.hub.set_status(self._status("fault", detail))
        if now - self._late_logged_at >= LATE_LOG_EVERY_S:
            more = (f" ({self._late_unlogged} more such stall(s) not logged)"
                    if self._late_unlogged else "")
            log.warning("%s%s", detail, more)
            self._late_logged_at, self._late_unlogged = now, 0
        else:
            self._late_unlogged += 1
        return True

    def _deliver(self, message, now: float) -> None:
        """Publish one decoded frame on the tick at monotonic time `now`. A record is
        stamped with that tick's wall time (not the moment it is built), so two published
        records are never stamped closer than the tick period, whatever the scheduler does."""
        when = now + self._wall_offset
        if not isinstance(message, ChildStatus) and not self.kind.streaming:
            self._publish_times.append(now)
            self._published += 1
            self.hub.publish(self.kind.stamp(message, self._published, when),
                             self._status("running"))
            return
        if not isinstance(message, ChildStatus):
            if not self._streaming:
                self._result_times.clear()
            self._streaming = True
            self._result_times.append(now)
            if self._late_since is not None and self._late_faulted:
                log.info("the sensing process sends frames again after %.1f s",
                         now - self._late_since)
            self._late_since = None
            self._publish_times.append(now)
            self._published += 1
            self.hub.publish(self.kind.stamp(message, self._published, when),
                             self._status("running"))
            return
        self._child_state = message.state
        if message.state != ChildState.RUNNING:
            self._streaming = False
            self._late_since = None
        if message.state == ChildState.RUNNING:
            return
        if message.state == ChildState.STANDBY:
            self.hub.set_status(self._status("standby"))
            return
        if message.state == ChildState.ENDED:
            self.hub.set_status(self._status("stopped", "the source has no more frames"))
            return
        if message.state == ChildState.STARTING:
            self.hub.set_status(self._status("starting", "sensing process starting"))
        elif message.state == ChildState.NO_SOURCE:
            status = self._status("fault", "the source has no picture")
            if self.kind.empty is not None:
                self.hub.publish(self.kind.empty(self._published), status)
            else:
                self.hub.set_status(status)
        else:
            self._failure = message.reason
            name = message.reason.name.lower()
            why = f"{name}: {REASON_TEXT[message.reason]}" if message.reason in REASON_TEXT \
                else name
            self.hub.set_status(self._status("fault", f"sensing process failed ({why})"))

    def _sample_memory(self, pid: int) -> None:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        self._peak_rss_kb = max(self._peak_rss_kb, int(line.split()[1]))
                        break
        except (OSError, ValueError):
            pass


def _whole_frames(fd: int, size: int) -> Iterator[bytes]:
    """What the pipe `fd` delivers, in whole multiples of `size` bytes, until its end (a
    partial frame waits for the rest)."""
    carry = b""
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except OSError:
            return
        if not chunk:
            return
        data = carry + chunk
        whole = len(data) - len(data) % size
        carry = data[whole:]
        if whole:
            yield data[:whole]
