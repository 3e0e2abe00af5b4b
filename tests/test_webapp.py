"""The Streamlit app (AppTest) and the Gradio handler, on the bundled models."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image

from deep_emotion.models.card import default_models, list_checkpoints, read_card, resolve

APP = str(Path(__file__).resolve().parent.parent / "webapp" / "app.py")
MODELS = list_checkpoints()
DEFAULT = default_models({name: read_card(resolve(name)) for name in MODELS})  # paper networks, photos from the wild


def app(monkeypatch, example: Path | None = None, **query):
    from streamlit.testing.v1 import AppTest

    if example is not None:
        monkeypatch.setenv("DEEP_EMOTION_EXAMPLE", str(example))
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params.update(query)
    return at.run()


def cost_caption(at) -> str:
    return next(c.value for c in at.sidebar.caption if c.value.startswith("Occlusion cost"))


def test_example_photo_gives_a_prediction_per_model(monkeypatch):
    at = app(monkeypatch)
    assert not at.exception
    assert not at.error
    assert [s.value for s in at.subheader] == DEFAULT
    tops = [m.value for m in at.markdown if m.value.startswith("**") and "%)" in m.value]
    assert len(tops) == len(DEFAULT)
    assert len(at.success) + len(at.warning) == 1  # the agreement line
    assert "441 occluded forward passes" in cost_caption(at)


def test_defaults_are_the_models_for_photos_from_the_wild():
    assert DEFAULT == ["fer2013", "ferplus"]


def test_changing_window_and_stride_recomputes(monkeypatch):
    at = app(monkeypatch, models=MODELS[0])
    before = [c.value for c in at.caption if "label flips from" in c.value]
    at.sidebar.slider[0].set_value(24)
    at.sidebar.slider[1].set_value(12)
    at.run()
    assert not at.exception
    assert "9 occluded forward passes" in cost_caption(at)  # 3 x 3 windows of 24 at stride 12
    after = [c.value for c in at.caption if "label flips from" in c.value]
    assert len(after) == 1 and after != before
    assert at.query_params["window"] == "24" and at.query_params["stride"] == "12"  # the URL follows


def test_only_the_map_shown_is_computed_and_faithfulness_scores_them_all(monkeypatch):
    at = app(monkeypatch, models="fer2013", methods="occlusion-flip,regions,gradcam")
    assert any("label flips from" in c.value for c in at.caption)
    assert not at.dataframe  # no faithfulness table by default
    next(r for r in at.radio if r.label == "Map").set_value("regions").run()
    assert not at.exception
    assert any(c.value.startswith("blurring") for c in at.caption)
    at.sidebar.checkbox[0].check().run()
    table = at.dataframe[-1].value
    assert list(table.columns) == ["fer2013"]
    assert set(table.index) == {"Occlusion (paper, flip)", "Facial regions", "Grad-CAM", "random map (baseline)"}


def test_a_bad_url_parameter_clears_once_a_control_moves(monkeypatch):
    at = app(monkeypatch, window="eight", models=MODELS[0])
    assert any("not a whole number" in e.value for e in at.error)
    assert at.query_params["window"] == "8"  # replaced by the control's value
    at.sidebar.slider[0].set_value(12).run()
    assert not at.error and at.query_params["window"] == "12"


def test_group_photo_gets_a_summary_of_every_face(monkeypatch, tmp_path, astronaut_path):
    group = Image.new("RGB", (1200, 500), (90, 110, 130))
    for i, side in enumerate((380, 300, 240)):
        group.paste(Image.open(astronaut_path).convert("RGB").resize((side, side)), (20 + i * 400, 40))
    path = tmp_path / "group.jpg"
    group.save(path)
    at = app(monkeypatch, example=path, models="fer2013,ferplus", methods="regions")
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert list(table.index) == [1, 2, 3] and list(table.columns) == ["fer2013", "ferplus"]
    assert all(v.split()[-1].endswith("%") for v in table.to_numpy().ravel())
    assert [s.value for s in at.subheader] == ["fer2013", "ferplus"]
    next(s for s in at.selectbox if s.label == "Face").set_value(1).run()  # (AppTest reruns the whole page)
    assert not at.exception and not at.error
    assert any(c.value.endswith("face 2 of 3 explained by 2 model(s).") for c in at.caption)


def test_photo_without_face(monkeypatch, tmp_path):
    blank = tmp_path / "sky.png"
    Image.new("RGB", (320, 240), (110, 160, 220)).save(blank)
    at = app(monkeypatch, example=blank, models=MODELS[0])
    assert not at.exception
    assert any("No face was found" in w.value for w in at.warning)
    assert not at.subheader  # nothing classified yet
    at.checkbox(key="whole_image").check().run()
    assert [s.value for s in at.subheader] == [MODELS[0]]


def test_unreadable_upload_gets_a_message(monkeypatch, tmp_path):
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"%PDF-1.4 not an image at all")
    at = app(monkeypatch, example=bad)
    assert not at.exception
    assert any("not a readable image" in e.value for e in at.error)


@pytest.mark.parametrize("query,message", [({"window": "99"}, "window 99 is outside"),
                                           ({"stride": "0"}, "stride 0 is outside"),
                                           ({"window": "eight"}, "not a whole number"),
                                           ({"models": "nope"}, "unknown model"),
                                           ({"methods": "occlusion-flip,blur"}, "unknown map(s) blur")])
def test_bad_parameters_are_rejected(monkeypatch, query, message):
    at = app(monkeypatch, **query)
    assert not at.exception
    assert any(message in e.value for e in at.error)
    assert not at.subheader


def test_gradio_handler_returns_every_output():
    sys.path.insert(0, str(Path(APP).parent))
    import gradio_app

    example = Path(APP).parent / "examples" / "astronaut.jpg"
    methods = ["occlusion-drop", "gradcam", "regions", "stn"]
    boxes, panel, label, table, figures, message = gradio_app.handle(str(example), MODELS, methods, 8, 4, True, 1, False)
    assert table["headers"] == ["face"] + MODELS and len(table["data"]) == 1 and table["data"][0][0] == 1
    assert isinstance(boxes, Image.Image) and isinstance(panel, Image.Image)
    assert panel.height >= len(MODELS) * 192 and panel.width >= (2 + len(methods)) * 192
    for view in figures["faces"][0]["models"].values():
        assert list(view["maps"]) == methods and "random" in view["faithfulness"]
    assert set(label) == set(figures["faces"][0]["models"][MODELS[0]]["probabilities"])
    assert set(figures["faces"][0]["models"]) == set(MODELS)
    assert "1 face(s)" in message and "blurring the" in message and "most faithful map" in message
    assert gradio_app.handle(str(example), MODELS, methods, 0, 2, True, 1, False)[-1].startswith("Error: window")
    assert "unknown explanation method" in gradio_app.handle(str(example), MODELS, ["nope"], 8, 2, True, 1, False)[-1]
    assert gradio_app.handle(str(example), [], methods, 8, 2, True, 1, False)[-1] == "Choose at least one model."
    assert "does not exist" in gradio_app.handle(str(example), MODELS, methods, 8, 2, False, 3, False)[-1]


@pytest.mark.parametrize("name", ["truncated.jpg", "bomb.png", "zero_bytes.jpg", "html_named.png"])
def test_bad_files_in_the_app(monkeypatch, tmp_path, name):
    from .bad_inputs import unusable

    path = tmp_path / name
    path.write_bytes(unusable()[name])
    at = app(monkeypatch, example=path, models=MODELS[0])
    assert not at.exception
    assert len(at.error) == 1 and name in at.error[0].value


@pytest.mark.parametrize("name", ["grey16.png", "cmyk.jpg", "animated.gif", "exif_rotated.jpg", "tiny_1x1.png"])
def test_odd_images_in_the_app(monkeypatch, tmp_path, name):
    from .bad_inputs import usable

    path = tmp_path / name
    path.write_bytes(usable()[name])
    at = app(monkeypatch, example=path, models=MODELS[0])
    assert not at.exception and not at.error
    assert any("No face was found" in w.value for w in at.warning)  # generated pictures hold no face


def test_gradio_blocks_build_with_the_default_models():
    import gradio as gr

    sys.path.insert(0, str(Path(APP).parent))
    import gradio_app

    demo = gradio_app.build()
    groups = [b for b in demo.blocks.values() if isinstance(b, gr.CheckboxGroup)]
    assert len(groups) == 2 and groups[0].value == DEFAULT
    assert {c[0] for c in groups[0].choices} == set(MODELS)  # every bundled model can be chosen


def test_about_shows_every_model_when_asked(monkeypatch):
    at = app(monkeypatch, models=MODELS[0], methods="stn")
    assert not at.exception
    assert not any("test accuracy" in m.value for m in at.markdown)  # built only when asked
    at.toggle(key="about_models").set_value(True).run()
    assert not at.exception
    assert sum("test accuracy" in m.value for m in at.markdown) == len(MODELS)


def test_every_change_of_a_control_sticks(monkeypatch):
    """Widgets keep their state under a key and the URL only seeds them: three changes in a row all hold."""
    at = app(monkeypatch, models=MODELS[0], methods="stn", window="10")
    assert at.sidebar.slider[0].value == 10
    for value in (12, 16, 20):
        at.sidebar.slider[0].set_value(value).run()
        assert at.sidebar.slider[0].value == value and at.query_params["window"] == str(value)
    at.sidebar.multiselect[0].select(MODELS[1]).run()
    at.sidebar.multiselect[0].unselect(MODELS[0]).run()
    assert at.sidebar.multiselect[0].value == [MODELS[1]] and at.query_params["models"] == MODELS[1]


def test_a_bad_target_is_reported(monkeypatch):
    at = app(monkeypatch, models=MODELS[0], target="bored")
    assert any("target 'bored' is not a class" in e.value for e in at.error)


def test_video_source_shows_a_timeline_per_face_and_explains_the_picked_frame(monkeypatch):
    at = app(monkeypatch, models="fer2013")
    at.radio(key="source").set_value("Video").run()
    assert not at.exception and not at.error
    assert any("1 face(s) followed" in c.value for c in at.caption)
    charts = at.get("vega_lite_chart")
    assert len(charts) == 2  # the face's timeline, and the probabilities of the frame explained
    assert any(b.label == "Download the timeline (CSV)" for b in at.get("download_button"))
    frame = at.select_slider(key="video_at")
    assert frame.value == "0.00 s" and len(frame.options) == 16  # 4 s at 4 frames per second
    frame.set_value(frame.options[-1]).run()
    assert not at.exception
    assert any(c.value.startswith(f"astronaut-clip.mp4 at {frame.options[-1]}: face 1 of 1 explained")
               for c in at.caption)
    assert [s.value for s in at.subheader] == ["fer2013"]


def test_a_clip_without_faces_or_unreadable_gets_a_message(monkeypatch, tmp_path):
    from deep_emotion.video.clips import write_clip

    empty = write_clip(tmp_path / "sky.mp4", [Image.new("RGB", (160, 120), (110, 160, 220))] * 8, fps=4)
    monkeypatch.setenv("DEEP_EMOTION_EXAMPLE_CLIP", str(empty))
    at = app(monkeypatch, models="fer2013")
    at.radio(key="source").set_value("Video").run()
    assert not at.exception
    assert any("No face was found in sky.mp4" in w.value for w in at.warning)
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    monkeypatch.setenv("DEEP_EMOTION_EXAMPLE_CLIP", str(bad))
    at = app(monkeypatch, models="fer2013")
    at.radio(key="source").set_value("Video").run()
    assert not at.exception
    assert any("notes.mp4: not a readable video" in e.value for e in at.error)
