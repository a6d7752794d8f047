"""The guard against real sealed children, well-behaved and hostile.

Every child here is the real `mlsensors.privacy.child`, sealed for real; only its work
function is a stand-in from privacy_children.py, some of which write straight to the
record pipe like a compromised sensing process would.
"""

from __future__ import annotations

import itertools
import os
import shutil
import time

import pytest
from guard_helpers import Recorder, child_path  # noqa: F401  (child_path: autouse)

from mlsensors.errors import InputError, ProtocolError
from mlsensors.hub import Hub, RegisterWrite
from mlsensors.privacy.child import ChildConfig
from mlsensors.privacy.guard import Guard, GuardTiming
from mlsensors.privacy.logfilter import BURST
from mlsensors.privacy.sealed import SealedSensor
from mlsensors.wire.record import RECORD_SIZE, unpack_record

FAST = GuardTiming(startup_timeout=20.0, watchdog=1.5, backoff_first=0.1, backoff_max=0.4)
RATE = 20.0


def run_guard(work: str, seconds: float, rate: float = RATE, timing: GuardTiming = FAST,
              until=None):
    hub = Hub()
    rec = Recorder(hub)
    guard = Guard(hub, ChildConfig(-1, -1, work=f"privacy_children:{work}",
                                   memory_bytes=1 << 30), max_rate=rate, timing=timing)
    guard.start()
    t0 = time.monotonic()
    try:
        deadline = t0 + seconds
        while time.monotonic() < deadline and not (until and until(guard, hub)):
            time.sleep(0.05)
        pid = guard.child_pid
        stats = guard.stats()
        ns = os.readlink(f"/proc/{pid}/ns/net") if pid and os.path.exists(f"/proc/{pid}") \
            else None
    finally:
        guard.stop()
    return hub, rec, stats, time.monotonic() - t0, ns, guard


def assert_within_rate(rec: Recorder, rate: float):
    times = rec.ticks()
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # the guard spaces its ticks by >= 1/rate and stamps each result with its tick
    assert not gaps or min(gaps) >= 0.999 / rate, f"two records {min(gaps):.4f} s apart"
    for i, t in enumerate(times):
        in_window = sum(1 for u in times[i:] if u < t + 1.0)
        assert in_window <= rate + 1, f"{in_window} records within 1 s at rate {rate}"


def test_steady_child_is_published_at_the_capped_rate():
    hub, rec, stats, _elapsed, ns, _ = run_guard("steady", 3.0, rate=10.0)
    assert ns is not None and ns != os.readlink("/proc/self/ns/net")
    results = rec.results()
    assert len(results) >= 10
    assert_within_rate(rec, 10.0)
    assert stats.over_rate > 0  # the child makes ~50/s; most are dropped
    assert all(len(s.record) == RECORD_SIZE for _, s in results)
    last = hub.snapshot()
    assert last.status.sealed and last.status.state == "running"
    assert last.result.faces[0].box == (10, 20, 110, 140)
    assert [s.result.frame_index for _, s in results] == list(range(1, len(results) + 1))


def test_flood_never_exceeds_the_rate():
    _hub, rec, stats, elapsed, _, _ = run_guard("flood", 2.5)
    assert_within_rate(rec, RATE)
    assert stats.published <= RATE * elapsed + 1
    assert stats.over_rate > 1000


@pytest.mark.parametrize("work", ["garbage", "hostile_fields"])
def test_malformed_input_never_gets_through(work):
    _hub, rec, stats, _elapsed, _, _ = run_guard(work, 2.5)
    assert stats.malformed > 0
    assert_within_rate(rec, RATE)
    for _, snap in rec.snaps:
        unpack_record(snap.record)  # everything published is a valid record...
        for face in snap.result.faces:  # ...and only the child's one honest face
            assert face.box == (10, 20, 110, 140) and face.confidence == 90


def test_crash_goes_to_fault_without_stale_faces_and_restarts():
    _hub, rec, stats, _, _, _ = run_guard(
        "crash_after_faces", 8.0, until=lambda g, h: g.stats().restarts >= 3)
    assert stats.crashes >= 3 and stats.restarts >= 3 and stats.last_exit == 9
    faults = [i for i, (_, s) in enumerate(rec.snaps) if s.status.state == "fault"]
    assert faults
    for i in faults:
        assert rec.snaps[i][1].result.faces == ()
        assert "exited with status 9" in rec.snaps[i][1].status.detail
    # after a crash, faces come back only from a fresh child's new results
    first_fault = faults[0]
    later = [s for _, s in rec.snaps[first_fault:] if s.result.faces]
    assert all(s.status.state == "running" for s in later)
    assert any("crash loop" in s.status.detail for _, s in rec.snaps)


def test_hang_is_killed_by_the_watchdog():
    _hub, rec, stats, _, _, _ = run_guard(
        "hang_after_faces", 10.0, until=lambda g, h: g.stats().hangs >= 1)
    assert stats.hangs >= 1
    fault = [s for _, s in rec.snaps if s.status.state == "fault"]
    assert fault and all(s.result.faces == () for s in fault)
    # the stall is a fault (no faces) before the watchdog, and the watchdog still kills
    assert "no frame" in fault[0].status.detail
    assert any("hung" in s.status.detail for s in fault)


def test_child_output_is_filtered():
    _, _, stats, _, _, guard = run_guard(  # until, not for 2 s: a loaded machine
        "noisy_logs", 20.0, until=lambda g, h: g.stats().log_lines_dropped > 0)
    lines = list(guard.logs.lines)
    assert stats.log_lines_dropped > 0
    assert not any("[" in line and "," in line for line in lines)
    assert not any("dtype" in line for line in lines)
    assert len(lines) <= BURST


def _confidence(hub: Hub, want: int, timeout: float = 20) -> bool:
    """Wait until echo_commands reports `want` as its face's confidence."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        faces = hub.snapshot().result.faces
        if faces and faces[0].confidence == want:
            return True
        time.sleep(0.05)
    return False


def test_register_writes_are_checked_then_forwarded():
    hub = Hub()
    guard = Guard(hub, ChildConfig(-1, -1, work="privacy_children:echo_commands",
                                   memory_bytes=1 << 30), max_rate=RATE, timing=FAST)
    with guard:
        deadline = time.monotonic() + 20
        while hub.snapshot().status.state != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(ProtocolError, match="unknown register"):
            hub.command(RegisterWrite(0x42, 1))
        with pytest.raises(ProtocolError, match="not valid"):
            hub.command(RegisterWrite(0x01, 7))
        hub.command(RegisterWrite(0x04, 3))
        assert _confidence(hub, 43, timeout=5)


def test_settings_survive_a_restart_of_the_child_and_triggers_do_not():
    hub = Hub()
    guard = Guard(hub, ChildConfig(-1, -1, work="privacy_children:echo_commands",
                                   memory_bytes=1 << 30), max_rate=RATE, timing=FAST)
    with guard:
        assert _confidence(hub, 50)
        hub.command(RegisterWrite(0x07, 0))  # DEBUG_MODE=0: a setting
        assert _confidence(hub, 70)
        hub.command(RegisterWrite(0x06, 1))  # ERASE_IDS: a trigger, never replayed
        assert _confidence(hub, 61)
        first = guard.child_pid
        os.kill(first, 9)
        deadline = time.monotonic() + 20
        while guard.child_pid in (0, first) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert guard.child_pid not in (0, first)
        assert _confidence(hub, 70), "the new child got DEBUG_MODE=0 again, not ERASE_IDS"


def test_insecure_child_is_reported_unsealed():
    hub = Hub()
    guard = Guard(hub, ChildConfig(-1, -1, work="privacy_children:steady", insecure=True),
                  max_rate=RATE, timing=FAST)
    with guard:
        deadline = time.monotonic() + 20
        while hub.snapshot().status.state != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        pid = guard.child_pid
        assert os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net")
        assert hub.snapshot().status.sealed is False
        assert "NOT sealed" in " ".join(guard.logs.lines)


def test_a_tampered_model_is_refused_inside_the_sandbox(tmp_path, monkeypatch, model_store):
    for name in ("face_detection_full_range.tflite", "face_detection_short_range.tflite"):
        shutil.copy(model_store.path(name), tmp_path / name)
    target = tmp_path / "face_detection_full_range.tflite"
    target.chmod(0o644)
    data = bytearray(target.read_bytes())
    data[1000] ^= 0xFF
    target.write_bytes(bytes(data))
    monkeypatch.setenv("MLSENSORS_MODEL_DIR", str(tmp_path))
    hub = Hub()
    rec = Recorder(hub)
    sensor = SealedSensor(hub, "demo", timing=FAST)
    with sensor:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
                "model_error" in s.status.detail or "exited" in s.status.detail
                for _, s in rec.snaps):
            time.sleep(0.1)
        lines = " ".join(sensor.guard.logs.lines)
    assert any("model_error" in s.status.detail for _, s in rec.snaps), lines
    assert "does not match its pinned hash" in lines
    assert not any(s.result.faces for _, s in rec.snaps)


def test_real_sensor_runs_sealed_and_obeys_mode(model_store):
    hub = Hub()
    rec = Recorder(hub)
    with SealedSensor(hub, "demo", max_rate=10.0, timing=FAST) as sensor:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(rec.results()) < 5:
            time.sleep(0.05)
        assert len(rec.results()) >= 5, sensor.guard.logs.lines
        assert any(s.result.faces for _, s in rec.results())  # the demo shows faces
        hub.command(RegisterWrite(0x01, 0))
        deadline = time.monotonic() + 5
        while hub.snapshot().status.state != "standby" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert hub.snapshot().status.state == "standby"
    assert_within_rate(rec, 10.0)


def test_bad_sources_and_rates_are_one_line_errors():
    with pytest.raises(InputError, match="does not exist"):
        SealedSensor(Hub(), "/no/such/file.jpg")
    with pytest.raises(InputError, match="camera:N"):
        SealedSensor(Hub(), "camera:x")
    with pytest.raises(ProtocolError, match="max rate"):
        SealedSensor(Hub(), "demo", max_rate=0)


def test_a_finite_source_ends_cleanly_without_restart(tmp_path, model_store, data_dir):
    folder = tmp_path / "photos"
    folder.mkdir()
    examples = data_dir / "faces" / "face_recognition_examples"
    for name in ("obama.jpg", "biden.jpg"):
        shutil.copy(examples / name, folder / name)
    hub = Hub()
    rec = Recorder(hub)
    with SealedSensor(hub, str(folder), timing=FAST) as sensor:
        deadline = time.monotonic() + 30
        while hub.snapshot().status.state != "stopped" and time.monotonic() < deadline:
            time.sleep(0.05)
        stats = sensor.stats()
    assert hub.snapshot().status.state == "stopped"
    assert stats.crashes == 0 and stats.restarts == 0
    # two unpaced photos may fall within one tick: then only the newer passes the cap
    assert 1 <= sum(bool(s.result.faces) for _, s in rec.results()) <= 2


def test_a_child_that_stops_reading_commands_cannot_block_a_transport():
    hub = Hub()
    guard = Guard(hub, ChildConfig(-1, -1, work="privacy_children:deaf",
                                   memory_bytes=1 << 30), max_rate=RATE, timing=FAST)
    with guard:
        deadline = time.monotonic() + 20
        while hub.snapshot().status.state != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        start = time.monotonic()
        with pytest.raises(ProtocolError, match="not taking commands"):
            for _ in range(100_000):  # a pipe holds 32,768 two-byte writes
                hub.command(RegisterWrite(0x01, 1))
        assert time.monotonic() - start < 10
        assert hub.snapshot().status.state == "running"


def test_a_child_that_cannot_start_is_a_visible_fault(tmp_path):
    hub = Hub()
    guard = Guard(hub, ChildConfig(-1, -1, work="privacy_children:steady"), max_rate=RATE,
                  timing=FAST, python=str(tmp_path / "no-python"))
    with guard:
        deadline = time.monotonic() + 5
        while guard.stats().crashes < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert guard.stats().crashes >= 2
    assert hub.snapshot().status.state == "fault"
    assert "could not be started" in hub.snapshot().status.detail
