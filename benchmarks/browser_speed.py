"""The in-browser page's speed in headless Chromium (ONNX Runtime Web, wasm, one thread) next to the Python
pipeline on the same machine: MTCNN on the example photo, and one model's occlusion maps (window 8, stride 2:
441 occluded copies; flip and drop from one set of passes). Medians of --repeats after one warm-up. Prints JSON.

    python benchmarks/browser_speed.py [--site space-static] [--model fer2013] [--repeats 5]

Without --site the page is built into a temporary folder first (web/node_modules must exist: `make web`).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import environment  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "web"))


def python_figures(photo, model_name: str, repeats: int) -> dict:
    from deep_emotion import AnalysisOptions, Pipeline

    pipe = Pipeline.from_names(model_name, posthoc=True)
    name = pipe.names[0]
    face = pipe.find_faces(photo)[0]
    options = AnalysisOptions(methods=("occlusion-flip", "occlusion-drop"))
    pipe.explain(face, [name], options)
    detect, maps = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        pipe.find_faces(photo)
        detect.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        pipe.explain(face, [name], options)
        maps.append(time.perf_counter() - t0)
    return {
        "detect_ms": round(1000 * statistics.median(detect)),
        "maps_ms": round(1000 * statistics.median(maps)),
        "crop": face.crop,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--site", type=Path)
    ap.add_argument("--model", default="fer2013")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    from PIL import Image
    from playwright.sync_api import sync_playwright

    tmp = None
    site = args.site
    if site is None:
        import build

        tmp = Path(tempfile.mkdtemp())
        site = build.build(tmp / "site", models=[args.model])
    photo = Image.open(ROOT / "webapp" / "examples" / "astronaut.jpg").convert("RGB")
    py = python_figures(photo, args.model, args.repeats)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.RequestHandlerClass.log_message = lambda *a: None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rgba = np.asarray(photo.convert("RGBA"), dtype=np.uint8).ravel().tolist()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
            page.evaluate("deepEmotion.ready")
            timed = """async ([f, args]) => { const t0 = performance.now(); await deepEmotion[f](...args);
                        return performance.now() - t0; }"""
            detect_args = [rgba, photo.width, photo.height]
            crop = py["crop"].ravel().tolist()
            maps_args = [crop, args.model, 8, 2]
            page.evaluate(timed, ["detect", detect_args])  # warm-up: loads and compiles the networks
            page.evaluate(timed, ["analyzeCrop", maps_args])
            detect = [page.evaluate(timed, ["detect", detect_args]) for _ in range(args.repeats)]
            maps = [page.evaluate(timed, ["analyzeCrop", maps_args]) for _ in range(args.repeats)]
            threads = page.evaluate("ort.env.wasm.numThreads")
            browser.close()
    finally:
        server.shutdown()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    out = {
        "photo": f"webapp/examples/astronaut.jpg ({photo.width}x{photo.height})",
        "model": args.model,
        "maps": "occlusion flip + drop, window 8, stride 2 (441 copies), post-hoc corrections included",
        "browser": {
            "detect_ms": round(statistics.median(detect)),
            "maps_ms": round(statistics.median(maps)),
            "wasm_threads": threads,
            "engine": "headless Chromium, onnxruntime-web wasm",
        },
        "python": {"detect_ms": py["detect_ms"], "maps_ms": py["maps_ms"], "engine": "PyTorch on the CPU"},
        "repeats": args.repeats,
        "env": environment(),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
