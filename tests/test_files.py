"""The bounded reader: regular files only, limits checked before reading."""

from __future__ import annotations

import os
import threading

import pytest

from mlsensors.errors import InputError, SourceError
from mlsensors.files import read_regular


def test_reads_a_regular_file(tmp_path):
    p = tmp_path / "a.bin"
    p.write_bytes(b"x" * 100)
    assert read_regular(p, 100, "thing") == b"x" * 100


def test_refuses_a_file_over_the_limit(tmp_path):
    p = tmp_path / "a.bin"
    p.write_bytes(b"x" * 101)
    with pytest.raises(InputError, match=r"thing .*a\.bin is 101 B, more than the 100 B"):
        read_regular(p, 100, "thing")


def test_refuses_a_fifo_without_hanging(tmp_path):
    p = tmp_path / "fifo"
    os.mkfifo(p)
    done = threading.Event()

    def read():
        with pytest.raises(InputError, match="FIFO"):
            read_regular(p, 100, "key")
        done.set()

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(5)
    assert done.is_set(), "reading a FIFO must not block"


@pytest.mark.parametrize("path, kind", [("/dev/zero", "a device"), ("/", "a folder")])
def test_refuses_devices_and_folders(path, kind):
    with pytest.raises(InputError, match=kind):
        read_regular(path, 1 << 20, "gallery")


def test_missing_file_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        read_regular(tmp_path / "nope", 10, "image")
