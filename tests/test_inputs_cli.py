"""Hostile inputs through every command that reads a user's picture: `detect`, `person
run --source`, `serve --source`, `id enroll` and `id match`. Each must answer with one
line naming the path and the problem, promptly (a FIFO must not hang it), with no
traceback, and lose nothing (an existing gallery survives)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from test_sources_limits import jpeg_bomb, png_bomb

EXAMPLES = "faces/face_recognition_examples"


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    # A FIFO read would block forever: the timeout turns a hang into a failure.
    return subprocess.run([sys.executable, "-m", "mlsensors", *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture()
def hostile(tmp_path) -> dict[str, tuple[Path, str]]:
    """name → (path, words the error must contain)."""
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    sock = tmp_path / "socket.jpg"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock))
    zero = tmp_path / "zero.jpg"
    zero.symlink_to("/dev/zero")
    png = tmp_path / "bomb.png"
    png.write_bytes(png_bomb(30000, 30000))
    jpg = tmp_path / "bomb.jpg"
    jpg.write_bytes(jpeg_bomb())
    yield {
        "fifo": (fifo, "is a FIFO (named pipe), not a regular file"),
        "socket": (sock, "is a socket, not a regular file"),
        "zero": (zero, "is a device, not a regular file"),
        "png": (png, "30000×30000 PNG image is 900.0 megapixels, more than the 50 allowed"),
        "jpg": (jpg, "30000×30000 JPEG image is 900.0 megapixels"),
    }
    server.close()


def one_error_line(stderr: str, path: Path, words: str) -> None:
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr, stderr
    errors = [line for line in lines if line.startswith("mlsensors: error:")]
    assert len(errors) == 1, stderr
    assert str(path) in errors[0] and words in errors[0], stderr


def test_detect_reports_each_hostile_input_and_goes_on(hostile, data_dir, model_store):
    good = data_dir / EXAMPLES / "obama-240p.jpg"
    paths = [str(p) for p, _ in hostile.values()]
    proc = run("detect", "--json", *paths, str(good))
    assert proc.returncode == 1, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["path"] for line in lines] == [*paths, str(good)]
    for line, (path, words) in zip(lines, hostile.values(), strict=False):
        assert set(line) == {"path", "error"} and words in line["error"], line
        assert str(path) in line["error"]
    assert len(lines[-1]["faces"]) == 1
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("name", ["fifo", "socket", "zero", "png"])
def test_person_run_refuses_a_hostile_source_in_one_line(hostile, name, model_store):
    path, words = hostile[name]
    proc = run("person", "run", "--source", str(path), "--frames", "1", "--json")
    assert proc.returncode == 1 and proc.stdout == ""
    one_error_line(proc.stderr, path, words)


@pytest.mark.parametrize("name", ["fifo", "socket", "zero"])
def test_serve_refuses_a_hostile_source_before_starting(hostile, name, tmp_path):
    path, words = hostile[name]
    proc = run("serve", "--source", str(path), "--bus", f"unix:{tmp_path / 'bus.sock'}")
    assert proc.returncode == 1, proc.stderr
    one_error_line(proc.stderr, path, words)
    assert not (tmp_path / "bus.sock").exists()


def test_serve_refuses_a_folder_without_images(tmp_path):
    (tmp_path / "notes.txt").write_text("no pictures here")
    proc = run("serve", "--source", str(tmp_path), "--bus", f"unix:{tmp_path / 'bus.sock'}")
    assert proc.returncode == 1
    one_error_line(proc.stderr, tmp_path, "folder contains no image files")


@pytest.mark.slow
def test_id_enroll_and_match_refuse_hostile_images_and_keep_the_gallery(
        hostile, tmp_path, data_dir, model_store):
    pytest.importorskip("dlib", reason="face IDs need the id extra (dlib-bin)")
    gallery = tmp_path / "gallery.bin"
    good = data_dir / EXAMPLES / "obama.jpg"
    proc = run("id", "enroll", "--gallery", str(gallery), "--id", "2", str(good))
    assert proc.returncode == 0, proc.stderr
    stored = gallery.read_bytes()
    for name in ("fifo", "zero", "png", "jpg"):
        path, words = hostile[name]
        proc = run("id", "enroll", "--gallery", str(gallery), "--id", "3", str(good),
                   str(path))
        assert proc.returncode == 1
        one_error_line(proc.stderr, path, words)
        assert gallery.read_bytes() == stored, "a refused enrolment changes nothing"
        proc = run("id", "match", "--gallery", str(gallery), "--json", str(path))
        assert proc.returncode == 1 and proc.stdout == ""
        one_error_line(proc.stderr, path, words)
    proc = run("id", "match", "--gallery", str(gallery), "--json", str(good))
    assert json.loads(proc.stdout)["faces"][0]["id"] == 2
