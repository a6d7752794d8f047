"""The datasheet as a list of blocks, rendered to Markdown and to one self-contained HTML page.

Sections follow the layout proposed for ML sensors (Stewart et al., "Datasheets for
Machine Learning Sensors"). Fixed facts (record layout, register map, model identities)
come from the code that defines them (wire.record, the guard's register table, the model
manifest); every performance figure comes from `Measurements`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape
from pathlib import Path

from mlsensors.models.manifest import MANIFEST, origin
from mlsensors.privacy.datasheet import plots
from mlsensors.privacy.datasheet.measure import Measurements
from mlsensors.privacy.logfilter import BURST, LINE_MAX, WINDOW
from mlsensors.privacy.sealed import DEFAULT_MAX_RATE, MEMORY_CAP
from mlsensors.wire.record import DATA_SIZE, RECORD_SIZE
from mlsensors.wire.registers import REGISTER_MAP


@dataclass(frozen=True, slots=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True, slots=True)
class Para:
    text: str


@dataclass(frozen=True, slots=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class Figure:
    svg: str
    caption: str


Block = Heading | Para | Table | Figure

MODEL_DATA_NOTES = {
    "face_detection_full_range.tflite": "Trained by Google for MediaPipe Face Detection; "
    "its model card describes the training and fairness evaluation data. Full-range "
    "variant: faces up to about 5 m.",
    "face_detection_short_range.tflite": "Trained by Google for MediaPipe Face Detection; "
    "its model card describes the data. Short range: faces within about 2 m.",
    "shape_predictor_5_face_landmarks.dat": "dlib 5-point landmark model by Davis King; "
    "see its author's release notes for the labelled faces it was trained on.",
    "dlib_face_recognition_resnet_model_v1.dat": "dlib ResNet by Davis King; its author "
    "describes training on about 3 million faces (FaceScrub, VGG and web images) and "
    "99.38% on LFW. Face recognition data sets of that era under-represent many groups.",
}


def blocks(m: Measurements) -> list[Block]:
    out: list[Block] = [Heading("mlsensors Person Sensor — ML sensor datasheet", 1), Para(
        f"Generated {m.generated} on {m.machine}. Every figure under *End-to-end "
        f"performance* and *IoT security and privacy label* was measured while this page "
        f"was generated.")]
    out += _description() + _interface(m) + _flow() + _models() + _performance(m)
    out += _security(m) + _compliance() + _environment(m)
    return out


def _description() -> list[Block]:
    return [
        Heading("Description"),
        Para("A camera on a Linux computer turned into a person sensor compatible with "
             "Useful Sensors' SEN21231: it reports up to four faces (box, confidence, "
             "whether each looks at the camera, optional enrolled ID) and nothing else. "
             "Pixels never leave a sealed sensing process."),
        Heading("Features and use cases", 3),
        Para("Presence detection and wake-on-approach; counting people in front of a "
             "display; attention (facing) for kiosks and appliances; recognising a few "
             "enrolled people (up to 8 IDs) on-device. Interfaces: virtual I2C bus, MQTT, "
             "HTTP, command line. Not for surveillance, identification of strangers or "
             "any decision with legal effect on a person."),
    ]


def _interface(m: Measurements) -> list[Block]:
    layout = (
        ("0–1", "reserved", "0"),
        ("2–3", "uint16 data_size", str(DATA_SIZE)),
        ("4", "int8 num_faces", "0–4"),
        ("5–36", "4 × face: confidence, left, top, right, bottom, id_confidence, id, "
                 "is_facing", "0–100, 0–255 ×4, −128..100, −1..7, 0/1"),
        ("37–38", "uint16 CRC-16/CCITT-FALSE of bytes 0–36", ""),
    )
    registers = tuple((f"0x{r:02x}", f"{spec.register.name}: {spec.summary}",
                       f"{spec.values.start}–{spec.values.stop - 1}")
                      for r, spec in sorted(REGISTER_MAP.items()))
    latency = (f"median {m.timing.median_ms:.1f} ms, p95 {m.timing.p95_ms:.1f} ms per "
               f"{m.timing.frame} frame (detector and record), plus up to one guard tick "
               f"(1/rate)" if m.timing else "not measured")
    return [
        Heading("Outputs and interface"),
        Para(f"One results record of {RECORD_SIZE} bytes per update, little-endian, packed "
             f"(clients with native alignment read 40 bytes):"),
        Table(("bytes", "field", "values"), layout),
        Para("Register writes (2 bytes: register, value) accepted by the guard; anything "
             "else is refused before it reaches the sensing process:"),
        Table(("register", "meaning", "values"), registers),
        Para(f"Update rate: at most `--max-rate` records per second (default "
             f"{DEFAULT_MAX_RATE:g}), enforced by the guard's fixed clock. Latency: "
             f"{latency}."),
    ]


def _flow() -> list[Block]:
    return [
        Heading("Software flow"),
        Para("camera or file → sealed child [seal (namespaces, seccomp, Landlock, "
             "rlimits) → verify model bytes → source → letterbox → BlazeFace (LiteRT) → "
             "decode → weighted NMS → largest four faces → 39-byte record] → 40-byte frame "
             "on a pipe → guard [strict decode, rate cap, watchdog] → Hub → transports. "
             "Register writes travel back on a second pipe."),
    ]


def _models() -> list[Block]:
    rows = tuple(
        (s.name, origin(s), s.sha256, s.licence,
         s.description)
        for s in MANIFEST.values())
    notes = tuple((name, MODEL_DATA_NOTES.get(name, "no notes")) for name in MANIFEST)
    return [
        Heading("Model specification"),
        Para("Every file is pinned by SHA-256 in the code (mlsensors/models/manifest.py); "
             "the sealed process verifies the bytes it loads and refuses a mismatch. No "
             "option, register or command selects a different file."),
        Table(("file", "provenance (package)", "SHA-256", "licence", "input/output, use"),
              rows),
        Para("Limitations: the detector finds frontal and near-profile faces; small faces, "
             "strong backlight, heavy occlusion and extreme angles reduce recall (the "
             "precision/recall figures below are measured on a small labelled set). "
             "Facing is a geometric estimate from keypoints, not gaze."),
        Heading("Dataset notes", 3),
        Table(("file", "training data, as described by its publisher"), notes),
    ]


def _performance(m: Measurements) -> list[Block]:
    out: list[Block] = [Heading("End-to-end performance")]
    d = m.detection
    if d is not None:
        p = d.at_default
        out += [
            Para(f"Detection on {d.images} labelled photos in {m.data_dir}/faces/dlib_training "
                 f"({d.labelled_faces} faces, one photo with none), match = IoU ≥ 0.3 or "
                 f"centre inside the label, at the default threshold {d.default_threshold:g}: "
                 f"**precision {p.precision:.2f}, recall {p.recall:.2f}** "
                 f"({p.true_positives} found, {p.false_positives} false). Face count "
                 f"exact in {d.portraits_counted} of {d.portraits} portraits."),
            Figure(plots.line([(q.recall, q.precision) for q in d.curve],
                              "Precision / recall over the score threshold", "recall",
                              "precision",
                              labels=[f"threshold {q.threshold:g}" for q in d.curve]),
                   "Each point is one score threshold (0.05 … 0.95)."),
        ]
    if m.timing is not None:
        t = m.timing
        out += [
            Para(f"Latency per {t.frame} frame in process: median {t.median_ms:.1f} ms, "
                 f"p95 {t.p95_ms:.1f} ms ({len(t.latencies_ms)} frames) → "
                 f"{t.fps:.0f} fps. Sealed child, unpaced demo source (including rendering "
                 f"the demo frames): {t.sealed_fps:.1f} records/s through the guard."),
            Figure(plots.histogram(t.latencies_ms, "Latency per frame", "ms"),
                   "Detector and record for each frame of the demo source."),
        ]
    if m.audit is not None:
        a = m.audit
        out.append(Para(f"Memory of the sealed sensing process: peak RSS "
                        f"{a.peak_rss_kb / 1024:.0f} MiB, peak address space "
                        f"{a.vm_peak_kb / 1024:.0f} MiB, cap (RLIMIT_AS) "
                        f"{a.memory_cap >> 20} MiB."))
    for reason in m.not_measured:
        out.append(Para(f"Not measured — {reason}."))
    return out


def _security(m: Measurements) -> list[Block]:
    out: list[Block] = [
        Heading("IoT security and privacy label"),
        Para("Threat model: the code that touches pixels (decoders, LiteRT, models) may be "
             "compromised; it must not get pixels out. Data handling: frames live only in "
             "the sealed process, one at a time, and are never written, logged or sent; "
             "only the record leaves. Stored: nothing by default; enrolled IDs (when "
             "enabled) in a local gallery file, erasable by register 0x06."),
    ]
    a = m.audit
    if a is None:
        return [*out, Para("Not measured — the audit did not run.")]
    verdict = "all checks passed" if a.passed else "SOME CHECKS FAILED"
    out += [
        Para(f"`mlsensors audit` at generation time ({verdict}; sensing process PID "
             f"{a.child_pid}, watched {a.seconds:g} s at ≤ {a.max_rate:g} records/s):"),
        Table(("check", "result", "evidence"),
              tuple((c.name, "PASS" if c.passed else "FAIL", c.evidence) for c in a.checks)),
        Para(f"Channel capacity (upper bound, whatever the sensing code does): "
             f"{a.capacity.describe()}. Log side channel: at most {BURST} lines of "
             f"{LINE_MAX} characters per {WINDOW:g} s."),
    ]
    return out + _residual()


RESIDUAL = Path(__file__).with_name("residual_channels.json")
"""Written by `bench/proc_channels.py --json`: what stays open, measured, not estimated."""


def _residual() -> list[Block]:
    """The best measured rate of each channel the seal cannot close (/proc values any
    local user reads), next to the record channel's bound above."""
    try:
        data = json.loads(RESIDUAL.read_text())
    except (OSError, ValueError):
        return [Para("Residual channels: not measured (run bench/proc_channels.py --json).")]
    best: dict[str, dict] = {}
    for row in data["rows"]:
        if row["channel"] not in best or row["capacity_bps"] > best[row["channel"]][
                "capacity_bps"]:
            best[row["channel"]] = row
    rows = tuple((r["channel"], f"{r['slot'] * 1000:g} ms", f"{r['capacity_bps']:,.0f}",
                  f"{r['error_rate']:.3f}",
                  "never" if not r["frame_seconds"] else _duration(r["frame_seconds"]))
                 for r in sorted(best.values(), key=lambda r: -r["capacity_bps"]))
    return [
        Para(f"Residual channels: a sender inside the sealed process against a receiver "
             f"reading /proc outside, measured with `{data['measured_by']}` on "
             f"{data['date']} (best slot per channel; capacity = rate × (1 − H(error)))."),
        Table(("channel", "slot", "capacity bit/s", "bit error rate", "one 320×320 frame"),
              rows),
    ]


def _duration(s: float) -> str:
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if s >= 2 * size:
            return f"{s / size:.1f} {unit}"
    return f"{s:.0f} s"


def _compliance() -> list[Block]:
    return [
        Heading("Compliance notes"),
        Para("No images are stored or transmitted, which keeps the device out of most "
             "video-recording rules; face IDs are biometric data in many jurisdictions "
             "(e.g. GDPR art. 9): enable the ID model only with the enrolled people's "
             "consent, and erase IDs when they withdraw it. Model licences: see the "
             "model table. Signage that a sensor is present is still good practice."),
    ]


def _environment(m: Measurements) -> list[Block]:
    fps = f"{m.timing.fps:.0f} fps in process" if m.timing else "not measured"
    return [
        Heading("Environmental notes"),
        Para(f"Measured on {m.machine}: {fps}. Runs on any Linux computer with Python 3.11 "
             f"(x86-64 tested; Raspberry Pi 4/5 aarch64 targeted). Needs even, frontal "
             f"light for best recall; infrared-only cameras are untested. The sandbox needs "
             f"unprivileged user namespaces, seccomp, CONFIG_CHECKPOINT_RESTORE and "
             f"Landlock (Linux ≥ 5.13) and refuses to start without them; the memory cap is "
             f"{MEMORY_CAP >> 20} MiB of address space."),
    ]


# -- renderers -------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(doc: list[Block]) -> str:
    lines: list[str] = []
    for b in doc:
        if isinstance(b, Heading):
            lines += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Para):
            lines += [b.text, ""]
        elif isinstance(b, Table):
            lines.append("| " + " | ".join(b.header) + " |")
            lines.append("|" + " --- |" * len(b.header))
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            lines.append("")
        else:
            lines += [f"*Figure: {b.caption} (plot in datasheet.html)*", ""]
    return "\n".join(lines)


def _inline(text: str) -> str:
    """Escape, then the two bits of Markdown the paragraphs use: **bold** and `code`."""
    import re

    html = escape(text)
    html = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html)
    html = re.sub(r"\*(.+?)\*", r"<em>\1</em>", html)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", html)


STYLE = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;
padding:0 1rem;color:#222;line-height:1.45}table{border-collapse:collapse;margin:.5rem 0 1rem;
font-size:.9rem}td,th{border:1px solid #bbb;padding:.25rem .5rem;vertical-align:top;
text-align:left;word-break:break-word}th{background:#eef}figure{margin:1rem 0}
figcaption{font-size:.85rem;color:#555}code{background:#f4f4f4;padding:0 .2rem}"""


def to_html(doc: list[Block]) -> str:
    title = next((b.text for b in doc if isinstance(b, Heading)), "Datasheet")
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"]
    for b in doc:
        if isinstance(b, Heading):
            parts.append(f"<h{b.level}>{escape(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            parts.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{escape(h)}</th>" for h in b.header)
            rows = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>"
                           for row in b.rows)
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        else:
            parts.append(f"<figure>{b.svg}<figcaption>{escape(b.caption)}</figcaption>"
                         f"</figure>")
    parts.append("</body></html>")
    return "\n".join(parts)
