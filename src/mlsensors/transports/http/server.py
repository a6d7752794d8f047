"""The local status page: a standard-library HTTP server with server-sent events.

`StatusPage(hub, host, port)` serves three static files (shipped in the package, no
CDN), a JSON view of the current snapshot and a live event stream of it. It holds no
pixels and can serve none: its data are the hub's snapshots, turned into JSON by `view`.

Safety choices, all deliberate:
- binds to 127.0.0.1 unless told otherwise; on loopback it answers only requests whose
  Host header names loopback, so a web page elsewhere cannot read it by DNS rebinding;
- read-only unless built with a control token; commands then need
  `Authorization: Bearer TOKEN` (never sent automatically by a browser, so no cross-site
  request can carry it), compared in constant time, and are the same validated register
  writes as every other transport's;
- a strict Content-Security-Policy: the page runs only its own script;
- a slow or stalled viewer never holds the sensor up: the hub callback only bumps a
  counter; each event stream sends the latest view when it is ready for one, at most
  `max_rate` times a second, skipping whatever it missed;
- nor does it hold other viewers out: at most `max_streams` event streams, and when all
  are open a new one closes the stream whose last completed send is the oldest (a
  stalled one first; a browser's EventSource reconnects by itself); a send that makes
  no progress for `timeout` seconds ends its stream;
- connections are bounded like every accepting transport's (transports/peers.py): at
  most `limits.max_peers` at once, a request must arrive whole within `timeout` seconds
  (slow-request and slowloris peers are cut off), and refusals reach the log as one
  line per interval with counts, never a traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import ipaddress
import json
import logging
import re
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

from mlsensors.errors import InputError, MlsensorsError, ProtocolError
from mlsensors.hub import Hub, Snapshot
from mlsensors.transports import commands
from mlsensors.transports.http.view import (
    DECLARED_INTERFACE,
    PresenceTimeline,
    snapshot_view,
    voice_view,
)
from mlsensors.transports.peers import PeerLimits, PeerLog, PeerTable

log = logging.getLogger(__name__)

STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "connect-src 'self'; img-src 'self'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
ALLOWED_METHODS = ("GET", "HEAD", "POST")
MAX_BODY = 1024
KEEPALIVE = 15.0
TIMEOUT = 10.0
"""Seconds a request may take to arrive whole, and a send may go without progress."""
LIMITS = PeerLimits(max_peers=64, idle_timeout=TIMEOUT, evict_after=1.0)
"""Connections: a request that has not arrived whole after `timeout` is cut off; when
all slots are taken, a newcomer takes the slot of a request older than 1 s (event
streams are out of both rules; they have `max_streams`)."""
SWEEP = 0.2
"""Seconds between sweeps for overdue requests (the server loop's poll interval)."""

_HOST = re.compile(r"(?P<name>\[[0-9a-fA-F:.]+\]|[^\[\]:/@\s]+)(?::(?P<port>[0-9]{1,5}))?")
_DOTTED_QUAD = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")


def is_loopback_name(name: str) -> bool:
    """True only for `localhost`, a dotted-quad IPv4 literal in 127.0.0.0/8, and ::1
    (bare or in brackets): names no outside DNS can point elsewhere or claim.

    `127.evil.example` is a host name that anyone's DNS can point at 127.0.0.1 (DNS
    rebinding), so it is not loopback here; neither are short forms like `127.1`.
    """
    name = name.lower()
    if name == "localhost":
        return True
    bracketed = name.startswith("[") and name.endswith("]")
    name = name[1:-1] if bracketed else name
    try:
        if _DOTTED_QUAD.fullmatch(name) and not bracketed:
            return ipaddress.IPv4Address(name).is_loopback
        # IPv6: only ::1 itself (no IPv4-mapped or -compatible forms).
        return "." not in name and ipaddress.IPv6Address(name) == ipaddress.IPv6Address("::1")
    except ValueError:
        return False


def host_header_is_loopback(value: str) -> bool:
    """A Host header `NAME[:PORT]` whose NAME is exactly loopback (`is_loopback_name`)."""
    match = _HOST.fullmatch(value.strip())
    if match is None:
        return False
    return match["name"] != "" and is_loopback_name(match["name"]) \
        and (match["port"] is None or int(match["port"]) < 65536)


class _Stream:
    """One open event stream; `close()` ends it from any thread."""

    def __init__(self, connection: socket.socket, cond: threading.Condition) -> None:
        self.connection = connection
        self.cond = cond
        self.closed = False

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        _cut(self.connection)


def _cut(connection: socket.socket) -> None:
    """End a connection now: any thread blocked on it wakes up with an error."""
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)


class StatusPage:
    """The status page server for one hub; `start()` binds, `stop()` closes everything."""

    def __init__(self, hub: Hub, host: str = "127.0.0.1", port: int = 8080, *,
                 control_token: str | None = None, timeline_seconds: float = 300.0,
                 max_rate: float = 10.0, max_streams: int = 16, announce: bool = False,
                 limits: PeerLimits = LIMITS, timeout: float = TIMEOUT,
                 log_interval: float = 10.0, voice=None) -> None:
        if control_token is not None and len(control_token) < 16:
            raise InputError("the control token must be at least 16 characters")
        self.hub = hub
        self.voice = voice
        """The voice sensor's VoiceHub (serve --voice), or None."""
        self.host = host
        self.port = port
        self.control_token = control_token
        self.max_rate = max_rate
        self.announce = announce
        self.announce_token = False
        """Print the control token with the address (only for a token generated now)."""
        self.timeout = timeout
        self._timeline = PresenceTimeline(timeline_seconds)
        self._cond = threading.Condition()
        self._sequence = 0
        # A request must arrive whole within `timeout`: that is the connections' idle rule.
        self.connections: PeerTable[socket.socket] = PeerTable(
            dataclasses.replace(limits, idle_timeout=timeout))
        self.streams: PeerTable[_Stream] = PeerTable(
            PeerLimits(max_streams, idle_timeout=None, evict_after=0.0))
        self.events = PeerLog(log, f"status page {host}:{port}", log_interval)
        self._stopping = False
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._unsubscribe = None
        self._assets = {name: resources.files(__package__).joinpath("static", name).read_bytes()
                        for name, _ in STATIC.values()}

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> StatusPage:
        try:
            server = _Server((self.host, self.port), _Handler, self)
        except OSError as e:
            raise InputError(f"cannot serve the status page on {self.host}:{self.port}: "
                             f"{e.strerror or e}") from None
        self._server = server
        self.port = server.server_address[1]
        self.events.name = f"status page {self.url}"
        self._on_snapshot(self.hub.snapshot())
        unsubscribe = self.hub.subscribe(self._on_snapshot)
        unvoice = self.voice.subscribe(self._on_voice) if self.voice is not None else None

        def detach() -> None:
            unsubscribe()
            if unvoice is not None:
                unvoice()

        self._unsubscribe = detach
        self._thread = threading.Thread(target=server.serve_forever,
                                        kwargs={"poll_interval": SWEEP},
                                        name="status-page", daemon=True)
        self._thread.start()
        if self.announce:
            # Only a token made up for this run is shown: one from a file stays out of logs.
            suffix = f"#token={self.control_token}" if self.announce_token else ""
            print(f"mlsensors: status page at {self.url}{suffix}", file=sys.stderr)
        else:
            log.info("status page on %s", self.url)
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        if self._unsubscribe:
            self._unsubscribe()
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._server = None
        for connection in self.connections.peers():
            _cut(connection)
        self.events.flush(force=True)

    def cap_peers(self, most: int) -> None:
        """Hold at most `most` connections (serve's share of the descriptor budget)."""
        self.connections.limits = self.connections.limits.capped(most)
        self.streams.limits = self.streams.limits.capped(max(1, most // 2))

    def __enter__(self) -> StatusPage:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def loopback_only(self) -> bool:
        return is_loopback_name(self.host)

    @property
    def max_streams(self) -> int:
        return self.streams.limits.max_peers

    # -- connections ---------------------------------------------------------------------

    def _admit(self, connection: socket.socket) -> bool:
        admitted, evicted = self.connections.admit(connection)
        if evicted is not None:
            self.events.note("slow requests cut off to make room")
            _cut(evicted)
        if not admitted:
            self.events.note("connections refused",
                             f"all {self.connections.limits.max_peers} slots busy")
        return admitted

    def _sweep(self) -> None:
        for connection in self.connections.expired():
            self.events.note("requests cut off", f"not received whole within "
                                                 f"{self.timeout:g} s")
            _cut(connection)
        self.events.flush()

    def _open_stream(self, connection: socket.socket) -> _Stream:
        stream = _Stream(connection, self._cond)
        _, evicted = self.streams.admit(stream)  # evict_after=0: always admitted
        if evicted is not None:
            self.events.note("event streams closed to make room",
                             f"all {self.max_streams} taken; the stalest one went")
            evicted.close()
        self.connections.pin(connection)
        return stream

    # -- data --------------------------------------------------------------------------

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        count = 0 if snapshot.status.state in ("fault", "starting") else snapshot.result.num_faces
        with self._cond:
            self._timeline.add(time.time(), count)
            self._sequence += 1
            self._cond.notify_all()

    def _on_voice(self, snapshot) -> None:
        with self._cond:
            self._sequence += 1
            self._cond.notify_all()

    def state(self, *, timeline: bool = True) -> dict:
        """Everything the page shows, as one JSON object."""
        body = {"view": snapshot_view(self.hub.snapshot()), "control": self.control_token
                is not None, "interface": DECLARED_INTERFACE, "now": time.time()}
        if self.voice is not None:
            body["voice"] = voice_view(self.voice.snapshot())
        if timeline:
            with self._cond:
                body["timeline"] = self._timeline.points(time.time())
                body["timeline_seconds"] = self._timeline.window
        return body

    def check_token(self, header: str | None) -> bool:
        if self.control_token is None or not header or not header.startswith("Bearer "):
            return False
        given = header[len("Bearer "):].strip().encode("utf-8", "replace")
        return hmac.compare_digest(given, self.control_token.encode("utf-8"))

    def run_command(self, body: dict) -> dict:
        """Validate a page command and forward it; raises MlsensorsError on refusal."""
        action = body.get("action")
        if action == "calibrate":
            write = commands.calibrate(body.get("id") if isinstance(body.get("id"), int | str)
                                       else "")
        elif action == "erase":
            write = commands.erase()
        else:
            raise ProtocolError(f"unknown action {action!r:.40}; use calibrate or erase")
        self.hub.command(write)
        return {"ok": True, "register": write.register, "value": write.value}


class _Server(ThreadingHTTPServer):
    """One thread per admitted connection; admission, sweeps and errors go to the page."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type, page: StatusPage) -> None:
        self.page = page
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def get_request(self):
        try:
            return super().get_request()
        except OSError as e:  # e.g. out of descriptors: counted, retried next poll
            self.page.events.note("accept failures", e.strerror or str(e))
            time.sleep(SWEEP)
            raise

    def process_request(self, request, client_address) -> None:
        if not self.page._admit(request):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        self.page.connections.remove(request)
        super().shutdown_request(request)

    def service_actions(self) -> None:
        self.page._sweep()

    def handle_error(self, request, client_address) -> None:
        error = sys.exc_info()[1]
        self.page.events.note("connections ended early",
                              f"{type(error).__name__}: {error}"[:200])


class _Handler(BaseHTTPRequestHandler):
    server_version = "mlsensors"
    sys_version = ""
    default_request_version = "HTTP/1.0"  # even a garbled request line gets a status line
    timeout = TIMEOUT  # every read and send: no progress for this long ends the connection

    @property
    def page(self) -> StatusPage:
        return self.server.page

    def setup(self) -> None:
        self.timeout = self.page.timeout
        super().setup()

    def log_message(self, fmt: str, *args) -> None:
        log.debug("%s %s", self.address_string(), fmt % args)

    def log_error(self, fmt: str, *args) -> None:
        """The library's one error report: a request that timed out."""
        self.page.events.note("requests timed out", (fmt % args)[:200])

    # -- plumbing ------------------------------------------------------------------------

    def _host_ok(self) -> bool:
        if not self.page.loopback_only:
            return True
        hosts = self.headers.get_all("Host") or []
        if len(hosts) == 1 and host_header_is_loopback(hosts[0]):
            return True
        self.page.events.note("requests for other host names refused",
                              repr(hosts[0] if hosts else None)[:80])
        return False

    def _headers(self, status: int, content_type: str, length: int | None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self._headers(status, content_type, len(body))
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: dict) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"ok": False, "error": message})

    def send_error(self, code: int, message: str | None = None, explain: str | None = None
                   ) -> None:
        """The library's errors (bad request line, unknown method, oversized headers) in
        this page's shape: JSON, security headers, connection closed."""
        self.close_connection = True
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        if code == HTTPStatus.NOT_IMPLEMENTED:
            message = f"method not supported; use {', '.join(ALLOWED_METHODS)}"
        self.command = self.command or "GET"  # a bad request line leaves it unset
        message = (message or phrase)[:200]
        self.page.events.note("bad requests", f"{code} {message}")
        self._error(code, message)

    # -- routes --------------------------------------------------------------------------

    def do_GET(self) -> None:
        if not self._host_ok():
            self._error(HTTPStatus.MISDIRECTED_REQUEST, "this page answers only on loopback")
            return
        path = self.path.split("?", 1)[0]
        if path in STATIC:
            name, content_type = STATIC[path]
            self._send(HTTPStatus.OK, self.page._assets[name], content_type)
        elif path == "/api/state":
            self._json(HTTPStatus.OK, self.page.state())
        elif path == "/api/events":
            if self.command == "HEAD":  # the headers a stream would start with; no body
                self._headers(HTTPStatus.OK, "text/event-stream", None)
            else:
                self._events()
        elif path == "/favicon.ico":
            self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no such page: {path[:80]}")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        page = self.page
        if not self._host_ok():
            self._error(HTTPStatus.MISDIRECTED_REQUEST, "this page answers only on loopback")
            return
        if self.path != "/api/command":
            self._error(HTTPStatus.NOT_FOUND, f"no such endpoint: {self.path[:80]}")
            return
        if page.control_token is None:
            self._error(HTTPStatus.FORBIDDEN,
                        "control is off; start the sensor with --allow-control")
            return
        if not page.check_token(self.headers.get("Authorization")):
            self._error(HTTPStatus.UNAUTHORIZED, "wrong or missing control token")
            return
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            self._error(HTTPStatus.BAD_REQUEST, f"a command is a JSON body of 1-{MAX_BODY} bytes")
            return
        try:
            body = json.loads(self.rfile.read(length))
            if not isinstance(body, dict):
                raise ValueError
        except ValueError:
            self._error(HTTPStatus.BAD_REQUEST, "a command must be a JSON object")
            return
        try:
            reply = page.run_command(body)
        except ProtocolError as e:
            status = (HTTPStatus.SERVICE_UNAVAILABLE if "not accepting" in str(e)
                      else HTTPStatus.BAD_REQUEST)
            self._error(status, str(e))
            return
        except MlsensorsError as e:
            self._error(HTTPStatus.BAD_REQUEST, str(e))
            return
        log.info("status page command: %s", body.get("action"))
        self._json(HTTPStatus.OK, reply)

    def _events(self) -> None:
        page = self.page
        stream = page._open_stream(self.connection)
        try:
            self._headers(HTTPStatus.OK, "text/event-stream", None)
            self.wfile.flush()
            self._stream(page, stream)
        except (OSError, ValueError):
            pass  # the viewer went away, stalled past the timeout, or was closed for room
        finally:
            page.streams.remove(stream)
            self.close_connection = True

    def _stream(self, page: StatusPage, stream: _Stream) -> None:
        sent_sequence = -1
        sent_timeline = -1
        while True:
            with page._cond:
                deadline = time.monotonic() + KEEPALIVE
                while not (page._stopping or stream.closed) and page._sequence == sent_sequence:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    page._cond.wait(left)
                if page._stopping or stream.closed:
                    return
                sequence, timeline_version = page._sequence, page._timeline.version
            if sequence == sent_sequence:
                self.wfile.write(b": keepalive\n\n")
                self.wfile.flush()
                page.streams.touch(stream)
                continue
            body = page.state(timeline=timeline_version != sent_timeline)
            sent_sequence, sent_timeline = sequence, timeline_version
            self.wfile.write(b"data: " + json.dumps(body).encode() + b"\n\n")
            self.wfile.flush()
            page.streams.touch(stream)
            time.sleep(1.0 / page.max_rate)
