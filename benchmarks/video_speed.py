"""Speed and memory of video analysis on this machine. Prints JSON lines, then a summary.

- throughput: a generated 640x480 clip (10 s at 30 fps, one face panning and zooming: the public-domain astronaut)
  analysed at 10 sampled frames per second by three paper-architecture models (fer2013, ferplus, ckplus), with
  the cards' post-hoc corrections, through one `Pipeline` (`analyze_clip`), in several settings: MTCNN's copy
  of each frame at 480 or 320 px, faces found in every frame or every 2nd / 3rd sampled frame (boxes carried in
  between); decoding included;
- live: `Pipeline.live(...).process` per 640x480 frame (detection at 320 px, one model, smoothing) with and without the
  live occlusion map (window 12, stride 6), as frames per second;
- memory: peak RSS (VmHWM: getrusage's maxrss would carry the parent's over exec) of a fresh process that
  analyses a generated 720p clip of --minutes (default 5) at 4 fps,
  against one of 30 s: frames are streamed, never held.

    python benchmarks/video_speed.py [--minutes 5] [--skip-memory]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import environment  # noqa: E402
from PIL import Image  # noqa: E402

from deep_emotion.pipeline import Pipeline  # noqa: E402
from deep_emotion.video.analysis import VideoAnalysis  # noqa: E402
from deep_emotion.video.clips import sample_frames, write_clip  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EXAMPLE = ROOT / "webapp" / "examples" / "astronaut.jpg"
PAPER_MODELS = ("fer2013", "ferplus", "ckplus")


def frames(size: tuple[int, int], n: int, fps: float):
    """The astronaut's head panning right and slowly zooming over a grey background, `n` frames."""
    head = Image.open(EXAMPLE).convert("RGB")
    w, h = size
    for k in range(n):
        t = k / fps
        side = int(h * (0.45 + 0.1 * abs(((t / 4) % 2) - 1)))  # the face box: about a third of the frame's height
        face = head.resize((side, side))
        frame = Image.new("RGB", size, (110, 104, 98))
        x = int((w - side) * (0.5 + 0.4 * (((t / 6) % 2) - 1)))
        frame.paste(face, (max(0, x), (h - side) // 2))
        yield frame


def analyze_clip(pipe: Pipeline, clip: Path, detect_side: int, **settings) -> VideoAnalysis:
    """`pipe.analyze_clip` with MTCNN searching a copy of each frame at `detect_side` px."""
    return pipe.analyze_clip(clip, detect_side=detect_side, **settings)


MEMORY = """
import sys, time
sys.path.insert(0, {root!r})
sys.path.insert(0, {here!r})
from deep_emotion.pipeline import Pipeline
from video_speed import analyze_clip
pipe = Pipeline.from_names({models!r}, posthoc=True)
t0 = time.perf_counter()
r = analyze_clip(pipe, {clip!r}, 320, fps=4.0, detect_every=2)
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM")][0].split()[1]  # kB, this process only
print(r.frames, len(r.rows), time.perf_counter() - t0, int(hwm) / 1024)
"""


def peak_rss(clip: Path) -> dict:
    script = MEMORY.format(root=str(ROOT), here=str(HERE), models=list(PAPER_MODELS), clip=str(clip))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    frames_, rows, seconds, rss = out[-4:]
    return {
        "frames_sampled": int(frames_),
        "rows": int(rows),
        "seconds": round(float(seconds), 1),
        "peak_rss_mb": round(float(rss)),
    }


def memory(folder: str, minutes: float, results: list, env: dict) -> None:
    """Peak RSS for a 30 s and a `minutes` long 720p clip, each in a fresh process; then the summary."""
    for length in (0.5, minutes):
        long = write_clip(Path(folder) / f"hd-{length}.mp4", frames((1280, 720), int(length * 60 * 30), 30.0), fps=30)
        row = {
            "what": f"memory: 720p, {length:g} min, 3 models, 4 fps",
            **peak_rss(long),
            "file_mb": round(long.stat().st_size / 2**20, 1),
        }
        results.append(row)
        print(json.dumps(row), flush=True)
        long.unlink()
    print(json.dumps({"video_speed": results, "torch_threads": torch.get_num_threads(), "env": env}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5.0, help="length of the long 720p clip (memory)")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--memory-only", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    env = environment()
    pipe = Pipeline.from_names(PAPER_MODELS, posthoc=True)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        if args.memory_only:
            return memory(folder, args.minutes, results, env)
        clip = write_clip(Path(folder) / "vga.mp4", frames((640, 480), 300, 30.0), fps=30)
        decode = [time.perf_counter()]
        n = sum(1 for _ in sample_frames(clip, 10.0))
        decode.append(time.perf_counter())
        results.append(
            {"what": "decode only", "frames_sampled": n, "frames_per_second": round(n / (decode[1] - decode[0]), 1)}
        )
        analyze_clip(pipe, clip, 320, fps=10.0)  # warm-up
        for side, every in [(480, 1), (320, 1), (320, 2), (320, 3)]:
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                r = analyze_clip(pipe, clip, side, fps=10.0, detect_every=every)
                times.append(time.perf_counter() - t0)
            s = statistics.median(times)
            found = len({row.frame for row in r.rows}) / r.frames
            row = {
                "what": f"3 models, detect at {side} px, every {every}",
                "frames_sampled": r.frames,
                "faces_in_frames": round(found, 3),
                "ids": r.faces(),
                "seconds": round(s, 2),
                "frames_per_second": round(r.frames / s, 1),
            }
            results.append(row)
            print(json.dumps(row), flush=True)
        images = [im for _, im in sample_frames(clip, 10.0)][:40]
        for show_map in (False, True):
            reader = pipe.live("fer2013", show_map=show_map)
            reader.process(images[0], 0.0)
            times = []
            for k, im in enumerate(images):
                t0 = time.perf_counter()
                reader.process(im, k / 10)
                times.append(time.perf_counter() - t0)
            row = {
                "what": f"live, 1 model, {'with' if show_map else 'without'} the map",
                "median_ms_per_frame": round(1000 * statistics.median(times), 1),
                "frames_per_second": round(1 / statistics.median(times), 1),
            }
            results.append(row)
            print(json.dumps(row), flush=True)
        if not args.skip_memory:
            return memory(folder, args.minutes, results, env)
    print(json.dumps({"video_speed": results, "torch_threads": torch.get_num_threads(), "env": env}))


if __name__ == "__main__":
    main()
