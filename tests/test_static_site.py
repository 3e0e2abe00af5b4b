"""The static Space (web/, built by web/build.py): ONNX graphs against PyTorch, and the page in headless
Chromium against the Python pipeline — MTCNN boxes, crops, probabilities and occlusion maps — with no request
to any other host, and bad input answered with a message."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "web"))

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is installed by `make install-test`")
pytest.importorskip("onnxscript", reason="onnxscript (the ONNX exporter's) is installed by `make install-test`")

from deep_emotion.faces.detect import iou as _iou  # noqa: E402
from deep_emotion.models.card import list_checkpoints  # noqa: E402
from deep_emotion.models.checkpoints import load_checkpoint  # noqa: E402
from deep_emotion.serve.onnx_export import mtcnn_networks  # noqa: E402


def test_every_model_exports_with_the_outputs_pytorch_gives(onnx_dir):
    x = torch.rand(5, 1, 48, 48, generator=torch.Generator().manual_seed(0))
    listed = {m["name"]: m for m in __import__("json").loads((onnx_dir / "models.json").read_text())["models"]}
    names = list(listed)
    assert sorted(names) == sorted(list_checkpoints())
    for name in names:
        model, card = load_checkpoint(name, posthoc=True)
        # the page shows canonical class names ("happy", not FERPlus's "happiness") in the network's order
        assert listed[name]["classes"] == list(card.classes) and listed[name]["labels"] == list(card.labels), name
        with torch.no_grad():
            p = model(x).softmax(-1)
            view, theta = model.stn_view(x)
        got = ort.InferenceSession(str(onnx_dir / f"{name}.onnx")).run(None, {"face": x.numpy()})
        assert np.abs(got[0] - p.numpy()).max() < 1e-5, name
        assert np.abs(got[1] - theta.numpy()).max() < 1e-5, name
        assert np.abs(got[2] - view.numpy()).max() < 1e-4, name


def test_the_paper_models_parts_give_the_whole_graphs_answers(onnx_dir):
    """The page's occlusion maps run a paper model as three graphs (the STN's first stage, its second, then the
    rest): their composition equals the whole graph, and a stage computed from a crop (of the face, or of the first
    stage's output) equals that part of the whole face's."""
    import json

    listed = json.loads((onnx_dir / "models.json").read_text())["models"]
    with_parts = [m for m in listed if m["incremental"]]
    assert with_parts and all(m["architecture"] and "wide" not in m["name"] for m in with_parts)
    x = np.random.default_rng(0).random((6, 1, 48, 48), dtype=np.float32)
    for m in with_parts:
        inc = m["incremental"]
        whole = ort.InferenceSession(str(onnx_dir / m["file"])).run(None, {"face": x})[0]
        stage1 = ort.InferenceSession(str(onnx_dir / inc["stage1"]))
        stage2 = ort.InferenceSession(str(onnx_dir / inc["stage2"]))
        h = stage1.run(None, {"face": x})[0]
        assert h.shape == (6, inc["channels"], 21, 21), m["name"]
        g = stage2.run(None, {"stage1": h})[0]
        assert g.shape == (6, inc["channels2"], 8, 8), m["name"]
        feeds = {"face": x, "stage2": g}
        if inc["mirrored"]:
            mirrored = stage1.run(None, {"face": x[..., ::-1].copy()})[0]
            feeds["stage2_mirrored"] = stage2.run(None, {"stage1": mirrored})[0]
        rest = ort.InferenceSession(str(onnx_dir / inc["rest"])).run(None, feeds)[0]
        assert np.abs(rest - whole).max() < 1e-6, m["name"]
        crop = stage1.run(None, {"face": x[:, :, 4:26, 6:28].copy()})[0]  # rows 4.., columns 6.. of the face
        assert np.abs(crop - h[:, :, 2:10, 3:11]).max() < 1e-6, m["name"]
        region = stage2.run(None, {"stage1": h[:, :, 4:20, 2:18].copy()})[0]  # stage-1 rows 4.., columns 2..
        assert np.abs(region - g[:, :, 2:8, 1:7]).max() < 1e-6, m["name"]


def test_mtcnn_networks_export_with_dynamic_sizes(onnx_dir):
    nets = mtcnn_networks()
    g = torch.Generator().manual_seed(1)
    for name, shapes in (
        ("pnet", [(1, 3, 37, 53), (2, 3, 120, 90)]),
        ("rnet", [(7, 3, 24, 24)]),
        ("onet", [(3, 3, 48, 48)]),
    ):
        session = ort.InferenceSession(str(onnx_dir / f"{name}.onnx"))
        for shape in shapes:
            x = torch.rand(*shape, generator=g) * 255
            with torch.no_grad():
                ref = nets[name]((x - 127.5) * 0.0078125)
            for a, b in zip(session.run(None, {"image": x.numpy()}), ref):
                assert a.shape == tuple(b.shape) and np.abs(a - b.numpy()).max() < 1e-4, (name, shape)


# --- the page in Chromium ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")  # one Playwright at a time: every static-page module opens its own
def page(site, chromium_path):
    from playwright import sync_api

    executable = chromium_path
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        pg = browser.new_page(viewport={"width": 1280, "height": 800})
        requests: list[str] = []
        errors: list[str] = []
        pg.on("request", lambda r: requests.append(r.url))
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(site[0] + "/index.html")
        pg.evaluate("deepEmotion.ready")
        pg.requests, pg.errors = requests, errors
        yield pg
        browser.close()


def _photos() -> dict[str, Image.Image]:
    from skimage import data

    astronaut = Image.fromarray(data.astronaut())
    head = astronaut.crop((140, 20, 360, 280))
    group = Image.new("RGB", (900, 420), (90, 110, 130))
    for i, scale in enumerate((1.0, 0.8, 0.6)):
        h = head.resize((int(head.width * scale), int(head.height * scale)))
        group.paste(h, (20 + 300 * i, 60))
    tilted = astronaut.rotate(20, Image.Resampling.BILINEAR, fillcolor=(128, 128, 128))
    return {
        "astronaut": astronaut,
        "group": group,
        "tilted": tilted,
        "tight": head.crop((30, 40, 190, 220)),
        "dark": Image.eval(astronaut, lambda v: int(v * 0.35)),
    }


def _rgba(im: Image.Image) -> list[int]:
    return np.asarray(im.convert("RGBA"), dtype=np.uint8).ravel().tolist()


def test_js_mtcnn_finds_the_boxes_facenet_pytorch_finds(page):
    from deep_emotion.faces.detect import _mtcnn, detect_faces

    for name, im in _photos().items():
        boxes, _ = _mtcnn().detect(im)
        py = [] if boxes is None else list(boxes)
        js = page.evaluate("([d, w, h]) => deepEmotion.mtcnn(d, w, h)", [_rgba(im), im.width, im.height])
        assert len(js) == len(py), name
        for b in py:  # every facenet-pytorch box has its twin
            assert max(_iou(b, f["box"]) for f in js) >= 0.9, name
        # the whole pipeline (thresholds, retries, largest first), as the app frames faces
        ours = detect_faces(im)
        theirs = page.evaluate("([d, w, h]) => deepEmotion.detect(d, w, h)", [_rgba(im), im.width, im.height])
        assert len(theirs) == len(ours) > 0, name
        for a, b in zip(ours, theirs):
            assert _iou(a.box, b["box"]) >= 0.9, name
            crop = np.array(
                page.evaluate(
                    "([d, w, h, b, m]) => deepEmotion.cropFace(d, w, h, b, m)",
                    [_rgba(im), im.width, im.height, list(a.box), a.landmarks.tolist()],
                ),
                dtype=np.int16,
            ).reshape(48, 48)
            # PIL's resize, re-implemented; a face turned upright (align) is sampled bilinearly, not as PIL does
            assert np.abs(crop - a.crop.astype(np.int16)).mean() < (3.0 if a.angle else 1.5), (name, a.angle)


def test_js_probabilities_and_maps_match_python_on_the_same_crop(page):
    from deep_emotion.faces.detect import detect_faces
    from deep_emotion.pipeline import Pipeline
    from deep_emotion.results import AnalysisOptions

    face = detect_faces(_photos()["astronaut"])[0]
    for name in ("fer2013", "ferplus-wide", "ckplus"):
        if name not in list_checkpoints():
            continue
        loaded = load_checkpoint(name, posthoc=True)
        pipe = Pipeline({name: loaded})
        for window, stride in ((8, 2), (12, 5)):
            view = (
                pipe.analyze(
                    None,
                    options=AnalysisOptions(methods=("occlusion-flip", "occlusion-drop"), window=window, stride=stride),
                    faces=[face],
                )
                .faces[0]
                .views[name]
            )
            js = page.evaluate(
                "([c, n, w, s]) => deepEmotion.analyzeCrop(c, n, w, s)",
                [face.crop.ravel().tolist(), name, window, stride],
            )
            p = np.array([view.probabilities[c] for c in loaded.card.classes])  # the network's output order
            assert np.abs(np.array(js["probabilities"]) - p).max() <= 1e-3, name
            assert np.abs(np.array(js["theta"]).reshape(2, 3) - view.theta).max() <= 1e-3, name
            assert np.abs(np.array(js["view"]).reshape(48, 48) - view.stn_view).max() <= 1e-2, name
            for js_key, method in (("flip", "occlusion-flip"), ("drop", "occlusion-drop")):
                diff = np.abs(np.array(js[js_key]).reshape(48, 48) - view.maps[method].values).max()
                assert diff <= 1e-2, (name, method, window, stride, diff)


def _wait_done(page, timeout: int = 180_000) -> None:
    """Until the page says it explained the face, or shows an error (then fail with it)."""
    page.wait_for_function(
        "document.getElementById('status').textContent.includes('explained by') || "
        "!document.getElementById('error').hidden",
        timeout=timeout,
    )
    assert page.locator("#error").is_hidden(), page.inner_text("#error")


def test_the_page_explains_the_example_without_leaving_its_host(page, site):
    page.requests.clear()
    page.click("#example")
    _wait_done(page)
    assert page.locator("#cards article").count() >= 1
    assert "happy" in page.inner_text("#cards")
    host = site[0].split("/")[2]
    assert page.requests and all(u.split("/")[2] == host for u in page.requests if u.startswith("http")), page.requests
    assert "stay in your browser" in page.inner_text("header")
    # a slider change recomputes the maps with the new window
    page.evaluate(
        "() => { const w = document.getElementById('window'); w.value = '12'; w.dispatchEvent(new Event('change')); }"
    )
    _wait_done(page)
    assert "window 12" in page.inner_text("#cards")
    # the facial regions (computed with the maps) are one choice away; every card ranks its maps by faithfulness
    page.select_option("#map", "regions")
    page.wait_for_function("document.getElementById('cards').textContent.includes('Facial regions blurred')")
    assert "Blurring the mouth lowers happy" in page.inner_text("#cards")
    page.wait_for_function("document.getElementById('status').textContent.includes('maps ranked')", timeout=180_000)
    faithful = page.locator("#cards .faithful").all_inner_texts()
    assert len(faithful) == page.locator("#cards article").count() and all("random map" in t for t in faithful)
    assert not page.errors


@pytest.mark.parametrize("what", ["not-an-image", "huge", "no-face"])
def test_bad_input_gets_a_message(page, tmp_path, what):
    if what == "not-an-image":
        path, expect = tmp_path / "notes.jpg", "not a readable image"
        path.write_bytes(b"this is text, not a picture" * 10)
    elif what == "huge":  # a PNG header that declares 20000 x 20000 pixels: refused before decoding
        path, expect = tmp_path / "huge.png", "megapixels"
        import struct
        import zlib

        ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
        path.write_bytes(
            b"\x89PNG\r\n\x1a\n"
            + struct.pack(">I", 13)
            + b"IHDR"
            + ihdr
            + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
        )
    else:
        from skimage import data

        path, expect = tmp_path / "coffee.png", "No face was found"
        Image.fromarray(data.coffee()).save(path)
    page.set_input_files("#file", str(path))
    page.wait_for_function("!document.getElementById('error').hidden", timeout=60_000)
    assert expect in page.inner_text("#error")
    assert not page.errors


def test_a_group_photo_gets_a_gallery_and_a_comparison_grid(page, tmp_path):
    path = tmp_path / "group.png"
    _photos()["group"].save(path)
    page.set_input_files("#file", str(path))
    _wait_done(page)
    thumbs = page.locator("#gallery .thumb")
    assert thumbs.count() == 3
    assert "face 1 of 3" in page.inner_text("#status")
    labels = [thumbs.nth(i).inner_text() for i in range(3)]
    assert all("happy" in t for t in labels), labels  # every copy of the example smiles
    chosen = page.evaluate("deepEmotion.runtime.index.default_models")
    rows = page.locator("table.comparison tbody th").all_inner_texts()
    assert [r for r in rows if r != "together"] == chosen
    # the second face, picked in the gallery, is explained in its turn
    thumbs.nth(1).click()
    page.wait_for_function("document.getElementById('status').textContent.includes('face 2 of 3 explained')")
    assert page.locator("#gallery .thumb.selected").inner_text().startswith("2")
    assert page.locator("#cards article").count() == len(chosen)
    assert not page.errors


def test_the_pages_video_and_live_rules_are_pythons():
    """The page's copies of the video caps and the live reader's settings (plain constants in its modules) say
    what deep_emotion/video says, so that the two answer alike."""
    import re

    from deep_emotion.faces.tracking import MATCH_IOU, MAX_GAP_SECONDS
    from deep_emotion.video import clips, live

    def constants(name: str) -> dict[str, float]:
        text = (ROOT / "web" / "src" / name).read_text()
        found = {}
        for names, values in re.findall(r"^export const ([\w, =]+?) = ([^;]+);", text, flags=re.M):
            found[names] = values
        out = {}
        for k, v in found.items():  # "A = 1" or "A = 1, B = 2" (as one match: "A", "1, B = 2")
            parts = [k.strip(), *re.split(r",\s*(\w+)\s*=\s*", v)]
            for key, value in zip(parts[::2], parts[1::2]):
                out[key] = eval(value.replace("_", ""), {})  # numbers and products only  # noqa: S307
        return out

    video = constants("video-frames.js")
    assert video["MAX_BYTES"] == clips.MAX_BYTES and video["MAX_SECONDS"] == clips.MAX_SECONDS
    assert video["MAX_SIDE"] == clips.MAX_SIDE and video["MAX_FPS"] == clips.MAX_FPS
    assert video["DEFAULT_FPS"] == clips.DEFAULT_FPS and video["DETECT_SIDE"] == clips.DETECT_SIDE
    camera = constants("live.js")
    assert camera["DETECT_SIDE"] == live.LIVE_DETECT_SIDE and camera["HALF_LIFE"] == live.LIVE_HALF_LIFE
    assert (camera["WINDOW"], camera["STRIDE"]) == (live.LIVE_WINDOW, live.LIVE_STRIDE)
    tracking = constants("tracking.js")
    assert tracking["MATCH_IOU"] == MATCH_IOU and tracking["MAX_GAP_SECONDS"] == MAX_GAP_SECONDS
