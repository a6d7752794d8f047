"""`mlsensors read --bus BUS [--watch] [--json]`: read a Person Sensor, real or virtual."""

from __future__ import annotations

import argparse
import json
import sys
import time

from mlsensors.cli.person import result_json
from mlsensors.errors import InputError, ProtocolError
from mlsensors.types import PersonResult

_MAX_ERRORS_IN_A_ROW = 5


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "read",
        help="read results from a Person Sensor (SEN21231) or an mlsensors virtual bus",
    )
    p.add_argument(
        "--bus", required=True,
        help="/dev/i2c-N (real sensor), tcp:HOST:PORT or unix:PATH (mlsensors serve --bus)",
    )
    p.add_argument("--watch", action="store_true", help="keep reading until interrupted")
    p.add_argument("--interval", type=float, default=0.2, metavar="S",
                   help="seconds between reads with --watch (default 0.2)")
    p.add_argument("--json", action="store_true", help="one JSON object per reading")
    p.add_argument("--lenient", action="store_true",
                   help="skip the checksum and data_size checks (an original SEN21231, "
                   "whose CRC variant is unpublished)")
    p.add_argument("--max-read", type=int, default=39, metavar="N",
                   help="longest read the I2C adapter can do (32 on some; default 39): "
                   "the record is then read in chunks")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mlsensors.transports.client import PersonSensorClient

    if args.interval <= 0:
        raise InputError("--interval must be positive")
    with PersonSensorClient(args.bus, strict=not args.lenient, max_read=args.max_read) as s:
        if not args.watch:
            _show(s.read_results(), args.json)
            return 0
        errors = 0
        while True:
            try:
                _show(s.read_results(), args.json)
                errors = 0
            except ProtocolError as e:
                errors += 1
                print(f"mlsensors: warning: {e}", file=sys.stderr)
                if errors >= _MAX_ERRORS_IN_A_ROW:
                    raise
            sys.stdout.flush()
            time.sleep(args.interval)


def reading_json(result: PersonResult) -> dict:
    """What one reading says: the record's fields and when it was read. The record
    carries no frame index, so none is printed (the sensor's own `person run --json`
    has one; a reader of the wire does not)."""
    body = result_json(result)
    del body["frame"]
    return body


def _show(result: PersonResult, as_json: bool) -> None:
    if as_json:
        print(json.dumps(reading_json(result)))
        return
    stamp = time.strftime("%H:%M:%S", time.localtime(result.timestamp))
    print(f"{stamp}  {result.num_faces} face{'s' if result.num_faces != 1 else ''}")
    for i, f in enumerate(result.faces):
        who = f"id {f.id} ({f.id_confidence}%)" if f.id >= 0 else "not recognised"
        print(f"  #{i}  box {f.box}  confidence {f.confidence}%  "
              f"{'facing' if f.is_facing else 'not facing'}  {who}")

