"""The real detector (LiteRT + pinned BlazeFace) on real photographs with ground truth."""

import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest

from mlsensors.errors import InputError, ModelError
from mlsensors.types import Keypoint
from mlsensors.vision.detector import FaceDetector, tile_regions
from mlsensors.vision.suppress import iou_matrix


@pytest.fixture(scope="module")
def detector(model_store):
    return FaceDetector("full", store=model_store)


def _rgb(path):
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _matched(truth, found):
    """Ground-truth box matched by IoU ≥ 0.3 or by the detection's centre inside it."""
    if not found:
        return np.zeros(len(truth), bool), np.zeros(0, bool)
    boxes = np.array([f.box for f in found], np.float32)
    hit = iou_matrix(truth, boxes) >= 0.3
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    inside = ((cx[None] >= truth[:, None, 0]) & (cx[None] <= truth[:, None, 2])
              & (cy[None] >= truth[:, None, 1]) & (cy[None] <= truth[:, None, 3]))
    hit |= inside
    return hit.any(axis=1), hit.any(axis=0)


@pytest.mark.data
def test_dlib_training_all_faces_no_false_positives(detector, data_dir):
    folder = data_dir / "faces" / "dlib_training"
    total = found_total = 0
    for image in ET.parse(folder / "training.xml").getroot().iter("image"):
        truth = np.array([
            (int(b.get("left")), int(b.get("top")),
             int(b.get("left")) + int(b.get("width")), int(b.get("top")) + int(b.get("height")))
            for b in image.iter("box")], np.float32)
        faces = detector.detect(_rgb(folder / image.get("file")))
        truth_hit, face_hit = _matched(truth, faces)
        assert face_hit.all(), f"false positive in {image.get('file')}"
        total += len(truth)
        found_total += int(truth_hit.sum())
    assert (found_total, total) == (18, 18)
    assert detector.detect(_rgb(folder / "dogs.jpg")) == []


@pytest.mark.data
@pytest.mark.parametrize("name, count", [
    ("obama.jpg", 1), ("obama2.jpg", 1), ("biden.jpg", 1), ("alex-lacamoire.png", 1),
    ("lin-manuel-miranda.png", 1), ("obama_small.jpg", 1), ("obama-240p.jpg", 1),
    ("obama-480p.jpg", 1), ("obama-720p.jpg", 1), ("obama-1080p.jpg", 1),
    ("two_people.jpg", 2),
])
def test_portraits(detector, data_dir, name, count):
    faces = detector.detect(_rgb(data_dir / "faces" / "face_recognition_examples" / name))
    assert len(faces) == count
    assert all(0.6 <= f.score <= 1 for f in faces)


@pytest.mark.data
def test_keypoints_are_named_from_the_subjects_view(detector, data_dir):
    (face,) = detector.detect(_rgb(data_dir / "faces" / "face_recognition_examples" /
                                   "obama.jpg"))
    x = {k: face.keypoint(k)[0] for k in face.landmarks}
    # unmirrored photo: the subject's right eye and ear appear on the image's left
    assert x[Keypoint.RIGHT_EAR] < x[Keypoint.RIGHT_EYE] < x[Keypoint.NOSE_TIP]
    assert x[Keypoint.NOSE_TIP] < x[Keypoint.LEFT_EYE] < x[Keypoint.LEFT_EAR]
    assert face.keypoint(Keypoint.MOUTH)[1] > face.keypoint(Keypoint.NOSE_TIP)[1]
    assert face.facing
    x0, y0, x1, y1 = face.box
    assert all(x0 <= px <= x1 and y0 <= py <= y1 for px, py in face.keypoints[:4])


@pytest.mark.data
def test_mirrored_photo_swaps_sides_and_boxes(detector, data_dir):
    image = _rgb(data_dir / "faces" / "face_recognition_examples" / "obama.jpg")
    (face,) = detector.detect(image)
    (mirror,) = detector.detect(np.ascontiguousarray(image[:, ::-1]))
    width = image.shape[1]
    assert mirror.box[0] == pytest.approx(width - face.box[2], abs=8)
    assert mirror.keypoint(Keypoint.RIGHT_EYE)[0] < mirror.keypoint(Keypoint.LEFT_EYE)[0]


@pytest.mark.data
def test_short_range_model_on_a_close_portrait(model_store, data_dir):
    short = FaceDetector("short", store=model_store)
    faces = short.detect(_rgb(data_dir / "faces" / "face_recognition_examples" /
                              "obama-480p.jpg"))
    assert len(faces) == 1


def test_blank_and_tiny_images_have_no_faces(detector):
    assert detector.detect(np.zeros((480, 640, 3), np.uint8)) == []
    assert detector.detect(np.full((1, 1, 3), 200, np.uint8)) == []


def test_wrong_input_is_a_typed_error(detector):
    with pytest.raises(InputError):
        detector.detect(np.zeros((10, 10), np.uint8))
    with pytest.raises(InputError):
        detector.detect(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(ModelError):
        FaceDetector("huge")
    with pytest.raises(InputError):
        FaceDetector(score_threshold=0)


def test_tiles_cover_the_image_with_overlap():
    regions = tile_regions(600, 300)
    assert len(regions) == 4
    assert min(r[0] for r in regions) == 0 and max(r[2] for r in regions) == 600
    assert min(r[1] for r in regions) == 0 and max(r[3] for r in regions) == 300
    assert regions[0][2] - regions[1][0] == 200 and regions[0][3] - regions[2][1] == 100
