"""Sealed against unsealed: frames per second of the same sensor, interleaved in one run.

The unsealed sensor runs PersonSensor in this process; the sealed one runs it in the
sandboxed child behind the guard; a child started with `--insecure` separates the cost
of the process boundary from the cost of the sandbox. The source is looped and unpaced,
so each variant goes as fast as it can. Both children stay up and are switched between
standby and continuous with the mode register, so the variants take turns in short
rounds and a busy machine slows them alike; the figure is the ratio of medians.
Target: sealed ≥ 90% of unsealed. The children's fps is counted where they write
(frames the guard received); what the guard published is shown beside it.

It also prints the sealed child's peak address space (VmPeak) and RSS next to the
RLIMIT_AS cap, which is how MEMORY_CAP in mlsensors/privacy/sealed.py was sized.

    PYTHONPATH=src .venv/bin/python bench/sealed_bench.py [--rounds 5] [--seconds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from mlsensors.hub import Hub, RegisterWrite
from mlsensors.privacy.sealed import MEMORY_CAP, SealedSensor

DATA = Path(os.environ.get("MLSENSORS_TEST_DATA",
                           Path(__file__).resolve().parents[1].parent / "shared" / "data"))
PHOTO = DATA / "faces" / "face_recognition_examples" / "obama-480p.jpg"


def wait_running(hub: Hub, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while hub.snapshot().status.state != "running":
        if time.monotonic() > deadline:
            raise SystemExit(f"sealed sensor did not start: {hub.snapshot().status.detail}")
        time.sleep(0.05)


class Child:
    def __init__(self, source: str, rate: float, insecure: bool) -> None:
        self.hub = Hub()
        self.published = 0
        self.hub.subscribe(self._count)
        self.sensor = SealedSensor(self.hub, source, max_rate=rate, insecure=insecure,
                                   loop=True, realtime=False).start()
        wait_running(self.hub)
        self.hub.command(RegisterWrite(0x01, 0))

    def _count(self, snap) -> None:
        if snap.status.state == "running":
            self.published += 1

    def measure(self, seconds: float) -> tuple[float, float]:
        self.hub.command(RegisterWrite(0x01, 1))
        time.sleep(0.3)  # let the first frames through
        received, published = self.sensor.stats().received, self.published
        start = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - start
        made = (self.sensor.stats().received - received) / elapsed
        out = (self.published - published) / elapsed
        self.hub.command(RegisterWrite(0x01, 0))
        time.sleep(0.3)
        return made, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=200.0,
                        help="the guard's rate cap, above the frame rate (default 200)")
    parser.add_argument("--source", default=str(PHOTO) if PHOTO.exists() else "demo")
    args = parser.parse_args()
    from mlsensors.person.sensor import PersonSensor
    from mlsensors.sources import open_source

    plain = Child(args.source, args.rate, insecure=True)
    sealed = Child(args.source, args.rate, insecure=False)
    runs: dict[str, list[float]] = {"unsealed": [], "child": [], "sealed": []}
    published: dict[str, list[float]] = {"child": [], "sealed": []}
    with PersonSensor(open_source(args.source, loop=True, realtime=False)) as sensor:
        frames = iter(sensor)
        next(frames)
        for _ in range(args.rounds):
            n, start = 0, time.monotonic()
            while time.monotonic() - start < args.seconds:
                next(frames)
                n += 1
            runs["unsealed"].append(n / (time.monotonic() - start))
            for name, child in (("child", plain), ("sealed", sealed)):
                made, out = child.measure(args.seconds)
                runs[name].append(made)
                published[name].append(out)
    pid = sealed.sensor.child_pid
    text = Path(f"/proc/{pid}/status").read_text()
    mem = dict(line.split(":", 1) for line in text.splitlines())
    stats = sealed.sensor.stats()
    plain.sensor.stop()
    sealed.sensor.stop()
    base = statistics.median(runs["unsealed"])
    print(f"source {args.source}; {args.rounds} interleaved rounds of {args.seconds:g} s; "
          f"rate cap {args.rate:g}/s; medians")
    print(f"unsealed, in process  {base:6.1f} fps          runs "
          + " ".join(f"{v:.1f}" for v in runs["unsealed"]))
    for name, label in (("child", "child, no sandbox   "), ("sealed", "child, sealed       ")):
        fps = statistics.median(runs[name])
        print(f"{label}  {fps:6.1f} fps {fps / base:6.1%}  published "
              f"{statistics.median(published[name]):.1f}/s; runs "
              + " ".join(f"{v:.1f}" for v in runs[name]))
    print(f"sealed child memory: VmPeak {mem['VmPeak'].strip()}, VmHWM "
          f"{mem['VmHWM'].strip()}; RLIMIT_AS cap {MEMORY_CAP >> 20} MiB")
    print(f"guard: {stats.received} frames received, {stats.published} published, "
          f"{stats.over_rate} over rate, {stats.malformed} malformed")


if __name__ == "__main__":
    main()
