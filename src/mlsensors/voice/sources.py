"""Audio sources: a file, a folder of clips, raw PCM on a stream, the microphone.

Each yields AudioBlocks of 20 ms (audio.BLOCK_SAMPLES) at 16 kHz mono and an AudioEnd
after each finite clip. The microphone lives at the edge (voice.mic) and is imported
only when asked for, so the core never loads ALSA.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np

from mlsensors.errors import InputError, SourceError
from mlsensors.voice.audio import BLOCK_SAMPLES, AudioBlock, AudioEnd, Clip
from mlsensors.voice.clips import audio_files, read_clip

NO_MIC_HINT = ("pass --source FILE or FOLDER (WAV, FLAC, OGG), or 16 kHz 16-bit mono "
               "little-endian PCM on standard input with --source -")


class AudioSource(Protocol):
    def blocks(self) -> Iterator[AudioBlock | AudioEnd]: ...

    def close(self) -> None: ...


def clip_blocks(clip: Clip, start: int = 0) -> Iterator[AudioBlock]:
    """A decoded clip cut into 20 ms blocks (the last one padded with silence)."""
    pcm = clip.pcm16()
    for offset in range(0, len(pcm), BLOCK_SAMPLES):
        block = pcm[offset:offset + BLOCK_SAMPLES]
        if len(block) < BLOCK_SAMPLES:
            block = np.pad(block, (0, BLOCK_SAMPLES - len(block)))
        yield AudioBlock(block, start + offset, time.monotonic(), clip.origin)


class ClipSource:
    """Files (or already decoded clips) one after another, each followed by AudioEnd."""

    def __init__(self, items: Iterable[Clip | str | os.PathLike[str]]) -> None:
        self.items = list(items)

    def blocks(self) -> Iterator[AudioBlock | AudioEnd]:
        position = 0
        for item in self.items:
            clip = item if isinstance(item, Clip) else read_clip(item)
            for block in clip_blocks(clip, position):
                yield block
                position = block.end
            yield AudioEnd(clip.origin)

    def close(self) -> None:
        self.items = []


class PcmStreamSource:
    """Raw 16 kHz mono s16le PCM from a binary stream (standard input for tests and
    pipes such as `arecord -r 16000 -c 1 -f S16_LE -t raw`)."""

    def __init__(self, stream: BinaryIO, origin: str = "stdin") -> None:
        self.stream = stream
        self.origin = origin

    def blocks(self) -> Iterator[AudioBlock | AudioEnd]:
        position = 0
        want = BLOCK_SAMPLES * 2
        pending = b""
        while True:
            chunk = self.stream.read(want - len(pending))
            if not chunk:
                break
            pending += chunk
            if len(pending) < want:
                continue
            block = np.frombuffer(pending, "<i2").astype(np.int16)
            pending = b""
            yield AudioBlock(block, position, time.monotonic(), self.origin)
            position += BLOCK_SAMPLES
        if pending:  # an odd tail: the last whole samples, padded to a block
            tail = np.frombuffer(pending[:len(pending) // 2 * 2], "<i2").astype(np.int16)
            yield AudioBlock(np.pad(tail, (0, BLOCK_SAMPLES - len(tail))), position,
                             time.monotonic(), self.origin)
        yield AudioEnd(self.origin)

    def close(self) -> None:
        pass


class PacedSource:
    """A finite source at the pace it would have been spoken (the microphone is paced by
    its hardware already): a sealed service hears a file as it would hear a room, and its
    events keep the spacing that the guard's rate cap expects of speech."""

    def __init__(self, source: AudioSource) -> None:
        self.source = source

    def blocks(self) -> Iterator[AudioBlock | AudioEnd]:
        from mlsensors.voice.audio import SAMPLE_RATE

        started = time.monotonic()
        for item in self.source.blocks():
            if isinstance(item, AudioBlock):
                ahead = item.start / SAMPLE_RATE - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
            yield item

    def close(self) -> None:
        self.source.close()


def open_audio_source(spec: str | os.PathLike[str] | None) -> AudioSource:
    """"mic" (or None): the microphone; "-": PCM on stdin; a folder; an audio file."""
    if spec is None or spec == "mic":
        from mlsensors.voice.mic import AlsaMicrophone

        return AlsaMicrophone()
    if spec == "-":
        return PcmStreamSource(sys.stdin.buffer)
    path = Path(spec)
    if path.is_dir():
        files = audio_files(path)
        if not files:
            raise InputError(f"folder {path} holds no audio files (.wav, .flac, .ogg)")
        return ClipSource(files)
    if not path.exists():
        raise SourceError(f"audio source {path}: no such file or folder; {NO_MIC_HINT}")
    return ClipSource([path])
