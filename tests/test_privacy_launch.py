"""The launcher's walls, tried from inside the real sealed sensing child and observed
from outside (issue 10): every channel stays shut under `role("sensing")`, and the same
hostile code under a copy of the policy that reopens the channels gets through, which
shows that each observation can fail."""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import pytest
from guard_helpers import child_path  # noqa: F401  (child_path: autouse)

from mlsensors.hub import Hub
from mlsensors.privacy import launch
from mlsensors.privacy.child import ChildConfig
from mlsensors.privacy.guard import Guard, GuardTiming
from mlsensors.privacy.policy import PR_SET_NAME, role

if os.uname().sysname != "Linux":
    pytest.skip("Linux only", allow_module_level=True)

METADATA = ("chmod", "fchmodat", "utimensat", "setxattr", "connect", "sendto")


class UnixListener:
    """A unix stream socket by path (like D-Bus or a broker's listener) that records
    every byte it receives."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(4)
        self.sock.settimeout(0.1)
        self.received = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                while chunk := conn.recv(4096):
                    self.received += chunk

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def observe(tmp_path, policy=None) -> dict:
    """Run the hostile `escape` work in the real sealed child; what is seen outside."""
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "key.bin"
    target.write_bytes(b"secret")
    os.chmod(target, 0o600)
    before = os.stat(target)
    listener = UnixListener(str(outside / "bus.sock"))
    options = json.dumps({"unix": str(outside / "bus.sock"), "file": str(target)})
    guard = Guard(Hub(), ChildConfig(-1, -1, work="privacy_children:escape",
                                     sensor_options=options, memory_bytes=1 << 30),
                  max_rate=20.0, timing=GuardTiming(startup_timeout=30.0),
                  policy=policy)
    seen = {}
    try:
        with guard:
            deadline = time.monotonic() + 30
            while "probe done" not in guard.logs.lines and time.monotonic() < deadline:
                time.sleep(0.05)
            waiter = guard._child.pid  # not by name: the reopened child renames itself
            with open(f"/proc/{waiter}/task/{waiter}/children") as f:
                (pid,) = map(int, f.read().split())
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                seen["cmdline"] = f.read()
            seen["comm"] = set()
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/comm") as f:
                    seen["comm"].add(f.read().strip())
    finally:
        listener.close()
    after = os.stat(target)
    seen["unix"] = listener.received
    seen["mode"] = (before.st_mode, after.st_mode)
    seen["mtime"] = (before.st_mtime_ns, after.st_mtime_ns)
    seen["xattr"] = os.listxattr(target)
    seen["probes"] = [line for line in guard.logs.lines if line.startswith("probe ")]
    return seen


def test_every_channel_stays_shut_from_inside_the_sealed_child(tmp_path):
    seen = observe(tmp_path)
    assert "probe done" in seen["probes"], seen["probes"]
    # writing its own argv memory cannot be stopped; /proc/PID/cmdline no longer shows it
    assert not any("ALLOWED" in p for p in seen["probes"] if "argv" not in p), \
        seen["probes"]
    assert seen["unix"] == b""
    assert seen["mode"][0] == seen["mode"][1]
    assert seen["mtime"][0] == seen["mtime"][1]
    assert seen["xattr"] == []
    assert seen["cmdline"] == b""
    assert seen["comm"] == {role("sensing").comm}


def test_the_same_attempts_get_through_a_reopened_policy(tmp_path):
    """Reopen what each wall closes (socket family, syscalls, the folder, prctl, the
    command line): the outside observations must then see each channel."""
    outside = str(tmp_path / "outside")
    policy = role("sensing").allowing(
        socket_families=("AF_UNIX",), syscalls=METADATA, write_paths=(outside,),
        prctl=(PR_SET_NAME,), cmdline=True)
    seen = observe(tmp_path, policy)
    assert seen["unix"] == b"leaked frame bytes"
    assert seen["mode"][1] & 0o777 == 0o777
    assert seen["mtime"][1] == 987654321
    assert seen["xattr"] == ["user.leak"]
    assert b"LEAK-" in seen["cmdline"]
    assert "leak-prctl" in seen["comm"]


def ruled(policy) -> dict[str, str]:
    """What the `ruled_calls` work got from each call, sealed with `policy`."""
    guard = Guard(Hub(), ChildConfig(-1, -1, work="privacy_children:ruled_calls",
                                     memory_bytes=1 << 30, role=policy.role),
                  max_rate=20.0, timing=GuardTiming(startup_timeout=30.0), policy=policy)
    with guard:
        deadline = time.monotonic() + 30
        while "probe done" not in guard.logs.lines and time.monotonic() < deadline:
            time.sleep(0.05)
    pairs = [word.split("=", 1) for line in guard.logs.lines if line.startswith("probe ")
             for word in line.split()[1:] if "=" in word]
    return dict(pairs)


def test_argument_rules_pass_reads_and_stop_persistent_setters():
    """Under the microphone role: mixer/control and camera setters that leave state
    other users can read, page-cache eviction and KSM merging are stopped by seccomp
    (EPERM), their read-only siblings reach the driver (ENOTTY on /dev/null); with the
    rules dropped, the setters get through too, so the test can tell."""
    shut = ruled(role("microphone"))
    assert shut["elem_read"] == shut["hw_params"] == "ENOTTY", shut
    assert shut["elem_write"] == shut["elem_add"] == shut["s_ctrl"] == "EPERM", shut
    assert shut["fadv_willneed"] == "ok" and shut["fadv_dontneed"] == "EPERM", shut
    assert shut["madv_normal"] == "ok", shut
    assert shut["madv_pageout"] == shut["madv_mergeable"] == "EPERM", shut
    open_ = ruled(role("microphone").allowing(syscalls=("ioctl", "fadvise64", "madvise")))
    assert open_["elem_write"] == open_["s_ctrl"] == "ENOTTY", open_
    assert open_["fadv_dontneed"] == "ok" and open_["madv_pageout"] == "ok", open_


def test_a_policy_for_an_unknown_architecture_or_syscall_is_refused():
    with pytest.raises(ValueError, match="architecture"):
        role("sensing").resolve("mips")
    with pytest.raises(ValueError, match="unknown syscalls"):
        role("sensing").allowing(syscalls=("no_such_call",)).resolve()


def test_aarch64_numbers_are_the_generic_table():
    """Spot checks against the kernel's asm-generic table (aarch64 has no open())."""
    resolved = role("sensing").resolve("aarch64")
    assert 56 in resolved.allow and 63 in resolved.allow  # openat, read
    socket_nr = 198
    assert socket_nr not in resolved.allow
    assert socket_nr not in [nr for nr, _ in resolved.rules]


def test_spec_round_trips_through_json():
    policy = role("embedder").allowing(socket_families=("AF_UNIX",), syscalls=("chmod",))
    spec = launch.LaunchSpec(policy, "m:f", "{}", (4, 5))
    assert launch.LaunchSpec.from_json(spec.to_json()) == spec


def test_a_layer_that_cannot_be_applied_stops_the_sensor_instead_of_weakening_it():
    """A policy the launcher cannot enforce (here: a ruled syscall this kernel's table
    lacks) ends the child with the seal-failed status; the guard reports it and does
    not restart, and nothing runs unsealed."""
    from mlsensors.privacy.policy import ArgRule

    bad = role("sensing").allowing(arg_rules=(("no_such_call", ArgRule(0, (1,))),))
    hub = Hub()
    guard = Guard(hub, ChildConfig(-1, -1, work="privacy_children:steady"), max_rate=20.0,
                  policy=bad)
    with guard:
        deadline = time.monotonic() + 30
        while guard.running and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not guard.running
    assert "cannot be sealed" in hub.snapshot().status.detail
    assert any("unknown syscalls" in line for line in guard.logs.lines)
    assert guard.stats().received == 0
