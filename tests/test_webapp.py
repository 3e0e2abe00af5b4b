"""The Streamlit app (AppTest) and the Gradio handler, on the bundled models."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image

from deep_emotion.describe import WHOLE_IMAGE_ASKED
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
    assert [s.value for s in at.subheader] == DEFAULT + ["consensus"]
    tops = [m.value for m in at.markdown if m.value.startswith("**") and "%)" in m.value]
    assert len(tops) == len(DEFAULT) + 1  # and the consensus's
    assert len(at.success) + len(at.warning) == 1  # the agreement line
    assert any(i.value.startswith("Together the models say happy") for i in at.info)
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
    # the map's sentence (describe.map_caption): at 24x24 no window flips this model's answer
    after = [c.value for c in at.caption if "label flips from" in c.value or "no window" in c.value]
    assert len(before) == len(after) == 1 and after != before
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
    assert list(table.index) == [1, 2, 3] and list(table.columns) == ["fer2013", "ferplus", "consensus"]
    assert all(v.split()[-1].endswith("%") for v in table.to_numpy().ravel())
    assert [s.value for s in at.subheader] == ["fer2013", "ferplus", "consensus"]  # the consensus: a row of its own
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
    # one sentence says how the face was found: as asked, not "No face was found in this photo." as well
    assert not at.warning and at.info[0].value == WHOLE_IMAGE_ASKED
    captions = [c for e in at.get("image") for c in e.captions]
    assert "sky.png: the whole image as one face, 320x240" in captions, captions  # not "1 face(s)"


def test_unreadable_upload_gets_a_message(monkeypatch, tmp_path):
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"%PDF-1.4 not an image at all")
    at = app(monkeypatch, example=bad)
    assert not at.exception
    assert any("not a readable image" in e.value for e in at.error)


@pytest.mark.parametrize(
    "query,message",
    [
        ({"window": "99"}, "window must be between 1 and 48 pixels, not 99"),
        ({"stride": "0"}, "stride must be at least 1, not 0"),
        ({"stride": "30"}, "stride 30 is beyond the stride control's 1..24"),
        ({"window": "eight"}, "not a whole number"),
        ({"models": "nope"}, "unknown model(s) 'nope'"),
        ({"methods": "occlusion-flip,blur"}, "unknown explanation method(s) 'blur'"),
    ],
)
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
    outputs = gradio_app.handle(str(example), MODELS, methods, 8, 4, True, 1, False)
    boxes, panel, label, table, figures, message = outputs
    assert (
        table["headers"] == ["face"] + MODELS + ["consensus"] and len(table["data"]) == 1 and table["data"][0][0] == 1
    )
    assert isinstance(boxes, Image.Image) and isinstance(panel, Image.Image)
    assert panel.height >= len(MODELS) * 192 and panel.width >= (2 + len(methods)) * 192
    for view in figures["faces"][0]["models"].values():
        assert list(view["maps"]) == methods and "random" in view["faithfulness"]
    known = {c for m in figures["faces"][0]["models"].values() for c in m["probabilities"]}
    assert set(label) == (known if len(MODELS) > 1 else set(figures["faces"][0]["models"][MODELS[0]]["probabilities"]))
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
    assert any(
        c.value.startswith(f"astronaut-clip.mp4 at {frame.options[-1]}: face 1 of 1 explained") for c in at.caption
    )
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


# --- one door: both front ends go through a Pipeline's methods and nowhere else ----------------------------------

WEBAPP = Path(APP).parent
# the pipeline's inner steps: a page that called one of them would bypass the door
INNER_STEPS = {
    "crop_face",
    "detect_faces",
    "detect_faces_batch",
    "load_checkpoint",
    "analyze_video",
    "to_grey_square",
    "predict_proba",
    "explain_face",
    "LiveReader",
    "read_crops",
    "summarize",
    "analyze_faces",
}


class StandIn:
    """A pipeline's door without networks: the methods and properties the front ends use, each call recorded.
    One face (or none, `faces=0`), which every model reads as happy; its input side is 40 (not the models' 48),
    so that the controls' ranges must come from it."""

    device = "cpu"

    def __init__(self, names: tuple[str, ...] = ("fer2013", "ferplus"), faces: int = 1, side: int = 40):
        self.calls: list[str] = []
        self._names, self._faces, self.input_size = list(names), faces, side

    def _record(self, name: str) -> None:
        self.calls.append(name)

    @property
    def names(self) -> list[str]:
        return list(self._names)

    @property
    def default_models(self) -> list[str]:
        return list(self._names)

    @property
    def classes(self) -> list[str]:
        return ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]

    @property
    def cards(self) -> dict:
        self._record("cards")
        return {n: read_card(resolve(n)) for n in self._names}  # the bundled cards; no weights are loaded

    def _probabilities(self) -> dict[str, float]:
        return {c: (0.88 if c == "happy" else 0.02) for c in self.classes}

    def choose(self, names=None) -> list[str]:
        self._record("choose")
        if names is None:
            return self.names
        chosen = [n for part in ([names] if isinstance(names, str) else names) for n in part.split(",") if n]
        unknown = [n for n in chosen if n not in self._names]
        if unknown or not chosen:
            raise ValueError(f"unknown model(s) {unknown}" if unknown else "choose at least one model")
        return chosen

    def slot(self):
        from contextlib import nullcontext

        self._record("slot")
        return nullcontext()

    def busy(self) -> bool:
        self._record("busy")
        return False

    def to(self, device):
        self._record("to")
        return self

    def find_faces(self, image, detect: bool = True) -> list:
        import numpy as np

        from deep_emotion.faces.detect import Face

        self._record("find_faces")
        w, h = image.size
        if detect and not self._faces:
            return []
        box = (0.0, 0.0, float(w), float(h)) if not detect else (w * 0.3, h * 0.1, w * 0.6, h * 0.5)
        return [Face(box, 0.99 if detect else 1.0, np.full((48, 48), 128, np.uint8), detected=detect)]

    def face_picture(self, image, face, side: int = 288):
        import numpy as np

        self._record("face_picture")
        return np.full((side, side), 100, np.uint8)

    def predict(self, faces, models=None) -> list:
        from deep_emotion import FacePrediction

        self._record("predict")
        chosen = self.choose(models)
        per_model = {m: self._probabilities() for m in chosen}
        return [
            FacePrediction(i, f.box, f.probability, per_model, f.crop, f.detected, self.consensus(per_model))
            for i, f in enumerate(faces)
        ]

    def consensus(self, probabilities) -> dict | None:
        from deep_emotion.models.consensus import combine

        self._record("consensus")
        return combine(probabilities) if len(probabilities) >= 2 else None

    def explain(self, face, models=None, options=None) -> dict:
        import numpy as np

        from deep_emotion import AnalysisOptions, Map, ModelView

        self._record("explain")
        options = options or AnalysisOptions()
        options.check(self.input_size)
        side = self.input_size
        values = np.linspace(0, 1, side * side, dtype=np.float32).reshape(side, side)
        views = {}
        for m in self.choose(models):
            maps = {meth: Map(meth, values, False, "stand-in units", 1, 0) for meth in options.methods}
            faith = None
            if options.faithfulness:
                faith = {n: {"deletion": 0.2, "insertion": 0.5, "difference": 0.3} for n in options.methods} | {
                    "random": {"deletion": 0.3, "insertion": 0.3, "difference": 0.0}
                }
            views[m] = ModelView(
                m, self._probabilities(), "happy", options.target or "happy", None, None, maps, {}, faith
            )
        return views

    def analyze(self, image, models=None, options=None, faces=None, face_indices=None):
        from deep_emotion import Analysis, AnalysisOptions, FaceAnalysis

        self._record("analyze")
        options = options or AnalysisOptions()
        found = faces if faces is not None else self.find_faces(image, options.detect)
        picked = range(len(found)) if face_indices is None else face_indices
        return Analysis(
            [
                FaceAnalysis(
                    i,
                    found[i].box,
                    found[i].probability,
                    found[i].crop,
                    self.explain(found[i], models, options),
                    found[i].detected,
                )
                for i in picked
            ],
            options.detect,
            image.size if image is not None else None,
            options,
        )

    def probe_clip(self, source, name=None):
        from deep_emotion.video.clips import VideoInfo

        self._record("probe_clip")
        return VideoInfo(name or "clip", 480, 360, 4.0, 10.0, "h264", "mp4")

    def analyze_clip(self, source, models=None, fps=4.0, name=None, detect_every=1, smooth=0.0, progress=None):
        import numpy as np

        from deep_emotion.video.analysis import FaceAtTime, VideoAnalysis

        self._record("analyze_clip")
        chosen = self.choose(models)
        p = np.array(list(self._probabilities().values()))
        rows = [
            FaceAtTime(k / fps, k, 1, (150.0, 40.0, 330.0, 260.0), 0.99, True, {m: p for m in chosen})
            for k in range(int(4 * fps))
        ]
        if progress:
            progress(rows[-1].time, len(rows))
        return VideoAnalysis(
            self.probe_clip(source, name), float(fps), {m: self.classes for m in chosen}, rows, len(rows), float(smooth)
        )

    def live(self, model=None, **settings):
        self._record("live")
        return object()  # a LiveReader's stand-in: frames only reach it once a browser streams


@pytest.fixture
def stand_in(monkeypatch):
    """A StandIn served by `Pipeline.from_names` (what the Streamlit app builds its pipeline with), every inner step
    made to fail, and Streamlit's caches emptied before and after (they outlive one AppTest)."""
    import streamlit as st

    import deep_emotion.explain
    import deep_emotion.explain.registry
    import deep_emotion.faces.detect
    import deep_emotion.faces.framing
    import deep_emotion.models.checkpoints
    import deep_emotion.models.inputs
    import deep_emotion.pipeline
    import deep_emotion.video.analysis
    import deep_emotion.video.live

    def inner(name):
        def refuse(*args, **kwargs):
            raise AssertionError(f"a front end called the inner step {name} instead of the pipeline")

        return refuse

    for module in (
        deep_emotion.faces.detect,
        deep_emotion.faces.framing,
        deep_emotion.models.checkpoints,
        deep_emotion.models.inputs,
        deep_emotion.explain,
        deep_emotion.explain.registry,
        deep_emotion.video.analysis,
        deep_emotion.video.live,
        deep_emotion.pipeline,
    ):
        for name in INNER_STEPS:
            if hasattr(module, name):
                monkeypatch.setattr(module, name, inner(name))
    fake = StandIn()
    monkeypatch.setattr(deep_emotion.pipeline.Pipeline, "from_names", classmethod(lambda cls, *a, **k: fake))
    st.cache_data.clear()
    st.cache_resource.clear()
    yield fake
    st.cache_data.clear()
    st.cache_resource.clear()


def test_streamlit_goes_through_the_door(monkeypatch, stand_in):
    at = app(monkeypatch, methods="occlusion-flip,gradcam")
    assert not at.exception and not at.error, (at.exception, at.error)
    assert [s.value for s in at.subheader] == stand_in.names + ["consensus"]
    assert {"find_faces", "predict", "explain", "face_picture", "slot", "busy"} <= set(stand_in.calls)
    assert [s.value for s in at.success] == ["All models agree: fer2013: happy; ferplus: happy"]
    assert any(c.value.startswith("fer2013: stand-in units from 0 to 1") for c in at.caption)
    # the controls' ranges come from the pipeline (its input side 40), not from the models' usual 48
    window, stride = at.sidebar.slider[0], at.sidebar.slider[1]
    assert window.max == 40 and stride.max == 20 and "40x40" in window.label
    at.sidebar.checkbox(key="faithfulness").check().run()
    assert not at.exception and list(at.dataframe[-1].value.columns) == stand_in.names
    at.toggle(key="about_models").set_value(True).run()
    assert not at.exception and "cards" in stand_in.calls
    stand_in.calls.clear()
    at.radio(key="source").set_value("Video").run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert {"probe_clip", "analyze_clip", "find_faces", "explain"} <= set(stand_in.calls)
    assert any("1 face(s) followed" in c.value for c in at.caption)
    webrtc = pytest.importorskip("streamlit_webrtc")
    streams = []  # the WebRTC component needs a browser: here it only records what the page hands it
    monkeypatch.setattr(webrtc, "webrtc_streamer", lambda **kwargs: streams.append(kwargs))
    at.radio(key="source").set_value("Live").run()
    assert not at.exception
    assert stand_in.calls[-1] == "live" and callable(streams[-1]["video_frame_callback"])


def test_streamlit_says_how_the_face_was_found_once(monkeypatch, stand_in):
    from deep_emotion.describe import NO_FACE

    stand_in._faces = 0
    at = app(monkeypatch, methods="gradcam")
    assert [w.value for w in at.warning] == [NO_FACE] and not at.subheader
    at.checkbox(key="whole_image").check().run()
    assert not at.exception and not at.warning
    assert at.info[0].value == WHOLE_IMAGE_ASKED and not any(NO_FACE in i.value for i in at.info)
    assert any(c.value.endswith("astronaut.jpg: face 1 of 1 explained by 2 model(s).") for c in at.caption)


def gradio_module():
    sys.path.insert(0, str(WEBAPP))
    import gradio_app

    return gradio_app


def test_gradio_goes_through_the_door_and_says_what_streamlit_says(monkeypatch, stand_in):
    from deep_emotion.describe import NO_FACE

    gradio_app = gradio_module()
    monkeypatch.setattr(gradio_app, "pipeline", lambda: stand_in)
    example = WEBAPP / "examples" / "astronaut.jpg"
    boxes, panel, label, table, figures, message = gradio_app.handle(
        str(example), ["fer2013", "ferplus"], ["occlusion-flip"], 8, 2, False, 1, False
    )
    assert {"choose", "to", "find_faces", "analyze", "predict"} <= set(stand_in.calls)
    assert table == {
        "headers": ["face", "fer2013", "ferplus", "consensus"],
        "data": [[1, "happy 88%", "happy 88%", "happy 88%"]],
    }
    assert set(figures["faces"][0]["models"]) == {"fer2013", "ferplus"} and label["happy"] == 0.88
    # the same sentences as the Streamlit page (test_streamlit_goes_through_the_door)
    lines = message.split("\n\n")
    assert "All models agree: fer2013: happy; ferplus: happy" in lines
    assert "fer2013: stand-in units from 0 to 1, highest at row 39, column 39" in lines
    stand_in._faces = 0
    assert gradio_app.handle(str(example), ["fer2013"], ["gradcam"], 8, 2, False, 1, False)[-1].startswith(NO_FACE)
    message = gradio_app.handle(str(example), ["fer2013"], ["gradcam"], 8, 2, False, 1, True)[-1]
    assert message.split("\n\n")[0] == WHOLE_IMAGE_ASKED and NO_FACE not in message
    # the page's choices come from the pipeline too: its models, its input side
    import gradio as gr

    demo = gradio_app.build()
    sliders = [b for b in demo.blocks.values() if isinstance(b, gr.Slider)]
    assert [(s.minimum, s.maximum) for s in sliders] == [(1, 40), (1, 20)]
    models = next(b for b in demo.blocks.values() if isinstance(b, gr.CheckboxGroup))
    assert [c[1] for c in models.choices] == stand_in.names


def deep_emotion_imports(tree) -> set[str]:
    """The deep_emotion modules a file imports ('from deep_emotion import describe' counts as deep_emotion.describe,
    'from deep_emotion import Pipeline' as deep_emotion)."""
    import ast

    root = Path(APP).resolve().parent.parent
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "deep_emotion"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "deep_emotion":
            folder = root / node.module.replace(".", "/")
            for a in node.names:
                sub = (folder / f"{a.name}.py").is_file() or (folder / a.name / "__init__.py").is_file()
                found.add(f"{node.module}.{a.name}" if sub else node.module)
    return found


@pytest.mark.parametrize("path", sorted(WEBAPP.glob("*.py")), ids=lambda p: p.name)
def test_pages_are_thin(path):
    """Each front-end file is at most 400 lines, imports at most 4 library modules, and names no inner step."""
    import ast

    text = path.read_text()
    assert len(text.splitlines()) <= 400
    tree = ast.parse(text)
    modules = deep_emotion_imports(tree)
    assert len(modules) <= 4, sorted(modules)
    named = (
        {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        | {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        | {
            a.name.split(".")[-1]
            for n in ast.walk(tree)
            if isinstance(n, (ast.Import, ast.ImportFrom))
            for a in n.names
        }
    )
    assert not named & INNER_STEPS, sorted(named & INNER_STEPS)


def test_url_parameters_are_read_and_checked_by_the_library(stand_in):
    from deep_emotion.serve.params import check_choice, check_query, parse_query, to_query

    values, errors = parse_query({"window": "12", "stride": "x", "models": "fer2013,,ferplus", "other": "1"})
    assert values == {"window": 12, "models": ["fer2013", "ferplus"]} and errors == ["stride='x' is not a whole number"]
    assert check_query(values, stand_in) == []
    assert check_query({"window": 41, "stride": 21}, stand_in) == [
        "window must be between 1 and 40 pixels, not 41",
        "stride 21 is beyond the stride control's 1..20",
    ]
    assert check_query({"target": "bored"}, stand_in)[0].startswith("target 'bored' is not a class")
    assert check_choice([], [], stand_in) == ["choose at least one model", "choose at least one explanation method"]
    assert parse_query(to_query(["fer2013"], ["gradcam", "stn"], 9, 3, "sad"))[0] == {
        "window": 9,
        "stride": 3,
        "models": ["fer2013"],
        "methods": ["gradcam", "stn"],
        "target": "sad",
    }


def test_example_clip_is_made_from_the_example_photo(tmp_path, monkeypatch):
    from deep_emotion import DeepEmotionError
    from deep_emotion.serve.examples import example_clip, example_photo_path
    from deep_emotion.video.clips import probe

    assert example_photo_path() == WEBAPP / "examples" / "astronaut.jpg"
    data, name = example_clip(None)
    info = probe(data, name)
    assert name == "astronaut-clip.mp4" and (info.width, info.height) == (480, 360)
    assert info.seconds == pytest.approx(4, abs=0.2)
    with pytest.raises(DeepEmotionError, match="does not exist"):
        example_clip(str(tmp_path / "missing.mp4"))
    monkeypatch.setenv("DEEP_EMOTION_EXAMPLE", str(tmp_path / "other.jpg"))
    assert example_photo_path() == tmp_path / "other.jpg"
