"""The voice sensor: audio in, command events out, and nothing else.

source → ring (≤ 2 s) → [wake word] → endpointer → voicing → 1 s windows → embed →
normalise → match (s-norm) → gate → near-miss tracker → VoiceEvent (the record's fields)

`VoiceSensor` is iterable like `PersonSensor`: one VoiceEvent per recognised command
(or wake word). It never writes audio or templates anywhere: enrolment returns the
new CommandSet and the caller stores it (the CLI now; the guard's side of the service
later, so the sealed process never needs a writable file).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from mlsensors.errors import InputError
from mlsensors.voice.audio import SAMPLE_RATE, AudioBlock, AudioEnd, Clip
from mlsensors.voice.clips import MAX_ENROL_SECONDS, check_level, read_clip
from mlsensors.voice.matcher import UNKNOWN, CommandMatch, CommandSet
from mlsensors.voice.nearmiss import NearMissOptions, NearMissTracker
from mlsensors.voice.record import MAX_RATE, EventKind, VoiceEvent
from mlsensors.voice.ring import AudioRing
from mlsensors.voice.segment import Endpointer, SegmentOptions, Utterance, utterances
from mlsensors.voice.voicing import VoicingOptions, is_voiced

SHIFTS = (-0.05, 0.0, 0.05)
"""Three windows 50 ms apart: an endpointer's centre is never exact (bench/voice_bench.py
measures with and without)."""
GATES = ("none", "wake")
"""Gates of the core; "facing" and "both" come with the person sensor in `serve`."""


@dataclass(frozen=True, slots=True)
class VoiceOptions:
    gate: str = "none"
    """"none": every recognised command counts; "wake": only within `gate_seconds`
    after the wake word."""
    wake_word: str | None = None
    """A shipped wake word (voice.wakeword.WAKE_MODELS); its detections are events too."""
    gate_seconds: float = 5.0
    threshold: float | None = None
    """Override the enrolled commands' score threshold."""
    shifts: tuple[float, ...] = SHIFTS
    """Offsets (s) of the windows embedded per utterance around its energy centre; the
    best-scoring one counts (enrolment uses the centre only)."""
    segment: SegmentOptions = field(default_factory=SegmentOptions)
    voicing: VoicingOptions | None = field(default_factory=VoicingOptions)
    """An utterance without this much pitch (noise, a whisper) is never matched; None:
    every utterance is."""
    near_miss: NearMissOptions = field(default_factory=NearMissOptions)


@dataclass(frozen=True, slots=True)
class Heard:
    """What the sensor made of one utterance (for diagnostics and the bench; never
    leaves the sensor)."""

    utterance: Utterance
    match: CommandMatch
    gated: bool
    emitted_at: int
    """Stream position (samples) when the decision was made."""


def window_around(centre: int, read: Callable[[int, int], np.ndarray]) -> np.ndarray:
    """The one-second window the embedder sees, centred on the utterance's energy."""
    return read(centre - SAMPLE_RATE // 2, centre + SAMPLE_RATE // 2)


def embed_windows(embedder, centre: int, read: Callable[[int, int], np.ndarray],
                  shifts: tuple[float, ...] = (0.0,)) -> np.ndarray:
    """Raw features (len(shifts), RAW_DIM) of the windows around `centre`."""
    return np.stack([embedder.embed(window_around(centre + round(s * SAMPLE_RATE), read))
                     for s in shifts])


class VoiceSensor:
    def __init__(self, source=None, options: VoiceOptions | None = None,
                 commands: CommandSet | None = None, embedder=None, wake=None,
                 store=None) -> None:
        """`source`: an AudioSource or what `open_audio_source` takes ("mic", "-", a
        file, a folder; None: no source, for `enroll` and `classify` only)."""
        self.options = options or VoiceOptions()
        if self.options.gate not in GATES:
            raise InputError(f"gate {self.options.gate!r} is not one of {', '.join(GATES)}")
        if self.options.gate == "wake" and not self.options.wake_word:
            raise InputError("the wake gate needs a wake word (e.g. --wake-word alexa)")
        if source is not None and isinstance(source, str | os.PathLike):
            from mlsensors.voice.sources import open_audio_source

            source = open_audio_source(source)
        self.source = source
        self.commands = commands if commands is not None else CommandSet()
        if self.options.threshold is not None:
            self.commands.threshold = float(self.options.threshold)
        if not self.options.shifts or any(abs(s) > 0.25 for s in self.options.shifts):
            raise InputError("window shifts must be 1 or more offsets within ±0.25 s")
        if embedder is None:
            from mlsensors.voice.embed import CommandEmbedder

            embedder = CommandEmbedder(store=store)
        self.embedder = embedder
        if wake is None and self.options.wake_word:
            from mlsensors.voice.wakeword import WakeWordDetector

            wake = WakeWordDetector(self.options.wake_word, store=store)
        self.wake = wake
        self.tracker = NearMissTracker(self.options.near_miss)
        self.ring = AudioRing()
        self.endpointer = Endpointer(self.options.segment)
        self.counter = 0
        self.dropped_over_rate = 0
        self.on_heard: Callable[[Heard], None] | None = None
        self._gate_until = -1
        self._last_event_at = -(10**9)
        self._started = time.monotonic()

    def close(self) -> None:
        try:
            if self.source is not None:
                self.source.close()
        finally:
            self.ring.clear()

    def __enter__(self) -> VoiceSensor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- enrolment and single clips ------------------------------------------------

    def embed_clip(self, clip: Clip, shifts: tuple[float, ...] = (0.0,)
                   ) -> tuple[np.ndarray, Utterance] | None:
        """Raw features (len(shifts), RAW_DIM) of a clip's loudest utterance; None if it
        has no speech."""
        found = utterances(clip.samples, self.options.segment)
        if not found:
            return None
        best = max(found, key=lambda u: u.peak_db)

        def read(start: int, stop: int) -> np.ndarray:
            out = np.zeros(stop - start, np.float32)
            lo, hi = max(start, 0), min(stop, len(clip.samples))
            if hi > lo:
                out[lo - start:hi - start] = clip.samples[lo:hi]
            return out

        return embed_windows(self.embedder, best.centre, read, shifts), best

    def voiced(self, samples: np.ndarray) -> bool:
        v = self.options.voicing
        return v is None or is_voiced(samples, v)

    def classify(self, clip: Clip) -> CommandMatch:
        """The command said in one short clip (unknown when none, or no voiced speech)."""
        got = self.embed_clip(clip, self.options.shifts)
        if got is None or not self.voiced(clip.samples[got[1].start:got[1].end]):
            return UNKNOWN
        return self.commands.match(got[0])

    def enroll(self, name: str, clips: Iterable[Clip | str | os.PathLike[str]]) -> int:
        """Learn `name` from 1 or more clips (3–5 recommended); its command index.

        Every clip is checked first (readable, not silent, not clipped, has speech), so a
        bad one changes nothing. The caller saves `self.commands`.
        """
        rows = []
        for item in clips:
            clip = item if isinstance(item, Clip) else read_clip(item, MAX_ENROL_SECONDS)
            check_level(clip)
            got = self.embed_clip(clip)
            if got is None:
                raise InputError(f"{clip.origin}: no speech found; say the command once, "
                                 f"clearly, with a little silence around it")
            if not self.voiced(clip.samples[got[1].start:got[1].end]):
                raise InputError(f"{clip.origin}: no voice found in the speech (noise, or a "
                                 f"whisper?); say the command aloud")
            rows.append(got[0][0])
        if not rows:
            raise InputError(f"no clips given for command {name!r}")
        index = self.commands.set(name, np.stack(rows))
        self.tracker.forget(self.commands.names()[index])
        return index

    # -- streaming -------------------------------------------------------------------

    def __iter__(self) -> Iterator[VoiceEvent]:
        if self.source is None:
            raise InputError("this VoiceSensor has no audio source")
        for item in self.source.blocks():
            if isinstance(item, AudioEnd):
                yield from self.end_of_clip()
                continue
            yield from self.process(item)

    def process(self, block: AudioBlock) -> list[VoiceEvent]:
        """One block through every stage; the events it completes."""
        self.ring.write(block.samples)
        events = []
        if self.wake is not None:
            for score in self.wake.feed(block.samples):
                if score.fired:
                    self._gate_until = score.position + int(self.options.gate_seconds
                                                            * SAMPLE_RATE)
                    if self.tracker._open.get("wake") is not None:
                        self.tracker.detection("wake", score.position / SAMPLE_RATE)
                    event = self._event(EventKind.WAKE, 0, round(score.probability * 100),
                                        None, block.end)
                    if event is not None:
                        events.append(event)
                elif self.wake.cutoff - self.options.near_miss.margin < score.probability \
                        <= self.wake.cutoff:
                    self.tracker.near_miss("wake", score.position / SAMPLE_RATE)
        for utterance in self.endpointer.feed(block.samples, block.start):
            event = self._decide(utterance, block.end)
            if event is not None:
                events.append(event)
        return events

    def end_of_clip(self) -> list[VoiceEvent]:
        """A finite clip ended: decide on an utterance still open, forget the stream."""
        position = self.ring.end
        events = [e for u in self.endpointer.flush()
                  if (e := self._decide(u, position)) is not None]
        if self.wake is not None:
            self.wake.reset()
        return events

    def _decide(self, utterance: Utterance, position: int) -> VoiceEvent | None:
        if not self.commands:
            return None
        if not self.voiced(self.ring.read(utterance.start, utterance.end)):
            match = UNKNOWN
        else:
            match = self.commands.match(embed_windows(self.embedder, utterance.centre,
                                                      self.ring.read, self.options.shifts))
        gated = self.options.gate == "wake" and utterance.start > self._gate_until
        if self.on_heard is not None:
            self.on_heard(Heard(utterance, match, gated, position))
        when = utterance.end / SAMPLE_RATE
        if not match.known:
            if match.nearest >= 0 and match.score > (self.commands.threshold
                                                     - self.options.near_miss.score_margin):
                self.tracker.near_miss(self.commands.names()[match.nearest], when)
            return None
        self.tracker.detection(match.name, when)
        if gated:
            return None
        return self._event(EventKind.COMMAND, match.index, match.confidence, match.name,
                           position)

    def _event(self, kind: EventKind, command: int, conf: int, name: str | None,
               position: int) -> VoiceEvent | None:
        if position - self._last_event_at < SAMPLE_RATE / MAX_RATE:
            self.dropped_over_rate += 1
            return None
        self._last_event_at = position
        self.counter += 1
        return VoiceEvent(kind, command, max(0, min(100, conf)), self.counter,
                          int(position * 1000 // SAMPLE_RATE) % 2**32, name, time.time())
