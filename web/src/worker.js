// One engine of the page's pool (pool.js): onnxruntime-web on one WebAssembly thread, in a worker, holding a
// session per ONNX file it is sent, and a network on our own kernels per .safetensors of weights (MTCNN's,
// mtcnn-net.js, run like a session; a paper model's, paper-net.js, for its occlusion maps). It runs what it is
// given one run at a time, in the order it arrives.
//
// Messages in:  {id, op: "load", file, bytes}          -> {id}   (an ONNX file, or a .safetensors of weights)
//               {id, op: "run", file, feeds: {name: {type, data, dims}}} -> {id, outputs: {name: {type, data, dims}}}
//               {id, op: "occluded", graphs, x, windows, window} -> {id, probabilities}  (incremental.js)
// A failure answers {id, error: message}.

import * as ort from "../ort/ort.wasm.min.mjs";
import { Scratch, occluded } from "./incremental.js";
import { compileKernels } from "./layers.js";
import { MtcnnNet } from "./mtcnn-net.js";
import { PaperNet } from "./paper-net.js";

ort.env.wasm.wasmPaths = new URL("../ort/", import.meta.url).href;
ort.env.wasm.numThreads = 1; // the pool runs one worker per core: a thread pool per worker would only compete
globalThis.ort = ort; // incremental.js makes its tensors with it

const sessions = new Map(); // file -> Promise<InferenceSession> (or the bytes of a .safetensors)
const nets = new Map(); // weights file -> Promise<PaperNet or MtcnnNet>
let kernels = null; // Promise<WebAssembly.Module> of our kernels, compiled once
let turn = Promise.resolve(); // runs one after another (an ORT session runs one at a time)
const scratch = new Scratch(); // so `occluded` may reuse its arrays: this worker makes one call at a time

const loaded = async (file) => {
  if (!sessions.has(file)) throw new Error(`${file} is not loaded`);
  return sessions.get(file);
};

/** The network on our kernels whose weights are `file` (loaded), made once by `make(module, bytes)`. */
function kernelNet(file, make) {
  if (!nets.has(file)) {
    kernels ||= compileKernels(new URL("../kernels/layers.wasm", import.meta.url));
    kernels.catch(() => { kernels = null; });
    const made = Promise.all([kernels, loaded(file)]).then(([m, w]) => make(m, w));
    made.catch(() => nets.delete(file));
    nets.set(file, made);
  }
  return nets.get(file);
}

async function handle({ op, file, bytes, feeds, graphs, x, windows, window }) {
  if (op === "load") {
    if (!sessions.has(file)) {
      const created = file.endsWith(".safetensors") ? Promise.resolve(bytes)
        : ort.InferenceSession.create(new Uint8Array(bytes), { executionProviders: ["wasm"] });
      created.catch(() => sessions.delete(file));
      sessions.set(file, created);
    }
    await sessions.get(file);
    return [{}, []];
  }
  if (op === "occluded") {
    const onnx = async () => Object.fromEntries(await Promise.all(["stage1", "stage2", "rest"].map(async (k) => [k, await loaded(graphs[k])])));
    const { stage1, stage2, rest } = graphs.weights ? await kernelNet(graphs.weights, (m, w) => PaperNet.create(m, w, graphs))
      : await onnx();
    const probabilities = await occluded({ ...graphs, stage1, stage2, rest }, x, windows, window, { scratch });
    return [{ probabilities }, [probabilities.buffer]];
  }
  if (op !== "run") throw new Error(`unknown message ${op}`);
  let out;
  if (file.endsWith(".safetensors")) { // one of MTCNN's networks on our kernels
    out = (await kernelNet(file, (module, bytes) => MtcnnNet.create(module, bytes))).run(feeds);
  } else {
    const session = await loaded(file);
    out = await session.run(Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, new ort.Tensor(t.type, t.data, t.dims)])));
  }
  const outputs = {}, transfer = [];
  for (const [k, t] of Object.entries(out)) {
    // a whole buffer of its own can be handed over; a view into a shared one is copied
    const data = t.data.byteLength === t.data.buffer.byteLength ? t.data : t.data.slice();
    outputs[k] = { type: t.type || "float32", data, dims: Array.from(t.dims) };
    transfer.push(data.buffer);
  }
  return [{ outputs }, transfer];
}

onmessage = (e) => {
  const { id } = e.data;
  turn = turn.then(async () => {
    try {
      const [answer, transfer] = await handle(e.data);
      postMessage({ id, ...answer }, transfer);
    } catch (err) {
      postMessage({ id, error: String(err?.message || err) });
    }
  });
};
