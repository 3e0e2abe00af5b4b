"""The static Space's video panel (web/src/video.js) in headless Chromium: a clip made here from the public-domain
astronaut photo is read in the page — a timeline per face, a CSV with the Python pipeline's columns and rows, its
top classes and probabilities close to `Pipeline.analyze_clip`'s on the same clip — with no request to any other
host; bad files (not a video, frames over 4K, over 15 min, over 500 MB) are refused with a message; a clip
that does not say its length is read to its end; a run pauses in a background tab and can be cancelled."""

from __future__ import annotations

import csv
import io
import os
from fractions import Fraction
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "webapp" / "examples" / "astronaut.jpg"
FPS = 5  # samples per second asked of both; the clip has 10 frames a second, so both read the same frames


def _encoder() -> str:
    """A VP8 or VP9 encoder of PyAV's (WebM: what Debian's Chromium decodes), or a skip."""
    av = pytest.importorskip("av", reason="PyAV writes the clips")
    for name in ("libvpx", "libvpx-vp9"):
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # noqa: BLE001 - PyAV raises various errors for a missing codec
            continue
    pytest.skip("this PyAV has no VP8/VP9 encoder, so no WebM clip Chromium can read can be made")


def _write_webm(path: Path, frames: list[Image.Image], fps: float = 10, live: bool = False) -> Path:
    """Frames (one size) as a WebM; `live`: written as a live stream is, without its length (as a browser's
    recording is)."""
    import av

    codec = _encoder()
    with av.open(str(path), "w", format="webm", options={"live": "1"} if live else {}) as out:
        stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
        stream.bit_rate = 2_000_000
        for im in frames:
            for packet in stream.encode(av.VideoFrame.from_image(im)):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _scene(k: int) -> Image.Image:
    """Frame k of 30 (3 s at 10 fps, 640x480): the astronaut's head panning right, and a smaller mirrored head
    that leaves after 2 s."""
    head = Image.open(EXAMPLE).convert("RGB").crop((140, 20, 360, 280))
    frame = Image.new("RGB", (640, 480), (118, 108, 98))
    frame.paste(head.resize((176, 208)), (60 + 6 * k, 100))
    if k < 20:
        frame.paste(head.resize((110, 130)).transpose(Image.Transpose.FLIP_LEFT_RIGHT), (470, 300))
    return frame


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    scenes = [_scene(k) for k in range(30)]
    grey = Image.new("RGB", (64, 64), (100, 100, 100))
    out = {
        "faces": _write_webm(folder / "faces.webm", scenes),
        "live": _write_webm(folder / "live.webm", scenes[:15], live=True),
        "wide": _write_webm(folder / "wide.webm", [Image.new("RGB", (3856, 64), (100, 100, 100))] * 2),
        "long": _write_webm(folder / "long.webm", [grey] * 17, fps=Fraction(1, 60)),  # one frame a minute
    }
    (folder / "text.webm").write_text("this is not a video\n" * 20)
    out["text"] = folder / "text.webm"
    with open(folder / "huge.webm", "wb") as f:  # sparse: 501 MB on paper, nothing on disk
        f.truncate(501 * 2**20)
    out["huge"] = folder / "huge.webm"
    return out


@pytest.fixture(scope="module")
def browser(site, chromium_path):
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser, site):
    """The page on its video tab, with every request and page error recorded."""
    pg = browser.new_page(viewport={"width": 1280, "height": 800})
    pg.requests, pg.errors = [], []
    pg.on("request", lambda r: pg.requests.append(r.url))
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.goto(site[0] + "/index.html?tab=video")
    pg.evaluate("deepEmotion.ready")
    pg.wait_for_selector("#video-fps")
    yield pg
    hosts = {urlparse(u).hostname for u in pg.requests if not u.startswith(("blob:", "data:"))}
    assert hosts <= {"127.0.0.1"}, hosts  # nothing left the page
    assert not pg.errors, pg.errors
    pg.close()


def _run(pg, clip: Path, fps: int = FPS, timeout_s: float = 150) -> str:
    pg.fill("#video-fps", str(fps))
    pg.set_input_files("#video-file", str(clip))
    pg.wait_for_function(
        "!['idle', 'running'].includes(document.querySelector('#video-panel').dataset.state)", timeout=timeout_s * 1000
    )
    return pg.eval_on_selector("#video-panel", "e => e.dataset.state")


def _shown(pg, selector: str) -> str:
    return pg.eval_on_selector(selector, "e => e.hidden ? '' : e.textContent")


@pytest.fixture(scope="module")
def python_csv(clips) -> list[dict[str, str]]:
    """The Python pipeline's CSV of the same clip with the page's default models."""
    from deep_emotion.models.checkpoints import load_checkpoint
    from deep_emotion.pipeline import Pipeline

    models = ["fer2013", "ferplus"]
    pipe = Pipeline({m: load_checkpoint(m, posthoc=True) for m in models})
    text = io.StringIO()
    pipe.analyze_clip(clips["faces"], models, fps=FPS).write_csv(text)
    return list(csv.DictReader(io.StringIO(text.getvalue())))


def test_a_clip_gives_a_timeline_per_face_and_the_pythons_csv(page, clips, python_csv):
    assert page.eval_on_selector_all("#models input:checked", "es => es.map(e => e.id)") == [
        "model-fer2013",
        "model-ferplus",
    ]
    assert _run(page, clips["faces"]) == "done", _shown(page, "#video-error")
    faces = sorted({r["face"] for r in python_csv})
    assert len(faces) == 2
    charts = page.eval_on_selector_all(
        ".video-face",
        """es => es.map(e => ({face: e.dataset.face, label: e.querySelector('svg').getAttribute('aria-label'),
            areas: e.querySelectorAll('svg .areas polygon').length, band: [...e.querySelectorAll('svg .top-band rect')]
            .map(r => r.dataset.class), thumb: !!e.querySelector('canvas.video-thumb')}))""",
    )
    assert [c["face"] for c in charts] == faces
    for c in charts:
        assert c["areas"] >= 7 and c["thumb"], c
        assert "mostly happy" in c["label"] and "happy" in c["band"], c  # the example face smiles
    assert "2 faces followed" in page.inner_text("#video-summary")

    with page.expect_download() as download:
        page.click("#video-csv")
    assert download.value.suggested_filename == "faces-emotions.csv"
    ours = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert list(ours[0]) == list(python_csv[0])  # the same columns, in the same order
    assert len(ours) == len(python_csv)  # a row per sampled frame, face and model
    for face in faces:  # face 2 leaves after 2 s: fewer rows
        assert sum(r["face"] == face for r in ours) == sum(r["face"] == face for r in python_csv)
    key = lambda r: (r["time_s"], r["face"], r["model"])  # noqa: E731
    theirs = {key(r): r for r in python_csv}
    assert {key(r) for r in ours} == set(theirs)
    classes = list(python_csv[0])[11:]
    same_top, diffs = 0, []
    for r in ours:
        p = theirs[key(r)]
        same_top += r["top"] == p["top"]
        diffs.append(max(abs(float(r[c] or 0) - float(p[c] or 0)) for c in classes))
        box = np.array([float(r[k]) for k in ("x0", "y0", "x1", "y1")])
        assert np.abs(box - [float(p[k]) for k in ("x0", "y0", "x1", "y1")]).max() < 8, (r, p)
        assert r["detected"] == "True" and float(r["face_probability"]) >= 0.9
    assert same_top >= 0.9 * len(ours)
    assert np.median(diffs) < 0.03 and max(diffs) < 0.25, diffs

    # smoothing and the model shown change the charts and the CSV without reading the clip again
    page.select_option("#video-smooth", "1")
    with page.expect_download() as download:
        page.click("#video-csv")
    smoothed = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert len(smoothed) == len(ours) and smoothed[0]["happy"] == ours[0]["happy"]  # the first frame is itself
    assert any(a["happy"] != b["happy"] for a, b in zip(smoothed, ours))
    page.select_option("#video-model", "ferplus")
    assert page.eval_on_selector_all(".video-legend .video-key", "es => es.length") == 8  # FERPlus's 8 classes

    # a moment picked on a chart: its frame, then that frame explained in the Photo tab like a photo
    page.locator(".video-face svg").first.click(position={"x": 300, "y": 60})
    page.locator("#video-explain-frame").wait_for(state="visible", timeout=30_000)
    page.click("#video-explain-frame")
    page.wait_for_function("document.getElementById('status').textContent.includes('explained by')", timeout=180_000)
    assert page.locator("#photo-panel").is_visible() and page.locator("#video-panel").is_hidden()
    assert page.locator("#gallery .thumb").count() == 2  # both faces of the frame
    assert "happy" in page.inner_text("#cards")
    page.click("#tab-video")


def test_files_that_are_not_videos_or_too_large_are_refused(page, clips):
    for name, words in (
        ("text", "cannot read it as a video"),
        ("wide", "3856x64"),
        ("long", "longer than the 15 min"),
        ("huge", "larger than the 500 MB"),
    ):
        assert _run(page, clips[name]) == "error", name
        assert words in _shown(page, "#video-error"), (name, _shown(page, "#video-error"))
        assert page.eval_on_selector("#video-results", "e => e.hidden")


def test_a_clip_that_does_not_say_its_length_is_read_to_its_end(page, clips):
    assert _run(page, clips["live"]) == "done", _shown(page, "#video-error")
    assert "does not say how long it is" in _shown(page, "#video-note")
    assert "8 frames read" in page.inner_text("#video-summary")  # 1.5 s at 5 a second


def test_a_run_pauses_in_a_background_tab_and_can_be_cancelled(page, clips):
    hide = """h => { Object.defineProperty(document, 'hidden', {configurable: true, get: () => h});
                     document.dispatchEvent(new Event('visibilitychange')); }"""
    page.evaluate(hide, True)  # the tab goes to the background before the run
    page.fill("#video-fps", "30")
    page.set_input_files("#video-file", str(clips["faces"]))
    page.wait_for_function("document.querySelector('#video-status').textContent.includes('Paused')")
    assert page.eval_on_selector("#video-panel", "e => e.dataset.state") == "running"
    page.evaluate(hide, False)
    page.wait_for_function("/frame [1-9]/.test(document.querySelector('#video-status').textContent)")
    assert page.inner_text("#video-go") == "Cancel"
    page.click("#video-go")
    page.wait_for_function("document.querySelector('#video-panel').dataset.state === 'cancelled'", timeout=30000)
    assert "Cancelled after" in page.inner_text("#video-status")
    assert page.inner_text("#video-go") == "Analyse"


if os.environ.get("DEEP_EMOTION_VIDEO_SHOTS"):  # screenshots for a person to look at

    def test_screenshots(browser, site, clips):
        out = Path(os.environ["DEEP_EMOTION_VIDEO_SHOTS"])
        out.mkdir(parents=True, exist_ok=True)
        for w, h in ((1280, 800), (390, 844)):
            pg = browser.new_page(viewport={"width": w, "height": h})
            pg.goto(site[0] + "/index.html?tab=video")
            pg.evaluate("deepEmotion.ready")
            assert _run(pg, clips["faces"]) == "done"
            pg.screenshot(path=str(out / f"video-{w}x{h}.png"), full_page=True)
            pg.close()
