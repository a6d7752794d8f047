"""`SealedSensor`: the sensor loop in a sealed child, feeding a Hub through the guard.

This is what `mlsensors serve` uses in place of running the sensor in-process:

    sensor = SealedSensor.from_args(args, hub)   # after add_arguments(parser)
    sensor.start(); ...; sensor.stop()

The Hub sees the same results, statuses and register writes either way; only the
process boundary, the rate cap and the fault handling differ.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
from dataclasses import asdict, replace

from mlsensors.errors import InputError
from mlsensors.hub import Hub
from mlsensors.models import default_cache_dir
from mlsensors.person.kind import PERSON
from mlsensors.person.sensor import SensorOptions
from mlsensors.privacy.child import DEFAULT_WORK, ChildConfig, Probe
from mlsensors.privacy.guard import Guard, GuardStats, GuardTiming
from mlsensors.privacy.kind import RecordKind
from mlsensors.privacy.policy import Policy, role

DEFAULT_MAX_RATE = 30.0
"""Records per second when the user gives none: a camera's usual frame rate."""

MEMORY_CAP = role("sensing").limits.address_space
"""RLIMIT_AS of the sensing process (address space, not RSS); docs/privacy.md shows how
it was sized: measured peak address space of the full pipeline on one 640×480 frame
plus headroom for a 1920×1080 frame and the ID model. `bench/sealed_bench.py` prints the
measured peak next to it."""


def device_paths(source: str | None) -> tuple[str, ...]:
    """The camera device nodes a source needs (read-write, for V4L2 ioctls)."""
    if source is None:
        return tuple(sorted(glob.glob("/dev/video*")))
    if source.startswith("/dev/video"):
        return (source,)
    if source.startswith("camera:"):
        index = source.partition(":")[2]
        if not index.isdigit():
            raise InputError(f"camera source {source!r}: expected camera:N with N a number")
        return (f"/dev/video{index}",)
    return ()


def prepare_gallery_folder(gallery: str | None) -> str:
    """The gallery file's path, its folder created (0700) now, so that a path that cannot
    hold a gallery is a one-line error at start. The guard's keeper writes the file; the
    sealed child writes nothing."""
    from mlsensors.person.gallery_file import default_gallery_path

    path = os.path.abspath(gallery) if gallery else str(default_gallery_path())
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create the gallery folder {folder}: "
                         f"{e.strerror or e}") from None
    if os.path.isdir(path):
        raise InputError(f"gallery {path} is a folder, not a file")
    return path


class SealedSensor:
    """Start/stop the sealed sensing child and its guard for one Hub.

    Every sensor kind is launched here, through one guard and one child: `kind` says
    what the records are (privacy/kind.py; the person sensor by default), `role` what
    the seal lets the process reach (a role of privacy/policy.py: "sensing", a camera or
    file; "microphone", ALSA's capture devices), `options` the kind's options (a
    dataclass, or a dict, sent as JSON), `handoff` the state every new child is given
    (the enrolled voice commands).
    """

    def __init__(
        self,
        hub: Hub,
        source: str | None = None,
        options: object | None = None,
        *,
        max_rate: float = DEFAULT_MAX_RATE,
        insecure: bool = False,
        loop: bool = False,
        realtime: bool = True,
        identify: bool = False,
        gallery: str | None = None,
        key_file: str | None = None,
        persist: bool = True,
        memory_bytes: int = MEMORY_CAP,
        work: str = DEFAULT_WORK,
        probe: Probe | None = None,
        timing: GuardTiming | None = None,
        kind: RecordKind = PERSON,
        role: str = "sensing",
        handoff: bytes = b"",
        policy: Policy | None = None,
    ) -> None:
        if source is not None and ":" not in source and not os.path.exists(source) \
                and source not in ("demo", "mic"):
            raise InputError(f"source {source!r} does not exist")
        source_path = os.path.abspath(source) if source and os.path.exists(source) else source
        keeper = None
        if identify:
            from mlsensors.person.gallery_file import GalleryFile
            from mlsensors.person.gallery_keeper import GalleryKeeper

            keeper = GalleryKeeper(GalleryFile(prepare_gallery_folder(gallery), key_file),
                                   persist=persist)
        if options is None:
            options = SensorOptions() if kind is PERSON else {}
        config = ChildConfig(
            record_fd=-1,
            command_fd=-1,
            work=kind.work if work == DEFAULT_WORK else work,
            source=source_path,
            loop=loop,
            realtime=realtime,
            sensor_options=json.dumps(options if isinstance(options, dict) else asdict(options)),
            identify=identify,
            model_dir=str(default_cache_dir()),
            device_paths=device_paths(source) if role == "sensing" else (),
            memory_bytes=memory_bytes,
            insecure=insecure,
            probe=probe,
            kind=kind.name,
            role=role,
        )
        self.guard = Guard(hub, config, max_rate=max_rate, timing=timing, keeper=keeper,
                           kind=kind, handoff=handoff, policy=policy)

    @property
    def config(self) -> ChildConfig:
        return self.guard.config

    @property
    def running(self) -> bool:
        return self.guard.running

    @property
    def child_pid(self) -> int:
        return self.guard.child_pid

    def stats(self) -> GuardStats:
        return self.guard.stats()

    def start(self) -> SealedSensor:
        self.guard.start()
        return self

    def stop(self) -> None:
        self.guard.stop()

    def __enter__(self) -> SealedSensor:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def with_probe(self, probe: Probe) -> SealedSensor:
        self.guard.config = replace(self.guard.config, probe=probe)
        return self


def _rate(text: str) -> float:
    try:
        value = float(text.split("/")[0])
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate (e.g. 1 or 1/s)") from None
    if not 0 < value <= 1000:
        raise argparse.ArgumentTypeError(f"rate {value} is outside (0, 1000] records/s")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The sandbox options of any command that runs the sensor."""
    group = parser.add_argument_group("privacy")
    group.add_argument(
        "--max-rate", type=_rate, default=DEFAULT_MAX_RATE, metavar="N",
        help=f"most result records per second that leave the sensor (default "
             f"{DEFAULT_MAX_RATE:g}; e.g. 1 for presence only)")
    group.add_argument(
        "--insecure", action="store_true",
        help="run the sensing process without the sandbox (no namespace, seccomp, "
             "Landlock or limits); `mlsensors audit` reports it")


def from_args(args: argparse.Namespace, hub: Hub, **kwargs) -> SealedSensor:
    """A SealedSensor for a parsed command line: `--max-rate` and `--insecure` from
    `add_arguments`, `args.source` when the command has it; the sensor options, loop,
    gallery etc. come from the caller as keyword arguments."""
    return SealedSensor(
        hub,
        getattr(args, "source", None),
        max_rate=args.max_rate,
        insecure=args.insecure,
        **kwargs,
    )
