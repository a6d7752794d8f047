"""The sealed sensing process: sealed first, then it touches models, the source and pixels.

The guard starts it through `launch` with the policy `launch_spec` builds (role
"sensing"): `main` runs only once every layer is in place, with exactly two inherited
pipe ends (results out, commands in; with face IDs a third, the store pipe out) besides
stdin (/dev/null) and stdout/stderr (a pipe read by the guard's log filter), and, with
face IDs, the pipes to its embedding process (the launcher's companion, sealed on its
own). It writes no file: what it learns that must be kept (an ID's embeddings) leaves as
fixed-size frames on the store pipe and the guard keeps it. Only once sealed does it
import the pixel-handling code, verify and load the model bytes, open the source and
start the sensor loop.

Inside, the sensor loop publishes into an ordinary `Hub`, exactly as it would in one
process; a subscriber turns each snapshot into one fixed-size frame on the results pipe,
and register writes arriving on the command pipe go to `hub.command`. So whatever runs
the loop (the real PersonSensor, or a test's hostile stand-in named by `work`) needs no
knowledge of the sandbox.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import json
import os
import re
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass

from mlsensors.privacy.channel import (
    ChildState,
    ChildStatus,
    Reason,
    encode_result,
    encode_status,
    split_commands,
)
from mlsensors.privacy.launch import LaunchSpec
from mlsensors.privacy.policy import ALSA, V4L2, existing, role

DEFAULT_WORK = "mlsensors.person.child:person_sensor"
EXIT_FAILED = 4

THREAD_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MALLOC_ARENA_MAX": "2",
}
"""Set for the child so imports start no thread pools before `seal` and arenas stay few."""


@dataclass(frozen=True, slots=True)
class Probe:
    """Self-tests the audit asks the sealed child to run right after sealing.

    Each attempt's outcome is printed as one "probe ..." line; the audit also checks
    from outside (its TCP listener saw no connection, the file does not exist).
    """

    tcp_port: int = 0
    write_path: str = ""
    alloc_bytes: int = 0
    malformed: int = 1
    burst: int = 0
    pause: float = 0.0
    """Seconds to wait after the malformed frames, so that a guard tick sees them."""


@dataclass(frozen=True, slots=True)
class ChildConfig:
    """Everything the child needs, passed as JSON through the launcher's pipe."""

    record_fd: int
    command_fd: int
    work: str = DEFAULT_WORK
    source: str | None = None
    loop: bool = False
    realtime: bool = True
    sensor_options: str = "{}"
    """The sensor loop's SensorOptions as JSON (built inside, after sealing)."""
    identify: bool = False
    """Start with face identification on (the embedding process is started before
    sealing; without it, ENABLE_ID=1 is refused). The gallery comes from the guard."""
    store_fd: int = -1
    """The store pipe's write end (with `identify`): calibrations go to the guard."""
    model_dir: str = ""
    device_paths: tuple[str, ...] = ()
    memory_bytes: int = 0
    insecure: bool = False
    probe: Probe | None = None
    kind: str = "person"
    """The sensor kind (privacy/kind.py) whose work this child runs."""
    role: str = "sensing"
    """What the seal lets the process reach besides code and models: "sensing" (a
    camera or a file), "microphone" (ALSA's capture devices and their configuration)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ChildConfig:
        raw = json.loads(text)
        raw["device_paths"] = tuple(raw.get("device_paths", ()))
        if raw.get("probe") is not None:
            raw["probe"] = Probe(**raw["probe"])
        return cls(**raw)


def launch_spec(config: ChildConfig, policy=None) -> LaunchSpec:
    """How the guard starts this process: its role (privacy/policy.py: "sensing" or
    "microphone") with this run's model folder, source and device nodes (`policy`
    replaces the role, e.g. a test's reopened copy); with face IDs the embedding
    process as the launcher's companion."""
    from mlsensors.person.embed_child import embedder_spec

    base = policy or role(config.role)
    reads = [config.model_dir, config.source]
    devices = config.device_paths
    if config.device_paths:
        reads += V4L2.info_paths
    if config.role == "microphone" and config.source in (None, "mic"):
        devices = (*devices, *microphone_devices())
        reads += ALSA.info_paths
    sealed = base.for_run(read_paths=existing(reads), devices=devices,
                          address_space=config.memory_bytes or None)
    keep = tuple(fd for fd in (config.record_fd, config.command_fd, config.store_fd)
                 if fd >= 0)
    companion = embedder_spec(config.model_dir or None, insecure=config.insecure) \
        if config.identify else None
    return LaunchSpec(sealed, "mlsensors.privacy.child:main", config.to_json(), keep,
                      companion, config.insecure)


def microphone_devices() -> tuple[str, ...]:
    """Of ALSA's device family, what a capture needs: the capture PCMs and the control
    nodes (read-write: ALSA configures them by ioctl). No playback node: nothing is
    played, so nothing can be."""
    return tuple(n for n in ALSA.nodes()
                 if re.fullmatch(r"/dev/snd/(pcmC\d+D\d+c|controlC\d+)", n))


_STATES = {
    "starting": ChildState.STARTING,
    "running": ChildState.RUNNING,
    "standby": ChildState.STANDBY,
    "fault": ChildState.NO_SOURCE,
    "stopped": ChildState.ENDED,
}
"""The sensor loop's status states as the channel's closed set."""


class GuardLink:
    """What the work may use of the guard beyond results: the store pipe (fixed frames
    out), the blocks the guard sends (state it keeps, e.g. the gallery), and a fatal
    stop. Given to the work as `link` when the child has a store pipe."""

    def __init__(self, channel: Channel, store_fd: int) -> None:
        self._channel = channel
        self._store_fd = store_fd
        self._lock = threading.Lock()
        self._receiver = None
        self._early: list[bytes] = []

    def send(self, frame: bytes) -> None:
        """One frame on the store pipe (one write: atomic below PIPE_BUF)."""
        os.write(self._store_fd, frame)

    def receive(self, callback) -> None:
        """Call `callback(block)` for every block from the guard, starting with those
        that came before (from the command thread)."""
        with self._lock:
            self._receiver, early, self._early = callback, self._early, []
        for block in early:
            callback(block)

    def deliver(self, block: bytes) -> None:
        with self._lock:
            receiver = self._receiver
            if receiver is None:
                self._early.append(block)
                return
        receiver(block)

    def fail(self, reason: Reason, message: str) -> None:
        """End this process now, from any thread: `message` to the log, the FAILED
        status with `reason` to the guard, exit status EXIT_FAILED (the guard restarts
        the process)."""
        print(message, file=sys.stderr, flush=True)
        with contextlib.suppress(OSError):
            self._channel.status(ChildState.FAILED, reason)
        os._exit(EXIT_FAILED)


class Channel:
    """The child's end of the pipes: one frame per write, commands in a thread."""

    def __init__(self, record_fd: int, command_fd: int) -> None:
        self.record_fd = record_fd
        self.command_fd = command_fd
        self._lock = threading.Lock()
        self._last_state: ChildState | None = None
        self._last_result = None
        self.link: GuardLink | None = None

    def send(self, frame: bytes) -> None:
        with self._lock:
            os.write(self.record_fd, frame)

    def status(self, state: ChildState, reason: Reason = Reason.NONE) -> None:
        self._last_state = state
        self.send(encode_status(ChildStatus(state, reason)))

    def bridge(self, snapshot) -> None:
        """Hub subscriber: each new result once, otherwise the state (never stale faces).

        `Hub.set_status` republishes the current result object unchanged, so a result is
        new exactly when it is a different object from the last one sent.
        """
        state = _STATES.get(snapshot.status.state, ChildState.NO_SOURCE)
        if snapshot.result is not self._last_result and state in (
                ChildState.RUNNING, ChildState.STANDBY):
            self._last_result = snapshot.result
            self.send(encode_result(snapshot.result))
        elif state != ChildState.RUNNING:
            reason = Reason.SOURCE_GAP if state == ChildState.NO_SOURCE else Reason.NONE
            self.status(state, reason)

    def serve_commands(self, hub, stop: threading.Event) -> threading.Thread:
        from mlsensors.hub import RegisterWrite

        def loop() -> None:
            buf = b""
            while not stop.is_set():
                try:
                    chunk = os.read(self.command_fd, 1 << 16)
                except OSError:
                    break
                if not chunk:
                    break
                buf += chunk
                while not hub.accepting and not stop.is_set():
                    # Writes the guard replays at start-up wait for the loop to be built.
                    time.sleep(0.02)
                commands, buf = split_commands(buf)
                for command in commands:
                    try:
                        if isinstance(command, bytes):
                            if self.link is not None:
                                self.link.deliver(command)
                            continue
                        hub.command(RegisterWrite(*command))
                    except Exception as e:  # a bad write must not stop the sensor
                        print(f"command {command[:2]!r} refused: {e}", file=sys.stderr)
            stop.set()  # the guard closed the command pipe: it is gone or stopping us

        thread = threading.Thread(target=loop, name="commands", daemon=True)
        thread.start()
        return thread


def run_probes(probe: Probe, channel: Channel) -> None:
    """Try what the sandbox must prevent; print one line per attempt for the audit."""

    def attempt(name: str, action) -> None:
        try:
            action()
            print(f"probe {name}: ALLOWED", file=sys.stderr, flush=True)
        except OSError as e:
            code = errno.errorcode.get(e.errno or 0, str(e.errno))
            print(f"probe {name}: blocked ({code})", file=sys.stderr, flush=True)
        except MemoryError:
            print(f"probe {name}: blocked (MemoryError)", file=sys.stderr, flush=True)

    if probe.tcp_port:
        def tcp() -> None:
            with socket.create_connection(("127.0.0.1", probe.tcp_port), timeout=2):
                pass
        attempt(f"tcp 127.0.0.1:{probe.tcp_port}", tcp)

    def inet() -> None:
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()
    attempt("socket AF_INET", inet)

    def dns() -> None:
        try:
            socket.getaddrinfo("example.com", 80)
        except socket.gaierror as e:
            raise OSError(errno.EHOSTUNREACH, str(e)) from None
    attempt("dns example.com", dns)
    if probe.write_path:
        def write() -> None:
            with open(probe.write_path, "wb") as f:
                f.write(b"x" * 4096)
        attempt(f"write {probe.write_path}", write)
    if probe.alloc_bytes:
        def alloc() -> None:
            block = bytearray(probe.alloc_bytes)
            del block
        attempt(f"alloc {probe.alloc_bytes}", alloc)
    for _ in range(probe.malformed):
        channel.send(b"R" + bytes(range(39)))  # wrong checksum and fields
    time.sleep(probe.pause)
    if probe.burst:
        from mlsensors.types import PersonResult

        frame = encode_result(PersonResult(0.0))
        for _ in range(probe.burst):
            channel.send(frame)
    print("probe done", file=sys.stderr, flush=True)


def load_work(spec: str):
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def main(config_text: str, embedder=None) -> int:
    """The launcher's target: runs sealed (or, with --insecure, plainly); `embedder` is
    the launcher's companion (face IDs)."""
    config = ChildConfig.from_json(config_text)
    channel = Channel(config.record_fd, config.command_fd)
    extra = {}
    channel.link = GuardLink(channel, config.store_fd)  # blocks from the guard
    if config.store_fd >= 0:
        extra["link"] = channel.link
    if config.kind != "person":  # a kind whose records are not Hub snapshots
        extra["channel"] = channel
    if config.identify:
        if embedder is None:
            print("cannot start face identification: no embedding process",
                  file=sys.stderr)
            channel.status(ChildState.FAILED, Reason.MODEL_ERROR)
            return EXIT_FAILED
        extra["embedder"] = embedder
    channel.status(ChildState.STARTING)
    if config.probe is not None:
        run_probes(config.probe, channel)

    from mlsensors.errors import InputError, ModelError, SourceError
    from mlsensors.hub import Hub

    hub = Hub()
    hub.subscribe(channel.bridge)
    stop = threading.Event()
    channel.serve_commands(hub, stop)
    try:
        load_work(config.work)(hub, stop, config, **extra)
    except ModelError as e:
        print(f"model refused: {e}", file=sys.stderr)
        channel.status(ChildState.FAILED, Reason.MODEL_ERROR)
        return EXIT_FAILED
    except SourceError as e:
        print(f"source failed: {e}", file=sys.stderr)
        channel.status(ChildState.FAILED, Reason.SOURCE_ERROR)
        return EXIT_FAILED
    except InputError as e:
        print(f"bad input: {e}", file=sys.stderr)
        channel.status(ChildState.FAILED, Reason.INPUT_ERROR)
        return EXIT_FAILED
    except BrokenPipeError:
        return 0  # the guard is gone
    return 0

