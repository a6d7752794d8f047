"""The local status page (`mlsensors serve --http`): shows what the sensor says, live.

`StatusPage` is the server; `add_arguments`/`from_args` give `mlsensors serve` its
`--http` and `--allow-control` options. See docs/status-page.md.
"""

from __future__ import annotations

import argparse
import secrets
from pathlib import Path

from mlsensors.errors import InputError
from mlsensors.hub import Hub
from mlsensors.transports.http.server import StatusPage
from mlsensors.transports.secret_file import read_secret

__all__ = ["StatusPage", "add_arguments", "from_args", "parse_address"]

DEFAULT_ADDRESS = "127.0.0.1:8080"
GENERATE = "generate"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The status page options of `mlsensors serve`."""
    g = parser.add_argument_group("status page")
    g.add_argument("--http", metavar="HOST:PORT", nargs="?", const=DEFAULT_ADDRESS,
                   help=f"serve the status page (default address {DEFAULT_ADDRESS}; "
                        "loopback unless you name another address)")
    g.add_argument("--allow-control", metavar="TOKEN_FILE", nargs="?", const=GENERATE,
                   help="show calibrate/erase buttons, guarded by the token in TOKEN_FILE "
                        "(without a file, a fresh token is printed at start)")


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:PORT`) → (host, port); a clear error otherwise."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise InputError(f"--http wants HOST:PORT such as {DEFAULT_ADDRESS}, got {text!r:.60}")
    return host, int(port)


def from_args(args: argparse.Namespace, hub: Hub, voice=None) -> StatusPage | None:
    """The page `args` ask for (not started), or None without --http; with `voice` (a
    VoiceHub) it also lists the voice sensor's events."""
    control = getattr(args, "allow_control", None)
    if not getattr(args, "http", None):
        if control:
            raise InputError("--allow-control needs --http")
        return None
    host, port = parse_address(args.http)
    token = None
    if control == GENERATE:
        token = secrets.token_urlsafe(24)
    elif control:
        token = read_secret(Path(control), "control token file")
    page = StatusPage(hub, host, port, control_token=token, announce=True, voice=voice)
    page.announce_token = control == GENERATE
    return page
