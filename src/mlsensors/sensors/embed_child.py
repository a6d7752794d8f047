"""The embedding worker process: crops in on stdin, 128-D descriptors out on stdout.

Run by `embed_worker.ProcessWorker` as `python -m mlsensors.sensors.embed_child`, not by
users. A plain child process with a tiny binary protocol rather than multiprocessing:
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


def seal_self(model_dir: str | None, memory_bytes: int) -> None:
    """Seal like the sensing process: no network, no exec, read only code and models.

    It receives face crops, so it gets the same walls as the process that sends them.
    """
    from mlsensors.privacy.child import base_read_paths, code_paths
    from mlsensors.privacy.sandbox import SealPolicy, seal

    reads = base_read_paths() + ([model_dir] if model_dir else [])
    try:
        report = seal(SealPolicy(read_paths=tuple(reads), exec_paths=code_paths(),
                                 memory_bytes=memory_bytes))
    except OSError as e:  # SealError included: refuse to see a face unsealed
        print(f"cannot seal the embedding process: {e}", file=sys.stderr, flush=True)
        sys.exit(3)
    print(f"embedding process sealed: namespace={report.namespace} "
          f"seccomp={report.seccomp} landlock_abi={report.landlock_abi}", file=sys.stderr,
          flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--jitter", type=int, default=0)
    parser.add_argument("--nice", type=int, default=0)
    parser.add_argument("--seal-memory", type=int, default=0,
                        help="seal this process (as the sensing process is) with this "
                             "address-space cap before loading anything")
    args = parser.parse_args(argv)
    from mlsensors.privacy.child import die_with_parent

    die_with_parent()  # a stuck embedder must not outlive its sensing process
    if args.nice:
        with contextlib.suppress(OSError):
            os.nice(args.nice)
    if args.seal_memory:
        seal_self(args.model_dir, args.seal_memory)
    import numpy as np

    from mlsensors.errors import MlsensorsError
    from mlsensors.models import ModelStore
    from mlsensors.vision.embed import FaceEmbedder

    src, out = sys.stdin.buffer, sys.stdout.buffer
    embedder = FaceEmbedder(ModelStore(args.model_dir), jitter=args.jitter)
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


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (BrokenPipeError, KeyboardInterrupt):
        sys.exit(0)  # the parent went away or was interrupted: nothing to report to
