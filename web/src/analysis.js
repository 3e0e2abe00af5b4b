// One face through one model in the browser: probabilities (with the card's post-hoc corrections, inside the
// ONNX graph), the STN's θ and warped view, and the paper's occlusion maps (deep_emotion/explain.py): a
// window x window square set to black (0) slides with `stride` (top-left corners 0, s, 2s, ... up to
// 48 - window); "flip" counts, per pixel, the covering windows that change the predicted label; "drop" averages
// the fall of the predicted class's probability over them, which is Captum's Occlusion on the softmax.

import { applies, occludedCopies } from "./incremental.js";

export const SIZE = 48;
const CHUNK = 224; // copies per chunk: two chunks for the paper's 8/2 map (larger runs waste less per run)
const AHEAD = 4; // chunks in flight at once

export function checkWindow(window, stride) {
  if (!Number.isInteger(window) || window < 1 || window > SIZE) throw new Error(`window must be a whole number of pixels from 1 to ${SIZE}`);
  if (!Number.isInteger(stride) || stride < 1) throw new Error("stride must be a whole number of pixels, at least 1");
}

export function windowPositions(window, stride) {
  checkWindow(window, stride);
  const out = [];
  for (let p = 0; p < SIZE - window + stride; p += stride) out.push(p);
  return out;
}

/** Pixels in [0, 1] of a 48x48 uint8 crop. */
export function toInput(crop) {
  const x = new Float32Array(SIZE * SIZE);
  for (let i = 0; i < x.length; i++) x[i] = crop[i] / 255;
  return x;
}

async function run(session, faces, n) {
  const ort = globalThis.ort;
  const out = await session.run({ face: new ort.Tensor("float32", faces, [n, 1, SIZE, SIZE]) });
  return out;
}

/** A turn of the event loop for the page (scheduler.yield, or a message: unlike setTimeout, neither is slowed
 * down to once a second in a background tab). */
export function yieldToPage() {
  if (globalThis.scheduler?.yield) return globalThis.scheduler.yield();
  return new Promise((resolve) => {
    const { port1, port2 } = new MessageChannel();
    port1.onmessage = () => resolve();
    port2.postMessage(null);
  });
}

export const argmax = (p) => p.reduce((best, v, i, a) => (v > a[best] ? i : best), 0);

/** Probabilities, θ (2x3, row-major) and the STN view (48x48 in [0, 1]) of one crop. */
export async function classify(session, crop) {
  const out = await run(session, toInput(crop), 1);
  return { probabilities: Array.from(out.probabilities.data), theta: Array.from(out.theta.data),
    view: Float32Array.from(out.view.data) };
}

/** classify() of many crops in one run: [{probabilities, theta, view}] in their order. */
export async function classifyBatch(session, crops) {
  if (!crops.length) return [];
  const x = new Float32Array(crops.length * SIZE * SIZE);
  crops.forEach((c, i) => x.set(toInput(c), i * SIZE * SIZE));
  const out = await run(session, x, crops.length);
  const p = out.probabilities.data, k = p.length / crops.length, per = SIZE * SIZE;
  return crops.map((_, i) => ({ probabilities: Array.from(p.subarray(i * k, (i + 1) * k)),
    theta: Array.from(out.theta.data.subarray(6 * i, 6 * i + 6)), view: Float32Array.from(out.view.data.subarray(i * per, (i + 1) * per)) }));
}

/** Both occlusion maps (Float32Array 48x48, row-major) from one set of occluded passes, for `target`
 * (default: the predicted class). `p0`: the face's own probabilities when already known (saves a pass).
 * `progress(done, total)` is called after every chunk. */
export async function occlusion(session, crop, window, stride, target = null, progress = null, p0 = null) {
  const pos = windowPositions(window, stride);
  const x = toInput(crop);
  const windows = [];
  for (const top of pos) for (const left of pos) windows.push([top, left]);
  p0 = p0 || Array.from((await run(session, x, 1)).probabilities.data);
  const k = p0.length;
  const t = target == null ? argmax(p0) : target;
  const flip = new Float32Array(SIZE * SIZE), drop = new Float32Array(SIZE * SIZE), count = new Float32Array(SIZE * SIZE);
  // a model with an STN recomputes only the parts of its two stages that a window changes (incremental.js)
  const graphs = session.incremental ? await session.incremental() : null;
  const fast = applies(graphs, window);
  const copies = (start) => {
    const part = windows.slice(start, start + CHUNK);
    const done = fast ? graphs.occluded(x, part, window).then((data) => ({ probabilities: { data } }))
      : run(session, occludedCopies(x, part, window), part.length);
    done.catch(() => {}); // a failure is thrown where the chunk is awaited, not reported again as unhandled
    return done;
  };
  // chunks sent ahead, so that the engine's workers always have one to compute while the page reads another
  const sent = [];
  for (let start = 0; start < windows.length && sent.length < AHEAD; start += CHUNK) sent.push(copies(start));
  for (let start = 0; start < windows.length; start += CHUNK) {
    const out = await sent.shift();
    if (start + AHEAD * CHUNK < windows.length) sent.push(copies(start + AHEAD * CHUNK));
    const part = windows.slice(start, start + CHUNK);
    const p = out.probabilities.data;
    part.forEach(([top, left], i) => {
      const row = p.subarray(i * k, (i + 1) * k);
      const changed = argmax(row) !== t ? 1 : 0;
      const fall = p0[t] - row[t];
      for (let y = top; y < Math.min(top + window, SIZE); y++) {
        for (let xx = left; xx < Math.min(left + window, SIZE); xx++) {
          flip[y * SIZE + xx] += changed;
          drop[y * SIZE + xx] += fall;
          count[y * SIZE + xx] += 1;
        }
      }
    });
    if (progress) progress(Math.min(start + CHUNK, windows.length), windows.length);
    await yieldToPage(); // the page may draw and answer clicks between chunks
  }
  for (let i = 0; i < drop.length; i++) drop[i] = count[i] > 0 ? drop[i] / count[i] : 0;
  return { flip, drop, target: t, passes: windows.length + 1 };
}

/** The quadrilateral the STN samples, in crop pixels: θ maps output corners (-1/+1, align_corners=False) to
 * input coordinates. Corners in order top-left, top-right, bottom-right, bottom-left. */
export function stnQuad(theta, size = SIZE) {
  return [[-1, -1], [1, -1], [1, 1], [-1, 1]].map(([u, v]) => {
    const xs = theta[0] * u + theta[1] * v + theta[2], ys = theta[3] * u + theta[4] * v + theta[5];
    return [((xs + 1) * size) / 2, ((ys + 1) * size) / 2];
  });
}
