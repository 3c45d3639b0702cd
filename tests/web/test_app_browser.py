"""The web page in a real browser: headless Chromium uploads a sample, converts it and gets playable audio.

Needs Debian's ``chromium`` and ``chromium-driver`` packages and the
``selenium`` package (CI installs them: ``.ci/run``, the ``test`` extra);
skipped with the reason shown when any is missing. The screenshot goes to
``tmp_path`` and, when ``VOICECONV_SCREENSHOT_DIR`` is set, there too.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import SHORT_CLIP, running_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")  # an explicit driver: Selenium Manager never downloads one
WAIT_SECONDS = 90

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as visible  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

LOAD_AUDIO_JS = """
const [src, done] = arguments;
const audio = new Audio();
audio.preload = "auto";
audio.oncanplay = () => done({duration: audio.duration, readyState: audio.readyState});
audio.onerror = () => done({error: audio.error ? audio.error.code : "unknown"});
audio.src = src;
"""

SPECTROGRAM_HEIGHTS_JS = """
const images = [...document.querySelectorAll("#input-spectrogram img, #converted-spectrogram img")];
return images.length === 2 && images.every(image => image.complete) ? images.map(image => image.naturalHeight) : null;
"""

INPUT_DURATION_JS = 'const time = document.querySelector("#input-audio #duration"); return time && time.textContent;'


def headless_chromium(*flags: str, console: bool = False) -> Iterator[webdriver.Chrome]:
    """A headless Chromium with ``flags`` added (skips the test when it or its driver is missing); ``console``
    keeps the page's console log for failure messages. Quits when the generator closes."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not found; install Debian's chromium and chromium-driver packages")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1300", *flags):
        options.add_argument(flag)
    if console:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_script_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    yield from headless_chromium()


def save_screenshot(driver: webdriver.Chrome, folder: Path, name: str) -> Path:
    """Save the window to ``folder/name``, and a copy in ``$VOICECONV_SCREENSHOT_DIR`` when set."""
    path = folder / name
    driver.save_screenshot(str(path))
    if os.environ.get("VOICECONV_SCREENSHOT_DIR"):
        wanted = Path(os.environ["VOICECONV_SCREENSHOT_DIR"])
        wanted.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, wanted / name)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    with running_app(tmp_path_factory.mktemp("app")) as url:
        yield url


def input_duration(driver: webdriver.Chrome) -> str | None:
    """The duration the input's player shows once it has decoded a clip (None while empty or at 0:00)."""
    shown = driver.execute_script(INPUT_DURATION_JS)
    return None if shown in (None, "0:00") else shown


def open_page(driver: webdriver.Chrome, url: str) -> WebDriverWait:
    """Load the page; returns a wait that gives the page and its conversions time."""
    driver.get(url)
    wait = WebDriverWait(driver, WAIT_SECONDS)
    wait.until(visible.presence_of_element_located((By.ID, "convert-button")))
    return wait


def test_browser_uploads_converts_and_gets_playable_audio(browser, server, tmp_path):
    wait = open_page(browser, server)
    upload = browser.find_element(By.CSS_SELECTOR, "#input-audio input[type=file]")
    upload.send_keys(str(SHORT_CLIP))
    wait.until(visible.presence_of_element_located((By.CSS_SELECTOR, "#input-audio #duration")))  # uploaded
    browser.find_element(By.ID, "convert-button").click()
    link = wait.until(visible.presence_of_element_located(
        (By.CSS_SELECTOR, "#converted-audio a[data-testid=download-link]")))
    assert link.get_attribute("download") == "kathleen_arctic_a0591_rms.wav"
    loaded = browser.execute_async_script(LOAD_AUDIO_JS, link.get_attribute("href"))
    pictures = wait.until(lambda driver: driver.execute_script(SPECTROGRAM_HEIGHTS_JS))
    screenshot = save_screenshot(browser, tmp_path, "convert_tab.png")
    assert "error" not in loaded, f"the browser could not load the converted audio: {loaded}"
    assert loaded["readyState"] >= 3 and abs(loaded["duration"] - 1.8) < 0.1
    assert pictures == [256, 256], "the input and converted spectrograms are 256 pixels tall"
    assert screenshot.stat().st_size > 10_000


def test_browser_example_clip_is_one_click_away(browser, server):
    wait = open_page(browser, server)
    example = wait.until(visible.element_to_be_clickable(
        (By.XPATH, "//*[@id='example-clips']//button[contains(., 'kathleen_arctic_a0592.flac')]")))
    example.click()
    shown = wait.until(input_duration)
    assert shown in ("0:02", "0:03")  # the input's player decoded the 2.6 s clip: it is loaded, ready to convert


def test_browser_faces_tab_samples_faces_and_hides_the_voice_choice(browser, server, tmp_path):
    wait = open_page(browser, server)
    voice_choice = browser.find_element(By.ID, "voice-choice")
    assert voice_choice.is_displayed()
    browser.find_element(By.XPATH, "//button[@role='tab'][contains(., 'Faces')]").click()
    wait.until(visible.invisibility_of_element(voice_choice))  # the voice model and direction do not apply here
    wait.until(visible.visibility_of_element_located((By.CSS_SELECTOR, "#face-edited img")))  # a face before uploads
    wait.until(visible.element_to_be_clickable((By.ID, "traverse-button"))).click()
    traversal = wait.until(visible.visibility_of_element_located((By.CSS_SELECTOR, "#face-grid img")))
    wait.until(lambda driver: driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth",
                                                    traversal))
    save_screenshot(browser, tmp_path, "faces_traversal.png")
    wait.until(visible.element_to_be_clickable((By.ID, "sample-button"))).click()
    grid = wait.until(visible.visibility_of_element_located((By.CSS_SELECTOR, "#sampled-faces img")))
    wait.until(lambda driver: driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", grid))
    save_screenshot(browser, tmp_path, "faces_tab.png")
    browser.find_element(By.XPATH, "//button[@role='tab'][contains(., 'Convert')]").click()
    wait.until(visible.visibility_of_element_located((By.ID, "voice-choice")))


def test_browser_trains_a_pair_from_uploads_to_a_downloadable_model(browser, tmp_path):
    """A new user's path on the Train tab: upload two speakers, check them, train, and get the model."""
    from test_app_train import TINY_RECIPE  # the same tiny recipe as the API test

    from conftest import harmonic_tone
    from voiceconv.audio.io import save_audio

    paths = {}
    for name, f0 in (("alice", 240.0), ("bob", 100.0)):
        paths[name] = [str(save_audio(tmp_path / name / f"{name}{i}.wav", harmonic_tone(1.5, f0=f0 + 7 * i, seed=i),
                                      16000)) for i in range(4)]
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "tiny.yaml").write_text(TINY_RECIPE.replace("steps: 400", "steps: 60"))
    with running_app(tmp_path, "--runs-dir", str(tmp_path / "runs"), "--recipes-dir", str(tmp_path / "recipes")) as url:
        wait = open_page(browser, url)
        browser.find_element(By.XPATH, "//button[@role='tab'][contains(., 'Train')]").click()
        wait.until(visible.visibility_of_element_located((By.ID, "train-start")))
        for side, name in (("a", "alice"), ("b", "bob")):
            browser.find_element(By.CSS_SELECTOR, f"#train-files-{side} input[type=file]").send_keys(
                "\n".join(paths[name]))
            wait.until(visible.text_to_be_present_in_element((By.ID, f"train-files-{side}"), f"{name}3"))  # uploaded
            browser.find_element(By.CSS_SELECTOR, f"#train-name-{side} textarea, #train-name-{side} input").send_keys(name)
        browser.find_element(By.ID, "train-audit-button").click()
        wait.until(visible.text_to_be_present_in_element((By.ID, "train-audit"), "alice0.wav"))
        browser.find_element(By.ID, "train-start").click()
        wait.until(visible.text_to_be_present_in_element((By.ID, "train-status"), "finished"))
        link = wait.until(visible.presence_of_element_located(
            (By.XPATH, "//*[@id='train-download']//a[contains(@href, 'alice_bob.safetensors')]")))
        wait.until(visible.presence_of_element_located((By.CSS_SELECTOR, "#train-snapshot-spectrogram img")))
        browser.execute_script("arguments[0].scrollIntoView()", browser.find_element(By.ID, "train-status"))
        save_screenshot(browser, tmp_path, "train_tab.png")
        assert "step 60 of 60" in browser.find_element(By.ID, "train-status").text
        assert link.get_attribute("href")


def test_browser_a_visitor_without_credentials_sees_the_login_form_and_hostile_names_stay_text(browser, tmp_path):
    """Issue 20.10 and "also seen": with --auth a visitor gets only the login form (no API description); after
    logging in, a speaker called ``<img src=x onerror=alert(1)>`` shows as text in the Models tab and the model list."""
    from test_hostile_page import XSS_NAME, xss_model

    from helpers import DEFAULT_MODEL

    models = tmp_path / "models"
    models.mkdir()
    (models / DEFAULT_MODEL.name).symlink_to(DEFAULT_MODEL)
    xss_model(models)
    with running_app(tmp_path, "--models-dir", str(models), "--auth", "ann:secret", "--no-training") as url:
        browser.get(url)
        wait = WebDriverWait(browser, WAIT_SECONDS)
        password = wait.until(visible.visibility_of_element_located((By.CSS_SELECTOR, "input[type=password]")))
        assert browser.execute_script("return window.gradio_api_info") == {"named_endpoints": {},
                                                                          "unnamed_endpoints": {}}
        assert "kathleen" not in browser.page_source and "convert" not in browser.page_source.lower()
        browser.find_element(By.CSS_SELECTOR, "input[type=text], input:not([type])").send_keys("ann")
        password.send_keys("secret")
        browser.find_element(By.XPATH, "//button[contains(., 'Login')]").click()
        wait.until(visible.presence_of_element_located((By.ID, "convert-button")))
        browser.find_element(By.XPATH, "//button[@role='tab'][contains(., 'Models')]").click()
        wait.until(visible.text_to_be_present_in_element((By.TAG_NAME, "body"), f"A = {XSS_NAME}"))
        browser.find_element(By.XPATH, "//button[@role='tab'][contains(., 'Convert')]").click()
        browser.find_element(By.CSS_SELECTOR, "#voice-choice input").click()  # the model list opens
        wait.until(visible.text_to_be_present_in_element((By.TAG_NAME, "body"), f"xss ({XSS_NAME}"))
        save_screenshot(browser, tmp_path, "hostile_names.png")
        assert browser.execute_script("return document.querySelectorAll('img[src=\"x\"]').length") == 0
        with pytest.raises(Exception, match="no such alert"):
            browser.switch_to.alert.text
