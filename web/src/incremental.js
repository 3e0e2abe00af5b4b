// Occluded copies of one face through a model with an STN, recomputing only what a window changes: a port of
// deep_emotion/explain/incremental.py. A copy differs from the face only inside its window, so the STN's first
// conv + ReLU + pool (its "stage 1", 8 x 21 x 21 at 48x48) changes only where its receptive field meets the
// window: an r x r patch, r = window/2 + 4. The page computes stage 1 once for the face (and for the mirrored face
// when the model averages over flips), and per copy only the patch, from a small crop of the copy, through the
// model's `stage1` graph; the `rest` graph takes the copies with their stage 1 and gives the probabilities.
// The patch is the same arithmetic on the same numbers as the full layer, so the answers equal the whole model's
// (tests/test_static_engine.py). models.json names the two graphs under each model's "incremental". In the worker
// pool each worker runs `occluded` on its share of the windows (worker.js); on WebGPU the page runs it.

const SIZE = 48;

/** Arrays that `occluded` fills anew at every call, kept for the next call by a caller that makes one call at a
 * time (a worker): a fresh array of megabytes costs more to touch the first time (the system maps its pages) than
 * to fill, ~20 of the ~120 ms a worker spent on its share of a map (docs/performance.md, "In the browser"). */
export class Scratch {
  constructor() {
    this.arrays = new Map();
  }

  /** `n` numbers (a Float32Array, its old contents left in place) under `key`. */
  floats(key, n) {
    let a = this.arrays.get(key);
    if (!a || a.length < n) this.arrays.set(key, (a = new Float32Array(n)));
    return a.subarray(0, n);
  }
}

const fresh = { floats: (_key, n) => new Float32Array(n) }; // no scratch: new arrays each call

const blocks = (halves) => Math.floor(halves.kernel / 2) + 1; // the first conv's kernel over 2x2 blocks: 4
const stageSize = (halves) => SIZE / 2 - blocks(halves) + 1; // 21
const patchSize = (halves, window) => Math.floor(window / 2) + blocks(halves);

/** Whether the incremental passes pay for this window (the patch at most half of stage 1's side, as in Python). */
export function applies(halves, window) {
  return Boolean(halves) && 2 * patchSize(halves, window) <= stageSize(halves);
}

const mirror = (x) => {
  const out = new Float32Array(x.length);
  for (let y = 0; y < SIZE; y++) for (let c = 0; c < SIZE; c++) out[y * SIZE + c] = x[y * SIZE + SIZE - 1 - c];
  return out;
};

const tensor = (data, dims) => new globalThis.ort.Tensor("float32", data, dims);

/** The face's stage 1 (and the mirrored face's, when the model averages over flips): [stage, mirrored]. */
async function faceStages(halves, x, mirrored) {
  const faces = mirrored ? [x, mirrored] : [x];
  const batch = new Float32Array(faces.length * SIZE * SIZE);
  faces.forEach((f, i) => batch.set(f, i * SIZE * SIZE));
  const out = (await halves.stage1.run({ face: tensor(batch, [faces.length, 1, SIZE, SIZE]) })).stage1.data;
  const per = out.length / faces.length;
  return [out.subarray(0, per), mirrored ? out.subarray(per) : null];
}

/** Stage 1 of each copy of `face` (48*48) with its window (top, left) set to `fill`: (K, C, n, n), the face's
 * stage 1 `stage` with the patch each window changes computed from a crop. */
async function copiesStage(halves, face, stage, windows, window, fill, scratch, key) {
  const n = stageSize(halves), r = patchSize(halves, window), b = blocks(halves), span = 2 * (r + b - 1);
  const k = windows.length, channels = halves.channels;
  const crops = scratch.floats("crops", k * span * span), at = [];
  windows.forEach(([top, left], i) => {
    const r0 = Math.min(Math.max(Math.floor(top / 2) - (b - 1), 0), n - r);
    const c0 = Math.min(Math.max(Math.floor(left / 2) - (b - 1), 0), n - r);
    at.push([r0, c0]);
    const o = i * span * span;
    for (let y = 0; y < span; y++) {
      const row = 2 * r0 + y, inRow = row >= top && row < top + window;
      for (let c = 0; c < span; c++) {
        const col = 2 * c0 + c;
        crops[o + y * span + c] = inRow && col >= left && col < left + window ? fill : face[row * SIZE + col];
      }
    }
  });
  const patches = (await halves.stage1.run({ face: tensor(crops, [k, 1, span, span]) })).stage1.data; // (K, C, r, r)
  const plane = n * n, per = channels * plane, out = scratch.floats(key, k * per);
  for (let i = 0; i < k; i++) {
    out.set(stage, i * per);
    const [r0, c0] = at[i];
    for (let ch = 0; ch < channels; ch++) {
      for (let y = 0; y < r; y++) {
        const src = ((i * channels + ch) * r + y) * r, dst = i * per + ch * plane + (r0 + y) * n + c0;
        for (let c = 0; c < r; c++) out[dst + c] = patches[src + c];
      }
    }
  }
  return out;
}

/** The copies (Float32Array K x 48 x 48) of the face x (48*48) with the window x window square at each
 * (top, left) of `windows` set to `fill` (cut at the picture's edges); written into `out` when given. */
export function occludedCopies(x, windows, window, fill = 0, out = null) {
  const batch = out || new Float32Array(windows.length * SIZE * SIZE);
  windows.forEach(([top, left], i) => {
    const copy = batch.subarray(i * SIZE * SIZE, (i + 1) * SIZE * SIZE);
    copy.set(x);
    for (let y = top; y < Math.min(top + window, SIZE); y++) copy.fill(fill, y * SIZE + left, y * SIZE + Math.min(left + window, SIZE));
  });
  return batch;
}

/** Probabilities (Float32Array, K x classes) of the copies of the face x (48*48 pixels in [0, 1]) with the
 * window x window square at each (top, left) of `windows` set to `fill`, through the model's two halves
 * ({stage1, rest} sessions and models.json's "incremental" entry). Equal to the whole model on the copies.
 * `scratch`: a Scratch for a caller that never has two calls under way at once (the arrays are reused). */
export async function occluded(halves, x, windows, window, { fill = 0, scratch = fresh } = {}) {
  const k = windows.length, n = stageSize(halves);
  const mirroredFace = halves.mirrored ? mirror(x) : null;
  const [stage, mirroredStage] = await faceStages(halves, x, mirroredFace);
  const copies = occludedCopies(x, windows, window, fill, scratch.floats("copies", k * SIZE * SIZE));
  const feeds = { face: tensor(copies, [k, 1, SIZE, SIZE]) };
  const st = await copiesStage(halves, x, stage, windows, window, fill, scratch, "stage1");
  feeds.stage1 = tensor(st, [k, halves.channels, n, n]);
  if (halves.mirrored) {
    // copy k mirrored = the mirrored face with the window mirrored (its left edge may fall before column 0)
    const turned = windows.map(([t, l]) => [t, SIZE - l - window]);
    const sm = await copiesStage(halves, mirroredFace, mirroredStage, turned, window, fill, scratch, "mirrored");
    feeds.stage1_mirrored = tensor(sm, [k, halves.channels, n, n]);
  }
  const p = (await halves.rest.run(feeds)).probabilities.data;
  return p.byteLength === p.buffer.byteLength ? p : p.slice();
}
