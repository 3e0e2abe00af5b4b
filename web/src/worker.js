// One engine of the page's pool (pool.js): onnxruntime-web on one WebAssembly thread, in a worker, holding a
// session per ONNX file it is sent. It runs what it is given one run at a time, in the order it arrives.
//
// Messages in:  {id, op: "load", file, bytes}          -> {id}
//               {id, op: "run", file, feeds: {name: {type, data, dims}}} -> {id, outputs: {name: {type, data, dims}}}
//               {id, op: "occluded", graphs, x, windows, window} -> {id, probabilities}  (incremental.js)
// A failure answers {id, error: message}.

import * as ort from "../ort/ort.wasm.min.mjs";
import { Scratch, occluded } from "./incremental.js";

ort.env.wasm.wasmPaths = new URL("../ort/", import.meta.url).href;
ort.env.wasm.numThreads = 1; // the pool runs one worker per core: a thread pool per worker would only compete
globalThis.ort = ort; // incremental.js makes its tensors with it

const sessions = new Map(); // file -> Promise<InferenceSession>
let turn = Promise.resolve(); // runs one after another (an ORT session runs one at a time)
const scratch = new Scratch(); // so `occluded` may reuse its arrays: this worker makes one call at a time

const loaded = async (file) => {
  if (!sessions.has(file)) throw new Error(`${file} is not loaded`);
  return sessions.get(file);
};

async function handle({ op, file, bytes, feeds, graphs, x, windows, window }) {
  if (op === "load") {
    if (!sessions.has(file)) {
      const created = ort.InferenceSession.create(new Uint8Array(bytes), { executionProviders: ["wasm"] });
      created.catch(() => sessions.delete(file));
      sessions.set(file, created);
    }
    await sessions.get(file);
    return [{}, []];
  }
  if (op === "occluded") {
    const [stage1, stage2, rest] = await Promise.all([graphs.stage1, graphs.stage2, graphs.rest].map(loaded));
    const probabilities = await occluded({ ...graphs, stage1, stage2, rest }, x, windows, window, { scratch });
    return [{ probabilities }, [probabilities.buffer]];
  }
  if (op !== "run") throw new Error(`unknown message ${op}`);
  const session = await loaded(file);
  const inputs = Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, new ort.Tensor(t.type, t.data, t.dims)]));
  const out = await session.run(inputs);
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
