"""The static page's engine (web/src/runtime.js): served as the Space serves it (cross-origin isolated) it runs the
models on one wasm thread per core (at most 8), in ORT's proxy worker when asked (`?proxy=1`); served without
the headers it still works, on one thread, and says why; WebGPU, where Chromium offers a hardware adapter (or is
asked for, `?backend=webgpu`), gives the wasm page's probabilities and maps, and the page falls back to wasm cleanly
when there is none."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "web"))

# what headless Chromium needs to offer WebGPU at all; on a machine without a GPU it then offers SwiftShader's
# software adapter (Vulkan on the CPU), which is enough to check the WebGPU path's numbers
WEBGPU_FLAGS = ["--enable-unsafe-webgpu", "--ignore-gpu-blocklist"]
ENGINE = """() => ({isolated: crossOriginIsolated, cores: navigator.hardwareConcurrency,
  threads: ort.env.wasm.numThreads, proxy: ort.env.wasm.proxy, runtime: {...deepEmotion.runtime, index: null},
  backend: document.getElementById("backend").textContent})"""
ADAPTER = """async () => {
  if (!navigator.gpu) return {error: "navigator.gpu is undefined"};
  const a = await navigator.gpu.requestAdapter();
  if (!a) return {error: "navigator.gpu.requestAdapter() gave null"};
  return {vendor: a.info.vendor, architecture: a.info.architecture, fallback: !!a.info.isFallbackAdapter};
}"""


@contextlib.contextmanager
def opened(chromium_path: str, url: str, flags: tuple[str, ...] = ()):
    """A page of its own headless Chromium at `url`, once `deepEmotion.ready`; `.errors`: its uncaught errors."""
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=["--no-sandbox", *flags])
        try:
            page = browser.new_page()
            page.errors = []
            page.on("pageerror", lambda e: page.errors.append(str(e)))
            page.goto(url)
            page.evaluate("deepEmotion.ready")
            yield page
        finally:
            browser.close()


@pytest.fixture(scope="module")
def crop() -> list[int]:
    """The astronaut's 48x48 face crop, as the Python pipeline frames it."""
    from PIL import Image

    from deep_emotion.faces.detect import detect_faces

    photo = Image.open(ROOT / "webapp" / "examples" / "astronaut.jpg").convert("RGB")
    return detect_faces(photo)[0].crop.ravel().tolist()


@pytest.fixture(scope="module")
def model(site) -> str:
    import json

    return json.loads((site[1] / "models" / "models.json").read_text())["models"][0]["name"]


def _analyze(page, crop, model, window=8, stride=2) -> dict:
    return page.evaluate("([c, n, w, s]) => deepEmotion.analyzeCrop(c, n, w, s)", [crop, model, window, stride])


def _close(a: dict, b: dict, p_tol: float, map_tol: float) -> None:
    assert np.abs(np.array(a["probabilities"]) - b["probabilities"]).max() < p_tol
    assert np.abs(np.array(a["theta"]) - b["theta"]).max() < p_tol
    for key in ("flip", "drop", "view"):
        assert np.abs(np.array(a[key]) - b[key]).max() < map_tol, key


def test_space_readme_sends_the_isolation_headers(site):
    import yaml
    from serve import HEADERS

    text = (site[1] / "README.md").read_text()
    assert text.startswith("---\n")
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["sdk"] == "static" and front["app_file"] == "index.html"
    assert front["custom_headers"] == {k.lower(): v for k, v in HEADERS.items()}
    assert set(front["custom_headers"]) == {
        "cross-origin-embedder-policy",
        "cross-origin-opener-policy",
        "cross-origin-resource-policy",
    }


def test_isolated_page_runs_a_thread_per_core(site, chromium_path, crop, model):
    with opened(chromium_path, site[0] + "/index.html") as page:
        _analyze(page, crop, model)  # loads the models: the wasm threads start
        e = page.evaluate(ENGINE)
        threads = min(8, e["cores"])
        assert e["isolated"] is True
        assert e["threads"] == e["runtime"]["threads"] == threads
        assert e["proxy"] is False
        # the wasm threads are workers of the page: one fewer than the threads (the page's thread is one)
        assert sum("ort-wasm-simd-threaded" in w.url for w in page.workers) == threads - 1
        # without WebGPU flags headless Chromium gives no adapter: wasm, and the page says so
        assert e["runtime"]["backend"] == "wasm"
        assert f"{threads} CPU thread" in e["backend"] and "WebAssembly" in e["backend"], e["backend"]
        assert "not cross-origin isolated" not in e["backend"]
        assert page.errors == []


def test_proxy_worker_keeps_the_page_responsive_and_the_numbers(site, chromium_path, crop, model):
    with opened(chromium_path, site[0] + "/index.html?proxy=1") as page:
        first = _analyze(page, crop, model)
        e = page.evaluate(ENGINE)
        assert e["proxy"] is True and e["runtime"]["proxy"] is True and e["threads"] == min(8, e["cores"])
        # the proxy worker empties the arrays it is given: the same face twice gives the same answer
        assert _analyze(page, crop, model) == first
        # the occlusion passes run off the page's thread: its timers keep firing
        dt, gap = page.evaluate(
            """async ([c, n]) => {
              let last = performance.now(), gap = 0;
              const tick = () => { const t = performance.now(); gap = Math.max(gap, t - last); last = t; };
              const id = setInterval(tick, 5), t0 = performance.now();
              await deepEmotion.analyzeCrop(c, n, 8, 2);
              const dt = performance.now() - t0;
              clearInterval(id); tick(); return [dt, gap]; }""",
            [crop, model],
        )
        assert gap < 0.5 * dt, (gap, dt)
        assert page.errors == []


def test_page_without_isolation_works_on_one_thread_and_says_why(site, chromium_path, crop, model):
    import serve

    server = serve.start(site[1], isolated=False)
    try:
        with opened(chromium_path, f"http://127.0.0.1:{server.server_address[1]}/index.html") as page:
            got = _analyze(page, crop, model)
            e = page.evaluate(ENGINE)
            assert e["isolated"] is False and e["threads"] == e["runtime"]["threads"] == 1
            assert "1 CPU thread" in e["backend"] and "not cross-origin isolated" in e["backend"], e["backend"]
            assert page.errors == []
    finally:
        server.shutdown()
    with opened(chromium_path, site[0] + "/index.html?threads=1") as page:
        ref = _analyze(page, crop, model)
        assert page.evaluate(ENGINE)["proxy"] is False
    _close(got, ref, 1e-6, 1e-5)


def test_a_software_webgpu_adapter_is_not_taken_unasked(site, chromium_path):
    with opened(chromium_path, site[0] + "/index.html", tuple(WEBGPU_FLAGS)) as page:
        adapter = page.evaluate(ADAPTER)
        e = page.evaluate(ENGINE)
        if "error" in adapter:
            assert e["runtime"]["backend"] == "wasm" and "no GPU" in e["backend"], e["backend"]
        elif adapter["fallback"]:  # SwiftShader: hundreds of times slower than wasm for these models
            assert e["runtime"]["backend"] == "wasm", e
            assert "software adapter" in e["backend"] and "WebAssembly" in e["backend"], e["backend"]
        else:
            assert e["runtime"]["backend"] == "webgpu" and "WebGPU" in e["backend"], e["backend"]
        assert page.errors == []


def test_webgpu_gives_the_wasm_page_s_numbers(site, chromium_path, crop, model):
    # window 12, stride 12: 16 occluded copies, as SwiftShader takes about 0.4 s a copy
    with opened(chromium_path, site[0] + "/index.html?backend=wasm", tuple(WEBGPU_FLAGS)) as page:
        adapter = page.evaluate(ADAPTER)
        if "error" in adapter:
            pytest.skip(f"no WebGPU adapter in headless Chromium with {' '.join(WEBGPU_FLAGS)}: {adapter['error']}")
        ref = _analyze(page, crop, model, 12, 12)
    with opened(chromium_path, site[0] + "/index.html?backend=webgpu", tuple(WEBGPU_FLAGS)) as page:
        e = page.evaluate(ENGINE)
        assert e["runtime"]["backend"] == "webgpu" and e["proxy"] is False, e
        assert "WebGPU" in e["backend"] and e["runtime"]["adapter"] in e["backend"], e["backend"]
        got = _analyze(page, crop, model, 12, 12)
        assert page.errors == []
    _close(got, ref, 1e-3, 1e-2)
