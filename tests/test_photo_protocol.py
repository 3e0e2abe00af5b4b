"""The photo protocol: deterministic photos made from test faces, and scores that count missed faces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from deep_emotion.faces.detect import Detector, detect_faces, iou
from deep_emotion.faces.framing import DEFAULT_FRAMING
from deep_emotion.faces.images import load_image
from deep_emotion.training.photo_protocol import (
    FRAME,
    GROUPS,
    VARIANTS,
    expand_variants,
    make_photo,
    pipeline_crops,
    run_protocol,
    scores,
)


@pytest.fixture(scope="module")
def astronaut_face(astronaut_path) -> np.ndarray:
    """The public-domain astronaut's face as a 48x48 crop, as a data set would hold it."""
    return detect_faces(load_image(astronaut_path))[0].crop


def test_every_variant_is_deterministic_and_well_formed(astronaut_face):
    for v in VARIANTS:
        a, b = make_photo(astronaut_face, v, 3), make_photo(astronaut_face, v, 3)
        assert a.image.mode == "RGB" and np.array_equal(np.asarray(a.image), np.asarray(b.image)), v
        x0, y0, x1, y1 = a.truth
        assert 0 <= x0 < x1 <= a.image.width and 0 <= y0 < y1 <= a.image.height
    assert make_photo(astronaut_face, "tight-x4", 0).image.size == (192, 192)
    assert make_photo(astronaut_face, "context", 0).image.size == FRAME


def test_context_variants_share_the_face_place_and_differ_by_face(astronaut_face):
    boxes = {v: make_photo(astronaut_face, v, 5).truth for v in VARIANTS if not v.startswith("tight")}
    assert len(set(boxes.values())) == 1  # rotations and light changes keep the frame of `context`
    assert make_photo(astronaut_face, "context", 6).truth != boxes["context"]  # another face, another place
    side = boxes["context"][2] - boxes["context"][0]
    assert 0.15 * FRAME[0] - 1 <= side <= 0.40 * FRAME[0] + 1


def test_context_frame_holds_the_face_unchanged_and_rotation_turns_it(astronaut_face):
    photo = make_photo(astronaut_face, "context", 2)
    x0, y0, x1, y1 = photo.truth
    inner = np.asarray(photo.image.convert("L").crop((x0, y0, x1, y1)).resize((48, 48), Image.Resampling.BILINEAR))
    assert np.abs(inner.astype(float) - astronaut_face).mean() < 12
    turned = np.asarray(make_photo(astronaut_face, "rotate+30", 2).image.convert("L").crop((x0, y0, x1, y1)))
    assert np.abs(turned.astype(float) - np.asarray(photo.image.convert("L").crop((x0, y0, x1, y1)))).mean() > 10
    dark = np.asarray(make_photo(astronaut_face, "dark", 2).image.convert("L"), dtype=float)
    assert dark.mean() < 0.5 * np.asarray(photo.image.convert("L"), dtype=float).mean()


def test_scores_count_missed_faces_as_wrong_and_as_no_prediction():
    labels = np.array([0, 0, 1, 1, 2])
    pred = np.array([0, -1, 1, 0, -1])  # two faces missed
    s = scores(pred, labels, 3)
    assert s["accuracy"] == pytest.approx(2 / 5) and s["found"] == pytest.approx(3 / 5)
    assert s["balanced_accuracy"] == pytest.approx((0.5 + 0.5 + 0.0) / 3)
    f1_0 = 2 * 0.5 * 0.5 / (0.5 + 0.5)  # class 0: precision 1/2 (one of two predictions), recall 1/2
    f1_1 = 2 * 1.0 * 0.5 / 1.5  # class 1: precision 1, recall 1/2
    assert s["macro_f1"] == pytest.approx((f1_0 + f1_1 + 0.0) / 3)


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0


def test_expand_variants():
    assert expand_variants("all") == list(VARIANTS)
    assert expand_variants("tight,rotate+20") == [*GROUPS["tight"], "rotate+20"]
    with pytest.raises(ValueError, match="unknown photo variant"):
        expand_variants("sideways")


def test_pipeline_finds_the_face_in_photos_made_from_it(astronaut_face):
    faces = np.stack([astronaut_face] * 3)
    for v in ("tight-x4", "context", "rotate-10", "jpeg-30"):
        crops, found, by_mtcnn = pipeline_crops(faces, v, Detector(framing=DEFAULT_FRAMING).batch)
        assert found.all(), v
        limit = 35 if v.startswith("rotate") else 15  # the turned face is cropped as found (not aligned)
        assert np.abs(crops.astype(float) - astronaut_face).mean(axis=(1, 2)).max() < limit, v


def test_run_protocol_with_a_model_of_three_classes(astronaut_face):
    from deep_emotion.models.inputs import predict_proba
    from deep_emotion.models.paper import DeepEmotion, ModelConfig

    from .conftest import pipeline_of

    torch.manual_seed(0)
    model = DeepEmotion(ModelConfig(num_classes=3)).eval()
    two = DeepEmotion(ModelConfig(num_classes=2)).eval()
    pipe = pipeline_of({"m": (model, ["a", "b", "c"]), "two": (two, ["x", "y"])}, Detector(framing=DEFAULT_FRAMING))
    faces = np.stack([astronaut_face] * 4)
    labels = np.array([0, 1, 2, 0])
    out = run_protocol(pipe, faces, labels, ["tight-x2", "context"], models="m")
    assert set(out) == {"crop", "tight-x2", "context"}
    for v in ("tight-x2", "context"):
        assert set(out[v]) == {"m"}  # the chosen model only
        r = out[v]["m"]
        assert r["n"] == 4 and r["found"] == 1.0 and 0 <= r["accuracy"] <= 1 and "found_by_mtcnn" in r
    expected = predict_proba(model, faces).argmax(1)  # the crops read by the network directly
    assert out["crop"]["m"]["accuracy"] == pytest.approx(float((expected == labels).mean()))
    with pytest.raises(ValueError, match="share"):
        run_protocol(pipe, faces, labels, [])  # every model of the pipeline: 3 and 2 classes
    with pytest.raises(ValueError, match="unknown model"):
        run_protocol(pipe, faces, labels, [], models="nope")


def test_a_face_counts_as_found_by_its_place(astronaut_face):
    tight = make_photo(astronaut_face, "tight-x4", 0)  # 192 x 192: the face is centred, its size unknown
    assert tight.found_by((60, 50, 150, 150))  # half the picture, over the centre: FER2013 crops frame faces so
    assert tight.found_by((-60, -100, 280, 330))  # a face larger than the crop
    assert not tight.found_by((8, 40, 65, 100))  # an eye at the side
    assert not tight.found_by((90, 90, 110, 110))  # over the centre, but too small to be the face
    context = make_photo(astronaut_face, "context", 0)
    x0, y0, x1, y1 = context.truth
    assert context.found_by((x0 + 2, y0 - 3, x1 + 4, y1))
    assert not context.found_by((x1, y1, x1 + 40, y1 + 40))  # somewhere else in the frame
