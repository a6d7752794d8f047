"""The escape suite: every known way out of the sealed child, tried inside, judged outside.

`mlsensors audit` starts the real sealed child, sealed by the same code and policy as
`serve` (`serve --id` with `identify`), but running `escape_inside.hostile` instead of
the Person Sensor. Before it starts, this module sets up what a leak would reach: unix
listeners (by path, datagram, seqpacket, abstract, the product's own virtual bus),
TCP/UDP listeners on the parent's loopback and host address, canary files and folders,
a secret file, two outside processes (one to be killed, one to be traced and read),
SysV IPC objects, a lockable file. Then it observes from outside what the hostile code
managed to do: bytes received, metadata changed, files created, /proc values the inside
dictated, processes that outlived the sensor. A verdict never trusts the inside.

The channel list is data (`CHANNELS`): name, what is tried inside, how it is observed.
Each channel's observation is the `Observer` method of the same name.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import os
import secrets
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field

from mlsensors.hub import Hub, RegisterWrite, Snapshot
from mlsensors.privacy.escape_inside import (
    _SYSCALLS,
    GO_REGISTER,
    KEY_SPEC_SESSION_KEYRING,
    KEY_SPEC_USER_KEYRING,
    MARK_DONE,
    MARK_READ_FILE,
    MARK_READ_PROC_CMDLINE,
    MARK_READ_PROC_ENVIRON,
    MARK_READY,
    Plan,
    digest_face,
)

HOSTILE_WORK = "mlsensors.privacy.escape_inside:hostile"


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    tried: str
    """What the hostile code does inside."""
    observed: str
    """What the audit looks at, from outside, to decide."""
    residual: str = ""
    """Set for a channel no sandbox can close (a value the kernel lets any process
    change and shows every local user): what bounds it and how a deployment closes it.
    Seen open, it is reported OPEN with its measured capacity, not FAIL; seen closed,
    it passes like any other."""


RESIDUAL_REMEDY = ("measured by bench/proc_channels.py (docs/privacy.md, datasheet); "
                   "hidden from other users when the service runs as its own user and "
                   "/proc is mounted with hidepid=invisible")


CHANNELS: tuple[Channel, ...] = (
    Channel("unix-stream-path", "connect() to a unix stream socket by path, send bytes",
            "the audit's listener accepted a connection or bytes"),
    Channel("unix-dgram-path", "sendto() a unix datagram socket by path",
            "the audit's datagram socket received bytes"),
    Channel("unix-seqpacket-path", "connect() to a unix seqpacket socket by path",
            "the audit's listener accepted a connection"),
    Channel("unix-abstract", "connect() to an abstract unix socket (no file)",
            "the audit's abstract listener accepted a connection"),
    Channel("bus-socket", "connect() to the product's own `--bus unix:` socket",
            "the virtual bus server counts a client"),
    Channel("tcp-loopback", "TCP connect to a listener on the parent's 127.0.0.1",
            "the listener accepted a connection"),
    Channel("tcp6-loopback", "TCP connect to a listener on the parent's ::1",
            "the listener accepted a connection"),
    Channel("udp-loopback", "UDP datagram to the parent's 127.0.0.1",
            "the audit's UDP socket received bytes"),
    Channel("tcp-host-address", "TCP connect to this machine's own non-loopback address",
            "the listener on that address accepted a connection"),
    Channel("file-mode", "chmod 04777 on a canary file and folder, a file next to the "
            "gallery file, and its own source",
            "their mode changed"),
    Channel("file-times", "utimensat with chosen nanoseconds on the same",
            "their mtime/atime changed"),
    Channel("file-xattr", "setxattr user.* (4,000 B) on the same",
            "extended attributes appeared"),
    Channel("file-owner", "chown to 65534 on the same", "owner or group changed"),
    Channel("file-content", "open for writing and truncate the canary, the file next to "
            "the gallery file and its own source",
            "content or size changed"),
    Channel("file-remove", "unlink a file, rename a folder outside",
            "the file or folder is gone"),
    Channel("file-create", "create 64 KiB files and folders in the audit's folder, the "
            "gallery folder, /tmp, /dev/shm, /var/tmp", "any of them appeared"),
    Channel("special-files", "mkfifo, mknod, bind() a unix socket file in the same places",
            "any of them appeared"),
    Channel("links", "hard link and symlink to its source in the same places",
            "any of them appeared"),
    Channel("read-outside", "read a world-readable file outside the allowed paths",
            "the file's digest came out through the record channel"),
    Channel("read-other-proc", "read another process's /proc/PID/cmdline and environ",
            "their digest came out through the record channel"),
    Channel("proc-cmdline", "overwrite its argv memory",
            "/proc/PID/cmdline changed (readable by every local user)"),
    Channel("proc-environ", "overwrite its environment memory",
            "/proc/PID/environ changed"),
    Channel("proc-comm", "prctl(PR_SET_NAME) and writes to /proc/self/task/TID/comm",
            "a thread name in /proc/PID/task/*/comm changed"),
    Channel("proc-signal-masks", "block a chosen set of signals in one thread; ignore "
            "and catch chosen signals",
            "SigBlk/SigIgn/SigCgt in /proc/PID/task/*/status changed",
            residual="seccomp cannot read the mask behind rt_sigprocmask's pointer, and "
                     "every thread start needs the call; " + RESIDUAL_REMEDY),
    Channel("proc-sched", "nice, CPU affinity, SCHED_IDLE of one thread; timer slack, "
            "oom_score_adj, personality", "/proc/PID/task/*/stat and status, "
            "/proc/PID/{timerslack_ns,oom_score_adj,personality} changed"),
    Channel("proc-limits", "set soft rlimits to chosen values",
            "/proc/PID/limits (world-readable) changed"),
    Channel("signal", "SIGKILL (kill and pidfd_send_signal) to an outside process",
            "that process died"),
    Channel("kmsg", "write a line to /dev/kmsg (the kernel log)",
            "the line is in the kernel log"),
    Channel("ptrace", "PTRACE_SEIZE an outside process", "its TracerPid is set"),
    Channel("exec", "fork + execve of Python and /bin/sh; posix_spawn",
            "a process with the inside's marker in its command line exists"),
    Channel("namespaces", "fork + unshare user, mount, pid, ipc, uts, net, cgroup; fork + "
            "setns into PID 1's namespaces",
            "a new process in namespaces the sealed tree did not have"),
    Channel("orphan", "a grandchild in its own session",
            "a process of the sealed tree still runs after the sensor stopped"),
    Channel("sysv-ipc", "create SysV shm/msg/sem; attach an outside shm; fill an outside "
            "message queue", "/proc/sysvipc shows them (key, attach, messages)"),
    Channel("posix-mqueue", "mq_open(O_CREAT) a POSIX message queue",
            "the queue opens from outside"),
    Channel("keyring", "add_key to the session and user keyrings",
            "the key is found from outside (keyctl search)"),
    Channel("locks", "flock and a POSIX read lock on a file it may read (its source)",
            "an outside process cannot take the lock"),
)


AFTER_STOP = frozenset({"orphan"})
"""Channels judged after the sensor stopped; the others while it still runs."""
ORPHAN_GRACE = 3.0
"""Seconds the sealed tree's processes get to end after the sensor stopped."""


@dataclass(frozen=True, slots=True)
class Verdict:
    name: str
    passed: bool
    tried: str
    observed: str
    residual: str = ""
    """Why an open channel is residual (see `Channel.residual`); empty for the others."""

    @property
    def label(self) -> str:
        return "PASS" if self.passed else "OPEN" if self.residual else "FAIL"


@dataclass(frozen=True, slots=True)
class EscapeReport:
    child_pid: int
    identify: bool
    seconds: float
    verdicts: tuple[Verdict, ...]
    problem: str = ""
    """Set when the hostile code never ran: then nothing was tested and it fails."""
    log: tuple[str, ...] = field(default_factory=tuple)
    role: str = "sensing"
    """The sandbox role the hostile code was sealed with (privacy/policy.py)."""

    @property
    def passed(self) -> bool:
        """Nothing open but the residual channels (whose capacity is stated)."""
        return not self.problem and not self.failed

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.verdicts if not v.passed and not v.residual)

    @property
    def residual_open(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.verdicts if not v.passed and v.residual)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["passed"] = self.passed
        return out


# -- things on the outside ---------------------------------------------------------


class _Listeners:
    """Every socket a leak could reach, served on one thread: counts per channel."""

    def __init__(self, plan_dir: str, host_ip: str) -> None:
        self.hits: dict[str, list[str]] = {}
        self._sel = selectors.DefaultSelector()
        self._socks: list[socket.socket] = []
        self.stream_path = os.path.join(plan_dir, "stream.sock")
        self.dgram_path = os.path.join(plan_dir, "dgram.sock")
        self.seqpacket_path = os.path.join(plan_dir, "seqpacket.sock")
        self.abstract_name = f"mlsensors-audit-{secrets.token_hex(6)}"
        self._listen("unix-stream-path", socket.AF_UNIX, socket.SOCK_STREAM, self.stream_path)
        self._listen("unix-seqpacket-path", socket.AF_UNIX, socket.SOCK_SEQPACKET,
                     self.seqpacket_path)
        self._listen("unix-abstract", socket.AF_UNIX, socket.SOCK_STREAM,
                     "\0" + self.abstract_name)
        self.tcp_port = self._listen("tcp-loopback", socket.AF_INET, socket.SOCK_STREAM,
                                     ("127.0.0.1", 0))[1]
        self.host_port = self._listen("tcp-host-address", socket.AF_INET, socket.SOCK_STREAM,
                                      (host_ip, 0))[1] if host_ip else 0
        self.tcp6_port = 0
        with contextlib.suppress(OSError):  # no IPv6 here: nothing to try
            self.tcp6_port = self._listen("tcp6-loopback", socket.AF_INET6, socket.SOCK_STREAM,
                                          ("::1", 0))[1]
        self._listen("unix-dgram-path", socket.AF_UNIX, socket.SOCK_DGRAM, self.dgram_path)
        self.udp_port = self._listen("udp-loopback", socket.AF_INET, socket.SOCK_DGRAM,
                                     ("127.0.0.1", 0))[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="escape-listeners",
                                        daemon=True)
        self._thread.start()

    def _listen(self, name: str, family: int, kind: int, address):
        s = socket.socket(family, kind)
        s.bind(address)
        if kind != socket.SOCK_DGRAM:
            s.listen(8)
        s.setblocking(False)
        self._socks.append(s)
        self._sel.register(s, selectors.EVENT_READ, (name, kind != socket.SOCK_DGRAM))
        self.hits[name] = []
        return s.getsockname()

    def _serve(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._sel.select(0.1):
                name, listening = key.data
                sock = key.fileobj
                try:
                    if listening:
                        conn, _ = sock.accept()
                        conn.setblocking(False)
                        self._socks.append(conn)
                        self.hits[name].append("connection accepted")
                        self._sel.register(conn, selectors.EVENT_READ, (name + "/conn", None))
                    elif key.data[1] is None:  # an accepted connection
                        data = sock.recv(4096)
                        base = name.removesuffix("/conn")
                        if data:
                            self.hits[base].append(f"received {len(data)} B")
                        else:
                            self._sel.unregister(sock)
                    else:
                        data = sock.recv(4096)
                        self.hits[name].append(f"received {len(data)} B")
                except OSError:
                    with contextlib.suppress(Exception):
                        self._sel.unregister(sock)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1.0)
        for s in self._socks:
            s.close()
        self._sel.close()


def _host_ip() -> str:
    """This machine's address on its default route ("" without one); no packet is sent."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))
        ip = s.getsockname()[0]
        return "" if ip.startswith("127.") else ip
    return ""


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.shmat.restype = ctypes.c_void_p
_IPC_CREAT = 0o1000
_IPC_RMID = 0
_KEYCTL_UNLINK = 9
_KEYCTL_SEARCH = 10


def _sysv_table(kind: str) -> dict[int, list[str]]:
    """/proc/sysvipc/{shm,msg,sem}: key → the row's fields (named by the header)."""
    try:
        with open(f"/proc/sysvipc/{kind}") as f:
            header, *rows = f.read().splitlines()
    except OSError:
        return {}
    out = {}
    for row in rows:
        fields = row.split()
        if fields:
            out[int(fields[0])] = dict(zip(header.split(), fields, strict=False))
    return out


def _key_search(description: str) -> list[tuple[int, int]]:
    """(key id, keyring) for every key of that description in our session/user keyrings."""
    nr = _SYSCALLS.get("keyctl")
    found = []
    if nr is None:
        return found
    for ring in (KEY_SPEC_SESSION_KEYRING, KEY_SPEC_USER_KEYRING):
        key = _libc.syscall(ctypes.c_long(nr), ctypes.c_int(_KEYCTL_SEARCH), ctypes.c_int(ring),
                            b"user", description.encode(), ctypes.c_int(0))
        if key > 0:
            found.append((int(key), ring))
    return found


def _read(path: str, binary: bool = True):
    try:
        with open(path, "rb" if binary else "r") as f:
            return f.read()
    except OSError:
        return None


def _file_state(path: str) -> dict:
    # Content first: our own read may move the access time, and the stat after it
    # then holds what a later read (relatime) leaves unchanged.
    content = None
    if os.path.isfile(path):
        data = _read(path)
        content = hashlib.sha256(data).hexdigest() if data is not None else None
    try:
        st = os.lstat(path)
    except OSError:
        return {"exists": False}
    xattrs = []
    with contextlib.suppress(OSError):
        xattrs = sorted(os.listxattr(path, follow_symlinks=False))
    return {"exists": True, "mode": oct(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
            "mtime_ns": st.st_mtime_ns, "atime_ns": st.st_atime_ns, "size": st.st_size,
            "xattrs": xattrs, "content": content}


def _stat_fields(pid: int | str, tid: int | str | None = None) -> list[str]:
    path = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    text = _read(path, binary=False) or ""
    return text.rpartition(")")[2].split()


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(entry)
            if len(fields) > 1:
                kids.setdefault(int(fields[1]), []).append(int(entry))
    return kids


def tree(root: int) -> list[int]:
    """`root` and all its descendants now."""
    kids = _children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += kids.get(pid, [])
    return out


@dataclass(frozen=True, slots=True)
class TaskView:
    """What any local user (or the owner, for environ/timerslack) sees of one thread."""

    comm: str
    sig: tuple[str, str, str]
    nice: str
    policy: str
    cpus: str


@dataclass(frozen=True, slots=True)
class ProcessView:
    pid: int
    start: str
    cmdline: bytes | None
    environ: bytes | None
    timerslack: str
    oom_score_adj: str
    personality: str
    limits: str
    ns: tuple[tuple[str, str], ...]
    tasks: dict[int, TaskView]

    @classmethod
    def read(cls, pid: int) -> ProcessView | None:
        fields = _stat_fields(pid)
        if len(fields) < 20:
            return None
        tasks = {}
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{pid}/task"):
                status = {}
                for line in (_read(f"/proc/{pid}/task/{tid}/status", False) or "").splitlines():
                    key, _, value = line.partition(":")
                    status[key] = value.strip()
                st = _stat_fields(pid, tid)
                if len(st) < 39:
                    continue
                tasks[int(tid)] = TaskView(
                    (_read(f"/proc/{pid}/task/{tid}/comm", False) or "").strip(),
                    (status.get("SigBlk", ""), status.get("SigIgn", ""),
                     status.get("SigCgt", "")),
                    st[16], st[38], status.get("Cpus_allowed_list", ""))
        ns = []
        for name in ("user", "mnt", "pid_for_children", "net", "ipc", "uts", "cgroup"):
            with contextlib.suppress(OSError):
                ns.append((name, os.readlink(f"/proc/{pid}/ns/{name}")))
        return cls(pid, fields[19], _read(f"/proc/{pid}/cmdline"),
                   _read(f"/proc/{pid}/environ"),
                   (_read(f"/proc/{pid}/timerslack_ns", False) or "").strip(),
                   (_read(f"/proc/{pid}/oom_score_adj", False) or "").strip(),
                   (_read(f"/proc/{pid}/personality", False) or "").strip(),
                   _read(f"/proc/{pid}/limits", False) or "", tuple(ns), tasks)


def _views(root: int) -> dict[int, ProcessView]:
    out = {}
    for pid in tree(root):
        view = ProcessView.read(pid)
        if view is not None:
            out[pid] = view
    return out


class Arena:
    """Everything the audit sets up outside before the child starts, and cleans up."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(4)
        self.dir = tempfile.mkdtemp(prefix="mlsensors-escape-")
        os.chmod(self.dir, 0o755)
        self.gallery_dir = os.path.join(self.dir, "gallery")
        os.mkdir(self.gallery_dir, 0o700)
        self.gallery = os.path.join(self.gallery_dir, "gallery.bin")
        self.canary_file = self._file("canary.txt", b"canary\n")
        self.canary_dir = os.path.join(self.dir, "canary-dir")
        os.mkdir(self.canary_dir, 0o755)
        self.victim_file = self._file("victim.txt", b"victim\n")
        self.neighbour_file = os.path.join(self.gallery_dir, "neighbour.txt")
        with open(self.neighbour_file, "wb") as f:
            f.write(b"next to the gallery\n")
        self.secret = secrets.token_bytes(32)
        self.secret_file = self._file("secret.bin", self.secret)
        self.create_dirs = tuple(d for d in (self.dir, self.gallery_dir, "/tmp", "/dev/shm",
                                             "/var/tmp") if os.path.isdir(d))
        host_ip = _host_ip()
        self.listeners = _Listeners(self.dir, host_ip)
        self.host_ip = host_ip
        from mlsensors.transports.virtual_bus import VirtualBusServer

        self.bus_path = os.path.join(self.dir, "bus.sock")
        self.bus = VirtualBusServer(Hub(), f"unix:{self.bus_path}")
        self.bus.start()
        sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
        self.signal_victim = subprocess.Popen(sleeper, stdin=subprocess.DEVNULL)
        self.trace_victim = subprocess.Popen(
            [*sleeper, f"secret-{secrets.token_hex(8)}"], stdin=subprocess.DEVNULL,
            env={"MLSENSORS_AUDIT_SECRET": secrets.token_hex(8)})
        self.sysv_create = tuple(self._ipc_key() for _ in range(3))
        self.sysv_shm_key, self.sysv_msg_key = self._ipc_key(), self._ipc_key()
        self.shm_id = _libc.shmget(ctypes.c_int(self.sysv_shm_key), 4096, _IPC_CREAT | 0o666)
        self.msg_id = _libc.msgget(ctypes.c_int(self.sysv_msg_key), _IPC_CREAT | 0o666)
        self.plan_path = os.path.join(self.dir, "plan.json")
        self.plan = Plan(
            self.token, self.dir, self.listeners.stream_path, self.listeners.dgram_path,
            self.listeners.seqpacket_path, self.listeners.abstract_name, self.bus_path,
            self.listeners.tcp_port, self.listeners.tcp6_port, self.listeners.udp_port, host_ip,
            self.listeners.host_port,
            self.canary_file, self.canary_dir, self.victim_file, self.neighbour_file,
            self.secret_file,
            self.create_dirs, self.signal_victim.pid, self.trace_victim.pid,
            self.sysv_create, self.sysv_shm_key, self.sysv_msg_key, self.plan_path)
        self._file("plan.json", self.plan.to_json().encode())
        self.before = {p: _file_state(p) for p in self.watched()}

    def _file(self, name: str, data: bytes) -> str:
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o644)
        return path

    @staticmethod
    def _ipc_key() -> int:
        return secrets.randbelow(1 << 30) + (1 << 20)

    def watched(self) -> tuple[str, ...]:
        return (self.canary_file, self.canary_dir, self.neighbour_file, self.plan_path)

    def created(self) -> list[str]:
        """Paths with the inside's marker in the places it tried to create things."""
        mark = f"mlsensors-{self.token}-"
        out = []
        for d in self.create_dirs:
            with contextlib.suppress(OSError):
                out += [os.path.join(d, n) for n in os.listdir(d) if n.startswith(mark)]
        return out

    def close(self) -> None:
        for p in (self.signal_victim, self.trace_victim):
            if p.poll() is None:
                p.kill()
            p.wait()
        self.listeners.close()
        self.bus.stop()
        for key_id, ring in _key_search(f"mlsensors-{self.token}"):
            _libc.syscall(ctypes.c_long(_SYSCALLS["keyctl"]), ctypes.c_int(_KEYCTL_UNLINK),
                          ctypes.c_int(key_id), ctypes.c_int(ring))
        for call, ctl, key in ((_libc.shmget, _libc.shmctl, self.sysv_create[0]),
                               (_libc.msgget, _libc.msgctl, self.sysv_create[1]),
                               (_libc.semget, _libc.semctl, self.sysv_create[2]),
                               (_libc.shmget, _libc.shmctl, self.sysv_shm_key),
                               (_libc.msgget, _libc.msgctl, self.sysv_msg_key)):
            args = (ctypes.c_int(key), 0, 0) if call is not _libc.msgget else \
                (ctypes.c_int(key), 0)
            ident = call(*args)
            if ident >= 0:
                ctl(ident, 0, _IPC_RMID) if ctl is _libc.semctl else ctl(ident, _IPC_RMID, None)
        _libc.mq_unlink(f"/mlsensors-{self.token}".encode())
        for path in self.created():
            with contextlib.suppress(OSError):
                if os.path.isdir(path) and not os.path.islink(path):
                    os.rmdir(path)
                else:
                    os.unlink(path)
        shutil.rmtree(self.dir, ignore_errors=True)


class Observer:
    """One method per channel: "" when nothing was observed, else what was."""

    def __init__(self, arena: Arena, baseline: dict[int, ProcessView],
                 after: dict[int, ProcessView], faces: set) -> None:
        self.a = arena
        self.baseline = baseline
        self.after = after
        self.faces = faces
        self.files = {p: _file_state(p) for p in arena.watched()}
        self.exec_pids = self._exec_pids()
        self.new_namespaces = self._new_namespaces()

    def look(self, channel: str) -> str:
        return getattr(self, channel.replace("-", "_"))()

    def _hits(self, name: str) -> str:
        return "; ".join(sorted(set(self.a.listeners.hits.get(name, []))))

    def unix_stream_path(self) -> str:
        return self._hits("unix-stream-path")

    def unix_dgram_path(self) -> str:
        return self._hits("unix-dgram-path")

    def unix_seqpacket_path(self) -> str:
        return self._hits("unix-seqpacket-path")

    def unix_abstract(self) -> str:
        return self._hits("unix-abstract")

    def bus_socket(self) -> str:
        n = self.a.bus.connections
        return f"{n} client(s) connected to the virtual bus" if n else ""

    def tcp_loopback(self) -> str:
        return self._hits("tcp-loopback")

    def tcp6_loopback(self) -> str:
        return self._hits("tcp6-loopback")

    def udp_loopback(self) -> str:
        return self._hits("udp-loopback")

    def tcp_host_address(self) -> str:
        return self._hits("tcp-host-address")

    def _changed(self, *keys: str) -> str:
        out = []
        for path, now in self.files.items():
            was = self.a.before[path]
            for k in keys:
                if was.get(k) != now.get(k):
                    out.append(f"{os.path.basename(path)} {k} {was.get(k)} → {now.get(k)}")
        return "; ".join(out)

    def file_mode(self) -> str:
        return self._changed("mode")

    def file_times(self) -> str:
        return self._changed("mtime_ns") or self._changed_atime()

    def _changed_atime(self) -> str:
        # The source is read by design (atime may move); the canaries are never read.
        was, now = self.a.before[self.a.canary_file], self.files[self.a.canary_file]
        return "" if was.get("atime_ns") == now.get("atime_ns") else \
            f"canary.txt atime_ns {was.get('atime_ns')} → {now.get('atime_ns')}"

    def file_xattr(self) -> str:
        return self._changed("xattrs")

    def file_owner(self) -> str:
        return self._changed("uid", "gid")

    def file_content(self) -> str:
        return self._changed("content", "size")

    def file_remove(self) -> str:
        gone = [p for p in (self.a.victim_file, self.a.canary_dir) if not os.path.lexists(p)]
        return "; ".join(f"{os.path.basename(p)} is gone" for p in gone)

    def _created(self, *suffixes: str) -> str:
        found = [p for p in self.a.created() if p.rsplit("-", 1)[1] in suffixes]
        return "; ".join(f"{p} exists" for p in sorted(found))

    def file_create(self) -> str:
        return self._created("file", "dir")

    def special_files(self) -> str:
        return self._created("fifo", "node", "sock")

    def links(self) -> str:
        return self._created("hard", "sym")

    def _read_out(self, mark: int, data: bytes | None) -> str:
        if data is None:
            return ""
        want = digest_face(mark, data)
        return "its 16-bit digest came out as a record" if \
            (want.confidence, want.box) in self.faces else ""

    def read_outside(self) -> str:
        return self._read_out(MARK_READ_FILE, self.a.secret)

    def read_other_proc(self) -> str:
        pid = self.a.trace_victim.pid
        found = [self._read_out(MARK_READ_PROC_CMDLINE, _read(f"/proc/{pid}/cmdline")),
                 self._read_out(MARK_READ_PROC_ENVIRON, _read(f"/proc/{pid}/environ"))]
        return "; ".join(f"{w}: {f}" for w, f in zip(("cmdline", "environ"), found,
                                                        strict=True) if f)

    def _same_process(self, attr: str) -> str:
        out = []
        for pid, was in self.baseline.items():
            now = self.after.get(pid)
            if now is None or now.start != was.start:
                continue
            a, b = getattr(was, attr), getattr(now, attr)
            if a != b:
                out.append(f"PID {pid}: {_short(a)} → {_short(b)}")
        return "; ".join(out)

    def proc_cmdline(self) -> str:
        return self._same_process("cmdline")

    def proc_environ(self) -> str:
        return self._same_process("environ")

    def _task_values(self, pick) -> str:
        known = {pick(t) for v in self.baseline.values() for t in v.tasks.values()}
        out = []
        for pid, was in self.baseline.items():
            now = self.after.get(pid)
            if now is None or now.start != was.start:
                continue
            for tid, task in now.tasks.items():
                value = pick(task)
                if value not in known:
                    out.append(f"task {pid}/{tid}: {value}")
        return "; ".join(out)

    def proc_comm(self) -> str:
        return self._task_values(lambda t: t.comm)

    def proc_signal_masks(self) -> str:
        return self._task_values(lambda t: "SigBlk/Ign/Cgt " + "/".join(t.sig))

    def proc_sched(self) -> str:
        found = [self._task_values(lambda t: f"nice {t.nice}"),
                 self._task_values(lambda t: f"policy {t.policy}"),
                 self._task_values(lambda t: f"Cpus_allowed_list {t.cpus}"),
                 self._same_process("timerslack"), self._same_process("oom_score_adj"),
                 self._same_process("personality")]
        return "; ".join(f for f in found if f)

    def proc_limits(self) -> str:
        out = []
        for pid, was in self.baseline.items():
            now = self.after.get(pid)
            if now is None or now.start != was.start:
                continue
            changed = sorted(set(now.limits.splitlines()) - set(was.limits.splitlines()))
            out += [f"PID {pid}: {' '.join(line.split())}" for line in changed]
        return "; ".join(out)

    def kmsg(self) -> str:
        mark = f"mlsensors-{self.a.token}-kmsg".encode()
        try:
            fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            return ""
        try:
            while True:
                try:
                    record = os.read(fd, 8192)
                except BlockingIOError:
                    return ""
                except OSError:  # EPIPE: a record was overwritten; read on
                    continue
                if not record:
                    return ""
                if mark in record:
                    return "the kernel log holds the inside's line"
        finally:
            os.close(fd)

    def signal(self) -> str:
        code = self.a.signal_victim.poll()
        return f"the outside process ended ({code})" if code is not None else ""

    def ptrace(self) -> str:
        status = _read(f"/proc/{self.a.trace_victim.pid}/status", False) or ""
        for line in status.splitlines():
            if line.startswith("TracerPid:") and line.split()[1] != "0":
                return f"the outside process is traced ({line.strip()})"
        return ""

    def _exec_pids(self) -> list[int]:
        mark = f"exec-{self.a.token}".encode()
        return sorted(int(e) for e in os.listdir("/proc")
                      if e.isdigit() and mark in (_read(f"/proc/{e}/cmdline") or b""))

    def _new_namespaces(self) -> dict[int, list[str]]:
        known = {ns for v in self.baseline.values() for ns in v.ns}
        out = {}
        for pid, view in self.after.items():
            was = self.baseline.get(pid)
            if was is not None and was.start == view.start:
                continue  # a process of the untouched tree (the embedder seals late)
            new = [f"{n}:{v.split(':', 1)[1]}" for n, v in view.ns if (n, v) not in known]
            if new:
                out[pid] = new
        return out

    def _in_sandbox_namespaces(self) -> list[ProcessView]:
        """Processes that share a user, net or mount namespace of the sealed tree that
        the audit itself is not in, or a command line of the tree: a grandchild
        re-parented away from the tree is still found this way."""
        mine = ProcessView.read(os.getpid())
        ours = set(mine.ns) if mine else set()
        sealed = {ns for v in self.baseline.values() for ns in v.ns
                  if ns[0] in ("user", "net", "mnt") and ns not in ours}
        # A fork carries its parent's command line (as the inside left it) too.
        lines = {v.cmdline for v in [*self.baseline.values(), *self.after.values()]
                 if v.cmdline}
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) not in self.after and int(entry) != os.getpid():
                view = ProcessView.read(int(entry))
                if view is not None and (sealed & set(view.ns) or view.cmdline in lines):
                    found.append(view)
        return found

    def exec(self) -> str:
        return f"process(es) {self.exec_pids} run with the marker" if self.exec_pids else ""

    def namespaces(self) -> str:
        return "; ".join(f"PID {pid} in new " + ", ".join(new)
                         for pid, new in self.new_namespaces.items())

    def still_running(self) -> list[ProcessView]:
        """Processes of the sealed tree (as seen when the hostile code was done) alive
        now, not counting those already counted under `exec` or `namespaces`."""
        counted = set(self.exec_pids) | set(self.new_namespaces)
        alive = []
        for old in [*self.after.values(), *self._in_sandbox_namespaces()]:
            now = ProcessView.read(old.pid)
            if now is not None and now.start == old.start and not _is_zombie(old.pid) \
                    and old.pid not in counted:
                alive.append(old)
        return alive

    def orphan(self) -> str:
        """Processes of the sealed tree still running after the sensor stopped (ended
        here, by PID). Those already counted under `exec` or `namespaces` are not
        counted again: each escape shows up once."""
        out = []
        for old in self.still_running():
            with contextlib.suppress(OSError):
                os.kill(old.pid, signal.SIGKILL)
            out.append(f"PID {old.pid} still ran {ORPHAN_GRACE:g} s after the sensor "
                       f"stopped")
        for pid in {*self.exec_pids, *self.new_namespaces}:  # counted above; end them
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        return "; ".join(out)

    def sysv_ipc(self) -> str:
        out = []
        for kind in ("shm", "msg", "sem"):
            table = _sysv_table(kind)
            out += [f"{kind} key {k} created" for k in self.a.sysv_create if k in table]
        shm = _sysv_table("shm").get(self.a.sysv_shm_key, {})
        if shm.get("lpid", "0") != "0":
            out.append(f"the outside shm segment was attached by PID {shm['lpid']}")
        msg = _sysv_table("msg").get(self.a.sysv_msg_key, {})
        if msg.get("qnum", "0") != "0":
            out.append(f"the outside message queue holds {msg['qnum']} message(s)")
        return "; ".join(out)

    def posix_mqueue(self) -> str:
        name = f"/mlsensors-{self.a.token}".encode()
        _libc.mq_open.restype = ctypes.c_int
        fd = _libc.mq_open(name, ctypes.c_int(os.O_RDONLY))
        if fd < 0:
            return ""
        _libc.mq_close(fd)
        return "the queue exists outside"

    def keyring(self) -> str:
        found = _key_search(f"mlsensors-{self.a.token}")
        names = {KEY_SPEC_SESSION_KEYRING: "session", KEY_SPEC_USER_KEYRING: "user"}
        return "; ".join(f"key {k} in the {names[r]} keyring" for k, r in found)

    def locks(self) -> str:
        out = []
        fd = os.open(self.a.plan_path, os.O_RDWR)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
            except OSError:
                out.append("flock held by the inside")
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 100)
                fcntl.lockf(fd, fcntl.LOCK_UN, 1, 100)
            except OSError:
                out.append("POSIX lock held by the inside")
        finally:
            os.close(fd)
        return "; ".join(out)


def _is_zombie(pid: int) -> bool:
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] in ("Z", "X")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def run_escape(identify: bool = False, *, startup_timeout: float = 60.0,
               done_timeout: float = 30.0, **sensor_options) -> EscapeReport:
    """Start the sealed child with the hostile work, let it try everything, judge each
    channel from outside. `sensor_options` go to `SealedSensor` (tests use them to
    reopen a channel on purpose)."""
    from mlsensors.privacy.sealed import SealedSensor

    t0 = time.monotonic()
    arena = Arena()
    faces: set = set()
    marks: list[int] = []
    hub = Hub()

    def watch(snap: Snapshot) -> None:
        for face in snap.result.faces:
            faces.add((face.confidence, face.box))
            if face.box == (face.confidence,) * 4:
                marks.append(face.confidence)

    hub.subscribe(watch)
    extra = {"gallery": arena.gallery} if identify else {}
    sensor = SealedSensor(hub, arena.plan_path, identify=identify, work=HOSTILE_WORK,
                          **extra, **sensor_options)
    problem = ""
    pid = 0
    baseline: dict[int, ProcessView] = {}
    after: dict[int, ProcessView] = {}
    lines: tuple[str, ...] = ()
    seen: dict[str, str] = {}
    observer = Observer(arena, baseline, after, faces)
    try:
        try:
            sensor.start()
            if not _wait(lambda: MARK_READY in marks, startup_timeout):
                status = hub.snapshot().status
                problem = (f"the hostile code never reported ready within "
                           f"{startup_timeout:g} s ({status.state}: {status.detail})")
            pid = sensor.child_pid
            baseline = _views(pid) if pid else {}
            if not problem:
                if not _wait(lambda: _go(sensor), 5.0):
                    problem = "the sensing process did not take the go command"
                elif not _wait(lambda: marks.count(MARK_DONE) >= 2, done_timeout):
                    status = hub.snapshot().status
                    problem = (f"the hostile code did not finish within {done_timeout:g} s "
                               f"({status.state}: {status.detail or 'no detail'}; a seal "
                               f"must refuse a call, not kill the process)")
                elif sensor.stats().restarts:
                    problem = ("the sensing process was restarted during the attempts: "
                               "what it held is gone, the verdicts would be void")
                after = _views(pid) if pid else {}
            observer = Observer(arena, baseline, after, faces)
            if not problem:  # while it runs: what it holds (locks, sockets) counts
                seen = {c.name: observer.look(c.name) for c in CHANNELS
                        if c.name not in AFTER_STOP}
            lines = tuple(sensor.guard.logs.lines)
        finally:
            sensor.stop()
        # The tree's own processes (the embedder) end on their own, once their pipes
        # close; what still runs after ORPHAN_GRACE is an orphan (and is ended).
        _wait(lambda: not observer.still_running(), ORPHAN_GRACE)
        if not problem:
            seen |= {name: observer.look(name) for name in AFTER_STOP}
        else:
            observer.orphan()
        _kill_marked(arena.token)
    finally:
        arena.close()
    verdicts = tuple(Verdict(c.name, not problem and not seen.get(c.name), c.tried,
                             "not run" if problem else seen.get(c.name) or "nothing",
                             "" if problem else c.residual)
                     for c in CHANNELS)
    return EscapeReport(pid, identify, round(time.monotonic() - t0, 1), verdicts, problem,
                        lines, sensor_options.get("role", "sensing"))


def _go(sensor) -> bool:
    from mlsensors.errors import ProtocolError

    try:
        sensor.guard.send(RegisterWrite(GO_REGISTER, 0))
        return True
    except ProtocolError:
        return False


def _kill_marked(token: str) -> None:
    """End the processes the hostile code left running with its marker (by PID)."""
    mark = f"exec-{token}".encode()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid() and \
                mark in (_read(f"/proc/{entry}/cmdline") or b""):
            with contextlib.suppress(OSError):
                os.kill(int(entry), signal.SIGKILL)
