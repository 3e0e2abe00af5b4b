// The paper network's occlusion-map parts (the STN's two stages and the rest given the second, as in
// models.json's "incremental" entry) on our own WebAssembly kernels (web/kernels/layers.ts, built into
// kernels/layers.wasm): the page's workers run these in place of ONNX Runtime's graphs of the same parts (a
// worker's share of the paper's 8/2 map: 1.5-2x faster; docs/performance.md, "In the browser"). Each part answers
// `run(feeds)` like an ONNX Runtime session of its graph: {face} -> {stage1}, {stage1} -> {stage2},
// {face, stage2[, stage2_mirrored]} -> {probabilities}; the answers equal the graphs' up to float rounding
// (tests/test_static_engine.py). Weights come from the model's safetensors file (no pickle).

import { Layers, convWeights, denseWeights, instantiate, need, readSafetensors, ROOM } from "./layers.js";

const SIZE = 48;
const CHUNK = 16; // images per pass through the layers (1 to 64 timed alike)
const LOG2 = Math.log(2);
const LAYERS = ["stn.conv1", "stn.conv2", "stn.fc1", "stn.fc2", "features.conv1", "features.conv2", "features.conv3", "fc1", "fc2"];

export class PaperNet extends Layers {
  /** `module`: the compiled kernels (WebAssembly.Module); `weights`: the model's safetensors bytes; `info`: its
   * models.json "incremental" entry (`mirrored`, `mean`, `std`). */
  static async create(module, weights, info) {
    return new PaperNet(await instantiate(module), readSafetensors(weights), info);
  }

  /** `t` (readSafetensors) holds every tensor the network needs, or an error says which is missing. */
  static check(t) {
    for (const layer of LAYERS) for (const k of ["weight", "bias"]) need(t, `${layer}.${k}`);
    need(t, "grid.centres");
    return true;
  }

  constructor(exports, t, info) {
    super(exports, CHUNK);
    this.mirrored = Boolean(info.mirrored);
    this.mean = info.mean;
    this.std = info.std;
    const a = this.arena;
    this.stn1 = convWeights(a, "stn1", need(t, "stn.conv1.weight"), need(t, "stn.conv1.bias"));
    this.stn2 = convWeights(a, "stn2", need(t, "stn.conv2.weight"), need(t, "stn.conv2.bias"));
    this.loc1 = denseWeights(a, "loc1", need(t, "stn.fc1.weight"), need(t, "stn.fc1.bias"));
    this.loc2 = denseWeights(a, "loc2", need(t, "stn.fc2.weight"), need(t, "stn.fc2.bias"));
    this.conv1 = convWeights(a, "conv1", need(t, "features.conv1.weight"), need(t, "features.conv1.bias"));
    this.conv2 = convWeights(a, "conv2", need(t, "features.conv2.weight"), need(t, "features.conv2.bias"));
    this.conv3 = convWeights(a, "conv3", need(t, "features.conv3.weight"), need(t, "features.conv3.bias"));
    this.fc1 = denseWeights(a, "fc1", need(t, "fc1.weight"), need(t, "fc1.bias"));
    this.fc2 = denseWeights(a, "fc2", need(t, "fc2.weight"), need(t, "fc2.bias"));
    this.centres = a.take("centres", SIZE);
    a.f32.set(need(t, "grid.centres").data, this.centres / 4);
    this.shift = t["posthoc.shift"]?.data || null; // tau * log prior, subtracted from the logits
    this.temperature = t["posthoc.temperature"]?.data[0] ?? 1;
    this.classes = this.fc2.M;
    if (this.loc1.K !== this.loc1.K4) throw new Error("the STN's second stage must hold a multiple of 4 numbers");
    this.arena.mark();
    this.stage1 = { run: async ({ face }) => ({ stage1: this.stage(face, this.stn1, true, "stage1") }) };
    this.stage2 = { run: async ({ stage1 }) => ({ stage2: this.stage(stage1, this.stn2, false, "stage2") }) };
    this.rest = { run: async (feeds) => ({ probabilities: this.probabilities(feeds) }) };
  }

  /** conv, ReLU and 2x2 max-pool of a batch {data, dims: [N, C, S, S]}, the input normalised first when
   * `normalize` (the STN's first stage); {data, dims} like the graph's output. */
  stage(x, layer, normalize, name) {
    this.arena.trim();
    const [n, C, S] = x.dims, per = C * S * S, k = this.k, a = this.arena;
    const input = { at: a.take(`${name}.in`, CHUNK * (per + ROOM)), img: per + ROOM, plane: S * S, W: S, H: S, OW: S, C };
    const raw = normalize ? a.take(`${name}.raw`, CHUNK * per) : 0;
    let out = null;
    for (let i = 0; i < n; i += CHUNK) {
      const m = Math.min(CHUNK, n - i), f = a.f32;
      if (normalize) {
        f.set(x.data.subarray(i * per, (i + m) * per), raw / 4);
        k.normalize(raw, per, S, this.mean, this.std, false, input.at, input.img, S, 0, m);
      } else {
        for (let j = 0; j < m; j++) f.set(x.data.subarray((i + j) * per, (i + j + 1) * per), input.at / 4 + j * input.img);
      }
      const y = this.pool(this.conv(input, layer, `${name}.conv`, m), `${name}.out`, m, layer.cout * ((S - layer.k + 1) >> 1) ** 2);
      out ||= { data: new Float32Array(n * y.img), dims: [n, y.C, y.H, y.W] };
      out.data.set(a.f32.subarray(y.at / 4, y.at / 4 + m * y.img), i * y.img);
    }
    return out;
  }

  /** The logits (n x classes, into `logits`) of faces whose STN second stage is given, mirrored left to right when
   * `mirror` (with the mirrored faces' second stage): θ from the second stage, the face sampled with it, then the
   * features (conv, ReLU + pool, conv, conv, ReLU + pool) and fc1, ReLU, fc2. */
  logits(faces, stage2, mirror, logits) {
    const a = this.arena, k = this.k, n = faces.length / (SIZE * SIZE), F = SIZE + 2, C = this.classes;
    const loc = { at: a.take("rest.loc", (CHUNK + 1) * this.loc1.K4), img: this.loc1.K4 };
    const raw = a.take("rest.raw", CHUNK * SIZE * SIZE), frames = this.zeroed("rest.frames", CHUNK * F * F);
    const warped = { at: a.take("rest.warped", CHUNK * (SIZE * SIZE + ROOM)), img: SIZE * SIZE + ROOM, plane: SIZE * SIZE,
      W: SIZE, H: SIZE, OW: SIZE, C: 1 };
    const flat = this.fc1.K4; // the pooled features, zero-padded to a multiple of 4
    this.zeroed("rest.flat", (CHUNK + 1) * flat);
    for (let i = 0; i < n; i += CHUNK) {
      const m = Math.min(CHUNK, n - i);
      a.f32.set(stage2.subarray(i * loc.img, (i + m) * loc.img), loc.at / 4);
      const theta = this.dense(this.dense(loc, this.loc1, true, "rest.hid", m), this.loc2, false, "rest.theta", m);
      a.f32.set(faces.subarray(i * SIZE * SIZE, (i + m) * SIZE * SIZE), raw / 4);
      k.normalize(raw, SIZE * SIZE, SIZE, this.mean, this.std, mirror, frames, F * F, F, F + 1, m);
      k.warp(frames, F * F, SIZE, theta.at, theta.img, this.centres, warped.at, warped.img, m);
      let x = this.pool(this.conv(warped, this.conv1, "rest.conv1", m), "rest.pool1", m);
      x = this.conv(this.conv(x, this.conv2, "rest.conv2", m), this.conv3, "rest.conv3", m);
      x = this.pool(x, "rest.flat", m, flat);
      const out = this.dense(this.dense(x, this.fc1, true, "rest.fc1", m), this.fc2, false, "rest.fc2", m), f = a.f32;
      for (let j = 0; j < m; j++) logits.set(f.subarray(out.at / 4 + j * out.img, out.at / 4 + j * out.img + C), (i + j) * C);
    }
  }

  /** The rest graph's probabilities {data, dims: [N, classes]}: the network given the STN's second stage, its
   * flip average with the mirrored faces when the model has one, then the card's post-hoc corrections. */
  probabilities({ face, stage2, stage2_mirrored: mirrored }) {
    this.arena.trim();
    const n = face.dims[0], C = this.classes;
    const a = new Float32Array(n * C);
    this.logits(face.data, stage2.data, false, a);
    let b = null;
    if (this.mirrored) {
      b = new Float32Array(n * C);
      this.logits(face.data, mirrored.data, true, b);
    }
    const out = new Float32Array(n * C), z = new Float64Array(C);
    for (let i = 0; i < n; i++) {
      const x = a.subarray(i * C, (i + 1) * C);
      if (b) flipAverage(x, b.subarray(i * C, (i + 1) * C), z);
      else z.set(x);
      for (let c = 0; c < C; c++) z[c] = (z[c] - (this.shift ? this.shift[c] : 0)) / this.temperature;
      softmax(z, out.subarray(i * C, (i + 1) * C));
    }
    return { data: out, dims: [n, C] };
  }
}

/** log(sum(exp(x))), computed without overflow. */
function logSumExp(x) {
  let m = -Infinity, s = 0;
  for (const v of x) m = Math.max(m, v);
  for (const v of x) s += Math.exp(v - m);
  return m + Math.log(s);
}

/** posthoc.flip_average: the log of the mean of the two softmaxes, into `z`. */
function flipAverage(x, y, z) {
  const lx = logSumExp(x), ly = logSumExp(y);
  for (let c = 0; c < x.length; c++) z[c] = logSumExp([x[c] - lx, y[c] - ly]) - LOG2;
}

function softmax(z, out) {
  let m = -Infinity;
  for (const v of z) m = Math.max(m, v);
  let s = 0;
  for (let c = 0; c < z.length; c++) s += Math.exp(z[c] - m);
  for (let c = 0; c < z.length; c++) out[c] = Math.exp(z[c] - m) / s;
}
