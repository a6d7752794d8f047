"""Secrets (broker password, control token) come from files, never the command line,
where every user of the machine could read them in the process list."""

from __future__ import annotations

from pathlib import Path

from mlsensors.errors import InputError


def read_secret(path: Path, what: str) -> str:
    """The first line of a secret file, stripped; a clear error if it is missing or empty."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or e
        raise InputError(f"cannot read {what} {path}: {reason}") from None
    lines = text.splitlines()
    secret = lines[0].strip() if lines else ""
    if not secret:
        raise InputError(f"{what} {path} is empty")
    return secret
