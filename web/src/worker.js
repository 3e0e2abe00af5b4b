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
import { compileKernels, readSafetensors } from "./layers.js";
import { MtcnnNet } from "./mtcnn-net.js";
import { PaperNet } from "./paper-net.js";

ort.env.wasm.wasmPaths = new URL("../ort/", import.meta.url).href;
ort.env.wasm.numThreads = 1; // the pool runs one worker per core: a thread pool per worker would only compete
globalThis.ort = ort; // incremental.js makes its tensors with it

const sessions = new Map(); // file -> Promise<InferenceSession> (or the bytes of a .safetensors)
const nets = new Map(); // a paper model's weights file -> Promise<PaperNet>
let kernels = null; // Promise<WebAssembly.Module> of our kernels, compiled once
let turn = Promise.resolve(); // runs one after another (an ORT session runs one at a time)
const scratch = new Scratch(); // so `occluded` may reuse its arrays: this worker makes one call at a time

const loaded = async (file) => {
  if (!sessions.has(file)) throw new Error(`${file} is not loaded`);
  return sessions.get(file);
};

/** What a .safetensors of weights for our kernels loads as: MTCNN's network, built at once ({net}), or a paper
 * model's weights ({module, bytes}), built on its first map (with its models.json entry). A file that does not
 * read, or kernels that do not compile, fail the load with the reason (the page then runs the ONNX graphs). */
async function loadWeights(file, bytes) {
  kernels ||= compileKernels(new URL("../kernels/layers.wasm", import.meta.url));
  kernels.catch(() => { kernels = null; });
  const module = await kernels;
  try {
    const t = readSafetensors(bytes);
    return t.metadata?.layers ? { net: await MtcnnNet.create(module, bytes) } : { module, bytes, check: PaperNet.check(t) };
  } catch (e) {
    throw new Error(`${file}: ${e.message || e}`);
  }
}

/** The paper network on our kernels for a model's models.json "incremental" entry (its weights loaded). */
function paperNet(graphs) {
  if (!nets.has(graphs.weights)) {
    const made = loaded(graphs.weights).then(({ module, bytes }) => PaperNet.create(module, bytes, graphs));
    made.catch(() => nets.delete(graphs.weights));
    nets.set(graphs.weights, made);
  }
  return nets.get(graphs.weights);
}

async function handle({ op, file, bytes, feeds, graphs, x, windows, window }) {
  if (op === "load") {
    if (!sessions.has(file)) {
      const created = file.endsWith(".safetensors") ? loadWeights(file, bytes)
        : ort.InferenceSession.create(new Uint8Array(bytes), { executionProviders: ["wasm"] });
      created.catch(() => sessions.delete(file));
      sessions.set(file, created);
    }
    await sessions.get(file);
    return [{}, []];
  }
  if (op === "occluded") {
    const parts = ["stage1", "stage2", "rest"];
    const { stage1, stage2, rest } = graphs.weights ? await paperNet(graphs)
      : Object.fromEntries(await Promise.all(parts.map(async (k) => [k, await loaded(graphs[k])])));
    const probabilities = await occluded({ ...graphs, stage1, stage2, rest }, x, windows, window, { scratch });
    return [{ probabilities }, [probabilities.buffer]];
  }
  if (op !== "run") throw new Error(`unknown message ${op}`);
  const session = await loaded(file);
  let out;
  if (file.endsWith(".safetensors")) { // one of MTCNN's networks on our kernels
    if (!session.net) throw new Error(`${file} holds no network that runs alone`);
    out = session.net.run(feeds);
  } else {
    out = await session.run(Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, new ort.Tensor(t.type, t.data, t.dims)])));
  }
  const outputs = {}, transfer = [];
  for (const [k, t] of Object.entries(out)) {
    // a whole buffer of its own can be handed over; a view into a shared one is copied
    const data = t.data.byteLength === t.data.buffer.byteLength ? t.data : t.data.slice();
    outputs[k] = { type: t.type, data, dims: Array.from(t.dims) };
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
