// The paper network's occlusion-map parts (the STN's two stages and the rest given the second, as in
// models.json's "incremental" entry) on our own WebAssembly kernels (web/kernels/paper.ts, built into
// kernels/paper.wasm): the page's workers run these in place of ONNX Runtime's graphs of the same parts, about
// twice as fast on these small convolutions (docs/performance.md, "In the browser"). Each part answers
// `run(feeds)` like an ONNX Runtime session of its graph: {face} -> {stage1}, {stage1} -> {stage2},
// {face, stage2[, stage2_mirrored]} -> {probabilities}; the answers equal the graphs' up to float rounding
// (tests/test_static_engine.py). Weights come from the model's safetensors file (no pickle).

const SIZE = 48;
const CHUNK = 16; // images per pass through the layers (their feature maps, ~1.3 MB, mostly stay in cache)
const PAD = 512; // floats of room after a feature map for the convolutions' reads past its end (paper.ts)
const LOG2 = Math.log(2);

/** {name: {dtype, shape, data: Float32Array}} of a safetensors file's float32 tensors. */
export function readSafetensors(bytes) {
  const view = new DataView(bytes);
  const size = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(bytes, 8, size)));
  const out = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    if (t.dtype !== "F32") throw new Error(`${name}: expected float32, not ${t.dtype}`);
    const [a, b] = t.data_offsets;
    out[name] = { shape: t.shape, data: new Float32Array(bytes.slice(8 + size + a, 8 + size + b)) };
  }
  return out;
}

const up = (n, m) => Math.ceil(n / m) * m;

/** Regions of the kernels' memory by name, each kept for the next call and moved to the end (the memory grown)
 * only when a call needs it larger. Views are made afresh after every growth. */
class Arena {
  constructor(memory) {
    this.memory = memory;
    this.top = memory.buffer.byteLength;
    this.regions = new Map();
  }

  /** Byte address of `floats` numbers (16-byte aligned) under `name`; `zero`: cleared when new. */
  take(name, floats) {
    const r = this.regions.get(name);
    if (r && r.floats >= floats) return r.at;
    const at = this.top, bytes = up(floats * 4, 16);
    this.top += bytes;
    const need = this.top - this.memory.buffer.byteLength;
    if (need > 0) this.memory.grow(Math.ceil(need / 65536));
    this.regions.set(name, { at, floats });
    return at;
  }

  get f32() {
    if (this._f32?.buffer !== this.memory.buffer) this._f32 = new Float32Array(this.memory.buffer);
    return this._f32;
  }
}

/** A conv layer's weights as the kernel takes them: every weight splatted to 4 lanes, (co, ci, dy, dx) order,
 * output channels padded to an even count with zeros. */
function convWeights(arena, name, w, b) {
  const [cout, cin, k] = w.shape, even = up(cout, 2), taps = cin * k * k;
  const wAt = arena.take(`${name}.w`, even * taps * 4), bAt = arena.take(`${name}.b`, even * 4);
  const f = arena.f32;
  f.fill(0, wAt / 4, wAt / 4 + even * taps * 4);
  f.fill(0, bAt / 4, bAt / 4 + even * 4);
  for (let i = 0; i < cout * taps; i++) f.fill(w.data[i], wAt / 4 + 4 * i, wAt / 4 + 4 * i + 4);
  for (let c = 0; c < cout; c++) f.fill(b.data[c], bAt / 4 + 4 * c, bAt / 4 + 4 * c + 4);
  return { w: wAt, b: bAt, cin, cout, even, k };
}

/** A dense layer's weights: (M, K) padded with zeros to multiples of 4 both ways. */
function denseWeights(arena, name, w, b) {
  const [M, K] = w.shape, M4 = up(M, 4), K4 = up(K, 4);
  const wAt = arena.take(`${name}.w`, M4 * K4), bAt = arena.take(`${name}.b`, M4);
  const f = arena.f32;
  f.fill(0, wAt / 4, wAt / 4 + M4 * K4);
  f.fill(0, bAt / 4, bAt / 4 + M4);
  for (let m = 0; m < M; m++) f.set(w.data.subarray(m * K, (m + 1) * K), wAt / 4 + m * K4);
  f.set(b.data, bAt / 4);
  return { w: wAt, b: bAt, M, K, M4, K4 };
}

export class PaperNet {
  /** `module`: the compiled kernels (WebAssembly.Module); `weights`: the model's safetensors bytes; `info`: its
   * models.json "incremental" entry (`mirrored`, `mean`, `std`). */
  static async create(module, weights, info) {
    const instance = await WebAssembly.instantiate(module, { env: { abort: () => { throw new Error("kernel abort"); } } });
    return new PaperNet(instance.exports, readSafetensors(weights), info);
  }

  constructor(k, t, info) {
    this.k = k;
    this.arena = new Arena(k.memory);
    this.mirrored = Boolean(info.mirrored);
    this.mean = info.mean;
    this.std = info.std;
    const a = this.arena;
    this.stn1 = convWeights(a, "stn1", t["stn.conv1.weight"], t["stn.conv1.bias"]);
    this.stn2 = convWeights(a, "stn2", t["stn.conv2.weight"], t["stn.conv2.bias"]);
    this.loc1 = denseWeights(a, "loc1", t["stn.fc1.weight"], t["stn.fc1.bias"]);
    this.loc2 = denseWeights(a, "loc2", t["stn.fc2.weight"], t["stn.fc2.bias"]);
    this.conv1 = convWeights(a, "conv1", t["features.conv1.weight"], t["features.conv1.bias"]);
    this.conv2 = convWeights(a, "conv2", t["features.conv2.weight"], t["features.conv2.bias"]);
    this.conv3 = convWeights(a, "conv3", t["features.conv3.weight"], t["features.conv3.bias"]);
    this.fc1 = denseWeights(a, "fc1", t["fc1.weight"], t["fc1.bias"]);
    this.fc2 = denseWeights(a, "fc2", t["fc2.weight"], t["fc2.bias"]);
    this.centres = a.take("centres", SIZE);
    a.f32.set(t["grid.centres"].data, this.centres / 4);
    this.shift = t["posthoc.shift"]?.data || null; // tau * log prior, subtracted from the logits
    this.temperature = t["posthoc.temperature"]?.data[0] ?? 1;
    this.classes = this.fc2.M;
    this.stage1 = { run: async ({ face }) => ({ stage1: this.stage(face, this.stn1, true, "stage1") }) };
    this.stage2 = { run: async ({ stage1 }) => ({ stage2: this.stage(stage1, this.stn2, false, "stage2") }) };
    this.rest = { run: async (feeds) => ({ probabilities: this.probabilities(feeds) }) };
  }

  /** conv, ReLU and 2x2 max-pool of a batch {data, dims: [N, C, S, S]}, the input normalised first when
   * `normalize` (the STN's first stage); {data, dims} like the graph's output. */
  stage(x, layer, normalize, name) {
    const [n, c, S] = x.dims, OH = S - layer.k + 1, P = OH >> 1;
    const count = up(OH * S, 16), inImg = c * S * S + PAD, convImg = layer.even * count + PAD, outImg = layer.cout * P * P;
    const a = this.arena, k = this.k, per = c * S * S;
    const input = a.take(`${name}.in`, CHUNK * inImg), conv = a.take(`${name}.conv`, CHUNK * convImg);
    const output = a.take(`${name}.out`, CHUNK * outImg);
    const raw = normalize ? a.take(`${name}.raw`, CHUNK * per) : 0;
    const out = new Float32Array(n * outImg);
    for (let i = 0; i < n; i += CHUNK) {
      const m = Math.min(CHUNK, n - i), f = a.f32;
      if (normalize) {
        f.set(x.data.subarray(i * per, (i + m) * per), raw / 4);
        k.normalize(raw, per, S, this.mean, this.std, false, input, inImg, S, 0, m);
      } else {
        for (let j = 0; j < m; j++) f.set(x.data.subarray((i + j) * per, (i + j + 1) * per), input / 4 + j * inImg);
      }
      k.conv(input, inImg, S * S, S, c, layer.k, layer.w, layer.b, layer.even, conv, convImg, count, count, m);
      k.reluPool(conv, convImg, count, S, OH, OH, layer.cout, output, outImg, P * P, m);
      out.set(a.f32.subarray(output / 4, output / 4 + m * outImg), i * outImg);
    }
    return { data: out, dims: [n, layer.cout, P, P] };
  }

  /** The logits (n x classes, written into `logits` from `at`) of faces whose STN second stage is given, mirrored
   * left to right when `mirror` (with the mirrored faces' second stage). */
  logits(faces, stage2, mirror, logits, at) {
    const a = this.arena, k = this.k, n = faces.length / (SIZE * SIZE);
    const { loc1, loc2, conv1, conv2, conv3, fc1, fc2 } = this;
    const feat = loc1.K4, F = SIZE + 2, even = CHUNK + (CHUNK % 2);
    // sizes: each conv's output rows keep their input's row length (junk columns at the end)
    const c1 = up((SIZE - conv1.k + 1) * SIZE, 16), s1 = (SIZE - conv1.k + 1) >> 1; // 44 rows of 48 -> 22x22
    const h2 = s1 - conv2.k + 1, c2 = up(h2 * s1, 16); // 20 rows of 22
    const h3 = h2 - conv3.k + 1, c3 = up(h3 * s1, 16); // 18 rows of 22 -> 9x9
    const s3 = h3 >> 1, flat = fc1.K4;
    const buf = {
      loc: a.take("rest.loc", even * feat), hid: a.take("rest.hid", even * loc1.M4), theta: a.take("rest.theta", even * loc2.M4),
      raw: a.take("rest.raw", CHUNK * SIZE * SIZE), frames: this.frames(), warped: a.take("rest.warped", CHUNK * (SIZE * SIZE + PAD)),
      conv1: a.take("rest.conv1", CHUNK * (conv1.even * c1 + PAD)), pool1: a.take("rest.pool1", CHUNK * (conv1.cout * s1 * s1 + PAD)),
      conv2: a.take("rest.conv2", CHUNK * (conv2.even * c2 + PAD)), conv3: a.take("rest.conv3", CHUNK * (conv3.even * c3 + PAD)),
      flat: this.flat(even * flat), fc1: a.take("rest.fc1", even * fc1.M4), fc2: a.take("rest.fc2", even * fc2.M4),
    };
    for (let i = 0; i < n; i += CHUNK) {
      const m = Math.min(CHUNK, n - i), f = a.f32;
      f.set(stage2.subarray(i * feat, (i + m) * feat), buf.loc / 4);
      k.dense(buf.loc, feat, feat, loc1.w, loc1.b, loc1.M4, true, buf.hid, loc1.M4, m);
      k.dense(buf.hid, loc1.M4, loc1.M4, loc2.w, loc2.b, loc2.M4, false, buf.theta, loc2.M4, m);
      f.set(faces.subarray(i * SIZE * SIZE, (i + m) * SIZE * SIZE), buf.raw / 4);
      k.normalize(buf.raw, SIZE * SIZE, SIZE, this.mean, this.std, mirror, buf.frames, F * F, F, F + 1, m);
      k.warp(buf.frames, F * F, SIZE, buf.theta, loc2.M4, this.centres, buf.warped, SIZE * SIZE + PAD, m);
      const i1 = conv1.even * c1 + PAD, p1 = conv1.cout * s1 * s1 + PAD, i2 = conv2.even * c2 + PAD, i3 = conv3.even * c3 + PAD;
      k.conv(buf.warped, SIZE * SIZE + PAD, SIZE * SIZE, SIZE, 1, conv1.k, conv1.w, conv1.b, conv1.even, buf.conv1, i1, c1, c1, m);
      k.reluPool(buf.conv1, i1, c1, SIZE, SIZE - conv1.k + 1, SIZE - conv1.k + 1, conv1.cout, buf.pool1, p1, s1 * s1, m);
      k.conv(buf.pool1, p1, s1 * s1, s1, conv1.cout, conv2.k, conv2.w, conv2.b, conv2.even, buf.conv2, i2, c2, c2, m);
      k.conv(buf.conv2, i2, c2, s1, conv2.cout, conv3.k, conv3.w, conv3.b, conv3.even, buf.conv3, i3, c3, c3, m);
      k.reluPool(buf.conv3, i3, c3, s1, h3, h3, conv3.cout, buf.flat, flat, s3 * s3, m);
      k.dense(buf.flat, flat, flat, fc1.w, fc1.b, fc1.M4, true, buf.fc1, fc1.M4, m);
      k.dense(buf.fc1, fc1.M4, fc1.M4, fc2.w, fc2.b, fc2.M4, false, buf.fc2, fc2.M4, m);
      const g = a.f32;
      for (let j = 0; j < m; j++) logits.set(g.subarray(buf.fc2 / 4 + j * fc2.M4, buf.fc2 / 4 + j * fc2.M4 + this.classes), at + (i + j) * this.classes);
    }
  }

  /** `normalize`'s (S + 2)-square frames for a chunk, their border zero (kept from one call to the next). */
  frames() {
    const F = SIZE + 2, had = this.arena.regions.has("rest.frames");
    const at = this.arena.take("rest.frames", CHUNK * F * F);
    if (!had) this.arena.f32.fill(0, at / 4, at / 4 + CHUNK * F * F);
    return at;
  }

  /** The flattened features of a chunk (padded to a multiple of 4 per image; the padding stays zero). */
  flat(floats) {
    const had = this.arena.regions.has("rest.flat");
    const at = this.arena.take("rest.flat", floats);
    if (!had) this.arena.f32.fill(0, at / 4, at / 4 + floats);
    return at;
  }

  /** The rest graph's probabilities {data, dims: [N, classes]}: the network given the STN's second stage, its
   * flip average with the mirrored faces when the model has one, then the card's post-hoc corrections. */
  probabilities({ face, stage2, stage2_mirrored: mirrored }) {
    const n = face.dims[0], C = this.classes;
    const a = new Float32Array(n * C);
    this.logits(face.data, stage2.data, false, a, 0);
    let b = null;
    if (this.mirrored) {
      b = new Float32Array(n * C);
      this.logits(face.data, mirrored.data, true, b, 0);
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

const logSoftmax = (x, c) => {
  let m = -Infinity;
  for (const v of x) m = Math.max(m, v);
  let s = 0;
  for (const v of x) s += Math.exp(v - m);
  return x[c] - m - Math.log(s);
};

/** posthoc.flip_average: the log of the mean of the two softmaxes, into `z`. */
function flipAverage(x, y, z) {
  for (let c = 0; c < x.length; c++) {
    const p = logSoftmax(x, c), q = logSoftmax(y, c), m = Math.max(p, q);
    z[c] = m + Math.log(Math.exp(p - m) + Math.exp(q - m)) - LOG2;
  }
}

function softmax(z, out) {
  let m = -Infinity;
  for (const v of z) m = Math.max(m, v);
  let s = 0;
  for (let c = 0; c < z.length; c++) s += Math.exp(z[c] - m);
  for (let c = 0; c < z.length; c++) out[c] = Math.exp(z[c] - m) / s;
}
