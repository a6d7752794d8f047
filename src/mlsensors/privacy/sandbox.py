"""Seal the calling process: no network, no file writes, no new privileges, capped memory.

Python 3.11 has no `os.unshare`, Landlock or seccomp bindings, so this module calls the
kernel through libc with ctypes. `seal` must run while the process is single-threaded
(the kernel refuses a new user namespace to a threaded process, and Landlock and
seccomp must cover every thread), so the sensing child calls it first thing, before it
imports numpy, LiteRT or OpenCV, opens the camera or reads a frame.

Layers, each one closing what the others might leave open:

- user + network namespace: the process sees only an isolated loopback, so there is
  nothing to connect to (the parent's 127.0.0.1 is a different interface);
- seccomp: `socket()` for any family but AF_UNIX fails, and so do `execve` and
  `io_uring_setup` (io_uring can create sockets without the socket syscall); this is
  the whole network barrier where the kernel refuses namespaces;
- Landlock: the file system is read-only, and only below the paths given (code, model
  cache, source, gallery); on ABI ≥ 4 TCP bind/connect are denied too, on ABI ≥ 6
  signals and abstract sockets outside the sandbox;
- rlimits: RLIMIT_FSIZE 0 (with SIGXFSZ ignored, a write fails with EFBIG instead of
  killing), RLIMIT_CORE 0 (a crash never dumps a frame to disk), RLIMIT_AS as the memory
  cap; no_new_privs and a non-dumpable process.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import resource
import signal
import struct
from dataclasses import dataclass, field

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000

PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38

# Landlock: the same syscall numbers on x86-64 and aarch64.
_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1

FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
FS_IOCTL_DEV = 1 << 15  # ABI 5
NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1

_FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV

# seccomp
_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_FILTER_FLAG_TSYNC = 1
_SECCOMP_RET_KILL_PROCESS = 0x80000000
_SECCOMP_RET_ERRNO = 0x00050000
_SECCOMP_RET_ALLOW = 0x7FFF0000
_BPF_LD_W_ABS = 0x20
_BPF_JEQ_K = 0x15
_BPF_JGE_K = 0x35
_BPF_RET_K = 0x06


@dataclass(frozen=True, slots=True)
class _Arch:
    audit: int
    seccomp: int
    socket: int
    execve: int
    execveat: int
    io_uring_setup: int
    x32_bit: bool


_ARCHES = {
    "x86_64": _Arch(0xC000003E, 317, 41, 59, 322, 425, True),
    "aarch64": _Arch(0xC00000B7, 277, 198, 221, 281, 425, False),
}


@dataclass(frozen=True, slots=True)
class SealPolicy:
    """What the sealed process may still do.

    `read_paths` are files or directories it may read (and, for `exec_paths`, map as
    code); everything else on the file system is out of reach and nothing but
    `write_paths` is writable.
    `device_paths` (a camera) may be opened read-write for ioctl, as V4L2 requires.
    `memory_bytes` is the RLIMIT_AS cap (0: none). `require_namespace` refuses to run
    on the seccomp fallback alone (tests set it False to exercise the fallback).
    """

    read_paths: tuple[str, ...] = ()
    write_paths: tuple[str, ...] = ()
    """Folders in which regular files may also be created, written, replaced and removed
    (the ID gallery's folder, and only when identification is on)."""
    file_bytes: int = 0
    """RLIMIT_FSIZE when `write_paths` is not empty (else always 0): no file written
    there can grow past this."""
    exec_paths: tuple[str, ...] = ()
    device_paths: tuple[str, ...] = ()
    memory_bytes: int = 0
    use_namespace: bool = True
    use_seccomp: bool = True
    use_landlock: bool = True


@dataclass(frozen=True, slots=True)
class SealReport:
    """What actually got applied; the child reports it, the audit checks it from /proc."""

    namespace: bool
    seccomp: bool
    landlock_abi: int
    no_new_privs: bool
    memory_bytes: int
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def network_sealed(self) -> bool:
        return self.namespace or self.seccomp


class SealError(OSError):
    """The process could not be sealed as required; the caller must not go on sensing."""


def _fail(what: str) -> SealError:
    err = ctypes.get_errno()
    return SealError(err, f"{what}: {os.strerror(err)}")


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when Landlock is absent or disabled."""
    r = _libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                      ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION))
    return int(r) if r > 0 else 0


def _thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def unshare_network() -> None:
    """Enter a fresh user and network namespace (only an isolated loopback remains)."""
    if _libc.unshare(ctypes.c_int(CLONE_NEWUSER | CLONE_NEWNET)) != 0:
        raise _fail("unshare(CLONE_NEWUSER|CLONE_NEWNET)")


def set_no_new_privs() -> None:
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise _fail("prctl(PR_SET_NO_NEW_PRIVS)")


def _bpf(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k & 0xFFFFFFFF)


def seccomp_program(arch: _Arch) -> bytes:
    """The BPF filter: AF_UNIX sockets only, no exec, no io_uring; foreign ABIs killed.

    seccomp_data: nr at offset 0, arch at 4, args[0] (low word on little-endian) at 16.
    """
    deny_family = _SECCOMP_RET_ERRNO | errno.EAFNOSUPPORT
    deny = _SECCOMP_RET_ERRNO | errno.EPERM
    prog = [
        _bpf(_BPF_LD_W_ABS, 0, 0, 4),
        _bpf(_BPF_JEQ_K, 1, 0, arch.audit),
        _bpf(_BPF_RET_K, 0, 0, _SECCOMP_RET_KILL_PROCESS),
        _bpf(_BPF_LD_W_ABS, 0, 0, 0),
    ]
    if arch.x32_bit:  # x32 syscalls share the x86-64 audit arch; refuse them outright
        prog += [_bpf(_BPF_JGE_K, 0, 1, 0x40000000), _bpf(_BPF_RET_K, 0, 0, deny)]
    for nr in (arch.execve, arch.execveat, arch.io_uring_setup):
        prog += [_bpf(_BPF_JEQ_K, 0, 1, nr), _bpf(_BPF_RET_K, 0, 0, deny)]
    prog += [
        _bpf(_BPF_JEQ_K, 0, 4, arch.socket),
        _bpf(_BPF_LD_W_ABS, 0, 0, 16),
        _bpf(_BPF_JEQ_K, 0, 1, 1),  # AF_UNIX
        _bpf(_BPF_RET_K, 0, 0, _SECCOMP_RET_ALLOW),
        _bpf(_BPF_RET_K, 0, 0, deny_family),
        _bpf(_BPF_RET_K, 0, 0, _SECCOMP_RET_ALLOW),
    ]
    return b"".join(prog)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install_seccomp() -> None:
    """Load the filter on every thread (TSYNC); needs no_new_privs first."""
    arch = _ARCHES.get(platform.machine())
    if arch is None:
        raise SealError(errno.ENOSYS, f"no seccomp filter for {platform.machine()}")
    code = seccomp_program(arch)
    buf = ctypes.create_string_buffer(code, len(code))
    prog = _SockFprog(len(code) // 8, ctypes.cast(buf, ctypes.c_void_p))
    r = _libc.syscall(arch.seccomp, _SECCOMP_SET_MODE_FILTER, _SECCOMP_FILTER_FLAG_TSYNC,
                      ctypes.byref(prog))
    if r != 0:
        raise _fail("seccomp(SECCOMP_SET_MODE_FILTER)")


def _fs_rights(abi: int) -> int:
    rights = (1 << 13) - 1
    if abi >= 2:
        rights |= FS_REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    if abi >= 5:
        rights |= FS_IOCTL_DEV
    return rights


def install_landlock(policy: SealPolicy, abi: int) -> None:
    """Deny every file-system change everywhere; allow reading below the policy's paths."""
    handled_fs = _fs_rights(abi)
    attr = struct.pack("<Q", handled_fs)
    if abi >= 4:
        attr += struct.pack("<Q", NET_BIND_TCP | NET_CONNECT_TCP)
    if abi >= 6:
        attr += struct.pack("<Q", SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL)
    buf = ctypes.create_string_buffer(attr, len(attr))
    ruleset = _libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, buf, ctypes.c_size_t(len(attr)),
                            ctypes.c_uint32(0))
    if ruleset < 0:
        raise _fail("landlock_create_ruleset")
    try:
        read = FS_READ_FILE | FS_READ_DIR
        rules = [(p, read) for p in policy.read_paths]
        rules += [(p, read | FS_EXECUTE) for p in policy.exec_paths]
        write = read | FS_WRITE_FILE | FS_MAKE_REG | FS_REMOVE_FILE | FS_TRUNCATE
        rules += [(p, write) for p in policy.write_paths]
        device = FS_READ_FILE | FS_WRITE_FILE | (FS_IOCTL_DEV if abi >= 5 else 0)
        rules += [(p, device) for p in policy.device_paths]
        for path, rights in rules:
            _add_path_rule(int(ruleset), path, rights & handled_fs)
        if _libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(int(ruleset)),
                         ctypes.c_uint32(0)) != 0:
            raise _fail("landlock_restrict_self")
    finally:
        os.close(int(ruleset))


def _add_path_rule(ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a path that does not exist grants nothing
    try:
        if not os.path.isdir(path):
            rights &= _FILE_RIGHTS
        attr = struct.pack("<Qi", rights, fd)
        buf = ctypes.create_string_buffer(attr, len(attr))
        if _libc.syscall(_SYS_LANDLOCK_ADD_RULE, ctypes.c_int(ruleset),
                         ctypes.c_int(_LANDLOCK_RULE_PATH_BENEATH), buf,
                         ctypes.c_uint32(0)) != 0:
            raise _fail(f"landlock_add_rule({path})")
    finally:
        os.close(fd)


def set_limits(memory_bytes: int, file_bytes: int = 0) -> None:
    """No file growth beyond `file_bytes`, no core dumps, capped address space;
    SIGXFSZ → EFBIG, not death."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def seal(policy: SealPolicy) -> SealReport:
    """Apply every layer the kernel supports; raise SealError when the network stays open.

    Order matters: the namespace needs a single-threaded process and must come before
    no_new_privs-dependent steps are irrelevant to it; Landlock and seccomp need
    no_new_privs; rlimits last so that the earlier steps are not starved.
    """
    problems: list[str] = []
    threads = _thread_count()
    if threads > 1:
        raise SealError(errno.EINVAL, f"seal() needs a single-threaded process ({threads} "
                                      "threads running)")
    namespace = False
    if policy.use_namespace:
        try:
            unshare_network()
            namespace = True
        except SealError as e:
            problems.append(str(e))
    set_no_new_privs()
    if _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        problems.append("prctl(PR_SET_DUMPABLE, 0) failed")
    abi = landlock_abi() if policy.use_landlock else 0
    if abi:
        install_landlock(policy, abi)
    elif policy.use_landlock:
        problems.append("Landlock is not available: file reads are not confined")
    seccomp = False
    if policy.use_seccomp:
        try:
            install_seccomp()
            seccomp = True
        except SealError as e:
            problems.append(str(e))
    if not (namespace or seccomp):
        raise SealError(errno.EPERM, "neither a network namespace nor seccomp is available; "
                                     "the network cannot be sealed ("
                                     + "; ".join(problems) + ")")
    set_limits(policy.memory_bytes, policy.file_bytes if policy.write_paths else 0)
    return SealReport(namespace, seccomp, abi, True, policy.memory_bytes, tuple(problems))
