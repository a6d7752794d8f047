"""The process's file descriptor budget, shared out among the transports that accept peers.

`mlsensors serve` holds a few long-lived descriptors (the guard's pipes to the sensing
process, the log, listening sockets, an MQTT connection) and one per connected peer.
When peers take every descriptor, nothing else can be opened: the guard cannot restart
a crashed sensing process ("Too many open files"), and every transport stops. So at
start `serve` raises the soft RLIMIT_NOFILE to the hard limit (the soft default, often
1024, is a historical accident; raising it needs no privilege), keeps `RESERVE`
descriptors for everything that is not a peer, and gives each accepting transport an
equal share of the rest as its cap on peers (see `peers.PeerLimits`).
"""

from __future__ import annotations

import os
import resource

RESERVE = 64
"""Descriptors never lent to peers: a restart of the sensing process takes about ten
(two pipes each way, the log pipe, Popen's own), the rest covers logs, models, MQTT."""

CEILING = 1 << 16
"""The soft limit is raised at most this far (a hard limit may be "unlimited")."""


def raise_soft_limit(ceiling: int = CEILING) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (at most `ceiling`); the new soft."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = ceiling if hard == resource.RLIM_INFINITY else min(hard, ceiling)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft if soft != resource.RLIM_INFINITY else ceiling
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):  # e.g. a hard limit above the kernel's nr_open
        return soft
    return target


def open_count() -> int:
    """Descriptors this process has open now."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def peer_share(transports: int, *, reserve: int = RESERVE) -> int:
    """How many peers each of `transports` accepting transports may hold (at least 1)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = CEILING
    free = soft - open_count() - reserve
    return max(1, free // max(1, transports))
