"""What a compromised sensing process can still signal through /proc: its thread count.

Every local user can read /proc/PID/status of the sealed process (Threads:, VmRSS:,
and CPU times in /proc/PID/stat); the sandbox cannot hide them. This measures one of
them end to end: hostile work inside the real sealed child (`thread_signal` below, run
by the guard under the product's policy) keeps one extra thread alive for a 1 and none
for a 0, one bit per slot, after a 1 s preamble; this process polls
/proc/PID/status, samples the middle of each slot and counts bit errors against the
same pseudo-random bits. Capacity per slot length = bits/s × (1 − H(error rate)).

    PYTHONPATH=$PWD/src:$PWD/bench .venv/bin/python bench/proc_channel_bench.py [--bits 400]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import threading
import time

SLOTS_MS = (20.0, 10.0, 5.0, 2.0)


def bits_for(n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(0, 1) for _ in range(n)]


def thread_signal(hub, stop, config):
    """The hostile work: the preamble, then the bits of every slot length in turn."""
    plan = json.loads(config.sensor_options)
    time.sleep(1.0)
    for slot in plan["slots"]:
        preamble = threading.Event()
        extra = threading.Thread(target=preamble.wait)
        extra.start()
        time.sleep(1.0)  # preamble: one extra thread for 1 s
        preamble.set()
        extra.join()
        t0 = time.monotonic() + 0.5
        while time.monotonic() < t0:
            time.sleep(0.001)
        for i, bit in enumerate(bits_for(plan["bits"], plan["seed"])):
            end = t0 + (i + 1) * slot / 1000
            if bit:
                release = threading.Event()
                extra = threading.Thread(target=release.wait)
                extra.start()
                while time.monotonic() < end:
                    time.sleep(0.0002)
                release.set()
                extra.join()
            while time.monotonic() < end:
                time.sleep(0.0002)
        time.sleep(1.0)
    while not stop.is_set():
        time.sleep(0.1)


def threads_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def entropy(p: float) -> float:
    return 0.0 if p in (0.0, 1.0) else -p * math.log2(p) - (1 - p) * math.log2(1 - p)


def main() -> None:
    from mlsensors.hub import Hub
    from mlsensors.privacy.child import ChildConfig
    from mlsensors.privacy.guard import Guard, GuardTiming

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", type=int, default=400)
    args = parser.parse_args()
    plan = {"slots": list(SLOTS_MS), "bits": args.bits, "seed": 7}
    guard = Guard(Hub(), ChildConfig(-1, -1, work="proc_channel_bench:thread_signal",
                                     sensor_options=json.dumps(plan)), max_rate=10.0,
                  timing=GuardTiming(watchdog=600.0))  # it publishes nothing meanwhile
    expected = bits_for(args.bits, 7)
    with guard:
        pid = 0
        while not pid:
            time.sleep(0.01)
            pid = guard.child_pid
        time.sleep(0.5)  # its command thread starts first
        base = threads_of(pid)
        while threads_of(pid) == base:  # wait for the first preamble
            time.sleep(0.0005)
        print(f"sealed child {pid}; {base} threads at rest; {args.bits} bits per slot length")
        for slot in SLOTS_MS:
            while threads_of(pid) > base:  # the end of the preamble
                time.sleep(0.0002)
            t0 = time.monotonic() + 0.5 - 0.0003  # (read latency)
            got = []
            for i in range(args.bits):
                mid = t0 + (i + 0.5) * slot / 1000
                while time.monotonic() < mid:
                    pass
                got.append(int(threads_of(pid) > base))
            errors = sum(a != b for a, b in zip(got, expected, strict=True))
            p = errors / args.bits
            rate = 1000 / slot
            print(f"slot {slot:4.0f} ms: {errors:3d}/{args.bits} bit errors; "
                  f"≈ {rate * (1 - entropy(min(p, 0.5))):6.1f} bit/s of {rate:.0f}")
            time.sleep(0.5)  # past the last data slot
            while threads_of(pid) == base:  # the next preamble
                time.sleep(0.0005)


if __name__ == "__main__":
    main()
