"""Deep-Emotion explorer (Streamlit): upload a photo, see what each model predicts and where it looks.

Run: `make run` (or `streamlit run webapp/app.py`). This file sets up the page, the sidebar's controls, the
shareable URL and the one `deep_emotion.Pipeline` of the server (`pipeline`); the pages only collect inputs and
draw what the pipeline answers: photo.py (a photo's faces, predictions and maps), video.py (a clip's faces over
time), live.py (the webcam), about.py (the models' cards), with charts.py drawing their charts.
"""

from __future__ import annotations

import os

# Torch's idle threads sleep instead of spinning (set before torch is first imported). Measured with
# benchmarks/load.py: spinning threads took ~30 % of the server's CPU per upload, for no gain in speed.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# about, live, photo and video: the pages, beside this file (`streamlit run` puts its folder on sys.path)
import about  # noqa: E402
import live  # noqa: E402
import photo  # noqa: E402
import streamlit as st  # noqa: E402
import video  # noqa: E402

from deep_emotion import DEFAULT_METHODS, AnalysisOptions, DeepEmotionError, Pipeline  # noqa: E402
from deep_emotion.serve import params  # noqa: E402
from deep_emotion.serve.examples import example_photo_path  # noqa: E402

UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif"]


@st.cache_resource(show_spinner="Loading models…")
def pipeline() -> Pipeline:
    """The server's one pipeline: every bundled model as its card ships it (flip averaging, class-prior
    adjustment and temperature where they helped on validation) and the face detector. Its slots limit the
    analyses at once (DEEP_EMOTION_WORKERS, default 2): on a 2-core machine, two at once finished 4 visitors'
    uploads ~1.2x sooner than one at a time (benchmarks/load.py, README "Under load"); more would only share the
    cores, while their photos stack their memory. Cached results need no slot."""
    return Pipeline.from_names(None, workers=max(1, int(os.environ.get("DEEP_EMOTION_WORKERS", "2"))))


# --- inputs ---------------------------------------------------------------------------------


def source_ui() -> str:
    """The source, in the main column (a phone hides the sidebar behind its "»")."""
    return st.radio(
        "Source",
        ["Example", "Upload", "Camera", "Video", "Live"],
        horizontal=True,
        key="source",
        help="A photo, a snapshot from the camera, a video clip (its faces over time), or "
        "the webcam live (where the browser can reach this server directly).",
    )


def photo_input(source: str) -> tuple[bytes | None, str]:
    """The photo's bytes and its name (only shown in messages); None when there is none yet."""
    if source in ("Video", "Live"):
        return None, ""
    if source == "Upload":
        f = st.file_uploader("A photo with one or more faces", type=UPLOAD_TYPES)
        return (f.getvalue(), f.name) if f else (None, "")
    if source == "Camera":
        f = st.camera_input("Take a photo")
        return (f.getvalue(), "camera") if f else (None, "")
    example = example_photo_path()
    return example.read_bytes(), example.name


def controls_ui(pipe, q: dict) -> dict:
    """The sidebar's controls, first set from the URL's parameters `q`; the window goes up to the models' input
    side, the stride up to half of it."""
    titles = params.method_titles()
    side, classes, names, defaults = pipe.input_size, pipe.classes, pipe.names, pipe.default_models
    default = AnalysisOptions()
    choices = ["predicted"] + classes
    # widgets keep their state under a key (their identity: a changed default does not make a new widget); the URL
    # gives their first values. Passed as defaults, not written into st.session_state first: a click during the
    # page's first run can interrupt it between such a write and the widget, and the written value was then lost
    # (every control came up empty).
    first_models = [m for m in q.get("models", defaults) if m in names] or defaults
    first_methods = [m for m in q.get("methods", DEFAULT_METHODS) if m in titles] or list(DEFAULT_METHODS)
    first_target = q["target"] if q.get("target") in choices else "predicted"
    chosen = st.sidebar.multiselect(
        "Models",
        names,
        default=first_models,
        key="models",
        help="fer2013 and ferplus learnt from photos of every kind, as uploads are. "
        "ckplus and jaffe learnt from posed expressions in a lab: for such photos. "
        "The -wide models (a wider attentional network) are more accurate and "
        "~12x slower to explain with occlusion.",
    )
    methods = st.sidebar.multiselect(
        "Maps",
        list(titles),
        default=first_methods,
        format_func=titles.get,
        key="methods",
        help="How each model's answer is explained; see 'About the maps' below.",
    )
    target = st.sidebar.selectbox(
        "Explain the class",
        choices,
        index=choices.index(first_target),
        key="target",
        help="The maps show evidence for this class (for each model, its own top class when 'predicted').",
    )
    most = params.stride_limit(side)
    window = st.sidebar.slider(
        f"Occlusion window (pixels of the {side}x{side} face)",
        1,
        side,
        value=min(max(q.get("window", default.window), 1), side),
        key="window",
    )
    stride = st.sidebar.slider(
        "Stride", 1, most, value=min(max(q.get("stride", default.stride), 1), most), key="stride"
    )
    faithfulness = st.sidebar.checkbox(
        "Score every map's faithfulness",
        value=False,
        key="faithfulness",
        help="Deletion and insertion: hide / reveal the pixels in the order a map ranks "
        "them and follow the class's probability. Computes and scores every "
        "chosen map: about 3x the work of showing one.",
    )
    passes = params.occlusion_passes(side, window, stride, methods)
    st.sidebar.caption(
        f"Occlusion cost: {passes} occluded forward passes per face and model" if passes else "No occlusion map chosen."
    )
    return {
        "models": chosen,
        "window": window,
        "stride": stride,
        "methods": methods,
        "target": None if target == "predicted" else target,
        "faithfulness": faithfulness,
    }


def sync_url(controls: dict) -> None:
    """Write the controls into the URL's query (only what differs from it, so an unchanged URL causes no rerun)."""
    wanted = params.to_query(
        controls["models"], controls["methods"], controls["window"], controls["stride"], controls["target"]
    )
    if {k: st.query_params.get(k) for k in set(wanted) | set(st.query_params)} != wanted:
        st.query_params.from_dict(wanted)


def main() -> None:
    st.set_page_config(page_title="Deep-Emotion explorer", layout="wide")
    st.title("Deep-Emotion explorer")
    st.caption("Attentional CNN of Minaee & Abdolrashidi: what each model predicts, and where it looks.")
    try:
        pipe = pipeline()
    except (DeepEmotionError, ValueError) as e:
        st.error(f"No models could be loaded from checkpoints/: {e}")
        return
    query, errors = params.parse_query(st.query_params.to_dict())
    with st.container(key="inputs"):  # the source and the photo, above the results at every width
        source = source_ui()
        data, label = photo_input(source)
    controls = controls_ui(pipe, query)
    errors += params.check_query(query, pipe) + params.check_choice(controls["models"], controls["methods"], pipe)
    for e in errors:
        st.error(e)
    sync_url(controls)  # the URL follows the controls (shareable); a bad parameter is replaced, so its error clears
    if errors:
        return
    if source == "Live":
        live.page(pipe, controls["models"])
        return
    if source == "Video":
        try:
            data, label = video.page(pipe, controls["models"])
        except DeepEmotionError as e:
            st.error(str(e))
            return
        if data is None:
            return
    if data is None:
        st.info("Upload a photo, take one with the camera, or pick the example.")
        return
    if photo.page(pipe, data, label, controls):
        about.expander(pipe)


if __name__ == "__main__":
    main()
