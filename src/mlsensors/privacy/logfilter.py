"""The guard's filter for the sealed child's stdout/stderr: short text lines, few of them.

The child's output is a second way out of the sandbox, so it is treated like one: each
line is cut to LINE_MAX printable ASCII characters, lines that look like array or pixel
dumps (numpy reprs, long runs of numbers, long base64/hex words) are dropped, and at
most BURST lines per WINDOW seconds pass. What passes goes to the `mlsensors.child`
logger and into a short ring buffer the audit reads.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections import deque
from typing import IO

LINE_MAX = 160
BURST = 10
WINDOW = 60.0

_DUMP = re.compile(
    r"array\(|\[\[|dtype=|"  # numpy reprs and nested lists
    r"(?:[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?[\s,;\]]+){6,}|"  # six numbers in a row
    r"\b(?![0-9a-f]{64}\b)[A-Za-z0-9+=]{48,}|"  # a long base64 word (a SHA-256 may pass)
    r"(?:\\x[0-9a-fA-F]{2}){8,}",  # escaped bytes
)
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


def capacity_bits_per_second() -> float:
    """Upper bound of the log side channel: BURST lines of LINE_MAX printable characters
    (95 symbols, plus an end) per WINDOW seconds."""
    return BURST / WINDOW * LINE_MAX * math.log2(96)


def clean_line(raw: bytes) -> str | None:
    """The line as it may be logged, or None when it must be dropped."""
    text = _UNPRINTABLE.sub("?", raw.decode("utf-8", "replace").rstrip("\r\n"))
    if not text.strip() or _DUMP.search(text):
        return None
    return text if len(text) <= LINE_MAX else text[: LINE_MAX - 1] + "~"


class LogFilter:
    """Reads a child's output stream line by line; see the module docstring."""

    def __init__(self, logger: logging.Logger, history: int = 200) -> None:
        self.logger = logger.getChild("child") if logger.name != "mlsensors.child" else logger
        self.lines: deque[str] = deque(maxlen=history)
        self.dropped = 0
        self._window: deque[float] = deque()

    def accept(self, raw: bytes) -> str | None:
        text = clean_line(raw)
        now = time.monotonic()
        while self._window and now - self._window[0] > WINDOW:
            self._window.popleft()
        if text is None or len(self._window) >= BURST:
            self.dropped += 1
            return None
        self._window.append(now)
        self.lines.append(text)
        return text

    def pump(self, stream: IO[bytes], pid: int) -> None:
        """Until EOF; lines longer than a page are read in pieces and each piece judged."""
        while True:
            raw = stream.readline(4096)
            if not raw:
                break
            text = self.accept(raw)
            if text is not None:
                self.logger.info("[%d] %s", pid, text)
        stream.close()
