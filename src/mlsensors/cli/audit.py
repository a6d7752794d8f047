"""`mlsensors audit [--json]`: check the privacy promises of a sealed sensor, with evidence.

It starts a sealed sensor on the given source (default: the demo source, so it needs no
camera), asks it to try to break out, watches it for a few seconds and prints each check
as PASS or FAIL with what decided it. Exit status 0 only when every check passes.
"""

from __future__ import annotations

import argparse
import json
import sys

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
    sealed.add_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mlsensors.privacy.audit import run_audit

    report = run_audit(args.source, seconds=args.seconds, max_rate=args.max_rate,
                       insecure=args.insecure)
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
        print()
    else:
        print(f"sensing process PID {report.child_pid} (inspect /proc/{report.child_pid} "
              f"while it runs); watched {report.seconds:g} s at ≤ {report.max_rate:g} "
              f"records/s")
        width = max(len(c.name) for c in report.checks)
        for c in report.checks:
            print(f"{'PASS' if c.passed else 'FAIL'}  {c.name:<{width}}  {c.evidence}")
        failed = sum(not c.passed for c in report.checks)
        print(f"{len(report.checks) - failed}/{len(report.checks)} checks passed")
    return 0 if report.passed else 1
