// What our WebAssembly kernels (web/kernels/layers.ts, built into kernels/layers.wasm) need from JavaScript: their
// weights read from safetensors (no pickle) and laid out as the kernels take them, named regions of their memory
// kept from one call to the next, and a network's layers as calls on feature maps. paper-net.js (the paper
// network's map parts) and mtcnn-net.js (MTCNN's three networks) build on `Layers`.

/** Floats of room after a feature map for the kernels' reads past its last plane (a k x k convolution reads up to
 * k + 14 floats past it, the pools up to 8; layers.ts). */
export const ROOM = 64;

/** The kernels, compiled: one WebAssembly.Module per page or worker. */
export async function compileKernels(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return WebAssembly.compile(await res.arrayBuffer());
}

/** The kernels' exports, in an instance (and memory) of their own. */
export async function instantiate(module) {
  const instance = await WebAssembly.instantiate(module, { env: { abort: () => { throw new Error("kernel abort"); } } });
  return instance.exports;
}

/** {name: {shape, data: Float32Array}} of a safetensors file's float32 tensors, and its `__metadata__` under
 * `metadata` (strings). */
export function readSafetensors(bytes) {
  const view = new DataView(bytes);
  const size = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(bytes, 8, size)));
  const out = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === "__metadata__") {
      out.metadata = t;
      continue;
    }
    if (t.dtype !== "F32") throw new Error(`${name}: expected float32, not ${t.dtype}`);
    const [a, b] = t.data_offsets;
    out[name] = { shape: t.shape, data: new Float32Array(bytes.slice(8 + size + a, 8 + size + b)) };
  }
  return out;
}

export const up = (n, m) => Math.ceil(n / m) * m;

/** The tensor `name` of a weights file read by readSafetensors, or an error saying it is not there. */
export function need(t, name) {
  if (!t[name]) throw new Error(`the weights file has no tensor ${name}`);
  return t[name];
}

/** Regions of the kernels' memory by name, each kept for the next call. A region a call needs larger moves to the
 * end (the memory grown); `trim`, between calls, lets the regions made after `mark` (the weights) start afresh
 * from it once the moves have left more than half the memory past the mark unused. Views are made afresh after
 * every growth. */
class Arena {
  constructor(memory) {
    this.memory = memory;
    this.top = memory.buffer.byteLength;
    this.start = this.top;
    this.regions = new Map();
  }

  /** Byte address of `floats` numbers (16-byte aligned) under `name`. */
  take(name, floats) {
    const r = this.regions.get(name);
    if (r && r.floats >= floats) return r.at;
    const at = this.top, end = at + up(floats * 4, 16), need = end - this.memory.buffer.byteLength;
    if (need > 0) this.memory.grow(Math.ceil(need / 65536)); // (a failed growth throws and changes nothing)
    this.top = end;
    this.regions.set(name, { at, floats });
    return at;
  }

  /** What has been taken so far stays for good (the weights). */
  mark() {
    this.start = this.top;
  }

  /** Between calls: forget the regions after the mark when less than half the memory past it is in use. */
  trim() {
    let live = 0;
    for (const r of this.regions.values()) if (r.at >= this.start) live += r.floats * 4;
    if (this.top - this.start <= 2 * live) return;
    for (const [name, r] of this.regions) if (r.at >= this.start) this.regions.delete(name);
    this.top = this.start;
  }

  get f32() {
    if (this._f32?.buffer !== this.memory.buffer) this._f32 = new Float32Array(this.memory.buffer);
    return this._f32;
  }
}

/** A conv layer's weights as the kernel takes them: every weight splatted to 4 lanes, (co, ci, dy, dx) order,
 * output channels padded to an even count with zeros. */
export function convWeights(arena, name, w, b) {
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
export function denseWeights(arena, name, w, b) {
  const [M, K] = w.shape, M4 = up(M, 4), K4 = up(K, 4);
  const wAt = arena.take(`${name}.w`, M4 * K4), bAt = arena.take(`${name}.b`, M4);
  const f = arena.f32;
  f.fill(0, wAt / 4, wAt / 4 + M4 * K4);
  f.fill(0, bAt / 4, bAt / 4 + M4);
  for (let m = 0; m < M; m++) f.set(w.data.subarray(m * K, (m + 1) * K), wAt / 4 + m * K4);
  f.set(b.data, bAt / 4);
  return { w: wAt, b: bAt, M, K, M4, K4 };
}


/** Slopes of a PReLU as `prelu` takes them: one 4-lane splat per channel (`perChannel`), or for a dense layer's
 * vector the slopes of each four numbers in a row (zero-padded to a multiple of 4). */
export function preluSlopes(arena, name, a, perChannel) {
  const n = a.data.length, floats = perChannel ? 4 * n : up(n, 4), at = arena.take(`${name}.a`, floats), f = arena.f32;
  f.fill(0, at / 4, at / 4 + floats);
  if (perChannel) for (let c = 0; c < n; c++) f.fill(a.data[c], at / 4 + 4 * c, at / 4 + 4 * c + 4);
  else f.set(a.data, at / 4);
  return { at, count: n };
}

/** A network's layers on the kernels, for batches cut into chunks of `chunk` images. */
export class Layers {
  constructor(exports, chunk) {
    this.k = exports;
    this.chunk = chunk;
    this.arena = new Arena(exports.memory);
  }

  // A feature map of a chunk of images in the kernels' memory: {at (byte address), img (floats from one image to
  // the next), plane (from one channel to the next), W (row length), H x OW (rows, and the columns that hold
  // numbers: a convolution's rows keep its input's length, the last columns junk), C (channels)}.

  /** `map` through a conv layer (output channels padded to an even count; the padding channel is junk). */
  conv(map, layer, name, m) {
    const H = map.H - layer.k + 1, count = up(H * map.W, 16);
    const out = { at: 0, img: layer.even * count + ROOM, plane: count, W: map.W, H, OW: map.OW - layer.k + 1, C: layer.cout };
    out.at = this.arena.take(name, m * out.img);
    this.k.conv(map.at, map.img, map.plane, map.W, map.C, layer.k, layer.w, layer.b, layer.even, out.at, out.img,
      out.plane, count, m);
    return out;
  }

  /** ReLU of `map`'s 2x2 max-pool, compact; `img`: the floats from one image to the next when not the default. */
  pool(map, name, m, img = 0) {
    const H = map.H >> 1, W = map.OW >> 1;
    const out = { at: 0, img: img || map.C * H * W + ROOM, plane: H * W, W, H, OW: W, C: map.C };
    out.at = this.arena.take(name, (m + 1) * out.img); // + 1: dense reads images in pairs
    this.k.reluPool(map.at, map.img, map.plane, map.W, map.H, map.OW, map.C, out.at, out.img, out.plane, m);
    return out;
  }

  /** `x` (the chunk's vectors, `x.img` floats apart) through a dense layer, ReLU after it when `relu`. */
  dense(x, layer, relu, name, m) {
    const out = { at: this.arena.take(name, (m + 1) * layer.M4), img: layer.M4 }; // + 1: dense goes in pairs
    this.k.dense(x.at, x.img, layer.K4, layer.w, layer.b, layer.M4, relu, out.at, out.img, m);
    return out;
  }

  /** `map` after a k x k max-pool at stride 2 (ceil mode, as MTCNN's), compact. */
  maxPool(map, k, name, m) {
    if (map.H < k || map.OW < k) throw new Error(`a ${k}x${k} pool needs a map at least that large`);
    const H = Math.ceil((map.H - k) / 2) + 1, W = Math.ceil((map.OW - k) / 2) + 1;
    const out = { at: 0, img: map.C * H * W + ROOM, plane: H * W, W, H, OW: W, C: map.C };
    out.at = this.arena.take(name, m * out.img);
    this.k.maxPool(map.at, map.img, map.plane, map.W, map.H, map.OW, map.C, k, out.at, out.img, out.plane, m);
    return out;
  }

  /** `map`'s numbers without its junk columns: compact planes, one after another (the flattened features). */
  compact(map, name, m) {
    const out = { at: 0, img: up(map.C * map.H * map.OW, 4) + ROOM, plane: map.H * map.OW, W: map.OW, H: map.H, OW: map.OW, C: map.C };
    out.at = this.zeroed(name, (this.chunk + 1) * out.img);
    this.k.compact(map.at, map.img, map.plane, map.W, map.H, map.OW, map.C, out.at, out.img, out.plane, m);
    return out;
  }

  /** PReLU in place on a feature map (per channel) or on a dense layer's vectors. */
  prelu(x, slopes, m) {
    if (x.plane) this.k.prelu(x.at, x.img, x.plane, up(x.plane, 4), x.C, slopes.at, m);
    else this.k.prelu(x.at, x.img, 4, 4, up(slopes.count, 4) / 4, slopes.at, m);
    return x;
  }

  /** A region of `floats` zeros the kernels never write (frames' borders, padding), cleared when first made. */
  zeroed(name, floats) {
    const had = this.arena.regions.has(name), at = this.arena.take(name, floats);
    if (!had) this.arena.f32.fill(0, at / 4, at / 4 + floats);
    return at;
  }

}
