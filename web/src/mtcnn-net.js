// MTCNN's three networks (P-Net, R-Net, O-Net) on our own WebAssembly kernels (layers.js), which the page's
// workers run in place of ONNX Runtime's graphs of them: a network is the list of layers its safetensors file
// names in its metadata (serve/onnx_export.export_mtcnn_weights), and `run({image})` answers like an ONNX Runtime
// session of the graph (outputs by name: regression, probabilities, and O-Net's landmarks), up to float rounding
// (tests/test_static_engine.py).

import { Layers, convWeights, denseWeights, instantiate, need, preluSlopes, readSafetensors, ROOM } from "./layers.js";

const CHUNK = 8; // crops per pass through the layers

export class MtcnnNet extends Layers {
  /** `module`: the compiled kernels; `weights`: the network's .net.safetensors bytes. */
  static async create(module, weights) {
    return new MtcnnNet(await instantiate(module), readSafetensors(weights));
  }

  constructor(exports, t) {
    super(exports, CHUNK);
    const meta = t.metadata || {};
    this.layers = JSON.parse(meta.layers || "[]");
    this.outputs = JSON.parse(meta.outputs || "[]");
    [this.sub, this.div] = JSON.parse(meta.scale || "[0, 1]");
    if (!this.layers.length) throw new Error("the weights file names no layers");
    this.weights = {};
    let dense = false;
    for (const name of this.layers) {
      if (name === "flatten") dense = true;
      if (name.startsWith("pool:") || name === "flatten") continue;
      const w = need(t, `${name}.weight`);
      if (name.startsWith("prelu")) this.weights[name] = preluSlopes(this.arena, name, w, !dense);
      else if (dense) this.weights[name] = denseWeights(this.arena, name, w, need(t, `${name}.bias`));
      else this.weights[name] = convWeights(this.arena, name, w, need(t, `${name}.bias`));
    }
    this.arena.mark();
  }

  /** {image: {data, dims: [N, 3, H, W]}} (pixels 0-255) -> {output name: {data, dims}}. */
  run({ image }) {
    this.arena.trim();
    const [n, C, H, W] = image.dims, per = C * H * W, a = this.arena;
    const input = { at: a.take("in", Math.min(n, this.chunk) * (per + ROOM)), img: per + ROOM, plane: H * W, W, H, OW: W, C };
    const answers = {};
    for (let i = 0; i < n; i += this.chunk) {
      const m = Math.min(this.chunk, n - i), f = a.f32;
      for (let j = 0; j < m; j++) { // (x - 127.5) / 128: exact in float64, then rounded once, as in float32
        const src = image.data.subarray((i + j) * per, (i + j + 1) * per), at = input.at / 4 + j * input.img;
        for (let q = 0; q < per; q++) f[at + q] = (src[q] - this.sub) / this.div;
      }
      let x = input;
      for (const name of this.layers) {
        if (name.startsWith("pool:")) x = this.maxPool(x, Number(name.slice(5)), name, m);
        else if (name === "flatten") x = this.compact(x, name, m);
        else if (name.startsWith("prelu")) x = this.prelu(x, this.weights[name], m);
        else if (this.weights[name].K) x = this.dense(x, this.weights[name], false, name, m);
        else x = this.conv(x, this.weights[name], name, m);
      }
      this.collect(x, n, i, m, answers);
    }
    return answers;
  }

  /** The head's channels (a feature map's planes, or a vector's numbers) into each output, softmax where asked. */
  collect(x, n, i, m, answers) {
    const f = this.arena.f32, spatial = Boolean(x.plane), size = spatial ? x.H * x.OW : 1;
    for (const [name, first, last, softmax] of this.outputs) {
      const ch = last - first;
      answers[name] ||= { type: "float32", data: new Float32Array(n * ch * size), dims: spatial ? [n, ch, x.H, x.OW] : [n, ch] };
      const out = answers[name].data;
      for (let j = 0; j < m; j++) {
        const base = x.at / 4 + j * x.img, o = (i + j) * ch * size;
        for (let c = 0; c < ch; c++) {
          for (let y = 0; y < (spatial ? x.H : 1); y++) {
            const from = spatial ? base + (first + c) * x.plane + y * x.W : base + first + c;
            for (let q = 0; q < (spatial ? x.OW : 1); q++) out[o + c * size + y * (spatial ? x.OW : 1) + q] = f[from + q];
          }
        }
        if (softmax) softmaxAcross(out, o, ch, size);
      }
    }
  }
}

/** Softmax across `ch` channels at each of `size` places, in place (channel c of place p at o + c * size + p). */
function softmaxAcross(out, o, ch, size) {
  for (let p = 0; p < size; p++) {
    let mx = -Infinity, s = 0;
    for (let c = 0; c < ch; c++) mx = Math.max(mx, out[o + c * size + p]);
    for (let c = 0; c < ch; c++) s += Math.exp(out[o + c * size + p] - mx);
    for (let c = 0; c < ch; c++) out[o + c * size + p] = Math.exp(out[o + c * size + p] - mx) / s;
  }
}

