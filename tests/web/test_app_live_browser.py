"""The Live tab in a real browser: Chromium's fake microphone plays a recording, the page converts it while it
records, and the converted voice plays back with a measured delay.

Chromium runs with ``--use-fake-device-for-media-stream`` and
``--use-file-for-fake-audio-capture`` (a 16-bit PCM WAV made from a bundled
sample, looped), so ``getUserMedia`` hears real speech. The page's player
measures the delay it hears (from the moment a sample was spoken, counted from
the click on Record, to the moment it is scheduled to play); the test prints it
and asserts nothing about it (machines are noisy; ``benchmarks/live_latency.py``
judges the targets). Skipped with the reason shown when chromium, chromedriver
or selenium are missing. Screenshots go to ``tmp_path`` and, when
``VOICECONV_SCREENSHOT_DIR`` is set, there too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import SAMPLES
from helpers import running_app

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")

from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as visible  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from test_app_browser import LOAD_AUDIO_JS, WAIT_SECONDS, headless_chromium, save_screenshot  # noqa: E402

MICROPHONE_RATE = 48000
RECORD_SECONDS = 8.0  # how long the test speaks into the fake microphone
PLAYED_SECONDS = 3.0  # converted audio that must have reached the player while recording
# gradio loads its WAV recorder a moment after the microphone appears; a click before that fails in the page
# ("ge is not a constructor"), which no person is quick enough to do
RECORDER_LOAD_SECONDS = 2.0

PLAYER_STATE_JS = """
const live = window.voiceconvLive;
if (!live) return null;
return {played: live.played, seconds: live.seconds, skipped: live.skipped, state: live.context.state,
        currentTime: live.context.currentTime, uploads: window.voiceconvUploads,
        shown: document.querySelector("#live-delay").textContent};
"""

# When each microphone block set off (ms on performance.now()): the page uploads each block when the recorder hands
# it over, so the n-th upload is the server's n-th block.
TIME_UPLOADS_JS = """
window.voiceconvUploads = [];
const originalFetch = window.fetch;
window.fetch = function (resource, options) {
  const url = typeof resource === "string" ? resource : resource.url;
  if (url.includes("/upload") && !url.includes("upload_progress")) window.voiceconvUploads.push(performance.now());
  return originalFetch.apply(this, arguments);
};
"""


def fake_microphone_file(path: Path) -> Path:
    """The bundled clips back to back as the 16-bit PCM WAV Chromium's fake capture device plays (in a loop)."""
    from voiceconv.audio.io import audio_files, load_audio

    speech = np.concatenate([load_audio(p, MICROPHONE_RATE) for p in audio_files(SAMPLES / "audio")])
    sf.write(path, speech, MICROPHONE_RATE, subtype="PCM_16")
    return path


@pytest.fixture
def browser(tmp_path) -> Iterator[webdriver.Chrome]:
    microphone = fake_microphone_file(tmp_path / "microphone.wav")
    yield from headless_chromium("--disable-gpu", "--no-first-run", "--disable-background-networking",
                                 "--disable-component-update", "--disable-sync", "--use-fake-ui-for-media-stream",
                                 "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={microphone}",
                                 "--autoplay-policy=no-user-gesture-required", console=True)


@pytest.fixture
def server(tmp_path_factory) -> Iterator[str]:
    with running_app(tmp_path_factory.mktemp("app")) as url:
        yield url


def describe(delays: np.ndarray) -> str:
    return f"{np.median(delays):.2f} / {np.percentile(delays, 95):.2f} / {delays.max():.2f} s"


def played_enough(driver: webdriver.Chrome) -> dict | None:
    state = driver.execute_script(PLAYER_STATE_JS)
    return state if state and state["seconds"] >= PLAYED_SECONDS else None


def heard_delays(state: dict) -> np.ndarray:
    """Seconds from speaking to hearing, per played block: its first sample was spoken ``end - start`` seconds before
    the input block that completed it set off."""
    uploads = state["uploads"]
    played = [p for p in state["played"] if not p["final"]]
    assert max(p["block"] for p in played) <= len(uploads), "more server blocks than uploads: the timing is off"
    return np.array([(p["playsAt"] - uploads[p["block"] - 1]) / 1000 + p["end"] - p["start"] for p in played])


def test_live_tab_plays_the_converted_microphone_while_it_records(browser, server, tmp_path):
    browser.get(server)
    wait = WebDriverWait(browser, WAIT_SECONDS)
    wait.until(visible.presence_of_element_located((By.ID, "convert-button")))
    browser.find_element(By.XPATH, "//button[@role='tab'][contains(., 'Live')]").click()
    record = wait.until(visible.element_to_be_clickable((By.CSS_SELECTOR, "#live-input button.record-button")))
    time.sleep(RECORDER_LOAD_SECONDS)
    browser.execute_script(TIME_UPLOADS_JS)
    record.click()
    clicked = time.monotonic()
    try:
        wait.until(played_enough)  # converted audio arrives and is queued in the page's player
    except TimeoutException:
        pytest.fail(f"no converted audio reached the player: {browser.execute_script(PLAYER_STATE_JS)}; status: "
                    f"{browser.find_element(By.ID, 'live-status').text!r}; console: {browser.get_log('browser')[-5:]}")
    time.sleep(max(0.0, RECORD_SECONDS - (time.monotonic() - clicked)))
    state = browser.execute_script(PLAYER_STATE_JS)
    status = browser.find_element(By.ID, "live-status").text
    save_screenshot(browser, tmp_path, "live_tab_recording.png")
    browser.find_element(By.CSS_SELECTOR, "#live-input button.stop-button").click()
    link = wait.until(visible.presence_of_element_located((By.CSS_SELECTOR, "#live-take a[data-testid=download-link]")))
    take = browser.execute_async_script(LOAD_AUDIO_JS, link.get_attribute("href"))
    wait.until(lambda driver: "Done" in driver.find_element(By.ID, "live-status").text)
    screenshot = save_screenshot(browser, tmp_path, "live_tab_done.png")

    delays = heard_delays(state)
    from_click = np.array([p["fromClick"] for p in state["played"] if not p["final"]])
    print(f"\nlive delay heard in Chromium over {len(delays)} blocks, median / 95th percentile / max: "
          f"{describe(delays)} from speaking to hearing; {describe(from_click)} counted from the click on Record "
          f"(the microphone's start-up included); {state['skipped']:.2f} s skipped by the player; "
          f"page: {state['shown']!r}; server: {status}")
    assert state["state"] == "running" and state["currentTime"] > 1.0, "the page's player is not playing"
    assert len(delays) >= 5 and np.isfinite(delays).all() and (delays > 0).all()
    assert "Converting" in status and "hold back" in status and "after you speak" in state["shown"]
    assert "error" not in take, f"the browser could not load the converted take: {take}"
    assert take["duration"] >= state["seconds"] - 0.5  # the take holds at least what was played while recording
    assert screenshot.stat().st_size > 10_000
