"""The photo page: a photo's faces, what each chosen model makes of the face picked, its maps, and the downloads.

Every number comes from the one pipeline (`app.pipeline`): `find_faces`, `predict`, `explain`, `face_picture`;
every sentence from `deep_emotion.describe`. Results are cached on the photo's bytes, so a rerun that changes
nothing costs nothing; the pipeline's slots bound how many photos are analysed at once.
"""

from __future__ import annotations

import hashlib
import io
import json

import charts  # beside this file
import numpy as np
import streamlit as st
from PIL import Image

from deep_emotion import Analysis, AnalysisOptions, DeepEmotionError, FaceAnalysis, ModelView, describe, load_image
from deep_emotion.explain import render
from deep_emotion.serve import params

PREVIEW_SIDE = 1024
MAP_SIDE = 288  # pixels of the face's square under each map (6x the model's 48)
MAPS_PER_ROW = 4  # models side by side before wrapping to the next row
CARDS_PER_ROW = 3  # probability cards side by side (in the right-hand column): each chart >= 140 px at 1280 px
WHOLE_IMAGE = "Treat the whole image as the face"
THUMB_SIDE = 80  # pixels of each face in the gallery under a group photo


@st.cache_data(show_spinner=False, max_entries=32)
def cached_faces(
    _pipe, image_bytes: bytes, detect: bool, name: str
) -> tuple[list, tuple[int, int], Image.Image, float]:
    """Faces of the photo (`Pipeline.find_faces`), its size, and a preview (longer side <= 1024) with the factor
    to draw boxes on it."""
    with _pipe.slot():
        image = load_image(image_bytes, name=name)
        scale = min(1.0, PREVIEW_SIDE / max(image.size))
        preview = image if scale == 1.0 else image.resize((round(image.width * scale), round(image.height * scale)))
        return _pipe.find_faces(image, detect), image.size, preview, scale


@st.cache_data(show_spinner=False, max_entries=64)
def cached_face_picture(_pipe, image_bytes: bytes, name: str, index: int, detect: bool) -> np.ndarray:
    """The face's square of the photo in grey at MAP_SIDE pixels (`Pipeline.face_picture`): the maps are drawn
    over it at the photo's resolution."""
    face = cached_faces(_pipe, image_bytes, detect, name)[0][index]
    return _pipe.face_picture(load_image(image_bytes, name=name), face, MAP_SIDE)


@st.cache_data(show_spinner=False, max_entries=16)
def cached_thumbnails(_pipe, image_bytes: bytes, name: str, detect: bool) -> list[np.ndarray]:
    """Every face's square of the photo at THUMB_SIDE pixels (`Pipeline.face_picture`), for the gallery."""
    faces = cached_faces(_pipe, image_bytes, detect, name)[0]
    image = load_image(image_bytes, name=name)
    return [_pipe.face_picture(image, face, THUMB_SIDE) for face in faces]


@st.cache_data(show_spinner=False, max_entries=64)
def cached_predictions(_pipe, image_bytes: bytes, name: str, detect: bool, models: tuple[str, ...]) -> list:
    """Every face by every chosen model (`Pipeline.predict`: one batched pass per model)."""
    faces = cached_faces(_pipe, image_bytes, detect, name)[0]
    with _pipe.slot():
        return _pipe.predict(faces, list(models))


@st.cache_data(show_spinner=False, max_entries=256)
def cached_view(
    _pipe, model: str, image_bytes: bytes, name: str, detect: bool, pick: int, options_json: str
) -> ModelView:
    """One model's view of one face (`Pipeline.explain`, per model: adding a model costs only it)."""
    face = cached_faces(_pipe, image_bytes, detect, name)[0][pick]
    options = AnalysisOptions.from_dict(json.loads(options_json))
    with _pipe.slot():
        return _pipe.explain(face, [model], options)[model]


def page(pipe, data: bytes, label: str, controls: dict) -> bool:
    """Find the photo's faces (or, when asked, read the whole image as one), then the results; False when there
    is nothing to show (an unreadable photo, no face)."""
    waiting = st.empty()
    if pipe.busy():
        waiting.info("Other photos are being analysed on this server; yours is queued and starts when one is done…")
    try:
        with st.spinner("Finding faces…"):
            faces = cached_faces(pipe, data, True, label)[0]
    except DeepEmotionError as e:
        waiting.empty()
        st.error(str(e))
        return False
    waiting.empty()
    detect = True
    if not faces:
        note = st.empty()  # above the box, filled once its value is known
        if not st.checkbox(WHOLE_IMAGE, key="whole_image"):
            note.warning(describe.NO_FACE)
            return False
        detect = False
        note.info(describe.faces_found(cached_faces(pipe, data, False, label)[0], asked_whole_image=True))
    elif describe.faces_found(faces):
        st.warning(describe.faces_found(faces))
    results(pipe, data, label, detect, controls)
    return True


@st.fragment
def results(pipe, data: bytes, label: str, detect: bool, controls: dict) -> None:
    """Faces, predictions and maps of one photo. A fragment: picking another face or map reruns only this part
    of the page (the photo's faces and every view come from the caches)."""
    faces, size, preview, scale = cached_faces(pipe, data, detect, label)
    chosen = tuple(controls["models"])
    predictions = cached_predictions(pipe, data, label, detect, chosen)
    tops = [p.majority for p in predictions]
    digest = hashlib.sha1(data).hexdigest()[:8]
    pick_key, table_key = f"face_{digest}_{detect}", f"faces_table_{digest}_{detect}"  # one pair per photo
    left, right = st.columns([1, 2])
    with left:
        labels = [
            f"face {i + 1}: {tops[i]} ({f.box[2] - f.box[0]:.0f}x{f.box[3] - f.box[1]:.0f} px)"
            for i, f in enumerate(faces)
        ]
        pick = (
            st.selectbox("Face", range(len(faces)), format_func=lambda i: labels[i], key=pick_key)
            if len(faces) > 1
            else 0
        )
        boxes = [tuple(v * scale for v in f.box) for f in faces]
        st.image(
            # many faces: numbers only on the photo (their emotions are in the gallery and the table below)
            render.draw_boxes(preview, boxes, pick, tops if len(faces) <= 6 else None, shown_width=280),
            caption=f"{label}: {f'{len(faces)} face(s)' if detect else 'the whole image as one face'}, "
            f"{size[0]}x{size[1]}",
            width="stretch",
        )
        if len(faces) > 1:  # the faces side by side, wrapping at any width: number and majority emotion
            st.image(
                cached_thumbnails(pipe, data, label, detect),
                caption=[f"{'▶ ' if i == pick else ''}{i + 1} · {top}" for i, top in enumerate(tops)],
                width=THUMB_SIDE,
            )
    if len(faces) > 1:
        with left if len(chosen) <= 2 else st.container():  # under the photo; a wider table under both columns
            st.caption("Every face, every chosen model (top class and its probability); choose a row to explain it:")
            st.dataframe(
                charts.summary_table(predictions),
                width="content",
                hide_index=False,  # the face numbers
                key=table_key,
                on_select=lambda: choose_row(table_key, pick_key),
                selection_mode="single-row",
            )
    face = faces[pick]

    methods = controls["methods"]
    titles = params.method_titles()
    with right:
        shown = st.radio(
            "Map",
            methods,
            format_func=lambda m: titles.get(m, m),
            horizontal=True,
            help="Only the map shown is computed (each one once per face and model); scoring "
            "faithfulness computes them all.",
        )
    # the work of this page: the map shown, or every map when their faithfulness is asked for
    options = AnalysisOptions(
        tuple(methods) if controls["faithfulness"] else (shown,),
        controls["window"],
        controls["stride"],
        controls["target"],
        controls["faithfulness"],
        detect,
    )
    views = []
    with right:
        progress = st.progress(0.0, text="Explaining…")
        for k, name in enumerate(chosen):
            progress.progress(
                k / len(chosen),
                text=f"Explaining face {pick + 1} with {name} ({k + 1} of {len(chosen)})"
                + ("; the server is busy with another photo, so this may wait…" if pipe.busy() else "…"),
            )
            views.append(cached_view(pipe, name, data, label, detect, pick, json.dumps(options.to_dict())))
        progress.empty()
        agree, line = describe.views_agreement(views)
        (st.success if agree else st.warning)(line)
        consensus = pipe.consensus({v.model: v.probabilities for v in views})
        if consensus:
            st.info(describe.consensus_sentence(consensus) + ": their calibrated probabilities, combined.")
        probabilities_ui(views + ([consensus_view(consensus)] if consensus else []))
    maps_ui(cached_face_picture(pipe, data, label, pick, detect), views, shown, options.window)
    faithfulness_ui(views)

    analysis = Analysis(
        [FaceAnalysis(pick, face.box, face.probability, face.crop, {v.model: v for v in views}, face.detected)],
        detect and face.detected,
        size,
        options,
    )
    a, b = st.columns(2)
    a.download_button(
        "Download panel (PNG)",
        lambda: panel_png(face, views, list(options.methods)),
        f"deep-emotion-{digest}.png",
        "image/png",
    )
    b.download_button(
        "Download figures (JSON)",
        json.dumps({"image": label, **analysis.to_dict()}, indent=2),
        f"deep-emotion-{digest}.json",
        "application/json",
    )
    st.caption(f"{label}: face {pick + 1} of {len(faces)} explained by {len(views)} model(s).")


def choose_row(table_key: str, pick_key: str) -> None:
    """A row chosen in the summary table chooses its face (the table's rows are the faces, in order)."""
    rows = st.session_state[table_key].selection.rows
    if rows:
        st.session_state[pick_key] = rows[0]


def consensus_view(consensus: dict[str, float]) -> ModelView:
    """The consensus as a row of its own beside the models (probabilities only: it has no maps)."""
    top = max(consensus, key=consensus.get)
    return ModelView("consensus", consensus, top, top, None, None)


def rows_of(items: list, n: int = MAPS_PER_ROW) -> list[list]:
    return [items[i : i + n] for i in range(0, len(items), n)]


def probabilities_ui(views: list[ModelView]) -> None:
    for row in rows_of(views, CARDS_PER_ROW):
        for col, view in zip(st.columns(CARDS_PER_ROW if len(views) > CARDS_PER_ROW else len(row)), row):
            with col:
                st.subheader(view.model.replace("-", "\u2011"), anchor=False)  # no line break at the hyphen
                st.markdown(f"**{view.top}** ({view.probabilities[view.top]:.0%})")
                st.vega_lite_chart(
                    spec=charts.probability_chart(view, max(len(v.probabilities) for v in views)), width="stretch"
                )


def maps_ui(picture: np.ndarray, views: list[ModelView], method: str, window: int) -> None:
    """The chosen map type for every model, side by side (rows of MAPS_PER_ROW), drawn over the face's square of the
    photo with one colour scale, each with its sentence; the input and STN views below."""
    limit = render.shared_limits(views, [method])[method]
    width = MAPS_PER_ROW if len(views) > MAPS_PER_ROW else len(views)
    with st.container(key="maps"):
        st.caption(params.method_about(method) + " One colour scale for all models.")
        for row in rows_of(views):
            for col, view in zip(st.columns(width), row):
                with col:
                    m = view.maps.get(method)
                    if m is None:
                        why = dict(zip(view.skipped, describe.skipped(view)))
                        st.info(f"{view.model}: {why.get(method, 'not computed')}")
                        continue
                    st.image(
                        render.map_tile(
                            picture, m, f"{view.model} · {view.target}", scale=1, text_size=18, limit=limit
                        ),
                        width="stretch",
                    )
                    st.caption(describe.map_caption(view.model, m, window))
                    if describe.region_sentence(view):
                        st.caption(describe.region_sentence(view))
    with st.expander("The face as each model reads it, and the STN's view"):
        for row in rows_of(views):
            for col, view in zip(st.columns(width), row):
                with col:
                    st.markdown(f"**{view.model}**")
                    a, b = st.columns(2)
                    a.image(render.grey_image(picture, 1), caption="the face (read at 48x48)", width="stretch")
                    if view.stn_view is None:
                        b.info("This model has no spatial transformer.")
                    else:
                        b.image(render.grey_image(view.stn_view, 6), caption="STN-warped view", width="stretch")
                        st.caption("θ = " + np.array2string(view.theta, precision=2, suppress_small=True))


def faithfulness_ui(views: list[ModelView]) -> None:
    """Insertion - deletion AUC of every map per model, the random map as baseline; the best per model marked."""
    if not any(v.faithfulness for v in views):
        return
    st.markdown(
        "**Which map to trust for this face** — insertion minus deletion area (higher: the map's top "
        "pixels carry more of the class's probability); a map no better than the random one says little."
    )
    table = charts.faithfulness_table(views)
    st.dataframe(table.style.format("{:+.3f}", na_rep="–").highlight_max(axis=0, color="#c7e9c0"), width="stretch")
    for v in views:
        if describe.most_faithful(v):
            st.caption(f"{v.model}: {describe.most_faithful(v)}")


def panel_png(face, views: list[ModelView], methods: list[str]) -> bytes:
    """The panel of every map of every model, built only when downloaded."""
    png = io.BytesIO()
    render.panel(face, views, methods).save(png, format="PNG")
    return png.getvalue()
