"""The one launcher that enforces a `policy.Policy`: every sealed mlsensors process
starts here, as `python -m mlsensors.privacy.launch FD`.

The caller (`start`) writes a `LaunchSpec` (the policy, the target function, its
configuration, optionally a companion) into a pipe whose read end is FD; nothing but
that number is on the command line. The launcher then, single-threaded and before any
heavy import:

1. starts the companion (the embedder of the sensing role) through this same
   launcher, outside its own sandbox, with two pipes to it;
2. enters new user, net, mount, pid, ipc and uts namespaces and forks: the parent
   stays as a waiter (it reaps, relays the exit status, and its death kills the
   sealed process), the child is PID 1 of the new pid namespace and becomes sealed:
3. a private root: a tmpfs holding only the policy's read and code paths (bound
   read-only at their usual paths), /dev/null, /dev/zero, /dev/urandom and the
   policy's device nodes, no /proc unless the policy asks (then a private read-only
   one); the old root is detached. Unix sockets by path (D-Bus, X11, docker, a
   broker's listener, the product's own `--bus unix:`) do not exist inside;
4. a constant identity: hostname "mlsensors", the role's thread name, an empty
   /proc/PID/cmdline (PR_SET_MM_MAP, then PR_SET_MM and PR_SET_NAME are denied);
5. descriptors: all closed but stdio and the policy's pipes; rlimits; not dumpable;
   no_new_privs; every capability dropped (bounding, effective, permitted, ambient);
6. Landlock (a second wall on the same paths, plus TCP and signal/abstract-socket
   scoping), then the default-deny seccomp filter (TSYNC), last.

Any layer that cannot be applied is an error (exit status EXIT_SEAL_FAILED), never a
quietly weaker sandbox; only `LaunchSpec.insecure` (the `--insecure` flag) runs the
target without one, and says so.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import platform
import resource
import signal
import struct
import subprocess
import sys
import sysconfig
from dataclasses import asdict, dataclass, field, replace

from mlsensors.privacy.policy import (
    ARCHES,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    DEV_NODES,
    OWN_PID,
    PR_SET_NAME,
    ArgRule,
    DeviceFamily,
    Limits,
    Policy,
    ResolvedSyscalls,
)
from mlsensors.privacy.syscalls import SYSCALLS

EXIT_SEAL_FAILED = 3
WAITER_COMM = "mlsensors-wait"
"""Thread name of the waiter, so that the sealed process is told apart from it."""
HOSTNAME = b"mlsensors"

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.sbrk.restype = ctypes.c_void_p

_NS_FLAGS = {"user": CLONE_NEWUSER, "net": CLONE_NEWNET, "mnt": CLONE_NEWNS,
             "pid": CLONE_NEWPID, "ipc": CLONE_NEWIPC, "uts": CLONE_NEWUTS}


class SealError(OSError):
    """A layer of the policy could not be applied; the target must not run."""


def _fail(what: str) -> SealError:
    err = ctypes.get_errno()
    return SealError(err, f"{what}: {os.strerror(err)}")


# --- the specification ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """What to run and under which policy; crosses to the launcher as JSON on a pipe."""

    policy: Policy
    target: str
    """"module:function", called as function(config, companion) once sealed."""
    config: str = "{}"
    keep_fds: tuple[int, ...] = ()
    """Inherited descriptors the target uses (its pipes); all others are closed."""
    companion: LaunchSpec | None = None
    insecure: bool = False

    def to_json(self) -> str:
        return json.dumps(_spec_dict(self))

    @classmethod
    def from_json(cls, text: str) -> LaunchSpec:
        return _spec_from(json.loads(text))


def _spec_dict(spec: LaunchSpec) -> dict:
    return {"policy": asdict(spec.policy) | {"syscalls": sorted(spec.policy.syscalls),
                                              "enosys": sorted(spec.policy.enosys)},
            "target": spec.target, "config": spec.config, "keep_fds": list(spec.keep_fds),
            "companion": _spec_dict(spec.companion) if spec.companion else None,
            "insecure": spec.insecure}


def _policy_from(raw: dict) -> Policy:
    raw = dict(raw)
    raw["syscalls"] = frozenset(raw["syscalls"])
    raw["enosys"] = frozenset(raw["enosys"])
    raw["arg_rules"] = tuple(
        (name, ArgRule(r["index"], tuple(r["values"]), r["mask"], r.get("high")))
        for name, r in raw["arg_rules"])
    raw["device_families"] = tuple(
        DeviceFamily(d["name"], tuple(d["node_globs"]), tuple(d["info_paths"]),
                     tuple(d["ioctl_types"]), tuple(d["ioctl_requests"]))
        for d in raw["device_families"])
    raw["limits"] = Limits(**raw["limits"])
    for key in ("socket_families", "read_paths", "exec_paths", "write_paths", "devices",
                "namespaces"):
        raw[key] = tuple(raw[key])
    return Policy(**raw)


def _spec_from(raw: dict) -> LaunchSpec:
    return LaunchSpec(_policy_from(raw["policy"]), raw["target"], raw["config"],
                      tuple(raw["keep_fds"]),
                      _spec_from(raw["companion"]) if raw["companion"] else None,
                      raw["insecure"])


def start(spec: LaunchSpec, *, env: dict[str, str], python: str = sys.executable,
          **popen) -> subprocess.Popen:
    """Start the launcher for `spec`; `popen` as for subprocess.Popen (pipes for stdio;
    `pass_fds` must include `spec.keep_fds`). Returns the waiter's Popen."""
    read_end, write_end = os.pipe()
    data = spec.to_json().encode()
    try:
        pass_fds = (*popen.pop("pass_fds", ()), read_end)
        proc = subprocess.Popen([python, "-m", "mlsensors.privacy.launch", str(read_end)],
                                pass_fds=pass_fds, close_fds=True, env=env, cwd="/",
                                start_new_session=True, **popen)
    finally:
        os.close(read_end)
    try:
        with os.fdopen(write_end, "wb") as f:  # the launcher reads it at once
            f.write(data)
    except BrokenPipeError:
        pass  # it died at start: seen as its exit
    return proc


def code_paths() -> tuple[str, ...]:
    """Directories Python may import (and map) code from: the interpreter, sys.path, libs.

    The current directory is left out on purpose: it may be the user's home.
    """
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, "/usr/lib", "/usr/lib64",
             "/lib", "/lib64", "/usr/local/lib"}
    paths.update(v for k, v in sysconfig.get_paths().items() if k.endswith("lib"))
    cwd = os.getcwd()
    paths.update(p for p in sys.path if p and p != cwd and os.path.isdir(p))
    return tuple(sorted(p for p in paths if os.path.exists(p)))


def comm_of(pid: int | str) -> str:
    """/proc/PID/comm ("" when the process is gone)."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def descendants_named(pid: int, comm: str) -> list[int]:
    """Processes below `pid` whose thread name is `comm` (how sealed processes are
    found: their command line is empty)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            with contextlib.suppress(OSError, ValueError), \
                    open(f"/proc/{current}/task/{task}/children") as f:
                for kid in map(int, f.read().split()):
                    todo.append(kid)
                    if comm_of(kid) == comm:
                        found.append(kid)
    return sorted(found)


def sealed_pid(waiter_pid: int, comm: str) -> int:
    """The sealed process of a waiter (its child named `comm`), 0 while there is none."""
    try:
        with open(f"/proc/{waiter_pid}/task/{waiter_pid}/children") as f:
            kids = [int(k) for k in f.read().split()]
    except OSError:
        return 0
    return next((kid for kid in kids if comm_of(kid) == comm), 0)


# --- what got applied ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LaunchReport:
    """What the launcher applied, printed by the sealed process at start."""

    role: str
    namespaces: tuple[str, ...]
    landlock_abi: int
    syscalls_allowed: int
    proc: bool
    problems: tuple[str, ...] = field(default_factory=tuple)

    def line(self) -> str:
        return (f"sealed: role={self.role} namespaces={','.join(self.namespaces)} "
                f"root=private proc={'private' if self.proc else 'none'} caps=none "
                f"landlock_abi={self.landlock_abi} seccomp=allow-list"
                f"({self.syscalls_allowed} calls) cmdline=empty")


# --- layers ---------------------------------------------------------------------------

def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def enter_namespaces(names: tuple[str, ...]) -> None:
    flags = 0
    for name in names:
        flags |= _NS_FLAGS[name]
    uid, gid = os.getuid(), os.getgid()
    if _libc.unshare(ctypes.c_int(flags)) != 0:
        raise _fail(f"unshare({','.join(names)})")
    if "user" in names:
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1\n")
        _write("/proc/self/gid_map", f"{gid} {gid} 1\n")


MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
MNT_DETACH = 2
_ST_TO_MS = {os.ST_NOSUID: MS_NOSUID, os.ST_NODEV: MS_NODEV, os.ST_NOEXEC: MS_NOEXEC,
             os.ST_NOATIME: MS_NOATIME, os.ST_NODIRATIME: MS_NODIRATIME,
             os.ST_RELATIME: MS_RELATIME}


def _mount(source, target, fstype, flags, data=None) -> None:
    enc = [None if v is None else v.encode() for v in (source, target, fstype, data)]
    if _libc.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]) != 0:
        raise _fail(f"mount {source} on {target}")


def _locked_flags(path: str) -> int:
    """The mount flags a remount in a user namespace must keep (they are locked)."""
    st = os.statvfs(path)
    return sum(ms for st_flag, ms in _ST_TO_MS.items() if st.f_flag & st_flag)


def _skeleton(path: str, is_dir: bool) -> None:
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    if is_dir:
        os.makedirs(path, exist_ok=True)
    elif not os.path.exists(path):
        with open(path, "w"):
            pass


def _symlinks_on_the_way(path: str) -> list[tuple[str, str]]:
    """(link, target) for every symlink among `path`'s components (host view)."""
    out = []
    parts = path.strip("/").split("/")
    for i in range(1, len(parts) + 1):
        prefix = "/" + "/".join(parts[:i])
        if os.path.islink(prefix):
            out.append((prefix, os.readlink(prefix)))
    return out


def build_root(policy: Policy) -> None:
    """Pivot into a tmpfs holding only the policy's paths (see the module docstring)."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    base = "/tmp" if os.path.isdir("/tmp") else "/mnt"
    binds: list[tuple[str, bool, int]] = []  # real path, writable, locked flags
    links: dict[str, str] = {}
    wanted = [(p, False) for p in policy.read_paths + policy.exec_paths] + \
        [(p, True) for p in policy.write_paths if p != "/proc"]
    for path, writable in wanted:
        if not os.path.exists(path):
            continue
        for link, target in _symlinks_on_the_way(path):
            links[link] = target
        binds.append((os.path.realpath(path), writable, _locked_flags(path)))
    devices = [d for d in (*DEV_NODES, *policy.devices) if os.path.exists(d)]
    device_flags = {d: _locked_flags(d) for d in devices}
    _mount("tmpfs", base, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    os.mkdir(f"{base}/oldroot")
    pivot_root = SYSCALLS["pivot_root"][ARCHES.index(platform.machine())]
    if _libc.syscall(pivot_root, base.encode(), f"{base}/oldroot".encode()) != 0:
        raise _fail("pivot_root")
    os.chdir("/")
    done: list[str] = []
    for real, writable, locked in sorted(binds, key=lambda b: (b[0].count("/"), b[0])):
        if any(real == d or real.startswith(d.rstrip("/") + "/") for d in done):
            continue  # inside a path bound already
        src = "/oldroot" + real
        _skeleton(real, os.path.isdir(src))
        _mount(src, real, None, MS_BIND | MS_REC)
        ro = 0 if writable else MS_RDONLY
        _mount(None, real, None, MS_REMOUNT | MS_BIND | ro | MS_NOSUID | MS_NODEV | locked)
        done.append(real)
    for dev in devices:
        _skeleton(dev, False)
        _mount("/oldroot" + dev, dev, None, MS_BIND)
        _mount(None, dev, None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NOEXEC
               | device_flags[dev])
    for link, target in sorted(links.items()):
        if not os.path.lexists(link):
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink(target, link)
    if policy.proc:
        os.makedirs("/proc", exist_ok=True)
        ro = 0 if "/proc" in policy.write_paths else MS_RDONLY  # (reopened in a test)
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC | ro)
    if _libc.umount2(b"/oldroot", MNT_DETACH) != 0:
        raise _fail("umount2(/oldroot)")
    os.rmdir("/oldroot")
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chdir("/")


PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP = 1, 4, 24
PR_SET_MM, PR_SET_MM_MAP, PR_SET_NO_NEW_PRIVS = 35, 14, 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4


def set_comm(name: str) -> None:
    if _libc.prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0) != 0:
        raise _fail("prctl(PR_SET_NAME)")


def empty_cmdline() -> None:
    """Point the argument area at zero bytes: /proc/PID/cmdline reads empty, and with
    PR_SET_MM denied afterwards nothing written to memory can show there."""
    with open("/proc/self/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    # fields[0] is field 3 (state) of proc(5)
    def at(n: int) -> int:
        return int(fields[n - 3])
    arg_start = at(48)
    values = [at(26), at(27), at(45), at(46), at(47), int(_libc.sbrk(0)), at(28),
              arg_start, arg_start, at(50), at(51)]
    data = struct.pack("<11QQII", *values, 0, 0, 0xFFFFFFFF)
    buf = ctypes.create_string_buffer(data, len(data))
    if _libc.prctl(PR_SET_MM, PR_SET_MM_MAP, buf, ctypes.c_ulong(len(data)), 0) != 0:
        raise _fail("prctl(PR_SET_MM_MAP)")


def close_other_fds(keep: tuple[int, ...]) -> None:
    """Close every descriptor but stdio and `keep` (close_range over the gaps)."""
    low = 3
    for fd in sorted({*keep, 1 << 30}):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1


def set_limits(limits: Limits) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size, limits.file_size))
    resource.setrlimit(resource.RLIMIT_CORE, (limits.core, limits.core))
    if limits.open_files:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
    if limits.address_space:
        resource.setrlimit(resource.RLIMIT_AS, (limits.address_space,) * 2)
    if limits.processes:
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes,) * 2)


def drop_capabilities() -> None:
    """Bounding set, ambient set, then effective/permitted/inheritable: all empty."""
    cap = 0
    while _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
        cap += 1
    if ctypes.get_errno() != errno.EINVAL or cap == 0:
        raise _fail(f"prctl(PR_CAPBSET_DROP, {cap})")
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = struct.pack("<Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = bytes(24)
    if _libc.capset(ctypes.create_string_buffer(header, 8),
                    ctypes.create_string_buffer(data, 24)) != 0:
        raise _fail("capset")


# Landlock: the same syscall numbers on x86-64 and aarch64.
_LL_CREATE, _LL_ADD, _LL_RESTRICT = 444, 445, 446
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1, 2, 4, 8
FS_MAKE_REG, FS_REMOVE_FILE = 1 << 8, 1 << 5
FS_TRUNCATE, FS_IOCTL_DEV = 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1, 2
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1, 2


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when Landlock is absent or disabled."""
    r = _libc.syscall(_LL_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return int(r) if r > 0 else 0


def _handled(abi: int) -> int:
    rights = (1 << 13) - 1
    for min_abi, bit in ((2, 1 << 13), (3, FS_TRUNCATE), (5, FS_IOCTL_DEV)):
        if abi >= min_abi:
            rights |= bit
    return rights


def install_landlock(policy: Policy, abi: int) -> None:
    handled = _handled(abi)
    attr = struct.pack("<Q", handled)
    if abi >= 4:
        attr += struct.pack("<Q", NET_BIND_TCP | NET_CONNECT_TCP)
    if abi >= 6:
        attr += struct.pack("<Q", SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL)
    buf = ctypes.create_string_buffer(attr, len(attr))
    ruleset = _libc.syscall(_LL_CREATE, buf, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if ruleset < 0:
        raise _fail("landlock_create_ruleset")
    try:
        read = FS_READ_FILE | FS_READ_DIR
        device = FS_READ_FILE | FS_WRITE_FILE | FS_IOCTL_DEV
        rules = [(p, read) for p in policy.read_paths]
        rules += [(p, read | FS_EXECUTE) for p in policy.exec_paths]
        rules += [(p, read | FS_WRITE_FILE | FS_MAKE_REG | FS_REMOVE_FILE | FS_TRUNCATE)
                  for p in policy.write_paths]
        rules += [(p, device) for p in (*DEV_NODES, *policy.devices)]
        for path, rights in rules:
            _landlock_rule(int(ruleset), path, rights & handled)
        if _libc.syscall(_LL_RESTRICT, ctypes.c_int(int(ruleset)), ctypes.c_uint32(0)) != 0:
            raise _fail("landlock_restrict_self")
    finally:
        os.close(int(ruleset))


def _landlock_rule(ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # not in this root: grants nothing
    try:
        if not os.path.isdir(path):
            rights &= FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV
        attr = struct.pack("<Qi", rights, fd)
        buf = ctypes.create_string_buffer(attr, len(attr))
        if _libc.syscall(_LL_ADD, ctypes.c_int(ruleset), ctypes.c_int(1), buf,
                         ctypes.c_uint32(0)) != 0:
            raise _fail(f"landlock_add_rule({path})")
    finally:
        os.close(fd)


_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_SECCOMP_NR = {"x86_64": 317, "aarch64": 277}
_RET_KILL_PROCESS, _RET_ERRNO, _RET_ALLOW = 0x80000000, 0x00050000, 0x7FFF0000
_LD_ABS, _JEQ, _JGE, _AND, _RET = 0x20, 0x15, 0x35, 0x54, 0x06


def _bpf(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k & 0xFFFFFFFF)


def seccomp_program(resolved: ResolvedSyscalls, deny_errno: int, own_pid: int) -> bytes:
    """Default deny: a foreign architecture is killed, allowed numbers pass, ruled
    numbers pass when an argument rule holds, everything else gets `deny_errno`.

    seccomp_data: nr at offset 0, arch at 4, args[i] at 16 + 8·i (low word first).
    """
    deny = _bpf(_RET, 0, 0, _RET_ERRNO | deny_errno)
    allow = _bpf(_RET, 0, 0, _RET_ALLOW)
    prog = [_bpf(_LD_ABS, 0, 0, 4), _bpf(_JEQ, 1, 0, _AUDIT_ARCH[resolved.arch]),
            _bpf(_RET, 0, 0, _RET_KILL_PROCESS), _bpf(_LD_ABS, 0, 0, 0)]
    if resolved.arch == "x86_64":  # x32 calls share the audit arch: refuse them
        prog += [_bpf(_JGE, 0, 1, 0x40000000), deny]
    for nr in resolved.allow:
        prog += [_bpf(_JEQ, 0, 1, nr), allow]
    for nr in resolved.enosys:
        prog += [_bpf(_JEQ, 0, 1, nr), _bpf(_RET, 0, 0, _RET_ERRNO | errno.ENOSYS)]
    by_nr: dict[int, list[ArgRule]] = {}
    for nr, rule in resolved.rules:
        by_nr.setdefault(nr, []).append(rule)
    for nr, rules in by_nr.items():
        block = []
        for rule in rules:
            block.append(_bpf(_LD_ABS, 0, 0, 16 + 8 * rule.index))
            if rule.mask != 0xFFFFFFFF:
                block.append(_bpf(_AND, 0, 0, rule.mask))
            if rule.high is not None:  # one value, both words: low, then high
                (value,) = rule.values
                block += [_bpf(_JEQ, 0, 3, value), _bpf(_LD_ABS, 0, 0, 20 + 8 * rule.index),
                          _bpf(_JEQ, 0, 1, rule.high), allow]
                continue
            for value in rule.values:
                block += [_bpf(_JEQ, 0, 1, own_pid if value == OWN_PID else value), allow]
        block.append(deny)
        if len(block) > 255:
            raise SealError(errno.E2BIG, f"seccomp rules for syscall {nr} too long")
        prog += [_bpf(_JEQ, 0, len(block), nr), *block]
        prog.append(_bpf(_LD_ABS, 0, 0, 0))  # (not reached: the block returns)
    prog.append(deny)
    return b"".join(prog)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install_seccomp(policy: Policy) -> int:
    """Load the filter on every thread (TSYNC); returns how many calls it allows."""
    resolved = policy.resolve()
    code = seccomp_program(resolved, policy.deny_errno, os.getpid())
    buf = ctypes.create_string_buffer(code, len(code))
    prog = _SockFprog(len(code) // 8, ctypes.cast(buf, ctypes.c_void_p))
    if _libc.syscall(_SECCOMP_NR[resolved.arch], 1, 1, ctypes.byref(prog)) != 0:
        raise _fail("seccomp(SECCOMP_SET_MODE_FILTER, TSYNC)")
    return len(resolved.allow) + len({nr for nr, _ in resolved.rules})


def seal_self(policy: Policy, keep_fds: tuple[int, ...]) -> LaunchReport:
    """Every layer after the namespaces, in the sealed process (PID 1 of its own pid
    namespace, single-threaded). Raises SealError if any layer fails."""
    if len(os.listdir("/proc/self/task")) > 1:
        raise SealError(errno.EINVAL, "sealing needs a single-threaded process")
    abi = landlock_abi()
    if abi < 1:
        raise SealError(errno.ENOSYS, "Landlock is not available in this kernel")
    set_comm(policy.comm or policy.role)
    if policy.empty_cmdline:
        empty_cmdline()
    if "uts" in policy.namespaces and _libc.sethostname(HOSTNAME, len(HOSTNAME)) != 0:
        raise _fail("sethostname")
    build_root(policy)
    close_other_fds(keep_fds)
    set_limits(policy.limits)
    if _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise _fail("prctl(PR_SET_DUMPABLE, 0)")
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise _fail("prctl(PR_SET_NO_NEW_PRIVS)")
    drop_capabilities()
    install_landlock(policy, abi)
    allowed = install_seccomp(policy)
    return LaunchReport(policy.role, policy.namespaces, abi, allowed, policy.proc)


# --- the launcher process -----------------------------------------------------------


class Companion:
    """The sealed process's view of its companion (started by the waiter, outside this
    sandbox): the two pipes, and whether it has ended (its output pipe hung up).
    Shaped like the parts of subprocess.Popen that `embed_worker.ProcessWorker` uses."""

    def __init__(self, stdin_fd: int, stdout_fd: int) -> None:
        self.stdin = os.fdopen(stdin_fd, "wb")
        self.stdout = os.fdopen(stdout_fd, "rb")
        self.pid = 0
        self.returncode: int | None = None

    def poll(self) -> int | None:
        import select

        if self.returncode is None:
            poller = select.poll()
            poller.register(self.stdout.fileno(), select.POLLIN)
            events = poller.poll(0)
            if events and events[0][1] & (select.POLLHUP | select.POLLERR):
                self.returncode = -signal.SIGKILL
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("companion", timeout)
            time.sleep(0.05)
        return self.returncode

    def kill(self) -> None:
        raise PermissionError(errno.EPERM, "the companion is outside this sandbox")


def _die_with_parent() -> None:
    _libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() == 1:
        os._exit(EXIT_SEAL_FAILED)


def _start_companion(spec: LaunchSpec) -> tuple[subprocess.Popen, int, int]:
    env = dict(os.environ)
    proc = start(spec, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    return proc, os.dup(proc.stdin.fileno()), os.dup(proc.stdout.fileno())


def _run_target(spec: LaunchSpec, companion: Companion | None) -> int:
    import importlib

    module, _, name = spec.target.partition(":")
    return int(getattr(importlib.import_module(module), name)(spec.config, companion) or 0)


def _wait_for(pid: int, companion: subprocess.Popen | None) -> int:
    """The waiter: reap until the sealed process ends; its status becomes ours."""
    while True:
        try:
            done, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return EXIT_SEAL_FAILED
        if done == pid:
            if companion is not None:
                with contextlib.suppress(OSError):
                    companion.kill()
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else \
                128 + os.WTERMSIG(status)


def main(argv: list[str]) -> int:
    fd = int(argv[0])
    with os.fdopen(fd, "rb") as f:
        spec = LaunchSpec.from_json(f.read().decode())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the guard decides when this ends
    _die_with_parent()
    set_comm(WAITER_COMM)
    companion, pipes = None, ()
    if spec.companion is not None:
        companion, to_it, from_it = _start_companion(spec.companion)
        pipes = (to_it, from_it)
    if spec.insecure:
        set_comm(spec.policy.comm or spec.policy.role)
        print(f"NOT sealed (--insecure): {spec.policy.role}", file=sys.stderr, flush=True)
        return _run_target(spec, Companion(*pipes) if pipes else None)
    spec = replace(spec, policy=spec.policy.for_run(exec_paths=code_paths()))
    try:
        enter_namespaces(spec.policy.namespaces)
    except (SealError, OSError) as e:
        print(f"cannot seal the {spec.policy.role} process: {e}", file=sys.stderr,
              flush=True)
        return EXIT_SEAL_FAILED
    pid = os.fork()
    if pid:
        for p in pipes:
            os.close(p)
        return _wait_for(pid, companion)
    _die_with_parent()
    try:
        report = seal_self(spec.policy, spec.keep_fds + pipes)
    except (SealError, OSError, ValueError) as e:
        print(f"cannot seal the {spec.policy.role} process: {e}", file=sys.stderr,
              flush=True)
        os._exit(EXIT_SEAL_FAILED)
    print(report.line(), file=sys.stderr, flush=True)
    try:
        code = _run_target(spec, Companion(*pipes) if pipes else None)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
