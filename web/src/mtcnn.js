// MTCNN face detection in the browser: a port of facenet-pytorch 2.5.3's detect_face
// (models/utils/detect_face.py) onto onnxruntime-web, with the same image pyramid (min face 20 px, factor 0.709),
// stage thresholds, NMS rules (IoU 0.5 per scale, 0.7 across scales and after R-Net, "Min" 0.7 after O-Net),
// box regression and squaring. Resizing is PyTorch's "area" interpolation (adaptive average pooling).
// Images are RGBA ImageData (or {data: RGBA bytes, width, height}); the networks scale pixels themselves.

export const MIN_FACE = 20;
export const FACTOR = 0.709;
export const THRESHOLDS = [0.6, 0.7, 0.7];

const f32 = Math.fround;

const spare = []; // summed-area tables of finished detections, for the next image of the same size

/** The (3, H+1, W+1) summed-area table of an RGBA image {data, width, height}: whole-number pixel sums, exact in
 * int32 (float64 past 2^31). Its array is one a finished detection gave back (`release`) when one fits: a fresh
 * array of megabytes costs more to touch the first time than to fill. */
function summedArea(img) {
  const { width: w, height: h } = img, W = w + 1, size = 3 * W * (h + 1);
  const Type = w * h * 255 < 2 ** 31 ? Int32Array : Float64Array;
  const at = spare.findIndex((a) => a.length === size && a instanceof Type);
  const t = at >= 0 ? spare.splice(at, 1)[0] : new Type(size);
  const d = img.data;
  for (let c = 0; c < 3; c++) { // row 0 and column 0 are never written: zero since the array was made
    const o = c * W * (h + 1);
    for (let y = 0; y < h; y++) {
      let row = 0;
      const src = 4 * y * w + c, dst = o + (y + 1) * W + 1, up = o + y * W + 1;
      for (let x = 0; x < w; x++) {
        row += d[src + 4 * x];
        t[dst + x] = t[up + x] + row;
      }
    }
  }
  return { t, width: w, height: h };
}

/** Give a table's array back for the next image (the last two are kept: a photo's and its retry's, or the live
 * camera's frames). */
function release(table) {
  spare.push(table.t);
  if (spare.length > 2) spare.shift();
}

/** (3, H, W) region [y0, y1) x [x0, x1) of the image whose summed-area table is `table`, resized to (oh, ow) by
 * adaptive average pooling: each output pixel is the mean of input rows floor(i h / oh) .. ceil((i + 1) h / oh)
 * (and columns alike), read from the table in four lookups. Written into `out` when given. */
export function areaResize(table, oh, ow, y0 = 0, y1 = table.height, x0 = 0, x1 = table.width, out = null) {
  const { t } = table, W = table.width + 1, H = table.height + 1;
  const ih = y1 - y0, iw = x1 - x0;
  out = out || new Float32Array(3 * oh * ow);
  const xa = new Int32Array(ow), xb = new Int32Array(ow), ww = new Float64Array(ow);
  for (let j = 0; j < ow; j++) { xa[j] = x0 + Math.floor((j * iw) / ow); xb[j] = x0 + Math.ceil(((j + 1) * iw) / ow); ww[j] = xb[j] - xa[j]; }
  for (let i = 0; i < oh; i++) {
    const ya = y0 + Math.floor((i * ih) / oh), yb = y0 + Math.ceil(((i + 1) * ih) / oh), hh = yb - ya;
    for (let c = 0; c < 3; c++) {
      const ra = c * W * H + ya * W, rb = c * W * H + yb * W, o = c * oh * ow + i * ow;
      for (let j = 0; j < ow; j++) {
        const a = xa[j], b = xb[j];
        out[o + j] = (t[rb + b] - t[rb + a] - t[ra + b] + t[ra + a]) / (hh * ww[j]);
      }
    }
  }
  return out;
}

/** Indices kept by non-maximum suppression, highest score first. `min`: overlap over the smaller area and
 * areas with +1 (facenet-pytorch's numpy NMS); otherwise torchvision's IoU. A box is dropped when its overlap
 * with a kept one is above `threshold` (or, "Min", not at most it). */
export function nms(boxes, threshold, min = false) {
  const order = boxes.map((_, i) => i).sort((a, b) => boxes[b][4] - boxes[a][4]);
  const plus = min ? 1 : 0;
  const area = boxes.map((b) => (b[2] - b[0] + plus) * (b[3] - b[1] + plus));
  const keep = [];
  const removed = new Uint8Array(boxes.length);
  for (let a = 0; a < order.length; a++) {
    const i = order[a];
    if (removed[i]) continue;
    keep.push(i);
    for (let c = a + 1; c < order.length; c++) { // only lower scores: the higher ones are kept or gone already
      const j = order[c];
      if (removed[j]) continue;
      const w = Math.max(0, Math.min(boxes[i][2], boxes[j][2]) - Math.max(boxes[i][0], boxes[j][0]) + plus);
      const h = Math.max(0, Math.min(boxes[i][3], boxes[j][3]) - Math.max(boxes[i][1], boxes[j][1]) + plus);
      const inter = w * h;
      const o = min ? inter / Math.min(area[i], area[j]) : inter / (area[i] + area[j] - inter);
      if (min ? !(o <= threshold) : o > threshold) removed[j] = 1;
    }
  }
  return keep;
}

/** Squares around each box's centre (side = its longer side), in place (facenet-pytorch's rerec). */
function rerec(boxes) {
  for (const b of boxes) {
    const h = f32(b[3] - b[1]), w = f32(b[2] - b[0]);
    const l = Math.max(w, h);
    b[0] = f32(f32(b[0] + f32(w * 0.5)) - f32(l * 0.5));
    b[1] = f32(f32(b[1] + f32(h * 0.5)) - f32(l * 0.5));
    b[2] = f32(b[0] + l);
    b[3] = f32(b[1] + l);
  }
  return boxes;
}

/** Box regression with +1 sizes (facenet-pytorch's bbreg), in place. */
function bbreg(b, reg) {
  const w = f32(f32(b[2] - b[0]) + 1), h = f32(f32(b[3] - b[1]) + 1);
  b[0] = f32(b[0] + f32(reg[0] * w));
  b[1] = f32(b[1] + f32(reg[1] * h));
  b[2] = f32(b[2] + f32(reg[2] * w));
  b[3] = f32(b[3] + f32(reg[3] * h));
}

/** 1-based inclusive crop bounds inside the image (facenet-pytorch's pad: no padding, the part inside). */
function bounds(b, w, h) {
  const x = Math.max(Math.trunc(b[0]), 1), y = Math.max(Math.trunc(b[1]), 1);
  const ex = Math.min(Math.trunc(b[2]), w), ey = Math.min(Math.trunc(b[3]), h);
  return ey > y - 1 && ex > x - 1 ? [y, ey, x, ex] : null;
}

async function cropsThrough(session, table, boxes, size) {
  const kept = [], regions = [];
  boxes.forEach((b, k) => {
    const r = bounds(b, table.width, table.height);
    if (!r) return;
    kept.push(k);
    regions.push(r);
  });
  if (!regions.length) return { kept, out: null };
  const per = 3 * size * size, data = new Float32Array(regions.length * per);
  regions.forEach(([y, ey, x, ex], i) => areaResize(table, size, size, y - 1, ey, x - 1, ex, data.subarray(i * per, (i + 1) * per)));
  const ort = globalThis.ort;
  const out = await session.run({ image: new ort.Tensor("float32", data, [regions.length, 3, size, size]) });
  return { kept, out };
}

/** Faces in one image: [{box: [x0, y0, x1, y1], probability, landmarks: [[x, y] x 5]}], in O-Net's order
 * (highest score first after NMS). `nets`: {pnet, rnet, onet}, each with `run({image})` as an onnxruntime-web
 * session has (runtime.nets: on our kernels or ONNX Runtime). */
export async function detect(nets, img, thresholds = THRESHOLDS, minFace = MIN_FACE, factor = FACTOR) {
  const table = summedArea(img);
  try {
    return await stages(nets, table, thresholds, minFace, factor);
  } finally {
    release(table);
  }
}

/** detect()'s three stages on the image's summed-area table. */
async function stages(nets, table, thresholds, minFace, factor) {
  const ort = globalThis.ort;
  const { width: w, height: h } = table;
  const m = 12.0 / minFace;
  let minl = Math.min(h, w) * m;
  const scales = [];
  let s = m;
  while (minl >= 12) {
    scales.push(s);
    s *= factor;
    minl *= factor;
  }
  // stage 1: P-Net over the pyramid; NMS 0.5 within each scale
  // (every scale is sent at once: the engine's workers take them side by side; read back in scale order)
  const runs = scales.map((scale) => {
    const hs = Math.trunc(h * scale + 1), ws = Math.trunc(w * scale + 1);
    const done = nets.pnet.run({ image: new ort.Tensor("float32", areaResize(table, hs, ws), [1, 3, hs, ws]) });
    done.catch(() => {}); // a failure is thrown where the scale is awaited
    return done;
  });
  let boxes = [];
  for (const [i, scale] of scales.entries()) {
    const out = await runs[i];
    const reg = out.regression.data, prob = out.probabilities.data;
    const [, , oh, ow] = out.probabilities.dims;
    const found = [];
    const sc = f32(scale);
    for (let y = 0; y < oh; y++) {
      for (let x = 0; x < ow; x++) {
        const p = prob[oh * ow + y * ow + x];
        if (!(p >= thresholds[0])) continue;
        const r = [0, 1, 2, 3].map((k) => reg[k * oh * ow + y * ow + x]);
        found.push([Math.floor(f32((2 * x + 1) / sc)), Math.floor(f32((2 * y + 1) / sc)),
          Math.floor(f32((2 * x + 12) / sc)), Math.floor(f32((2 * y + 12) / sc)), p, ...r]);
      }
    }
    for (const k of nms(found, 0.5)) boxes.push(found[k]);
  }
  boxes = nms(boxes, 0.7).map((k) => boxes[k]);
  boxes = boxes.map((b) => {
    const rw = f32(b[2] - b[0]), rh = f32(b[3] - b[1]);
    return [f32(b[0] + f32(b[5] * rw)), f32(b[1] + f32(b[6] * rh)), f32(b[2] + f32(b[7] * rw)),
      f32(b[3] + f32(b[8] * rh)), b[4]];
  });
  rerec(boxes);
  if (!boxes.length) return [];

  // stage 2: R-Net on 24x24 crops
  let { kept, out } = await cropsThrough(nets.rnet, table, boxes, 24);
  if (!out) return [];
  let cand = [];
  kept.forEach((k, i) => {
    const score = out.probabilities.data[2 * i + 1];
    if (score > thresholds[1]) {
      cand.push({ b: [...boxes[k].slice(0, 4), score], reg: Array.from(out.regression.data.slice(4 * i, 4 * i + 4)) });
    }
  });
  cand = nms(cand.map((c) => c.b), 0.7).map((k) => cand[k]);
  boxes = cand.map((c) => {
    bbreg(c.b, c.reg);
    return c.b;
  });
  rerec(boxes);
  if (!boxes.length) return [];

  // stage 3: O-Net on 48x48 crops: score, landmarks, regression; NMS "Min" 0.7
  ({ kept, out } = await cropsThrough(nets.onet, table, boxes, 48));
  if (!out) return [];
  const faces = [];
  kept.forEach((k, i) => {
    const score = out.probabilities.data[2 * i + 1];
    if (!(score > thresholds[2])) return;
    const b = [...boxes[k].slice(0, 4), score];
    const wi = f32(f32(b[2] - b[0]) + 1), hi = f32(f32(b[3] - b[1]) + 1);
    const lm = out.landmarks.data.slice(10 * i, 10 * i + 10);
    const landmarks = [0, 1, 2, 3, 4].map((j) => [f32(f32(wi * lm[j]) + b[0]) - 1, f32(f32(hi * lm[5 + j]) + b[1]) - 1]);
    bbreg(b, out.regression.data.slice(4 * i, 4 * i + 4));
    faces.push({ b, landmarks });
  });
  return nms(faces.map((f) => f.b), 0.7, true).map((k) => ({
    box: faces[k].b.slice(0, 4), probability: faces[k].b[4], landmarks: faces[k].landmarks,
  }));
}
