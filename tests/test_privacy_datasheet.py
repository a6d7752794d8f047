"""`mlsensors datasheet`: measured at generation time, self-contained, honest about gaps."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mlsensors.cli.main import main
from mlsensors.privacy.datasheet.measure import Measurements, detection_quality
from mlsensors.privacy.datasheet.render import blocks, to_html, to_markdown

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"


def test_detection_quality_is_scored_against_the_labels(data_dir, model_store):
    q = detection_quality(data_dir)
    assert q.labelled_faces == 18 and q.images == 5
    # a lower threshold never finds fewer faces; recall falls to 0 at the top
    recalls = [p.recall for p in q.curve]
    assert recalls == sorted(recalls, reverse=True)
    assert q.curve[-1].recall < q.curve[0].recall
    assert 0.0 <= q.at_default.precision <= 1.0 and q.at_default.recall > 0.5


def test_without_data_or_measurements_the_sheet_says_so():
    m = Measurements("now", "test machine", None, None, None, None,
                     ("detection recall/precision: no labelled data",))
    md = to_markdown(blocks(m))
    assert "<svg" not in to_html(blocks(m))  # no plots without numbers
    assert "Not measured — detection recall/precision: no labelled data" in md
    assert "Not measured — the audit did not run" in md
    assert "precision 1.00" not in md


@pytest.mark.slow
def test_datasheet_command_writes_measured_markdown_and_html(tmp_path, data_dir, model_store,
                                                            monkeypatch, capsys):
    monkeypatch.setenv("PYTHONPATH", f"{SRC}{os.pathsep}{TESTS}")
    assert main(["datasheet", "--out", str(tmp_path), "--data", str(data_dir)]) == 0
    md = (tmp_path / "datasheet.md").read_text()
    html = (tmp_path / "datasheet.html").read_text()
    for section in ("Outputs and interface", "Model specification", "Dataset notes",
                    "End-to-end performance", "IoT security and privacy label",
                    "Compliance notes", "Environmental notes"):
        assert section in md and section in html
    assert re.search(r"precision \d\.\d\d, recall \d\.\d\d", md)
    assert re.search(r"median \d+\.\d ms, p95 \d+\.\d ms", md)
    assert "| sandbox enabled | PASS |" in md
    svgs = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(svgs) == 2
    for svg in svgs:
        ET.fromstring(svg)  # well-formed
    # self-contained: nothing fetched from elsewhere
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    assert "Not measured — ID accuracy" in md
    assert "not measured: ID accuracy" in capsys.readouterr().out


def test_datasheet_refuses_a_missing_data_folder(tmp_path, capsys):
    assert main(["datasheet", "--out", str(tmp_path), "--data", str(tmp_path / "no")]) == 1
    assert "does not exist" in capsys.readouterr().err
