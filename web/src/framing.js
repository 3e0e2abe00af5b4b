// Faces found and framed as the Python pipeline does (deep_emotion/faces.py, its default `Framing`): MTCNN,
// then a lenient retry with plain context around the photo, then retries in copies turned by ±30°; the square
// (side = box x (1 + 2 margin)) kept inside the photo, shrunk when it cannot fit; grey (PIL's "L") and resized to
// 48x48 with PIL's antialiased bilinear filter. The constants come from models.json (written by the exporter).

import { detect, THRESHOLDS } from "./mtcnn.js";

export const INPUT = 48;

/** Python's round(): halves to even. */
export function roundHalfEven(v) {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** PIL's "L": ITU-R 601-2 luma in fixed point, (R 19595 + G 38470 + B 7471 + 0x8000) >> 16. */
export function grey(imageData) {
  const { width, height, data } = imageData;
  const out = new Uint8Array(width * height);
  for (let i = 0; i < out.length; i++) {
    out[i] = (data[4 * i] * 19595 + data[4 * i + 1] * 38470 + data[4 * i + 2] * 7471 + 0x8000) >>> 16;
  }
  return { data: out, width, height };
}

function coefficients(inSize, outSize, box0, box1) {
  // PIL's precompute_coeffs for the bilinear (triangle) filter, 8-bit fixed point with 22 bits
  const scale = (box1 - box0) / outSize;
  const filterscale = Math.max(scale, 1);
  const support = filterscale;
  const rows = [];
  for (let xx = 0; xx < outSize; xx++) {
    const center = box0 + (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    const w = [];
    let total = 0;
    for (let x = 0; x < xmax; x++) {
      const t = Math.abs((x + xmin - center + 0.5) * ss);
      const v = t < 1 ? 1 - t : 0;
      w.push(v);
      total += v;
    }
    rows.push({ xmin, k: w.map((v) => {
      const n = total ? v / total : 0;
      return Math.trunc(n * (1 << 22) + (n < 0 ? -0.5 : 0.5));
    }) });
  }
  return rows;
}

const clip8 = (v) => Math.min(255, Math.max(0, v >> 22));

/** A grey image resized like PIL's resize(size, BILINEAR) (horizontal pass, then vertical, 8-bit between). */
export function resizeGrey(img, ow, oh) {
  const { width: w, height: h, data } = img;
  const hx = coefficients(w, ow, 0, w), vy = coefficients(h, oh, 0, h);
  const mid = new Uint8Array(ow * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < ow; x++) {
      const { xmin, k } = hx[x];
      let s = 1 << 21;
      for (let i = 0; i < k.length; i++) s += data[y * w + xmin + i] * k[i];
      mid[y * ow + x] = clip8(s);
    }
  }
  const out = new Uint8Array(ow * oh);
  for (let y = 0; y < oh; y++) {
    const { xmin, k } = vy[y];
    for (let x = 0; x < ow; x++) {
      let s = 1 << 21;
      for (let i = 0; i < k.length; i++) s += mid[(xmin + i) * ow + x] * k[i];
      out[y * ow + x] = clip8(s);
    }
  }
  return { data: out, width: ow, height: oh };
}

/** Degrees the face's square turns before cropping (faces.Framing.turn): the eye line's tilt beyond
 * ±rules.align_above, when rules.align; 0 otherwise. `landmarks`: [[x, y] x 5], eyes first. */
export function faceTurn(landmarks, rules) {
  if (!rules.align || !landmarks || landmarks.length < 2) return 0;
  const [[lx, ly], [rx, ry]] = landmarks;
  if (![lx, ly, rx, ry].every(Number.isFinite) || (lx === rx && ly === ry)) return 0;
  const a = (Math.atan2(-(ry - ly), rx - lx) * 180) / Math.PI;
  return Math.sign(a) * Math.max(0, Math.abs(a) - (rules.align_above || 0));
}

/** [cx, cy, side] of the face's square inside a (w, h) photo: faces.square_in_photo with inside=True and
 * pad="none" (the square, turned by `angle` degrees, shifted, then shrunk to fit the photo). */
export function squareInPhoto(box, w, h, margin, angle = 0) {
  const [x0, y0, x1, y1] = box;
  let cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  const face = Math.max(x1 - x0, y1 - y0, 1);
  const r = (angle * Math.PI) / 180;
  const spread = Math.abs(Math.cos(r)) + Math.abs(Math.sin(r));
  const side = Math.min(face * (1 + 2 * margin), Math.min(w, h) / spread);
  const half = (side * spread) / 2;
  if (2 * half <= w) cx = Math.min(Math.max(cx, half), w - half);
  if (2 * half <= h) cy = Math.min(Math.max(cy, half), h - half);
  return [cx, cy, side];
}

/** The face's square of `canvas` (a photo or a frame) drawn upright at px x px, turned as its crop is (the maps go
 * over it); a face read from the whole picture (detected === false): all of it, squeezed as its crop is. */
export function faceSquare(canvas, face, rules, px) {
  const c = Object.assign(document.createElement("canvas"), { width: px, height: px });
  const ctx = c.getContext("2d");
  if (face.detected === false) {
    ctx.drawImage(canvas, 0, 0, canvas.width, canvas.height, 0, 0, px, px);
    return c;
  }
  const angle = faceTurn(face.landmarks, rules);
  const [cx, cy, side] = squareInPhoto(face.box, canvas.width, canvas.height, rules.margin, angle);
  ctx.translate(px / 2, px / 2);
  ctx.scale(px / side, px / side);
  ctx.rotate((angle * Math.PI) / 180); // clockwise on the screen: the tilted face comes upright
  ctx.translate(-cx, -cy);
  ctx.drawImage(canvas, 0, 0);
  return c;
}

/** The square's pixel bounds, rounded as Python's int(round(v)) does. */
export function squareBounds(box, w, h, margin) {
  const [cx, cy, side] = squareInPhoto(box, w, h, margin);
  return [cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2].map(roundHalfEven);
}

/** The turned square sampled upright at n x n pixels: the photo turned clockwise by `angle` about the square's
 * centre, as faces.crop_face does with PIL (which shrinks, then turns with bicubic weights). Each pixel averages
 * k x k bilinear samples, k = the photo pixels per output pixel (at most 4), so a large face does not alias. */
function turnedSquare(greyImg, cx, cy, side, angle, n) {
  const a = (angle * Math.PI) / 180, cos = Math.cos(a), sin = Math.sin(a);
  const { data, width, height } = greyImg;
  const k = Math.min(4, Math.max(1, Math.round(side / n)));
  const out = new Uint8Array(n * n);
  const at = (x, y) => data[Math.min(Math.max(y, 0), height - 1) * width + Math.min(Math.max(x, 0), width - 1)];
  const sample = (du, dv) => {
    const x = cx + du * cos + dv * sin - 0.5, y = cy - du * sin + dv * cos - 0.5;
    const x0 = Math.floor(x), y0 = Math.floor(y), fx = x - x0, fy = y - y0;
    const top = at(x0, y0) * (1 - fx) + at(x0 + 1, y0) * fx;
    const bottom = at(x0, y0 + 1) * (1 - fx) + at(x0 + 1, y0 + 1) * fx;
    return top * (1 - fy) + bottom * fy;
  };
  for (let v = 0; v < n; v++) {
    for (let u = 0; u < n; u++) {
      let sum = 0;
      for (let j = 0; j < k; j++) {
        for (let i = 0; i < k; i++) {
          sum += sample(((u + (i + 0.5) / k) / n - 0.5) * side, ((v + (j + 0.5) / k) / n - 0.5) * side);
        }
      }
      out[v * n + u] = Math.round(sum / (k * k));
    }
  }
  return { data: out, width: n, height: n };
}

/** The face's 48x48 grey crop (Uint8Array) from the photo's grey image; turned upright by `angle` degrees
 * (faceTurn) first when it is not 0. */
export function cropFace(greyImg, box, margin, angle = 0) {
  if (angle) {
    const [cx, cy, side] = squareInPhoto(box, greyImg.width, greyImg.height, margin, angle);
    const n = Math.max(INPUT, Math.min(Math.round(side), 4 * INPUT));
    return resizeGrey(turnedSquare(greyImg, cx, cy, side, angle, n), INPUT, INPUT).data;
  }
  const [l, t, r, b] = squareBounds(box, greyImg.width, greyImg.height, margin);
  const cw = Math.max(r - l, 1), ch = Math.max(b - t, 1);
  const sub = new Uint8Array(cw * ch);
  for (let y = 0; y < ch; y++) {
    for (let x = 0; x < cw; x++) {
      const yy = Math.min(Math.max(t + y, 0), greyImg.height - 1), xx = Math.min(Math.max(l + x, 0), greyImg.width - 1);
      sub[y * cw + x] = greyImg.data[yy * greyImg.width + xx];
    }
  }
  return resizeGrey({ data: sub, width: cw, height: ch }, INPUT, INPUT).data;
}

function meanColour(imageData) {
  const s = [0, 0, 0];
  const n = imageData.width * imageData.height;
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) s[c] += imageData.data[4 * i + c];
  return s.map((v) => Math.trunc(v / n));
}

function canvasOf(w, h) {
  const c = typeof OffscreenCanvas !== "undefined" ? new OffscreenCanvas(w, h) : Object.assign(document.createElement("canvas"), { width: w, height: h });
  return c;
}

function imageDataOf(canvas) {
  return canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
}

/** Faces of one MTCNN answer mapped to the photo's pixels (`toPhoto` maps [x, y]); faces.py's _faces_from. */
function facesFrom(found, toPhoto, w, h, minProbability, minShare = 0) {
  const out = [];
  for (const f of found) {
    if (!(f.probability >= minProbability)) continue;
    const bw = f.box[2] - f.box[0], bh = f.box[3] - f.box[1];
    if (![...f.box].every(Number.isFinite) || bw < 1 || bh < 1) continue;
    const [cx, cy] = toPhoto([(f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2]);
    if (!(cx >= 0 && cx <= w && cy >= 0 && cy <= h)) continue;
    if (Math.max(bw, bh) < minShare * Math.min(w, h)) continue;
    out.push({ box: [cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], probability: f.probability,
      landmarks: f.landmarks.map(toPhoto), detected: true });
  }
  return out.sort((a, b) => (b.box[2] - b.box[0]) * (b.box[3] - b.box[1]) - (a.box[2] - a.box[0]) * (a.box[3] - a.box[1]));
}

/** Every face in a photo (a canvas at most DETECT_MAX_SIDE on its longer side), largest first, with the retries
 * of faces.detect_faces_batch. `rules`: models.json's "framing". */
export async function findFaces(nets, canvas, rules) {
  const w = canvas.width, h = canvas.height;
  const rgba = imageDataOf(canvas);
  if (Math.min(w, h) < 20) return [];
  let faces = facesFrom(await detect(nets, rgba), (p) => p, w, h, rules.min_probability);
  if (!faces.length && rules.context_retry) {
    const pad = roundHalfEven(rules.context_pad * Math.max(w, h));
    const c = canvasOf(w + 2 * pad, h + 2 * pad);
    const ctx = c.getContext("2d");
    const [r, g, b] = meanColour(rgba);
    ctx.fillStyle = `rgb(${r},${g},${b})`;
    ctx.fillRect(0, 0, c.width, c.height);
    ctx.drawImage(canvas, pad, pad);
    const found = await detect(nets, imageDataOf(c), rules.retry_thresholds);
    faces = facesFrom(found, ([x, y]) => [x - pad, y - pad], w, h,
      Math.min(rules.min_probability, rules.retry_min_probability), rules.retry_min_share);
  }
  for (const angle of rules.rotate_retry ? [rules.rotate_retry, -rules.rotate_retry] : []) {
    if (faces.length) break;
    const t = (angle * Math.PI) / 180;
    const tw = Math.ceil(Math.abs(w * Math.cos(t)) + Math.abs(h * Math.sin(t)) - 1e-9);
    const th = Math.ceil(Math.abs(w * Math.sin(t)) + Math.abs(h * Math.cos(t)) - 1e-9);
    const c = canvasOf(tw, th);
    const ctx = c.getContext("2d");
    const [r, g, b] = meanColour(rgba);
    ctx.fillStyle = `rgb(${r},${g},${b})`;
    ctx.fillRect(0, 0, tw, th);
    ctx.translate(tw / 2, th / 2);
    ctx.rotate(-t); // counter-clockwise in the picture, as PIL's rotate(angle)
    ctx.drawImage(canvas, -w / 2, -h / 2);
    const found = await detect(nets, imageDataOf(c), THRESHOLDS);
    const unturn = ([x, y]) => {
      const dx = x - tw / 2, dy = y - th / 2;
      return [dx * Math.cos(t) - dy * Math.sin(t) + w / 2, dx * Math.sin(t) + dy * Math.cos(t) + h / 2];
    };
    faces = facesFrom(found, unturn, w, h, rules.min_probability);
  }
  return faces;
}

/** A small, about square, not flat picture with no face found is read whole (faces.looks_like_face_crop). */
export function looksLikeFaceCrop(greyImg, rules) {
  const { width: w, height: h, data } = greyImg;
  if (Math.max(w, h) > rules.whole_picture_max_side || Math.max(w, h) > rules.whole_picture_max_aspect * Math.min(w, h)) return false;
  let s = 0, s2 = 0;
  for (const v of data) { s += v; s2 += v * v; }
  const mean = s / data.length;
  return Math.sqrt(Math.max(0, s2 / data.length - mean * mean)) >= rules.whole_picture_min_std;
}
