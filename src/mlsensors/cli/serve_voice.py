"""`mlsensors serve --voice`: the voice sensor's part of the service.

The enrolled commands are read here (with their key), outside every seal, and handed to
the sealed voice process by its guard; the microphone is opened only inside that
process (role "microphone"), launched by the same `SealedSensor` as the camera's. Its
events reach the transports through a `VoiceHub`, behind the gate (voice/gate.py).
"""

from __future__ import annotations

import argparse
import glob
import math
import os
from dataclasses import dataclass
from pathlib import Path

from mlsensors.errors import InputError
from mlsensors.privacy.policy import role
from mlsensors.voice.gate import FACING_SECONDS, GATES, Gate, default_gate

VOICE_MEMORY_CAP = role("microphone").limits.address_space
"""RLIMIT_AS of the sealed voice process (512 MiB, the microphone role's): measured peak
address space 235 MiB with the wake word on a folder of clips (66 MiB resident;
bench/voice_sealed_bench.py), with room for a long file decoded whole (≤ 10 min:
~40 MiB of samples, twice)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("voice (look and speak)")
    g.add_argument("--voice", nargs="?", const="mic", default=None, metavar="SOURCE",
                   help="also run the sealed voice sensor: on the microphone (default), or "
                        "an audio FILE or FOLDER of clips")
    g.add_argument("--no-person", action="store_true",
                   help="run the voice sensor alone (no camera)")
    g.add_argument("--gate", choices=GATES, default=None,
                   help="when a command counts: facing (someone faces the person sensor; "
                        "default with it), wake (after the wake word; default without), "
                        "both, none")
    g.add_argument("--wake-word", default=None,
                   help="shipped wake word (alexa, hey_jarvis, hey_mycroft, okay_nabu; "
                        "default alexa when the gate needs one)")
    g.add_argument("--facing-seconds", type=float, default=FACING_SECONDS,
                   help=f"how recently someone must have faced the sensor (default "
                        f"{FACING_SECONDS:g} s)")
    g.add_argument("--voice-store", type=Path, default=None,
                   help="voice command file (default: $XDG_DATA_HOME/mlsensors/voice.bin)")
    g.add_argument("--voice-key", type=Path, default=None,
                   help="key file of an encrypted voice command file")
    g.add_argument("--voice-threshold", type=float, default=None,
                   help="normalised score a command must reach (default: the stored one)")


def check_microphone() -> None:
    """Before anything starts: a machine with no ALSA capture device gets one line naming
    what to pass. (Checked from /dev/snd, without opening a device outside the seal;
    MLSENSORS_MIC naming another ALSA device is trusted and tried in the seal.)"""
    from mlsensors.voice.sources import NO_MIC_HINT

    if os.environ.get("MLSENSORS_MIC"):
        return
    if not glob.glob("/dev/snd/pcmC*D*c"):
        hint = NO_MIC_HINT.replace("--source FILE or FOLDER", "--voice FILE or FOLDER")
        hint = hint.split(", or 16 kHz")[0]
        raise InputError(f"no microphone (no ALSA capture device in /dev/snd); {hint}")


@dataclass
class VoiceService:
    hub: object
    sensor: object
    gate: Gate
    wake_word: str | None


def build(args: argparse.Namespace, person_hub, **sealed_kwargs) -> VoiceService | None:
    """The voice hub, gate and sealed sensor `args` ask for (not started); None without
    --voice. `person_hub` is the person sensor's hub, or None when it does not run."""
    if args.voice is None:
        if args.no_person:
            raise InputError("--no-person runs the voice sensor alone: give --voice too")
        return None
    from mlsensors.cli.voice import _ensure_models
    from mlsensors.privacy.sealed import SealedSensor
    from mlsensors.voice.events import VoiceHub
    from mlsensors.voice.kind import VOICE
    from mlsensors.voice.store import TemplateFile
    from mlsensors.voice.template_link import template_blocks

    source = args.voice
    if source == "-":
        raise InputError("--voice -: standard input is not passed to the sealed voice "
                         "process; give mic, a FILE or a FOLDER")
    if source == "mic":
        check_microphone()
    elif not os.path.exists(source):
        raise InputError(f"--voice {source}: no such file or folder (give mic, an audio "
                         f"FILE or a FOLDER of clips)")
    gate_mode = args.gate or default_gate(person_hub is not None)
    wake_word = args.wake_word or ("alexa" if gate_mode in ("wake", "both") else None)
    if not (math.isfinite(args.facing_seconds) and args.facing_seconds > 0):
        raise InputError(f"--facing-seconds {args.facing_seconds}: give a positive number "
                         "of seconds")
    if args.voice_threshold is not None and not math.isfinite(args.voice_threshold):
        raise InputError(f"--voice-threshold {args.voice_threshold}: give a finite number")
    gate = Gate(gate_mode, person_hub, facing_seconds=args.facing_seconds)
    commands = TemplateFile(args.voice_store, args.voice_key).load()
    if not len(commands) and not wake_word:
        gate.close()
        raise InputError("no voice commands are enrolled; `mlsensors voice enroll --command "
                         "NAME FILE...` first")
    _ensure_models(wake_word)
    hub = VoiceHub(tuple(commands.names()), gate)
    options = {"wake_word": wake_word, "threshold": args.voice_threshold,
               "commands": len(commands)}
    sensor = SealedSensor(hub, os.path.abspath(source) if source != "mic" else "mic",
                          options, kind=VOICE, role="microphone",
                          handoff=template_blocks(commands),
                          memory_bytes=VOICE_MEMORY_CAP, **sealed_kwargs)
    return VoiceService(hub, sensor, gate, wake_word)
