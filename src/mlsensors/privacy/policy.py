"""The sandbox policy, as data, in one place: what a sealed mlsensors process may still do.

Like an nsjail or minijail config, a `Policy` is a frozen description; `launch` is the
one piece of code that enforces it (namespaces, a private root, capabilities dropped,
Landlock, a default-deny seccomp filter, rlimits). Every sealed process — the sensing
child, the face embedder, the coming microphone child — gets a named role from `ROLES`
(`role("sensing")`), completed with the paths of this run by `Policy.for_run`.

Default deny, everywhere:
- syscalls: only `syscalls` are allowed, plus the calls in `arg_rules` when one of their
  argument rules holds (e.g. `clone` only for threads, `prctl` only for the listed
  options, `ioctl` only for the listed requests and device families); everything else
  fails with `deny_errno` (EPERM). socket() is not allowed for any family unless
  `socket_families` names one: the process needs only the pipes it inherits.
  Names are resolved per architecture (x86-64, aarch64) from `syscalls.SYSCALLS`.
- files: the process sees a fresh root holding only `read_paths` and `exec_paths`
  (bind-mounted read-only at their usual paths), the device nodes of its
  `device_families`, and nothing else; `write_paths` is empty for every role.
- namespaces: user, net, mount, pid, ipc, uts (`NAMESPACES`).
- limits: `Limits` (address space, file size 0, descriptors, core 0, processes).

Tests and the escape suite reopen exactly one thing with `Policy.allowing(...)` (a
socket family, extra syscalls, prctl options, a writable path, the command line, /proc)
and must then see the channel open; that is how a check shows it can fail. The launch
API: `launch.LaunchSpec(policy, "module:function", config_json, keep_fds)` and
`launch.start(spec, env=..., **popen)`; the guard takes `policy=` (SealedSensor too) to
run the real sensing child under a reopened copy of `role("sensing")`.
"""

from __future__ import annotations

import errno
import glob
import os
import platform
from dataclasses import dataclass, field, replace

from mlsensors.privacy.syscalls import SYSCALLS

NAMESPACES = ("user", "net", "mnt", "pid", "ipc", "uts")
"""Every namespace the launcher enters (cgroup and time are left: nothing to hide)."""

ARCHES = ("x86_64", "aarch64")
"""Architectures the filter is built for; others are refused (never a weaker filter)."""

SOCKET_FAMILIES = {"AF_UNIX": 1, "AF_INET": 2, "AF_INET6": 10, "AF_NETLINK": 16,
                   "AF_PACKET": 17, "AF_VSOCK": 40}

# prctl options (include/uapi/linux/prctl.h)
PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2
PR_GET_DUMPABLE = 3
PR_SET_NAME = 15
PR_GET_NAME = 16
PR_GET_SECCOMP = 21
PR_CAPBSET_READ = 23
PR_GET_TIMERSLACK = 30
PR_SET_MM = 35
PR_GET_NO_NEW_PRIVS = 39
PR_SET_VMA = 0x53564D41

# clone flags (include/uapi/linux/sched.h)
CLONE_VM = 0x00000100
CLONE_FS = 0x00000200
CLONE_FILES = 0x00000400
CLONE_SIGHAND = 0x00000800
CLONE_THREAD = 0x00010000
CLONE_NEWNS = 0x00020000
CLONE_SYSVSEM = 0x00040000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
_THREAD_ONLY_MASK = (CLONE_VM | CLONE_THREAD | CLONE_SIGHAND | CLONE_NEWNS | CLONE_NEWCGROUP
                     | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID
                     | CLONE_NEWNET)
_THREAD_FLAGS = CLONE_VM | CLONE_THREAD | CLONE_SIGHAND

# fcntl commands: descriptor flags only; no locks (visible machine-wide in /proc/locks),
# leases, owners or notifications.
F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL = 0, 1, 2, 3, 4
F_DUPFD_CLOEXEC = 1030
F_GETPIPE_SZ = 1032

# ioctl requests that any Python process makes on its own descriptors
TCGETS = 0x5401
TIOCGWINSZ = 0x5413
FIONREAD = 0x541B
FIONBIO = 0x5421
FIONCLEX = 0x5450
FIOCLEX = 0x5451

OWN_PID = -1
"""In an `ArgRule`, stands for the sealed process's own PID (known at launch)."""


@dataclass(frozen=True, slots=True)
class ArgRule:
    """Allow a call when `(argument[index] & mask)` is one of `values` (low 32 bits:
    every argument ruled on here is an int or flags word in the kernel)."""

    index: int
    values: tuple[int, ...]
    mask: int = 0xFFFFFFFF
    high: int | None = None
    """Also require the argument's high 32 bits to be this (one value only): for a
    pointer that must be NULL, which no low word alone can say."""


@dataclass(frozen=True, slots=True)
class DeviceFamily:
    """A kind of device a role may open: its nodes, what its library reads to describe
    them, and the ioctl requests it may make. A request is ruled on its type and number
    (bits 8-15 and 0-7; the size and direction bits vary with the ABI): `ioctl_types`
    allows every request of a type, `ioctl_requests` only the (type, number) pairs given
    — for types whose setters leave state other users can read (camera controls, mixer
    elements), only the reads and what capture needs."""

    name: str
    node_globs: tuple[str, ...]
    info_paths: tuple[str, ...]
    ioctl_types: tuple[int, ...] = ()
    ioctl_requests: tuple[int, ...] = ()
    """`type << 8 | number` of each allowed request."""

    def nodes(self) -> tuple[str, ...]:
        return tuple(sorted(p for g in self.node_globs for p in glob.glob(g)))


def _requests(kind: str, numbers: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(ord(kind) << 8 | n for n in numbers)


V4L2 = DeviceFamily(
    "v4l2", ("/dev/video*",), ("/sys/class/video4linux", "/sys/devices", "/run/udev/data"),
    ioctl_requests=_requests("V", (
        0, 2, 4, 5, 8, 9, 15, 16, 17, 18, 19, 21, 22, 23, 25, 26, 27, 36, 37, 38, 39, 58,
        59, 64, 71, 73, 74, 75, 94, 103)))
"""Capture and reads only: QUERYCAP, ENUM_FMT, G/S/TRY_FMT, REQBUFS, QUERYBUF, QBUF,
EXPBUF, DQBUF, STREAMON/OFF, G/S_PARM, G_STD, ENUMSTD, ENUMINPUT, G_CTRL, QUERYCTRL,
QUERYMENU, G/S_INPUT, CROPCAP, G_CROP, G_EXT_CTRLS, TRY_EXT_CTRLS, ENUM_FRAMESIZES,
ENUM_FRAMEINTERVALS, G_SELECTION, QUERY_EXT_CTRL. Never S_CTRL, S_EXT_CTRLS, S_STD,
S_CROP or S_SELECTION: a camera keeps those after close, for any user of the device to
read. (The format and frame rate it chooses are visible too: a few bits per change.)"""
ALSA = DeviceFamily(
    "alsa", ("/dev/snd/*",),
    ("/sys/class/sound", "/sys/devices", "/usr/share/alsa", "/proc/asound"),
    ioctl_types=(ord("A"),),
    ioctl_requests=_requests("U", (0x00, 0x01, 0x10, 0x11, 0x12, 0x16, 0x1A, 0x30, 0x31,
                                   0x32)))
"""PCM ('A') requests, which act on the process's own capture stream, and of the control
device ('U') only the reads: PVERSION, CARD_INFO, ELEM_LIST/INFO/READ, SUBSCRIBE_EVENTS,
TLV_READ, PCM_NEXT_DEVICE, PCM_INFO, PCM_PREFER_SUBDEVICE. Never ELEM_WRITE, ELEM_ADD,
ELEM_REPLACE, TLV_WRITE: mixer levels and user controls outlive the process and every
user of the card can read them."""


@dataclass(frozen=True, slots=True)
class Limits:
    """rlimits of the sealed process. `address_space` 0: no cap. `file_size` 0 (with
    SIGXFSZ ignored: EFBIG, not death), `core` 0: a crash never dumps a frame to disk."""

    address_space: int = 0
    file_size: int = 0
    open_files: int = 64
    core: int = 0
    processes: int = 0
    """RLIMIT_NPROC (0: leave as is); counted per user in the process's own namespace."""


BASE_SYSCALLS = frozenset({
    # memory
    "brk", "mmap", "munmap", "mremap", "mprotect", "mincore", "membarrier",
    "get_mempolicy", "set_mempolicy", "mbind",
    # descriptors it holds: read, write, wait
    "read", "readv", "pread64", "preadv", "write", "writev", "pwrite64", "close", "dup",
    "dup3", "lseek", "pipe2", "poll", "ppoll", "select", "pselect6", "epoll_create1",
    "epoll_ctl", "epoll_wait", "epoll_pwait", "eventfd2",
    # files it may read (the mount namespace and Landlock decide which)
    "openat", "newfstatat", "fstat", "statx", "readlinkat", "getdents64", "faccessat",
    "faccessat2", "getcwd", "fstatfs", "statfs",
    # the x86-64 names of the same (aarch64 has only the *at forms)
    "open", "stat", "lstat", "access", "readlink", "dup2", "pipe",
    # threads, time, signals to itself
    "futex", "set_robust_list", "get_robust_list", "rseq", "set_tid_address", "gettid",
    "getpid", "getppid", "sched_yield", "sched_getaffinity", "sched_getparam",
    "sched_getscheduler", "sched_get_priority_max", "sched_get_priority_min",
    "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday",
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigtimedwait", "sigaltstack",
    "restart_syscall", "exit", "exit_group", "wait4", "waitid",
    # identity and facts (read-only)
    "getuid", "geteuid", "getgid", "getegid", "getgroups", "getresuid", "getresgid",
    "uname", "getrlimit", "getrusage", "sysinfo", "getrandom", "getpgrp",
    "getpgid", "getsid", "times", "getcpu", "arch_prctl", "capget",
})
"""What CPython, numpy, OpenCV, LiteRT and onnxruntime call once running (measured with
strace on `serve --id`, detector auto); no call that changes the file system or
reaches another process."""

BASE_ARG_RULES: tuple[tuple[str, ArgRule], ...] = (
    ("clone", ArgRule(0, (_THREAD_FLAGS,), _THREAD_ONLY_MASK)),
    ("prctl", ArgRule(0, (PR_GET_NAME, PR_GET_DUMPABLE, PR_GET_PDEATHSIG, PR_GET_SECCOMP,
                          PR_CAPBSET_READ, PR_GET_TIMERSLACK, PR_GET_NO_NEW_PRIVS))),
    ("fcntl", ArgRule(1, (F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC,
                          F_GETPIPE_SZ))),
    ("ioctl", ArgRule(1, (TCGETS, TIOCGWINSZ, FIONREAD, FIONBIO, FIONCLEX, FIOCLEX))),
    ("kill", ArgRule(0, (OWN_PID,))),
    ("tgkill", ArgRule(0, (OWN_PID,))),
    ("prlimit64", ArgRule(2, (0,), high=0)),
    ("madvise", ArgRule(2, (0, 1, 2, 3, 4, 8, 10, 11, 14, 15, 16, 17, 18, 19))),
    ("fadvise64", ArgRule(3, (0, 1, 2, 3))),
)
"""Calls allowed only with these arguments: clone for threads and never a namespace,
prctl to read (never PR_SET_NAME, PR_SET_MM or PR_SET_VMA), fcntl without locks, ioctl
for descriptor flags, signals only to itself, prlimit64 only to read (a NULL new limit:
/proc/PID/limits is world-readable, so a settable soft limit is a 64 kbit/s channel),
madvise without MADV_PAGEOUT/COLD/MERGEABLE/REMOVE (they evict shared file pages or move
the machine-wide KSM counters), fadvise64 without DONTNEED/NOREUSE (which evict a shared
file's pages from the page cache)."""

ENOSYS_SYSCALLS = frozenset({"clone3"})
"""Answered ENOSYS rather than EPERM: clone3's flags are behind a pointer seccomp cannot
read, so it is refused in the way that makes glibc fall back to clone (ruled above)."""


@dataclass(frozen=True, slots=True)
class Policy:
    """One sealed role. Build with `role(name).for_run(...)`; reopen with `allowing`."""

    role: str
    syscalls: frozenset[str] = BASE_SYSCALLS
    arg_rules: tuple[tuple[str, ArgRule], ...] = BASE_ARG_RULES
    enosys: frozenset[str] = ENOSYS_SYSCALLS
    socket_families: tuple[str, ...] = ()
    read_paths: tuple[str, ...] = ()
    exec_paths: tuple[str, ...] = ()
    write_paths: tuple[str, ...] = ()
    device_families: tuple[DeviceFamily, ...] = ()
    devices: tuple[str, ...] = ()
    """The device nodes of this run (from `device_families`; `for_run` picks them)."""
    limits: Limits = field(default_factory=Limits)
    namespaces: tuple[str, ...] = NAMESPACES
    proc: bool = False
    """Mount a private, read-only /proc (only this namespace's processes) in the root."""
    deny_errno: int = errno.EPERM
    comm: str = ""
    """The fixed thread name (/proc/PID/comm) set before PR_SET_NAME is denied."""
    empty_cmdline: bool = True
    """Point /proc/PID/cmdline at zero bytes (False only to reopen it in tests)."""

    def for_run(self, *, read_paths=(), exec_paths=(), devices=(),
                address_space: int | None = None) -> Policy:
        """This role with the paths of one run: code, models, source, device nodes."""
        limits = self.limits if address_space is None else replace(
            self.limits, address_space=address_space)
        return replace(self, read_paths=_unique(self.read_paths + tuple(read_paths)),
                       exec_paths=_unique(self.exec_paths + tuple(exec_paths)),
                       devices=_unique(self.devices + tuple(devices)), limits=limits)

    def allowing(self, *, socket_families=(), syscalls=(), prctl=(), write_paths=(),
                 arg_rules=(), namespaces=None, proc=None, cmdline=False) -> Policy:
        """The same policy with one thing reopened (for tests that must see a channel
        open); never used by the product."""
        rules = tuple(r for r in self.arg_rules if r[0] not in syscalls) + tuple(arg_rules)
        if prctl:
            rules += (("prctl", ArgRule(0, tuple(prctl))),)
        for family in socket_families:
            if family not in SOCKET_FAMILIES:
                raise ValueError(f"unknown socket family {family}")
        return replace(
            self, syscalls=self.syscalls | frozenset(syscalls), arg_rules=rules,
            socket_families=_unique(self.socket_families + tuple(socket_families)),
            write_paths=_unique(self.write_paths + tuple(write_paths)),
            namespaces=self.namespaces if namespaces is None else tuple(namespaces),
            proc=self.proc if proc is None else proc,
            empty_cmdline=self.empty_cmdline and not cmdline)

    def ioctl_types(self) -> tuple[int, ...]:
        return tuple(sorted({t for f in self.device_families for t in f.ioctl_types}))

    def ioctl_requests(self) -> tuple[int, ...]:
        return tuple(sorted({r for f in self.device_families for r in f.ioctl_requests}))

    def resolve(self, arch: str | None = None) -> ResolvedSyscalls:
        """Syscall numbers for `arch` (default: this machine); names an architecture
        lacks are skipped, unknown names are an error (a typo must not open nothing)."""
        arch = arch or platform.machine()
        if arch not in ARCHES:
            raise ValueError(f"no seccomp policy for the {arch} architecture")
        column = ARCHES.index(arch)
        ruled = {name for name, _ in self.arg_rules}
        if overlap := sorted(ruled & set(self.syscalls)):
            raise ValueError(f"policy {self.role}: {overlap} both allowed outright and "
                             "ruled on their arguments (the rule would be void)")
        names = set(self.syscalls) | ruled | set(self.enosys)
        if self.socket_families:
            names.add("socket")
        unknown = sorted(n for n in names if n not in SYSCALLS)
        if unknown:
            raise ValueError(f"unknown syscalls in policy {self.role}: {unknown}")

        def nr(name: str) -> int | None:
            return SYSCALLS[name][column]

        allow = tuple(sorted({n for s in self.syscalls if (n := nr(s)) is not None}))
        rules = [(n, rule) for name, rule in self.arg_rules if (n := nr(name)) is not None]
        if self.ioctl_types():
            rules.append((nr("ioctl"), ArgRule(1, tuple(t << 8 for t in self.ioctl_types()),
                                               0xFF00)))
        if self.ioctl_requests():
            rules.append((nr("ioctl"), ArgRule(1, self.ioctl_requests(), 0xFFFF)))
        if self.socket_families:
            rules.append((nr("socket"), ArgRule(
                0, tuple(SOCKET_FAMILIES[f] for f in self.socket_families))))
        enosys = tuple(sorted({n for s in self.enosys if (n := nr(s)) is not None}))
        return ResolvedSyscalls(arch, allow, tuple(rules), enosys)


@dataclass(frozen=True, slots=True)
class ResolvedSyscalls:
    """A policy's syscall part as numbers for one architecture (what the BPF encodes)."""

    arch: str
    allow: tuple[int, ...]
    rules: tuple[tuple[int, ArgRule], ...]
    enosys: tuple[int, ...]


def _unique(items) -> tuple:
    return tuple(dict.fromkeys(items))


BASE_READS = ("/etc/ld.so.cache", "/etc/localtime", "/sys/devices/system/cpu",
              "/proc/cpuinfo")
"""Read by the loader, time formatting and LiteRT/onnxruntime's CPU detection."""

DEV_NODES = ("/dev/null", "/dev/zero", "/dev/urandom")
"""Device nodes every role gets (bound read-write: writing to them stores nothing)."""

ROLES: dict[str, Policy] = {
    "sensing": Policy(
        role="sensing", read_paths=BASE_READS, device_families=(V4L2,),
        limits=Limits(address_space=768 << 20, open_files=64),
        comm="mlsensors-sense"),
    "embedder": Policy(
        role="embedder", read_paths=BASE_READS,
        limits=Limits(address_space=384 << 20, open_files=32),
        comm="mlsensors-embed"),
    "microphone": Policy(
        role="microphone", read_paths=(*BASE_READS, "/etc/asound.conf"),
        device_families=(ALSA,), limits=Limits(address_space=512 << 20, open_files=64),
        comm="mlsensors-mic"),
}
"""The sealed roles. The sensing role may start its embedder before it is sealed (the
launcher does that); none may start anything after."""


def role(name: str) -> Policy:
    try:
        return ROLES[name]
    except KeyError:
        raise ValueError(f"no sandbox role {name!r} (known: {', '.join(ROLES)})") from None


def existing(paths) -> tuple[str, ...]:
    """The given paths that exist, absolute, without duplicates."""
    return _unique(os.path.abspath(p) for p in paths if p and os.path.exists(p))
