"""`mlsensors voice enroll|run|list|erase|encrypt`: the voice sensor from the command line."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from mlsensors.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("voice", help="enrol, recognise, list and erase voice commands")
    vsub = p.add_subparsers(dest="voice_command", metavar="ACTION", required=True)

    q = vsub.add_parser("enroll", help="learn a command from 3–5 recordings of it")
    _store_arguments(q)
    q.add_argument("--command", required=True, help="the command's name, e.g. 'lamp on'")
    q.add_argument("files", nargs="*", type=Path, metavar="FILE")
    q.add_argument("--mic", action="store_true", help="record the takes from the microphone")
    q.add_argument("--takes", type=int, default=5, help="takes to record with --mic")
    q.set_defaults(run=_enroll)

    q = vsub.add_parser("run", help="recognise enrolled commands (one line per event)")
    _store_arguments(q)
    q.add_argument("--source", default="mic",
                   help="mic (default), an audio file, a folder of clips, or - for 16 kHz "
                        "16-bit mono PCM on standard input")
    q.add_argument("--json", action="store_true", help="one JSON object per line")
    q.add_argument("--gate", choices=("none", "wake"), default="none",
                   help="wake: commands count only after the wake word")
    q.add_argument("--wake-word", default=None,
                   help="a shipped wake word (alexa, hey_jarvis, hey_mycroft, okay_nabu); "
                        "its detections are events too")
    q.add_argument("--threshold", type=float, default=None,
                   help="normalised score a command must reach "
                   "(default: the stored or shipped one)")
    q.set_defaults(run=_run)

    q = vsub.add_parser("list", help="show the enrolled commands")
    _store_arguments(q)
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(run=_list)

    q = vsub.add_parser("erase", help="erase enrolled commands (overwritten, then removed)")
    _store_arguments(q)
    q.add_argument("--command", default=None, help="erase only this command")
    q.set_defaults(run=_erase)

    q = vsub.add_parser("encrypt", help="encrypt a plaintext voice store in place with --key "
                                        "(the plaintext version is overwritten)")
    _store_arguments(q)
    q.set_defaults(run=_encrypt)


def _store_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", type=Path, default=None,
                   help="voice command file (default: $XDG_DATA_HOME/mlsensors/voice.bin)")
    p.add_argument("--key", type=Path, default=None,
                   help="key file: encrypt the commands at rest (`mlsensors id keygen FILE`)")


def _file(args):
    from mlsensors.voice.store import TemplateFile

    return TemplateFile(args.store, args.key)


def _ensure_models(wake_word: str | None = None) -> None:
    """First use: fetch the models this command needs. The DS-CNN is an optional file
    (from its upstream repository): fetched quietly, and when it cannot be had the
    command stops with one line naming the command that fetches it."""
    from mlsensors.models import ModelStore
    from mlsensors.voice.embed import MODEL

    store = ModelStore()
    if wake_word:
        from mlsensors.voice.wakeword import wake_model

        store.ensure([wake_model(wake_word).file])
    store.ensure([MODEL], quiet=True)


def _enroll(args) -> int:
    from mlsensors.voice.sensor import VoiceSensor

    if args.mic == bool(args.files):
        raise InputError("give the recordings as FILE... or --mic, not both or neither")
    tfile = _file(args)
    commands = tfile.load()
    _ensure_models()
    sensor = VoiceSensor(commands=commands)
    clips = _record_takes(args.takes) if args.mic else args.files
    index = sensor.enroll(args.command, clips)
    tfile.save(sensor.commands)
    name = sensor.commands.names()[index]
    print(f"command {index} {name!r}: {len(sensor.commands.templates(name))} take(s) stored "
          f"in {tfile.path}")
    return 0


def _record_takes(takes: int):
    """Takes from the microphone: each the first utterance heard, cut from the stream."""
    from mlsensors.voice.audio import SAMPLE_RATE, AudioBlock, Clip
    from mlsensors.voice.ring import AudioRing
    from mlsensors.voice.segment import Endpointer
    from mlsensors.voice.sources import open_audio_source

    mic = open_audio_source("mic")
    ring, ep, clips = AudioRing(), Endpointer(), []
    try:
        print(f"say the command {takes} times, with a pause after each", file=sys.stderr)
        for block in mic.blocks():
            if not isinstance(block, AudioBlock):
                break
            ring.write(block.samples)
            for u in ep.feed(block.samples, block.start):
                clips.append(Clip(ring.read(u.centre - SAMPLE_RATE, u.centre + SAMPLE_RATE),
                                  f"take {len(clips) + 1}"))
                print(f"take {len(clips)} heard", file=sys.stderr)
            if len(clips) >= takes:
                break
    finally:
        mic.close()
        ring.clear()
    return clips


def _run(args) -> int:
    from mlsensors.voice.sensor import VoiceOptions, VoiceSensor

    commands = _file(args).load()
    if not len(commands) and not args.wake_word:
        raise InputError("no commands are enrolled; `mlsensors voice enroll --command NAME "
                         "FILE...` first (or give --wake-word)")
    options = VoiceOptions(gate=args.gate, wake_word=args.wake_word, threshold=args.threshold)
    source = Path(args.source)
    if args.source not in ("mic", "-") and source.is_dir():
        return _run_folder(args, options, commands, source)
    _ensure_models(args.wake_word)
    with VoiceSensor(args.source, options, commands) as sensor:
        for event in sensor:
            name = event.name if event.name is not None else (
                "wake" if event.kind.name == "WAKE" else None)
            if args.json:
                print(json.dumps({"command": name, "kind": event.kind.name.lower(),
                                  "index": event.command, "confidence": event.confidence,
                                  "counter": event.counter, "when_ms": event.when_ms,
                                  "time": round(event.timestamp, 3)}), flush=True)
            else:
                print(f"{event.when_ms / 1000:8.2f} s  {name}  confidence "
                      f"{event.confidence}", flush=True)
        for line in sensor.tracker.suggestions():
            print(f"mlsensors: suggestion: {line}", file=sys.stderr)
    return 0


def _run_folder(args, options, commands, folder: Path) -> int:
    """One line per clip: the command said in it (null when none), and its score."""
    from mlsensors.errors import MlsensorsError
    from mlsensors.voice.clips import audio_files, read_clip
    from mlsensors.voice.sensor import VoiceSensor

    files = audio_files(folder)
    if not files:
        raise InputError(f"folder {folder} holds no audio files (.wav, .flac, .ogg)")
    _ensure_models()
    sensor = VoiceSensor(None, options, commands)
    status = 0
    for path in files:
        try:
            m = sensor.classify(read_clip(path))
        except MlsensorsError as e:
            status = 1
            row = {"path": str(path), "error": str(e)}
        else:
            row = {"path": str(path), "command": m.name, "score": m.confidence,
                   "normalised": round(m.score, 3) if math.isfinite(m.score) else None}
        if args.json:
            print(json.dumps(row), flush=True)
        elif "error" in row:
            print(f"{path}: error: {row['error']}", flush=True)
        else:
            print(f"{path}: {row['command']} (score {row['score']})", flush=True)
    return status


def _list(args) -> int:
    tfile = _file(args)
    commands = tfile.load()
    rows = [{"index": i, "command": n, "takes": len(commands.templates(n))}
            for i, n in enumerate(commands.names())]
    if args.json:
        print(json.dumps({"store": str(tfile.path), "exists": tfile.exists(),
                          "commands": rows, "threshold": commands.threshold}))
        return 0
    if not rows:
        print(f"{tfile.path}: no commands" + ("" if tfile.exists() else " (no file)"))
    for r in rows:
        print(f"{r['index']}: {r['command']} ({r['takes']} take(s))")
    return 0


def _erase(args) -> int:
    tfile = _file(args)
    if args.command is not None:
        commands = tfile.load(missing_ok=False)
        commands.remove(args.command)
        tfile.save(commands)
        print(f"erased command {args.command!r} from {tfile.path}")
        return 0
    erased = tfile.erase()
    for path in erased:
        print(f"erased {path}")
    if not erased:
        print(f"no voice commands at {tfile.path}; nothing to erase")
    return 0


def _encrypt(args) -> int:
    from mlsensors.cli.id import encrypt_in_place

    encrypt_in_place(_file(args), lambda commands: f"{len(commands)} command(s)")
    return 0
