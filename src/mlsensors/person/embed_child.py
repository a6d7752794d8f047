"""The embedding worker process: crops in on stdin, 128-D descriptors out on stdout.

Run by `embed_worker.ProcessWorker` as `python -m mlsensors.person.embed_child` (tools
in one process), or sealed by `privacy.launch` as the sensing process's companion
(`embedder_spec`); not by users. A plain child process with a tiny binary protocol rather
than multiprocessing:
`spawn` would re-import the user's main script (which then needs a __main__ guard) and
`fork` is unsafe in a process running LiteRT's threads.

Protocol (little-endian), one job at a time:
    ready   child → parent: b"R" once the models are loaded
    request parent → child: u16 height, u16 width, 4 × f32 box, height·width·3 bytes RGB
    reply   child → parent: b"V" + 128 × f32, or b"E" + u16 n + n bytes UTF-8 message
End of input ends the child.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import struct
import sys

REQUEST = struct.Struct("<HH4f")
ERROR = struct.Struct("<H")


def _read(stream, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        part = stream.read(n - got)
        if not part:
            return None
        chunks.append(part)
        got += len(part)
    return b"".join(chunks)


def embedder_spec(model_dir: str | None, *, insecure: bool = False):
    """The launcher's spec for a sealed embedding process (role "embedder"): it receives
    face crops, so it gets walls like the process that sends them. Checks that the
    models are in place (a missing one is an error here, not in the sandbox)."""
    from mlsensors.models import ModelStore, default_cache_dir
    from mlsensors.privacy.launch import LaunchSpec
    from mlsensors.privacy.policy import existing, role
    from mlsensors.vision.embed import RECOGNITION_MODEL, SHAPE_MODEL

    store = ModelStore(model_dir)
    store.path(SHAPE_MODEL)
    store.path(RECOGNITION_MODEL)
    folder = str(model_dir or default_cache_dir())
    policy = role("embedder").for_run(read_paths=existing([folder]))
    return LaunchSpec(policy, "mlsensors.person.embed_child:sealed_main",
                      json.dumps({"model_dir": model_dir}), insecure=insecure)


def sealed_main(config_text: str, companion=None) -> int:
    """The launcher's target for the embedder role: serve stdin/stdout, sealed."""
    config = json.loads(config_text)
    return serve(config.get("model_dir"), jitter=0)


def serve(model_dir: str | None, *, jitter: int) -> int:
    import numpy as np

    from mlsensors.errors import MlsensorsError
    from mlsensors.models import ModelStore
    from mlsensors.vision.embed import FaceEmbedder

    src, out = sys.stdin.buffer, sys.stdout.buffer
    embedder = FaceEmbedder(ModelStore(model_dir), jitter=jitter)
    out.write(b"R")
    out.flush()
    while (head := _read(src, REQUEST.size)) is not None:
        h, w, *box = REQUEST.unpack(head)
        pixels = _read(src, h * w * 3)
        if pixels is None:
            break
        image = np.frombuffer(pixels, np.uint8).reshape(h, w, 3)
        try:
            vec = embedder.embed(image, tuple(box))
            out.write(b"V" + vec.astype("<f4").tobytes())
        except MlsensorsError as e:
            msg = str(e).encode()[:60000]
            out.write(b"E" + ERROR.pack(len(msg)) + msg)
        out.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Unsealed, for in-process tools (`person run --id`, `id enroll`)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--jitter", type=int, default=0)
    parser.add_argument("--nice", type=int, default=0)
    args = parser.parse_args(argv)
    import ctypes
    import signal

    # a stuck embedder must not outlive the process that started it
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)
    if args.nice:
        with contextlib.suppress(OSError):
            os.nice(args.nice)
    return serve(args.model_dir, jitter=args.jitter)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (BrokenPipeError, KeyboardInterrupt):
        sys.exit(0)  # the parent went away or was interrupted: nothing to report to
