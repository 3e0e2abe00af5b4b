"""The static page's forward-only explanations (web/src/explain.js) in headless Chromium against the Python
library on the same crops: the landmarks in the crop (straight and turned faces), the facial-regions mask, map
and scores, the faithfulness curves, areas, random map and ranking, and the consensus of 7- and 8-class models
with the shipped weights (which models.json now carries)."""

from __future__ import annotations

import json
import re
from functools import cache

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("onnxruntime", reason="onnxruntime is installed by `make install-test`")
pytest.importorskip("onnxscript", reason="onnxscript (the ONNX exporter's) is installed by `make install-test`")

from deep_emotion import describe, explain  # noqa: E402
from deep_emotion.classes import CANONICAL  # noqa: E402
from deep_emotion.explain.regions import region_mask  # noqa: E402
from deep_emotion.models.card import checkpoint_dir, list_checkpoints  # noqa: E402
from deep_emotion.models.checkpoints import load_checkpoint  # noqa: E402
from deep_emotion.models.consensus import ConsensusWeights, combine  # noqa: E402
from deep_emotion.models.inputs import to_tensor  # noqa: E402
from deep_emotion.pipeline import Pipeline  # noqa: E402
from deep_emotion.results import AnalysisOptions  # noqa: E402


@pytest.fixture(scope="module")
def page(site, chromium_path):
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=["--no-sandbox"])
        pg = browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(site[0] + "/index.html")
        pg.evaluate("deepEmotion.ready")
        pg.errors = errors
        yield pg
        assert not errors, errors
        browser.close()


@cache
def _photos() -> dict[str, Image.Image]:
    from skimage import data

    astronaut = Image.fromarray(data.astronaut())
    return {  # the tilted copy's face is turned upright before cropping (framing's align): the turned path
        "astronaut": astronaut,
        "tilted": astronaut.rotate(20, Image.Resampling.BILINEAR, fillcolor=(128, 128, 128)),
    }


@cache
def _face(photo: str):
    from deep_emotion.faces.detect import detect_faces

    return detect_faces(_photos()[photo])[0]


@cache
def _loaded(name: str):
    return load_checkpoint(name, posthoc=True)


def _models(*names: str) -> list[str]:
    shipped = list_checkpoints()
    return [n for n in names if n in shipped]


def _view(name: str, face, methods: tuple[str, ...], faithfulness: bool = False):
    pipe = Pipeline({name: _loaded(name)})
    options = AnalysisOptions(methods=methods, faithfulness=faithfulness)
    return pipe.analyze(None, options=options, faces=[face]).faces[0].views[name]


# --- landmarks and regions -------------------------------------------------------------------------------------


def test_models_json_carries_the_consensus_weights_and_canonical_classes(site):
    index = json.loads((site[1] / "models" / "models.json").read_text())
    shipped = checkpoint_dir() / "consensus.json"
    expected = ConsensusWeights.read(shipped).to_dict() if shipped.is_file() else {"kind": "equal", "weights": {}}
    assert index["consensus"] == expected
    assert index["canonical"] == list(CANONICAL)
    assert {"models", "default_models", "mtcnn", "framing", "colour_maps", "input_size"} <= set(index)


def test_landmarks_in_the_crop_and_region_masks_match_python(page):
    for photo in ("astronaut", "tilted"):
        face, im = _face(photo), _photos()[photo]
        if photo == "tilted":
            assert abs(face.angle) > 1, "the tilted photo should exercise the turned crop"
        js = np.array(
            page.evaluate(
                "([l, b, w, h]) => deepEmotion.landmarksInCrop(l, b, w, h)",
                [face.landmarks.tolist(), [float(v) for v in face.box], im.width, im.height],
            )
        )
        assert np.abs(js - face.crop_landmarks).max() < 1e-6, photo
    shapes = {
        "astronaut": _face("astronaut").crop_landmarks,
        "tilted": _face("tilted").crop_landmarks,
        "turned 90": np.array([[20.0, 14.0], [20.0, 32.0], [28.0, 23.0], [36.0, 16.0], [36.0, 30.0]]),
        "wide eyes": np.array([[8.0, 18.0], [40.0, 19.0], [24.0, 30.0], [14.0, 40.0], [34.0, 40.0]]),
        "none": None,
        "collapsed": np.zeros((5, 2)),
    }
    for what, marks in shapes.items():
        mask, own = region_mask(marks)
        js = page.evaluate("(l) => deepEmotion.regionMask(l)", None if marks is None else marks.tolist())
        same = (np.array(js["mask"]).reshape(48, 48) == mask).mean()
        assert js["own"] == own and same >= 0.995, (what, same)  # pixels on an ellipse's rim may round apart
        assert len(np.unique(mask)) >= 4, what  # a real mask, not a blank one


def test_region_scores_and_map_match_python(page):
    for name in _models("fer2013", "ferplus", "ckplus"):
        classes = list(_loaded(name).card.classes)
        for photo in ("astronaut", "tilted"):
            face = _face(photo)
            view = _view(name, face, ("regions",))
            m = view.maps["regions"]
            js = page.evaluate(
                "([c, n, l]) => deepEmotion.regions(c, n, l)",
                [face.crop.ravel().tolist(), name, face.crop_landmarks.tolist()],
            )
            assert classes[js["target"]] == view.target, (name, photo)
            assert set(js["scores"]) == set(m.regions), (name, photo)
            diff = max(abs(js["scores"][r] - v) for r, v in m.regions.items())
            assert diff <= 1e-3, (name, photo, diff)
            assert np.abs(np.array(js["map"]).reshape(48, 48) - m.values).max() <= 1e-3, (name, photo)
            assert max(abs(v) for v in m.regions.values()) > 1e-3, (name, photo)  # the comparison means something
            py_first, js_first = next(iter(m.regions)), next(iter(js["scores"]))
            ranked = sorted(abs(v) for v in m.regions.values())
            if ranked[-1] - ranked[-2] > 2e-3:  # the region that matters most, unless two are level, in words
                assert js_first == py_first, (name, photo)
                words = re.compile(r"\d+\.\d\d")
                sentence = describe.region_sentence(view)
                assert words.sub("#", js["sentence"]) == words.sub("#", sentence), (js["sentence"], sentence)


# --- faithfulness --------------------------------------------------------------------------------------------


def _ranks(importance: np.ndarray) -> np.ndarray:
    """Python's deletion order as ranks (0 = deleted first): perturbed_images with one pixel per step."""
    ones = torch.ones(1, 1, 48, 48)
    images = explain.perturbed_images(ones, torch.as_tensor(importance), "deletion", steps=48 * 48)
    return (images[:, 0] == 1).sum(0).flatten().numpy() - 1


def test_pixel_order_and_random_map_are_pythons(page):
    face = _face("astronaut")
    js_random = np.array(page.evaluate("deepEmotion.randomMap()"))
    assert np.array_equal(js_random, explain.random_map(48).flatten().numpy())
    regions = _view("fer2013", face, ("regions",)).maps["regions"].values if _models("fer2013") else None
    maps = {
        "smooth": np.linspace(0, 1, 48 * 48, dtype=np.float32)[::-1].reshape(48, 48).copy(),
        "flat": np.zeros((48, 48), np.float32),  # ties everywhere: the order is the seeded jitter's
        "random": explain.random_map(48).numpy(),
        "face": face.crop.astype(np.float32) / 255,  # many ties among grey levels
    }
    if regions is not None:
        maps["regions"] = regions
    for what, values in maps.items():
        js = np.array(page.evaluate("(v) => deepEmotion.pixelRanks(v)", values.ravel().tolist()))
        same = (js == _ranks(values)).mean()
        assert same >= 0.999, (what, same)


def test_faithfulness_curves_areas_and_ranking_match_python(page):
    face = _face("astronaut")
    x = to_tensor(face.crop)
    for name in _models("fer2013", "ferplus-wide"):
        model, card = _loaded(name)
        classes = list(card.classes)
        view = _view(name, face, ("occlusion-drop", "occlusion-flip", "gradcam", "regions"), faithfulness=True)
        target = classes.index(view.target)
        maps = {n: m.values.ravel().tolist() for n, m in view.maps.items()}
        titles = {n: describe.method_title(n) for n in maps}
        js = page.evaluate(
            "([c, n, m, t, ti]) => deepEmotion.faithfulness(c, n, m, t, true, ti)",
            [face.crop.ravel().tolist(), name, maps, target, titles],
        )
        scores, ranking = js["scores"], js["ranking"]
        assert set(scores) == set(view.faithfulness), name
        for n, f in view.faithfulness.items():
            got = scores[n]
            assert abs(got["deletionAuc"] - f["deletion"]) <= 1e-3, (name, n)  # seen: 1e-7
            assert abs(got["insertionAuc"] - f["insertion"]) <= 1e-3, (name, n)
            assert abs(got["score"] - f["difference"]) <= 1e-3, (name, n)
        with torch.no_grad():  # the curves themselves, for the map without ties
            for kind in ("deletion", "insertion"):
                curve, area = explain.perturbation_curve(
                    model, x, torch.from_numpy(view.maps["occlusion-drop"].values), kind, target=target
                )
                assert np.abs(np.array(scores["occlusion-drop"][kind]) - curve.numpy()).max() <= 1e-3, (name, kind)
                assert abs(scores["occlusion-drop"][f"{kind}Auc"] - area) <= 1e-3, (name, kind)
        assert ranking["best"] == view.most_faithful(), name
        py_order = sorted(
            (n for n in view.faithfulness if n != "random"), key=lambda n: -view.faithfulness[n]["difference"]
        )
        gaps = np.diff([view.faithfulness[n]["difference"] for n in py_order])
        if (np.abs(gaps) > 2e-3).all():
            assert ranking["order"] == py_order, name
        number = re.compile(r"[+-]\d+\.\d{3}")
        sentence = describe.most_faithful(view)
        assert number.sub("#", ranking["sentence"]) == number.sub("#", sentence), (ranking["sentence"], sentence)
        for a, b in zip(number.findall(ranking["sentence"]), number.findall(sentence)):
            assert abs(float(a) - float(b)) <= 2e-3, (ranking["sentence"], sentence)


def test_faithfulness_of_one_map_without_the_random_one(page):
    face = _face("tilted")
    name = (_models("ferplus") or list_checkpoints())[0]
    model, card = _loaded(name)
    values = explain.random_map(48, seed=3).numpy() ** 2  # no ties
    target = 1
    py = explain.faithfulness(model, to_tensor(face.crop), {"m": torch.from_numpy(values)}, target)["m"]
    js = page.evaluate(
        "([c, n, m, t]) => deepEmotion.faithfulness(c, n, m, t, false)",
        [face.crop.ravel().tolist(), name, values.ravel().tolist(), target],
    )
    assert set(js["scores"]) == {"map"} and js["ranking"]["sentence"].startswith("most faithful map for this face")
    assert abs(js["scores"]["map"]["deletionAuc"] - py["deletion"]) <= 1e-3
    assert abs(js["scores"]["map"]["insertionAuc"] - py["insertion"]) <= 1e-3


# --- the consensus -------------------------------------------------------------------------------------------


def test_consensus_matches_combine(page):
    names = _models("fer2013", "ferplus", "ferplus-wide", "ckplus", "jaffe")
    if len(names) < 3:
        pytest.skip("fewer than three shipped models")
    pipe = Pipeline({n: _loaded(n) for n in names})
    faces = [_face("astronaut"), _face("tilted")]
    shipped = pipe.consensus_weights
    unnamed = ConsensusWeights.from_dict(  # one model the weights do not name: the others' mean weight
        {**shipped.to_dict(), "weights": {m: w for m, w in shipped.weights.items() if m != names[0]}}
    )
    per_model = ConsensusWeights("model", {n: {"*": 1.0 + i} for i, n in enumerate(names)})
    sets = [names[:2], names[:3], [n for n in names if n in ("ferplus", "ckplus", "jaffe")], names]
    for prediction in pipe.predict(faces):
        for chosen in sets:
            probs = {m: prediction.probabilities[m] for m in chosen}
            as_listed = {m: [probs[m][c] for c in _loaded(m).card.classes] for m in chosen}  # network order
            for weights in (None, ConsensusWeights(), per_model, unnamed):
                py = combine(probs, weights or shipped)
                js = page.evaluate(
                    "([p, w]) => deepEmotion.consensus(p, w)",
                    [as_listed, None if weights is None else weights.to_dict()],
                )
                assert js["classes"] == list(py), chosen
                assert np.abs(np.array(js["probabilities"]) - np.array(list(py.values()))).max() <= 1e-4, chosen
                assert js["top"] == max(py, key=py.get)
                if weights is None:
                    assert js["sentence"] == describe.consensus_sentence(pipe.consensus(probs))
                    assert js["agreement"] == describe.agreement({m: prediction.top(m) for m in chosen})[1]
    known = {c for n in names for c in _loaded(n).card.classes}
    assert "contempt" in known and "neutral" in known  # 8-class and 7-class models mixed
    single = page.evaluate("(p) => deepEmotion.consensus(p)", {names[0]: [1 / 7] * len(_loaded(names[0]).card.classes)})
    assert single is None  # one model: no consensus, as Pipeline.consensus
