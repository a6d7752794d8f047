"""The hostile sensing loop of the escape suite: run INSIDE the real sealed child.

`mlsensors audit` starts the sealed child exactly as `serve` (or `serve --id`) does,
with one difference: `ChildConfig.work` names `hostile` instead of the Person Sensor,
and the source is a plan file (JSON, a `Plan`) that says where the audit's observers
are. Reading its source is what every sensor does, so the policy stays the one `serve`
uses. This code then behaves like a compromised sensor: it tries every way out it
knows and keeps whatever it managed to open, hold or change, so that the audit can see
it from OUTSIDE (`escape.py`). It reports nothing about its own success: what counts is
what the outside observes. The only things it sends through the legitimate record
channel are a "ready" and a "done" marker and, for channels that can only be used to
read (another process's /proc, a file outside the allowed paths), a 16-bit digest of
what it read, which proves the read from outside without trusting the inside.

Order: publish READY, wait for the audit's go (a DEBUG_MODE register write, so that
the audit first records what /proc shows of the untouched process), try everything,
then publish the digests and DONE over and over until the guard stops the child.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import platform
import signal
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass

from mlsensors.hub import RegisterWrite, SensorStatus
from mlsensors.types import PersonFace, PersonResult

MARK_READY = 1
MARK_DONE = 2
MARK_READ_FILE = 10
MARK_READ_PROC_CMDLINE = 11
MARK_READ_PROC_ENVIRON = 12
GO_REGISTER = 0x07
"""DEBUG_MODE: a legal setting the guard forwards; its arrival is the audit's go."""


@dataclass(frozen=True, slots=True)
class Plan:
    """Where the audit's observers wait; written by the outside, read inside as the source."""

    token: str
    """8 hex characters in every name the inside creates, so the outside can find them."""
    base: str
    """The audit's private folder (outside every allowed path)."""
    stream_path: str
    dgram_path: str
    seqpacket_path: str
    abstract_name: str
    bus_path: str
    tcp_port: int
    tcp6_port: int
    """A TCP listener on the parent's ::1 (0 without IPv6)."""
    udp_port: int
    host_ip: str
    """A non-loopback address of this machine ("" if none); a TCP listener there."""
    host_port: int
    canary_file: str
    canary_dir: str
    victim_file: str
    neighbour_file: str
    """A file next to the gallery file (as `~/.bashrc` is next to `~/gallery.bin`)."""
    secret_file: str
    create_dirs: tuple[str, ...]
    signal_victim: int
    """An outside process the inside tries to kill (SIGKILL)."""
    trace_victim: int
    """An outside process the inside tries to ptrace; it also holds secrets in its
    command line and environment."""
    sysv_create_keys: tuple[int, int, int]
    """shm, msg, sem keys the inside tries to create."""
    sysv_shm_key: int
    """A shm segment the outside created (mode 0666) that the inside tries to attach."""
    sysv_msg_key: int
    """A message queue the outside created (mode 0666) that the inside tries to fill."""
    lock_file: str
    """A file the inside may read (the plan itself) that it tries to lock."""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Plan:
        raw = json.loads(text)
        raw["create_dirs"] = tuple(raw["create_dirs"])
        raw["sysv_create_keys"] = tuple(raw["sysv_create_keys"])
        return cls(**raw)


def digest_face(mark: int, data: bytes) -> PersonFace:
    """A face whose confidence names the channel and whose box carries 16 bits of
    sha256(data): what the outside compares with the secret it planted."""
    h = hashlib.sha256(data).digest()
    return PersonFace((h[0], h[1], h[0], h[1]), mark, True)


def marker_face(mark: int) -> PersonFace:
    return PersonFace((mark, mark, mark, mark), mark, True)


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.shmat.restype = ctypes.c_void_p
_SYSCALLS = {"x86_64": {"add_key": 248, "keyctl": 250},
             "aarch64": {"add_key": 217, "keyctl": 219}}.get(platform.machine(), {})
KEY_SPEC_SESSION_KEYRING = -3
KEY_SPEC_USER_KEYRING = -4
PR_SET_NAME = 15
PR_SET_TIMERSLACK = 29
PTRACE_SEIZE = 0x4206
IPC_CREAT = 0o1000


def _check(result: int, what: str) -> int:
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


class Hostile:
    """Every attempt, each on its own; what it opens or creates is kept until stop."""

    def __init__(self, plan: Plan, source: str) -> None:
        self.plan = plan
        self.source = source
        self.held: list[object] = []
        self.reads: list[PersonFace] = []
        self.threads_stop = threading.Event()

    def attempt_all(self) -> None:
        for name in dir(self):
            if name.startswith("try_"):
                with contextlib.suppress(Exception):
                    getattr(self, name)()

    # -- sockets ---------------------------------------------------------------

    def _unix(self, kind: int, address, payload: bytes = b"leak") -> None:
        s = socket.socket(socket.AF_UNIX, kind)
        self.held.append(s)
        s.settimeout(1.0)
        if kind == socket.SOCK_DGRAM:
            s.sendto(payload, address)
        else:
            s.connect(address)
            s.sendall(payload)

    def try_unix_stream(self) -> None:
        self._unix(socket.SOCK_STREAM, self.plan.stream_path)

    def try_unix_dgram(self) -> None:
        self._unix(socket.SOCK_DGRAM, self.plan.dgram_path)

    def try_unix_seqpacket(self) -> None:
        self._unix(socket.SOCK_SEQPACKET, self.plan.seqpacket_path)

    def try_unix_abstract(self) -> None:
        self._unix(socket.SOCK_STREAM, "\0" + self.plan.abstract_name)

    def try_bus(self) -> None:
        self._unix(socket.SOCK_STREAM, self.plan.bus_path, b"")

    def try_tcp(self) -> None:
        s = socket.create_connection(("127.0.0.1", self.plan.tcp_port), timeout=1.0)
        self.held.append(s)
        s.sendall(b"leak")

    def try_tcp_host(self) -> None:
        if self.plan.host_ip:
            s = socket.create_connection((self.plan.host_ip, self.plan.host_port), timeout=1.0)
            self.held.append(s)

    def try_tcp6(self) -> None:
        if self.plan.tcp6_port:
            s = socket.create_connection(("::1", self.plan.tcp6_port), timeout=1.0)
            self.held.append(s)
            s.sendall(b"leak")

    def try_udp(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.held.append(s)
        s.sendto(b"leak", ("127.0.0.1", self.plan.udp_port))

    # -- files -----------------------------------------------------------------

    def _each(self, paths, action) -> None:
        for path in paths:
            with contextlib.suppress(OSError):
                action(path)

    def _targets(self) -> tuple[str, ...]:
        return (self.plan.canary_file, self.plan.canary_dir, self.plan.neighbour_file,
                self.source)

    def try_chmod(self) -> None:
        self._each(self._targets(), lambda p: os.chmod(p, 0o4777))

    def try_utime(self) -> None:
        stamp = 1_000_000_000_123_456_789
        self._each(self._targets(), lambda p: os.utime(p, ns=(stamp, stamp)))

    def try_xattr(self) -> None:
        self._each(self._targets(), lambda p: os.setxattr(p, "user.mlsensors", b"x" * 4000))

    def try_chown(self) -> None:
        self._each(self._targets(), lambda p: os.chown(p, 65534, 65534))

    def try_write_existing(self) -> None:
        def write(p: str) -> None:
            with open(p, "r+b") as f:
                f.write(b"LEAK")
        self._each((self.plan.canary_file, self.plan.neighbour_file, self.source), write)
        self._each((self.plan.canary_file, self.plan.neighbour_file),
                   lambda p: os.truncate(p, 1))

    def try_remove(self) -> None:
        self._each((self.plan.victim_file,), os.unlink)
        self._each((self.plan.canary_dir,), lambda p: os.rename(p, p + ".moved"))

    def _names(self, suffix: str) -> list[str]:
        return [os.path.join(d, f"mlsensors-{self.plan.token}-{suffix}")
                for d in self.plan.create_dirs]

    def try_create_files(self) -> None:
        def create(p: str) -> None:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, b"x" * 65536)
            finally:
                os.close(fd)
        self._each(self._names("file"), create)
        self._each(self._names("dir"), os.mkdir)

    def try_special_files(self) -> None:
        self._each(self._names("fifo"), os.mkfifo)
        self._each(self._names("node"), lambda p: os.mknod(p, 0o600 | 0o010000))

        def bind(p: str) -> None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.held.append(s)
            s.bind(p)
        self._each(self._names("sock"), bind)

    def try_links(self) -> None:
        self._each(self._names("hard"), lambda p: os.link(self.source, p))
        self._each(self._names("sym"), lambda p: os.symlink(self.source, p))

    def try_read_outside(self) -> None:
        with open(self.plan.secret_file, "rb") as f:
            self.reads.append(digest_face(MARK_READ_FILE, f.read()))

    def try_read_other_proc(self) -> None:
        pid = self.plan.trace_victim
        with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as f:
            self.reads.append(digest_face(MARK_READ_PROC_CMDLINE, f.read()))
        with open(f"/proc/{pid}/environ", "rb") as f:
            self.reads.append(digest_face(MARK_READ_PROC_ENVIRON, f.read()))

    # -- /proc of this process ---------------------------------------------------

    def _own_stat(self) -> list[str]:
        with open(f"/proc/{os.getpid()}/stat") as f:
            return f.read().rpartition(")")[2].split()

    def _overwrite(self, start_field: int, end_field: int, fill: bytes) -> None:
        fields = self._own_stat()  # fields[0] is field 3 (state)
        start, end = int(fields[start_field - 3]), int(fields[end_field - 3])
        if end > start:
            data = (fill * ((end - start) // len(fill) + 1))[:end - start - 1]
            ctypes.memmove(start, data, len(data))

    def try_argv(self) -> None:
        self._overwrite(48, 49, f"argv-{self.plan.token}-".encode())

    def try_environ(self) -> None:
        self._overwrite(50, 51, f"env-{self.plan.token}-".encode())

    def try_sigaction(self) -> None:
        """Ignored and caught signals are process-wide bits in /proc/PID/status."""
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)
        signal.signal(signal.SIGWINCH, lambda *_: None)

    def try_proc_comm(self) -> None:
        _check(_libc.prctl(PR_SET_NAME, f"c{self.plan.token}".encode(), 0, 0, 0), "prctl")

    def try_marker_thread(self) -> None:
        """One thread that sets everything /proc shows per thread: its name (prctl and
        /proc/self/task/TID/comm), signal mask, nice, CPU affinity, scheduling policy,
        timer slack. Each is a value any local user reads in /proc."""
        ready = threading.Event()

        def marker() -> None:
            tid = threading.get_native_id()
            token = int(self.plan.token, 16)
            for step in (
                lambda: _check(_libc.prctl(PR_SET_NAME, f"t{self.plan.token}".encode(),
                                           0, 0, 0), "prctl"),
                lambda: _write(f"/proc/{os.getpid()}/task/{tid}/comm",
                               f"w{self.plan.token}"),
                lambda: signal.pthread_sigmask(
                    signal.SIG_BLOCK, {s for s in range(10, 32) if token >> s & 1}
                    | {signal.SIGUSR1}),
                lambda: os.setpriority(os.PRIO_PROCESS, 0, 17),
                lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}),
                lambda: os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0)),
                lambda: _check(_libc.prctl(PR_SET_TIMERSLACK, 50_000 + (token & 0xFFFF),
                                           0, 0, 0), "prctl"),
            ):
                with contextlib.suppress(Exception):
                    step()
            ready.set()
            self.threads_stop.wait()

        threading.Thread(target=marker, daemon=True).start()
        ready.wait(2.0)

    # -- processes ---------------------------------------------------------------

    def _fork(self, body) -> None:
        """Run `body` in a forked process that never returns into this code."""
        pid = os.fork()
        if pid == 0:
            try:
                body()
            finally:
                os._exit(0)

    def try_exec(self) -> None:
        argv = [sys.executable, "-c", "import time; time.sleep(60)",
                f"exec-{self.plan.token}"]

        def run() -> None:
            with contextlib.suppress(OSError):
                os.execv(sys.executable, argv)
            with contextlib.suppress(OSError):
                os.execv("/bin/sh", ["/bin/sh", "-c", "sleep 60", f"exec-{self.plan.token}"])
        with contextlib.suppress(OSError):  # clone(CLONE_VM|CLONE_VFORK) + execve
            os.posix_spawn(sys.executable, argv, {})
        self._fork(run)

    def try_unshare(self) -> None:
        def run() -> None:
            done = False
            for flag in (0x10000000, 0x00020000, 0x20000000, 0x08000000, 0x04000000,
                         0x40000000, 0x02000000):  # user, mnt, pid, ipc, uts, net, cgroup
                if _libc.unshare(ctypes.c_int(flag)) == 0:
                    done = True
            if done:
                time.sleep(60)
        self._fork(run)

    def try_setns(self) -> None:
        """Join the machine's namespaces (PID 1's) in a fork that then stays."""
        def run() -> None:
            joined = False
            for name in ("user", "mnt", "net", "pid", "ipc", "uts"):
                with contextlib.suppress(OSError):
                    fd = os.open(f"/proc/1/ns/{name}", os.O_RDONLY)
                    if _libc.setns(fd, 0) == 0:
                        joined = True
            if joined:
                time.sleep(60)
        self._fork(run)

    def try_orphan(self) -> None:
        """A grandchild in its own session: does it outlive the sensing process?"""
        def run() -> None:
            with contextlib.suppress(OSError):
                os.setsid()
            if os.fork() == 0:
                time.sleep(60)
        self._fork(run)

    def try_signal(self) -> None:
        with contextlib.suppress(OSError):
            fd = os.pidfd_open(self.plan.signal_victim)
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        os.kill(self.plan.signal_victim, signal.SIGKILL)

    def try_kmsg(self) -> None:
        with open("/dev/kmsg", "w") as f:
            f.write(f"mlsensors-{self.plan.token}-kmsg\n")

    def try_limits(self) -> None:
        """Soft limits are free numbers up to the hard limit, and /proc/PID/limits is
        world-readable: a storage channel unless the seal forbids setting them."""
        import resource

        token = int(self.plan.token, 16)
        for limit, base in ((resource.RLIMIT_STACK, 8 << 20), (resource.RLIMIT_CPU, 1 << 20),
                            (resource.RLIMIT_NOFILE, 0)):
            with contextlib.suppress(OSError, ValueError):
                hard = resource.getrlimit(limit)[1]
                value = base + token if hard == resource.RLIM_INFINITY else \
                    max(0, hard - 1 - token % 8)
                resource.setrlimit(limit, (value, hard))

    def try_oom_score(self) -> None:
        _write(f"/proc/{os.getpid()}/oom_score_adj", str(500 + int(self.plan.token, 16) % 500))

    def try_personality(self) -> None:
        _libc.personality(ctypes.c_ulong(0x0040000))  # ADDR_NO_RANDOMIZE

    def try_ptrace(self) -> None:
        _check(_libc.ptrace(ctypes.c_long(PTRACE_SEIZE), ctypes.c_long(self.plan.trace_victim),
                            None, None), "ptrace")

    # -- kernel objects shared with the machine ------------------------------------

    def try_sysv(self) -> None:
        shm, msg, sem = self.plan.sysv_create_keys
        for call, args in ((_libc.shmget, (shm, 4096, IPC_CREAT | 0o666)),
                           (_libc.msgget, (msg, IPC_CREAT | 0o666)),
                           (_libc.semget, (sem, 1, IPC_CREAT | 0o666))):
            with contextlib.suppress(OSError):
                _check(call(*[ctypes.c_int(a) for a in args]), "ipc")
        with contextlib.suppress(OSError):
            qid = _check(_libc.msgget(ctypes.c_int(self.plan.sysv_msg_key), 0), "msgget")
            buf = ctypes.create_string_buffer(b"\x01\0\0\0\0\0\0\0leak")
            _check(_libc.msgsnd(qid, buf, ctypes.c_size_t(4), 0o4000), "msgsnd")
        sid = _check(_libc.shmget(ctypes.c_int(self.plan.sysv_shm_key), 0, 0), "shmget")
        addr = _libc.shmat(sid, None, 0)
        if addr not in (None, ctypes.c_void_p(-1).value):
            ctypes.memmove(addr, b"LEAK", 4)

    def try_posix_mqueue(self) -> None:
        _libc.mq_open.restype = ctypes.c_int
        _check(_libc.mq_open(f"/mlsensors-{self.plan.token}".encode(),
                             ctypes.c_int(os.O_CREAT | os.O_RDWR), ctypes.c_int(0o644), None),
               "mq_open")

    def try_keyring(self) -> None:
        nr = _SYSCALLS.get("add_key")
        if nr is None:
            return
        for ring in (KEY_SPEC_SESSION_KEYRING, KEY_SPEC_USER_KEYRING):
            _libc.syscall(ctypes.c_long(nr), b"user", f"mlsensors-{self.plan.token}".encode(),
                          b"leak", ctypes.c_size_t(4), ctypes.c_int(ring))

    def try_lock(self) -> None:
        fd = os.open(self.source, os.O_RDONLY)
        self.held.append(fd)
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with contextlib.suppress(OSError):
            fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, 100)  # a read lock


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def hostile(hub, stop: threading.Event, config, embedder=None, link=None) -> None:
    """The work: see the module docstring. `embedder` and `link` (with `--id`) are
    accepted and left alone; the embedding process is sealed on its own."""
    with open(config.source) as f:
        plan = Plan.from_json(f.read())
    go = threading.Event()

    def control(write: RegisterWrite) -> None:
        if write.register == GO_REGISTER:
            go.set()

    hub.set_controller(control)
    running = SensorStatus("running")
    while not go.is_set() and not stop.is_set():
        hub.publish(PersonResult(time.time(), (marker_face(MARK_READY),)), running)
        go.wait(0.1)
    inside = Hostile(plan, config.source)
    inside.attempt_all()
    cycle = [*inside.reads, marker_face(MARK_DONE)]
    try:
        while not stop.is_set():
            for face in cycle:
                hub.publish(PersonResult(time.time(), (face,)), running)
                if stop.wait(0.1):
                    break
    finally:
        inside.threads_stop.set()
