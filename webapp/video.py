"""The clip page: a clip's faces over time (one timeline per face, `Pipeline.analyze_clip`), then the frame picked
on the slider, handed back to the photo page to be explained like a photo."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import charts  # beside this file
import streamlit as st

from deep_emotion.serve.examples import example_clip
from deep_emotion.video.clips import VIDEO_TYPES, frame_at

FPS_CHOICES = [1, 2, 4, 8, 10]
SMOOTH_CHOICES = [0.0, 0.25, 0.5, 1.0, 2.0]


@st.cache_data(show_spinner=False)
def cached_example_clip(chosen: str | None) -> tuple[bytes, str]:
    """`serve.examples.example_clip`, made once per server."""
    return example_clip(chosen)


def clip_analysis(pipe, clip: bytes, name: str, chosen: tuple[str, ...], fps: float, smooth: float):
    """`Pipeline.analyze_clip` with a progress bar; the last clip's result is kept for this visitor (scrubbing and
    changing the shown model cost nothing)."""
    key = (hashlib.sha1(clip).hexdigest(), chosen, fps, smooth)
    kept = st.session_state.get("clip_result")
    if kept and kept[0] == key:
        return kept[1]
    info = pipe.probe_clip(clip, name)  # over the caps: refused before decoding
    total = max(1, round((info.seconds or 0) * fps))
    bar = st.progress(0.0, text="Analysing the clip…")
    if pipe.busy():
        bar.progress(0.0, text="Other analyses are running on this server; the clip is queued…")

    def progress(t: float, n: int) -> None:
        bar.progress(min(n / total, 1.0), text=f"Analysing the clip: {t:.1f} s, {n} frame(s)…")

    with pipe.slot():
        result = pipe.analyze_clip(clip, list(chosen), fps=fps, name=name, smooth=smooth, progress=progress)
    bar.empty()
    st.session_state["clip_result"] = (key, result)
    return result


def page(pipe, chosen: list[str]) -> tuple[bytes | None, str]:
    """A clip's faces over time, then the frame picked on the slider as a PNG and its label, to analyse like a
    photo (its maps are computed for that frame only); (None, '') when there is nothing to explain yet."""
    kind = st.radio("Clip", ["Example clip", "Upload a clip"], horizontal=True, key="clip_source")
    if kind == "Upload a clip":
        f = st.file_uploader(
            "A video clip",
            type=list(VIDEO_TYPES),
            help="Up to 20 MB here (15 minutes and 4K at most); long clips take a while on a small server.",
        )
        if not f:
            st.info("Upload a clip (mp4, webm, mov, avi, mkv or gif), or pick the example clip.")
            return None, ""
        clip, name = f.getvalue(), f.name
    else:
        clip, name = cached_example_clip(os.environ.get("DEEP_EMOTION_EXAMPLE_CLIP"))
    fps = st.sidebar.select_slider("Frames analysed per second", FPS_CHOICES, value=4, key="video_fps")
    smooth = st.sidebar.select_slider(
        "Smoothing half-life (s)",
        SMOOTH_CHOICES,
        value=0.0,
        key="video_smooth",
        help="Each face's probabilities averaged over time: a frame's weight halves "
        "every this many seconds (0: each frame alone).",
    )
    result = clip_analysis(pipe, clip, name, tuple(chosen), float(fps), float(smooth))
    if not result.rows:
        st.warning(f"No face was found in {name} ({result.frames} frame(s) looked at).")
        return None, ""
    model = chosen[0] if len(chosen) == 1 else st.radio("Timeline of", chosen, horizontal=True, key="video_model")
    timelines = st.container()
    times = {f"{t:.2f} s": t for t in sorted({r.time for r in result.rows})}  # frames with a face
    at = times[st.select_slider("Frame to explain (the black line)", list(times), key="video_at")]
    with timelines:
        for chart in charts.timeline_charts(result, model, at).values():
            st.altair_chart(chart, width="stretch", height=330)  # the plot, its axis and the legend below
    text = io.StringIO()
    result.write_csv(text)
    st.download_button("Download the timeline (CSV)", text.getvalue(), f"{Path(name).stem}-emotions.csv", "text/csv")
    st.caption(
        f"{name}: {result.info.width}x{result.info.height}, {result.frames} frame(s) at {result.fps:g} per "
        f"second, {len(result.faces())} face(s) followed. Below: the frame at {at:.2f} s, explained as a "
        "photo (its faces found again, numbered by size, largest first)."
    )
    t, frame = frame_at(clip, at, name)
    png = io.BytesIO()
    frame.save(png, format="PNG")
    return png.getvalue(), f"{name} at {t:.2f} s"
