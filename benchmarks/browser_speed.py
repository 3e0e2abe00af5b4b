"""The in-browser page's speed in headless Chromium (ONNX Runtime Web) next to the Python pipeline, side by side in
one run: MTCNN on the example photo ("detect") and one model's occlusion maps ("maps": window 8, stride 2, 441
occluded copies; flip and drop from one set of passes) in Python (PyTorch on the CPU), on the page with one
worker (`?threads=1`), with its default pool (one worker per core, at most 4; served cross-origin isolated as on
the Space) and on WebGPU when Chromium offers an adapter. The photo is handed to each page once and drawn into a
canvas, as an upload leaves it: "detect" is the page's `findFaces` on that canvas (reading its pixels back
included), as Python's is `find_faces` on the decoded image; the driver's own transfers are not timed. The
configurations take turns within each repeat, so a busy machine slows them alike, and each call starts after
--settle seconds of quiet, so that what one side leaves running (Chromium's garbage collection and compilation on
background threads, the page's workers finishing) does not land in the next side's time; medians of --repeats
after one warm-up. Prints JSON with page/Python ratios of detect + maps.

    python benchmarks/browser_speed.py [--site space-static] [--model fer2013] [--repeats 5] [--settle 0.5]
        [--webgpu auto]

Without --site the page is built into a temporary folder first (web/node_modules must exist: `make web`).
--webgpu: `auto` times WebGPU only on a hardware adapter (a software one, SwiftShader, takes minutes per map),
`software` times it on whatever adapter `--enable-unsafe-webgpu` gives, `off` skips it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import environment  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "web"))

WEBGPU_FLAGS = ["--enable-unsafe-webgpu", "--ignore-gpu-blocklist"]  # headless Chromium hides WebGPU without them
TARGET = 1.5  # the page on its default workers within 1.5x of Python (detect + maps)

ADAPTER = """async () => {
  if (!navigator.gpu) return {error: "navigator.gpu is undefined"};
  const a = await navigator.gpu.requestAdapter();
  if (!a) return {error: "navigator.gpu.requestAdapter() gave null"};
  return {vendor: a.info.vendor, architecture: a.info.architecture, description: a.info.description,
          fallback: !!a.info.isFallbackAdapter};
}"""
# the photo as the page holds it after an upload: a canvas (read back with willReadFrequently, as readPhoto's is)
CANVAS = """([w, h]) => { const c = Object.assign(document.createElement("canvas"), {width: w, height: h});
  c.getContext("2d", {willReadFrequently: true}).putImageData(new ImageData(globalThis.pixels, w, h), 0, 0);
  globalThis.photo = c; }"""
# detection as the page runs it on an uploaded photo (framing.findFaces on its canvas), and the maps of one crop
DETECT = """async () => { const {findFaces} = await import("./src/framing.js"), rt = await import("./src/runtime.js");
  const nets = await rt.nets(), t0 = performance.now();
  await findFaces(nets, globalThis.photo, rt.runtime.index.framing); return performance.now() - t0; }"""
MAPS = """async (args) => { const t0 = performance.now(); await deepEmotion.analyzeCrop(...args);
  return performance.now() - t0; }"""


class Python:
    """The Python pipeline: detect = `find_faces`, maps = `explain` with occlusion flip + drop (window 8, stride 2)."""

    def __init__(self, photo, model: str):
        from deep_emotion import AnalysisOptions, Pipeline

        self.photo, self.pipe = photo, Pipeline.from_names(model, posthoc=True)
        self.name = self.pipe.names[0]
        self.face = self.pipe.find_faces(photo)[0]
        self.options = AnalysisOptions(methods=("occlusion-flip", "occlusion-drop"), window=8, stride=2)

    def detect(self) -> float:
        t0 = time.perf_counter()
        self.pipe.find_faces(self.photo)
        return 1000 * (time.perf_counter() - t0)

    def maps(self) -> float:
        t0 = time.perf_counter()
        self.pipe.explain(self.face, [self.name], self.options)
        return 1000 * (time.perf_counter() - t0)


class Page:
    """The built page in its own headless Chromium, opened with `query`; detect and maps as the page runs them."""

    def __init__(self, playwright, url: str, query: str, flags: list[str], photo, crop: list[int], model: str):
        self.browser = playwright.chromium.launch(
            executable_path=shutil.which("chromium") or shutil.which("chromium-browser"), args=["--no-sandbox", *flags]
        )
        self.page = self.browser.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(f"{url}/index.html{query}")
        self.page.evaluate("deepEmotion.ready")
        rgba = np.asarray(photo.convert("RGBA"), dtype=np.uint8).ravel().tolist()
        self.page.evaluate("(rgba) => { globalThis.pixels = Uint8ClampedArray.from(rgba); }", rgba)
        self.page.evaluate(CANVAS, [photo.width, photo.height])
        self.maps_args = [crop, model, 8, 2]
        self.info = self.page.evaluate(
            """() => ({backend: document.getElementById("backend").textContent, threads: deepEmotion.runtime.threads,
                       isolated: crossOriginIsolated, cores: navigator.hardwareConcurrency,
                       engine: deepEmotion.runtime.backend})"""
        )

    def detect(self) -> float:
        self.page.bring_to_front()
        return self.page.evaluate(DETECT)

    def maps(self) -> float:
        self.page.bring_to_front()
        return self.page.evaluate(MAPS, self.maps_args)

    def close(self) -> None:
        self.browser.close()


def webgpu_adapter(playwright, url: str) -> dict:
    """What `navigator.gpu.requestAdapter()` gives in headless Chromium with WEBGPU_FLAGS."""
    browser = playwright.chromium.launch(
        executable_path=shutil.which("chromium") or shutil.which("chromium-browser"),
        args=["--no-sandbox", *WEBGPU_FLAGS],
    )
    try:
        page = browser.new_page()
        page.goto(f"{url}/index.html?backend=wasm")
        return page.evaluate(ADAPTER)
    finally:
        browser.close()


def figures(detect: list[float], maps: list[float], python: dict | None = None) -> dict:
    out = {"detect_ms": round(statistics.median(detect)), "maps_ms": round(statistics.median(maps))}
    out["total_ms"] = round(statistics.median([a + b for a, b in zip(detect, maps)]))
    out["totals_ms"] = sorted(round(a + b) for a, b in zip(detect, maps))  # every repeat, to show the spread
    if python:
        out["ratio_to_python"] = round(out["total_ms"] / python["total_ms"], 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--site", type=Path)
    ap.add_argument("--model", default="fer2013")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--settle", type=float, default=0.5, help="seconds of quiet before each timed call")
    ap.add_argument("--webgpu", choices=("auto", "software", "off"), default="auto")
    args = ap.parse_args()
    import serve
    from PIL import Image
    from playwright.sync_api import sync_playwright

    tmp = None
    site = args.site
    if site is None:
        import build

        tmp = Path(tempfile.mkdtemp())
        site = build.build(tmp / "site", models=[args.model])
    photo = Image.open(ROOT / "webapp" / "examples" / "astronaut.jpg").convert("RGB")
    py = Python(photo, args.model)
    crop = py.face.crop.ravel().tolist()
    server = serve.start(site)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    configs = {
        "page, 1 worker": ("?backend=wasm&threads=1", []),
        "page, default workers": ("?backend=wasm", []),
    }
    notes = []
    try:
        with sync_playwright() as p:
            adapter = {"error": "not tried (--webgpu off)"} if args.webgpu == "off" else webgpu_adapter(p, url)
            if "error" in adapter:
                notes.append(f"WebGPU not timed: {adapter['error']} (Chromium flags {' '.join(WEBGPU_FLAGS)})")
            elif adapter["fallback"] and args.webgpu == "auto":
                notes.append(
                    f"WebGPU not timed: the only adapter is a software one ({adapter['vendor']} "
                    f"{adapter['architecture']}, isFallbackAdapter), which the page does not use unless asked "
                    "(?backend=webgpu) and which takes minutes per map; --webgpu software times it"
                )
            else:
                configs[f"page, WebGPU ({adapter['vendor']} {adapter['architecture']})"] = (
                    "?backend=webgpu",
                    WEBGPU_FLAGS,
                )
            pages = {name: Page(p, url, q, flags, photo, crop, args.model) for name, (q, flags) in configs.items()}
            runs = {name: ([], []) for name in ["python", *pages]}
            sides = {"python": py, **pages}
            for r in range(args.repeats + 1):  # round 0 is the warm-up (loads and compiles the networks)
                for name, side in sides.items():
                    time.sleep(args.settle)
                    d = side.detect()
                    time.sleep(args.settle)
                    m = side.maps()
                    if r:
                        runs[name][0].append(d)
                        runs[name][1].append(m)
            info = {name: page.info for name, page in pages.items()}
            errors = [e for page in pages.values() for e in page.errors]
            for page in pages.values():
                page.close()
    finally:
        server.shutdown()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    python = figures(*runs["python"])
    results = {"python (PyTorch, CPU)": {**python, "torch_threads": environment()["torch_threads"]}}
    for name in pages:
        results[name] = {**figures(*runs[name], python), "workers": info[name]["threads"]}
        results[name]["backend"] = info[name]["backend"]
    default = results["page, default workers"]
    threads = default["workers"]
    out = {
        "photo": f"webapp/examples/astronaut.jpg ({photo.width}x{photo.height})",
        "model": args.model,
        "detect": "MTCNN, the app's framing rules (framing.findFaces on the photo's canvas / Pipeline.find_faces)",
        "maps": "one crop: probabilities + occlusion flip + drop, window 8, stride 2 (441 copies), post-hoc included",
        "results": results,
        "target": {
            "goal": f"page on {threads} workers within {TARGET}x of Python (detect + maps)",
            "ratio": default["ratio_to_python"],
            "met": default["ratio_to_python"] <= TARGET,
        },
        "workers_speedup": round(results["page, 1 worker"]["total_ms"] / default["total_ms"], 2),
        "page": {
            "cross_origin_isolated": info["page, default workers"]["isolated"],
            "hardware_concurrency": info["page, default workers"]["cores"],
            "webgpu_adapter": adapter,
            "page_errors": errors,
        },
        "notes": notes,
        "repeats": args.repeats,
        "settle_s": args.settle,
        "env": environment(),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
