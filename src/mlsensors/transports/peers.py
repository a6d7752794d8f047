"""Bounded peers: how many connections a transport holds, for how long, and how it says so.

Every transport that accepts connections (the virtual bus, the status page) lends each
peer a file descriptor. Left unbounded, a thousand idle peers fill the process's
descriptor table, and then every transport and the guard's restart of a crashed
sensing process fail together. So each transport holds its peers in a `PeerTable`:

- at most `max_peers` at once (serve sizes it from the descriptor budget, see
  `descriptors.py`);
- a peer idle for `idle_timeout` is closed (a dead peer's descriptor comes back);
- when the table is full, a newcomer takes the slot of the peer idle the longest, if
  that one has been idle for `evict_after` or more; otherwise the newcomer is refused.
  Idle peers therefore cannot lock a working client out, and a client that keeps
  talking is never pushed out by idle ones.

What a transport refuses or closes goes to the log through a `PeerLog`: one line per
interval with counts, never one line per connection, so a flood of bad peers cannot
flood the log (or the disk under it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class PeerLimits:
    """A transport's rules for its peers (seconds; None: no idle timeout)."""

    max_peers: int = 64
    idle_timeout: float | None = 300.0
    evict_after: float | None = 2.0
    """When full, a peer idle this long gives its slot to a newcomer (None: never)."""

    def capped(self, most: int) -> PeerLimits:
        """The same rules with at most `most` peers (the descriptor budget's share)."""
        return PeerLimits(max(1, min(self.max_peers, most)), self.idle_timeout,
                          self.evict_after)


@dataclass(slots=True)
class _Entry:
    since: float
    pinned: bool = False


class PeerTable(Generic[P]):
    """The peers a transport holds now, with when each last did something.

    Thread-safe. The transport decides what "doing something" is (a whole request on
    the bus, a completed send on an event stream) and calls `touch`; `pin` keeps a peer
    out of eviction and of the idle timeout (the status page pins its event streams,
    which have rules of their own).
    """

    def __init__(self, limits: PeerLimits, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        self._peers: dict[P, _Entry] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._peers)

    def peers(self) -> list[P]:
        with self._lock:
            return list(self._peers)

    def admit(self, peer: P) -> tuple[bool, P | None]:
        """Take `peer` in if there is room or a slot can be freed: (admitted, evicted).

        The evicted peer, if any, is out of the table; the caller closes it.
        """
        now = self._clock()
        with self._lock:
            evicted = None
            if len(self._peers) >= self.limits.max_peers:
                evicted = self._stalest(now)
                if evicted is None:
                    return False, None
                del self._peers[evicted]
            self._peers[peer] = _Entry(now)
            return True, evicted

    def _stalest(self, now: float) -> P | None:
        after = self.limits.evict_after
        if after is None:
            return None
        candidates = [(e.since, i, p) for i, (p, e) in enumerate(self._peers.items())
                      if not e.pinned]
        if not candidates:
            return None
        since, _, peer = min(candidates, key=lambda c: (c[0], c[1]))
        return peer if now - since >= after else None

    def touch(self, peer: P) -> None:
        with self._lock:
            entry = self._peers.get(peer)
            if entry is not None:
                entry.since = self._clock()

    def pin(self, peer: P) -> None:
        with self._lock:
            entry = self._peers.get(peer)
            if entry is not None:
                entry.pinned = True

    def remove(self, peer: P) -> bool:
        """Forget `peer`; False if it was not (or no longer) in the table."""
        with self._lock:
            return self._peers.pop(peer, None) is not None

    def expired(self) -> list[P]:
        """Remove and return the peers idle longer than `idle_timeout` (to be closed)."""
        timeout = self.limits.idle_timeout
        if timeout is None:
            return []
        now = self._clock()
        with self._lock:
            gone = [p for p, e in self._peers.items()
                    if not e.pinned and now - e.since > timeout]
            for p in gone:
                del self._peers[p]
        return gone


class PeerLog:
    """Counts what a transport refused or closed; logs it as one line per interval.

    The first event after a quiet interval is logged at once (a single bad peer is seen
    without delay); later ones are counted and summarised by `flush`, which the
    transport calls periodically (and once when it stops). Each kind keeps its last
    detail, so the line still says what went wrong.
    """

    def __init__(self, logger: logging.Logger, name: str, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.name = name
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._details: dict[str, str] = {}
        self._last_line: float | None = None
        self._first = 0.0
        self.lines = 0
        """Lines written so far (tests and the status detail read it)."""
        self.total = 0
        """Events noted so far."""

    def note(self, kind: str, detail: str = "") -> None:
        """Count one event of `kind` (a phrase such as "connections refused")."""
        with self._lock:
            self.total += 1
            if not self._counts:
                self._first = self._clock()
            self._counts[kind] = self._counts.get(kind, 0) + 1
            if detail:
                self._details[kind] = detail
        self.flush()

    def flush(self, force: bool = False) -> None:
        """Write the pending counts if the interval has passed (or `force`)."""
        now = self._clock()
        with self._lock:
            if not self._counts:
                return
            if not force and self._last_line is not None \
                    and now - self._last_line < self.interval:
                return
            parts = []
            for kind, count in self._counts.items():
                detail = self._details.get(kind)
                parts.append(f"{count} {kind}" + (f" (last: {detail})" if detail else ""))
            span = now - self._first
            self._counts.clear()
            self._details.clear()
            self._last_line = now
            self.lines += 1
        window = f" in the last {span:.0f} s" if span >= 1 else ""
        self.logger.warning("%s: %s%s", self.name, "; ".join(parts), window)
