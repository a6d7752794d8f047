"""The Person Sensor loop end to end: real source, real detector, real results."""

import json
import threading

import numpy as np
import pytest

from mlsensors.cli.main import main
from mlsensors.hub import Hub
from mlsensors.person.sensor import PersonSensor, SensorOptions, person_face, to_unit_255
from mlsensors.sources import DemoSource
from mlsensors.types import Face, Frame, PersonResult, SourceGap


def _face(box, score=0.9, facing=True):
    return Face(box, score, ((0.0, 0.0),) * 6, facing, 1.0 if facing else 0.0)


def test_pixels_to_record_units():
    assert to_unit_255(0, 640) == 0
    assert to_unit_255(640, 640) == 255
    assert to_unit_255(320, 640) == 128
    assert to_unit_255(-5, 640) == 0 and to_unit_255(700, 640) == 255
    pf = person_face(_face((64, 48, 320, 240), 0.876), 640, 480)
    assert pf.box == (26, 26, 128, 128) and pf.confidence == 88 and pf.is_facing
    assert (pf.id, pf.id_confidence) == (-1, 0)


class _Frames:
    """A source that replays given items (a test double for the source, not the detector)."""

    name = "list"

    def __init__(self, items):
        self.items = items

    def frames(self):
        yield from self.items

    def close(self):
        pass


class _FixedDetector:
    def __init__(self, faces):
        self.faces = faces

    def detect(self, image):
        return list(self.faces)


def test_keeps_four_largest_faces_largest_first():
    faces = [_face((0, 0, s, s)) for s in (10, 50, 20, 40, 30, 5)]
    frame = Frame(np.zeros((100, 100, 3), np.uint8), 0, 0.0)
    sensor = PersonSensor(_Frames([frame]), detector=_FixedDetector(faces))
    (result,) = list(sensor)
    assert [f.box[2] for f in result.faces] == [128, 102, 77, 51]


def test_source_gap_reports_no_faces_never_stale_ones():
    frame = Frame(np.zeros((100, 100, 3), np.uint8), 0, 0.0)
    items = [frame, SourceGap(0.0, "camera unplugged"), frame]
    sensor = PersonSensor(_Frames(items), detector=_FixedDetector([_face((0, 0, 50, 50))]))
    assert [r.num_faces for r in sensor] == [1, 0, 1]
    hub = Hub()
    seen = []
    hub.subscribe(lambda s: seen.append((s.result.num_faces, s.status.state)))
    sensor = PersonSensor(_Frames(items), detector=_FixedDetector([_face((0, 0, 50, 50))]))
    sensor.run(hub, threading.Event())
    assert (1, "running") in seen and (0, "fault") in seen
    assert seen[-1] == (0, "stopped")
    assert seen.index((0, "fault")) < len(seen) - 2 and seen[-2] == (1, "running")


@pytest.fixture(scope="module")
def demo_results(model_store):
    demo = DemoSource()
    sensor = PersonSensor(demo, SensorOptions())
    results = []
    for result in sensor:
        results.append(result)
        if len(results) == 180:
            break
    return demo, results


def test_demo_presence_follows_the_face(demo_results):
    demo, results = demo_results
    visible = [demo.face_visible(i) for i in range(len(results))]
    present = [r.num_faces > 0 for r in results]
    agree = sum(v == p for v, p in zip(visible, present, strict=True)) / len(results)
    assert agree >= 0.95, agree
    assert any(present) and not all(present)
    assert all(r.num_faces <= 1 for r in results)


def test_demo_boxes_track_the_known_geometry(demo_results):
    demo, results = demo_results
    checked = 0
    for i, r in enumerate(results):
        if r.num_faces == 1 and demo.face_fraction(i) == 1.0:
            x0, y0, x1, y1 = demo.face_box(i)
            cx = to_unit_255((x0 + x1) / 2, demo.width)
            cy = to_unit_255((y0 + y1) / 2, demo.height)
            box = r.faces[0].box
            assert box[0] <= cx <= box[2] and box[1] <= cy <= box[3], (i, box, cx, cy)
            checked += 1
    assert checked > 60


def test_standby_and_single_shot(model_store):
    hub = Hub()
    stop = threading.Event()
    sensor = PersonSensor(DemoSource(), SensorOptions())
    sensor.set_continuous(False)
    thread = threading.Thread(target=sensor.run, args=(hub, stop))
    thread.start()
    try:
        got = threading.Event()
        hub.subscribe(lambda s: got.set() if s.status.frames == 1 else None)
        assert not got.wait(0.5) and sensor.frames_processed == 0
        sensor.single_shot()
        assert got.wait(10)
        assert hub.snapshot().result.num_faces == 1
        assert hub.snapshot().status.state == "standby"
        sensor.set_continuous(True)
        deadline = threading.Event()
        deadline.wait(1.0)
        assert sensor.frames_processed > 1
    finally:
        stop.set()
        thread.join(10)
    assert hub.snapshot().status.state == "stopped"
    assert hub.snapshot().result == PersonResult(hub.snapshot().result.timestamp, (),
                                                 hub.snapshot().result.frame_index)


def test_person_run_cli_json(model_store, capsys):
    assert main(["person", "run", "--source", "demo", "--frames", "3", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    first = json.loads(lines[0])
    assert first["frame"] == 0 and first["num_faces"] == 1
    face = first["faces"][0]
    assert set(face) == {"box", "confidence", "is_facing", "id", "id_confidence"}
    assert face["id"] == -1 and 60 <= face["confidence"] <= 100


def test_person_run_cli_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit) as e:
        main(["person", "run", "--frames", "0"])
    assert e.value.code == 2
    assert main(["person", "run", "--source", "/no/such/file.jpg", "--frames", "1"]) == 1
    err = capsys.readouterr().err
    assert "no such file" in err and "Traceback" not in err
