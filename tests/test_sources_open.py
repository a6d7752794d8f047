"""open_source: what each kind of name opens, and the message for names it cannot."""

from __future__ import annotations

import pytest

import mlsensors.sources as sources
from mlsensors.errors import SourceError
from mlsensors.sources import (
    DemoSource,
    FolderSource,
    ImageSource,
    find_camera,
    open_source,
)


def test_no_name_without_a_camera_opens_the_demo(monkeypatch):
    monkeypatch.setattr(sources, "find_camera", lambda: None)
    with open_source() as source:
        assert isinstance(source, DemoSource)


def test_find_camera_passes_over_devices_that_give_no_picture(monkeypatch):
    monkeypatch.setattr(sources.glob, "glob", lambda pattern: ["/dev/video61", "/dev/video-x"])
    assert find_camera() is None


def test_no_name_prefers_a_working_camera(monkeypatch):
    opened = []

    def fake_camera(number):
        opened.append(number)
        if number == 2:
            raise SourceError("not a camera")
        return f"camera {number}"

    monkeypatch.setattr(sources.glob, "glob", lambda pattern: ["/dev/video10", "/dev/video2"])
    monkeypatch.setattr(sources, "CameraSource", fake_camera)
    assert open_source() == "camera 10"
    assert opened == [2, 10]


@pytest.mark.parametrize("spec", ["camera:9", "/dev/video9"])
def test_camera_names(monkeypatch, spec):
    seen = []
    monkeypatch.setattr(sources, "CameraSource", lambda number: seen.append(number) or number)
    assert open_source(spec) == 9 and seen == [9]


def test_paths(data_dir):
    folder = data_dir / "faces" / "dlib_training"
    with open_source(folder) as source:
        assert isinstance(source, FolderSource) and source.name == str(folder)
    with open_source(str(folder / "dogs.jpg")) as source:
        assert isinstance(source, ImageSource)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("camera:one", "camera:N"),
        ("camera", "camera:N"),
        ("", "empty source name"),
        ("   ", "empty source name"),
        ("/no/such/place.jpg", "/no/such/place.jpg: no such file or folder"),
        ("camera:57", "camera:57: cannot open the camera"),
    ],
)
def test_bad_names_give_one_line_source_errors(spec, words):
    with pytest.raises(SourceError) as caught:
        open_source(spec)
    assert words in str(caught.value) and "\n" not in str(caught.value)
