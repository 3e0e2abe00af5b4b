"""A real browser: start the Streamlit app, upload a photo in headless Chromium, wait for the predictions.

Chromium is Debian's package (installed by `make test` when missing); Playwright only drives it.
Screenshots are saved in artifacts/; with DEEP_EMOTION_SCREENSHOT set to a path, the desktop view of the example
photo is saved there as well (the README's picture: `DEEP_EMOTION_SCREENSHOT=docs/app.png pytest
tests/test_browser.py -k example`).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from deep_emotion.models.card import default_models, list_checkpoints, read_card, resolve

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server():
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "webapp" / "app.py"),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("the Streamlit server did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_upload_in_browser_shows_predictions(server, astronaut_path):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (make test installs Debian's package when run as root)")
    from playwright.sync_api import sync_playwright

    artifacts = ROOT / "artifacts"
    artifacts.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1400})
        try:
            page.goto(server, timeout=60_000)
            # at once, while the page's first run may still go on: such a click once left every control empty
            page.get_by_text("Upload", exact=True).click(timeout=60_000)
            page.locator("input[type=file]").set_input_files(str(astronaut_path), timeout=60_000)
            page.get_by_text("astronaut.png: ").first.wait_for(timeout=240_000)
            assert page.get_by_text("choose at least one model").count() == 0
            page.get_by_text("All models agree").or_(page.get_by_text("The models disagree")).wait_for(timeout=240_000)
            names = list_checkpoints()
            for name in default_models({n: read_card(resolve(n)) for n in names}):  # the app's first choice
                page.get_by_role("heading", name=name, exact=True).wait_for(timeout=30_000)
            assert page.get_by_text("1 face(s)").count() >= 1
            # every picture (photo, crops, STN views, maps) has arrived and decoded
            page.wait_for_function(
                "() => [...document.images].length >= 5 && [...document.images].every("
                "i => i.complete && i.naturalWidth > 0)",
                timeout=60_000,
            )
        finally:
            page.screenshot(path=str(artifacts / "browser.png"), full_page=True)
            browser.close()
    assert (artifacts / "browser.png").stat().st_size > 10_000


def test_example_at_desktop_size(server):
    """The page as a visitor first sees it at 1280x800: the example photo with its box, the models' agreement,
    their predictions and the first map; saved to artifacts/example-1280x800.png and to $DEEP_EMOTION_SCREENSHOT."""
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (make test installs Debian's package when run as root)")
    from playwright.sync_api import sync_playwright

    artifacts = ROOT / "artifacts"
    artifacts.mkdir(exist_ok=True)
    shot = artifacts / "example-1280x800.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        try:
            page.goto(server, timeout=60_000)
            page.get_by_text("astronaut.jpg: face 1 of 1 explained").wait_for(timeout=240_000)
            page.get_by_text("All models agree").or_(page.get_by_text("The models disagree")).wait_for(timeout=60_000)
            page.wait_for_function("() => !document.querySelector('[data-testid=stProgress]')", timeout=240_000)
            page.wait_for_function(
                "() => [...document.images].length >= 3 && [...document.images].every("
                "i => i.complete && i.naturalWidth > 0)",
                timeout=60_000,
            )
            page.wait_for_function(
                "() => document.querySelectorAll('[data-testid=stVegaLiteChart] canvas, "
                "[data-testid=stVegaLiteChart] svg').length >= 2",
                timeout=60_000,
            )
            page.wait_for_timeout(1000)  # the charts' entry animation
            assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    wanted = os.environ.get("DEEP_EMOTION_SCREENSHOT")
    if wanted:
        target = Path(wanted) if Path(wanted).is_absolute() else ROOT / wanted
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)


@pytest.mark.parametrize("viewport", [(1280, 800), (390, 844)], ids=["desktop", "phone"])
def test_what_a_user_sees(server, astronaut_path, tmp_path, viewport):
    """A group photo at desktop and phone sizes: progress while it works, maps large enough to read, no
    horizontal overflow, every picture loaded, and the URL following a slider. Screenshots in artifacts/."""
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (make test installs Debian's package when run as root)")
    from PIL import Image
    from playwright.sync_api import sync_playwright

    group = Image.new("RGB", (1200, 500), (90, 110, 130))
    for i, side in enumerate((380, 300, 240)):
        group.paste(Image.open(astronaut_path).convert("RGB").resize((side, side)), (20 + i * 400, 40))
    width, height = viewport
    group.putpixel((0, 0), (width % 256, 0, 0))  # one photo per size: nothing comes from the server's caches
    photo = tmp_path / "group.jpg"
    group.save(photo)
    artifacts = ROOT / "artifacts"
    artifacts.mkdir(exist_ok=True)
    four = "fer2013,ferplus,ckplus,jaffe"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        try:
            page.goto(f"{server}/?models={four}&methods=occlusion-flip,regions,stn", timeout=60_000)
            page.get_by_text("astronaut.jpg: ").first.wait_for(timeout=240_000)  # the example, analysed
            page.get_by_text("Upload", exact=True).click(timeout=60_000)  # in the main column, at every width
            page.locator("input[type=file]").set_input_files(str(photo), timeout=60_000)
            # feedback while it works: a spinner or a progress bar naming the step (on a quiet machine the
            # analysis may end, in about a second, before the browser draws either: then the result is there)
            page.get_by_text("Finding faces…").or_(page.get_by_text("Explaining face")).or_(
                page.get_by_text("group.jpg: 3 face(s)")
            ).first.wait_for(timeout=60_000)
            page.get_by_text("group.jpg: 3 face(s)").wait_for(timeout=240_000)
            page.get_by_text("All models agree").or_(page.get_by_text("The models disagree")).first.wait_for(
                timeout=240_000
            )
            page.wait_for_function("() => !document.querySelector('[data-testid=stProgress]')", timeout=240_000)
            if width < 600:
                close = page.locator('[data-testid="stSidebarCollapseButton"] button')
                if close.count():
                    close.first.click()
                    page.wait_for_timeout(800)  # the sidebar slides away before the screenshot below
            page.wait_for_function(
                "() => [...document.images].length >= 5 && [...document.images].every("
                "i => i.complete && i.naturalWidth > 0)",
                timeout=60_000,
            )
            assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
            shown = (
                "() => [...document.querySelectorAll('.st-key-maps img')]"
                ".filter(i => i.complete && i.naturalWidth > 0).map(i => i.getBoundingClientRect().width)"
                ".filter(w => w > 0)"
            )
            try:  # the maps arrive one model at a time: on a busy machine the last may still be on its way
                page.wait_for_function(f"() => ({shown})().length >= 4", timeout=60_000)
            except Exception:
                pass  # the assertion below says how many came
            maps = page.evaluate(shown)
            assert len(maps) == 4  # the map shown: one per model
            assert min(maps) >= (192 if width >= 1280 else 300), maps
            assert page.get_by_text("Every face, every chosen model").count() == 1
            page.screenshot(path=str(artifacts / f"app-{width}x{height}.png"), full_page=True)
            # the URL follows the controls: move the window slider with the keyboard
            if width >= 1280:
                slider = page.get_by_role("slider").first
                slider.focus()
                slider.press("ArrowRight")
                page.wait_for_function("() => location.search.includes('window=9')", timeout=60_000)
                # another face: the results (a fragment) are redrawn for it
                page.get_by_text("group.jpg: face 1 of 3 explained").wait_for(timeout=240_000)
                page.locator("[data-testid=stSelectbox]").filter(has=page.get_by_text("Face", exact=True)).first.click()
                page.get_by_role("option").filter(has_text="face 2:").first.click(timeout=30_000)
                page.get_by_text("group.jpg: face 2 of 3 explained").wait_for(timeout=240_000)
                # a row of the summary table chooses its face as well (its marker, in the table's first column)
                grid = page.locator("[data-testid=stDataFrame]").first
                grid.scroll_into_view_if_needed()
                box = grid.bounding_box()
                page.mouse.click(box["x"] + 12, box["y"] + 35 * 3 + 17)  # under the header, the third row
                page.get_by_text("group.jpg: face 3 of 3 explained").wait_for(timeout=240_000)
        finally:
            page.screenshot(path=str(artifacts / f"app-{width}x{height}-last.png"))
            browser.close()


def test_seven_models_fit_at_desktop_size(server):
    """Every bundled model at 1280x800: each probability card's heading on one line (no "fer2013-w|ide") and each
    probability chart at least 140 px wide; saved to artifacts/seven-models-1280x800.png."""
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (make test installs Debian's package when run as root)")
    from playwright.sync_api import sync_playwright

    names = list_checkpoints()
    artifacts = ROOT / "artifacts"
    artifacts.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        try:
            page.goto(f"{server}/?models={','.join(names)}&methods=occlusion-flip", timeout=60_000)
            page.get_by_text("astronaut.jpg: face 1 of 1 explained").wait_for(timeout=300_000)
            page.wait_for_function(
                f"() => document.querySelectorAll('[data-testid=stVegaLiteChart]').length >= {len(names) + 1}",
                timeout=60_000,
            )
            page.wait_for_timeout(1000)  # the charts' entry animation
            # each heading's text: its lines counted as the distinct tops of its boxes
            headings = page.evaluate(
                """() => [...document.querySelectorAll('[data-testid=stHeading] h3')].map(h => {
                    const range = document.createRange();
                    range.selectNodeContents(h);
                    const tops = new Set([...range.getClientRects()].filter(r => r.width > 0)
                        .map(r => Math.round(r.top)));
                    return [h.textContent, tops.size] })"""
            )
            assert sorted(t.replace("\u2011", "-") for t, _ in headings) == sorted(names + ["consensus"])
            assert all(lines == 1 for _, lines in headings), headings
            widths = page.evaluate(
                "() => [...document.querySelectorAll('[data-testid=stVegaLiteChart]')]"
                ".map(c => c.getBoundingClientRect().width)"
            )
            assert len(widths) == len(names) + 1 and min(widths) >= 140, widths
            assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
        finally:
            page.screenshot(path=str(artifacts / "seven-models-1280x800.png"), full_page=True)
            browser.close()


def group_of_24(astronaut_path: Path, path: Path) -> Path:
    """The public-domain astronaut's face tiled 24 times at sizes from 100 to 190 px on a 2000x1550 photo."""
    from PIL import Image

    face = Image.open(astronaut_path).convert("RGB").crop((150, 30, 300, 210))  # 150x180 around the face
    photo = Image.new("RGB", (2000, 1550), (96, 112, 128))
    for k in range(24):
        row, col = divmod(k, 6)
        side = 100 + 15 * ((k * 7) % 7)
        tile = face.resize((side, round(side * 1.2)))
        photo.paste(tile, (40 + col * 325 + (k % 3) * 20, 40 + row * 375 + (k % 2) * 30))
    photo.save(path, quality=92)
    return path


@pytest.mark.parametrize("viewport", [(1280, 800), (390, 844)], ids=["desktop", "phone"])
def test_a_group_of_24_faces(server, astronaut_path, tmp_path, viewport):
    """24 faces: a numbered thumbnail per face (at least 20 found), the upload in the main area at either size,
    nothing overflowing sideways; saved to artifacts/group24-<size>.png."""
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (make test installs Debian's package when run as root)")
    from playwright.sync_api import sync_playwright

    width, height = viewport
    photo = group_of_24(astronaut_path, tmp_path / f"group24-{width}.jpg")
    artifacts = ROOT / "artifacts"
    artifacts.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        try:
            page.goto(f"{server}/?methods=gradcam", timeout=60_000)
            page.get_by_text("astronaut.jpg: ").first.wait_for(timeout=240_000)
            page.get_by_text("Upload", exact=True).click(timeout=60_000)
            upload = page.locator("input[type=file]").first
            # the upload control in the main area, not only behind the sidebar's button
            page.locator('[data-testid="stFileUploader"]').first.wait_for(state="visible", timeout=60_000)
            assert page.locator('[data-testid="stSidebar"] [data-testid="stFileUploader"]').count() == 0
            upload.set_input_files(str(photo), timeout=60_000)
            page.get_by_text(f"{photo.name}: face 1 of").wait_for(timeout=300_000)
            numbers = page.get_by_text(re.compile(r"^(▶ )?\d+ · [a-z]+$"))
            found = numbers.count()
            assert found >= 20, found
            assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
        finally:
            page.screenshot(path=str(artifacts / f"group24-{width}x{height}.png"), full_page=True)
            browser.close()


def test_video_upload_and_live_webcam(server, astronaut_path, tmp_path):
    """A generated clip uploaded: a timeline per face, the picked frame's maps. Then Live with Chromium's fake
    camera playing a generated clip of the astronaut: boxes and the map drawn on the stream (a video element)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (make test installs Debian's package when run as root)")
    import av
    from PIL import Image
    from playwright.sync_api import sync_playwright

    from deep_emotion.video.clips import write_clip

    head = Image.open(astronaut_path).convert("RGB").resize((200, 200))
    frames = []
    for k in range(20):
        frame = Image.new("RGB", (320, 240), (100, 100, 100))
        frame.paste(head, (10 + 4 * k, 20))
        frames.append(frame)
    clip = write_clip(tmp_path / "pan.webm", frames, fps=10)
    camera = tmp_path / "camera.y4m"  # Chromium's fake camera reads raw YUV4MPEG
    with av.open(str(camera), "w", format="yuv4mpegpipe") as out:
        stream = out.add_stream("rawvideo", rate=10)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_image(frame)):
                out.mux(packet)
    artifacts = ROOT / "artifacts"
    artifacts.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=CHROMIUM_FLAGS
            + [
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={camera}",
            ],
        )
        page = browser.new_context(viewport={"width": 1280, "height": 900}, permissions=["camera"]).new_page()
        try:
            page.goto(f"{server}/?models=fer2013&methods=occlusion-flip", timeout=60_000)
            page.get_by_text("astronaut.jpg: ").first.wait_for(timeout=240_000)
            page.get_by_text("Video", exact=True).click(timeout=60_000)
            page.get_by_text("Upload a clip", exact=True).click(timeout=60_000)
            page.locator("input[type=file]").set_input_files(str(clip), timeout=60_000)
            page.get_by_text("pan.webm: 320x240").wait_for(timeout=240_000)
            page.get_by_text("pan.webm at 0.00 s: face 1 of 1 explained").wait_for(timeout=240_000)
            assert page.get_by_text("face 1", exact=True).count() >= 1  # the timeline's title
            assert page.locator("[data-testid=stVegaLiteChart]").count() == 2  # the timeline, the probabilities
            page.wait_for_function(
                "() => [...document.querySelectorAll('.st-key-maps img')].length == 1 && "
                "[...document.images].every(i => i.complete && i.naturalWidth > 0)",
                timeout=60_000,
            )
            page.screenshot(path=str(artifacts / "video-1280x900.png"), full_page=True)
            page.get_by_text("Live", exact=True).click(timeout=60_000)
            page.frame_locator("iframe").first.get_by_text("START").click(timeout=120_000)
            page.wait_for_function(  # the stream comes back from the server, with the boxes drawn on it
                "() => [...document.querySelectorAll('iframe')].some(f => { try { return [...f.contentDocument"
                ".querySelectorAll('video')].some(v => v.readyState >= 2 && v.videoWidth == 320) } catch (e) "
                "{ return false } })",
                timeout=120_000,
            )
            # the frames coming back were drawn on by the server: the boxes' green shows in them (not in the clip)
            green = """() => { for (const f of document.querySelectorAll('iframe')) {
                let doc; try { doc = f.contentDocument }
                catch (e) { continue } for (const v of doc ? doc.querySelectorAll('video') : []) {
                if (v.readyState < 2 || !v.videoWidth) continue; const c = document.createElement('canvas');
                c.width = v.videoWidth; c.height = v.videoHeight; const x = c.getContext('2d'); x.drawImage(v, 0, 0);
                const d = x.getImageData(0, 0, c.width, c.height).data; let n = 0;
                for (let i = 0; i < d.length; i += 4)
                  if (d[i] < 70 && d[i + 1] > 170 && d[i + 2] > 70 && d[i + 2] < 170) n++;
                if (n > 30) return true } } return false }"""
            page.wait_for_function(green, timeout=120_000)
            page.screenshot(path=str(artifacts / "live-1280x900.png"))
        finally:
            browser.close()


def test_two_visitors_at_once_without_a_browser(server, tmp_path):
    """Streamlit's own protocol (benchmarks/load.py's client, which the load figures rest on): two sessions
    upload two photos each at the same moment; every upload ends on its own photo's finished page."""
    import importlib.util
    import threading

    spec = importlib.util.spec_from_file_location("load_benchmark", ROOT / "benchmarks" / "load.py")
    load = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(load)
    latencies: list[float] = []
    errors: list[str] = []
    ready = threading.Barrier(2)
    visitors = [
        threading.Thread(
            target=load.guarded,
            daemon=True,
            args=(load.protocol_session, server + "/", load.photos(s, 2, tmp_path), latencies, errors, ready),
        )
        for s in range(2)
    ]
    for v in visitors:
        v.start()
    end = time.monotonic() + 300
    for v in visitors:
        v.join(timeout=max(1.0, end - time.monotonic()))
    assert not any(v.is_alive() for v in visitors), f"a visitor did not finish in 300 s; errors so far: {errors}"
    assert errors == []
    assert len(latencies) == 4 and all(t > 0 for t in latencies), (latencies, errors)
