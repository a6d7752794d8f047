"""`mlsensors bench`: how fast the detector runs here, as ratios measured in one run."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure detector speed (bare invoke vs end to end)")
    p.add_argument("--model", choices=("full", "short"), default="full")
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", action="store_true")
    p.add_argument("--cost-rounds", type=int, default=60,
                   help="rounds of the per-frame cost table (every detector, the sensor loop)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mlsensors.benchmark import bench_costs, bench_detector

    b = bench_detector(args.model, rounds=max(8, args.rounds), threads=args.threads)
    costs = bench_costs(rounds=max(8, args.cost_rounds), threads=args.threads)
    if args.json:
        print(json.dumps(b.as_dict() | {"costs": [
            {"name": c.name, "ms": round(c.ms, 3), "ratio": round(c.ratio, 2)}
            for c in costs]}))
        return 0
    print(f"BlazeFace {b.model}-range on a {b.frame} photo, {b.rounds} rounds, medians:")
    print(f"  bare interpreter invoke     {b.invoke_ms:7.3f} ms")
    print(f"  detect() end to end         {b.detect_ms:7.3f} ms  {b.fps:6.1f} FPS  "
          f"ratio {b.ratio:.3f} (target ≤ 1.25)")
    print(f"  decode + NMS alone          {b.decode_nms_ms:7.3f} ms  (target ≤ 0.2 ms)")
    print(f"  detect() with tiling        {b.detect_tiled_ms:7.3f} ms  "
          f"({b.detect_tiled_ms / b.invoke_ms:.2f}× bare invoke; 5 passes)")
    print(f"  faces found                 {b.faces}")
    print("Cost of one 640×480 frame, × one bare full-range BlazeFace invoke (same run; "
          "sensor loops amortised over a moving video; target ≤ 2.5):")
    for c in costs:
        print(f"  {c.name:40} {c.ms:8.2f} ms  {c.ratio:5.2f}×")
    return 0
