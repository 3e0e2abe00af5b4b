// Occluded copies of one face through a model with an STN, recomputing only what a window changes: the idea of
// deep_emotion/explain/incremental.py, carried one layer further. A copy differs from the face only inside its
// window, so the STN's first conv + ReLU + pool ("stage 1", 8 x 21 x 21 at 48x48) changes only where its
// receptive field meets the window (a patch of at most (window/2 + 4)^2), and its second conv + ReLU + pool
// ("stage 2", 10 x 8 x 8) only where that patch reaches (6 x 6 of it for the 8-pixel windows at even places of
// the paper's map). The page computes both stages once for the face (and for the mirrored face when the model
// averages over flips); per copy, only stage 1's patch, from a small crop of the copy, and stage 2's, from the
// region of stage 1 around it, through the model's `stage1` and `stage2` graphs; the `rest` graph takes the copies
// with their stage 2 and gives the probabilities. A patch is the same arithmetic on the same numbers as the full
// layer, so the answers equal the whole model's (tests/test_static_engine.py). models.json names the graphs under
// each model's "incremental". In the worker pool each worker runs `occluded` on its share of the windows
// (worker.js); on WebGPU the page runs it.

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

/** The sizes of the two stages: a valid conv of `kernel`, then a 2x2 max-pool (floor) on a side of `side`. */
function stages(graphs) {
  const side1 = Math.floor((SIZE - graphs.kernel + 1) / 2); // 21
  const conv2 = side1 - graphs.kernel2 + 1; // 17 (its last row and column fall outside the pool)
  return { side1, side2: Math.floor(conv2 / 2) }; // 21, 8
}

/** Rows [first, last] of stage 1 that input rows [top, top + window) reach (columns alike). */
function stage1Reach(graphs, top, window) {
  const { side1 } = stages(graphs);
  return [Math.max(Math.floor((top - graphs.kernel + 1) / 2), 0), Math.min(Math.floor((top + window - 1) / 2), side1 - 1)];
}

/** Rows [first, last] of stage 2 that stage-1 rows [a, b] reach. */
function stage2Reach(graphs, a, b) {
  const { side2 } = stages(graphs);
  return [Math.max(Math.floor((a - graphs.kernel2 + 1) / 2), 0), Math.min(Math.floor(b / 2), side2 - 1)];
}

/** Whether the incremental passes pay for this window (stage 1's patch at most half its side, as in Python). */
export function applies(graphs, window) {
  return Boolean(graphs) && 2 * (Math.floor(window / 2) + Math.floor(graphs.kernel / 2) + 1) <= stages(graphs).side1;
}

/** The patches every copy recomputes: stage 1's r x r at rows r0 (columns c0) of each window, from a crop of the
 * copy, and stage 2's q x q at p0 (and d0), from an m x m region of stage 1. One r and one q for all the windows
 * (`places`: [top, left] of each, mirrored ones included): the largest any of them needs, slid inside the map at
 * its edges (an output the window does not reach comes out equal to the face's, so recomputing it is harmless). */
function geometry(graphs, places, window) {
  const { side1, side2 } = stages(graphs);
  let r = 1, q = 1;
  const spans = (v) => {
    const [a, b] = stage1Reach(graphs, v, window);
    const [c, d] = stage2Reach(graphs, a, b);
    r = Math.max(r, b - a + 1);
    q = Math.max(q, d - c + 1);
    return [a, c];
  };
  const starts = places.map(([top, left]) => [spans(top), spans(left)]);
  // a patch starts where the window's reach starts, or earlier at the far edge
  const at = starts.map(([[a, c], [a2, c2]]) => ({ r0: Math.min(a, side1 - r), c0: Math.min(a2, side1 - r),
    p0: Math.min(c, side2 - q), d0: Math.min(c2, side2 - q) }));
  const span = 2 * r + graphs.kernel - 1; // the copy's pixels stage 1's patch reads
  const m = 2 * q + graphs.kernel2 - 1; // the stage-1 outputs stage 2's patch reads
  return { r, q, span, m, at };
}

const mirror = (x) => {
  const out = new Float32Array(x.length);
  for (let y = 0; y < SIZE; y++) for (let c = 0; c < SIZE; c++) out[y * SIZE + c] = x[y * SIZE + SIZE - 1 - c];
  return out;
};

const tensor = (data, dims) => new globalThis.ort.Tensor("float32", data, dims);

/** Both stages of the faces (the face, and the mirrored face when the model averages over flips): {one, two},
 * each a list with one array per face. */
async function faceStages(graphs, faces) {
  const batch = new Float32Array(faces.length * SIZE * SIZE);
  faces.forEach((f, i) => batch.set(f, i * SIZE * SIZE));
  const one = (await graphs.stage1.run({ face: tensor(batch, [faces.length, 1, SIZE, SIZE]) })).stage1;
  const two = (await graphs.stage2.run({ stage1: tensor(one.data, one.dims) })).stage2.data;
  const split = (a) => faces.map((_, i) => a.subarray((i * a.length) / faces.length, ((i + 1) * a.length) / faces.length));
  return { one: split(one.data), two: split(two) };
}

/** Into `out` (C, m, m): the m x m block at [row, col] of the (C, n, n) map `maps` with the (C, r, r) `patch`
 * pasted at [r0, c0] (where the two overlap). */
function region(maps, n, channels, patch, r, [r0, c0], m, [row, col], out) {
  for (let ch = 0; ch < channels; ch++) {
    for (let y = 0; y < m; y++) {
      const src = ch * n * n + (row + y) * n + col, dst = (ch * m + y) * m;
      for (let x = 0; x < m; x++) out[dst + x] = maps[src + x];
      const py = row + y - r0;
      if (py < 0 || py >= r) continue;
      const from = (ch * r + py) * r - c0;
      for (let c = Math.max(c0, col); c < Math.min(c0 + r, col + m); c++) out[dst + c - col] = patch[from + c];
    }
  }
}

/** Into `out` (K, C, n, n): the map `maps` (C, n, n) for every copy, with copy i's `patches` (C, p, p) at at[i]. */
function paste(maps, n, channels, patches, p, at, out) {
  const per = channels * n * n;
  at.forEach(([row, col], i) => {
    out.set(maps, i * per);
    for (let ch = 0; ch < channels; ch++) {
      for (let y = 0; y < p; y++) {
        const src = ((i * channels + ch) * p + y) * p, dst = i * per + ch * n * n + (row + y) * n + col;
        for (let c = 0; c < p; c++) out[dst + c] = patches[src + c];
      }
    }
  });
  return out;
}

/** Stage 2 (K, C2, side2, side2) of the copies of each face in `faces` ({face, one, two, windows}: the face, its
 * two stages and the windows (top, left) set to `fill` in its copies), in one batch: the copies of faces[0], then
 * those of faces[1]. */
async function copiesStage2(graphs, faces, window, fill, scratch) {
  const { side1, side2 } = stages(graphs), { channels, channels2 } = graphs;
  const k = faces[0].windows.length, all = faces.length * k;
  const g = geometry(graphs, faces.flatMap((f) => f.windows), window);
  // stage 1's patches, from crops of the copies
  const crops = scratch.floats("crops", all * g.span * g.span);
  faces.forEach(({ face, windows }, f) => windows.forEach(([top, left], j) => {
    const { r0, c0 } = g.at[f * k + j], o = (f * k + j) * g.span * g.span;
    for (let y = 0; y < g.span; y++) {
      const row = 2 * r0 + y, inRow = row >= top && row < top + window;
      for (let c = 0; c < g.span; c++) {
        const col = 2 * c0 + c;
        crops[o + y * g.span + c] = inRow && col >= left && col < left + window ? fill : face[row * SIZE + col];
      }
    }
  }));
  const ones = (await graphs.stage1.run({ face: tensor(crops, [all, 1, g.span, g.span]) })).stage1.data;
  // stage 2's patches, from the regions of each copy's stage 1 (the face's, with its patch) that they read
  const regions = scratch.floats("regions", all * channels * g.m * g.m), r2 = channels * g.r * g.r, m2 = channels * g.m * g.m;
  faces.forEach(({ one }, f) => {
    for (let i = f * k; i < (f + 1) * k; i++) {
      const { r0, c0, p0, d0 } = g.at[i];
      region(one, side1, channels, ones.subarray(i * r2, (i + 1) * r2), g.r, [r0, c0], g.m, [2 * p0, 2 * d0],
        regions.subarray(i * m2, (i + 1) * m2));
    }
  });
  const twos = (await graphs.stage2.run({ stage1: tensor(regions, [all, channels, g.m, g.m]) })).stage2.data;
  const out = scratch.floats("stage2", all * channels2 * side2 * side2), per = k * channels2 * side2 * side2;
  faces.forEach(({ two }, f) => paste(two, side2, channels2, twos.subarray(f * k * channels2 * g.q * g.q), g.q,
    g.at.slice(f * k, (f + 1) * k).map(({ p0, d0 }) => [p0, d0]), out.subarray(f * per, (f + 1) * per)));
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
 * window x window square at each (top, left) of `windows` set to `fill`, through the model's three graphs
 * ({stage1, stage2, rest} sessions and models.json's "incremental" entry). Equal to the whole model on the copies.
 * `scratch`: a Scratch for a caller that never has two calls under way at once (the arrays are reused). */
export async function occluded(graphs, x, windows, window, { fill = 0, scratch = fresh } = {}) {
  const k = windows.length, { side2 } = stages(graphs);
  const faces = [{ face: x, windows }];
  // copy k mirrored = the mirrored face with the window mirrored (its left edge may fall before column 0)
  if (graphs.mirrored) faces.push({ face: mirror(x), windows: windows.map(([t, l]) => [t, SIZE - l - window]) });
  const { one, two } = await faceStages(graphs, faces.map((f) => f.face));
  faces.forEach((f, i) => Object.assign(f, { one: one[i], two: two[i] }));
  const stage2 = await copiesStage2(graphs, faces, window, fill, scratch);
  const copies = occludedCopies(x, windows, window, fill, scratch.floats("copies", k * SIZE * SIZE));
  const dims = [k, graphs.channels2, side2, side2], per = k * graphs.channels2 * side2 * side2;
  const feeds = { face: tensor(copies, [k, 1, SIZE, SIZE]), stage2: tensor(stage2.subarray(0, per), dims) };
  if (graphs.mirrored) feeds.stage2_mirrored = tensor(stage2.subarray(per), dims);
  const p = (await graphs.rest.run(feeds)).probabilities.data;
  return p.byteLength === p.buffer.byteLength ? p : p.slice();
}
