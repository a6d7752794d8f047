"""What the tests of real sealed children share: the children import this tree, and a
recorder of every snapshot the Hub emits."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mlsensors.hub import Hub

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"


@pytest.fixture(autouse=True)
def child_path(monkeypatch):
    """The child imports mlsensors from this tree and the stand-ins from tests/."""
    monkeypatch.setenv("PYTHONPATH", f"{SRC}{os.pathsep}{TESTS}")


class Recorder:
    """Every snapshot the Hub emits, with its arrival time (`ticks` gives the guard's own
    stamps, which rate checks use: arrival times add the callback thread's jitter)."""

    def __init__(self, hub: Hub) -> None:
        self.snaps = []
        hub.subscribe(lambda s: self.snaps.append((time.monotonic(), s)))

    def results(self):
        return [(t, s) for t, s in self.snaps if s.status.state == "running"]

    def ticks(self) -> list[float]:
        """The published results' stamps: the guard's tick times, in wall seconds."""
        return [s.result.timestamp for _, s in self.results()]
