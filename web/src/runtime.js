// The page's engine: onnxruntime-web loaded from our own files, on the GPU (WebGPU) when the browser gives an
// adapter and on the CPU otherwise, in a pool of workers (pool.js: one per core up to 4, each on one WebAssembly
// thread); the model index (models.json) and one cached session per ONNX file.
//
// The expression models run on the chosen backend; MTCNN always runs in the pool (its P-Net sees a new input size
// at every pyramid scale, which WebGPU would compile anew each time). `?backend=wasm` or `?backend=webgpu` in
// the address forces one; `?threads=N` sets the number of workers.

import { occluded } from "./incremental.js";
import { Pool } from "./pool.js";

const ORT = new URL("../ort/", import.meta.url).href;
// workers by default: each holds its own copy of every model it runs (a wide model is ~25 MB in memory), and past
// four the parts of a batch are too small to gain much; `?threads=N` may ask for up to one per core
const MAX_WORKERS = 4;
const params = new URLSearchParams(globalThis.location ? location.search : "");

export const runtime = { backend: "wasm", threads: 1, adapter: "", index: null, reason: "" };
const sessions = new Map();
let pool = null;

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
  ort.env.wasm.numThreads = 1; // WebAssembly runs in the pool's workers, not on the page's thread
  const cores = navigator.hardwareConcurrency || 1;
  const asked = Math.trunc(Number(params.get("threads")));
  runtime.threads = asked >= 1 ? Math.min(asked, cores) : Math.min(MAX_WORKERS, cores);
  pool = new Pool(runtime.threads);
  if (adapter) {
    ort.env.webgpu.adapter = adapter; // the one checked above, not another of ORT's asking
    runtime.backend = "webgpu";
    runtime.adapter = adapterName(adapter);
  }
  const res = await fetch(new URL("../models/models.json", import.meta.url));
  if (!res.ok) throw new Error(`models/models.json: HTTP ${res.status}`);
  runtime.index = await res.json();
  return runtime;
}

/** One sentence on where the models run, for the page. */
export function backendLine() {
  const cpu = `${runtime.threads} CPU core${runtime.threads > 1 ? "s" : ""} (WebAssembly)`;
  if (runtime.backend === "webgpu") return `Models run on the GPU (WebGPU, ${runtime.adapter}); faces are found on ${cpu}.`;
  const gpu = runtime.reason ? `; no GPU: ${runtime.reason}` : "";
  return `Models run on ${cpu}${gpu}.`;
}

/** Whether a session runs on WebGPU: the expression models when that is the backend, never MTCNN (`cpu`). */
const onGpu = (cpu) => !cpu && runtime.backend === "webgpu";

/** The cached session of one ONNX file of models/: in the worker pool, or on WebGPU when that is the backend
 * (`cpu`: in the pool whatever the backend, as MTCNN). Sessions answer `run(feeds)` with {name: {data, dims}}. */
export async function session(file, cpu = false) {
  const gpu = onGpu(cpu);
  const key = `${file}|${gpu ? "webgpu" : "pool"}`;
  if (!sessions.has(key)) {
    const url = new URL(`../models/${file}`, import.meta.url).href;
    let created = gpu
      ? globalThis.ort.InferenceSession.create(url, { executionProviders: ["webgpu", "wasm"] }).then(oneAtATime)
      : pool.session(file, url);
    created = created.then((s) => Object.assign(s, { incremental: incremental(file, cpu) }));
    created.catch(() => sessions.delete(key)); // a failed load is tried again next time
    sessions.set(key, created);
  }
  try {
    return await sessions.get(key);
  } catch (e) {
    throw new Error(`The model file ${file} could not be loaded (${e.message || e}). Reload the page to try again.`);
  }
}

/** For a model with an STN (models.json "incremental"), a function loading the parts of its graph that the
 * occlusion maps use (the STN's two stages, the rest; in the pool, the weights of our kernels for them when the
 * model has some), with `occluded(x, windows, window)` (incremental.js) running them; null otherwise. */
function incremental(file, cpu) {
  const entry = runtime.index.models.find((m) => m.file === file)?.incremental;
  if (!entry) return null;
  return async () => {
    // the pool's workers run the parts on our own kernels (paper-net.js) when they load, the graphs otherwise
    if (entry.weights && !onGpu(cpu) && await onKernels(entry.weights)) {
      return { ...entry, occluded: (x, windows, window) => pool.occluded(entry, x, windows, window) };
    }
    const onnx = { ...entry, weights: null }; // (what the workers are sent: the graphs' names, no kernels)
    const files = [entry.stage1, entry.stage2, entry.rest];
    const [stage1, stage2, rest] = await Promise.all(files.map((f) => session(f, cpu)));
    const graphs = { ...onnx, stage1, stage2, rest };
    // in the pool every worker takes a share of the windows; on WebGPU the page drives the three parts
    graphs.occluded = onGpu(cpu) ? (x, windows, window) => occluded(graphs, x, windows, window)
      : (x, windows, window) => pool.occluded(onnx, x, windows, window);
    return graphs;
  };
}

let queue = Promise.resolve();

/** `s` with a `run` that waits for every WebGPU run the page started before it: the photo, video and live tabs may
 * ask at once, and WebGPU refuses a run while another is under way. */
function oneAtATime(s) {
  const run = s.run.bind(s);
  s.run = (...args) => {
    const mine = queue.then(() => run(...args));
    queue = mine.catch(() => {}); // a failed run does not block the ones after it
    return mine;
  };
  return s;
}

const kernelLoads = new Map(); // weights file -> Promise<whether the pool runs it on our kernels>

/** Whether the weights `file` for our own kernels (layers.js) loaded in every worker: once asked, the answer
 * stands; when they cannot load (an old browser, a file missing from the build), the page says why in the
 * console and runs ONNX Runtime's graphs of the same networks instead. */
function onKernels(file) {
  if (!kernelLoads.has(file)) {
    kernelLoads.set(file, session(file, true).then(() => true, (e) => {
      console.warn(`Running ONNX Runtime's graphs instead of our kernels: ${e.message || e}`);
      return false;
    }));
  }
  return kernelLoads.get(file);
}

/** MTCNN's three networks, in the worker pool: on our own kernels (mtcnn-net.js) where models.json names their
 * weights and they load, ONNX Runtime's graphs otherwise. */
export async function nets() {
  const m = runtime.index.mtcnn, names = ["pnet", "rnet", "onet"];
  const kernels = m.kernels && (await Promise.all(names.map((k) => onKernels(m.kernels[k])))).every(Boolean);
  const [pnet, rnet, onet] = await Promise.all(names.map((k) => session(kernels ? m.kernels[k] : m[k], true)));
  return { pnet, rnet, onet };
}

/** The model entry of models.json called `name`. */
export function modelInfo(name) {
  const m = runtime.index.models.find((x) => x.name === name);
  if (!m) throw new Error(`There is no model called ${name}.`);
  return m;
}
