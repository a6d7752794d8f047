"""The sealed voice process in the service's configuration: memory against its cap.

Enrols "yes" and "no" (5 takes each, one speaker's), then runs the voice kind's sealed
child through the real guard (wake word on, as `serve --voice --gate wake` does) on a
folder of other speakers' takes of "yes", "no" and "left", heard at the pace of
speech. Prints the child's peak address space (VmPeak) and resident size (VmHWM)
beside VOICE_MEMORY_CAP (how the cap in cli/serve_voice.py was sized), and what the
guard passed: events published, records received, dropped over rate, malformed.

    PYTHONPATH=src .venv/bin/python bench/voice_sealed_bench.py [--clips 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from mlsensors.cli.serve_voice import VOICE_MEMORY_CAP
from mlsensors.cli.voice import _ensure_models
from mlsensors.privacy.sealed import SealedSensor
from mlsensors.voice.events import VoiceHub
from mlsensors.voice.kind import VOICE
from mlsensors.voice.matcher import CommandSet
from mlsensors.voice.sensor import VoiceSensor
from mlsensors.voice.template_link import template_blocks

DATA = Path(os.environ.get("MLSENSORS_TEST_DATA",
                           Path(__file__).resolve().parents[1].parent / "shared" / "data"))
WORDS = DATA / "voice" / "speech_commands"


def speaker(path: Path) -> str:
    return path.name.split("_nohash_")[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=10, help="takes of each word to hear")
    args = ap.parse_args()
    _ensure_models("alexa")
    enrol = VoiceSensor(None, None, CommandSet())
    files = {w: sorted((WORDS / w).glob("*.flac")) for w in ("yes", "no", "left")}
    used = set()
    for word in ("yes", "no"):
        enrol.enroll(word, files[word][:5])
        used |= {speaker(p) for p in files[word][:5]}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        n = 0
        for i in range(args.clips):
            for word in ("yes", "no", "left"):
                others = [p for p in files[word] if speaker(p) not in used]
                shutil.copy(others[i], folder / f"{n:03d}_{word}.flac")
                n += 1
        hub = VoiceHub(tuple(enrol.commands.names()))
        sensor = SealedSensor(hub, str(folder), {"wake_word": "alexa", "commands": 2},
                              kind=VOICE, role="microphone",
                              handoff=template_blocks(enrol.commands),
                              memory_bytes=VOICE_MEMORY_CAP)
        peak = hwm = 0
        started = time.monotonic()
        sensor.start()
        try:
            while sensor.running:
                try:
                    with open(f"/proc/{sensor.child_pid}/status") as f:
                        for line in f:
                            if line.startswith("VmPeak:"):
                                peak = max(peak, int(line.split()[1]))
                            elif line.startswith("VmHWM:"):
                                hwm = max(hwm, int(line.split()[1]))
                except (OSError, ValueError):
                    pass
                time.sleep(0.05)
        finally:
            sensor.stop()
        seconds = time.monotonic() - started
    stats, snap = sensor.stats(), hub.snapshot()
    names = [e.name for e in snap.events]
    print(f"clips heard: {n} ({args.clips} each of yes, no, left), {seconds:.1f} s")
    print(f"events published: {snap.published} (yes {names.count('yes')}, "
          f"no {names.count('no')}, wake {names.count('wake')})")
    print(f"guard: received {stats.received}, over rate {stats.over_rate}, "
          f"malformed {stats.malformed}, restarts {stats.restarts}")
    print(f"sealed voice process: peak address space {peak / 1024:.0f} MiB, resident "
          f"{hwm / 1024:.0f} MiB; cap {VOICE_MEMORY_CAP >> 20} MiB "
          f"({VOICE_MEMORY_CAP / 1024 / max(peak, 1):.2f}x the peak)")


if __name__ == "__main__":
    main()
