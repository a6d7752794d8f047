"""Black-box checks of the privacy promises against a sealed sensor this module starts.

Every check reads what anyone could read with the PID (its /proc entries), or tries
something from inside and confirms from outside that it failed (the audit's own TCP
listener on the parent's loopback saw no connection; the file the child was told to
write does not exist). Results are PASS/FAIL with the evidence that decided them.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field

from mlsensors.hub import Hub, Snapshot
from mlsensors.models import ModelStore
from mlsensors.models.manifest import DETECTOR_MODELS
from mlsensors.person.sensor import SensorOptions
from mlsensors.privacy.channel import Capacity, capacity
from mlsensors.privacy.child import DEFAULT_WORK, Probe
from mlsensors.privacy.guard import GuardStats
from mlsensors.privacy.launch import WAITER_COMM, descendants_named
from mlsensors.privacy.launch import comm_of as _comm
from mlsensors.privacy.policy import NAMESPACES, role
from mlsensors.privacy.sealed import DEFAULT_MAX_RATE, MEMORY_CAP, SealedSensor
from mlsensors.wire.record import RECORD_SIZE

BURST = 20
"""Extra valid records the child writes at once; all but one per tick must be dropped."""


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    passed: bool
    evidence: str


@dataclass(frozen=True, slots=True)
class AuditReport:
    child_pid: int
    max_rate: float
    seconds: float
    checks: tuple[Check, ...]
    capacity: Capacity
    stats: GuardStats
    log: tuple[str, ...] = field(default_factory=tuple)
    peak_rss_kb: int = 0
    vm_peak_kb: int = 0
    memory_cap: int = 0

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["passed"] = self.passed
        return out


@dataclass(frozen=True, slots=True)
class ProcView:
    """What /proc shows about one process, read once."""

    pid: int
    ns: dict[str, str]
    status: dict[str, str]
    limits: dict[str, tuple[str, str]]
    fds: dict[int, tuple[str, int]]
    """fd → (link target, open flags)."""
    cmdline: bytes | None = None
    comm: str = ""

    @classmethod
    def read(cls, pid: int | str) -> ProcView:
        base = f"/proc/{pid}"
        ns = {}
        for name in NAMESPACES:
            try:
                ns[name] = os.readlink(f"{base}/ns/{name}")
            except OSError:
                ns[name] = "?"
        status = {}
        with open(f"{base}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                status[key] = value.strip()
        limits = {}
        with open(f"{base}/limits") as f:
            for line in f.readlines()[1:]:
                m = re.match(r"(.+?)\s{2,}(\S+)\s+(\S+)", line)
                if m:
                    limits[m.group(1)] = (m.group(2), m.group(3))
        fds = {}
        for entry in os.listdir(f"{base}/fd") if pid != "self" else []:
            try:
                target = os.readlink(f"{base}/fd/{entry}")
                with open(f"{base}/fdinfo/{entry}") as f:
                    flags = int(re.search(r"flags:\s*(\d+)", f.read()).group(1), 8)
            except (OSError, AttributeError):
                continue
            fds[int(entry)] = (target, flags)
        real = int(pid) if pid != "self" else os.getpid()
        return cls(real, ns, status, limits, fds, _cmdline(real), _comm(real))


class _Listener:
    """A TCP server on the parent's loopback that counts connections (it should see 0)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1.0)
        self.sock.close()


def _probe_lines(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        m = re.match(r"probe (.+?): (.+)$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def run_audit(
    source: str | None = "demo",
    *,
    seconds: float = 5.0,
    max_rate: float = DEFAULT_MAX_RATE,
    insecure: bool = False,
    work: str = DEFAULT_WORK,
    detector: str = "full",
    memory_bytes: int = MEMORY_CAP,
    startup_timeout: float = 60.0,
) -> AuditReport:
    """Start a sealed sensor with probes, watch it for `seconds`, check everything."""
    listener = _Listener()
    tmp = tempfile.TemporaryDirectory(prefix="mlsensors-audit-")
    write_path = os.path.join(tmp.name, "written-from-inside")
    probe = Probe(tcp_port=listener.port, write_path=write_path,
                  alloc_bytes=memory_bytes + (64 << 20), malformed=1, burst=BURST,
                  pause=3.0 / max_rate)
    hub = Hub()
    records: list[tuple[float, int]] = []
    window = threading.Event()

    def watch(snap: Snapshot) -> None:
        if window.is_set() and snap.status.state == "running":
            records.append((time.monotonic(), len(snap.record)))

    hub.subscribe(watch)
    sensor = SealedSensor(hub, source, SensorOptions(model=detector), max_rate=max_rate,
                          insecure=insecure, work=work, memory_bytes=memory_bytes,
                          probe=probe)
    parent = ProcView.read("self")
    checks: list[Check] = []
    try:
        sensor.start()
        guard = sensor.guard
        started = _wait(lambda: "probe done" in guard.logs.lines
                        and hub.snapshot().status.state == "running", startup_timeout)
        pid = sensor.child_pid
        if not started:
            checks.append(Check("sensing process starts", False,
                                f"not running after {startup_timeout:g} s: "
                                f"{hub.snapshot().status.detail}"))
        window.set()
        t0 = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - t0
        window.clear()
        try:
            view = ProcView.read(pid)
        except OSError as e:
            view = None
            checks.append(Check("sensing process inspectable", False,
                                f"/proc/{pid} unreadable: {e}"))
        stats = sensor.stats()
        peak_kb = guard.peak_rss_kb
        lines = list(guard.logs.lines)
    finally:
        sensor.stop()
        listener.close()
    written = os.path.exists(write_path)
    tmp.cleanup()

    checks.append(Check("sandbox enabled", not insecure,
                        "started with --insecure: nothing below is enforced" if insecure
                        else "sealed before any model, source or frame was touched"))
    if view is not None:
        checks += _proc_checks(view, parent, memory_bytes, peak_kb)
    checks += _probe_checks(_probe_lines(lines), listener.connections, written, write_path)
    checks += _channel_checks(records, elapsed, max_rate, stats)
    checks.append(_model_check(detector))
    cap = capacity(max_rate)
    checks.append(Check("channel capacity", True, cap.describe()))
    vm_peak = _kb(view.status.get("VmPeak", "")) if view is not None else 0
    hwm = _kb(view.status.get("VmHWM", "")) if view is not None else 0
    return AuditReport(pid, max_rate, round(elapsed, 2), tuple(checks), cap, stats,
                       tuple(lines), max(peak_kb, hwm), vm_peak, memory_bytes)


def _kb(text: str) -> int:
    head = text.split()[:1]
    return int(head[0]) if head and head[0].isdigit() else 0


def _proc_checks(view: ProcView, parent: ProcView, cap_bytes: int, peak_kb: int,
                 identify: bool = False) -> list[Check]:
    """`identify`: the process was started with face IDs, so it holds three more pipes
    (two to its embedding process, the store pipe to the guard); it writes no file
    either way."""
    out = []
    for name in NAMESPACES:
        mine, theirs = view.ns[name], parent.ns[name]
        out.append(Check(f"{name} namespace", mine != theirs and mine != "?",
                         f"/proc/{view.pid}/ns/{name} = {mine}, the guard's is {theirs}"))
    caps = {k: view.status.get(k, "?") for k in ("CapEff", "CapPrm", "CapBnd", "CapAmb")}
    out.append(Check("no capabilities", all(v.strip("0") == "" and v != "?"
                                             for v in caps.values()),
                     ", ".join(f"{k} {v}" for k, v in caps.items())))
    cmdline = view.cmdline
    out.append(Check("empty command line", cmdline == b"",
                     f"/proc/{view.pid}/cmdline holds {len(cmdline)} bytes, thread name "
                     f"{view.comm!r}" if cmdline is not None else "unreadable"))
    seccomp = view.status.get("Seccomp", "?")
    out.append(Check("seccomp filter", seccomp == "2",
                     f"Seccomp: {seccomp} (2 = filter), "
                     f"Seccomp_filters: {view.status.get('Seccomp_filters', '?')}"))
    nnp = view.status.get("NoNewPrivs", "?")
    out.append(Check("no_new_privs", nnp == "1", f"NoNewPrivs: {nnp}"))
    fsize = view.limits.get("Max file size", ("?", "?"))
    out.append(Check("file size limit", fsize == ("0", "0"),
                     f"Max file size: soft {fsize[0]}, hard {fsize[1]} (allowed 0)"))
    core = view.limits.get("Max core file size", ("?", "?"))
    out.append(Check("no core dumps", core == ("0", "0"),
                     f"Max core file size: soft {core[0]}, hard {core[1]}"))
    mem = view.limits.get("Max address space", ("?", "?"))
    cap_ok = mem == (str(cap_bytes), str(cap_bytes))
    hwm = view.status.get("VmHWM", "?")
    peak = max(peak_kb, int(hwm.split()[0]) if hwm[:1].isdigit() else 0)
    out.append(Check("memory cap", cap_ok and 0 < peak * 1024 < cap_bytes,
                     f"Max address space: {mem[0]} B (declared {cap_bytes}); peak RSS "
                     f"{peak / 1024:.1f} MiB, VmPeak {view.status.get('VmPeak', '?')}"))
    bad = []
    summary = []
    for fd, (target, flags) in sorted(view.fds.items()):
        writable = flags & os.O_ACCMODE != os.O_RDONLY
        summary.append(f"{fd}:{target}{'(w)' if writable else ''}")
        if target.startswith("socket:"):
            bad.append(f"fd {fd} is a socket")
        elif target.startswith("/") and writable and target != "/dev/null" \
                and not target.startswith("/dev/video"):
            bad.append(f"fd {fd} is {target} open for writing")
    pipes = sum(1 for t, _ in view.fds.values() if t.startswith("pipe:"))
    out.append(Check("inherited descriptors", not bad and pipes <= 4 + 3 * identify,
                     "; ".join(bad) or f"{pipes} pipes, no sockets, no writable files: "
                     + " ".join(summary[:12])))
    return out


def _embedder_check(sensing: ProcView, guard: ProcView) -> Check:
    """With IDs, the launcher that started the sensing process also started one
    embedding process beside it: it must be sealed on its own (namespaces unlike both,
    seccomp, no capabilities, no writes, its memory cap) and hold nothing but pipes."""
    embed_cap = role("embedder").limits.address_space
    waiter = int(sensing.status.get("PPid", "0"))
    embedders = descendants_named(waiter, role("embedder").comm)
    if len(embedders) != 1:
        return Check("embedding process sealed", False,
                     f"expected one embedding process beside PID {sensing.pid}, found "
                     f"{len(embedders)}: {embedders}")
    try:
        view = ProcView.read(embedders[0])
    except OSError as e:
        return Check("embedding process sealed", False, f"cannot read it: {e}")
    problems = []
    for name in NAMESPACES:
        if view.ns[name] in (guard.ns[name], sensing.ns[name], "?"):
            problems.append(f"shares the {name} namespace")
    if view.status.get("Seccomp") != "2" or view.status.get("NoNewPrivs") != "1":
        problems.append("no seccomp filter or no_new_privs")
    if view.status.get("CapEff", "?").strip("0") or view.status.get("CapBnd", "?").strip("0"):
        problems.append("holds capabilities")
    if view.limits.get("Max file size") != ("0", "0"):
        problems.append(f"file size limit {view.limits.get('Max file size')}")
    if view.limits.get("Max address space") != (str(embed_cap),) * 2:
        problems.append(f"address space {view.limits.get('Max address space')}")
    odd = [f"{fd}:{t}" for fd, (t, _) in view.fds.items()
           if not (t.startswith("pipe:") or t == "/dev/null")]
    if odd:
        problems.append("descriptors other than pipes: " + " ".join(odd))
    return Check("embedding process sealed", not problems, "; ".join(problems) or
                 f"PID {view.pid}: own namespaces, Seccomp 2, NoNewPrivs 1, no capabilities, "
                 f"no file writes, address space {embed_cap} B, "
                 f"{len(view.fds)} descriptors, all pipes or /dev/null")


def _probe_checks(probes: dict[str, str], connections: int, written: bool,
                  write_path: str) -> list[Check]:
    net = {k: v for k, v in probes.items() if k.startswith(("tcp", "socket", "dns"))}
    net_ok = bool(net) and all(v.startswith("blocked") for v in net.values()) \
        and connections == 0
    out = [Check("network from inside fails", net_ok,
                 "; ".join(f"{k}: {v}" for k, v in net.items())
                 + f"; the guard's listener saw {connections} connection(s)")]
    writes = {k: v for k, v in probes.items() if k.startswith("write")}
    out.append(Check("file write from inside fails",
                     bool(writes) and all(v.startswith("blocked") for v in writes.values())
                     and not written,
                     "; ".join(f"{k}: {v}" for k, v in writes.items())
                     + f"; {write_path} {'EXISTS' if written else 'does not exist'}"))
    allocs = {k: v for k, v in probes.items() if k.startswith("alloc")}
    out.append(Check("allocation above the cap fails",
                     bool(allocs) and all(v.startswith("blocked") for v in allocs.values()),
                     "; ".join(f"{k}: {v}" for k, v in allocs.items()) or "no probe output"))
    return out


def _channel_checks(records: list[tuple[float, int]], elapsed: float, max_rate: float,
                    stats: GuardStats) -> list[Check]:
    n = len(records)
    rate = n / elapsed if elapsed > 0 else 0.0
    per_second = max((sum(1 for t, _ in records if t0 <= t < t0 + 1.0)
                      for t0, _ in records), default=0)
    out = [Check("output rate within the cap",
                 n > 0 and n <= max_rate * elapsed + 1 and per_second <= max_rate + 1,
                 f"{n} records in {elapsed:.1f} s = {rate:.2f}/s, at most {per_second} in "
                 f"any 1 s; declared ≤ {max_rate:g}/s")]
    sizes = sorted({size for _, size in records})
    out.append(Check("record size", sizes == [RECORD_SIZE],
                     f"sizes seen {sizes}, declared {RECORD_SIZE} B"))
    out.append(Check("injected malformed record dropped", stats.malformed >= 1,
                     f"{stats.malformed} malformed frame(s) dropped of {stats.received} "
                     f"received"))
    out.append(Check("injected over-rate records dropped", stats.over_rate >= BURST - 1,
                     f"{stats.over_rate} frame(s) dropped for rate ({BURST} injected at once "
                     f"plus the sensor's own surplus)"))
    out.append(Check("no restarts during the audit", stats.restarts == 0 and stats.crashes == 0
                     and stats.hangs == 0,
                     f"{stats.restarts} restart(s), {stats.crashes} crash(es), "
                     f"{stats.hangs} hang(s)"))
    return out


def _model_check(detector: str) -> Check:
    if detector == "auto":  # the model the sensor picks: YuNet when fetched, else BlazeFace
        from mlsensors.vision.detector import resolve_model

        detector = resolve_model(detector, ModelStore())
    names = [DETECTOR_MODELS.get(detector, detector)]
    statuses = ModelStore().status()
    bad = [f"{s.spec.name}: {s.problem}" for s in statuses if s.present and not s.ok]
    missing = [n for n in names if not any(s.spec.name == n and s.ok for s in statuses)]
    ok = not bad and not missing
    checked = ", ".join(f"{s.spec.name} {s.spec.sha256[:12]}…" for s in statuses if s.ok)
    return Check("model hashes match the manifest", ok,
                 "; ".join(bad + [f"{m} missing" for m in missing]) or f"verified {checked}")


def _cmdline(pid: int) -> bytes | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return None


def find_sealed_children() -> list[int]:
    """PIDs of running sensing processes (started by any guard on this machine): the
    launcher names them (a fixed thread name, since their command line is empty)."""
    comm = role("sensing").comm
    return sorted(int(e) for e in os.listdir("/proc") if e.isdigit() and _comm(e) == comm)


def audit_running(pid: int, max_rate: float = DEFAULT_MAX_RATE) -> AuditReport:
    """The checks that need nothing from the process but its /proc entries.

    For a sensor already running under `serve`: namespaces, capabilities, command line,
    seccomp, no_new_privs, limits, memory, descriptors (all compared with its guard, the
    launcher's parent), the embedding process when there is one, model hashes and
    capacity. The probes (network, file write, allocation, injected records) need a
    sensor started by the audit.
    """
    from mlsensors.errors import InputError

    if _comm(pid) != role("sensing").comm:
        if os.path.exists(f"/proc/{pid}"):
            raise InputError(f"process {pid} is not an mlsensors sensing process")
        raise InputError(f"no process {pid} to audit (or /proc/{pid} is not readable)")
    try:
        view = ProcView.read(pid)
        waiter = ProcView.read(int(view.status.get("PPid", "0")))
        sealed = waiter.status.get("Name") == WAITER_COMM
        parent = ProcView.read(int(waiter.status.get("PPid", "0"))) if sealed else waiter
    except (OSError, ValueError):
        raise InputError(f"no process {pid} to audit (or /proc/{pid} is not readable)") \
            from None
    memory = role("sensing").limits.address_space
    checks = [Check("sandbox enabled", sealed,
                    f"started by the launcher (guard PID {parent.pid})" if sealed
                    else "started with --insecure")]
    hwm = _kb(view.status.get("VmHWM", ""))
    identify = bool(descendants_named(waiter.pid, role("embedder").comm))
    checks += _proc_checks(view, parent, memory, hwm, identify)
    checks += outside_view_checks(pid, role("sensing").comm)
    if identify:
        checks.append(_embedder_check(view, parent))
        for kid in descendants_named(waiter.pid, role("embedder").comm):
            checks += outside_view_checks(kid, role("embedder").comm, "embedding process: ")
    checks.append(_model_check("auto"))
    cap = capacity(max_rate)
    checks.append(Check("channel capacity", True, cap.describe() + " (for the rate given "
                        "with --max-rate; the guard's own rate is not visible from /proc)"))
    return AuditReport(pid, max_rate, 0.0, tuple(checks), cap, GuardStats(), (), hwm,
                       _kb(view.status.get("VmPeak", "")), memory)


def outside_view_checks(pid: int, comm: str, label: str = "") -> list[Check]:
    """What anyone on the machine sees of a sealed process beyond its status: every
    thread carries the role's fixed name `comm` (no thread name it chose: a channel),
    and its mounts are not the machine's (a private root). `label` prefixes the check
    names (another process of the same sensor)."""
    names = set()
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/comm") as f:
                names.add(f.read().strip())
    out = [Check(f"{label}one fixed thread name", names == {comm},
                 f"thread names {sorted(names)}, the role's: {comm!r}")]
    try:
        with open(f"/proc/{pid}/mountinfo") as f:
            mounts = [line.split() for line in f if line.strip()]
        with open("/proc/self/mountinfo") as f:
            machine = {line.split()[4] for line in f if line.strip()}
    except OSError as e:
        return [*out, Check(f"{label}private file-system view", False,
                            f"mountinfo unreadable: {e}")]
    points = {m[4] for m in mounts}
    writable = sorted(m[4] for m in mounts if "rw" in m[5].split(","))
    out.append(Check(f"{label}private file-system view", points != machine,
                     f"{len(points)} mount points"
                     + (", the same as the machine's" if points == machine else
                        f" (the machine has {len(machine)})")
                     + f"; mounted read-write: {' '.join(writable[:8]) or 'none'}"))
    return out
