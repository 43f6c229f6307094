"""The studio (python -m hotdance_jax.studio) in a real browser: a tiny trained run served on a free
local port, its page driven by headless Chromium.

Selenium, not Playwright: it drives Debian's own `chromium` through Debian's `chromium-driver`, the
same version from the same apt install, and downloads nothing; Playwright pins its own Chromium
build (fetched by `playwright install`) and supports other builds only loosely.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import zipfile

import imageio_ffmpeg
import numpy as np
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from data_pipeline.sources.synthetic import synthesize_performance
from hotdance_jax import train
from hotdance_jax.errors import InputError
from hotdance_jax.studio import Studio
from tests.conftest import tiny_config
from tests.test_ablations import raw_cache  # noqa: F401 (a fixture: the tiny run's latents)
from tests.test_build import REPO
from tests.test_multihost import free_port
from tests.test_sample import song_file

pytestmark = pytest.mark.slow  # trains and starts processes: make test-fast skips it

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
START_TIMEOUT = 300  # s: a loaded machine imports JAX and Gradio and restores the run
GENERATE_TIMEOUT = 900  # s: the first request compiles the sampler, on a loaded machine


@pytest.fixture(scope="module")
def run(raw_cache, tmp_path_factory):  # noqa: F811
    """A DiT trained for 2 steps on the raw-coords latents of raw_cache: its run folder."""
    root, config = raw_cache
    workdir = tmp_path_factory.mktemp("studio") / "run"
    train.train(config, root / "latents", workdir)
    return workdir


def wait_until_serving(url: str, process: subprocess.Popen, log) -> None:
    """Returns once `url` answers; fails with the server's log if it exits or never answers."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the studio exited ({process.returncode}): {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(1)
    pytest.fail(f"the studio did not answer in {START_TIMEOUT} s: {log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def studio(run, tmp_path_factory):
    """The studio serving `run` on a free local port: its URL. Stopped by Ctrl-C (SIGINT)."""
    port, log = free_port(), tmp_path_factory.mktemp("studio_log") / "studio.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "hotdance_jax.studio", "--workdir", str(run), "--port",
             str(port)], cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO)})
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_serving(url, process, log)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium driven by Selenium."""
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("needs Chromium and its driver: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1600,1250"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def open_page(browser, url: str) -> None:
    """Loads the studio's page afresh and waits until its script has drawn the song's input."""
    browser.get(url)
    WebDriverWait(browser, 60).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, "#song input[type=file]"))


def upload(browser, element: str, path) -> None:
    """Gives `path` to the file input of the page's `element` (an elem_id) and waits until the
    upload is on the server (its download link appears)."""
    browser.find_element(By.CSS_SELECTOR, f"#{element} input[type=file]").send_keys(str(path))
    WebDriverWait(browser, 60).until(lambda b: any(
        (a.get_attribute("href") or "").endswith(path.name)
        for a in b.find_elements(By.CSS_SELECTOR, f"#{element} a[download]")))


def type_number(browser, element: str, value: float) -> None:
    """Types `value` into the number box of the page's `element` (a number field or slider)."""
    box = browser.find_element(By.CSS_SELECTOR, f"#{element} input[type=number]")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(str(value), Keys.TAB)


def generate(browser, **numbers: float) -> None:
    """Sets the page's number fields (elem_id: value) and presses Generate."""
    for element, value in numbers.items():
        type_number(browser, element, value)
    browser.find_element(By.CSS_SELECTOR, "#generate").click()


def video_sources(browser, timeout: float = GENERATE_TIMEOUT) -> list[str]:
    """The URLs of the sample videos on the page, once the first one is there."""
    WebDriverWait(browser, timeout).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, "#video-0 video[src]"))
    return [video.get_attribute("src")
            for video in browser.find_elements(By.CSS_SELECTOR, "[id^=video-] video[src]")]


def message_box(browser, timeout: float = GENERATE_TIMEOUT) -> str:
    """The text of the message boxes (Gradio's toasts) on the page, once one shows some."""
    return WebDriverWait(browser, timeout).until(lambda b: " ".join(
        box.text for box in b.find_elements(By.CSS_SELECTOR, ".toast-body")).strip())


def pose_file(path):
    """An OpenPose JSON of one pose of a synthetic dancer (512 x 512 pixels) at `path`."""
    dancer = synthesize_performance(3, seconds=2.0)
    values = np.concatenate([dancer.keypoints[0], dancer.confidence[0][:, None]], axis=1)
    path.write_text(json.dumps({"people": [{"pose_keypoints_2d": values.ravel().tolist()}]}))
    return path


def keyframes_file(path, time: float):
    """A keyframes JSON at `path`: the pose of pose_file at `time` seconds."""
    [person] = json.loads(pose_file(path.with_name("key_pose.json")).read_text())["people"]
    path.write_text(json.dumps([{"time": time, "pose": person}]))
    return path


def download(url: str, path):
    urllib.request.urlretrieve(url, path)
    return path


def test_a_song_uploaded_in_the_browser_becomes_side_by_side_videos_and_downloads(
        studio, browser, tmp_path):
    song = song_file(tmp_path / "song.wav", 4.0)
    open_page(browser, studio)
    upload(browser, "song", song)
    generate(browser, start=1, seconds=2, samples=2, steps=2)
    videos = video_sources(browser)
    assert len(videos) == 2  # one video per sample, side by side
    caption = " ".join(browser.find_element(By.CSS_SELECTOR, "#caption").text.split())
    assert "2 dance(s) of 2.0 s (60 frames at 30 fps) to song.wav from 1 s" in caption
    reader = imageio_ffmpeg.read_frames(str(download(videos[0], tmp_path / "shown.mp4")))
    meta = next(reader)
    frames = sum(1 for _ in reader)
    assert frames == 60
    assert abs(meta["duration"] - 2.0) < 0.2
    assert meta["audio_codec"] == "aac"
    hrefs = [a.get_attribute("href")
             for a in browser.find_elements(By.CSS_SELECTOR, "#files-0 a[download]")]
    links = {href.rsplit(".", 1)[-1]: href for href in hrefs}
    assert sorted(links) == ["mp4", "npz", "zip"], links
    with np.load(download(links["npz"], tmp_path / "dance.npz")) as dance:
        assert dance["keypoints"].shape == (frames, 18, 2)
        assert float(dance["fps"]) == pytest.approx(meta["fps"])
        assert float(dance["music_offset"]) == 1.0
    with zipfile.ZipFile(download(links["zip"], tmp_path / "openpose.zip")) as archive:
        names = sorted(archive.namelist())
    assert len(names) == frames
    assert names[0] == "song_sample0_000000000000_keypoints.json"


def test_bad_uploads_are_refused_in_the_page_and_the_next_request_works(
        studio, browser, tmp_path):
    open_page(browser, studio)
    (tmp_path / "notes.txt").write_text("not a song, just words\n")
    browser.find_element(By.CSS_SELECTOR, "#song input[type=file]").send_keys(
        str(tmp_path / "notes.txt"))
    assert "Invalid file type: notes.txt" in message_box(browser, 60)  # Gradio's own check
    shutil.copy(tmp_path / "notes.txt", tmp_path / "notes.wav")  # past it by its name
    open_page(browser, studio)
    upload(browser, "song", tmp_path / "notes.wav")
    generate(browser)
    assert ("notes.wav: not a readable audio file (no decoder recognises its format)"
            in message_box(browser))
    song = song_file(tmp_path / "good.wav", 2.0)
    open_page(browser, studio)
    upload(browser, "song", song)
    upload(browser, "keyframes", keyframes_file(tmp_path / "late.json", 2.5))
    generate(browser)
    assert ("late.json keyframe 0: time 2.5 s is outside the dance (0 to 2 s)"
            in message_box(browser))
    (tmp_path / "bad_pose.json").write_text('{"people": []}')
    open_page(browser, studio)
    upload(browser, "song", song)
    upload(browser, "pose", tmp_path / "bad_pose.json")
    generate(browser)
    assert "bad_pose.json: not a readable pose (IndexError" in message_box(browser)
    open_page(browser, studio)
    upload(browser, "song", song)
    upload(browser, "pose", pose_file(tmp_path / "pose.json"))
    upload(browser, "keyframes", keyframes_file(tmp_path / "keys.json", 1.0))
    generate(browser, samples=2, steps=2)  # the first test's: the sampler is compiled
    videos = video_sources(browser)
    assert len(videos) == 2
    reader = imageio_ffmpeg.read_frames(str(download(videos[1], tmp_path / "good.mp4")))
    next(reader)
    assert sum(1 for _ in reader) == 60  # the whole song: the length asked (10 s) is longer


def test_a_folder_that_is_not_a_run_is_one_line_of_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "hotdance_jax.studio", "--workdir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path}/config.json: missing; not a training run folder (config)")


class RecordingGenerator:
    """Stands in for sample.DanceGenerator in a Studio: records what it is asked to generate."""

    def __init__(self, config):
        self.config, self.calls = config, []
        self.info = {"mean_dancer": {"frame": [512, 512]}}

    def mean_dancer(self, width, height):
        return np.full((18, 2), width / 2, np.float32), np.ones(18, np.float32)

    def generate(self, songs, shape, **settings):
        self.calls.append((songs, settings))
        return []


def test_keyframes_reach_the_generator_with_times_from_the_dance_start(tmp_path):
    generator = RecordingGenerator(tiny_config())
    studio = Studio(generator, "run", tmp_path / "requests")
    song = song_file(tmp_path / "song.wav", 4.0)
    keys = keyframes_file(tmp_path / "keys.json", 1.5)
    studio.dances(song, 1.0, 2.0, None, keys, seed=3)
    [(songs, settings)] = generator.calls
    assert songs[0].frames == 60
    assert songs[0].start == 1.0
    [keyframe] = settings["keyframes"]
    [person] = json.loads(keys.read_text())
    given = np.reshape(person["pose"]["pose_keypoints_2d"], (18, 3))
    assert keyframe.time == 1.5
    np.testing.assert_allclose(keyframe.keypoints, given[:, :2])
    assert settings["seed"] == 3
    with pytest.raises(InputError, match=r"keys\.json keyframe 0: time 2.5 s is outside"):
        studio.dances(song, 1.0, 2.0, None, keyframes_file(keys, 2.5))
    studio.dances(song, 0.0, None, None)
    assert generator.calls[-1][1]["keyframes"] == ()
