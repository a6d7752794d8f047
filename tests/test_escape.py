"""The escape suite against the real sealed child: it must fail when a channel is open.

One child run per configuration for the whole module (each starts a sealed child):
- `default`: sealed exactly as `serve` seals; every channel must be closed;
- `reopened`: the same policy with exactly one thing allowed again (a syscall or a
  prctl option), which must make its channel, and no other, FAIL;
- `insecure`: no seal at all; every channel must FAIL, which shows each observer can
  see its channel open.
"""

from __future__ import annotations

import json

import pytest

from mlsensors.cli.main import main
from mlsensors.privacy import escape, escape_inside
from mlsensors.privacy.escape import CHANNELS, run_escape


def _reopened(channel: str):
    """The sensing policy with exactly one thing allowed again, and the channel that
    must then be open."""
    from mlsensors.privacy.policy import PR_SET_NAME, role

    base = role("sensing")
    return {
        "locks": base.allowing(syscalls=("flock",)),
        "proc-comm": base.allowing(prctl=(PR_SET_NAME,)),
        "proc-sched": base.allowing(syscalls=("setpriority",)),
        "proc-limits": base.allowing(syscalls=("prlimit64",)),
    }[channel]


REOPEN = ("locks", "proc-comm", "proc-sched", "proc-limits")


@pytest.fixture(scope="module")
def default():
    return run_escape()


@pytest.fixture(scope="module")
def reopened():
    return {channel: run_escape(policy=_reopened(channel)) for channel in REOPEN}


@pytest.fixture(scope="module")
def insecure():
    return run_escape(insecure=True)


def test_catalogue_is_data_with_an_observer_per_channel():
    names = [c.name for c in CHANNELS]
    assert len(names) == len(set(names)) >= 30
    for c in CHANNELS:
        assert c.tried and c.observed
        assert callable(getattr(escape.Observer, c.name.replace("-", "_")))
    assert set(names) >= escape.AFTER_STOP
    plan = escape_inside.Plan("ab", "/x", "s", "d", "q", "a", "b", 1, 0, 2, "", 0, "c", "cd",
                              "v", "n", "sec", ("/tmp",), 1, 2, (3, 4, 5), 6, 7, "l")
    assert escape_inside.Plan.from_json(plan.to_json()) == plan


def test_every_channel_fails_without_the_seal(insecure):
    assert not insecure.problem, insecure.problem
    opened = [v.name for v in insecure.verdicts if v.passed]
    assert opened == [], f"observers that saw nothing although nothing was sealed: {opened}"


@pytest.mark.parametrize("channel", REOPEN)
def test_reopening_one_channel_fails_exactly_that_channel(default, reopened, channel):
    report = reopened[channel]
    assert not default.problem and not report.problem, report.problem
    assert channel not in default.failed
    assert set(report.failed) == set(default.failed) | {channel}, report.failed


def test_default_seal_closes_every_channel(default):
    """Every channel closed but the residual ones, which are declared (with how they are
    bounded) in the catalogue itself, never by the test."""
    assert not default.problem, default.problem
    assert default.passed, "open channels: " + "; ".join(
        f"{v.name}: {v.observed}" for v in default.verdicts if not v.passed)
    residual = {c.name for c in CHANNELS if c.residual}
    assert set(default.residual_open) <= residual == {"proc-signal-masks"}


def test_the_microphone_role_closes_every_channel_too():
    """`serve --voice` seals its process with the microphone role of the same policy
    module, through the same launcher: the same suite must pass under it."""
    report = run_escape(role="microphone")
    assert report.role == "microphone" and not report.problem, report.problem
    assert report.passed, "open channels: " + ", ".join(report.failed)


def test_report_prints_one_line_per_channel(default, capsys):
    from mlsensors.cli.audit import print_escape

    print_escape(default)
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if line[:4] in ("PASS", "FAIL", "OPEN")]
    assert len(rows) == len(CHANNELS)
    for row, verdict in zip(rows, default.verdicts, strict=True):
        assert row.startswith(verdict.label)
        assert verdict.name in row and "tried:" in row and "observed:" in row
    data = default.to_dict()
    assert data["passed"] == default.passed and len(data["verdicts"]) == len(CHANNELS)


def test_audit_command_fails_on_an_open_channel(capsys):
    code = main(["audit", "--seconds", "1", "--json", "--insecure"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and not out["passed"]
    assert out["escape"]["verdicts"] and not out["escape"]["passed"]


def test_outside_view_fails_on_an_unsealed_process():
    """`audit --pid`'s view from /proc, on this (unsealed) test process: its thread
    names are its own and its mounts are the machine's."""
    import os

    from mlsensors.privacy.audit import outside_view_checks
    from mlsensors.privacy.policy import role

    verdict = {c.name: c for c in outside_view_checks(os.getpid(), role("sensing").comm)}
    assert not verdict["one fixed thread name"].passed
    assert not verdict["private file-system view"].passed
    assert "the same as the machine's" in verdict["private file-system view"].evidence
