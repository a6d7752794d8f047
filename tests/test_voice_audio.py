"""Voice sources: bounded reads, bad audio in one line, resampling, the ring, stdin, mic."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import soundfile as sf

from mlsensors.errors import InputError, SourceError
from mlsensors.voice.audio import BLOCK_SAMPLES, SAMPLE_RATE, AudioBlock, AudioEnd
from mlsensors.voice.clips import check_level, read_clip
from mlsensors.voice.ring import AudioRing
from mlsensors.voice.segment import utterances
from mlsensors.voice.sources import PcmStreamSource, open_audio_source


def tone(seconds=0.5, rate=SAMPLE_RATE, freq=440.0, level=0.3, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    x = (level * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def test_other_rate_and_channels_are_resampled_and_mixed(tmp_path):
    path = tmp_path / "stereo44k.wav"
    sf.write(path, tone(1.0, 44100, channels=2), 44100)
    clip = read_clip(path)
    assert clip.source_rate == 44100 and clip.source_channels == 2
    assert abs(len(clip.samples) - SAMPLE_RATE) <= 1
    spectrum = np.abs(np.fft.rfft(clip.samples))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / len(clip.samples) - 440) < 3


@pytest.mark.parametrize("make, words", [
    (lambda p: p.write_bytes(b"RIFF\x00\x00"), "not readable audio"),
    (lambda p: p.write_bytes(b""), "not readable audio"),
])
def test_foreign_or_empty_file_is_one_line(tmp_path, make, words):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(InputError, match=words) as e:
        read_clip(path)
    assert "\n" not in str(e.value)


def test_truncated_flac_is_refused(tmp_path):
    good = tmp_path / "good.flac"
    sf.write(good, tone(2.0), SAMPLE_RATE, format="FLAC")
    cut = tmp_path / "cut.flac"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputError, match=r"truncated|not readable"):
        read_clip(cut)


def test_duration_bounded_before_decoding(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(SAMPLE_RATE * 3, np.float32), SAMPLE_RATE)
    with pytest.raises(InputError, match="more than the 2 s allowed"):
        read_clip(path, max_seconds=2)


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="FIFO"):
        read_clip(fifo)


def test_silence_and_clipping_are_refused_for_enrolment(tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    with pytest.raises(InputError, match="silent"):
        check_level(read_clip(silent))
    loud = tmp_path / "loud.wav"
    sf.write(loud, np.clip(tone(1.0, level=3.0), -1, 1), SAMPLE_RATE)
    with pytest.raises(InputError, match="clipped"):
        check_level(read_clip(loud))
    fine = tmp_path / "fine.wav"
    sf.write(fine, tone(1.0), SAMPLE_RATE)
    check_level(read_clip(fine))


def test_ring_holds_two_seconds_and_clear_zeroes():
    ring = AudioRing()
    assert ring.capacity == 2 * SAMPLE_RATE
    for i in range(10):
        ring.write(np.full(SAMPLE_RATE // 2, i + 1, np.int16))
    assert ring.end == 5 * SAMPLE_RATE and ring.start == 3 * SAMPLE_RATE
    old = ring.read(0, SAMPLE_RATE)
    assert not old.any()  # gone: older than 2 s
    recent = ring.read(ring.end - 10, ring.end)
    assert np.allclose(recent, 10 / 32768.0)
    ring.clear()
    assert not ring._buf.any()


def test_stdin_pcm_source_blocks_and_tail():
    pcm = (np.arange(BLOCK_SAMPLES * 3 + 7) % 100).astype("<i2").tobytes()
    items = list(PcmStreamSource(io.BytesIO(pcm)).blocks())
    blocks = [b for b in items if isinstance(b, AudioBlock)]
    assert isinstance(items[-1], AudioEnd)
    assert [b.start for b in blocks] == [0, 320, 640, 960]
    assert blocks[-1].samples[:7].tolist() == list(range(60, 67))


def test_no_microphone_is_one_line_naming_what_to_pass():
    if os.path.exists("/dev/snd"):
        pytest.skip("this machine has a sound device")
    with pytest.raises(SourceError) as e:
        open_audio_source("mic")
    message = str(e.value)
    assert "no microphone" in message and "--source" in message and "\n" not in message


def test_missing_source_names_the_choices(tmp_path):
    with pytest.raises(SourceError, match="--source"):
        open_audio_source(tmp_path / "nope.wav")
    with pytest.raises(InputError, match="no audio files"):
        open_audio_source(tmp_path)


def test_endpointer_finds_a_burst_and_drops_long_speech():
    quiet = np.zeros(SAMPLE_RATE // 2, np.float32)
    word = tone(0.4)
    (u,) = utterances(np.concatenate([quiet, word, quiet]))
    assert abs(u.start - SAMPLE_RATE // 2) < 0.1 * SAMPLE_RATE
    assert abs(u.end - (SAMPLE_RATE // 2 + len(word))) < 0.03 * SAMPLE_RATE
    assert abs(u.centre - (SAMPLE_RATE // 2 + len(word) // 2)) < 0.05 * SAMPLE_RATE
    assert utterances(np.concatenate([quiet, tone(3.0), quiet])) == []  # not a command
    assert utterances(quiet) == []
