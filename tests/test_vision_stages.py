"""Each vision stage alone, against hand-computed cases and degenerate inputs."""

import math

import numpy as np
import pytest

from mlsensors.errors import InputError
from mlsensors.vision.anchors import FULL_RANGE, SHORT_RANGE, AnchorOptions, generate_anchors
from mlsensors.vision.decode import Candidates, decode
from mlsensors.vision.facing import FACING_THRESHOLD, facing_scores, yaw_degrees
from mlsensors.vision.preprocess import Letterbox, check_image, letterbox_into
from mlsensors.vision.suppress import iou_matrix, weighted_nms


def test_anchor_counts_match_mediapipe():
    assert generate_anchors(FULL_RANGE).shape == (2304, 2)
    assert generate_anchors(SHORT_RANGE).shape == (896, 2)


def test_anchor_order_is_y_then_x_then_anchor():
    a = generate_anchors(FULL_RANGE)
    assert a[0] == pytest.approx([0.5 / 48, 0.5 / 48])
    assert a[1] == pytest.approx([1.5 / 48, 0.5 / 48])
    assert a[48] == pytest.approx([0.5 / 48, 1.5 / 48])
    s = generate_anchors(SHORT_RANGE)
    # stride 8: 16×16 cells, 2 anchors each at the same centre
    assert s[0] == pytest.approx(s[1]) and s[0] == pytest.approx([1 / 32, 1 / 32])
    # the three stride-16 layers merge: 8×8 cells with 6 anchors each
    assert s[512] == pytest.approx([1 / 16, 1 / 16])
    assert (s[512:518] == s[512]).all() and s[518] == pytest.approx([3 / 16, 1 / 16])


def test_anchor_offset_and_uneven_input():
    a = generate_anchors(AnchorOptions(input_size=10, strides=(4,), anchors_per_layer=1,
                                       anchor_offset=0.0))
    assert a.shape == (9, 2)  # ceil(10 / 4) = 3 per side
    assert a[4] == pytest.approx([1 / 3, 1 / 3])


def _raw(n=4):
    return np.zeros((n, 16), np.float32), np.full((n,), -10.0, np.float32)


def test_decode_hand_computed():
    anchors = np.array([[0.25, 0.5], [0.75, 0.5]], np.float32)
    boxes, scores = _raw(2)
    boxes[1, :4] = [19.2, -9.6, 38.4, 19.2]  # in 192-pixel units
    boxes[1, 4:6] = [-19.2, 0.0]
    scores[1] = 2.0
    c = decode(boxes, scores, anchors, input_size=192, score_threshold=0.6)
    assert len(c) == 1
    cx, cy, w, h = 0.75 + 0.1, 0.5 - 0.05, 0.2, 0.1
    assert c.boxes[0] == pytest.approx([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    assert c.keypoints[0, 0] == pytest.approx([0.65, 0.5])
    assert c.keypoints[0, 1] == pytest.approx([0.75, 0.5])
    assert c.scores[0] == pytest.approx(1 / (1 + math.exp(-2.0)))


def test_decode_threshold_is_inclusive_and_clips_scores():
    anchors = np.zeros((3, 2), np.float32)
    boxes, scores = _raw(3)
    boxes[:, 2:4] = 10
    scores[:] = [math.log(0.6 / 0.4) + 1e-4, 1e9, math.log(0.6 / 0.4) - 1e-3]
    c = decode(boxes, scores, anchors, 192, 0.6)
    assert len(c) == 2
    assert c.scores.max() == pytest.approx(1 / (1 + math.exp(-100)))


def test_decode_drops_negative_and_nan_sizes():
    anchors = np.zeros((3, 2), np.float32)
    boxes, scores = _raw(3)
    scores[:] = 5
    boxes[0, 2:4] = [-1, 5]
    boxes[1, 2:4] = [np.nan, 5]
    boxes[2, 2:4] = [5, 5]
    boxes[2, 6] = np.inf
    assert len(decode(boxes, scores, anchors, 192, 0.5)) == 0


def test_decode_nothing_and_bad_shapes():
    anchors = np.zeros((4, 2), np.float32)
    boxes, scores = _raw(4)
    assert len(decode(boxes, scores, anchors, 192, 0.5)) == 0
    with pytest.raises(InputError, match="anchors"):
        decode(boxes[:3], scores[:3], anchors, 192, 0.5)
    with pytest.raises(InputError, match="threshold"):
        decode(boxes, scores, anchors, 192, 1.5)


def _cands(boxes, scores, kp=None):
    boxes = np.asarray(boxes, np.float32)
    if kp is None:
        kp = np.repeat(boxes[:, None, :2], 6, axis=1)
    return Candidates(boxes, np.asarray(kp, np.float32), np.asarray(scores, np.float32))


def test_iou_hand_computed_and_empty_union():
    a = np.array([[0, 0, 2, 2]], np.float32)
    b = np.array([[1, 1, 3, 3], [5, 5, 5, 5]], np.float32)
    assert iou_matrix(a, b)[0] == pytest.approx([1 / 7, 0.0])


def test_weighted_nms_merges_cluster_with_score_weights():
    c = _cands([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], [0.9, 0.6, 0.7])
    out = weighted_nms(c, 0.3)
    assert len(out) == 2
    assert out.scores.tolist() == pytest.approx([0.9, 0.7])
    assert out.boxes[0] == pytest.approx([0.6 / 1.5, 0, 10 + 0.6 / 1.5, 10])
    assert out.boxes[1] == pytest.approx([50, 50, 60, 60])


def test_weighted_nms_threshold_is_strict():
    # IoU of these two boxes is exactly 1/3 > 0.3, and exactly 0.5 when tested at 0.5
    c = _cands([[0, 0, 2, 1], [1, 0, 3, 1]], [0.9, 0.8])
    assert len(weighted_nms(c, 0.3)) == 1
    c = _cands([[0, 0, 3, 1], [1, 0, 3, 1]], [0.9, 0.8])  # IoU 2/3
    assert len(weighted_nms(c, 2 / 3)) == 2


def test_weighted_nms_degenerate_inputs():
    assert len(weighted_nms(Candidates.empty())) == 0
    same = _cands([[0, 0, 10, 10]] * 5, [0.7] * 5)
    out = weighted_nms(same)
    assert len(out) == 1 and out.boxes[0] == pytest.approx([0, 0, 10, 10])
    flat = _cands([[0, 0, 0, 0], [0, 0, 0, 0]], [0.8, 0.7])
    assert len(weighted_nms(flat)) == 2  # zero area: no overlap, each its own cluster


def test_letterbox_geometry_and_fill():
    out = np.zeros((8, 8, 3), np.float32)
    image = np.full((2, 4, 3), 255, np.uint8)
    box = letterbox_into(image, out)
    assert (box.left, box.top, box.width, box.height) == (0, 2, 8, 4)
    assert (out[2:6] == 1.0).all() and (out[:2] == -1.0).all() and (out[6:] == -1.0).all()
    pts = box.to_pixels(np.array([[0.0, 0.25], [1.0, 0.75]], np.float32))
    assert pts == pytest.approx(np.array([[0, 0], [4, 2]]))


def test_letterbox_tall_image_and_value_range():
    out = np.zeros((4, 4, 3), np.float32)
    image = np.zeros((8, 2, 3), np.uint8)
    image[..., 0] = 0
    image[..., 1] = 128
    image[..., 2] = 255
    box = letterbox_into(image, out)
    assert box == Letterbox(4, 2, 8, 1, 0, 1, 4)
    assert out[0, 1] == pytest.approx([-1.0, 128 / 127.5 - 1, 1.0], abs=1e-6)
    assert (out[:, 0] == -1).all() and (out[:, 2:] == -1).all()


@pytest.mark.parametrize("bad, match", [
    (np.zeros((0, 4, 3), np.uint8), "zero size"),
    (np.zeros((4, 4), np.uint8), "shape"),
    (np.zeros((4, 4, 4), np.uint8), "shape"),
    (np.zeros((4, 4, 3), np.float32), "dtype"),
    ([[1, 2, 3]], "numpy array"),
])
def test_bad_images_are_named(bad, match):
    with pytest.raises(InputError, match=match):
        check_image(bad)


def _face_keypoints(nose_x, right_ear_x=-1.0, left_ear_x=1.0):
    kp = np.zeros((1, 6, 2), np.float32)
    kp[0, 0] = [-0.4, 0]
    kp[0, 1] = [0.4, 0]
    kp[0, 2] = [nose_x, 0.2]
    kp[0, 4] = [right_ear_x, 0]
    kp[0, 5] = [left_ear_x, 0]
    return kp


def test_facing_from_yaw():
    assert yaw_degrees(_face_keypoints(0.0))[0] == pytest.approx(0)
    assert yaw_degrees(_face_keypoints(math.tan(math.radians(20))))[0] == pytest.approx(20)
    assert yaw_degrees(_face_keypoints(-1.0))[0] == pytest.approx(-45)
    assert facing_scores(_face_keypoints(0.0))[0] == pytest.approx(1.0)
    assert facing_scores(_face_keypoints(math.tan(math.radians(29))))[0] >= FACING_THRESHOLD
    assert facing_scores(_face_keypoints(math.tan(math.radians(31))))[0] < FACING_THRESHOLD
    # a mirrored image (ears swapped) gives the same magnitude
    assert facing_scores(_face_keypoints(0.3, 1.0, -1.0))[0] == pytest.approx(
        facing_scores(_face_keypoints(0.3))[0])
    assert facing_scores(_face_keypoints(0.0, 0.5, 0.5))[0] == 0.0


def test_closeups_mirror_and_expected_boxes():
    """A close-up is the square three times the box, centred on it; its mirror image's
    expected box is the mirrored one; scores average over a candidate's views."""
    from mlsensors.vision.closeup import closeups

    image = np.zeros((200, 300, 3), np.uint8)
    image[90:110, 40:60] = 255  # a 20-px white square: the "face"
    image[90:110, 60:70, 0] = 0  # its right part without red: mirrored, it differs
    views = closeups(image, np.array([[40, 90, 70, 110]], np.float32), 90)
    assert views.crops.shape == (2, 90, 90, 3) and views.count == 1
    x0, y0, x1, y1 = views.expected[0]
    assert (x0, y0, x1, y1) == pytest.approx((30, 35, 60, 55))
    assert tuple(views.expected[1]) == pytest.approx((90 - x1, y0, 90 - x0, y1))
    assert np.array_equal(views.crops[1], views.crops[0][:, ::-1])
    assert views.per_candidate(np.array([0.2, 0.6], np.float32)) == pytest.approx([0.4])


def test_retinaface_priors_match_its_outputs_and_find_a_portrait(model_store, data_dir):
    """Our decode of RetinaFace (priors in the network's output order) puts the face
    where YuNet and BlazeFace put it, with its eyes inside the box."""
    from mlsensors.models.manifest import DETECTOR_MODELS
    from mlsensors.sources import read_image
    from mlsensors.vision.detector import FaceDetector
    from mlsensors.vision.retinaface import RetinaFaceModel, priors
    from mlsensors.vision.suppress import hard_nms, iou_matrix

    assert len(priors(160, 96)) == 2 * (20 * 12 + 10 * 6 + 5 * 3)
    model = RetinaFaceModel(model_store.load_bytes(DETECTOR_MODELS["retinaface"]), 1)
    image = read_image(data_dir / "faces" / "face_recognition_examples" / "obama_small.jpg")
    (found,) = model.run(image[None], 0.5)
    found = hard_nms(found, 0.4)
    (reference,) = FaceDetector("full", store=model_store).detect(image)
    assert len(found) == 1
    assert iou_matrix(found.boxes, np.array([reference.box], np.float32))[0, 0] >= 0.5
    x0, y0, x1, y1 = found.boxes[0]
    eyes = found.keypoints[0, :2]
    assert ((eyes[:, 0] > x0) & (eyes[:, 0] < x1) & (eyes[:, 1] > y0) & (eyes[:, 1] < y1)).all()
