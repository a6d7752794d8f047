"""`mlsensors audit`: every check passes on a sealed sensor and fails where it should."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mlsensors.cli.main import main
from mlsensors.privacy.audit import run_audit

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"


@pytest.fixture(autouse=True)
def child_path(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", f"{SRC}{os.pathsep}{TESTS}")


def test_audit_of_a_sealed_child_passes_with_evidence(model_store):
    report = run_audit("demo", seconds=2.0, max_rate=10.0, work="privacy_children:steady")
    failed = [c for c in report.checks if not c.passed]
    assert not failed, failed
    names = {c.name for c in report.checks}
    for expected in ("user namespace", "net namespace", "seccomp filter", "no_new_privs",
                     "file size limit", "memory cap", "network from inside fails",
                     "file write from inside fails", "output rate within the cap",
                     "injected malformed record dropped", "injected over-rate records dropped",
                     "model hashes match the manifest", "channel capacity"):
        assert expected in names
    assert report.child_pid > 0
    assert f"/proc/{report.child_pid}/ns/net" in next(
        c.evidence for c in report.checks if c.name == "net namespace")


def test_audit_fails_an_insecure_sensor(model_store):
    report = run_audit("demo", seconds=1.0, max_rate=10.0, insecure=True,
                       work="privacy_children:steady")
    verdict = {c.name: c.passed for c in report.checks}
    assert not report.passed
    assert not verdict["sandbox enabled"]
    assert not verdict["net namespace"] and not verdict["seccomp filter"]
    assert not verdict["file write from inside fails"]


def test_audit_command_on_the_real_sensor(model_store, capsys):
    code = main(["audit", "--seconds", "2", "--max-rate", "5", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0, ([c for c in out["checks"] if not c["passed"]],
                       [v for v in out["escape"]["verdicts"] if not v["passed"]])
    assert out["passed"] and out["child_pid"] > 0 and out["max_rate"] == 5
    assert out["capacity"]["bits_per_second"] == pytest.approx(
        5 * out["capacity"]["bits_per_record"])


def test_audit_rejects_a_bad_rate(capsys):
    with pytest.raises(SystemExit) as e:
        main(["audit", "--max-rate", "fast"])
    assert e.value.code == 2
    assert "not a rate" in capsys.readouterr().err


def test_audit_attaches_to_a_running_sensor(capsys):
    import time

    from mlsensors.hub import Hub
    from mlsensors.privacy.sealed import SealedSensor

    hub = Hub()
    with SealedSensor(hub, "demo", work="privacy_children:steady") as sensor:
        deadline = time.monotonic() + 20
        while hub.snapshot().status.state != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        code = main(["audit", "--pid", str(sensor.child_pid)])
        out = capsys.readouterr().out
        assert code == 0, out
        assert f"PID {sensor.child_pid}" in out and "attached" in out
        assert "PASS  net namespace" in out
    assert main(["audit", "--pid", str(os.getpid())]) == 1
    assert "not an mlsensors sensing process" in capsys.readouterr().err
    assert main(["audit", "--pid", "abc"]) == 1
