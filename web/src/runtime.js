// The page's engine: onnxruntime-web loaded from our own files, on the GPU (WebGPU) when the browser gives an
// adapter and on the CPU (wasm, one thread per core when the page is cross-origin isolated) otherwise; the
// model index (models.json) and one cached inference session per ONNX file.
//
// The expression models run on the chosen backend; MTCNN always runs on wasm (its P-Net sees a new input size
// at every pyramid scale, which WebGPU would compile anew each time). `?backend=wasm` or `?backend=webgpu` in
// the address forces one; `?threads=N` sets the wasm threads. `?proxy=1` runs the wasm models in ORT's proxy
// worker: the page's thread then stays free during the occlusion passes (it stalls for a whole run otherwise), but
// MTCNN's dozen short runs per photo pay a round trip each (measured: +75 ms per detect, docs/performance.md).

const ORT = new URL("../ort/", import.meta.url).href;
const params = new URLSearchParams(globalThis.location ? location.search : "");

export const runtime = { backend: "wasm", threads: 1, proxy: false, adapter: "", index: null, reason: "" };
const sessions = new Map();

/** [adapter, ""] or [null, why not]. A software adapter (SwiftShader: `isFallbackAdapter`, what headless
 * Chromium offers under --enable-unsafe-webgpu) runs our models hundreds of times slower than wasm, so it is taken
 * only when `forced` (`?backend=webgpu`). */
async function gpuAdapter(forced) {
  if (!globalThis.navigator?.gpu) return [null, "this browser has no WebGPU"];
  try {
    const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
    if (!adapter) return [null, "WebGPU gave no adapter"];
    const soft = adapter.info?.isFallbackAdapter ?? adapter.isFallbackAdapter;
    if (soft && !forced) return [null, `WebGPU offers only a software adapter (${adapterName(adapter)}), slower than the CPU`];
    return [adapter, ""];
  } catch (e) {
    return [null, `WebGPU failed (${e.message || e})`];
  }
}

const adapterName = (a) => {
  const info = a.info || {};
  return [info.vendor, info.architecture || info.description].filter(Boolean).join(" ") || "a GPU";
};

/** Load onnxruntime-web (WebGPU build when an adapter is there) and models.json; sets `runtime`. */
export async function init() {
  const wanted = params.get("backend");
  let adapter = null;
  if (wanted !== "wasm") [adapter, runtime.reason] = await gpuAdapter(wanted === "webgpu");
  if (wanted === "webgpu" && !adapter) throw new Error(`WebGPU was asked for, but ${runtime.reason}.`);
  const ort = await import(adapter ? `${ORT}ort.webgpu.min.mjs` : `${ORT}ort.wasm.min.mjs`);
  globalThis.ort = ort;
  ort.env.wasm.wasmPaths = ORT;
  const cores = navigator.hardwareConcurrency || 1;
  const asked = Number(params.get("threads"));
  runtime.threads = globalThis.crossOriginIsolated ? (asked >= 1 ? Math.min(asked, cores) : Math.min(8, cores)) : 1;
  ort.env.wasm.numThreads = runtime.threads;
  if (adapter) {
    ort.env.webgpu.adapter = adapter; // the one checked above, not another of ORT's asking
    runtime.backend = "webgpu";
    runtime.adapter = adapterName(adapter);
  }
  runtime.proxy = ort.env.wasm.proxy = runtime.backend === "wasm" && params.get("proxy") === "1"; // not with WebGPU
  const res = await fetch(new URL("../models/models.json", import.meta.url));
  if (!res.ok) throw new Error(`models/models.json: HTTP ${res.status}`);
  runtime.index = await res.json();
  return runtime;
}

/** One sentence on where the models run, for the page. */
export function backendLine() {
  const cpu = `${runtime.threads} CPU thread${runtime.threads > 1 ? "s" : ""}`;
  if (runtime.backend === "webgpu") return `Models run on the GPU (WebGPU, ${runtime.adapter}); faces are found on ${cpu} (WebAssembly).`;
  const why = globalThis.crossOriginIsolated ? "" : " (this page is not cross-origin isolated, so one thread)";
  const gpu = runtime.reason ? `; no GPU: ${runtime.reason}` : "";
  return `Models run on ${cpu} (WebAssembly)${why}${gpu}.`;
}

/** The cached session of one ONNX file of models/; `cpu`: on wasm whatever the backend (MTCNN). */
export async function session(file, cpu = false) {
  const ep = cpu || runtime.backend === "wasm" ? ["wasm"] : ["webgpu", "wasm"];
  const key = `${file}|${ep[0]}`;
  if (!sessions.has(key)) {
    const created = globalThis.ort.InferenceSession.create(new URL(`../models/${file}`, import.meta.url).href,
      { executionProviders: ep }).then((s) => oneAtATime(runtime.proxy ? keepingInputs(s) : s));
    created.catch(() => sessions.delete(key)); // a failed load is tried again next time
    sessions.set(key, created);
  }
  try {
    return await sessions.get(key);
  } catch (e) {
    throw new Error(`The model file ${file} could not be loaded (${e.message || e}). Reload the page to try again.`);
  }
}

let queue = Promise.resolve();

/** `s` with a `run` that waits for every run the page started before it, on any session: the photo, video and
 * live tabs may ask at once, and ORT Web runs one at a time (WebGPU refuses a run while another is under way). */
function oneAtATime(s) {
  const run = s.run.bind(s);
  s.run = (...args) => {
    const mine = queue.then(() => run(...args));
    queue = mine.catch(() => {}); // a failed run does not block the ones after it
    return mine;
  };
  return s;
}

/** `s` with a `run` that hands the proxy worker copies of the inputs: it transfers (empties) the arrays it is
 * given, and callers reuse theirs (the occlusion passes start from the same face). */
function keepingInputs(s) {
  const run = s.run.bind(s);
  const copy = (t) => new globalThis.ort.Tensor(t.type, t.data.slice(), t.dims);
  s.run = (feeds, ...rest) => run(Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, copy(t)])), ...rest);
  return s;
}

/** MTCNN's three networks, on wasm. */
export async function nets() {
  const m = runtime.index.mtcnn;
  const [pnet, rnet, onet] = await Promise.all([session(m.pnet, true), session(m.rnet, true), session(m.onet, true)]);
  return { pnet, rnet, onet };
}

/** The model entry of models.json called `name`. */
export function modelInfo(name) {
  const m = runtime.index.models.find((x) => x.name === name);
  if (!m) throw new Error(`There is no model called ${name}.`);
  return m;
}
