"""The voice sensor with its real models on real clips (skips without ../shared)."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest

from mlsensors.errors import InputError, ModelError
from mlsensors.models import ModelStore
from mlsensors.voice.audio import SAMPLE_RATE, Clip
from mlsensors.voice.clips import read_clip
from mlsensors.voice.embed import MODEL
from mlsensors.voice.matcher import CommandSet
from mlsensors.voice.nearmiss import NearMissTracker
from mlsensors.voice.record import EventKind, RecordChecker, pack
from mlsensors.voice.sensor import VoiceOptions, VoiceSensor
from mlsensors.voice.sources import ClipSource, PcmStreamSource
from mlsensors.voice.wakeword import WakeWordDetector


@pytest.fixture(scope="session")
def words(data_dir):
    root = data_dir / "voice" / "speech_commands"
    return {w: sorted((root / w).glob("*.flac")) for w in
            ("yes", "no", "left", "_silence_", "_unknown_")}


@pytest.fixture(scope="session")
def embedder(kws_store):
    from mlsensors.voice.embed import CommandEmbedder

    return CommandEmbedder()


@pytest.fixture()
def sensor(embedder, words):
    s = VoiceSensor(None, None, CommandSet(), embedder)
    s.enroll("yes", words["yes"][:5])
    s.enroll("no", words["no"][:5])
    return s


def test_enrolled_commands_are_recognised_and_others_are_unknown(sensor, words):
    right = sum(sensor.classify(read_clip(p)).name == "yes" for p in words["yes"][20:40])
    right += sum(sensor.classify(read_clip(p)).name == "no" for p in words["no"][20:40])
    assert right >= 34  # of 40, other speakers than the enrolment's
    wrong = sum(sensor.classify(read_clip(p)).known for p in words["left"][:40])
    wrong += sum(sensor.classify(read_clip(p)).known for p in words["_silence_"][:40])
    assert wrong <= 4
    m = sensor.classify(read_clip(words["yes"][30]))
    assert m.known and 50 < m.confidence <= 100


def test_bad_enrolment_changes_nothing(sensor, words, tmp_path):
    silent = tmp_path / "silent.wav"
    import soundfile as sf

    sf.write(silent, np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    before = sensor.commands.templates("yes")
    with pytest.raises(InputError, match="silent"):
        sensor.enroll("yes", [*words["no"][5:7], silent])
    assert np.array_equal(sensor.commands.templates("yes"), before)


def test_stream_gives_checked_events(sensor, words):
    quiet = Clip(np.zeros(SAMPLE_RATE, np.float32), "quiet")
    clips = [quiet, read_clip(words["yes"][30]), quiet, read_clip(words["_silence_"][3]),
             quiet, read_clip(words["no"][30]), quiet]
    sensor.source = ClipSource(clips)
    events = list(sensor)
    assert [e.name for e in events] == ["yes", "no"]
    checker = RecordChecker(num_commands=len(sensor.commands))
    for e in events:  # what the guard will do with them
        assert checker.check(pack(e), now=e.when_ms / 1000).command == e.command
    assert [e.counter for e in events] == [1, 2]


def noise_burst(seed=0):
    rng = np.random.default_rng(seed)
    return Clip(np.concatenate([np.zeros(8000), 0.2 * rng.normal(size=6000),
                                np.zeros(8000)]).astype(np.float32), "burst")


def test_noise_is_never_matched_and_never_enrolled(sensor):
    heard = []
    sensor.on_heard = heard.append
    sensor.source = ClipSource([noise_burst()])
    assert list(sensor) == []
    assert len(heard) == 1 and heard[0].match.score == float("-inf")
    # without the voicing check the same burst is scored against the commands
    loose = VoiceSensor(ClipSource([noise_burst()]), VoiceOptions(voicing=None),
                        sensor.commands, sensor.embedder)
    loose.on_heard = heard.append
    list(loose)
    assert len(heard) == 2 and np.isfinite(heard[1].match.score)
    with pytest.raises(InputError, match="no voice"):
        sensor.enroll("hiss", [noise_burst(1)])
    assert "hiss" not in sensor.commands.names()


def test_stdin_pcm_stream(sensor, words):
    pcm = np.concatenate([np.zeros(8000, np.int16), read_clip(words["no"][31]).pcm16(),
                          np.zeros(8000, np.int16)]).astype("<i2").tobytes()
    sensor.source = PcmStreamSource(io.BytesIO(pcm))
    assert [e.name for e in sensor] == ["no"]


def test_wake_word_fires_on_alexa_and_not_on_commands(model_store, data_dir, words):
    det = WakeWordDetector("alexa")
    alexa = sorted((data_dir / "voice" / "wake_word" / "alexa").glob("*.flac"))[:10]
    fired = 0
    for p in alexa:
        det.reset()
        fired += any(s.fired for s in det.feed(read_clip(p).pcm16()))
    assert fired >= 9
    det.reset()
    others = np.concatenate([read_clip(p).pcm16() for p in words["_unknown_"][:30]])
    assert not any(s.fired for s in det.feed(others))


def test_wake_gate_lets_commands_through_only_after_the_wake_word(sensor, data_dir, words):
    alexa = read_clip(sorted((data_dir / "voice" / "wake_word" / "alexa").glob("*.flac"))[0])
    quiet = Clip(np.zeros(SAMPLE_RATE, np.float32), "quiet")
    yes = read_clip(words["yes"][30])
    gated = VoiceSensor(ClipSource([Clip(np.concatenate(
        [quiet.samples, yes.samples, quiet.samples, quiet.samples, quiet.samples,
         quiet.samples, quiet.samples, alexa.samples, quiet.samples, yes.samples,
         quiet.samples]), "stream")]),
        VoiceOptions(gate="wake", wake_word="alexa"), sensor.commands, sensor.embedder)
    events = list(gated)
    assert [e.kind for e in events] == [EventKind.WAKE, EventKind.COMMAND]
    assert events[1].name == "yes"
    with pytest.raises(InputError, match="wake word"):
        VoiceSensor(None, VoiceOptions(gate="wake"), sensor.commands, sensor.embedder)


def test_near_miss_then_detection_counts_as_a_miss_and_suggests():
    t = NearMissTracker()
    for k in range(3):
        t.near_miss("lamp on", 10.0 * k)
        assert t.detection("lamp on", 10.0 * k + 2)
    t.near_miss("lamp on", 100.0)
    assert not t.detection("lamp on", 120.0)  # too late: a new attempt, not a repeat
    c = t.counts["lamp on"]
    assert (c.near_misses, c.misses, c.detections) == (4, 3, 4)
    assert len(t.suggestions()) == 1 and "enrol it again" in t.suggestions()[0]
    t.forget("lamp on")
    assert t.suggestions() == []


def test_sensor_counts_near_misses_in_a_stream(sensor, words):
    clips = [read_clip(p) for p in words["yes"][30:33]]
    best = max(sensor.classify(c).score for c in clips)
    sensor.commands.threshold = best + 0.5  # every take scores just under it: near-misses
    sensor.source = ClipSource(clips)
    assert list(sensor) == []
    assert sensor.tracker.counts["yes"].near_misses >= 1


def test_altered_model_is_refused(kws_store, tmp_path):
    data = bytearray((kws_store.root / MODEL).read_bytes())
    data[100] ^= 1
    (tmp_path / MODEL).write_bytes(bytes(data))
    with pytest.raises(ModelError, match="pinned hash"):
        ModelStore(tmp_path).load_bytes(MODEL)


def run_cli(*args, env_home):
    import os

    env = dict(os.environ, XDG_DATA_HOME=str(env_home))
    return subprocess.run([sys.executable, "-m", "mlsensors", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120)


def test_cli_enroll_list_run_folder_erase(kws_store, words, tmp_path):
    r = run_cli("voice", "enroll", "--command", "Lamp On", *words["yes"][:5], env_home=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run_cli("voice", "list", "--json", env_home=tmp_path)
    listed = json.loads(r.stdout)
    assert listed["commands"] == [{"index": 0, "command": "lamp on", "takes": 5}]
    folder = tmp_path / "clips"
    folder.mkdir()
    for i, p in enumerate([*words["yes"][:2], words["_silence_"][0]]):
        (folder / f"{i}_{p.name}").write_bytes(p.read_bytes())
    (folder / "zz_broken.flac").write_bytes(b"fLaC not really")
    r = run_cli("voice", "run", "--source", folder, "--json", env_home=tmp_path)
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert r.returncode == 1 and len(rows) == 4
    assert [row.get("command") for row in rows[:3]] == ["lamp on", "lamp on", None]
    assert set(rows[0]) >= {"path", "command", "score"}
    assert "error" in rows[3] and "Traceback" not in r.stderr
    r = run_cli("voice", "run", "--source", words["yes"][2], "--json", env_home=tmp_path)
    (event,) = [json.loads(line) for line in r.stdout.splitlines()]
    assert event["command"] == "lamp on" and event["counter"] == 1
    r = run_cli("voice", "erase", env_home=tmp_path)
    assert r.returncode == 0 and "erased" in r.stdout
    r = run_cli("voice", "run", "--source", folder, env_home=tmp_path)
    assert r.returncode == 1 and "no commands are enrolled" in r.stderr


def test_voice_without_its_model_says_so_in_one_line(tmp_path):
    """An empty model cache and the upstream host out of reach (a dead proxy): enrolling
    stops with one line naming the command that fetches the DS-CNN, and nothing else."""
    import os

    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path), MLSENSORS_MODEL_DIR=str(tmp_path / "m"),
               https_proxy="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9")
    r = subprocess.run([sys.executable, "-m", "mlsensors", "voice", "enroll", "--command",
                        "lamp on", str(tmp_path / "take.wav")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1 and r.stdout == ""
    (line,) = r.stderr.splitlines()
    assert f"`mlsensors models fetch {MODEL}`" in line and "Traceback" not in r.stderr
