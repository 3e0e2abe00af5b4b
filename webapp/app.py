"""Deep-Emotion explorer (Streamlit): upload a photo, see what each model predicts and where it looks.

Run: `make run` (or `streamlit run webapp/app.py`). This file only collects inputs and draws results;
everything else is `deep_emotion.analysis.analyze` and friends.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from deep_emotion import explain, explainers, render
from deep_emotion.analysis import DEFAULT_METHODS, Analysis, AnalysisOptions, FaceAnalysis, ModelView, analyze, find_faces
from deep_emotion.checkpoints import default_models, list_checkpoints, load_checkpoint
from deep_emotion.errors import DeepEmotionError
from deep_emotion.faces import Face
from deep_emotion.images import load_image

# the example photo; hosts may point DEEP_EMOTION_EXAMPLE at another one
EXAMPLE = Path(os.environ.get("DEEP_EMOTION_EXAMPLE") or Path(__file__).parent / "examples" / "astronaut.jpg")
UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif"]
MAX_WINDOW, MAX_STRIDE = 48, 24
PREVIEW_SIDE = 1024


@st.cache_resource(show_spinner="Loading models…")
def load_models() -> dict:
    # as the cards ship them: flip averaging, class-prior adjustment and temperature where they helped on validation
    return {name: load_checkpoint(name, posthoc=True) for name in list_checkpoints()}


@st.cache_data(show_spinner=False, max_entries=32)
def cached_faces(image_bytes: bytes, detect: bool, name: str) -> tuple[list[Face], tuple[int, int], Image.Image, float]:
    """Faces of the photo, its size, and a preview (longer side <= 1024) with the factor to draw boxes on it."""
    image = load_image(image_bytes, name=name)
    scale = min(1.0, PREVIEW_SIDE / max(image.size))
    preview = image if scale == 1.0 else image.resize((round(image.width * scale), round(image.height * scale)))
    return find_faces(image, detect=detect), image.size, preview, scale


@st.cache_data(show_spinner=False, max_entries=256)
def cached_view(name: str, image_bytes: bytes, label: str, detect: bool, pick: int, options_json: str) -> ModelView:
    """One model's view of one face: `analyze` on the cached faces (per model, so adding a model costs only it)."""
    faces = cached_faces(image_bytes, detect, label)[0]
    options = AnalysisOptions.from_dict(json.loads(options_json))
    return analyze(None, {name: load_models()[name]}, options, faces=faces, face_indices=[pick]).faces[0].views[name]


# --- inputs ---------------------------------------------------------------------------------

def params_from_query() -> dict:
    """Optional ?window=&stride=&models=&methods= in the URL (shareable links); bad values are reported."""
    q = st.query_params
    out, errors = {}, []
    for key in ("window", "stride"):
        if key in q:
            try:
                out[key] = int(q[key])
            except ValueError:
                errors.append(f"{key}={q[key]!r} is not a whole number")
    for key in ("models", "methods"):
        if key in q:
            out[key] = [m for m in q[key].split(",") if m]
    return {"values": out, "errors": errors}


def input_ui() -> tuple[bytes | None, str]:
    """Upload, camera or the example photo; returns the image bytes and a label."""
    source = st.sidebar.radio("Photo", ["Example", "Upload", "Camera"], horizontal=True)
    if source == "Upload":
        f = st.sidebar.file_uploader("A photo with one or more faces", type=UPLOAD_TYPES)
        return (f.getvalue(), f.name) if f else (None, "")  # the name is only shown in messages
    if source == "Camera":
        f = st.sidebar.camera_input("Take a photo")
        return (f.getvalue(), "camera") if f else (None, "")
    return EXAMPLE.read_bytes(), EXAMPLE.name


def controls_ui(names: list[str], defaults: list[str], classes: list[str], query: dict) -> dict:
    q = query["values"]
    chosen = st.sidebar.multiselect("Models", names, default=[m for m in q.get("models", defaults) if m in names] or defaults,
                                    help="The -wide models (a wider attentional network) are more accurate and "
                                         "~12x slower to explain with occlusion.")
    titles = {n: m.title for n, m in explainers.EXPLAINERS.items()}
    methods = st.sidebar.multiselect("Maps", list(titles), format_func=titles.get,
                                     default=[m for m in q.get("methods", DEFAULT_METHODS) if m in titles] or list(DEFAULT_METHODS),
                                     help="How each model's answer is explained; see 'About the maps' below.")
    target = st.sidebar.selectbox("Explain the class", ["predicted"] + classes,
                                  help="The maps show evidence for this class (for each model, its own top class "
                                       "when 'predicted').")
    window = st.sidebar.slider("Occlusion window (pixels of the 48x48 face)", 1, MAX_WINDOW,
                               min(max(q.get("window", 8), 1), MAX_WINDOW))
    stride = st.sidebar.slider("Stride", 1, MAX_STRIDE, min(max(q.get("stride", 2), 1), MAX_STRIDE))
    faithfulness = st.sidebar.checkbox("Score the maps' faithfulness", value=True,
                                       help="Deletion and insertion: hide / reveal the pixels in the order a map ranks "
                                            "them and follow the class's probability.")
    passes = explain.n_windows(48, window, stride)
    occluding = [m for m in methods if m.startswith("occlusion") or m == "captum-occlusion"]
    st.sidebar.caption(f"Occlusion cost: {passes} occluded forward passes per face and model" if occluding else
                       "No occlusion map chosen.")
    return {"models": chosen, "window": window, "stride": stride, "methods": methods,
            "target": None if target == "predicted" else target, "faithfulness": faithfulness}


def validate(controls: dict, query: dict, known: list[str]) -> list[str]:
    errors = list(query["errors"])
    q = query["values"]
    if "window" in q and not 1 <= q["window"] <= MAX_WINDOW:
        errors.append(f"window {q['window']} is outside 1..{MAX_WINDOW}")
    if "stride" in q and not 1 <= q["stride"] <= MAX_STRIDE:
        errors.append(f"stride {q['stride']} is outside 1..{MAX_STRIDE}")
    unknown = [m for m in q.get("models", []) if m not in known]
    if unknown:
        errors.append(f"unknown model(s) {', '.join(unknown)}; bundled: {', '.join(known)}")
    unknown = [m for m in q.get("methods", []) if m not in explainers.EXPLAINERS]
    if unknown:
        errors.append(f"unknown map(s) {', '.join(unknown)}; known: {', '.join(explainers.EXPLAINERS)}")
    if not controls["models"]:
        errors.append("choose at least one model")
    if not controls["methods"]:
        errors.append("choose at least one map")
    return errors


# --- drawing --------------------------------------------------------------------------------

def probability_chart(view: ModelView) -> alt.Chart:
    df = pd.DataFrame({"class": list(view.probabilities), "probability": list(view.probabilities.values())})
    return alt.Chart(df).mark_bar().encode(
        x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("class:N", sort="-x", title=None, axis=alt.Axis(labelOverlap=False, labelLimit=120)),
        color=alt.condition(alt.datum["class"] == view.top, alt.value("#d62728"), alt.value("#4c78a8")),
        tooltip=["class", alt.Tooltip("probability:Q", format=".3f")],
    ).properties(height=28 * len(df))


def probabilities_ui(views: list[ModelView]) -> None:
    for col, view in zip(st.columns(len(views)), views):
        with col:
            st.subheader(view.model)
            st.markdown(f"**{view.top}** ({view.probabilities[view.top]:.0%})")
            st.altair_chart(probability_chart(view), width="stretch")


def maps_ui(face: FaceAnalysis, views: list[ModelView], methods: list[str]) -> None:
    """One tab per map, the models side by side in it; then the input and STN views."""
    tabs = st.tabs([explainers.EXPLAINERS[m].title for m in methods] + ["Input and STN view"])
    for tab, method in zip(tabs, methods):
        with tab:
            st.caption(explainers.EXPLAINERS[method].about)
            for col, view in zip(st.columns(len(views)), views):
                with col:
                    m = view.maps.get(method)
                    if m is None:
                        st.info(f"{view.model}: {view.skipped.get(method, 'not computed')}")
                        continue
                    st.image(render.map_tile(face.crop, m, f"{view.model} · {view.target}", scale=6), width="stretch")
                    st.caption(map_caption(view.model, m))
                    if method == "regions":
                        st.caption(explainers.region_sentence(m, view.target) +
                                   ("" if not m.note else f" ({m.note})"))
                    elif method == "occlusion-flip" and float(m.values.max()) == 0:
                        st.caption("No window changes the predicted label: the answer is robust to occlusion here.")
    with tabs[-1]:
        for col, view in zip(st.columns(len(views)), views):
            with col:
                st.markdown(f"**{view.model}**")
                a, b = st.columns(2)
                a.image(render.grey_image(face.crop, 6), caption="48x48 input", width="stretch")
                if view.stn_view is None:
                    b.info("This model has no spatial transformer.")
                else:
                    b.image(render.grey_image(view.stn_view, 6), caption="STN-warped view", width="stretch")
                    st.caption("θ = " + np.array2string(view.theta, precision=2, suppress_small=True))


def map_caption(model: str, m) -> str:
    """The map in words (for those who cannot see the picture): its range and where it peaks."""
    if m.outline is not None:
        return f"{model}: the STN samples a quadrilateral turned {explainers.turned_degrees(m.outline):+.0f}°"
    r, c = np.unravel_index(int(np.argmax(m.values)), m.values.shape)
    if float(m.values.max()) <= 0:
        return f"{model}: {m.unit} from {m.values.min():.3g} to {m.values.max():.3g}"
    return f"{model}: {m.unit} from {m.values.min():.3g} to {m.values.max():.3g}, highest at row {r}, column {c}"


def faithfulness_ui(views: list[ModelView]) -> None:
    """Insertion - deletion AUC of every map per model, the random map as baseline; the best per model first."""
    scored = [v for v in views if v.faithfulness]
    if not scored:
        return
    titles = {n: m.title for n, m in explainers.EXPLAINERS.items()} | {"random": "random map (baseline)"}
    rows = sorted({n for v in scored for n in v.faithfulness}, key=lambda n: (n == "random", n))
    df = pd.DataFrame({v.model: [v.faithfulness.get(n, {}).get("difference") for n in rows] for v in scored},
                      index=[titles.get(n, n) for n in rows])
    st.markdown("**Which map to trust for this face** — insertion minus deletion area (higher: the map's top "
                "pixels carry more of the class's probability); a map no better than the random one says little.")
    st.dataframe(df.style.format("{:+.3f}", na_rep="–").highlight_max(axis=0, color="#c7e9c0"), width="stretch")
    st.caption("; ".join(f"{v.model}: most faithful **{titles[v.most_faithful()]}**" for v in scored if v.most_faithful()))


def agreement_ui(views: list[ModelView]) -> None:
    from deep_emotion.classes import canonical

    said = {v.model: v.top for v in views}
    line = "; ".join(f"**{m}**: {t}" for m, t in said.items())
    if len({canonical(t) for t in said.values()}) > 1:
        st.warning(f"The models disagree — {line}")
    else:
        st.success(f"All models agree — {line}")


def about_ui(models: dict) -> None:
    with st.expander("About the models and the maps"):
        st.markdown(
            "- **STN view**: the spatial transformer's affine warp of the face, what the rest of the network sees; "
            "**STN attention** outlines the part of the input it samples.\n"
            "- **Occlusion (paper, flip)**: a black window×window square slides over the face with the chosen stride; "
            "each pixel counts the positions whose occlusion changes the predicted label (Minaee & Abdolrashidi, "
            "Fig. 12). **(drop)**: the average fall of the class's probability over the windows covering each pixel.\n"
            "- **Captum Occlusion**: the same sliding occlusion on the softmax output; it equals the *drop* map by "
            "construction, and it is signed: blue regions *raise* the class's probability when hidden.\n"
            "- **Integrated Gradients** (50 steps from a black face), **SmoothGrad** (20 noisy copies) and "
            "**Grad-CAM** (the last convolution, carried back through the STN) are Captum's gradient methods.\n"
            "- **Facial regions**: eyes, brows, nose, mouth (placed from the face's landmarks) and the rest, each "
            "blurred away in turn.\n"
            "- Red is evidence for the class, blue against; unsigned maps run from black (0) to yellow.")
        st.markdown(
            "- **Probabilities** are corrected as each model card says, each step kept only where it helped on "
            "validation faces: averaged with the mirrored face, shifted against the training set's class "
            "frequencies (so that rare expressions such as disgust are not drowned), and tempered so that a 70 % "
            "answer is right about 70 % of the time.")
        for name, (_, card) in models.items():
            test = card["metrics"]["test"]
            shipped = card.get("posthoc", {}).get("metrics", {}).get("test", {}).get("posthoc")
            line = (f"**{name}** — {card['dataset']}, test accuracy **{test['accuracy']:.1%}** on {test['n']} images "
                    f"(protocol: {card.get('protocol_note', card['protocol'])})")
            if shipped and "balanced_accuracy" in test:
                line += (f"; as calibrated here: accuracy {shipped['accuracy']:.1%}, balanced accuracy "
                         f"{shipped['balanced_accuracy']:.1%}, against {test['balanced_accuracy']:.1%} "
                         "for the network alone")
            st.markdown(line)
            classes = card["classes"]
            cm = np.asarray(card["confusion"], dtype=float)
            rows = cm / np.maximum(cm.sum(1, keepdims=True), 1)
            df = pd.DataFrame([{"true": classes[i], "predicted": classes[j], "share": rows[i, j], "count": int(cm[i, j])}
                               for i in range(len(classes)) for j in range(len(classes))])
            st.altair_chart(alt.Chart(df).mark_rect().encode(
                x=alt.X("predicted:N", sort=classes), y=alt.Y("true:N", sort=classes),
                color=alt.Color("share:Q", scale=alt.Scale(scheme="blues", domain=[0, 1])),
                tooltip=["true", "predicted", "count", alt.Tooltip("share:Q", format=".2f")],
            ).properties(width=300, height=300, title=f"{name}: confusion (rows: true class)"))


def main() -> None:
    st.set_page_config(page_title="Deep-Emotion explorer", layout="wide")
    st.title("Deep-Emotion explorer")
    st.caption("Attentional CNN of Minaee & Abdolrashidi: what each model predicts, and where it looks.")
    models = load_models()
    if not models:
        st.error("No bundled checkpoints found in checkpoints/.")
        return
    query = params_from_query()
    data, label = input_ui()
    classes = sorted({c for _, card in models.values() for c in card["classes"]})
    controls = controls_ui(list(models), default_models({n: card for n, (_, card) in models.items()}), classes, query)
    errors = validate(controls, query, list(models))
    for e in errors:
        st.error(e)
    if errors:
        return
    if data is None:
        st.info("Upload a photo, take one with the camera, or pick the example.")
        return

    detect = True
    try:
        with st.spinner("Finding faces…"):
            faces, size, preview, scale = cached_faces(data, True, label)
    except DeepEmotionError as e:
        st.error(str(e))
        return
    if not faces:
        st.warning("No face was found in this photo.")
        if not st.checkbox("Treat the whole image as the face", key="whole_image"):
            return
        faces, size, preview, scale = cached_faces(data, False, label)
        detect = False
    elif not faces[0].detected:
        st.warning("No face was found, but the picture is small and square like a cut-out face, so all of it was "
                   "read as one face. If it holds no face, the predictions below mean nothing.")

    left, right = st.columns([1, 2])
    with left:
        labels = [f"face {i + 1} ({f.box[2] - f.box[0]:.0f}x{f.box[3] - f.box[1]:.0f} px)" for i, f in enumerate(faces)]
        pick = st.selectbox("Face", range(len(faces)), format_func=lambda i: labels[i]) if len(faces) > 1 else 0
        boxes = [tuple(v * scale for v in f.box) for f in faces]
        st.image(render.draw_boxes(preview, boxes, pick), caption=f"{label}: {len(faces)} face(s), {size[0]}x{size[1]}")
    face = faces[pick]

    options = AnalysisOptions(tuple(controls["methods"]), controls["window"], controls["stride"], controls["target"],
                              controls["faithfulness"], detect)
    views = []
    with right:
        progress = st.progress(0.0, text="Explaining…")
        for k, name in enumerate(controls["models"]):
            progress.progress(k / len(controls["models"]), text=f"Explaining with {name}…")
            views.append(cached_view(name, data, label, detect, pick, json.dumps(options.to_dict())))
        progress.empty()
        agreement_ui(views)
        probabilities_ui(views)
    maps_ui(FaceAnalysis(pick, face.box, face.probability, face.crop, {}, face.detected), views, controls["methods"])
    faithfulness_ui(views)

    analysis = Analysis([FaceAnalysis(pick, face.box, face.probability, face.crop, {v.model: v for v in views},
                                      face.detected)], detect and face.detected, size, options)
    png = io.BytesIO()
    render.panel(face, views, controls["methods"]).save(png, format="PNG")
    a, b = st.columns(2)
    digest = hashlib.sha1(data).hexdigest()[:8]
    a.download_button("Download panel (PNG)", png.getvalue(), f"deep-emotion-{digest}.png", "image/png")
    b.download_button("Download figures (JSON)", json.dumps({"image": label, **analysis.to_dict()}, indent=2),
                      f"deep-emotion-{digest}.json", "application/json")
    about_ui(models)


if __name__ == "__main__":
    main()
