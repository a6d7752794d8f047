"""The command line as a user meets it: output formats, exit codes, one-line errors."""

import json
import subprocess
import sys

import pytest

from mlsensors.cli.main import main


def _run(*args):
    return subprocess.run([sys.executable, "-m", "mlsensors", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.data
def test_detect_json_one_object_per_input_and_continues_after_errors(tmp_path, data_dir,
                                                                     model_store, capsys):
    portraits = data_dir / "faces" / "face_recognition_examples"
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    code = main(["detect", "--json", str(portraits / "two_people.jpg"), str(broken),
                 str(portraits / "obama-240p.jpg")])
    assert code == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["path"] for line in lines] == [
        str(portraits / "two_people.jpg"), str(broken), str(portraits / "obama-240p.jpg")]
    assert len(lines[0]["faces"]) == 2 and (lines[0]["width"], lines[0]["height"]) == (1126, 661)
    assert set(lines[1]) == {"path", "error"} and "broken.jpg" in lines[1]["error"]
    face = lines[2]["faces"][0]
    assert set(face) == {"box", "score", "model", "keypoints", "facing", "facing_score"}
    from mlsensors.types import BLAZEFACE_LANDMARKS, YUNET_LANDMARKS

    layout = YUNET_LANDMARKS if face["model"] == "yunet" else BLAZEFACE_LANDMARKS
    assert set(face["keypoints"]) == {k.name.lower() for k in layout}
    x0, y0, x1, y1 = face["box"]
    assert 0 <= x0 < x1 <= 427 and 0 <= y0 < y1 <= 240


@pytest.mark.data
def test_detect_folder_and_table(data_dir, model_store, capsys):
    folder = data_dir / "faces" / "dlib_training"
    assert main(["detect", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "dogs.jpg" in out and "0 face(s)" in out and "7 face(s)" in out
    assert "training.xml" not in out


def test_usage_errors_exit_2_without_traceback():
    for args in (["detect"], ["detect", "x.jpg", "--model", "huge"], ["nonsense"], []):
        proc = _run(*args)
        assert proc.returncode == 2, args
        assert "Traceback" not in proc.stderr


def test_missing_file_is_one_line(tmp_path, model_store):
    proc = _run("detect", str(tmp_path / "nope.png"))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "nope.png" in proc.stderr


def test_models_list_and_verify(model_store):
    proc = _run("models", "verify", "--json")
    assert proc.returncode == 0
    rows = json.loads(proc.stdout)
    assert {r["name"] for r in rows} >= {"face_detection_full_range.tflite",
                                         "dlib_face_recognition_resnet_model_v1.dat"}
    assert all(r["ok"] for r in rows)


def test_models_verify_fails_on_a_tampered_cache(tmp_path):
    bad = tmp_path / "face_detection_full_range.tflite"
    bad.write_bytes(b"tampered")
    proc = _run("models", "--dir", str(tmp_path), "verify")
    assert proc.returncode == 1
    assert "FAIL  face_detection_full_range.tflite" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_bench_prints_the_ratio(model_store):
    proc = _run("bench", "--rounds", "8", "--json")
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    assert figures["invoke_ms"] > 0 and figures["detect_ms"] > 0 and figures["faces"] == 1
    assert figures["ratio"] == pytest.approx(figures["detect_ms"] / figures["invoke_ms"],
                                             rel=1e-2)


@pytest.mark.parametrize("as_json", [True, False])
def test_detect_on_a_folder_without_images_is_an_error(tmp_path, model_store, capsys, as_json):
    """An empty folder, or a folder named like an image: a clear error and status 1,
    never silence and 0 (which would read as "no faces")."""
    empty = tmp_path / "empty"
    empty.mkdir()
    named = tmp_path / "x.jpg"
    named.mkdir()
    (named / "notes.txt").write_text("not an image")
    for folder in (empty, named):
        code = main(["detect", *(["--json"] if as_json else []), str(folder)])
        out, err = capsys.readouterr()
        assert code == 1, folder
        if as_json:
            (line,) = out.splitlines()
            assert json.loads(line) == {"path": str(folder),
                                        "error": f"{folder}: a folder with no image files in it"}
        else:
            assert out == ""
            assert err.strip().splitlines() == [
                f"mlsensors: error: {folder}: a folder with no image files in it"]


@pytest.mark.data
def test_detect_and_id_match_name_their_input_alike(tmp_path, data_dir, model_store, capsys):
    pytest.importorskip("dlib", reason="face IDs need the id extra (dlib-bin)")
    portraits = data_dir / "faces" / "face_recognition_examples"
    gallery = str(tmp_path / "g.bin")
    assert main(["id", "enroll", "--gallery", gallery, "--id", "2",
                 str(portraits / "obama.jpg")]) == 0
    capsys.readouterr()
    photo = str(portraits / "obama2.jpg")
    assert main(["id", "match", "--gallery", gallery, "--json", photo]) == 0
    matched = json.loads(capsys.readouterr().out)
    assert main(["detect", "--json", photo]) == 0
    detected = json.loads(capsys.readouterr().out)
    assert matched["path"] == detected["path"] == photo
    assert "image" not in matched
