"""The sandbox, for real: a fresh process seals itself and tries to get out.

Each case runs `seal()` in a new Python process (the kernel only lets a single-threaded
process enter a user namespace) and reports what its attempts did as JSON; network
attempts aim at a listener in this (the parent's) namespace, which must see nothing.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from mlsensors.privacy import sandbox
from mlsensors.privacy.child import THREAD_ENV

SRC = str(Path(sandbox.__file__).resolve().parents[2])

SCRIPT = textwrap.dedent("""
    import errno, json, os, resource, socket, subprocess, sys
    from mlsensors.privacy.sandbox import SealPolicy, seal
    args = json.loads(sys.argv[1])
    policy = SealPolicy(read_paths=tuple(args["reads"]), exec_paths=tuple(args["code"]),
                        memory_bytes=args["memory"], use_namespace=args["ns"],
                        use_seccomp=args["seccomp"], use_landlock=args["landlock"])
    report = seal(policy)
    out = {"report": [report.namespace, report.seccomp, report.landlock_abi]}
    def attempt(name, fn):
        try:
            fn(); out[name] = "ok"
        except OSError as e:
            out[name] = errno.errorcode.get(e.errno, str(e))
        except MemoryError:
            out[name] = "MemoryError"
    def tcp():
        socket.create_connection(("127.0.0.1", args["port"]), timeout=2).close()
    attempt("tcp", tcp)
    attempt("inet", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close())
    attempt("inet6", lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close())
    attempt("unix", lambda: socket.socketpair()[0].close())
    def write_new():
        with open(args["new_file"], "wb") as f:
            f.write(b"x" * 10)
    attempt("write_new", write_new)
    def append_existing():
        with open(args["existing"], "ab") as f:
            f.write(b"y")
    attempt("append_existing", append_existing)
    attempt("unlink_existing", lambda: os.unlink(args["existing"]))
    attempt("read_allowed", lambda: open(args["allowed"]).read())
    attempt("read_other", lambda: open(args["other"]).read())
    if args["seccomp"]:  # without it the exec would succeed and end this script
        attempt("exec", lambda: os.execv("/bin/true", ["/bin/true"]))
    def alloc():
        b = bytearray(args["alloc"]); del b
    attempt("alloc", alloc)
    status = dict(l.split(":", 1) for l in open(f"/proc/{os.getpid()}/status"))
    out["nnp"] = status["NoNewPrivs"].strip()
    out["seccomp_mode"] = status["Seccomp"].strip()
    out["fsize"] = resource.getrlimit(resource.RLIMIT_FSIZE)
    print(json.dumps(out))
""")


class Listener:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.seen = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stop.is_set():
            try:
                self.sock.accept()[0].close()
                self.seen += 1
            except OSError:
                pass

    def close(self):
        self.stop.set()
        self.thread.join()
        self.sock.close()


def run_sealed(tmp_path, *, ns=True, seccomp=True, landlock=True, memory=512 << 20):
    from mlsensors.privacy.child import code_paths

    allowed = tmp_path / "allowed.txt"
    allowed.write_text("model")
    other = tmp_path / "other" / "secret.txt"
    other.parent.mkdir()
    other.write_text("secret")
    existing = tmp_path / "existing.txt"
    existing.write_text("keep")
    listener = Listener()
    args = {
        "reads": [str(allowed), "/proc", "/dev/null"], "code": [*list(code_paths()), SRC],
        "memory": memory, "ns": ns, "seccomp": seccomp, "landlock": landlock,
        "port": listener.port, "new_file": str(tmp_path / "new.bin"),
        "existing": str(existing), "allowed": str(allowed), "other": str(other),
        "alloc": memory + (64 << 20),
    }
    try:
        proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(args)],
                              capture_output=True, text=True, timeout=30,
                              env={**os.environ, **THREAD_ENV, "PYTHONPATH": SRC}, cwd="/")
    finally:
        listener.close()
    assert proc.returncode == 0 and proc.stdout, proc.stderr
    out = json.loads(proc.stdout)
    out["listener_saw"] = listener.seen
    out["new_file_exists"] = (tmp_path / "new.bin").exists()
    out["existing_content"] = existing.read_text() if existing.exists() else None
    return out


def test_full_seal_blocks_network_writes_and_memory(tmp_path):
    out = run_sealed(tmp_path)
    assert out["report"][0] and out["report"][1] and out["report"][2] >= 1
    assert out["tcp"] == out["inet"] == out["inet6"] == "EAFNOSUPPORT"
    assert out["unix"] == "ok"  # pipes and socketpairs stay possible inside
    assert out["listener_saw"] == 0
    assert out["write_new"] == "EACCES" and not out["new_file_exists"]
    assert out["append_existing"] == "EACCES" and out["existing_content"] == "keep"
    assert out["unlink_existing"] == "EACCES"
    assert out["read_allowed"] == "ok"
    assert out["read_other"] == "EACCES"
    assert out["exec"] == "EPERM"
    assert out["alloc"] == "MemoryError"
    assert out["nnp"] == "1" and out["seccomp_mode"] == "2"
    assert out["fsize"] == [0, 0]


def test_namespace_alone_leaves_no_route_to_the_parent(tmp_path):
    out = run_sealed(tmp_path, seccomp=False, landlock=False)
    assert out["report"][:2] == [True, False]
    assert out["inet"] == "ok"  # sockets can be made, but there is nowhere to go
    assert out["tcp"] in ("ENETUNREACH", "ECONNREFUSED")
    assert out["listener_saw"] == 0


def test_seccomp_fallback_alone_blocks_every_inet_socket(tmp_path):
    out = run_sealed(tmp_path, ns=False, landlock=False)
    assert out["report"][:2] == [False, True]
    assert out["tcp"] == out["inet"] == out["inet6"] == "EAFNOSUPPORT"
    assert out["listener_saw"] == 0


def test_file_size_limit_alone_stops_writes_cleanly(tmp_path):
    """Without Landlock, RLIMIT_FSIZE 0 still stops any byte being written (EFBIG, no
    SIGXFSZ death); the empty file may be created."""
    out = run_sealed(tmp_path, landlock=False)
    assert out["write_new"] == "EFBIG"
    assert out["append_existing"] == "EFBIG"


def test_seal_refuses_a_threaded_process():
    code = textwrap.dedent("""
        import threading, time
        from mlsensors.privacy.sandbox import SealError, SealPolicy, seal
        threading.Thread(target=time.sleep, args=(5,), daemon=True).start()
        try:
            seal(SealPolicy())
        except SealError as e:
            print("refused:", e)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, env={**os.environ, "PYTHONPATH": SRC})
    assert "refused: " in proc.stdout and "single-threaded" in proc.stdout


def test_landlock_and_namespaces_are_available_here():
    """The kernel this runs on must support what the sandbox relies on (issue 5)."""
    if sys.platform != "linux":
        pytest.skip("Linux only")
    assert sandbox.landlock_abi() >= 1
