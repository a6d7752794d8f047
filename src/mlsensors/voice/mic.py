"""The microphone, through ALSA's C library directly (ctypes; no extra wheel needed).

ALSA's libasound ships with every Linux that has sound, on x86-64 and on the Raspberry
Pi alike, so this edge needs no compiled Python package. It captures 16 kHz mono
S16_LE from the ALSA device (default "default"; `MLSENSORS_MIC` names another, e.g.
"plughw:1,0"); ALSA's plug layer converts from whatever the hardware gives. A machine
without the library or without a capture device gets one SourceError line saying what
to pass instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time
from collections.abc import Iterator

import numpy as np

from mlsensors.errors import SourceError
from mlsensors.voice.audio import BLOCK_SAMPLES, SAMPLE_RATE, AudioBlock, AudioEnd

_CAPTURE = 1
_FORMAT_S16_LE = 2
_ACCESS_RW_INTERLEAVED = 3
_LATENCY_US = 100_000
_ERROR_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                                  ctypes.c_int, ctypes.c_char_p)
_quiet = _ERROR_HANDLER(lambda *args: None)
"""ALSA prints its own multi-line errors to stderr; ours is the one line that counts."""


def _no_mic(reason: str) -> SourceError:
    from mlsensors.voice.sources import NO_MIC_HINT

    return SourceError(f"no microphone ({reason}); {NO_MIC_HINT}")


class AlsaMicrophone:
    def __init__(self, device: str | None = None) -> None:
        self.device = device or os.environ.get("MLSENSORS_MIC", "default")
        name = ctypes.util.find_library("asound")
        if name is None:
            raise _no_mic("ALSA's libasound is not installed")
        self._lib = ctypes.CDLL(name)
        self._lib.snd_lib_error_set_handler(_quiet)
        self._lib.snd_strerror.restype = ctypes.c_char_p
        self._pcm = ctypes.c_void_p()
        err = self._lib.snd_pcm_open(ctypes.byref(self._pcm), self.device.encode(),
                                     _CAPTURE, 0)
        if err < 0:
            raise _no_mic(f"ALSA cannot open capture device {self.device!r}: "
                          f"{self._lib.snd_strerror(err).decode()}")
        err = self._lib.snd_pcm_set_params(self._pcm, _FORMAT_S16_LE, _ACCESS_RW_INTERLEAVED,
                                           1, SAMPLE_RATE, 1, _LATENCY_US)
        if err < 0:
            self.close()
            raise _no_mic(f"{self.device!r} cannot record 16 kHz mono: "
                          f"{self._lib.snd_strerror(err).decode()}")

    def blocks(self) -> Iterator[AudioBlock | AudioEnd]:
        buf = np.zeros(BLOCK_SAMPLES, np.int16)
        position = 0
        while self._pcm:
            got = self._lib.snd_pcm_readi(self._pcm, buf.ctypes.data_as(ctypes.c_void_p),
                                          BLOCK_SAMPLES)
            if got < 0:  # an overrun: recover and go on; anything else ends the stream
                if self._lib.snd_pcm_recover(self._pcm, got, 1) < 0:
                    raise SourceError(f"microphone {self.device!r}: "
                                      f"{self._lib.snd_strerror(got).decode()}")
                continue
            yield AudioBlock(buf[:got].copy(), position, time.monotonic(), "mic")
            position += got
        yield AudioEnd("mic")

    def close(self) -> None:
        if self._pcm:
            self._lib.snd_pcm_close(self._pcm)
            self._pcm = ctypes.c_void_p()
