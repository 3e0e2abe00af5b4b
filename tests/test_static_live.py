"""The static page's live camera panel (web/src/live.js) in headless Chromium with a fake camera playing a
generated clip of the example face: faces followed with a labelled box, the largest face's map refreshed, no
request to any other host; a blocked camera and a missing one answered with a message; the camera paused while
the tab or the page is hidden and resumed when shown again."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "webapp" / "examples" / "astronaut.jpg"


def example_frames(count: int = 20, size: tuple[int, int] = (640, 480), sway: int = 8) -> list[Image.Image]:
    """`count` RGB frames of the example photo fitted into `size` on a grey ground, swaying left and right by up to
    `sway` pixels and back (the clip loops without a jump)."""
    w, h = size
    photo = Image.open(EXAMPLE).convert("RGB")
    k = min(w / photo.width, h / photo.height)
    photo = photo.resize((round(photo.width * k), round(photo.height * k)), Image.Resampling.BILINEAR)
    frames = []
    for i in range(count):
        dx = round(sway * math.sin(2 * math.pi * i / count))
        frame = Image.new("RGB", size, (96, 96, 96))
        frame.paste(photo, ((w - photo.width) // 2 + dx, (h - photo.height) // 2))
        frames.append(frame)
    return frames


def write_y4m(path: Path, frames: list[Image.Image], fps: int = 10) -> Path:
    """A YUV4MPEG2 clip (4:2:0, full-range JPEG YCbCr) of equally sized RGB frames: what Chromium's fake camera
    (--use-file-for-fake-video-capture) plays, in a loop."""
    w, h = frames[0].size
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            ycc = np.asarray(frame.convert("YCbCr"), dtype=np.float32)
            out.write(b"FRAME\n")
            out.write(ycc[..., 0].astype(np.uint8).tobytes())
            for c in (1, 2):
                quarter = ycc[: h // 2 * 2, : w // 2 * 2, c].reshape(h // 2, 2, w // 2, 2).mean((1, 3))
                out.write(np.round(quarter).astype(np.uint8).tobytes())
    return path


def camera_args(clip: Path) -> list[str]:
    return [
        "--no-sandbox",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={clip}",
        "--autoplay-policy=no-user-gesture-required",
    ]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_y4m(tmp_path_factory.mktemp("camera") / "face.y4m", example_frames())


@pytest.fixture(scope="module")
def browser(clip, chromium_path):
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path, args=camera_args(clip))
        yield b
        b.close()


def open_live(browser, base: str, init_script: str | None = None, viewport=(1280, 800)):
    """A new page on the Live tab, with the requests it makes and the errors it raises recorded."""
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    page.requests, page.errors = [], []
    page.on("request", lambda r: page.requests.append(r.url))
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    if init_script:
        page.add_init_script(init_script)
    page.goto(base + "/index.html?tab=live")
    page.evaluate("deepEmotion.ready")
    page.wait_for_selector("#live-start", state="visible")
    return page


# the camera stream the panel reads, kept aside; then: is it released (no picture shown, every track ended)?
KEEP_STREAM = "globalThis.__stream = document.getElementById('live-video').srcObject"
STREAM_ENDED = """document.getElementById('live-video').srcObject === null && __stream !== null
                  && __stream.getTracks().every(t => t.readyState === 'ended')"""


def stats(page) -> dict:
    return page.evaluate("({...globalThis.deepEmotionLive})")


def wait_for(page, expression: str, timeout: float = 60.0) -> None:
    page.wait_for_function(expression, timeout=timeout * 1000, polling=100)


def test_live_camera_follows_the_face_and_refreshes_its_map(site, browser):
    base = site[0]
    page = open_live(browser, base)
    page.click("#live-start")
    # a face followed with an id and its top class, and the map drawn twice
    wait_for(page, "deepEmotionLive.faces.length > 0 && deepEmotionLive.faces[0].label && deepEmotionLive.maps >= 2")
    s = stats(page)
    face = s["faces"][0]
    assert face["id"] >= 1 and face["label"] in page.evaluate("deepEmotion.runtime.index.models[0].classes")
    assert 0 < face["probability"] <= 1
    x0, y0, x1, y1 = face["box"]
    assert 160 < (x0 + x1) / 2 < 480 and 40 < (y0 + y1) / 2 < 300 and 40 < x1 - x0 < 200  # the astronaut's face
    assert page.evaluate("document.getElementById('live-panel').dataset.state") == "running"
    assert int(page.get_attribute("#live-panel", "data-frames")) >= s["frames"] > 0
    assert page.is_visible("#live-map") and "drop" in page.inner_text("#live-map-caption")
    assert page.is_visible("#live-map-figure figure.bar")
    ids = set()
    for _ in range(10):  # the same face keeps its number while it sways (a new one only after a long stall)
        page.wait_for_timeout(150)
        ids.update(f["id"] for f in stats(page)["faces"])
    later = stats(page)
    assert later["frames"] > s["frames"] and later["fps"] > 0 and later["mapRate"] > 0
    assert float(page.inner_text("#live-fps")) > 0 and float(page.inner_text("#live-map-rate")) > 0
    assert len(ids) <= 2 and max(ids) <= face["id"] + 1, ids
    # the model picker lists the chosen models and switching model goes on reading
    names = page.eval_on_selector_all("#live-model option", "o => o.map(x => x.value)")
    assert names == page.evaluate("deepEmotion.runtime.index.default_models")
    page.select_option("#live-model", names[-1])
    n = stats(page)["maps"]
    wait_for(page, f"deepEmotionLive.maps > {n} + 1 && deepEmotionLive.faces.length > 0")
    classes = page.evaluate(f"deepEmotion.runtime.index.models.find(m => m.name === {names[-1]!r}).classes")
    assert stats(page)["faces"][0]["label"] in classes
    # Stop releases the camera
    page.evaluate(KEEP_STREAM)
    page.click("#live-stop")
    assert page.evaluate(STREAM_ENDED)
    assert stats(page)["state"] == "off"
    frames = stats(page)["frames"]
    page.wait_for_timeout(500)
    assert stats(page)["frames"] <= frames + 1  # at most the frame being read when Stop was pressed
    host = base.split("//")[1]
    assert all(u.split("//")[1].startswith(host) for u in page.requests if "//" in u), page.requests
    assert not page.errors
    page.close()


def test_live_camera_pauses_when_hidden_and_resumes(site, browser):
    # the page's visibility, controlled from the test
    hide = """Object.defineProperty(document, 'visibilityState', {configurable: true,
              get: () => globalThis.__hidden ? 'hidden' : 'visible'});"""
    page = open_live(browser, site[0], hide)
    page.click("#live-start")
    wait_for(page, "deepEmotionLive.frames >= 2")
    # another tab of the page shown: paused, camera released
    page.evaluate(KEEP_STREAM)
    page.click("#tab-photo")
    wait_for(page, "deepEmotionLive.state === 'paused'", 10)
    assert page.evaluate(STREAM_ENDED)
    page.click("#tab-live")
    assert "Paused" in page.inner_text("#live-message") or stats(page)["state"] != "paused"
    n = stats(page)["frames"]
    wait_for(page, f"deepEmotionLive.state === 'running' && deepEmotionLive.frames >= {n} + 2", 30)
    # the whole page hidden (another browser tab, the phone's screen off): paused; shown again: resumed
    page.evaluate("globalThis.__hidden = true; document.dispatchEvent(new Event('visibilitychange'))")
    wait_for(page, "deepEmotionLive.state === 'paused'", 10)
    assert "Paused" in page.inner_text("#live-message")
    n = stats(page)["frames"]
    time.sleep(0.5)
    assert stats(page)["frames"] <= n + 1
    page.evaluate("globalThis.__hidden = false; document.dispatchEvent(new Event('visibilitychange'))")
    n = stats(page)["frames"]
    wait_for(page, f"deepEmotionLive.state === 'running' && deepEmotionLive.frames >= {n} + 2", 30)
    assert not page.errors
    page.close()


@pytest.mark.parametrize(
    ("error", "words"),
    [("NotAllowedError", "Allow"), ("NotFoundError", "No camera"), ("NotReadableError", "another app")],
)
def test_camera_refused_missing_or_busy_is_explained(site, browser, error, words):
    refuse = f"""navigator.mediaDevices.getUserMedia = () =>
                 Promise.reject(new DOMException("refused in a test", "{error}"));"""
    page = open_live(browser, site[0], refuse)
    page.click("#live-start")
    page.wait_for_selector("#live-error", state="visible")
    assert words in page.inner_text("#live-error")
    assert stats(page)["state"] == "off" and page.is_enabled("#live-start")
    assert not page.errors
    page.close()


def test_no_camera_access_at_all_is_explained(site, browser):
    page = open_live(browser, site[0], "Object.defineProperty(navigator, 'mediaDevices', {get: () => undefined});")
    page.click("#live-start")
    page.wait_for_selector("#live-error", state="visible")
    assert "does not give pages access to a camera" in page.inner_text("#live-error")
    assert not page.errors
    page.close()
