"""The status page server over real HTTP on loopback (the browser test is separate)."""

from __future__ import annotations

import argparse
import http.client
import json
import time
import urllib.error
import urllib.request

import pytest

from mlsensors.errors import InputError
from mlsensors.hub import Hub, RegisterWrite, SensorStatus
from mlsensors.transports import commands
from mlsensors.transports import http as status_http
from mlsensors.transports.http import StatusPage, parse_address
from mlsensors.transports.http.view import PresenceTimeline, snapshot_view
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
