"""The voice sensor's goal table, measured on ../shared/data/voice (issue 13).

Speakers are split in two halves by a hash of their id; every threshold is chosen on
one half and reported on the other, never on single clips.

1. One speaker, 5 takes per command (every speaker/word with ≥ 6 clips): misses on that
   speaker's other takes, false accepts per non-target clip (other words, _unknown_,
   _silence_), at the threshold chosen on the other half for ≤ 1 % false accepts.
2. Across speakers: 10 words, 5 takes each from one half, accuracy of the nearest
   command on the other half (closed set), 10 draws × both directions.
3. Wake word (microWakeWord "alexa", shipped cutoff) on the Picovoice alexa clips:
   misses, and false fires per hour of a long stream of every non-alexa clip
   (other wake words, Speech Commands words, _unknown_, _silence_) with 0.4 s gaps.
4. Whole pipeline (wake word + 10 enrolled commands) on that stream: real-time factor,
   false command events per hour, end of utterance → event, and the peak memory of
   `mlsensors voice run` in its own process.

    PYTHONPATH=src .venv/bin/python bench/voice_bench.py [--data ../shared/data] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mlsensors.voice.audio import SAMPLE_RATE
from mlsensors.voice.clips import read_clip
from mlsensors.voice.embed import CommandEmbedder
from mlsensors.voice.matcher import CommandSet
from mlsensors.voice.sensor import VoiceOptions, VoiceSensor
from mlsensors.voice.sources import clip_blocks
from mlsensors.voice.wakeword import WakeWordDetector

WORDS = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes")
SHOTS = 5
FA_TARGET = 0.01


def speaker(path: Path) -> str:
    return path.name.split("_nohash_")[0] if "_nohash_" in path.name else path.name


def half(name: str) -> int:
    return int(hashlib.sha256(name.encode()).hexdigest(), 16) % 2


def load_clips(data: Path):
    root = data / "voice" / "speech_commands"
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(folder.glob("*.flac")):
            out.append((folder.name, path))
    return out


def embed_all(sensor: VoiceSensor, clips):
    rows, ok = [], []
    for _, path in clips:
        got = sensor.embed_clip(read_clip(path))
        rows.append(got[0] if got is not None else np.zeros(76, np.float32))
        ok.append(got is not None)
    return np.stack(rows), np.array(ok)


def one_speaker(E, ok, words, spk, halves):
    """Per (speaker, word) with ≥ 6 takes: distances of its targets and non-targets."""
    pairs = {}
    for i, (w, s) in enumerate(zip(words, spk, strict=True)):
        if w in WORDS:
            pairs.setdefault((s, w), []).append(i)
    results = []  # (half, target distances, non-target distances)
    for (s, w), idx in sorted(pairs.items()):
        if len(idx) < SHOTS + 1:
            continue
        centre = E[idx[:SHOTS]].mean(axis=0)
        centre /= np.linalg.norm(centre)
        d = np.where(ok, 1.0 - E @ centre, np.inf)
        nontarget = np.array([words[j] != w for j in range(len(words))])
        results.append((half(s), d[idx[SHOTS:]], d[nontarget]))
    return results


def rates(results, tau):
    targets = np.concatenate([t for _, t, _ in results])
    nons = np.concatenate([n for _, _, n in results])
    return float(np.mean(targets >= tau)), float(np.mean(nons < tau)), len(targets), len(nons)


def calibrate(results, side):
    """Largest threshold with ≤ 1 % false accepts on the enrolments of one half."""
    mine = [r for r in results if r[0] == side]
    nons = np.sort(np.concatenate([n for _, _, n in mine]))
    k = int(FA_TARGET * len(nons))
    return float(nons[k]) if k < len(nons) else float(nons[-1])


def across(E, words, halves, draws=10):
    accs = []
    for side in (0, 1):
        test = np.array([w in WORDS and h != side for w, h in zip(words, halves, strict=True)])
        truth = np.array([WORDS.index(w) if w in WORDS else -1 for w in words])
        for seed in range(draws):
            rng = np.random.default_rng(seed)
            cs = CommandSet()
            for k, w in enumerate(WORDS):
                pool = [i for i, (x, h) in enumerate(zip(words, halves, strict=True))
                        if x == w and h == side]
                cs.set(w, E[rng.choice(pool, SHOTS, replace=False)])
                assert cs.index(w) == k
            centres = np.stack([cs.templates(w).mean(0) for w in WORDS])
            centres /= np.linalg.norm(centres, axis=1, keepdims=True)
            pred = np.argmax(E[test] @ centres.T, axis=1)
            accs.append(float(np.mean(pred == truth[test])))
    return accs


def build_stream(data: Path, gap: float = 0.4):
    """Every non-alexa clip, one after another with `gap` s of silence: (pcm, seconds)."""
    ww = data / "voice" / "wake_word"
    files = [p for k in sorted(ww.iterdir()) if k.is_dir() and k.name != "alexa"
             for p in sorted(k.glob("*.flac"))]
    files += sorted((data / "voice" / "speech_commands").glob("*/*.flac"))
    pause = np.zeros(int(gap * SAMPLE_RATE), np.float32)
    parts = []
    for p in files:
        parts += [read_clip(p).samples, pause]
    x = np.concatenate(parts)
    return x, len(files)


def wake_misses(data: Path, detector: WakeWordDetector):
    files = sorted((data / "voice" / "wake_word" / "alexa").glob("*.flac"))
    hits = 0
    for p in files:
        detector.reset()
        clip = read_clip(p)
        pcm = np.concatenate([clip.pcm16(), np.zeros(SAMPLE_RATE // 2, np.int16)])
        hits += any(s.fired for s in detector.feed(pcm))
    return 1 - hits / len(files), len(files)


def false_fires(detector: WakeWordDetector, stream: np.ndarray) -> int:
    detector.reset()
    pcm = (stream * 32767).astype(np.int16)
    fires = 0
    for i in range(0, len(pcm), 16000):
        fires += sum(s.fired for s in detector.feed(pcm[i:i + 16000]))
    return fires


def pipeline(commands: CommandSet, embedder, stream: np.ndarray):
    """The sensor over the stream in 20 ms blocks: (rtf, events, decision latencies)."""
    sensor = VoiceSensor(None, VoiceOptions(wake_word="alexa"), commands, embedder)
    heard = []
    sensor.on_heard = heard.append
    from mlsensors.voice.audio import Clip

    events, decide_ms = 0, []
    start = time.perf_counter()
    for block in clip_blocks(Clip(stream, "stream")):
        t0 = time.perf_counter()
        n_before = len(heard)
        events += sum(e.kind.name == "COMMAND" for e in sensor.process(block))
        if len(heard) > n_before:
            decide_ms.append((time.perf_counter() - t0) * 1000)
    elapsed = time.perf_counter() - start
    waits = [(h.emitted_at - h.utterance.end) / SAMPLE_RATE * 1000 for h in heard]
    return elapsed / (len(stream) / SAMPLE_RATE), events, waits, decide_ms


def peak_memory(store_path: Path, stream: np.ndarray) -> float:
    """MiB of maximum resident memory of `mlsensors voice run` over 5 min of the stream."""
    import soundfile as sf

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "stream.wav"
        sf.write(wav, stream[:300 * SAMPLE_RATE], SAMPLE_RATE, subtype="PCM_16")
        # the child reports its own high-water mark (VmHWM, kept per address space): the
        # rusage maxrss survives exec and would count this big process's fork as its own
        code = ("import sys; from mlsensors.cli.main import main; main(sys.argv[1:]); "
                "print([l.split()[1] for l in open('/proc/self/status') "
                "if l.startswith('VmHWM')][0], file=sys.stderr)")
        done = subprocess.run([sys.executable, "-c", code, "voice", "run", "--source", str(wav),
                               "--wake-word", "alexa", "--store", str(store_path), "--json"],
                              check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    return int(done.stderr.strip().splitlines()[-1]) / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2]
                    / "shared" / "data")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    embedder = CommandEmbedder()
    sensor = VoiceSensor(None, None, CommandSet(), embedder)
    clips = load_clips(args.data)
    words = [w for w, _ in clips]
    spk = [speaker(p) for _, p in clips]
    halves = np.array([half(s) for s in spk])
    t0 = time.perf_counter()
    E, ok = embed_all(sensor, clips)
    embed_ms = (time.perf_counter() - t0) / len(clips) * 1000

    res = one_speaker(E, ok, words, spk, halves)
    tau = {side: calibrate(res, side) for side in (0, 1)}
    miss, fa, n_t, n_n = [], [], 0, 0
    for side in (0, 1):  # threshold from one half, reported on the other
        other = [r for r in res if r[0] != side]
        m, f, t, n = rates(other, tau[side])
        miss.append(m * t)
        fa.append(f * n)
        n_t, n_n = n_t + t, n_n + n
    one_miss, one_fa = sum(miss) / n_t, sum(fa) / n_n
    shipped_miss, shipped_fa, _, _ = rates(res, CommandSet().threshold)

    accs = across(E, words, halves)

    detector = WakeWordDetector("alexa")
    ww_miss, ww_n = wake_misses(args.data, detector)
    stream, n_stream = build_stream(args.data)
    hours = len(stream) / SAMPLE_RATE / 3600
    fires = false_fires(detector, stream)

    commands = CommandSet()
    rng = np.random.default_rng(0)
    for w in WORDS:
        pool = [i for i, x in enumerate(words) if x == w and halves[i] == 0]
        commands.set(w, E[rng.choice(pool, SHOTS, replace=False)])
    # the command stream holds no enrolled word: wake-word clips, _unknown_, _silence_
    nonword = [p for w, p in clips if w.startswith("_")]
    ww = args.data / "voice" / "wake_word"
    nonword += [p for k in sorted(ww.iterdir()) if k.is_dir() for p in sorted(k.glob("*.flac"))]
    pause = np.zeros(int(0.4 * SAMPLE_RATE), np.float32)
    cmd_stream = np.concatenate([x for p in nonword for x in (read_clip(p).samples, pause)])
    rtf, false_cmds, waits, decide = pipeline(commands, embedder, cmd_stream)
    cmd_hours = len(cmd_stream) / SAMPLE_RATE / 3600
    latency = [w + d for w, d in zip(waits, decide, strict=False)]

    from mlsensors.voice.store import TemplateFile

    with tempfile.TemporaryDirectory() as tmp:
        store = TemplateFile(Path(tmp) / "voice.bin")
        store.save(commands)
        mem = peak_memory(store.path, cmd_stream)

    rows = [
        ("one speaker, 5 takes: misses", f"{one_miss:.1%} of {n_t}", "≤ 3 %",
         "Mazumder et al. 2021: 5-shot F1 0.75"),
        ("  false accepts per non-target clip", f"{one_fa:.2%} of {n_n:,}", "≤ 1 %", ""),
        ("  thresholds from the other half", f"{tau[0]:.3f} / {tau[1]:.3f}", "",
         f"shipped {CommandSet().threshold}: misses {shipped_miss:.1%}, FA {shipped_fa:.2%}"),
        ("across speakers, 10 words, 5 takes: accuracy",
         f"{statistics.mean(accs):.3f} (min {min(accs):.3f})", "≥ 0.90",
         "MLPerf Tiny KWS 0.90 top-1 (trained); prototype 0.858"),
        ("wake word alexa: misses", f"{ww_miss:.1%} of {ww_n}", "≤ 3 %",
         "Porcupine 2.7 % at 0.1/h; okay_nabu 2 %"),
        ("  false fires per hour", f"{fires / hours:.2f} ({fires} in {hours:.2f} h, "
         f"{n_stream} clips)", "≤ 0.5", "okay_nabu 0.12/h; openWakeWord < 0.5/h"),
        ("whole pipeline real-time factor", f"{rtf:.4f}", "≤ 0.05", ""),
        ("false command events per hour (no enrolled word)",
         f"{false_cmds / cmd_hours:.1f} ({false_cmds} in {cmd_hours:.2f} h)", "reported",
         "DS-CNN alone: 6–8/h"),
        ("end of utterance → event, p50 / p95 / max",
         f"{np.percentile(latency, 50):.0f} / {np.percentile(latency, 95):.0f} / "
         f"{max(latency):.0f} ms", "≤ 300 ms", ""),
        ("embedding per utterance", f"{embed_ms:.1f} ms", "", ""),
        ("peak memory, `voice run` with wake word", f"{mem:.0f} MiB", "measured", ""),
    ]
    if args.json:
        print(json.dumps({r[0].strip(): r[1] for r in rows}))
        return 0
    print(f"{'goal':52} {'measured':34} {'target':10} anchor")
    for r in rows:
        print(f"{r[0]:52} {r[1]:34} {r[2]:10} {r[3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
