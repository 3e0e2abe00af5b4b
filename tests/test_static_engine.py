"""The static page's engine (web/src/runtime.js, pool.js): the models run in a pool of workers, one per core (at
most 4 unless asked), each on one wasm thread, with a batch cut into one part per worker; the answers do not
depend on how many workers share them, and the page's thread stays free while they run. Served as the Space
serves it (cross-origin isolated) or without the headers, it works alike; WebGPU, where Chromium offers a hardware
adapter (or is asked for, `?backend=webgpu`), gives the wasm page's probabilities and maps, and the page falls
back to wasm cleanly when there is none."""

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
  runtime: {...deepEmotion.runtime, index: null},
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


def _pool_workers(page) -> int:
    return sum(w.url.endswith("/src/worker.js") for w in page.workers)


def test_isolated_page_runs_a_worker_per_core(site, chromium_path, crop, model):
    with opened(chromium_path, site[0] + "/index.html") as page:
        _analyze(page, crop, model)
        e = page.evaluate(ENGINE)
        workers = min(4, e["cores"])
        assert e["isolated"] is True and e["runtime"]["threads"] == workers
        assert _pool_workers(page) == workers
        assert not any("ort-wasm-simd-threaded" in w.url for w in page.workers)  # no ORT thread pools besides
        # without WebGPU flags headless Chromium gives no adapter: wasm, and the page says so
        assert e["runtime"]["backend"] == "wasm"
        assert f"{workers} CPU core" in e["backend"] and "WebAssembly" in e["backend"], e["backend"]
        assert page.errors == []


def test_the_pool_keeps_the_numbers_and_the_page_responsive(site, chromium_path, crop, model):
    with opened(chromium_path, site[0] + "/index.html?threads=1") as page:
        one = _analyze(page, crop, model)
        assert _pool_workers(page) == 1
    with opened(chromium_path, site[0] + "/index.html?threads=2") as page:
        first = _analyze(page, crop, model)
        assert _pool_workers(page) == min(2, page.evaluate("navigator.hardwareConcurrency"))
        assert _analyze(page, crop, model) == first  # the caller's arrays are not consumed by the workers
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
    _close(first, one, 1e-6, 1e-5)  # a batch cut in parts gives the whole batch's answers


def test_incremental_maps_equal_the_whole_models(site, chromium_path, crop):
    """A paper model's occlusion passes recompute only the patches of the STN's two stages that a window changes
    (incremental.js), on the workers' own kernels (paper-net.js): the probabilities of every copy equal the whole
    graph's up to float rounding (the kernels add in another order than ONNX Runtime), for windows of both
    parities, at the edges, with and without flip averaging, in one worker and split between several."""
    import json

    listed = json.loads((site[1] / "models" / "models.json").read_text())["models"]
    names = [m["name"] for m in listed if m["incremental"]]
    compare = """async ([name, window, stride]) => {
      const rt = await import("./src/runtime.js"), an = await import("./src/analysis.js");
      const inc = await import("./src/incremental.js");
      const s = await rt.session(rt.modelInfo(name).file), graphs = await s.incremental();
      const crop = Uint8Array.from(CROP), x = an.toInput(crop);
      const windows = [];
      const at = an.windowPositions(window, stride);
      for (const t of at) for (const l of at) windows.push([t, l]);
      const fast = await graphs.occluded(x, windows, window);
      const batch = new Float32Array(windows.length * 2304);
      windows.forEach(([t, l], i) => { const c = batch.subarray(i * 2304, (i + 1) * 2304); c.set(x);
        for (let y = t; y < Math.min(t + window, 48); y++) c.fill(0, y * 48 + l, y * 48 + Math.min(l + window, 48)); });
      const feeds = {face: new ort.Tensor("float32", batch, [windows.length, 1, 48, 48])};
      const whole = (await s.run(feeds)).probabilities.data;
      let diff = 0;
      for (let i = 0; i < whole.length; i++) diff = Math.max(diff, Math.abs(whole[i] - fast[i]));
      return {diff, n: windows.length, applies: inc.applies(graphs, window), past: inc.applies(graphs, 14),
              length: fast.length === whole.length};
    }"""
    for query in ("?threads=1", ""):
        with opened(chromium_path, site[0] + "/index.html" + query) as page:
            page.evaluate(f"globalThis.CROP = {crop}")
            for name in names:
                for window, stride in ((8, 2), (5, 3), (13, 7), (1, 5)):
                    got = page.evaluate(compare, [name, window, stride])
                    assert got["applies"] and got["length"] and not got["past"], (name, window, got)  # 14: no gain
                    assert got["diff"] < 1e-5, (name, window, stride, query, got)
            assert page.errors == []


def test_the_kernels_give_the_onnx_parts_answers(site, chromium_path):
    """paper-net.js runs a paper model's three parts on our own WebAssembly kernels (web/kernels/layers.ts) in the
    workers: each part gives its ONNX graph's answer up to float rounding, on faces, crops and regions of the sizes
    the maps use (down to the 2x2 patches of small windows), for batches odd and even, shorter and longer than the
    kernels' chunk, with and without flip averaging and post-hoc corrections; the weights file is refused when it
    holds other than float32 numbers."""
    import json

    listed = json.loads((site[1] / "models" / "models.json").read_text())["models"]
    entries = [m["incremental"] for m in listed if m["incremental"]]
    assert entries and all(e["weights"] for e in entries)
    compare = """async (entry) => {
      const rt = await import("./src/runtime.js"), { PaperNet } = await import("./src/paper-net.js");
      const { readSafetensors } = await import("./src/layers.js");
      const bytes = async (f) => (await fetch(f)).arrayBuffer();
      const module = await WebAssembly.compile(await bytes("kernels/layers.wasm"));
      const net = await PaperNet.create(module, await bytes("models/" + entry.weights), entry);
      const onnx = {};
      for (const k of ["stage1", "stage2", "rest"]) onnx[k] = await rt.session(entry[k]);
      let seed = 1;
      const random = (n) => Float32Array.from({length: n}, () => ((seed = (seed * 16807) % 2147483647) / 2147483647));
      const T = (data, dims) => new ort.Tensor("float32", data, dims);
      const worst = {};
      const check = async (part, feeds) => {
        const a = Object.values(await onnx[part].run(feeds))[0], b = Object.values(await net[part].run(feeds))[0];
        if (a.dims.join() !== b.dims.join()) throw new Error(`${part}: ${b.dims} instead of ${a.dims}`);
        let d = 0;
        for (let i = 0; i < a.data.length; i++) d = Math.max(d, Math.abs(a.data[i] - b.data[i]));
        worst[part] = Math.max(worst[part] || 0, d);
      };
      for (const [n, side] of [[2, 48], [3, 20], [17, 22], [1, 14]]) {
        await check("stage1", {face: T(random(n * side * side), [n, 1, side, side])});
      }
      for (const [n, side] of [[2, 21], [17, 16], [3, 10], [1, 8]]) {
        await check("stage2", {stage1: T(random(n * 8 * side * side), [n, 8, side, side])});
      }
      const stages = async (faces, n) => {  // the faces' second stage, as the maps give it
        const one = (await onnx.stage1.run({face: T(faces, [n, 1, 48, 48])})).stage1;
        return (await onnx.stage2.run({stage1: T(one.data, one.dims)})).stage2;
      };
      for (const n of [1, 5, 37]) {
        const faces = random(n * 2304), mirrored = new Float32Array(faces.length);
        for (let r = 0; r < n * 48; r++) for (let c = 0; c < 48; c++) mirrored[r * 48 + c] = faces[r * 48 + 47 - c];
        const two = await stages(faces, n), feeds = {face: T(faces, [n, 1, 48, 48]), stage2: T(two.data, two.dims)};
        if (entry.mirrored) { const m = await stages(mirrored, n); feeds.stage2_mirrored = T(m.data, m.dims); }
        await check("rest", feeds);
      }
      const header = JSON.stringify({x: {dtype: "F16", shape: [1], data_offsets: [0, 2]}});
      const half = new ArrayBuffer(8 + 64);
      new DataView(half).setBigUint64(0, BigInt(header.length), true);
      new Uint8Array(half, 8).set(new TextEncoder().encode(header));
      let refused = "";
      try { readSafetensors(half.slice(0, 8 + header.length + 2)); } catch (e) { refused = e.message; }
      return {worst, refused};
    }"""
    with opened(chromium_path, site[0] + "/index.html") as page:
        for entry in entries:
            got = page.evaluate(compare, entry)
            assert set(got["worst"]) == {"stage1", "stage2", "rest"}, got
            assert max(got["worst"].values()) < 1e-5, (entry["weights"], got)
            assert "float32" in got["refused"], got
        assert page.errors == []


def test_mtcnn_on_the_kernels_gives_the_onnx_graphs_answers(site, chromium_path):
    """The workers run MTCNN's three networks on our own kernels (mtcnn-net.js, the layers each weights file lists):
    every output of each equals its ONNX graph's up to float rounding, for P-Net at pyramid sizes odd and even down
    to its smallest (12x12: one place) and for batches of R-Net and O-Net crops shorter and longer than a chunk."""
    import json

    mtcnn = json.loads((site[1] / "models" / "models.json").read_text())["mtcnn"]
    assert set(mtcnn["kernels"]) == {"pnet", "rnet", "onet"}
    compare = """async ([name, onnxFile, weights, shapes]) => {
      const rt = await import("./src/runtime.js"), { MtcnnNet } = await import("./src/mtcnn-net.js");
      const bytes = async (f) => (await fetch(f)).arrayBuffer();
      const module = await WebAssembly.compile(await bytes("kernels/layers.wasm"));
      const net = await MtcnnNet.create(module, await bytes("models/" + weights));
      const onnx = await rt.session(onnxFile, true);
      let seed = 7, worst = 0;
      const pixels = (n) => Float32Array.from({length: n}, () => (seed = (seed * 16807) % 2147483647) % 256);
      const names = new Set();
      for (const dims of shapes) {
        const image = {type: "float32", data: pixels(dims.reduce((a, b) => a * b)), dims};
        const a = await onnx.run({image}), b = net.run({image});
        for (const [k, t] of Object.entries(a)) {
          names.add(k);
          if (t.dims.join() !== b[k].dims.join()) throw new Error(`${name} ${k}: ${b[k].dims} instead of ${t.dims}`);
          for (let i = 0; i < t.data.length; i++) worst = Math.max(worst, Math.abs(t.data[i] - b[k].data[i]));
        }
      }
      return {worst, names: [...names].sort()};
    }"""
    shapes = {
        "pnet": [[1, 3, 61, 80], [1, 3, 12, 12], [1, 3, 13, 15], [1, 3, 37, 53], [1, 3, 577, 769]],
        "rnet": [[1, 3, 24, 24], [9, 3, 24, 24], [19, 3, 24, 24]],
        "onet": [[1, 3, 48, 48], [5, 3, 48, 48], [11, 3, 48, 48]],
    }
    outputs = {
        "pnet": ["probabilities", "regression"],
        "rnet": ["probabilities", "regression"],
        "onet": ["landmarks", "probabilities", "regression"],
    }
    with opened(chromium_path, site[0] + "/index.html") as page:
        for name, dims in shapes.items():
            got = page.evaluate(compare, [name, mtcnn[name], mtcnn["kernels"][name], dims])
            assert got["names"] == outputs[name], (name, got)
            assert got["worst"] < 1e-5, (name, got)
        assert page.errors == []


def test_without_the_kernels_the_page_runs_the_graphs(site, chromium_path, crop, model, tmp_path):
    """A build whose kernels file is missing (or a browser that cannot compile it) still finds faces and draws the
    maps: the workers run ONNX Runtime's graphs of the same networks, the console says why, and the answers are
    the kernels' up to float rounding."""
    import shutil

    import serve
    from PIL import Image

    broken = shutil.copytree(site[1], tmp_path / "space")
    (broken / "kernels" / "layers.wasm").unlink()
    photo = Image.open(ROOT / "webapp" / "examples" / "astronaut.jpg").convert("RGB")
    rgba = np.asarray(photo.convert("RGBA"), dtype=np.uint8).ravel().tolist()
    detect = "([p, w, h]) => deepEmotion.detect(p, w, h)"
    server = serve.start(broken)
    try:
        with opened(chromium_path, f"http://127.0.0.1:{server.server_address[1]}/index.html") as page:
            notes = []
            page.on("console", lambda m: notes.append(m.text) if m.type == "warning" else None)
            faces = page.evaluate(detect, [rgba, photo.width, photo.height])
            got = _analyze(page, crop, model)
            assert page.errors == []
            assert any("instead of our kernels" in n and "layers.wasm" in n for n in notes), notes
    finally:
        server.shutdown()
    with opened(chromium_path, site[0] + "/index.html") as page:
        ref_faces = page.evaluate(detect, [rgba, photo.width, photo.height])
        ref = _analyze(page, crop, model)
    assert len(faces) == len(ref_faces) == 1
    assert np.abs(np.array(faces[0]["box"]) - ref_faces[0]["box"]).max() < 1e-3
    _close(got, ref, 1e-5, 1e-4)


def test_page_without_isolation_works_alike(site, chromium_path, crop, model):
    import serve

    server = serve.start(site[1], isolated=False)
    try:
        with opened(chromium_path, f"http://127.0.0.1:{server.server_address[1]}/index.html") as page:
            got = _analyze(page, crop, model)
            e = page.evaluate(ENGINE)
            assert e["isolated"] is False and e["runtime"]["threads"] == min(4, e["cores"])
            assert _pool_workers(page) == e["runtime"]["threads"]
            assert page.errors == []
    finally:
        server.shutdown()
    with opened(chromium_path, site[0] + "/index.html") as page:
        ref = _analyze(page, crop, model)
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
        assert e["runtime"]["backend"] == "webgpu", e
        assert "WebGPU" in e["backend"] and e["runtime"]["adapter"] in e["backend"], e["backend"]
        got = _analyze(page, crop, model, 12, 12)
        assert page.errors == []
    _close(got, ref, 1e-3, 1e-2)
