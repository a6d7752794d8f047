"""The status page server over real HTTP on loopback (the browser test is separate)."""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import re
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from mlsensors.errors import InputError
from mlsensors.hub import Hub, RegisterWrite, SensorStatus
from mlsensors.transports import commands
from mlsensors.transports import http as status_http
from mlsensors.transports.http import StatusPage, parse_address
from mlsensors.transports.http.server import is_loopback_name
from mlsensors.transports.http.view import PresenceTimeline, snapshot_view
from mlsensors.transports.peers import PeerLimits
from mlsensors.types import PersonFace, PersonResult

TOKEN = "correct-horse-battery-staple"


def running_hub() -> Hub:
    hub = Hub()
    hub.set_status(SensorStatus("running", fps=7.5, frames=10))
    return hub


def get(page: StatusPage, path: str, host: str | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", page.port, timeout=5)
    headers = {"Host": host} if host else {}
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response, body


def post(page: StatusPage, body, token: str | None = TOKEN, raw: bytes | None = None):
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(page.url + "api/command", data=data, method="POST")
    request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_page_assets_state_and_headers():
    hub = running_hub()
    with StatusPage(hub, port=0) as page:
        hub.publish(PersonResult(time.time(), (PersonFace((10, 20, 100, 120), 90, True, 3, 80),)))
        response, body = get(page, "/")
        assert response.status == 200 and b"app.js" in body
        assert "script-src 'self'" in response.getheader("Content-Security-Policy")
        for asset in ("/app.js", "/style.css"):
            response, body = get(page, asset)
            assert response.status == 200 and len(body) > 500
        response, body = get(page, "/api/state")
        state = json.loads(body)
        assert state["view"]["faces"] == [{"box": [10, 20, 100, 120], "confidence": 90,
                                           "facing": True, "id": 3, "id_confidence": 80}]
        assert state["view"]["audit"] == "not run"
        assert state["view"]["status"]["state"] == "running"
        assert state["control"] is False
        assert state["interface"]["record_bytes"] == 39
        assert [c for _, c in state["timeline"]][-1] == 1
        response, _ = get(page, "/etc/passwd")
        assert response.status == 404


def test_loopback_page_refuses_foreign_host_headers():
    with StatusPage(running_hub(), port=0) as page:
        assert get(page, "/api/state", host=f"localhost:{page.port}")[0].status == 200
        response, body = get(page, "/api/state", host="attacker.example:80")
        assert response.status == 421 and b"loopback" in body


def test_events_stream_sends_new_snapshots():
    hub = running_hub()
    with StatusPage(hub, port=0) as page:
        stream = urllib.request.urlopen(page.url + "api/events", timeout=5)
        first = json.loads(stream.readline()[len(b"data: "):])
        assert stream.readline() == b"\n"
        assert first["view"]["count"] == 0
        hub.publish(PersonResult(time.time(), (PersonFace((1, 2, 50, 60), 80, False),)))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            line = stream.readline()
            if line.startswith(b"data: "):
                event = json.loads(line[len(b"data: "):])
                if event["view"]["count"] == 1:
                    break
        else:
            pytest.fail("no event with the new face")
        assert event["view"]["faces"][0]["facing"] is False
        assert event["timeline"][-1][1] == 1
        stream.close()


def test_read_only_without_a_token():
    hub = running_hub()
    writes: list[RegisterWrite] = []
    hub.set_controller(writes.append)
    with StatusPage(hub, port=0) as page:
        status, reply = post(page, {"action": "erase"})
    assert status == 403 and "--allow-control" in reply["error"]
    assert writes == []


def test_control_needs_the_right_token_and_valid_commands():
    hub = running_hub()
    writes: list[RegisterWrite] = []
    hub.set_controller(writes.append)
    with StatusPage(hub, port=0, control_token=TOKEN) as page:
        assert post(page, {"action": "erase"}, token=None)[0] == 401
        assert post(page, {"action": "erase"}, token=TOKEN[:-1] + "X")[0] == 401
        assert post(page, {"action": "erase"}, token=TOKEN + "X")[0] == 401
        for bad in ({"action": "calibrate", "id": 8}, {"action": "calibrate", "id": "x"},
                    {"action": "calibrate", "id": True}, {"action": "calibrate"},
                    {"action": "reboot"}, {"id": 1}):
            status, reply = post(page, bad)
            assert status == 400 and reply["error"], bad
        for raw in (b"", b"not json", b"[1, 2]", b"{" * 2000):
            assert post(page, None, raw=raw)[0] == 400, raw
        assert writes == []
        assert post(page, {"action": "calibrate", "id": 2}) == (
            200, {"ok": True, "register": 4, "value": 2})
        assert post(page, {"action": "erase"})[0] == 200
        assert get(page, "/api/state")[0].status == 200  # still serving after the garbage
    assert writes == [commands.calibrate(2), commands.erase()]


def test_command_without_a_listening_sensor_is_503():
    with StatusPage(running_hub(), port=0, control_token=TOKEN) as page:
        status, reply = post(page, {"action": "erase"})
    assert status == 503 and "not accepting" in reply["error"]


def test_short_token_and_busy_port_are_clear_errors():
    with pytest.raises(InputError, match="at least 16"):
        StatusPage(Hub(), control_token="short")
    with StatusPage(Hub(), port=0) as page, \
            pytest.raises(InputError, match="cannot serve"):
        StatusPage(Hub(), port=page.port).start()


def test_fault_shows_no_faces():
    hub = running_hub()
    hub.publish(PersonResult(time.time(), (PersonFace((1, 2, 50, 60), 80, True),)))
    snap = hub.set_status(SensorStatus("fault", detail="camera unplugged"))
    view = snapshot_view(snap)
    assert view["count"] == 0 and view["status"]["detail"] == "camera unplugged"


def test_timeline_keeps_changes_within_the_window():
    t = PresenceTimeline(window=60)
    for when, count in [(0, 0), (10, 1), (11, 1), (12, 2), (100, 0), (130, 1)]:
        t.add(when, count)
    # The change before the window's start stays: it is the count in force at that start.
    assert t.points(now=130) == [[12, 2], [100, 0], [130, 1]]
    assert t.points(now=1000) == [[130, 1]]


def test_cli_options():
    parser = argparse.ArgumentParser()
    status_http.add_arguments(parser)
    args = parser.parse_args(["--http"])
    page = status_http.from_args(args, Hub())
    assert (page.host, page.port, page.control_token) == ("127.0.0.1", 8080, None)
    args = parser.parse_args(["--http", "127.0.0.1:0", "--allow-control"])
    assert len(status_http.from_args(args, Hub()).control_token) >= 16
    assert status_http.from_args(parser.parse_args([]), Hub()) is None
    with pytest.raises(InputError, match="needs --http"):
        status_http.from_args(parser.parse_args(["--allow-control"]), Hub())
    with pytest.raises(InputError, match="cannot read control token file"):
        status_http.from_args(parser.parse_args(
            ["--http", "--allow-control", "/nonexistent/token"]), Hub())
    assert parse_address("[::1]:9000") == ("::1", 9000)
    for bad in ("8080", "host:", "host:port", "host:70000"):
        with pytest.raises(InputError, match="HOST:PORT"):
            parse_address(bad)


# -- hostile peers ---------------------------------------------------------------------


def raw(page: StatusPage, data: bytes, wait: float = 10) -> bytes:
    """Send `data` on a fresh connection; everything the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", page.port), 5) as s:
        s.sendall(data)
        s.settimeout(wait)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def closed_by_server(s: socket.socket, wait: float = 10) -> bool:
    s.settimeout(wait)
    try:
        while s.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.mark.parametrize("host, ok", [
    ("127.0.0.1", True), ("127.0.0.1:8080", True), ("127.9.8.7:1", True),
    ("localhost", True), ("LOCALHOST:80", True), ("[::1]", True), ("[::1]:8080", True),
    ("127.evil.example", False), ("127.0.0.1.evil.example", False), ("127.1", False),
    ("localhost.evil.example", False), ("evil.example", False), ("127.0.0.1@evil", False),
    ("user@127.0.0.1", False), ("[::ffff:127.0.0.1]", False), ("[::2]", False),
    ("127.0.0.256", False), ("", False), ("127.0.0.1:99999", False),
    ("127.0.0.1 evil", False), ("0x7f.0.0.1", False), ("2130706433", False),
])
def test_host_check_takes_only_exact_loopback_names(host, ok):
    with StatusPage(running_hub(), port=0) as page:
        reply = raw(page, f"GET /api/state HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    status = int(reply.split(b" ", 2)[1])
    assert status == (200 if ok else 421), (host, reply[:200])


def test_loopback_binding_is_judged_by_the_same_rule():
    assert all(map(is_loopback_name, ("127.0.0.1", "127.1.2.3", "localhost", "::1")))
    assert not any(map(is_loopback_name, ("127.evil.example", "0.0.0.0", "10.0.0.1", "::")))
    assert not StatusPage(Hub(), host="127.evil.example").loopback_only


def test_two_host_headers_or_none_are_refused():
    with StatusPage(running_hub(), port=0) as page:
        two = raw(page, b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil\r\n\r\n")
        none = raw(page, b"GET /api/state HTTP/1.0\r\n\r\n")
    assert b" 421 " in two.split(b"\r\n")[0] and b" 421 " in none.split(b"\r\n")[0]


def test_stalled_event_streams_cannot_lock_a_viewer_out():
    hub = running_hub()
    with StatusPage(hub, port=0, max_streams=4) as page:
        stalled = []
        for _ in range(10):  # ask for a stream, then never read it
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", page.port))
            s.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            stalled.append(s)
        for i in range(50):  # keep the streams busy
            hub.publish(PersonResult(time.time(), (PersonFace((i, 2, 50, 60), 80, True),)))
        stream = urllib.request.urlopen(page.url + "api/events", timeout=5)
        assert json.loads(stream.readline()[len(b"data: "):])["view"]["count"] == 1
        assert len(page.streams) <= 4
        assert sum(closed_by_server(s, 0.5) for s in stalled) >= 6, "the stalest gave way"
        assert get(page, "/api/state")[0].status == 200
        stream.close()
        for s in stalled:
            s.close()


def test_a_stream_that_takes_nothing_is_dropped_after_the_send_timeout():
    hub = running_hub()
    with StatusPage(hub, port=0, timeout=0.5, max_rate=1000) as page:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", page.port))
        s.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        deadline = time.monotonic() + 30
        while len(page.streams) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        while len(page.streams) and time.monotonic() < deadline:
            hub.publish(PersonResult(time.time(), (PersonFace((1, 2, 50, 60), 80, True),)))
            time.sleep(0.001)
        assert len(page.streams) == 0, "a send with no progress ends the stream"
        s.close()


def test_slow_requests_are_cut_off():
    with StatusPage(running_hub(), port=0, timeout=0.5) as page:
        silent = socket.create_connection(("127.0.0.1", page.port), 5)
        silent.sendall(b"GET /api/state HTTP/1.1\r\n")
        assert closed_by_server(silent), "a request that stops arriving is cut off"
        trickle = socket.create_connection(("127.0.0.1", page.port), 5)
        trickle.sendall(b"GET /api/state HTTP/1.1\r\n")
        cut = False
        for _ in range(100):  # one header byte every 0.1 s: each read makes progress
            try:
                trickle.sendall(b"X")
            except OSError:
                cut = True
                break
            time.sleep(0.1)
        assert cut or closed_by_server(trickle, 1), "a slowloris is cut off too"
        silent.close()
        trickle.close()
        assert get(page, "/api/state")[0].status == 200


def test_a_full_page_serves_a_viewer_by_cutting_the_oldest_slow_request(caplog):
    limits = PeerLimits(4, evict_after=0.2)
    with caplog.at_level(logging.INFO, logger="mlsensors.transports.http.server"), \
            StatusPage(running_hub(), port=0, limits=limits) as page:
        slow = []
        for _ in range(30):
            s = socket.create_connection(("127.0.0.1", page.port), 5)
            s.sendall(b"GET /api/state HTTP/1.1\r\n")
            slow.append(s)
        time.sleep(0.3)
        assert get(page, "/api/state")[0].status == 200
        assert len(page.connections) <= 4
        for s in slow:
            s.close()
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert 1 <= len(lines) <= 3, lines
    assert "connections refused (last: all 4 slots busy)" in " ".join(lines)


def test_head_of_the_event_stream_is_headers_only():
    with StatusPage(running_hub(), port=0) as page:
        reply = raw(page, b"HEAD /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", wait=5)
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 200") and b"text/event-stream" in head
        assert body == b""
        head, _, body = raw(page, b"HEAD /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                            ).partition(b"\r\n\r\n")
        assert b"Content-Length" in head and body == b""


@pytest.mark.parametrize("request_bytes, status", [
    (b"PUT /api/command HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 501),
    (b"DELETE / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 501),
    (b"OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 501),
    (b"garbage\r\n\r\n", 400),
    (b"GET / HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n", 505),
    (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n", 431),
    (b"POST /api/command HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\n", 403),
])
def test_other_methods_and_bad_requests_get_this_pages_json_errors(request_bytes, status):
    with StatusPage(running_hub(), port=0) as page:
        head, _, body = raw(page, request_bytes).partition(b"\r\n\r\n")
        assert get(page, "/api/state")[0].status == 200
    assert head.split(b" ", 2)[1] == str(status).encode(), head
    assert b"Content-Security-Policy" in head and b"application/json" in head, head
    reply = json.loads(body)
    assert reply["ok"] is False and reply["error"] and "\n" not in reply["error"]


def test_the_page_serves_on_ipv6_loopback():
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with StatusPage(running_hub(), host="::1", port=0) as page:
        conn = http.client.HTTPConnection("::1", page.port, timeout=5)
        conn.request("GET", "/api/state")
        assert conn.getresponse().status == 200
        conn.close()


@pytest.mark.parametrize("kind", ["fifo", "device", "large"])
def test_a_hostile_token_file_is_a_one_line_error_not_a_hang(tmp_path, kind):
    import os

    from mlsensors.transports.secret_file import read_secret

    path = tmp_path / "token"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path.symlink_to("/dev/zero")
    else:
        path.write_text("x" * 5000)
    words = {"fifo": "is a FIFO", "device": "is a device", "large": "more than the 4.0 KiB"}
    caught: list[BaseException] = []

    def read() -> None:
        try:
            read_secret(path, "control token file")
        except BaseException as e:
            caught.append(e)

    reader = threading.Thread(target=read, daemon=True)  # a FIFO read would never return
    reader.start()
    reader.join(10)
    assert caught and isinstance(caught[0], InputError), caught
    assert re.search(f"cannot read control token file .*{words[kind]}", str(caught[0]))
