"""Using time, as the camera does: a near-miss followed soon by a detection was a miss.

Someone who says a command and gets nothing says it again. When an utterance's nearest
command scored just outside the threshold (within `margin`) and the same command is
then recognised within `window` seconds, the first attempt was a miss of a real command:
counted per command, and once a command gathers `suggest_after` of them and they are at
least `suggest_ratio` of its detections, the sensor suggests enrolling it again (a few
more or fresher takes). Wake-word near-misses count the same way under the name "wake".
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class NearMissOptions:
    margin: float = 0.10
    """Wake-word probability below its cutoff still counted as a near-miss."""
    score_margin: float = 1.0
    """Normalised command score below the threshold still counted as a near-miss."""
    window: float = 5.0
    suggest_after: int = 3
    suggest_ratio: float = 0.2


@dataclass(slots=True)
class CommandCounts:
    detections: int = 0
    near_misses: int = 0
    misses: int = 0
    """Near-misses followed by a detection of the same command within the window."""


@dataclass(slots=True)
class NearMissTracker:
    options: NearMissOptions = field(default_factory=NearMissOptions)
    counts: dict[str, CommandCounts] = field(default_factory=dict)
    _open: dict[str, float] = field(default_factory=dict)

    def _of(self, name: str) -> CommandCounts:
        return self.counts.setdefault(name, CommandCounts())

    def near_miss(self, name: str, when: float) -> None:
        self._of(name).near_misses += 1
        self._open[name] = when

    def detection(self, name: str, when: float) -> bool:
        """Count a detection; True when it settles an open near-miss as a miss."""
        counts = self._of(name)
        counts.detections += 1
        since = self._open.pop(name, None)
        if since is not None and when - since <= self.options.window:
            counts.misses += 1
            return True
        return False

    def suggestions(self) -> list[str]:
        """Commands worth enrolling again, with the reason, one line each."""
        o = self.options
        out = []
        for name, c in sorted(self.counts.items()):
            if c.misses >= o.suggest_after and c.misses >= o.suggest_ratio * c.detections:
                out.append(f"{name}: {c.misses} of {c.detections} detections came after a "
                           f"near-miss; enrol it again (`mlsensors voice enroll --command "
                           f"{name} ...`)")
        return out

    def forget(self, name: str | None = None) -> None:
        """After (re-)enrolment or erase the old counts say nothing about the new templates."""
        if name is None:
            self.counts.clear()
            self._open.clear()
        else:
            self.counts.pop(name, None)
            self._open.pop(name, None)
