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

from deep_emotion import explain, render
from deep_emotion.analysis import ModelView, find_faces, view_face
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
def cached_view(name: str, crop: np.ndarray, window: int, stride: int, mode: str, captum: bool) -> ModelView:
    return view_face(name, load_models()[name], crop, window, stride, mode, captum)


# --- inputs ---------------------------------------------------------------------------------

def params_from_query() -> dict:
    """Optional ?window=&stride=&mode=&models= in the URL (shareable links); bad values are reported."""
    q = st.query_params
    out, errors = {}, []
    for key in ("window", "stride"):
        if key in q:
            try:
                out[key] = int(q[key])
            except ValueError:
                errors.append(f"{key}={q[key]!r} is not a whole number")
    if "mode" in q:
        out["mode"] = q["mode"]
    if "models" in q:
        out["models"] = [m for m in q["models"].split(",") if m]
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


def controls_ui(names: list[str], defaults: list[str], query: dict) -> dict:
    q = query["values"]
    chosen = st.sidebar.multiselect("Models", names, default=[m for m in q.get("models", defaults) if m in names] or defaults,
                                    help="The -wide models (issue 8's wider network) are more accurate and ~12x slower to explain.")
    window = st.sidebar.slider("Occlusion window (pixels of the 48x48 face)", 1, MAX_WINDOW,
                               min(max(q.get("window", 8), 1), MAX_WINDOW))
    stride = st.sidebar.slider("Stride", 1, MAX_STRIDE, min(max(q.get("stride", 2), 1), MAX_STRIDE))
    mode = st.sidebar.radio("Paper map", ["flip", "drop"], index=1 if q.get("mode") == "drop" else 0, horizontal=True,
                            help="flip: how many occluding windows change the predicted label (the paper). "
                                 "drop: average fall of the predicted class's probability.")
    captum = st.sidebar.checkbox("Captum Occlusion too", value=True)
    passes = explain.n_windows(48, window, stride)
    st.sidebar.caption(f"Cost: {passes} occluded forward passes per face and model"
                       + (f" (+{passes} for Captum)" if captum else ""))
    return {"models": chosen, "window": window, "stride": stride, "mode": mode, "captum": captum}


def validate(controls: dict, query: dict, known: list[str]) -> list[str]:
    errors = list(query["errors"])
    q = query["values"]
    if "window" in q and not 1 <= q["window"] <= MAX_WINDOW:
        errors.append(f"window {q['window']} is outside 1..{MAX_WINDOW}")
    if "stride" in q and not 1 <= q["stride"] <= MAX_STRIDE:
        errors.append(f"stride {q['stride']} is outside 1..{MAX_STRIDE}")
    if "mode" in q and q["mode"] not in explain.MODES:
        errors.append(f"mode {q['mode']!r} is not one of {', '.join(explain.MODES)}")
    unknown = [m for m in q.get("models", []) if m not in known]
    if unknown:
        errors.append(f"unknown model(s) {', '.join(unknown)}; bundled: {', '.join(known)}")
    if not controls["models"]:
        errors.append("choose at least one model")
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


def model_column(view: ModelView, face: Face, mode: str) -> None:
    st.subheader(view.model)
    st.markdown(f"**{view.top}** ({view.probabilities[view.top]:.0%})")
    st.altair_chart(probability_chart(view), width="stretch")
    a, b = st.columns(2)
    a.image(render.grey_image(face.crop), caption="48x48 input", width="stretch")
    b.image(render.grey_image(view.stn_view), caption="STN-warped view", width="stretch")
    st.caption("θ = " + np.array2string(view.theta, precision=2, suppress_small=True))
    signed = mode == "drop"
    a, b = st.columns(2)
    a.image(render.map_overlay(face.crop, view.paper_map, signed), caption=f"paper map ({mode})", width="stretch")
    if view.captum_map is not None:
        b.image(render.map_overlay(face.crop, view.captum_map, True), caption="Captum Occlusion", width="stretch")
    st.caption(map_caption(f"paper map ({mode})", view.paper_map, "label flips" if not signed else "probability"))
    if view.captum_map is not None:
        st.caption(map_caption("Captum", view.captum_map, f"probability of {view.top}"))


def map_caption(title: str, m: np.ndarray, unit: str) -> str:
    """The colour scale in words, and where the map peaks (row, column of the 48x48 input)."""
    r, c = np.unravel_index(int(np.argmax(m)), m.shape)
    scale = f"0 … {m.max():.0f}" if unit == "label flips" else f"±{np.abs(m).max():.3f} (red: evidence, blue: against)"
    return f"{title}: {scale} {unit}; peak at row {r}, column {c}"


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
            "- **STN view**: the spatial transformer's affine warp of the face, what the rest of the network sees.\n"
            "- **Paper map (flip)**: a black window×window square slides over the face with the chosen stride; each "
            "pixel counts the positions whose occlusion changes the predicted label (Minaee & Abdolrashidi, Fig. 12).\n"
            "- **Paper map (drop)**: the average fall of the predicted class's probability over the windows covering "
            "each pixel — graded instead of yes/no.\n"
            "- **Captum Occlusion**: Captum's implementation of the same sliding occlusion on the softmax output; "
            "it equals the *drop* map by construction (a check that the two implementations agree), and unlike "
            "*flip* it is signed: blue regions *raise* the class's probability when hidden.\n"
            "- Windows at the border are clipped to the image (Captum's convention).")
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
    controls = controls_ui(list(models), default_models({n: card for n, (_, card) in models.items()}), query)
    errors = validate(controls, query, list(models))
    for e in errors:
        st.error(e)
    if errors:
        return
    if data is None:
        st.info("Upload a photo, take one with the camera, or pick the example.")
        return

    try:
        faces, size, preview, scale = cached_faces(data, True, label)
    except DeepEmotionError as e:
        st.error(str(e))
        return
    if not faces:
        st.warning("No face was found in this photo.")
        if not st.checkbox("Treat the whole image as the face", key="whole_image"):
            return
        faces, size, preview, scale = cached_faces(data, False, label)
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

    with right, st.spinner("Computing occlusion maps…"):
        views = [cached_view(name, face.crop, controls["window"], controls["stride"], controls["mode"], controls["captum"])
                 for name in controls["models"]]
        agreement_ui(views)
        columns = st.columns(len(views))
        for col, view in zip(columns, views):
            with col:
                model_column(view, face, controls["mode"])

    result = {"image": label, "face": pick + 1, "box": [round(v, 1) for v in face.box], **{k: controls[k] for k in ("window", "stride", "mode")},
              "models": {v.model: v.to_dict() for v in views}}
    png = io.BytesIO()
    render.panel(face, views, controls["mode"]).save(png, format="PNG")
    a, b = st.columns(2)
    digest = hashlib.sha1(data).hexdigest()[:8]
    a.download_button("Download panel (PNG)", png.getvalue(), f"deep-emotion-{digest}.png", "image/png")
    b.download_button("Download figures (JSON)", json.dumps(result, indent=2), f"deep-emotion-{digest}.json", "application/json")
    about_ui(models)


if __name__ == "__main__":
    main()
