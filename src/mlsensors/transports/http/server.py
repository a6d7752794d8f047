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
  `max_rate` times a second, skipping whatever it missed.
"""

from __future__ import annotations

import hmac
import json
import logging
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

from mlsensors.errors import InputError, MlsensorsError, ProtocolError
from mlsensors.hub import Hub, Snapshot
from mlsensors.transports import commands
from mlsensors.transports.http.view import DECLARED_INTERFACE, PresenceTimeline, snapshot_view

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
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1", "[::1]"}
MAX_BODY = 1024
KEEPALIVE = 15.0


class StatusPage:
    """The status page server for one hub; `start()` binds, `stop()` closes everything."""

    def __init__(self, hub: Hub, host: str = "127.0.0.1", port: int = 8080, *,
                 control_token: str | None = None, timeline_seconds: float = 300.0,
                 max_rate: float = 10.0, max_streams: int = 16, announce: bool = False
                 ) -> None:
        if control_token is not None and len(control_token) < 16:
            raise InputError("the control token must be at least 16 characters")
        self.hub = hub
        self.host = host
        self.port = port
        self.control_token = control_token
        self.max_rate = max_rate
        self.max_streams = max_streams
        self.announce = announce
        self.announce_token = False
        """Print the control token with the address (only for a token generated now)."""
        self._timeline = PresenceTimeline(timeline_seconds)
        self._cond = threading.Condition()
        self._sequence = 0
        self._streams = 0
        self._stopping = False
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._unsubscribe = None
        self._assets = {name: resources.files(__package__).joinpath("static", name).read_bytes()
                        for name, _ in STATIC.values()}

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> StatusPage:
        try:
            server = ThreadingHTTPServer((self.host, self.port), _Handler, bind_and_activate=True)
        except OSError as e:
            raise InputError(f"cannot serve the status page on {self.host}:{self.port}: "
                             f"{e.strerror or e}") from None
        server.daemon_threads = True
        server.page = self
        self._server = server
        self.port = server.server_address[1]
        self._on_snapshot(self.hub.snapshot())
        self._unsubscribe = self.hub.subscribe(self._on_snapshot)
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
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
        return self.host in LOOPBACK_NAMES or self.host.startswith("127.")

    # -- data --------------------------------------------------------------------------

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        count = 0 if snapshot.status.state in ("fault", "starting") else snapshot.result.num_faces
        with self._cond:
            self._timeline.add(time.time(), count)
            self._sequence += 1
            self._cond.notify_all()

    def state(self, *, timeline: bool = True) -> dict:
        """Everything the page shows, as one JSON object."""
        body = {"view": snapshot_view(self.hub.snapshot()), "control": self.control_token
                is not None, "interface": DECLARED_INTERFACE, "now": time.time()}
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


class _Handler(BaseHTTPRequestHandler):
    server_version = "mlsensors"
    sys_version = ""

    @property
    def page(self) -> StatusPage:
        return self.server.page

    def log_message(self, fmt: str, *args) -> None:
        log.debug("%s %s", self.address_string(), fmt % args)

    # -- plumbing ------------------------------------------------------------------------

    def _host_ok(self) -> bool:
        if not self.page.loopback_only:
            return True
        host = (self.headers.get("Host") or "").strip().lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name in LOOPBACK_NAMES or name.startswith("127.")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: dict) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"ok": False, "error": message})

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
        with page._cond:
            if page._streams >= page.max_streams:
                busy = True
            else:
                busy = False
                page._streams += 1
        if busy:
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, "too many open pages")
            return
        try:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream")
            for name, value in SECURITY_HEADERS.items():
                self.send_header(name, value)
            self.end_headers()
            self._stream(page)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the viewer went away
        finally:
            with page._cond:
                page._streams -= 1

    def _stream(self, page: StatusPage) -> None:
        sent_sequence = -1
        sent_timeline = -1
        while True:
            with page._cond:
                deadline = time.monotonic() + KEEPALIVE
                while not page._stopping and page._sequence == sent_sequence:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    page._cond.wait(left)
                if page._stopping:
                    return
                sequence, timeline_version = page._sequence, page._timeline.version
            if sequence == sent_sequence:
                self.wfile.write(b": keepalive\n\n")
                self.wfile.flush()
                continue
            body = page.state(timeline=timeline_version != sent_timeline)
            sent_sequence, sent_timeline = sequence, timeline_version
            self.wfile.write(b"data: " + json.dumps(body).encode() + b"\n\n")
            self.wfile.flush()
            time.sleep(1.0 / page.max_rate)
