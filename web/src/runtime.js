// The page's engine: onnxruntime-web loaded from our own files, on the GPU (WebGPU) when the browser gives an
// adapter and on the CPU (wasm, one thread per core when the page is cross-origin isolated) otherwise; the
// model index (models.json) and one cached inference session per ONNX file.
//
// The expression models run on the chosen backend; MTCNN always runs on wasm (its P-Net sees a new input size
// at every pyramid scale, which WebGPU would compile anew each time). `?backend=wasm` or `?backend=webgpu` in
// the address forces one; `?threads=N` sets the wasm threads.

const ORT = new URL("../ort/", import.meta.url).href;
const params = new URLSearchParams(globalThis.location ? location.search : "");

export const runtime = { backend: "wasm", threads: 1, adapter: "", index: null, reason: "" };
const sessions = new Map();

async function gpuAdapter() {
  if (!globalThis.navigator?.gpu) return [null, "this browser has no WebGPU"];
  try {
    const adapter = await navigator.gpu.requestAdapter();
    return adapter ? [adapter, ""] : [null, "WebGPU gave no adapter"];
  } catch (e) {
    return [null, `WebGPU failed (${e.message || e})`];
  }
}

/** Load onnxruntime-web (WebGPU build when an adapter is there) and models.json; sets `runtime`. */
export async function init() {
  const wanted = params.get("backend");
  let adapter = null;
  if (wanted !== "wasm") [adapter, runtime.reason] = await gpuAdapter();
  if (wanted === "webgpu" && !adapter) throw new Error(`WebGPU was asked for, but ${runtime.reason}.`);
  const ort = await import(adapter ? `${ORT}ort.webgpu.min.mjs` : `${ORT}ort.wasm.min.mjs`);
  globalThis.ort = ort;
  ort.env.wasm.wasmPaths = ORT;
  const cores = navigator.hardwareConcurrency || 1;
  const asked = Number(params.get("threads"));
  runtime.threads = globalThis.crossOriginIsolated ? (asked >= 1 ? Math.min(asked, cores) : Math.min(8, cores)) : 1;
  ort.env.wasm.numThreads = runtime.threads;
  if (adapter) {
    runtime.backend = "webgpu";
    const info = adapter.info || {};
    runtime.adapter = [info.vendor, info.architecture || info.description].filter(Boolean).join(" ") || "a GPU";
  }
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
      { executionProviders: ep });
    created.catch(() => sessions.delete(key)); // a failed load is tried again next time
    sessions.set(key, created);
  }
  try {
    return await sessions.get(key);
  } catch (e) {
    throw new Error(`The model file ${file} could not be loaded (${e.message || e}). Reload the page to try again.`);
  }
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
