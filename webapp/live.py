"""The webcam page: each frame's faces boxed with their id and top class (one model, smoothed over about half a
second) and the largest face's occlusion map in a corner, by the pipeline's `LiveReader` (`Pipeline.live`)."""

from __future__ import annotations

import json
import os
import time

import streamlit as st


def ice_servers() -> list[dict]:
    """WebRTC relays from DEEP_EMOTION_ICE_SERVERS (JSON, e.g. a TURN server for a hosted app); none by default:
    the browser and this server must reach each other directly (the same machine or network)."""
    try:
        servers = json.loads(os.environ.get("DEEP_EMOTION_ICE_SERVERS", "[]"))
    except json.JSONDecodeError:
        st.sidebar.warning("DEEP_EMOTION_ICE_SERVERS is not valid JSON; no relay is used.")
        return []
    return servers if isinstance(servers, list) else []


def page(pipe, chosen: list[str]) -> None:
    try:
        import av
        from streamlit_webrtc import WebRtcMode, webrtc_streamer
    except ImportError:
        st.info(
            "The live webcam needs the streamlit-webrtc package (`pip install streamlit-webrtc`); the Camera "
            "source takes a snapshot instead."
        )
        return
    model = st.sidebar.selectbox("Live model", chosen, key="live_model")
    show_map = st.sidebar.checkbox(
        "Live map of the largest face",
        value=True,
        key="live_map",
        help="Occlusion (drop) on a 12-pixel window with stride 6: coarser than the "
        "photo's, to keep up with the camera.",
    )
    key = (model, show_map)
    if st.session_state.get("live_reader", (None,))[0] != key:
        st.session_state["live_reader"] = (key, pipe.live(model, show_map=show_map))
    reader = st.session_state["live_reader"][1]

    def on_frame(frame: av.VideoFrame) -> av.VideoFrame:  # runs in streamlit-webrtc's thread: no st.* here
        out, _ = reader.process(frame.to_image(), time.monotonic())  # the stream's own clock may start anywhere
        return av.VideoFrame.from_image(out)

    webrtc_streamer(
        key="live",
        mode=WebRtcMode.SENDRECV,
        video_frame_callback=on_frame,
        async_processing=True,
        media_stream_constraints={"video": {"width": 640, "height": 480}, "audio": False},
        rtc_configuration={"iceServers": ice_servers()},
    )
    st.caption(
        "Press START and allow the camera. Frames the server cannot keep up with are skipped. This works "
        "when the browser reaches the server directly (running it on your machine); a hosted copy needs a "
        "TURN relay (DEEP_EMOTION_ICE_SERVERS) — there, use Camera for a snapshot or Video for a clip."
    )
