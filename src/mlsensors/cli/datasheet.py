"""`mlsensors datasheet [--out DIR] [--data DIR]`: write the sensor's datasheet, measured now.

Writes datasheet.md and a self-contained datasheet.html (plots inline) in the layout
proposed for ML sensors. Detection quality is measured on the labelled photos of the
data folder (default: ../shared/data beside the checkout when present); latency, memory
and the privacy label are measured on this machine by running the sensor and the audit.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def default_data_dir() -> Path | None:
    explicit = os.environ.get("MLSENSORS_TEST_DATA")
    candidates = [Path(explicit)] if explicit else []
    candidates += [Path.cwd().parent / "shared" / "data",
                   Path(__file__).resolve().parents[3].parent / "shared" / "data"]
    return next((p for p in candidates if p.is_dir()), None)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "datasheet", help="measure the sensor and write its datasheet (Markdown + HTML)",
        description=__doc__.split("\n\n")[1].replace("\n", " "))
    p.add_argument("--out", default="datasheet", help="output folder (default ./datasheet)")
    p.add_argument("--data", default=None,
                   help="labelled data folder (default: ../shared/data when present)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mlsensors.privacy.datasheet import generate

    data = Path(args.data) if args.data else default_data_dir()
    print("measuring (detector, latency, sealed sensor, audit); this takes a minute",
          file=sys.stderr)
    written = generate(Path(args.out), data)
    print(f"wrote {written.markdown} and {written.html}")
    for reason in written.not_measured:
        print(f"not measured: {reason}")
    return 0
