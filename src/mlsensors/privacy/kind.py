"""What a sensor kind brings to the one sealed spine (child, guard, channel).

The guard and the child know nothing of faces or commands: a kind names its record's
frame tag, how the guard checks a record (strictly, with state across records when the
rules need it), how a checked record is stamped and published, what the sealed child
runs, and how the records may pace (a stream of states, or sparse events). The person
sensor and the voice sensor are two values of `RecordKind`; a third sensor adds its own
value beside its code and a line in `KINDS`, and the spine does not change.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from mlsensors.errors import ProtocolError


class RecordCheck(Protocol):
    """The guard's check of one record body (39 bytes), stateful across one child."""

    def __call__(self, body: bytes, now: float, skipped: int) -> Any:
        """The decoded record, or ProtocolError naming the broken rule. `skipped`: how
        many records of this kind the guard dropped (over rate) since the last one."""


@dataclass(frozen=True)
class RecordKind:
    name: str
    tag: int
    """The frame tag of this kind's records on the channel (the status tag is shared)."""
    work: str
    """`module:function` the sealed child runs (`(hub, stop, config, **extra)`)."""
    checker: Callable[[Any], RecordCheck]
    """A fresh check for each child, from its ChildConfig (the rules across records
    start again; the configuration says e.g. how many commands are enrolled)."""
    stamp: Callable[[Any, int, float], Any]
    """The record as published, given the guard's count and its tick's wall time: the
    guard's own clock and count, never the child's."""
    empty: Callable[[int], Any] | None
    """The record that withdraws what the last one said (no faces), published on a
    fault; None for events, which are never 'current'."""
    streaming: bool
    """Records are a stream of states (withdrawn when late) rather than sparse events."""
    backlog: int = 1
    """Records kept between guard ticks: 1, the newest wins (states); more, a FIFO of
    events that must not be lost to a burst of two."""
    max_rate: float | None = None
    """The kind's own cap on records per second (the user's --max-rate cannot raise it)."""
    tick: float | None = None
    """The guard's clock for this kind when it must run faster than the rate: a frame is
    passed on the first tick at least 1/max_rate after the previous one, so a sparse
    event waits at most one tick, not one whole rate period (the timing this gives the
    child is counted in the kind's capacity)."""
    takes_writes: bool = True
    """Whether register writes (the Person Sensor's) reach this kind's child."""


KINDS = {
    "person": "mlsensors.person.kind:PERSON",
    "voice": "mlsensors.voice.kind:VOICE",
}
"""Every sensor kind the spine serves, by name (imported when used)."""


def kind_named(name: str) -> RecordKind:
    spec = KINDS.get(name)
    if spec is None:
        raise ProtocolError(f"sensor kind {name!r} is not one of {', '.join(KINDS)}")
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)
