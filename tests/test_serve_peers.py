"""`mlsensors serve` under hostile peers, as users run it: the real CLI, the sealed sensing
process, a small descriptor table (1024, a common default), a thousand idle bus
connections, a hundred slow page requests and four thousand malformed bus connections.
The other transports must keep answering, the guard must still restart a crashed sensing
process, and the log must stay short."""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from mlsensors.transports.client import PersonSensorClient

pytestmark = pytest.mark.slow

NOFILE = 1024


class Served:
    """`mlsensors serve` in a child process with stderr collected line by line."""

    def __init__(self, *args: str, nofile: int = NOFILE) -> None:
        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlsensors", "serve", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=limit)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for_line(self, pattern: str, timeout: float = 60) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if m := re.search(pattern, line):
                    return m
            assert self.proc.poll() is None, "\n".join(self.lines)
            time.sleep(0.05)
        pytest.fail(f"no line matching {pattern!r}:\n" + "\n".join(self.lines))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._reader.join(5)
        return code


def children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            kids += [int(k) for k in (task / "children").read_text().split()]
    return kids


def state(url: str) -> dict:
    with urllib.request.urlopen(url + "api/state", timeout=10) as r:
        return json.loads(r.read())


def until(test, timeout: float, what: str):
    """Poll `test` until it returns a true value (errors count as not yet)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = test()
        except Exception as e:  # any failure means "not yet"
            last = e
        else:
            if value:
                return value
            last = value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}: last {last!r}")


def test_idle_and_malformed_floods_leave_every_transport_and_the_guard_working(model_store):
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 6000:
        pytest.skip("the test itself needs 6000 descriptors")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    served = Served("--source", "demo", "--bus", "tcp:127.0.0.1:0", "--http", "127.0.0.1:0",
                    "--max-rate", "10")
    idle: list[socket.socket] = []
    try:
        bus_port = int(served.wait_for_line(r"virtual I2C bus on tcp:127\.0\.0\.1:(\d+)")[1])
        url = served.wait_for_line(r"status page at (http://\S+/)")[1]
        until(lambda: state(url)["view"]["status"]["state"] == "running", 60, "running")
        first_child = until(lambda: children(served.proc.pid), 10, "the sensing process")[0]

        # A thousand connections that never say anything, a hundred slow page requests...
        for _ in range(1000):
            idle.append(socket.create_connection(("127.0.0.1", bus_port), 10))
        page_port = int(url.rsplit(":", 1)[1].strip("/"))
        for _ in range(100):
            slow = socket.create_connection(("127.0.0.1", page_port), 10)
            slow.sendall(b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            idle.append(slow)
        # ...and four thousand that say something malformed.
        for _ in range(4000):
            with socket.create_connection(("127.0.0.1", bus_port), 10) as s, \
                    contextlib.suppress(OSError):
                s.sendall(b"\x62\xee\x00\x00")

        # The status page still answers, and a real client still reads the bus.
        assert state(url)["view"]["status"]["state"] in ("running", "starting")

        def read_bus():
            with PersonSensorClient(f"tcp:127.0.0.1:{bus_port}", timeout=5) as client:
                return client.read_results() is not None

        until(read_bus, 30, "a bus read among the idle connections")

        # A crashed sensing process is restarted: descriptors were kept for it.
        os.kill(first_child, signal.SIGKILL)
        until(lambda: state(url)["view"]["status"]["restarts"] >= 1, 60, "a restart")
        until(lambda: state(url)["view"]["status"]["state"] == "running", 60,
              "running again after the restart")
        assert first_child not in children(served.proc.pid)
        until(read_bus, 30, "a bus read after the restart")
    finally:
        for s in idle:
            s.close()
        code = served.stop()
    log = served.lines
    assert code == 0, "\n".join(log)
    text = "\n".join(log)
    assert "Traceback" not in text and "Too many open files" not in text, text
    bus_lines = [line for line in log if "virtual bus" in line]
    # 5,000 bad peers in a few seconds: a handful of summary lines, not one per peer.
    assert 1 <= len(bus_lines) <= 12, text
    assert any("connections refused" in line for line in bus_lines), text
    assert any("malformed" in line for line in bus_lines), text
    assert len(log) < 60, text
