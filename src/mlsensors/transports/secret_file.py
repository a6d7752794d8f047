"""Secrets (broker password, control token) come from files, never the command line,
where every user of the machine could read them in the process list.

A secret file is a user-named input like any other: it is read through the bounded
reader (a regular file of at most `MAX_SECRET_BYTES`), so a FIFO cannot hang the start
and /dev/zero cannot fill the memory."""

from __future__ import annotations

import os
from pathlib import Path

from mlsensors.errors import InputError, MlsensorsError
from mlsensors.files import read_regular

MAX_SECRET_BYTES = 4096
"""A token or password file is one short line; anything larger is not one."""


def read_secret(path: Path, what: str) -> str:
    """The first line of a secret file, stripped; a clear error if it is missing or empty."""
    name = os.fspath(path)
    try:
        text = read_regular(name, MAX_SECRET_BYTES, what).decode("utf-8")
    except MlsensorsError as e:
        problem = str(e).removeprefix(f"{what} {name}").lstrip(": ")
        raise InputError(f"cannot read {what} {name}: {problem}") from None
    except UnicodeDecodeError as e:
        raise InputError(f"cannot read {what} {name}: not UTF-8 text ({e.reason})") from None
    lines = text.splitlines()
    secret = lines[0].strip() if lines else ""
    if not secret:
        raise InputError(f"{what} {name} is empty")
    return secret
