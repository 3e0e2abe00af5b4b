"""The one door: `Pipeline` holds the models, the detector and the device, and every front end goes through it.
Faces, predictions (canonical class names), explanations, analyses, clips and live frames; model cards checked
when read; the CLI built on the door; `--help` and `models` without torch."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from deep_emotion import describe, explain
from deep_emotion.classes import CANONICAL, canonical, majority
from deep_emotion.errors import CheckpointError
from deep_emotion.explain.registry import Map
from deep_emotion.faces.images import load_image
from deep_emotion.models.card import ModelCard
from deep_emotion.models.consensus import combine
from deep_emotion.models.inputs import predict_proba, to_tensor
from deep_emotion.models.posthoc import PostHoc
from deep_emotion.pipeline import Pipeline, parse_names
from deep_emotion.results import AnalysisOptions, FacePrediction, ModelView
from deep_emotion.video.analysis import analyze_video
from deep_emotion.video.clips import write_clip

SEVEN = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
QUICK = AnalysisOptions(("occlusion-flip", "gradcam"), window=12, stride=6)  # 49 occluded passes per face


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    return Pipeline.from_names("fer2013,ferplus")


@pytest.fixture(scope="module")
def astronaut(astronaut_path) -> Image.Image:
    return load_image(astronaut_path)


@pytest.fixture(scope="module")
def faces(pipe, astronaut):
    return pipe.find_faces(astronaut)


@pytest.fixture(scope="module")
def head(astronaut) -> Image.Image:
    return astronaut.crop((140, 20, 360, 280))


@pytest.fixture(scope="module")
def group(head) -> Image.Image:
    """Two copies of the astronaut's head, the left one larger."""
    out = Image.new("RGB", (640, 320), (90, 110, 130))
    out.paste(head, (20, 30))
    out.paste(head.resize((154, 182)), (400, 60))
    return out


def frame(head: Image.Image, k: int) -> Image.Image:
    """Frame k of a clip: the head (88x104) panning right by 5 px a frame over a plain 320x240 background."""
    f = Image.new("RGB", (320, 240), (118, 108, 98))
    f.paste(head.resize((88, 104)), (20 + 5 * k, 40))
    return f


# --- models and names --------------------------------------------------------------------------------------------


def test_from_names_loads_the_models_with_canonical_classes(pipe):
    assert pipe.names == list(pipe.models) == ["fer2013", "ferplus"]
    assert pipe.default_models == ["fer2013", "ferplus"] and pipe.input_size == 48
    fer, plus = pipe.cards["fer2013"], pipe.cards["ferplus"]
    assert isinstance(plus, ModelCard) and plus.name == "ferplus" and plus.dataset == "ferplus"
    assert "happiness" in plus.labels and "happy" in plus.classes and "happiness" not in plus.classes
    assert plus.classes == tuple(canonical(label) for label in plus.labels)  # the same classes, in the same order
    assert fer.classes == SEVEN and set(plus.classes) == set(CANONICAL)
    assert pipe.classes == list(CANONICAL)  # every class some model knows, in canonical order
    for name, lm in pipe.models.items():  # with the cards' post-hoc corrections, as the front ends show them
        correction = PostHoc.from_card(lm.card)
        assert lm.model.posthoc == (None if correction.identity else correction), name
        assert not lm.model.training and lm.classes == lm.card.classes
    assert Pipeline.from_names("fer2013", posthoc=False).models["fer2013"].model.posthoc is None
    assert Pipeline.from_names(["ferplus", "fer2013,ferplus"]).names == ["fer2013", "ferplus"]  # picker order


def test_names_are_parsed_and_checked(pipe):
    assert parse_names(" fer2013 , ferplus,,fer2013") == ["fer2013", "ferplus"]
    assert parse_names(["a,b", "c", "a"]) == ["a", "b", "c"] and parse_names(None) is None
    assert pipe.choose(None) == ["fer2013", "ferplus"]
    assert pipe.choose("ferplus, fer2013") == ["ferplus", "fer2013"] and pipe.choose(["ferplus"]) == ["ferplus"]
    with pytest.raises(ValueError, match=re.escape("unknown model(s) 'jaffe', 'x'; available: fer2013, ferplus")):
        pipe.choose("fer2013,jaffe,x")
    for empty in ("", " , ", []):
        with pytest.raises(ValueError, match="choose at least one model"):
            pipe.choose(empty)
    with pytest.raises(ValueError, match="choose at least one model"):
        Pipeline.from_names("")
    with pytest.raises(CheckpointError, match="unknown model 'nope'; bundled models: .*fer2013"):
        Pipeline.from_names("fer2013,nope")
    with pytest.raises(ValueError, match="at least one model"):
        Pipeline({})


# --- faces and predictions ---------------------------------------------------------------------------------------


def test_find_faces_on_the_astronaut(pipe, astronaut, faces):
    (face,) = faces
    x0, y0, x1, y1 = face.box
    assert 150 < (x0 + x1) / 2 < 300 and 50 < (y0 + y1) / 2 < 200  # the astronaut's face
    assert face.detected and face.probability > 0.99 and face.crop.shape == (48, 48) and face.crop.dtype == np.uint8
    assert face.crop_landmarks.shape == (5, 2)
    (whole,) = pipe.find_faces(astronaut, detect=False)  # the whole picture read as the face
    assert not whole.detected and whole.box == (0.0, 0.0, float(astronaut.width), float(astronaut.height))
    blank = Image.new("RGB", (300, 200), (90, 140, 200))  # large and flat: no face, and no whole-picture read
    found = pipe.find_faces_batch([astronaut, blank])
    assert [len(f) for f in found] == [1, 0] and found[0][0].box == pytest.approx(face.box)


def test_predict_reads_every_face_with_every_model(pipe, faces):
    (p,) = pipe.predict(faces)
    assert isinstance(p, FacePrediction) and p.index == 0 and p.box == faces[0].box and p.detected
    assert list(p.probabilities) == ["fer2013", "ferplus"]
    for name, probs in p.probabilities.items():
        classes = pipe.cards[name].classes
        assert list(probs) == list(classes) and set(probs) <= set(CANONICAL)  # canonical names, network order
        assert sum(probs.values()) == pytest.approx(1, abs=1e-5)
        direct = predict_proba(pipe.models[name].model, faces[0].crop[None])[0]  # the same numbers as the model's
        np.testing.assert_allclose([probs[c] for c in classes], direct, atol=1e-6)
        assert p.top(name) == classes[int(direct.argmax())]
    assert "happiness" not in p.probabilities["ferplus"] and "contempt" in p.probabilities["ferplus"]
    assert p.tops == {m: p.top(m) for m in ("fer2013", "ferplus")} and p.majority == majority(list(p.tops.values()))
    # two models: their consensus over every class either knows
    assert p.consensus == combine(p.probabilities, pipe.consensus_weights) and list(p.consensus) == list(CANONICAL)
    assert sum(p.consensus.values()) == pytest.approx(1) and p.consensus_top == max(p.consensus, key=p.consensus.get)
    d = p.to_dict()
    assert set(d) == {"face", "box", "face_probability", "detected", "majority", "models", "consensus"}
    assert d["face"] == 1 and d["detected"] is True and d["majority"] == p.majority and len(d["box"]) == 4
    assert d["models"]["ferplus"] == {
        "top": p.top("ferplus"),
        "probabilities": {c: round(v, 4) for c, v in p.probabilities["ferplus"].items()},
    }
    assert d["consensus"] == {"top": p.consensus_top, "probabilities": {c: round(v, 4) for c, v in p.consensus.items()}}
    assert json.loads(json.dumps(d)) == d  # plain JSON types
    (only,) = pipe.predict(faces, "ferplus")
    assert list(only.probabilities) == ["ferplus"] and only.probabilities["ferplus"] == p.probabilities["ferplus"]
    assert only.consensus is None and "consensus" not in only.to_dict()  # one model: nothing to combine
    assert pipe.predict([]) == []


def test_a_folder_data_set_model_keeps_its_own_class_names(astronaut):
    from deep_emotion.models.paper import DeepEmotion, ModelConfig

    from .conftest import pipeline_of

    torch.manual_seed(0)
    own = pipeline_of(
        {"patterns": (DeepEmotion(ModelConfig(num_classes=3)).eval(), ["blob", "horizontal", "vertical"])}
    )
    assert own.classes == ["blob", "horizontal", "vertical"]
    (p,) = own.predict(own.find_faces(astronaut, detect=False))
    assert list(p.probabilities["patterns"]) == ["blob", "horizontal", "vertical"]
    assert p.majority == p.top("patterns") == p.to_dict()["majority"]  # no emotion name, still a majority
    assert majority(["happiness", "sad", "happy"]) == "happy" and majority(["blob", "sad", "blob"]) == "blob"
    assert majority([]) == ""


def test_predict_many_numbers_faces_per_picture(pipe, faces):
    out = pipe.predict_many([faces, [], faces + faces])
    assert [len(ps) for ps in out] == [1, 0, 2]
    assert [[p.index for p in ps] for ps in out] == [[0], [], [0, 1]]  # each picture's faces from 0 (1 in to_dict)
    assert [p.to_dict()["face"] for p in out[2]] == [1, 2]
    alone = pipe.predict(faces)[0].probabilities
    for p in (out[0][0], *out[2]):
        for name in alone:
            assert p.probabilities[name] == pytest.approx(alone[name], abs=1e-6)


# --- explanations ------------------------------------------------------------------------------------------------


def test_explain_gives_each_model_its_view_with_the_numbers_of_a_direct_call(pipe, faces):
    face = faces[0]
    views = pipe.explain(face, options=QUICK)
    assert list(views) == ["fer2013", "ferplus"]
    for name, view in views.items():
        lm = pipe.models[name]
        classes = list(lm.classes)
        assert isinstance(view, ModelView) and view.model == name
        assert list(view.maps) == ["occlusion-flip", "gradcam"] and not view.skipped and view.faithfulness is None
        assert list(view.probabilities) == classes and view.target == view.top
        assert view.top == max(view.probabilities, key=view.probabilities.get)
        assert view.stn_view.shape == (48, 48) and view.theta.shape == (2, 3)
        x = to_tensor(face.crop)
        with torch.inference_mode():
            p = lm.model(x).softmax(1)[0].numpy()
            maps, skipped = explain.explain_face(
                lm.model,
                x,
                classes.index(view.target),
                QUICK.methods,
                explain.Context(12, 6, landmarks=face.crop_landmarks),
            )
        assert not skipped
        np.testing.assert_allclose([view.probabilities[c] for c in classes], p, atol=1e-6)
        for method, m in maps.items():
            np.testing.assert_allclose(view.maps[method].values, m.values, atol=1e-6, err_msg=f"{name} {method}")
        assert view.maps["occlusion-flip"].forward_passes == maps["occlusion-flip"].forward_passes


def test_explain_a_chosen_class_by_its_canonical_name(pipe, faces):
    views = pipe.explain(faces[0], "ferplus", AnalysisOptions(("occlusion-drop",), 12, 6, target="sad"))
    assert list(views) == ["ferplus"] and views["ferplus"].target == "sad"  # FERPlus calls it "sadness"
    x = to_tensor(faces[0].crop)
    model = pipe.models["ferplus"].model
    with torch.inference_mode():
        direct = explain.occlusion_map(model, x, 12, 6, "drop", target=pipe.cards["ferplus"].classes.index("sad"))
    np.testing.assert_allclose(views["ferplus"].maps["occlusion-drop"].values, direct.numpy(), atol=1e-5)
    by_label = AnalysisOptions(("occlusion-drop",), 12, 6, target="Sadness")  # FERPlus's own name
    assert by_label.target == "sad" and by_label == AnalysisOptions.from_dict(by_label.to_dict())
    again = pipe.explain(faces[0], options=by_label)
    assert {v.target for v in again.values()} == {"sad"}
    np.testing.assert_array_equal(
        again["ferplus"].maps["occlusion-drop"].values, views["ferplus"].maps["occlusion-drop"].values
    )
    with pytest.raises(ValueError, match="window must be between 1 and 48"):
        pipe.explain(faces[0], options=AnalysisOptions(window=60))
    with pytest.raises(ValueError, match="unknown model"):
        pipe.explain(faces[0], "jaffe")


def test_analyze_chosen_faces(pipe, group):
    found = pipe.find_faces(group)
    assert len(found) == 2 and found[0].area > found[1].area  # largest first
    options = AnalysisOptions(("occlusion-drop",), 12, 6)
    result = pipe.analyze(group, "fer2013", options, face_indices=[1])
    assert result.image_size == group.size and result.detected and result.options == options
    (face,) = result.faces
    assert face.index == 1 and face.box == pytest.approx(found[1].box) and list(face.views) == ["fer2013"]
    same = pipe.explain(found[1], "fer2013", options)["fer2013"]
    np.testing.assert_allclose(
        face.views["fer2013"].maps["occlusion-drop"].values, same.maps["occlusion-drop"].values, atol=1e-6
    )
    again = pipe.analyze(None, "fer2013", options, faces=found)  # faces found before: no picture needed
    assert [f.index for f in again.faces] == [0, 1] and again.image_size is None
    np.testing.assert_allclose(
        again.faces[1].views["fer2013"].maps["occlusion-drop"].values, same.maps["occlusion-drop"].values, atol=1e-6
    )
    d = result.to_dict()
    assert d["faces"][0]["index"] == 1 and d["image_size"] == list(group.size)
    assert json.loads(json.dumps(d)) == d
    with pytest.raises(ValueError, match=re.escape("face 6 does not exist: 2 face(s) found")):
        pipe.analyze(None, options=options, faces=found, face_indices=[5])
    with pytest.raises(ValueError, match="give an image or its faces"):
        pipe.analyze(None, options=options)


# --- clips and live frames ---------------------------------------------------------------------------------------


def test_analyze_clip_reads_every_face_with_the_chosen_models(pipe, head, tmp_path):
    clip = write_clip(tmp_path / "pan.mp4", [frame(head, k) for k in range(10)], fps=10)
    info = pipe.probe_clip(clip)
    assert (info.width, info.height) == (320, 240)
    seen = []
    result = pipe.analyze_clip(clip, "ferplus", fps=5, progress=lambda t, n: seen.append(n))
    assert result.frames == 5 and seen[-1] == 5 and result.faces() == [1]
    assert result.classes == {"ferplus": list(pipe.cards["ferplus"].classes)} and "happy" in result.classes["ferplus"]
    assert [r.frame for r in result.rows] == [0, 1, 2, 3, 4]
    assert all(
        set(r.probabilities) == {"ferplus"} and abs(r.probabilities["ferplus"].sum() - 1) < 1e-4 for r in result.rows
    )
    assert "happy" in result.columns() and "happiness" not in result.columns()
    assert {r["model"] for r in result.records()} == {"ferplus"}
    both = pipe.analyze_clip(clip, fps=5)  # every model of the pipeline
    assert list(both.classes) == ["fer2013", "ferplus"]
    np.testing.assert_allclose(
        both.rows[0].probabilities["ferplus"], result.rows[0].probabilities["ferplus"], atol=1e-6
    )


def test_live_reader_follows_and_draws_the_faces(pipe, head):
    assert pipe.live().name == "fer2013"  # the first default model
    with pytest.raises(ValueError, match="unknown model"):
        pipe.live("jaffe")
    reader = pipe.live("ferplus")
    assert reader.classes == list(pipe.cards["ferplus"].classes)
    first = frame(head, 0)
    drawn, read = reader.process(first, 0.0)
    assert drawn.size == first.size and not np.array_equal(np.asarray(drawn), np.asarray(first))
    (face,) = read
    assert face.face == 1 and face.top in pipe.cards["ferplus"].classes
    (expected,) = pipe.predict(reader.detector(first), "ferplus")  # the first frame: nothing to smooth yet
    assert face.top == expected.top("ferplus")
    assert face.probability == pytest.approx(expected.probabilities["ferplus"][face.top], abs=1e-6)
    _, read = reader.process(frame(head, 1), 0.1)
    assert [f.face for f in read] == [1]  # the same face, the same id
    plain, _ = pipe.live("fer2013", show_map=False).process(first, 0.0)
    assert plain.size == first.size


# --- model cards -------------------------------------------------------------------------------------------------

GOOD_CARD = {
    "name": "x",
    "dataset": "ferplus",
    "classes": ["neutral", "happiness", "anger"],
    "model_config": {"num_classes": 3},
    "protocol": "paper",
    "metrics": {"test": {"accuracy": 0.5, "n": 4, "protocol": "paper"}},
    "confusion": [[1, 0, 0], [0, 1, 1], [1, 0, 0]],
    "recipe": {"epochs": 1},
}


def test_model_card_from_dict_reads_a_good_card():
    card = ModelCard.from_dict(GOOD_CARD, source="cards/x.json")
    assert card.labels == ("neutral", "happiness", "anger") and card.classes == ("neutral", "happy", "angry")
    assert card.metrics["test"].accuracy == 0.5 and card.metrics["test"].n == 4 and card.test is card.metrics["test"]
    assert card.metrics["test"].balanced_accuracy is None and card.metrics["test"].macro_f1 is None
    assert card.confusion == ((1, 0, 0), (0, 1, 1), (1, 0, 0)) and card.posthoc is None
    assert card.architecture == "DeepEmotion" and card.input.side == 48 and card.extra == {"recipe": {"epochs": 1}}
    assert card.to_dict() == GOOD_CARD and card.to_dict() is not card.raw


@pytest.mark.parametrize(
    "change,field",
    [
        ({"classes": None}, "'classes'"),  # None: the key removed
        ({"model_config": None}, "'model_config'"),
        ({"classes": []}, "'classes' must be distinct names"),
        ({"classes": ["a", "a", "b"]}, "'classes' must be distinct names"),
        ({"model_config": [3]}, "'model_config' must be an object"),
        ({"input": {"size": [48, 48]}}, "input size [48, 48] is not [channels, height, width]"),
        ({"confusion": [[1, 0], [0, 1]]}, "'confusion' is not 3x3"),
        ({"posthoc": "yes"}, "'posthoc' must be an object"),
        ({"metrics": {"test": {"n": 4}}}, "bad model card"),  # no accuracy
        ({"metrics": {"test": 0.5}}, "bad model card"),
    ],
)
def test_model_card_from_dict_names_the_file_and_the_field(change, field):
    data = {k: v for k, v in {**GOOD_CARD, **change}.items() if v is not None}
    with pytest.raises(CheckpointError, match=re.escape("cards/x.json: ") + ".*" + re.escape(field)):
        ModelCard.from_dict(data, source="cards/x.json")


def test_a_malformed_card_on_disk_is_refused_naming_it(tmp_path):
    from deep_emotion.models.checkpoints import load_checkpoint, save_checkpoint
    from deep_emotion.models.paper import DeepEmotion, ModelConfig

    with pytest.raises(CheckpointError, match="cards/x.json: a model card is a JSON object"):
        ModelCard.from_dict([GOOD_CARD], source="cards/x.json")
    save_checkpoint(
        DeepEmotion(ModelConfig(num_classes=3)),
        {"name": "tiny", "dataset": "folder", "classes": ["a", "b", "c"]},
        tmp_path / "tiny",
    )
    card = json.loads((tmp_path / "tiny.json").read_text())
    (tmp_path / "tiny.json").write_text(json.dumps({k: v for k, v in card.items() if k != "classes"}))
    with pytest.raises(CheckpointError, match=r"tiny\.json: model card lacks 'classes'"):
        load_checkpoint(tmp_path / "tiny.safetensors")
    (tmp_path / "tiny.json").write_text(json.dumps({**card, "confusion": [[1]]}))
    with pytest.raises(CheckpointError, match=r"tiny\.json: bad model card \('confusion' is not 3x3\)"):
        Pipeline.from_names(str(tmp_path / "tiny.safetensors"))


# --- the command line goes through the door ----------------------------------------------------------------------


@pytest.fixture
def door(pipe, faces, monkeypatch):
    """`deep_emotion.pipeline.Pipeline` replaced by a stand-in that records what the CLI asks of it and answers
    with the real pipeline's models and the astronaut's face found before; the steps behind the door (finding
    faces, loading models, reading clips) raise if the CLI reached for them itself."""
    log: list = []

    class StandIn:
        def __init__(self, real: Pipeline) -> None:
            self.real = real

        @classmethod
        def from_names(cls, names=None, **settings):
            log.append(("from_names", parse_names(names), settings))
            chosen = pipe.choose(names)
            return cls(Pipeline({n: pipe.models[n] for n in chosen}, pipe.detector))

        def find_faces(self, image, detect=True):
            log.append("find_faces")
            return list(faces)

        def find_faces_batch(self, images, detect=True):
            log.append("find_faces_batch")
            return [list(faces) for _ in images]

        def analyze_clip(self, source, models=None, fps=4.0, name=None, detect_every=1, smooth=0.0, progress=None):
            log.append("analyze_clip")
            chosen = self.real.choose(models)
            return analyze_video(
                source,
                lambda frames: [list(faces) for _ in frames],
                lambda crops: self.real.read_crops(crops, chosen),
                {m: list(self.real.models[m].classes) for m in chosen},
                fps=fps,
                name=name,
                detect_every=detect_every,
                smooth=smooth,
                progress=progress,
            )

        def __getattr__(self, name):  # everything else: the real pipeline's, recorded
            log.append(name)
            return getattr(self.real, name)

    def behind_the_door(*args, **kwargs):
        raise AssertionError("the CLI reached behind the pipeline")

    import deep_emotion.faces.detect
    import deep_emotion.models.checkpoints
    import deep_emotion.video.analysis
    import deep_emotion.video.clips

    for module, name in (
        (deep_emotion.faces.detect, "detect_faces_batch"),
        (deep_emotion.faces.detect, "detect_faces"),
        (deep_emotion.models.checkpoints, "load_checkpoint"),
        (deep_emotion.models.checkpoints, "load_model"),
        (deep_emotion.video.analysis, "analyze_video"),
        (deep_emotion.video.clips, "probe"),
        (deep_emotion.models.inputs, "predict_proba"),
    ):
        monkeypatch.setattr(module, name, behind_the_door)
    monkeypatch.setattr("deep_emotion.pipeline.Pipeline", StandIn)
    return log


def test_cli_predict_goes_through_the_door(door, pipe, faces, astronaut_path, capsys):
    from deep_emotion.cli import main

    assert main(["predict", str(astronaut_path), "--model", "fer2013,ferplus", "--json"]) == 0
    assert door[0] == ("from_names", ["fer2013", "ferplus"], {"posthoc": True})
    assert {"find_faces_batch", "predict_many"} <= set(door[1:])
    (result,) = json.loads(capsys.readouterr().out)
    assert result == {"image": str(astronaut_path), "faces": [pipe.predict(faces)[0].to_dict()]}
    door.clear()
    assert main(["predict", str(astronaut_path), "--model", "ferplus", "--no-posthoc"]) == 0
    assert door[0] == ("from_names", ["ferplus"], {"posthoc": False})
    assert "face 1 [" in capsys.readouterr().out


def test_cli_explain_goes_through_the_door(door, pipe, faces, astronaut_path, tmp_path, capsys):
    from deep_emotion.cli import main

    out = tmp_path / "out"
    assert (
        main(
            [
                "explain",
                str(astronaut_path),
                "--model",
                "fer2013,ferplus",
                "--methods",
                "occlusion-flip,gradcam",
                "--window",
                "12",
                "--stride",
                "6",
                "--no-faithfulness",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert door[0] == ("from_names", ["fer2013", "ferplus"], {"posthoc": True})
    assert {"find_faces", "analyze"} <= set(door[1:])
    printed = capsys.readouterr().out
    assert "face 1 of 1" in printed and "fer2013" in printed and "ferplus" in printed
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["face.png", "panel.png", "explanation.json"]
        + [f"{m}-{x}.png" for m in ("fer2013", "ferplus") for x in ("occlusion-flip", "gradcam", "stn_view")]
    )
    summary = json.loads((out / "explanation.json").read_text())
    views = pipe.explain(faces[0], options=QUICK)
    for name, view in summary["faces"][0]["models"].items():
        assert view["top"] == views[name].top and list(view["maps"]) == ["occlusion-flip", "gradcam"]
        assert view["probabilities"] == {c: round(v, 4) for c, v in views[name].probabilities.items()}


def test_cli_video_goes_through_the_door(door, head, tmp_path, capsys):
    from deep_emotion.cli import main

    clip = write_clip(tmp_path / "pan.mp4", [frame(head, k) for k in range(10)], fps=10)
    assert main(["video", str(clip), "--model", "ferplus", "--fps", "2", "--no-progress", "--json"]) == 0
    assert door[0] == ("from_names", ["ferplus"], {"posthoc": True})
    assert {"probe_clip", "analyze_clip"} <= set(door[1:])
    data = json.loads(capsys.readouterr().out)
    assert data["frames_sampled"] == 2 and data["faces"] == [1] and "happy" in data["classes"]["ferplus"]
    assert {r["model"] for r in data["records"]} == {"ferplus"} and all("happiness" not in r for r in data["records"])


def test_cli_predict_csv_has_canonical_columns_and_a_row_per_model(astronaut_path, tmp_path, capsys):
    from deep_emotion.cli import main

    blank = tmp_path / "blank.png"
    Image.new("RGB", (300, 200), (90, 140, 200)).save(blank)
    out = tmp_path / "faces.csv"
    assert main(["predict", str(astronaut_path), str(blank), "--model", "fer2013,ferplus", "--csv", str(out)]) == 0
    assert "2 image(s), 1 face(s)" in capsys.readouterr().out
    with out.open() as f:
        header = next(csv.reader(f))
    assert header == [
        "image",
        "face",
        "x0",
        "y0",
        "x1",
        "y1",
        "face_probability",
        "detected",
        "model",
        "top",
        *(f"p_{c}" for c in CANONICAL),
    ]
    assert "p_happy" in header and "p_happiness" not in header
    rows = list(csv.DictReader(out.open()))
    faces = [r for r in rows if r["image"] == str(astronaut_path)]
    # one row per model, then the models' consensus
    assert [r["model"] for r in faces] == ["fer2013", "ferplus", "consensus"] and {r["face"] for r in faces} == {"1"}
    for r in faces:
        probs = {c: float(r[f"p_{c}"]) for c in CANONICAL if r[f"p_{c}"] != ""}
        assert sum(probs.values()) == pytest.approx(1, abs=1e-3) and r["top"] == max(probs, key=probs.get)
        assert r["detected"] == "1" and float(r["x1"]) > float(r["x0"])
    assert faces[0]["p_contempt"] == "" and faces[1]["p_contempt"] != ""  # FER2013 has no contempt
    assert all(faces[2][f"p_{c}"] != "" for c in CANONICAL)  # the consensus covers every class either model knows
    (none,) = [r for r in rows if r["image"] == str(blank)]
    assert none["face"] == "0" and none["model"] == ""


# --- words ---------------------------------------------------------------------------------------------------


def test_map_caption_of_a_flat_occlusion_map_says_no_window_changes_the_prediction():
    flat = np.zeros((48, 48), np.float32)
    for method in ("occlusion-flip", "occlusion-drop", "captum-occlusion"):
        caption = describe.map_caption("fer2013", Map(method, flat, method != "occlusion-flip", "unit", 1, 0), 8)
        assert caption.startswith("fer2013: no window of 8x8 changes the prediction"), caption
    assert "no window of this size" in describe.map_caption("m", Map("occlusion-flip", flat, False, "u", 1, 0))
    assert "the map is flat" in describe.map_caption("m", Map("gradcam", flat, False, "u", 1, 1))
    peaked = flat.copy()
    peaked[10, 20] = 0.5
    assert (
        describe.map_caption("m", Map("occlusion-flip", peaked, False, "changes", 1, 0), 8)
        == "m: changes from 0 to 0.5, highest at row 10, column 20"
    )


# --- no torch for --help and models ------------------------------------------------------------------------------


def test_help_and_models_do_not_import_torch():
    script = (
        "import contextlib, io, json, sys\n"
        "from deep_emotion.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0\n"
        "    after_help = 'torch' in sys.modules\n"
        "    rc = main(['models', '--json'])\n"
        "print(json.dumps({'help': after_help, 'models': 'torch' in sys.modules, 'rc': rc,\n"
        "                  'names': [m['name'] for m in json.loads(out.getvalue().splitlines()[-1])]}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout)
    assert result["rc"] == 0 and "fer2013" in result["names"]
    assert result["help"] is False and result["models"] is False
    timed = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "deep_emotion", "models"], capture_output=True, text=True, check=True
    )
    assert "fer2013" in timed.stdout
    imported = {
        line.rsplit("|", 1)[-1].strip() for line in timed.stderr.splitlines() if line.startswith("import time:")
    }
    assert "deep_emotion.cli" in imported and "torch" not in imported
    assert not any(name.startswith("torch.") for name in imported)
