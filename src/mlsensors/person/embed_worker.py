"""Where embeddings are computed: beside the detection loop, not in it.

dlib holds the GIL for the whole ~100 ms of a descriptor (measured: a 1 ms ticker
thread stalls for ~90 ms), so a worker *thread* would freeze the detection loop on every
embedding. `ProcessWorker` therefore runs the embedder in one child process
(`embed_child`, optionally niced); what crosses over, through a pipe, is a small crop around the
face (`embed.crop_around`), never the frame, and never leaves this machine.
`InlineWorker` computes synchronously and deterministically, for tests and tools.

Both have the same shape: `submit(tag, crop)` when `idle`, then `poll()` returns the
finished (tag, vector or error) results; `failed` says that nothing can be embedded any
more. One job at a time: the scheduler decides what is most worth embedding at the
moment the worker becomes free, so no backlog builds up.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlsensors.errors import MlsensorsError
from mlsensors.vision.embed import EMBEDDING_DIM, Crop, FaceEmbedder

WATCH_S = 0.2
"""How often an idle worker checks that its process is still there."""
JOB_TIMEOUT_S = 10.0
"""A reply later than this means the process is stuck (stopped, deadlocked): it is
killed. One embedding takes ~0.1 s here and about 1 s on a Raspberry Pi 3."""
START_TIMEOUT_S = 120.0
"""Loading dlib's two models; a process silent for longer is killed."""


@dataclass(frozen=True, slots=True)
class EmbedResult:
    tag: Any
    vector: np.ndarray | None
    error: str = ""


class InlineWorker:
    """Embeds at `submit` time in the caller's thread (deterministic; blocks ~100 ms)."""

    def __init__(self, embedder: FaceEmbedder | None = None) -> None:
        self.embedder = embedder if embedder is not None else FaceEmbedder()
        self._done: list[EmbedResult] = []
        self.count = 0

    @property
    def idle(self) -> bool:
        return True

    def submit(self, tag: Any, crop: Crop) -> None:
        self.count += 1
        try:
            self._done.append(EmbedResult(tag, self.embedder.embed_crop(crop)))
        except MlsensorsError as e:
            self._done.append(EmbedResult(tag, None, str(e)))

    def poll(self) -> list[EmbedResult]:
        done, self._done = self._done, []
        return done

    def wait(self, timeout: float | None = None) -> bool:
        return True

    @property
    def failed(self) -> bool:
        return False

    def close(self) -> None:
        pass


def _exit_text(code: int | None) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exit status {code}"


def _retire(proc: subprocess.Popen) -> str:
    """Kill and reap `proc` if this process may; how it ended, for messages.

    A sealed process may not signal its embedding process (Landlock scopes signals to
    each sandbox): then it is left to die with this one (it asks for SIGKILL when its
    parent dies) and is not waited for.
    """
    with contextlib.suppress(OSError):
        proc.kill()
    try:
        return _exit_text(proc.wait(1.0))
    except subprocess.TimeoutExpired:
        return "it did not answer and could not be stopped from here"


class ProcessWorker:
    """Embeds in one child process (`embed_child`), models loaded once.

    `niceness` is added to the child's (0 = same priority as the detection loop).

    A helper thread here writes the crop and waits for the reply, so the caller never
    blocks; that thread sleeps in pipe I/O with the GIL released. If the child dies (or
    does not answer within JOB_TIMEOUT_S and is killed), the job in flight fails and a
    new child is started at once; an idle worker notices a dead child within WATCH_S.
    """

    def __init__(self, model_dir: str | os.PathLike | None = None, *, jitter: int = 0,
                 niceness: int = 0, process: subprocess.Popen | None = None,
                 on_failure=None) -> None:
        """`process`: an embedding child already started with `launch` (the sealed
        sensing process starts it before sealing itself, because afterwards it may not
        start programs). Such a worker cannot restart its child: when it ends,
        `failed` becomes true, `error` says why and `on_failure(error)` is called once
        (from the worker's thread), within WATCH_S of the end."""
        self._cmd = None if process is not None else self.command(
            model_dir, jitter=jitter, niceness=niceness)
        self._given = process
        self._on_failure = on_failure
        self._failed = False
        self.error = ""
        """Why the last job or start failed, for the sensor's status."""
        self.count = 0
        self._lock = threading.Lock()
        self._jobs: queue.Queue = queue.Queue()
        self._done: list[EmbedResult] = []
        self._busy = False
        self._starting = True
        self._ready = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._thread = threading.Thread(target=self._serve, name="embed-worker", daemon=True)
        self._thread.start()

    @staticmethod
    def command(model_dir: str | os.PathLike | None = None, *, jitter: int = 0,
                niceness: int = 0) -> list[str]:
        """The embedding child's command line (checks that the models are in place)."""
        from mlsensors.models import ModelStore
        from mlsensors.vision.embed import RECOGNITION_MODEL, SHAPE_MODEL

        store = ModelStore(model_dir)
        store.path(SHAPE_MODEL)
        store.path(RECOGNITION_MODEL)
        cmd = [sys.executable, "-m", "mlsensors.person.embed_child",
               "--jitter", str(int(jitter)), "--nice", str(int(niceness))]
        if model_dir is not None:
            cmd += ["--model-dir", str(model_dir)]
        return cmd

    @staticmethod
    def launch(cmd: list[str]) -> subprocess.Popen:
        """Start an embedding child without starting any thread here (see `process`)."""
        import mlsensors

        env = dict(os.environ)
        here = str(Path(mlsensors.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
        return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                env=env, close_fds=True)

    def _spawn(self) -> subprocess.Popen:
        proc, self._given = self._given, None
        if proc is None:
            if self._cmd is None:  # it was handed over, and that one has ended
                raise OSError(f"the embedding process ended ({self._ended}) and cannot "
                              "be restarted here")
            proc = self.launch(self._cmd)
        if not _readable(proc.stdout, START_TIMEOUT_S) or proc.stdout.read(1) != b"R":
            self._ended = _retire(proc)
            raise OSError(f"embedding worker exited during start ({self._ended})")
        return proc

    @property
    def failed(self) -> bool:
        """True once nothing can be embedded any more (`error` says why)."""
        with self._lock:
            return self._failed

    def _fail(self, error: str) -> None:
        with self._lock:
            self.error = error
            self._starting = False
            self._busy = True  # for good: nothing more will be embedded
            self._failed = True
        self._ready.set()
        if self._on_failure is not None:
            self._on_failure(error)

    def _serve(self) -> None:
        from mlsensors.person.embed_child import ERROR, REQUEST, _read

        self._ended = ""
        while True:
            if self._proc is None or self._proc.poll() is not None:
                if self._proc is not None:
                    self._ended = _retire(self._proc)
                with self._lock:
                    self._starting = True
                try:
                    self._proc = self._spawn()
                except OSError as e:
                    self._fail(str(e))
                    return
                with self._lock:
                    self._starting = False
                self._ready.set()
            try:
                job = self._jobs.get(timeout=WATCH_S)
            except queue.Empty:
                continue  # look at the process again
            if job is None:
                break
            tag, crop = job
            h, w = crop.image.shape[:2]
            try:
                self._proc.stdin.write(REQUEST.pack(h, w, *crop.box) + crop.image.tobytes())
                self._proc.stdin.flush()
                if not _readable(self._proc.stdout, JOB_TIMEOUT_S):
                    raise OSError(f"no answer within {JOB_TIMEOUT_S:g} s; killed")
                kind = _read(self._proc.stdout, 1)
                if kind == b"V":
                    vec = np.frombuffer(_read(self._proc.stdout, 4 * EMBEDDING_DIM), "<f4")
                    result = EmbedResult(tag, vec.astype(np.float32))
                elif kind == b"E":
                    (n,) = ERROR.unpack(_read(self._proc.stdout, ERROR.size))
                    result = EmbedResult(tag, None, _read(self._proc.stdout, n).decode())
                else:
                    raise OSError("embedding worker exited")
            except (OSError, TypeError, ValueError) as e:
                self._ended = _retire(self._proc)
                self._proc = None
                result = EmbedResult(tag, None, f"embedding worker failed: {e}")
            with self._lock:
                self._done.append(result)
                self._busy = False
                if result.error:
                    self.error = result.error
        self._stop_child()

    def _stop_child(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                _retire(proc)

    @property
    def ready(self) -> bool:
        """True once the child has loaded its models (or failed to)."""
        return self._ready.is_set()

    @property
    def idle(self) -> bool:
        with self._lock:
            return not self._busy and not self._starting and self._thread.is_alive()

    def submit(self, tag: Any, crop: Crop) -> None:
        with self._lock:
            if self._busy:
                raise RuntimeError("embedding worker is busy; submit only when idle")
            self._busy = True
            self.count += 1
        self._jobs.put((tag, crop))

    def poll(self) -> list[EmbedResult]:
        with self._lock:
            done, self._done = self._done, []
        return done

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the child is ready and no job is in flight; True if so in time."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._ready.wait(timeout):
            return False
        while True:
            with self._lock:
                if not self._busy and not self._starting:
                    return True
                if not self._thread.is_alive():
                    return False
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.002)

    def close(self) -> None:
        """Stop the child (it exits on end of input); pending results are dropped."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join(10)


def _readable(stream, timeout: float) -> bool:
    """Whether `stream`'s pipe has bytes (or its end) within `timeout` seconds.

    Polls the descriptor: the protocol is one reply per request, read exactly, so no
    byte of a reply ever waits in the stream's buffer when this is asked.
    """
    poller = select.poll()
    poller.register(stream.fileno(), select.POLLIN)
    return bool(poller.poll(timeout * 1000))
