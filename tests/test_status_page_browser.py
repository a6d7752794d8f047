"""The status page end to end in a real headless Chromium (Debian's), driven by selenium.

Nothing is downloaded: the browser and driver are the system's, given by path, and
selenium-manager is told to stay offline.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import require_tool

from mlsensors.hub import Hub, RegisterWrite, SensorStatus
from mlsensors.transports import commands
from mlsensors.transports.http import StatusPage
from mlsensors.types import PersonFace, PersonResult

pytestmark = pytest.mark.slow
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

TOKEN = "status-page-test-token-0123456789"
BOX = (64, 48, 160, 176)
SCREENSHOT = os.environ.get("MLSENSORS_SCREENSHOT")
"""Set to a path to keep the full-page screenshot for a look."""


def system(path: str, name: str) -> str:
    return path if Path(path).exists() else require_tool(name)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = system("/usr/bin/chromium", "chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1280,1400",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    service = Service(executable_path=system("/usr/bin/chromedriver", "chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)
    yield driver
    driver.quit()


def text(driver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def wait_for(driver, condition, timeout: float = 10):
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d))


def canvas_pixels(driver) -> np.ndarray:
    import cv2

    png = driver.find_element(By.ID, "frame").screenshot_as_png
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    return image[:, :, ::-1]  # RGB


def region(image: np.ndarray, box, inset: float = 0.25) -> np.ndarray:
    """The inner part of a 0-255 box, in the screenshot's pixels."""
    h, w = image.shape[:2]
    left, top, right, bottom = box
    dx, dy = (right - left) * inset, (bottom - top) * inset
    return image[int((top + dy) / 256 * h): int((bottom - dy) / 256 * h),
                 int((left + dx) / 256 * w): int((right - dx) / 256 * w)]


def test_page_draws_boxes_timeline_and_controls(browser):
    hub = Hub()
    hub.set_status(SensorStatus("running", fps=6.8, frames=100))
    writes: list[RegisterWrite] = []
    hub.set_controller(writes.append)
    with StatusPage(hub, port=0, control_token=TOKEN) as page:
        browser.get(f"{page.url}#token={TOKEN}")
        wait_for(browser, lambda d: text(d, "link") == "live")
        assert text(browser, "count") == "0"
        assert text(browser, "sensor-state") == "running"
        assert "not run" in text(browser, "status")  # audit state until an audit reports
        assert "39" in text(browser, "interface")
        empty = canvas_pixels(browser)
        timeline = browser.find_element(By.ID, "timeline")
        points_before = int(timeline.get_attribute("data-points"))

        hub.publish(PersonResult(time.time(), (PersonFace(BOX, 93, True, 3, 80),), 1))
        wait_for(browser, lambda d: text(d, "count") == "1")
        rows = browser.find_elements(By.CSS_SELECTOR, "#faces tbody tr")
        assert len(rows) == 1 and "3 (80)" in rows[0].text and "yes" in rows[0].text
        assert browser.find_element(By.ID, "frame").get_attribute("data-boxes") == \
            "[[64,48,160,176]]"
        wait_for(browser, lambda d: timeline.get_attribute("data-last") == "1")
        assert int(timeline.get_attribute("data-points")) > points_before

        # The screenshot has the box drawn where the record puts it, and nothing elsewhere.
        drawn = canvas_pixels(browser)
        inside, was = region(drawn, BOX).astype(int), region(empty, BOX).astype(int)
        assert np.abs(inside - was).mean() > 10  # the box's fill appeared
        r, g, b = inside.reshape(-1, 3).mean(axis=0)
        assert g > r and g > b  # the facing colour (green)
        outside = region(drawn, (190, 190, 250, 250)).astype(int)
        assert np.abs(outside - region(empty, (190, 190, 250, 250)).astype(int)).max() < 8
        if SCREENSHOT:
            browser.save_screenshot(SCREENSHOT)

        # Controls: the token from the URL fragment works; a wrong one is refused.
        assert browser.find_element(By.ID, "control").is_displayed()
        browser.find_element(By.CSS_SELECTOR, "#calibrate-id option[value='5']").click()
        browser.find_element(By.ID, "calibrate").click()
        wait_for(browser, lambda d: text(d, "control-result").startswith("sent"))
        assert writes == [commands.calibrate(5)]
        token_box = browser.find_element(By.ID, "token")
        token_box.clear()
        token_box.send_keys("wrong-token-wrong-token")
        browser.find_element(By.ID, "erase").click()
        wait_for(browser, lambda d: text(d, "control-result").startswith("refused"))
        assert writes == [commands.calibrate(5)]

        hub.set_status(SensorStatus("fault", detail="camera unplugged"))
        wait_for(browser, lambda d: text(d, "sensor-state") == "fault")
        assert text(browser, "count") == "0"
        assert "camera unplugged" in text(browser, "status")
        wait_for(browser, lambda d: timeline.get_attribute("data-last") == "0")


def test_read_only_page_has_no_controls(browser):
    hub = Hub()
    hub.set_status(SensorStatus("running"))
    browser.get_log("browser")  # drop what the previous test left (a deliberate 401)
    with StatusPage(hub, port=0) as page:
        browser.get(page.url)
        wait_for(browser, lambda d: text(d, "link") == "live")
        assert not browser.find_element(By.ID, "control").is_displayed()
        logs = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert logs == []  # no CSP violations, no script errors


def test_voice_events_are_listed_live(browser):
    from mlsensors.voice.events import VoiceHub
    from mlsensors.voice.record import EventKind, VoiceEvent

    hub, voice = Hub(), VoiceHub(("lamp on", "lamp off"), gate=lambda e: e.command == 1)
    with StatusPage(hub, port=0) as page:  # no voice sensor: no voice card
        browser.get(page.url)
        wait_for(browser, lambda d: text(d, "link") == "live")
        assert not browser.find_element(By.ID, "voice").is_displayed()
    with StatusPage(hub, port=0, voice=voice) as page:
        browser.get(page.url)
        wait_for(browser, lambda d: text(d, "link") == "live")
        assert browser.find_element(By.ID, "voice").is_displayed()
        voice.publish(VoiceEvent(EventKind.COMMAND, 0, 88, 1, 0, timestamp=time.time()))
        voice.publish(VoiceEvent(EventKind.COMMAND, 1, 93, 2, 0, timestamp=time.time()))
        wait_for(browser, lambda d: text(d, "voice-gated") == "1")
        rows = browser.find_elements(By.CSS_SELECTOR, "#voice-events tbody tr")
        assert [r.text.split()[:3] for r in rows] == [["lamp", "off", "93"]]
        assert text(browser, "voice-published") == "1"
        logs = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert logs == []


def timeline_pixels(driver) -> tuple[np.ndarray, float]:
    """The timeline canvas as drawn (RGB) and its screenshot pixels per canvas pixel."""
    import cv2

    canvas = driver.find_element(By.ID, "timeline")
    image = cv2.imdecode(np.frombuffer(canvas.screenshot_as_png, np.uint8), cv2.IMREAD_COLOR)
    return image[:, :, ::-1], image.shape[1] / int(canvas.get_attribute("width"))


def test_a_count_older_than_the_window_is_a_step_not_a_ramp(browser):
    """A face in view for longer than the timeline's window: the count in force at the
    window's start is drawn from the start at its height (a flat line after a vertical
    edge), not as a ramp up from 0."""
    import json

    window = 2.0
    hub = Hub()
    hub.set_status(SensorStatus("running"))
    hub.publish(PersonResult(time.time(), (PersonFace(BOX, 93, True),), 1))
    with StatusPage(hub, port=0, timeline_seconds=window) as page:
        browser.get(page.url)
        wait_for(browser, lambda d: text(d, "link") == "live")
        timeline = browser.find_element(By.ID, "timeline")

        def path(d) -> list:
            return json.loads(timeline.get_attribute("data-path") or "[]")

        # The page redraws every second; once the change is older than the window:
        drawn = wait_for(browser, lambda d: path(d)[:2] == [[0, 0], [0, 1]] and path(d))
        assert drawn[-2:] == [[window, 1], [window, 0]]  # flat at 1 up to now
        assert all(c == 1 for _, c in drawn[1:-1])  # no vertex anywhere below the count

        # And on screen: just inside the left edge the fill is already at full height.
        image, scale = timeline_pixels(browser)
        h, pad, top = int(timeline.get_attribute("height")), 24, 4
        y_half = h - pad - 0.5 / top * (h - 2 * pad)  # half way up a count of 1
        r, g, b = image[int(y_half * scale), int((pad + 4) * scale)].astype(int)
        assert b - r > 15, (r, g, b)  # the timeline's blue fill, not the white background
