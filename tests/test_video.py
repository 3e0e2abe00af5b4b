"""Video clips: sampling times, face ids across frames, CSV rows, smoothing, bad files. Clips are made here with
PyAV from the public-domain astronaut photo."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deep_emotion.cli import main as cli
from deep_emotion.faces.tracking import FaceTracker, smoothing_weight
from deep_emotion.models.checkpoints import load_checkpoint
from deep_emotion.pipeline import Pipeline
from deep_emotion.video import analysis as video_analysis
from deep_emotion.video import clips
from deep_emotion.video.analysis import analyze_video
from deep_emotion.video.clips import VideoLoadError, frame_at, probe, sample_frames, write_clip

FRAME = (320, 240)


@pytest.fixture(scope="module")
def head(astronaut_path) -> Image.Image:
    return Image.open(astronaut_path).convert("RGB").crop((140, 20, 360, 280)).resize((88, 104))


def scene(head: Image.Image, k: int, second: bool = False, face: bool = True) -> Image.Image:
    """Frame k: the head panning right by 5 px a frame; a mirrored second head at the bottom right when `second`."""
    f = Image.new("RGB", FRAME, (118, 108, 98))
    if face:
        f.paste(head, (20 + 5 * k, 40))
    if second:
        f.paste(head.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (225, 120))
    return f


@pytest.fixture(scope="module")
def clip(tmp_path_factory, head) -> Path:
    """3 s at 10 fps: one head panning; a second one in frames 10-19; no face in frames 24-26."""
    frames = [scene(head, k, second=10 <= k < 20, face=not 24 <= k < 27) for k in range(30)]
    return write_clip(tmp_path_factory.mktemp("clips") / "pan.mp4", frames, fps=10)


@pytest.fixture(scope="module")
def pipe():
    return Pipeline({"fer2013": load_checkpoint("fer2013", posthoc=True)})


def test_probe_reads_the_header(clip):
    info = probe(clip)
    assert (info.width, info.height) == FRAME and info.frame_rate == pytest.approx(10)
    assert info.seconds == pytest.approx(3.0, abs=0.15) and info.codec == "h264"


def test_frames_are_sampled_at_the_asked_rate(clip):
    times = [t for t, _ in sample_frames(clip, fps=4)]
    # the first frame at or after each quarter second of a 10 fps clip
    assert times == pytest.approx([0.0, 0.3, 0.5, 0.8, 1.0, 1.3, 1.5, 1.8, 2.0, 2.3, 2.5, 2.8], abs=1e-6)
    all_frames = list(sample_frames(clip, fps=30))  # faster than the clip: every frame once
    assert len(all_frames) == 30 and all_frames[0][1].size == FRAME
    t, image = frame_at(clip, 1.25)
    assert t == pytest.approx(1.3) and np.array_equal(np.asarray(image), np.asarray(all_frames[13][1]))


def test_tracker_keeps_ids_through_moves_and_misses():
    tr = FaceTracker(max_gap=1.0)
    assert tr.update(0.0, [(0, 0, 50, 50)]) == [1]
    assert tr.update(0.1, [(10, 0, 60, 50)]) == [1]  # overlapping move
    assert tr.update(0.2, [(50, 0, 100, 50), (300, 0, 350, 50)]) == [1, 2]  # a jump within one width; a new face
    assert tr.update(0.5, []) == []  # a short miss
    assert tr.update(0.9, [(305, 0, 355, 50), (55, 0, 105, 50)]) == [2, 1]  # both come back, in another order
    assert tr.update(2.5, [(55, 0, 105, 50)]) == [3]  # gone for longer than max_gap: a new face, a new id


def test_video_analysis_follows_faces(clip, pipe):
    result = pipe.analyze_clip(clip, fps=10)
    assert result.frames == 30
    ids = {r.frame: [] for r in result.rows}
    for r in result.rows:
        ids[r.frame].append(r.face)
    assert ids[0] == [1] and all(1 in ids[k] for k in range(24))  # the panning head keeps its id
    second = {f for k in range(10, 20) for f in ids[k] if f != 1}
    assert len(second) == 1 and all(len(ids[k]) == 2 for k in range(11, 19))  # one new id for the second head
    assert all(k not in ids for k in range(24, 27))  # no face: no row
    assert ids[27] == [1]  # back after 0.3 s: the same id
    assert all(abs(sum(r.probabilities["fer2013"]) - 1) < 1e-4 for r in result.rows)
    assert result.classes == {"fer2013": ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]}
    boxes = [r.box for r in result.rows if r.face == 1]
    assert boxes[10][0] > boxes[0][0] + 40  # the box follows the pan (5 px a frame)


def test_detect_every_carries_boxes_between_detections(clip, pipe):
    result = pipe.analyze_clip(clip, fps=10, detect_every=3)
    detected = {r.frame for r in result.rows if r.detected}
    assert detected and all(k % 3 == 0 for k in detected)
    assert any(not r.detected for r in result.rows)


def test_smoothing_is_an_exponential_average(clip, pipe):
    raw = pipe.analyze_clip(clip, fps=10)
    smooth = pipe.analyze_clip(clip, fps=10, smooth=0.5)
    a = [r.probabilities["fer2013"] for r in raw.rows if r.face == 1]
    b = [r.probabilities["fer2013"] for r in smooth.rows if r.face == 1]
    assert np.allclose(a[0], b[0])
    w = smoothing_weight(0.1, 0.5)
    assert w == pytest.approx(1 - 0.5**0.2)
    assert np.allclose(b[1], b[0] + w * (a[1] - b[0]), atol=1e-6)
    assert np.abs(np.diff(b, axis=0)).sum() < np.abs(np.diff(a, axis=0)).sum()


def test_cli_writes_one_row_per_time_face_and_model(clip, tmp_path, capsys):
    out = tmp_path / "rows.csv"
    assert (
        cli(["video", str(clip), "--model", "fer2013,ferplus", "--fps", "5", "--csv", str(out), "--no-progress"]) == 0
    )
    printed = capsys.readouterr().out
    assert "15 frame(s) sampled at 5 fps" in printed and "face 1:" in printed
    rows = list(csv.DictReader(out.open()))
    # canonical class names for every model: FERPlus's "happiness" is "happy", its extra class "contempt"
    seven = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert list(rows[0]) == [
        "time_s",
        "frame",
        "face",
        "model",
        "x0",
        "y0",
        "x1",
        "y1",
        "face_probability",
        "detected",
        "top",
        *seven,
        "contempt",
    ]
    keys = [(r["time_s"], r["face"], r["model"]) for r in rows]
    assert len(keys) == len(set(keys)) and {r["model"] for r in rows} == {"fer2013", "ferplus"}
    times = sorted({float(r["time_s"]) for r in rows})
    assert times[:3] == pytest.approx([0.0, 0.2, 0.4])
    fer = [r for r in rows if r["model"] == "fer2013"]
    assert fer and all(r["contempt"] == "" and abs(sum(float(r[c]) for c in seven) - 1) < 1e-3 for r in fer)
    plus = [r for r in rows if r["model"] == "ferplus"]
    assert plus and all(abs(sum(float(r[c]) for c in (*seven, "contempt")) - 1) < 1e-3 for r in plus)
    assert all(r["top"] in (*seven, "contempt") for r in rows)
    assert cli(["video", str(clip), "--fps", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["frames_sampled"] == 6 and data["faces"][0] == 1


def test_every_container_kind_reads(tmp_path, head):
    frames = [scene(head, k) for k in range(6)]
    for ext in ("webm", "avi", "gif", "mov", "mkv"):
        path = write_clip(tmp_path / f"c.{ext}", frames, fps=5)
        got = list(sample_frames(path, fps=5))
        assert len(got) == 6, ext
        assert probe(path).width == FRAME[0]


def test_bad_files_get_a_clear_error_naming_them(tmp_path, clip, astronaut_path, pipe, capsys):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 3])  # PyAV writes the index at the end: lost
    empty = tmp_path / "empty.webm"
    empty.write_bytes(b"")
    for path, words in [
        (text, "not a readable video"),
        (cut, "not a readable video"),
        (empty, "empty"),
        (tmp_path / "missing.mp4", "no such file"),
        (astronaut_path, "still image"),
    ]:
        with pytest.raises(VideoLoadError, match=words) as e:
            probe(path)
        assert path.name in str(e.value)
        assert cli(["video", str(path), "--no-progress"]) == 2
        assert path.name in capsys.readouterr().err
    with pytest.raises(ValueError, match="fps"):
        list(sample_frames(clip, fps=0))
    with pytest.raises(ValueError, match="smooth"):
        pipe.analyze_clip(clip, smooth=float("nan"))
    with pytest.raises(ValueError, match="detect_every"):
        pipe.analyze_clip(clip, detect_every=0)
    with pytest.raises(ValueError, match="unknown model"):
        pipe.analyze_clip(clip, models="ferplus")
    with pytest.raises(ValueError, match="at least one model"):  # the function under the pipeline's door
        analyze_video(clip, pipe.find_faces_batch, lambda crops: {}, {})


def test_damaged_frames_midway_name_the_file(tmp_path, head):
    path = write_clip(tmp_path / "frames.avi", [scene(head, k) for k in range(20)], fps=10)
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    for at in rng.integers(len(data) // 3, len(data) - 64, 200):  # noise over the frames' data, header intact
        data[at : at + 16] = rng.integers(0, 256, 16, dtype=np.uint8).tobytes()
    bad = tmp_path / "noisy.avi"
    bad.write_bytes(bytes(data))
    try:  # a decoder may conceal errors (grey blocks) or stop; either way no crash, and errors name the file
        frames = list(sample_frames(bad, fps=10))
        assert 1 <= len(frames) <= 20  # the frames before the damage still come out
    except VideoLoadError as e:
        assert "noisy.avi" in str(e) and "damaged" in str(e)


def test_clips_over_the_caps_are_refused_before_decoding(tmp_path, head, pipe, monkeypatch):
    path = write_clip(tmp_path / "long.mp4", [scene(head, k) for k in range(20)], fps=10)
    decoded = []
    monkeypatch.setattr(clips, "MAX_SECONDS", 1.0)
    monkeypatch.setattr(video_analysis, "sample_frames", lambda *a, **k: decoded.append(1) or iter(()))
    with pytest.raises(VideoLoadError, match="longer than the"):
        pipe.analyze_clip(path)
    assert not decoded
    monkeypatch.setattr(clips, "MAX_SECONDS", 60.0)
    monkeypatch.setattr(clips, "MAX_SIDE", 300)
    with pytest.raises(VideoLoadError, match="320x240 frames are larger"):
        probe(path)
    monkeypatch.setattr(clips, "MAX_BYTES", 100)
    with pytest.raises(VideoLoadError, match="larger than"):
        probe(path)
    with pytest.raises(VideoLoadError, match="larger than"):
        probe(io.BytesIO(path.read_bytes()), name="upload.mp4")


def test_a_phone_clip_with_a_display_rotation_comes_out_upright(tmp_path):
    import av

    path = tmp_path / "portrait.mp4"
    left_red = Image.new("RGB", (64, 32), (0, 0, 200))
    left_red.paste((220, 0, 0), (0, 0, 32, 32))
    with av.open(str(path), "w") as out:  # stored landscape, shown turned 90 degrees counter-clockwise
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(90)
        for _ in range(3):
            for packet in stream.encode(av.VideoFrame.from_image(left_red)):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    _, frame = next(sample_frames(path, fps=10))
    assert frame.size == (32, 64)
    a = np.asarray(frame, dtype=int)
    assert a[48, 16, 0] > 150 and a[16, 16, 2] > 150  # turned counter-clockwise: the left half is now at the bottom


def test_sparse_sampling_keeps_the_face_id(tmp_path, head, pipe):
    """At 0.5 frames per second (and with searches 3 samples apart at 2 fps) the looks are further apart than a
    track's 1 s gap: a face that stays must keep its id, and smoothing must still apply."""
    still = write_clip(tmp_path / "still.mp4", [scene(head, 0)] * 50, fps=10)
    sparse = pipe.analyze_clip(still, fps=0.5, smooth=1.0)
    assert [r.time for r in sparse.rows] == pytest.approx([0.0, 2.0, 4.0]) and sparse.faces() == [1]
    every3 = pipe.analyze_clip(still, fps=2, detect_every=3)
    assert every3.faces() == [1] and len(every3.rows) == 10


def test_carried_boxes_only_for_faces_of_the_last_search(tmp_path, head, pipe):
    """A face the last search did not find is not carried into the frames after it."""
    frames = [scene(head, 0, second=k < 4) for k in range(8)]  # the second head leaves after frame 3
    path = write_clip(tmp_path / "leave.mp4", frames, fps=4)
    result = pipe.analyze_clip(path, fps=4, detect_every=4)
    late = [r for r in result.rows if r.frame >= 4]
    assert late and len({r.face for r in late}) == 1 and all(r.box[2] < 200 for r in late)  # the first head only
    assert len({r.face for r in result.rows if r.frame < 4}) == 2


def test_sources_in_memory_and_refused_kinds(clip, tmp_path):
    data = clip.read_bytes()
    for source in (data, bytearray(data), memoryview(data), io.BytesIO(data)):
        assert len(list(sample_frames(source, fps=2, name="mem.mp4"))) == 6
    playlist = tmp_path / "list.mp4"  # a playlist that points elsewhere: FFmpeg must not follow it
    playlist.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nhttp://127.0.0.1:9/x.ts\n#EXT-X-ENDLIST\n")
    with pytest.raises(VideoLoadError, match="list.mp4"):
        probe(playlist)
