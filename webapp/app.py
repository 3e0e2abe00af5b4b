"""Deep-Emotion explorer (Streamlit): upload a photo, see what each model predicts and where it looks.

Run: `make run` (or `streamlit run webapp/app.py`). This file only collects inputs and draws results;
everything else is `deep_emotion.analysis.analyze` and friends.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import threading
import time
from pathlib import Path

# Torch's idle threads sleep instead of spinning (set before torch is first imported). Measured with
# benchmarks/load.py: spinning threads took ~30 % of the server's CPU per upload, for no gain in speed.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import altair as alt  # noqa: E402
import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from deep_emotion import explain
from deep_emotion.explain import render
from deep_emotion.results import DEFAULT_METHODS, Analysis, AnalysisOptions, FaceAnalysis, ModelView, analyze, find_faces, input_size, summarize
from deep_emotion.classes import canonical
from deep_emotion.models.card import checkpoint_dir, default_models, list_checkpoints, model_order
from deep_emotion.models.checkpoints import load_checkpoint
from deep_emotion.errors import DeepEmotionError
from deep_emotion.faces.framing import DEFAULT_FRAMING, crop_face
from deep_emotion.faces.detect import Face
from deep_emotion.faces.images import load_image
from deep_emotion.video.live import LiveReader
from deep_emotion.models.inputs import to_grey_square
from deep_emotion.video.clips import VIDEO_TYPES, frame_at, probe, write_clip
from deep_emotion.video.analysis import VideoAnalysis, analyze_video

# the example photo; hosts may point DEEP_EMOTION_EXAMPLE at another one
EXAMPLE = Path(os.environ.get("DEEP_EMOTION_EXAMPLE") or Path(__file__).parent / "examples" / "astronaut.jpg")
UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif"]
PREVIEW_SIDE = 1024
MAP_SIDE = 288  # pixels of the face's square under each map (6x the model's 48)
MAPS_PER_ROW = 4  # models side by side before wrapping to the next row


@st.cache_resource
def work_slots() -> threading.BoundedSemaphore:
    """Process-wide limit on photos analysed at once (DEEP_EMOTION_WORKERS, default 2): on a 2-core machine, two
    at once finished 4 visitors' uploads ~1.2x sooner than one at a time (benchmarks/load.py, README "Under
    load"); more would only share the cores, while their photos stack their memory. Cached results need no slot."""
    return threading.BoundedSemaphore(max(1, int(os.environ.get("DEEP_EMOTION_WORKERS", "2"))))


def busy() -> bool:
    """Whether every slot is taken (another visitor's photo is being analysed)."""
    slots = work_slots()
    if slots.acquire(blocking=False):
        slots.release()
        return False
    return True


@st.cache_resource(show_spinner="Loading models…")
def load_models() -> dict:
    # as the cards ship them: flip averaging, class-prior adjustment and temperature where they helped on validation
    return {name: load_checkpoint(name, posthoc=True) for name in list_checkpoints()}


@st.cache_data(show_spinner=False, max_entries=32)
def cached_faces(image_bytes: bytes, detect: bool, name: str) -> tuple[list[Face], tuple[int, int], Image.Image, float]:
    """Faces of the photo, its size, and a preview (longer side <= 1024) with the factor to draw boxes on it."""
    with work_slots():
        return _faces(image_bytes, detect, name)


def _faces(image_bytes: bytes, detect: bool, name: str) -> tuple[list[Face], tuple[int, int], Image.Image, float]:
    image = load_image(image_bytes, name=name)
    scale = min(1.0, PREVIEW_SIDE / max(image.size))
    preview = image if scale == 1.0 else image.resize((round(image.width * scale), round(image.height * scale)))
    return find_faces(image, detect=detect), image.size, preview, scale


@st.cache_data(show_spinner=False, max_entries=64)
def cached_face_picture(image_bytes: bytes, name: str, index: int, detect: bool) -> np.ndarray:
    """The face's square of the photo in grey at MAP_SIDE pixels (the same square as the 48x48 crop): the maps
    are drawn over it at the photo's resolution."""
    image = load_image(image_bytes, name=name)
    face = cached_faces(image_bytes, detect, name)[0][index]
    if not face.detected:
        return to_grey_square(image, MAP_SIDE)
    return crop_face(image, face.box, size=MAP_SIDE, landmarks=face.landmarks, framing=DEFAULT_FRAMING)


@st.cache_data(show_spinner=False, max_entries=64)
def cached_summary(image_bytes: bytes, name: str, detect: bool, models: tuple[str, ...]) -> list[dict]:
    """`analysis.summarize`: every face x every chosen model, top class and probability."""
    faces = cached_faces(image_bytes, detect, name)[0]
    with work_slots():
        return summarize(faces, {m: load_models()[m] for m in models})


@st.cache_data(show_spinner=False, max_entries=256)
def cached_view(name: str, image_bytes: bytes, label: str, detect: bool, pick: int, options_json: str) -> ModelView:
    """One model's view of one face: `analyze` on the cached faces (per model, so adding a model costs only it)."""
    faces = cached_faces(image_bytes, detect, label)[0]
    options = AnalysisOptions.from_dict(json.loads(options_json))
    with work_slots():
        return analyze(None, {name: load_models()[name]}, options, faces=faces, face_indices=[pick]).faces[0].views[name]


def summary_ui(rows: list[dict]) -> None:
    st.caption("Every face, every chosen model (top class and its probability):")
    st.dataframe(summary_table(rows), width="content")


def summary_table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"face": r["face"], **{m: f"{v['top']} {v['probability']:.0%}" for m, v in r["models"].items()}}
                         for r in rows]).set_index("face")


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
    if "target" in q:
        out["target"] = q["target"]
    return {"values": out, "errors": errors}


def input_ui() -> tuple[bytes | None, str, str]:
    """Upload, camera or the example photo: the source, the image bytes and a label ("Video": no bytes yet,
    see `video_ui`)."""
    source = st.sidebar.radio("Source", ["Example", "Upload", "Camera", "Video", "Live"], horizontal=True, key="source",
                              help="A photo, a snapshot from the camera, a video clip (its faces over time), or "
                                   "the webcam live (where the browser can reach this server directly).")
    return (source, *photo_input(source))


def photo_input(source: str) -> tuple[bytes | None, str]:
    if source in ("Video", "Live"):
        return None, ""
    if source == "Upload":
        f = st.sidebar.file_uploader("A photo with one or more faces", type=UPLOAD_TYPES)
        return (f.getvalue(), f.name) if f else (None, "")  # the name is only shown in messages
    if source == "Camera":
        f = st.sidebar.camera_input("Take a photo")
        return (f.getvalue(), "camera") if f else (None, "")
    return EXAMPLE.read_bytes(), EXAMPLE.name


def controls_ui(names: list[str], defaults: list[str], classes: list[str], side: int, query: dict) -> dict:
    """The sidebar; `side`: the models' input size (window up to it, stride up to half of it)."""
    q = query["values"]
    titles = {n: m.title for n, m in explain.EXPLAINERS.items()}
    choices = ["predicted"] + classes
    # widgets keep their state under a key (their identity: a changed default does not make a new widget); the URL
    # gives their first values. Passed as defaults, not written into st.session_state first: a click during the
    # page's first run can interrupt it between such a write and the widget, and the written value was then lost
    # (every control came up empty).
    first_models = [m for m in q.get("models", defaults) if m in names] or defaults
    first_methods = [m for m in q.get("methods", DEFAULT_METHODS) if m in titles] or list(DEFAULT_METHODS)
    first_target = q["target"] if q.get("target") in choices else "predicted"
    chosen = st.sidebar.multiselect("Models", names, default=first_models, key="models",
                                    help="fer2013 and ferplus learnt from photos of every kind, as uploads are. "
                                         "ckplus and jaffe learnt from posed expressions in a lab: for such photos. "
                                         "The -wide models (a wider attentional network) are more accurate and "
                                         "~12x slower to explain with occlusion.")
    methods = st.sidebar.multiselect("Maps", list(titles), default=first_methods, format_func=titles.get,
                                     key="methods", help="How each model's answer is explained; see 'About the maps' below.")
    target = st.sidebar.selectbox("Explain the class", choices, index=choices.index(first_target), key="target",
                                  help="The maps show evidence for this class (for each model, its own top class "
                                       "when 'predicted').")
    window = st.sidebar.slider(f"Occlusion window (pixels of the {side}x{side} face)", 1, side,
                               value=min(max(q.get("window", 8), 1), side), key="window")
    stride = st.sidebar.slider("Stride", 1, side // 2, value=min(max(q.get("stride", 2), 1), side // 2), key="stride")
    faithfulness = st.sidebar.checkbox("Score every map's faithfulness", value=False, key="faithfulness",
                                       help="Deletion and insertion: hide / reveal the pixels in the order a map ranks "
                                            "them and follow the class's probability. Computes and scores every "
                                            "chosen map: about 3x the work of showing one.")
    passes = explain.n_windows(side, window, stride)
    occluding = [m for m in methods if m.startswith("occlusion") or m == "captum-occlusion"]
    st.sidebar.caption(f"Occlusion cost: {passes} occluded forward passes per face and model" if occluding else
                       "No occlusion map chosen.")
    return {"models": chosen, "window": window, "stride": stride, "methods": methods,
            "target": None if target == "predicted" else target, "faithfulness": faithfulness}


def sync_url(controls: dict) -> None:
    """Write the controls into the URL's query (only what differs from it, so an unchanged URL causes no rerun)."""
    wanted = {"window": str(controls["window"]), "stride": str(controls["stride"]),
              "models": ",".join(controls["models"]), "methods": ",".join(controls["methods"])}
    if controls["target"]:
        wanted["target"] = controls["target"]
    if {k: st.query_params.get(k) for k in set(wanted) | set(st.query_params)} != wanted:
        st.query_params.from_dict(wanted)


def validate(controls: dict, query: dict, known: list[str], side: int, classes: list[str]) -> list[str]:
    errors = list(query["errors"])
    q = query["values"]
    if "window" in q and not 1 <= q["window"] <= side:
        errors.append(f"window {q['window']} is outside 1..{side}")
    if "stride" in q and not 1 <= q["stride"] <= side // 2:
        errors.append(f"stride {q['stride']} is outside 1..{side // 2}")
    unknown = [m for m in q.get("models", []) if m not in known]
    if unknown:
        errors.append(f"unknown model(s) {', '.join(unknown)}; bundled: {', '.join(known)}")
    if "target" in q and q["target"] not in classes:
        errors.append(f"target {q['target']!r} is not a class of the bundled models ({', '.join(classes)})")
    unknown = [m for m in q.get("methods", []) if m not in explain.EXPLAINERS]
    if unknown:
        errors.append(f"unknown map(s) {', '.join(unknown)}; known: {', '.join(explain.EXPLAINERS)}")
    if not controls["models"]:
        errors.append("choose at least one model")
    if not controls["methods"]:
        errors.append("choose at least one map")
    return errors


# --- video ----------------------------------------------------------------------------------

@st.cache_data(show_spinner=False)
def example_clip(chosen: str | None) -> tuple[bytes, str]:
    """The example clip and its name: `chosen` (DEEP_EMOTION_EXAMPLE_CLIP, where a host sets it), else four seconds
    made from the example photo (a slow zoom into the face, then a pan)."""
    if chosen:
        if not Path(chosen).is_file():
            raise DeepEmotionError(f"the example clip {chosen} does not exist (DEEP_EMOTION_EXAMPLE_CLIP)")
        return Path(chosen).read_bytes(), Path(chosen).name
    photo = Image.open(EXAMPLE).convert("RGB")
    w, h = photo.size
    frames = []
    base = min(w, h / 0.75)  # the widest 4:3 view inside the photo
    for k in range(40):
        z = 1 + 0.8 * min(k, 20) / 20  # zoom in for 2 s, then pan right for 2 s
        cw, ch = base / z, base / z * 0.75
        x0 = min((w - cw) / 2 + (0 if k < 20 else (k - 20) * w * 0.004), w - cw)
        y0 = min(max(0.0, h * 0.32 - ch / 2), h - ch)
        frames.append(photo.resize((480, 360), Image.Resampling.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch)))
    with tempfile.TemporaryDirectory() as folder:
        return write_clip(Path(folder) / "example.mp4", frames, fps=10).read_bytes(), "astronaut-clip.mp4"


def clip_analysis(clip: bytes, name: str, chosen: tuple[str, ...], fps: float, smooth: float) -> VideoAnalysis:
    """`analyze_video` with a progress bar; the last clip's result is kept for this visitor (scrubbing and
    changing the shown model cost nothing)."""
    key = (hashlib.sha1(clip).hexdigest(), chosen, fps, smooth)
    kept = st.session_state.get("clip_result")
    if kept and kept[0] == key:
        return kept[1]
    info = probe(clip, name)  # over the caps: refused before decoding
    total = max(1, round((info.seconds or 0) * fps))
    bar = st.progress(0.0, text="Analysing the clip…")
    if busy():
        bar.progress(0.0, text="Other analyses are running on this server; the clip is queued…")
    with work_slots():
        result = analyze_video(clip, {m: load_models()[m] for m in chosen}, fps=fps, name=name, smooth=smooth,
                               progress=lambda t, n: bar.progress(min(n / total, 1.0),
                                                                  text=f"Analysing the clip: {t:.1f} s, {n} frame(s)…"))
    bar.empty()
    st.session_state["clip_result"] = (key, result)
    return result


def timeline_charts(result: VideoAnalysis, model: str, at: float) -> dict[int, alt.LayerChart]:
    """Per face: every class's probability stacked over time, the top class as a band above it, and a rule at
    `at` (the frame explained below)."""
    classes = result.classes[model]
    end = max(result.info.seconds or 0.0, max(r.time for r in result.rows) + 1 / result.fps)
    x = alt.X("time:Q", title="time (s)", scale=alt.Scale(domain=[0, end], nice=False))
    colour = alt.Scale(domain=classes, scheme="tableau10")
    rule = alt.Chart(pd.DataFrame({"time": [at]})).mark_rule(color="black", strokeWidth=2).encode(x="time:Q")
    charts = {}
    step = 1 / result.fps
    for face in result.faces():
        rows = [r for r in result.rows if r.face == face]
        # each sample holds until the face's next sample (at most one step later: a gap shows as a gap)
        ends = [min(b.time, a.time + 1.5 * step) for a, b in zip(rows, rows[1:])] + [rows[-1].time + step]
        probs = pd.DataFrame([{"time": t, "class": c, "probability": float(p)}
                              for r, e in zip(rows, ends) for t in (r.time, e - 1e-3)  # a step, stacked per x
                              for c, p in zip(classes, r.probabilities[model])])
        tops = pd.DataFrame([{"time": r.time, "end": e, "band": 1.04, "top": 1.12,
                              "class": classes[int(r.probabilities[model].argmax())]} for r, e in zip(rows, ends)])
        area = alt.Chart(probs).mark_area(interpolate="linear").encode(
            x=x, y=alt.Y("probability:Q", stack="normalize", title="probability",
                         axis=alt.Axis(format="%", values=[0, 0.5, 1]), scale=alt.Scale(domain=[0, 1.12])),
            color=alt.Color("class:N", scale=colour, title="class; the band above: the top one",
                            legend=alt.Legend(orient="bottom", columns=4, titleLimit=400)), order=alt.Order("class:N"),
            tooltip=[alt.Tooltip("time:Q", format=".2f"), "class", alt.Tooltip("probability:Q", format=".2f")])
        band = alt.Chart(tops).mark_rect().encode(
            x=x, x2="end:Q", y="band:Q", y2="top:Q", color=alt.Color("class:N", scale=colour),
            tooltip=[alt.Tooltip("time:Q", format=".2f"), alt.Tooltip("class:N", title="top class")])
        charts[face] = alt.layer(area.properties(height=150), band, rule).properties(height=150, title=f"face {face}")
    return charts


def video_ui(chosen: list[str]) -> tuple[bytes | None, str]:
    """A clip's faces over time (one timeline per face), then the frame picked on the slider, as a PNG to analyse
    like a photo: its maps are computed for that frame only."""
    kind = st.sidebar.radio("Clip", ["Example clip", "Upload a clip"], horizontal=True, key="clip_source")
    if kind == "Upload a clip":
        f = st.sidebar.file_uploader("A video clip", type=list(VIDEO_TYPES),
                                     help="Up to 20 MB here (15 minutes and 4K at most); long clips take a while "
                                          "on a small server.")
        if not f:
            st.info("Upload a clip (mp4, webm, mov, avi, mkv or gif), or pick the example clip.")
            return None, ""
        clip, name = f.getvalue(), f.name
    else:
        clip, name = example_clip(os.environ.get("DEEP_EMOTION_EXAMPLE_CLIP"))
    fps = st.sidebar.select_slider("Frames analysed per second", [1, 2, 4, 8, 10], value=4, key="video_fps")
    smooth = st.sidebar.select_slider("Smoothing half-life (s)", [0.0, 0.25, 0.5, 1.0, 2.0], value=0.0,
                                      key="video_smooth",
                                      help="Each face's probabilities averaged over time: a frame's weight halves "
                                           "every this many seconds (0: each frame alone).")
    result = clip_analysis(clip, name, tuple(chosen), float(fps), float(smooth))
    if not result.rows:
        st.warning(f"No face was found in {name} ({result.frames} frame(s) looked at).")
        return None, ""
    model = chosen[0] if len(chosen) == 1 else st.radio("Timeline of", chosen, horizontal=True, key="video_model")
    timelines = st.container()
    times = {f"{t:.2f} s": t for t in sorted({r.time for r in result.rows})}  # frames with a face
    at = times[st.select_slider("Frame to explain (the black line)", list(times), key="video_at")]
    with timelines:
        for chart in timeline_charts(result, model, at).values():
            st.altair_chart(chart, width="stretch", height=330)  # the plot, its axis and the legend below
    text = io.StringIO()
    result.write_csv(text)
    st.download_button("Download the timeline (CSV)", text.getvalue(), f"{Path(name).stem}-emotions.csv", "text/csv")
    st.caption(f"{name}: {result.info.width}x{result.info.height}, {result.frames} frame(s) at {result.fps:g} per "
               f"second, {len(result.faces())} face(s) followed. Below: the frame at {at:.2f} s, explained as a "
               "photo (its faces found again, numbered by size, largest first).")
    t, frame = frame_at(clip, at, name)
    png = io.BytesIO()
    frame.save(png, format="PNG")
    return png.getvalue(), f"{name} at {t:.2f} s"


def ice_servers() -> list[dict]:
    """WebRTC relays from DEEP_EMOTION_ICE_SERVERS (JSON, e.g. a TURN server for a hosted app); none by default:
    the browser and this server must reach each other directly (the same machine or network)."""
    try:
        servers = json.loads(os.environ.get("DEEP_EMOTION_ICE_SERVERS", "[]"))
    except json.JSONDecodeError:
        st.sidebar.warning("DEEP_EMOTION_ICE_SERVERS is not valid JSON; no relay is used.")
        return []
    return servers if isinstance(servers, list) else []


def live_ui(chosen: list[str]) -> None:
    """The webcam, live: each frame's faces boxed with their id and top class (one model, smoothed over about
    half a second), and the largest face's occlusion map in a corner."""
    try:
        import av
        from streamlit_webrtc import WebRtcMode, webrtc_streamer
    except ImportError:
        st.info("The live webcam needs the streamlit-webrtc package (`pip install streamlit-webrtc`); the Camera "
                "source takes a snapshot instead.")
        return
    model = st.sidebar.selectbox("Live model", chosen, key="live_model")
    show_map = st.sidebar.checkbox("Live map of the largest face", value=True, key="live_map",
                                   help="Occlusion (drop) on a 12-pixel window with stride 6: coarser than the "
                                        "photo's, to keep up with the camera.")
    key = (model, show_map)
    if st.session_state.get("live_reader", (None,))[0] != key:
        st.session_state["live_reader"] = (key, LiveReader(load_models()[model], show_map=show_map))
    reader = st.session_state["live_reader"][1]

    def on_frame(frame: "av.VideoFrame") -> "av.VideoFrame":  # runs in streamlit-webrtc's thread: no st.* here
        out, _ = reader.process(frame.to_image(), time.monotonic())  # the stream's own clock may start anywhere
        return av.VideoFrame.from_image(out)

    webrtc_streamer(key="live", mode=WebRtcMode.SENDRECV, video_frame_callback=on_frame, async_processing=True,
                    media_stream_constraints={"video": {"width": 640, "height": 480}, "audio": False},
                    rtc_configuration={"iceServers": ice_servers()})
    st.caption("Press START and allow the camera. Frames the server cannot keep up with are skipped. This works "
               "when the browser reaches the server directly (running it on your machine); a hosted copy needs a "
               "TURN relay (DEEP_EMOTION_ICE_SERVERS) — there, use Camera for a snapshot or Video for a clip.")


# --- drawing --------------------------------------------------------------------------------

def probability_chart(view: ModelView, rows: int) -> dict:
    """Bars of the classes' probabilities, the top one red; `rows` bars' height for every model, so that charts of
    7- and 8-class models line up. A Vega-Lite spec written out: built with Altair, its validation cost the server
    more CPU per upload than all the rest of the page's drawing."""
    return {
        "data": {"values": [{"class": c, "probability": float(p)} for c, p in view.probabilities.items()]},
        "mark": "bar", "height": 22 * rows,
        "encoding": {
            "x": {"field": "probability", "type": "quantitative", "scale": {"domain": [0, 1]}, "title": None,
                  "axis": {"format": "%", "values": [0, 0.5, 1]}},
            "y": {"field": "class", "type": "nominal", "sort": "-x", "title": None,
                  "axis": {"labelOverlap": False, "labelLimit": 120}},
            "color": {"condition": {"test": f"datum['class'] === {json.dumps(view.top)}", "value": "#d62728"},
                      "value": "#4c78a8"},
            "tooltip": [{"field": "class", "type": "nominal"},
                        {"field": "probability", "type": "quantitative", "format": ".3f"}]}}


def rows_of(items: list, n: int = MAPS_PER_ROW) -> list[list]:
    return [items[i:i + n] for i in range(0, len(items), n)]


def probabilities_ui(views: list[ModelView]) -> None:
    for row in rows_of(views):
        for col, view in zip(st.columns(MAPS_PER_ROW if len(views) > MAPS_PER_ROW else len(row)), row):
            with col:
                st.subheader(view.model.replace("-", "\u2011"))  # no line break at the hyphen
                st.markdown(f"**{view.top}** ({view.probabilities[view.top]:.0%})")
                st.vega_lite_chart(spec=probability_chart(view, max(len(v.probabilities) for v in views)),
                                   width="stretch")


def maps_ui(picture: np.ndarray, views: list[ModelView], method: str) -> None:
    """The chosen map type for every model, side by side (rows of MAPS_PER_ROW), drawn over the face's square of the
    photo with one colour scale; the input and STN views below."""
    limit = render.shared_limits(views, [method])[method]
    width = MAPS_PER_ROW if len(views) > MAPS_PER_ROW else len(views)
    with st.container(key="maps"):
        st.caption(explain.EXPLAINERS[method].about + " One colour scale for all models.")
        for row in rows_of(views):
            for col, view in zip(st.columns(width), row):
                with col:
                    m = view.maps.get(method)
                    if m is None:
                        st.info(f"{view.model}: {view.skipped.get(method, 'not computed')}")
                        continue
                    st.image(render.map_tile(picture, m, f"{view.model} · {view.target}", scale=1, text_size=18,
                                             limit=limit), width="stretch")
                    st.caption(map_caption(view.model, m))
                    if method == "regions":
                        st.caption(explain.region_sentence(m, view.target) + ("" if not m.note else f" ({m.note})"))
                    elif method == "occlusion-flip" and float(m.values.max()) == 0:
                        st.caption("No window changes the predicted label: the answer is robust to occlusion here.")
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


def map_caption(model: str, m) -> str:
    """The map in words (for those who cannot see the picture): its range and where it peaks."""
    if m.outline is not None:
        return f"{model}: the STN samples a quadrilateral turned {explain.turned_degrees(m.outline):+.0f}°"
    r, c = np.unravel_index(int(np.argmax(m.values)), m.values.shape)
    if float(m.values.max()) <= 0:
        return f"{model}: {m.unit} from {m.values.min():.3g} to {m.values.max():.3g}"
    return f"{model}: {m.unit} from {m.values.min():.3g} to {m.values.max():.3g}, highest at row {r}, column {c}"


def faithfulness_ui(views: list[ModelView]) -> None:
    """Insertion - deletion AUC of every map per model, the random map as baseline; the best per model marked."""
    scored = [v for v in views if v.faithfulness]
    if not scored:
        return
    titles = {n: m.title for n, m in explain.EXPLAINERS.items()} | {"random": "random map (baseline)"}
    order = list(explain.EXPLAINERS) + ["random"]
    rows = sorted({n for v in scored for n in v.faithfulness}, key=order.index)
    df = pd.DataFrame({v.model: [v.faithfulness.get(n, {}).get("difference") for n in rows] for v in scored},
                      index=[titles.get(n, n) for n in rows])
    st.markdown("**Which map to trust for this face** — insertion minus deletion area (higher: the map's top "
                "pixels carry more of the class's probability); a map no better than the random one says little.")
    st.dataframe(df.style.format("{:+.3f}", na_rep="–").highlight_max(axis=0, color="#c7e9c0"), width="stretch")
    st.caption("; ".join(f"{v.model}: most faithful **{titles[v.most_faithful()]}**" for v in scored if v.most_faithful()))


def panel_png(face: Face, views: list[ModelView], methods: list[str]) -> bytes:
    """The panel of every map of every model, built only when downloaded."""
    png = io.BytesIO()
    render.panel(face, views, methods).save(png, format="PNG")
    return png.getvalue()


def agreement_ui(views: list[ModelView]) -> None:
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
        if not st.toggle("Each model's accuracy, confusion matrix and reliability", key="about_models"):
            return  # built only when asked: seven charts and pictures on every rerun cost the server
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
            axis = alt.Axis(labelOverlap=False, labelLimit=140)
            a, b = st.columns(2)
            a.altair_chart(alt.Chart(df).mark_rect().encode(
                x=alt.X("predicted:N", sort=classes, axis=axis), y=alt.Y("true:N", sort=classes, axis=axis),
                color=alt.Color("share:Q", scale=alt.Scale(scheme="blues", domain=[0, 1]), title="share of row"),
                tooltip=["true", "predicted", "count", alt.Tooltip("share:Q", format=".2f")],
            ).properties(width=300, height=300, title=f"{name}: confusion on its test split (rows: true class)"),
                width="content")
            reliability = checkpoint_dir() / f"{name}_reliability.png"
            if reliability.is_file():
                b.image(str(reliability), caption=f"{name}: reliability (are 70 % answers right 70 % of the time?)",
                        width=360)


def main() -> None:
    st.set_page_config(page_title="Deep-Emotion explorer", layout="wide")
    st.title("Deep-Emotion explorer")
    st.caption("Attentional CNN of Minaee & Abdolrashidi: what each model predicts, and where it looks.")
    models = load_models()
    if not models:
        st.error("No bundled checkpoints found in checkpoints/.")
        return
    query = params_from_query()
    source, data, label = input_ui()
    classes = sorted({canonical(c) for _, card in models.values() for c in card["classes"]})
    side = min(input_size(loaded) for loaded in models.values())
    cards = {n: card for n, (_, card) in models.items()}
    controls = controls_ui(model_order(cards), default_models(cards), classes, side, query)
    errors = validate(controls, query, list(models), side, classes)
    for e in errors:
        st.error(e)
    sync_url(controls)  # the URL follows the controls (shareable); a bad parameter is replaced, so its error clears
    if errors:
        return
    if source == "Live":
        live_ui(controls["models"])
        return
    if source == "Video":
        try:
            data, label = video_ui(controls["models"])
        except DeepEmotionError as e:
            st.error(str(e))
            return
        if data is None:
            return
    if data is None:
        st.info("Upload a photo, take one with the camera, or pick the example.")
        return

    detect = True
    waiting = st.empty()
    if busy():
        waiting.info("Other photos are being analysed on this server; yours is queued and starts when one is done…")
    try:
        with st.spinner("Finding faces…"):
            faces, size, preview, scale = cached_faces(data, True, label)
        waiting.empty()
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

    results(data, label, detect, controls)
    about_ui(models)


@st.fragment
def results(data: bytes, label: str, detect: bool, controls: dict) -> None:
    """Faces, predictions and maps of one photo. A fragment: picking another face or map reruns only this part
    of the page (the photo's faces and every view come from the caches)."""
    faces, size, preview, scale = cached_faces(data, detect, label)
    chosen = tuple(controls["models"])
    summary = cached_summary(data, label, detect, chosen)
    tops = [row["majority"] for row in summary]
    left, right = st.columns([1, 2])
    with left:
        labels = [f"face {i + 1}: {tops[i]} ({f.box[2] - f.box[0]:.0f}x{f.box[3] - f.box[1]:.0f} px)"
                  for i, f in enumerate(faces)]
        pick = st.selectbox("Face", range(len(faces)), format_func=lambda i: labels[i]) if len(faces) > 1 else 0
        boxes = [tuple(v * scale for v in f.box) for f in faces]
        st.image(render.draw_boxes(preview, boxes, pick, tops, shown_width=280),
                 caption=f"{label}: {len(faces)} face(s), {size[0]}x{size[1]}", width="stretch")
    if len(faces) > 1:
        with left if len(chosen) <= 2 else st.container():  # under the photo; a wider table under both columns
            summary_ui(summary)
    face = faces[pick]

    methods = controls["methods"]
    with right:
        shown = st.radio("Map", methods, format_func=lambda m: explain.EXPLAINERS[m].title, horizontal=True,
                         help="Only the map shown is computed (each one once per face and model); scoring "
                                         "faithfulness computes them all.")
    # the work of this page: the map shown, or every map when their faithfulness is asked for
    options = AnalysisOptions(tuple(methods) if controls["faithfulness"] else (shown,), controls["window"],
                              controls["stride"], controls["target"], controls["faithfulness"], detect)
    views = []
    with right:
        progress = st.progress(0.0, text="Explaining…")
        for k, name in enumerate(chosen):
            progress.progress(k / len(chosen), text=f"Explaining face {pick + 1} with {name} ({k + 1} of {len(chosen)})"
                              + ("; the server is busy with another photo, so this may wait…" if busy() else "…"))
            views.append(cached_view(name, data, label, detect, pick, json.dumps(options.to_dict())))
        progress.empty()
        agreement_ui(views)
        probabilities_ui(views)
    maps_ui(cached_face_picture(data, label, pick, detect), views, shown)
    faithfulness_ui(views)

    analysis = Analysis([FaceAnalysis(pick, face.box, face.probability, face.crop, {v.model: v for v in views},
                                      face.detected)], detect and face.detected, size, options)
    a, b = st.columns(2)
    digest = hashlib.sha1(data).hexdigest()[:8]
    a.download_button("Download panel (PNG)", lambda: panel_png(face, views, list(options.methods)),
                      f"deep-emotion-{digest}.png", "image/png")
    b.download_button("Download figures (JSON)", json.dumps({"image": label, **analysis.to_dict()}, indent=2),
                      f"deep-emotion-{digest}.json", "application/json")
    st.caption(f"{label}: face {pick + 1} of {len(faces)} explained by {len(views)} model(s).")


if __name__ == "__main__":
    main()
