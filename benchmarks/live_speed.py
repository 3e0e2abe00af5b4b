"""The live camera's speed: the in-browser page (headless Chromium, ONNX Runtime Web on wasm, with a fake 640x480
camera playing the example face) next to the Python live reader (`Pipeline.live`, PyTorch on the CPU) fed the
same frames as fast as it takes them. Prints JSON: frames read per second and map refreshes per second.

    python benchmarks/live_speed.py [--site space-static] [--model fer2013] [--seconds 15] [--rounds 3]

The page reads the newest camera frame whenever it has finished the previous one (frames in between are skipped)
and refreshes the largest face's map (occlusion drop, window 12, stride 6) between frames a few times a second;
the Python reader draws the map on every frame it reads (as the Streamlit app does), on torch's default threads
and on one (the page is compared with the faster), and is also timed without the map. The two take turns (the
page paused, its camera off, while Python reads) so that both see the same share of a busy machine. Without
--site the page is built into a temporary folder first (web/node_modules must exist: `make web`). On a shared
machine the figures are noisy: compare them within one run.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import environment  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "web"))
sys.path.insert(0, str(ROOT))

from tests.test_static_live import camera_args, example_frames, write_y4m  # noqa: E402

CLIP_FPS = 30  # the fake camera's rate: above what either side reads, so neither waits for frames


class PythonReaders:
    """The Python live reader with the map on every frame (as the Streamlit app draws it), on torch's default
    threads and on one thread (on a busy machine several threads can be much slower), and without the map."""

    def __init__(self, frames, model: str) -> None:
        import torch

        from deep_emotion.pipeline import Pipeline

        pipe = Pipeline.from_names(model, posthoc=True)
        self.frames = frames
        threads = torch.get_num_threads()
        self.readers = {
            "fps": (pipe.live(model, show_map=True), threads),
            "fps_one_thread": (pipe.live(model, show_map=True), 1),
            "fps_without_map": (pipe.live(model, show_map=False), threads),
        }
        self.counts = {k: [0, 0.0, 0] for k in self.readers}  # frames, seconds, frames with a face
        for reader, _ in self.readers.values():  # warm-up
            for f in frames[:3]:
                reader.process(f, time.monotonic())

    def run(self, seconds: float) -> None:
        import torch

        default = torch.get_num_threads()
        for key, (reader, threads) in self.readers.items():
            torch.set_num_threads(threads)
            n, faces, t0 = 0, 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                _, read = reader.process(self.frames[n % len(self.frames)], time.monotonic())
                faces += bool(read)
                n += 1
            c = self.counts[key]
            c[0], c[1], c[2] = c[0] + n, c[1] + time.perf_counter() - t0, c[2] + faces
        torch.set_num_threads(default)

    def figures(self) -> dict:
        out = {}
        for key, (n, seconds, faces) in self.counts.items():
            out[key] = round(n / seconds, 2)
            out[f"{key}_frames"], out[f"{key}_frames_with_a_face"] = n, faces
        return out


def measure(site: Path, clip: Path, frames, model: str, seconds: float, rounds: int) -> tuple[dict, dict]:
    """The page and the Python reader in turns (`rounds` of `seconds` / `rounds` each; the page paused, its camera
    off, while Python runs), so that both see the same share of a busy machine."""
    import serve
    from playwright.sync_api import sync_playwright

    py = PythonReaders(frames, model)
    part = seconds / rounds
    server = serve.start(site)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    stat = "({...deepEmotionLive})"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=camera_args(clip))
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            requests = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(f"{base}/index.html?tab=live")
            page.evaluate("deepEmotion.ready")
            page.wait_for_selector("#live-start", state="visible")
            page.select_option("#live-model", model)
            page.click("#live-start")
            # warm-up: the networks loaded and compiled, a face read and its map drawn twice
            page.wait_for_function("deepEmotionLive.maps >= 2 && deepEmotionLive.frames >= 5", timeout=120_000)
            frames_read, maps, elapsed, steps, with_face = 0, 0, 0.0, [], 0
            for r in range(rounds):
                if r:
                    page.click("#tab-live")  # the camera back on
                    n = page.evaluate("deepEmotionLive.frames")
                    page.wait_for_function(f"deepEmotionLive.frames >= {n} + 2", timeout=60_000)
                s0, t0 = page.evaluate(stat), time.perf_counter()
                while time.perf_counter() - t0 < part:
                    page.wait_for_timeout(500)
                    s = page.evaluate(stat)
                    steps.append(s.get("ms", {}))
                    with_face += bool(s["faces"])
                s1, t1 = page.evaluate(stat), time.perf_counter()
                frames_read += s1["frames"] - s0["frames"]
                maps += s1["maps"] - s0["maps"]
                elapsed += t1 - t0
                page.click("#tab-photo")  # paused: the camera off while Python reads
                page.wait_for_function("deepEmotionLive.state === 'paused'")
                py.run(part)
            errors = page.evaluate("deepEmotionLive.errors")
            threads = page.evaluate("deepEmotion.runtime.threads")
            backend = page.evaluate("deepEmotion.runtime.backend")
            browser.close()
    finally:
        server.shutdown()

    def median(key: str) -> int | None:
        values = [m[key] for m in steps if key in m]
        return round(statistics.median(values)) if values else None

    web = {
        "fps": round(frames_read / elapsed, 2),
        "map_refreshes_per_s": round(maps / elapsed, 2),
        "frames": frames_read,
        "maps": maps,
        "share_of_samples_with_a_face": round(with_face / max(1, len(steps)), 2),
        "median_ms": {"detect": median("detect"), "classify": median("classify"), "map": median("map")},
        "errors": errors,
        "requests_to_other_hosts": sum(not u.startswith(base) and u.startswith("http") for u in requests),
        "workers": threads,
        "backend": backend,
        "engine": "headless Chromium: onnxruntime-web and the page's own WebAssembly kernels",
    }
    return web, py.figures()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--site", type=Path)
    ap.add_argument("--model", default="fer2013")
    ap.add_argument("--seconds", type=float, default=15.0, help="of reading, for each side")
    ap.add_argument("--rounds", type=int, default=3, help="turns the page and Python take")
    args = ap.parse_args()
    import json

    tmp = Path(tempfile.mkdtemp())
    try:
        site = args.site
        if site is None:
            import build

            site = build.build(tmp / "site", models=[args.model])
        frames = example_frames(CLIP_FPS)
        clip = write_y4m(tmp / "face.y4m", frames, fps=CLIP_FPS)
        web, py = measure(site, clip, frames, args.model, args.seconds, args.rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    best = max(py["fps"], py["fps_one_thread"])  # the Python reader with the map, at its faster thread count
    out = {
        "frames": f"webapp/examples/astronaut.jpg fitted into 640x480, swaying, one face; camera at {CLIP_FPS} fps",
        "model": args.model,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "map": "occlusion drop, window 12, stride 6 (49 copies), post-hoc corrections included",
        "page": web,
        "python": {**py, "engine": "deep_emotion LiveReader (Pipeline.live), PyTorch on the CPU"},
        "page_over_python_fps": round(web["fps"] / best, 2) if best else None,
        "targets": {
            "page_fps_at_least_half_python": web["fps"] >= best / 2,
            "map_at_least_1_per_s": web["map_refreshes_per_s"] >= 1,
        },
        "env": environment(),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
