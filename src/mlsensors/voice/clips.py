"""Audio files the user names: bounded before they are read, decoded, checked.

A file is read with `files.read_regular` (regular file, byte limit checked on the open
descriptor), its header is checked for duration before a sample is decoded, and it is
decoded by libsndfile (soundfile: WAV, FLAC, OGG/Vorbis, and what else libsndfile reads).
A truncated or foreign file is one InputError line; a wrong rate or channel count is
conformed (audio.conform). Silence and clipping are judged by `check_level`, which
enrolment applies (a silent or clipped template would match anything or nothing).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from mlsensors.errors import InputError
from mlsensors.files import read_regular
from mlsensors.voice.audio import Clip, conform

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga")
MAX_FILE_BYTES = 64 << 20
MAX_SECONDS = 600.0
"""Longest file `voice run` decodes (10 minutes); enrolment clips are held to 10 s."""
MAX_ENROL_SECONDS = 10.0
SILENCE_DBFS = -50.0
"""A clip whose loudest 20 ms is below this has no speech in it."""
CLIP_FRACTION = 0.01
"""More than this share of samples at full scale: the recording is clipped."""


def decode(data: bytes, origin: str, max_seconds: float = MAX_SECONDS) -> Clip:
    """The bytes of an audio file → a 16 kHz mono Clip, bounded by `max_seconds`."""
    import soundfile as sf

    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            rate, channels, frames = f.samplerate, f.channels, f.frames
            if frames / max(rate, 1) > max_seconds:
                raise InputError(f"{origin} is {frames / rate:.1f} s long, more than the "
                                 f"{max_seconds:g} s allowed")
            if channels > 8:
                raise InputError(f"{origin} has {channels} channels; at most 8 are mixed down")
            samples = f.read(frames, dtype="float32", always_2d=True)
    except sf.LibsndfileError as e:
        raise InputError(f"{origin} is not readable audio ({e.error_string})") from None
    except (RuntimeError, TypeError, ValueError) as e:
        raise InputError(f"{origin} is not readable audio ({e})") from None
    if len(samples) < frames:
        raise InputError(f"{origin} is truncated ({len(samples)} of {frames} frames)")
    if len(samples) == 0:
        raise InputError(f"{origin} holds no samples")
    return Clip(conform(samples, rate, origin), origin, rate, channels)


def read_clip(path: str | os.PathLike[str], max_seconds: float = MAX_SECONDS) -> Clip:
    """Read and decode one audio file, bounded by size and duration."""
    name = os.fspath(path)
    return decode(read_regular(name, MAX_FILE_BYTES, "audio file"), name, max_seconds)


def audio_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The audio files of a folder (not recursive), sorted by name."""
    return sorted(p for p in Path(folder).iterdir()
                  if p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith("."))


def peak_dbfs(samples: np.ndarray, frame: int = 320) -> float:
    """Level of the loudest 20 ms, in dB below full scale."""
    n = len(samples) // frame * frame
    if n == 0:
        return -120.0
    power = (samples[:n].astype(np.float64).reshape(-1, frame) ** 2).mean(axis=1)
    return float(10 * np.log10(max(power.max(), 1e-12)))


def check_level(clip: Clip) -> None:
    """InputError for a silent or a clipped recording (what enrolment must not learn)."""
    level = peak_dbfs(clip.samples)
    if level < SILENCE_DBFS:
        raise InputError(f"{clip.origin} is silent (loudest 20 ms at {level:.0f} dBFS); "
                         f"record the command closer to the microphone")
    clipped = float(np.mean(np.abs(clip.samples) >= 0.999))
    if clipped > CLIP_FRACTION:
        raise InputError(f"{clip.origin} is clipped ({clipped:.1%} of samples at full "
                         f"scale); record it again less loudly")
