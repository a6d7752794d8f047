"""`mlsensors audit [--id] [--voice] [--json]`: check a sealed sensor's privacy promises.

It starts a sealed sensor on the given source (default: the demo source, so it needs no
camera), watches it for a few seconds and prints each check as PASS or FAIL with what
decided it; then it runs the escape suite: hostile code in a sealed child sealed exactly
as `serve` (with --id: `serve --id`) seals it tries every known way out, and each channel
is judged from outside; with --voice it also runs the suite sealed as the voice sensor's
microphone process is. Exit status 0 only when every check and every channel passes.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from mlsensors.privacy import sealed


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "audit", help="check the sandbox, channel and models of a sealed sensor",
        description=__doc__.split("\n\n")[1].replace("\n", " "))
    p.add_argument("--source", default="demo",
                   help="what the audited sensor looks at (default: demo)")
    p.add_argument("--seconds", type=float, default=5.0,
                   help="how long to watch the output (default 5)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--id", action="store_true",
                   help="run the escape suite sealed as `serve --id` (face IDs on)")
    p.add_argument("--voice", action="store_true",
                   help="also run the escape suite sealed as `serve --voice` seals its "
                        "microphone process, and state the voice record's capacity")
    p.add_argument("--pid", default=None, metavar="PID|auto",
                   help="instead of starting a sensor, check a running sensing process "
                        "from its /proc entries only (auto: the one running here)")
    sealed.add_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mlsensors.errors import InputError
    from mlsensors.privacy.audit import audit_running, find_sealed_children, run_audit

    escape = voice_escape = None
    if args.pid is None:
        from mlsensors.privacy.escape import run_escape

        report = run_audit(args.source, seconds=args.seconds, max_rate=args.max_rate,
                           insecure=args.insecure)
        escape = run_escape(identify=args.id, insecure=args.insecure)
        if args.voice:
            voice_escape = run_escape(role="microphone", insecure=args.insecure)
    else:
        if args.pid == "auto":
            pids = find_sealed_children()
            if len(pids) != 1:
                found = ", ".join(map(str, pids)) or "none"
                raise InputError(f"--pid auto needs exactly one running sensing process "
                                 f"(found: {found}); give --pid PID")
            pid = pids[0]
        elif args.pid.isdigit():
            pid = int(args.pid)
        else:
            raise InputError(f"--pid {args.pid!r}: expected a process id or auto")
        report = audit_running(pid, args.max_rate)
    passed = report.passed and all(e is None or e.passed for e in (escape, voice_escape))
    if args.json:
        out = report.to_dict()
        if escape is not None:
            out["escape"] = escape.to_dict()
        if voice_escape is not None:
            out["voice_escape"] = voice_escape.to_dict()
            out["voice_capacity"] = _voice_capacity()
        out["passed"] = passed
        json.dump(out, sys.stdout, indent=2)
        print()
    else:
        what = (f"watched {report.seconds:g} s at ≤ {report.max_rate:g} records/s"
                if args.pid is None else "attached: what /proc shows of it, its "
                "configuration and models; run without --pid for the probes, rate, "
                "injection checks and the escape suite")
        print(f"sensing process PID {report.child_pid} (inspect /proc/{report.child_pid} "
              f"while it runs); {what}")
        width = max(len(c.name) for c in report.checks)
        for c in report.checks:
            print(f"{'PASS' if c.passed else 'FAIL'}  {c.name:<{width}}  {c.evidence}")
        failed = sum(not c.passed for c in report.checks)
        print(f"{len(report.checks) - failed}/{len(report.checks)} checks passed")
        if escape is not None:
            print_escape(escape)
        if voice_escape is not None:
            print_escape(voice_escape)
            from mlsensors.voice.record import capacity

            print(capacity().describe())
    return 0 if passed else 1


def _voice_capacity() -> dict:
    """The voice record channel's bound (voice/record.py), for the report."""
    from mlsensors.voice.record import capacity

    return asdict(capacity())


def print_escape(escape) -> None:
    """One line per channel: verdict, channel, what was tried, what was observed."""
    sealed_as = (", sealed as serve --voice seals its microphone process"
                 if escape.role == "microphone" else
                 ", sealed as serve --id" if escape.identify else "")
    print(f"escape suite: hostile code in the sealed child (PID {escape.child_pid}"
          f"{sealed_as}), judged from outside in {escape.seconds:g} s")
    if escape.problem:
        print(f"FAIL  escape suite did not run: {escape.problem}")
    width = max(len(v.name) for v in escape.verdicts)
    for v in escape.verdicts:
        residual = f"; residual: {v.residual}" if v.label == "OPEN" else ""
        print(f"{v.label}  {v.name:<{width}}  tried: {v.tried}; observed: {v.observed}"
              f"{residual}")
    closed = sum(v.passed for v in escape.verdicts)
    residual = len(escape.residual_open)
    print(f"{closed}/{len(escape.verdicts)} channels closed"
          + (f", {residual} residual open with stated capacity" if residual else "")
          + (f", {len(escape.failed)} FAILED" if escape.failed else ""))
