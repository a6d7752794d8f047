"""What every source is: a named, closable iterator of frames and gaps.

A source hands out one picture at a time and keeps no queue of past pictures, so that
at any moment at most one frame exists inside mlsensors (the privacy promise relies on
it). Everything a source yields is a Frame, or a SourceGap when it has no picture —
including `UnreadableFile`, a gap that also says which file could not be read, so a
consumer that only knows about gaps keeps working and one that cares (the `detect`
command) can report the file.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType

from mlsensors.types import Frame, SourceGap

Item = Frame | SourceGap


@dataclass(frozen=True, slots=True)
class UnreadableFile(SourceGap):
    """A file in a folder that could not be decoded; the folder goes on with the next.

    `reason` is "path: problem" for consumers that only log gaps; `path` and `error`
    (the problem alone, one line) are there for consumers that report per file.
    """

    path: str
    error: str


class Source:
    """Base class: `frames()` yields Frame | SourceGap; `close()` releases the device.

    Use as a context manager. `frames()` is meant to be iterated once; `close()` may be
    called from another thread to stop a source that is waiting (pacing, camera retry).
    """

    name: str = "source"

    def __init__(self) -> None:
        self._closed = threading.Event()

    def frames(self) -> Iterator[Item]:
        raise NotImplementedError

    def close(self) -> None:
        self._closed.set()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def __enter__(self):
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[Item]:
        return self.frames()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class Pacer:
    """Spaces frames `1 / fps` apart on the monotonic clock, for real-time playback.

    Waiting happens on the source's closed event, so closing the source from another
    thread ends a wait at once. With fps None or ≤ 0 it never waits.
    """

    def __init__(
        self,
        fps: float | None,
        wait: Callable[[float], object],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = 1.0 / fps if fps and fps > 0 else 0.0
        self._wait = wait
        self._clock = clock
        self._next: float | None = None

    def __call__(self) -> None:
        if not self._interval:
            return
        now = self._clock()
        if self._next is None or now - self._next > self._interval:
            self._next = now  # first frame, or we fell behind: do not try to catch up
        elif self._next > now:
            self._wait(self._next - now)
        self._next += self._interval
