// Forward-only explanations in the browser, ported from the Python library so that the page gives its numbers:
// - facial regions (deep_emotion/explain/regions.py): eyes, brows, nose and mouth placed from the five MTCNN
//   landmarks, each replaced in turn by the same region of the face blurred (Gaussian, sigma 4, kernel 25,
//   reflected edges: torchvision's gaussian_blur); a region's score is the fall of the class's probability;
// - faithfulness (deep_emotion/explain/faithfulness.py): deletion and insertion curves (32 steps, baseline 0),
//   their areas, insertion - deletion, and a random map as the baseline; ties in a map are broken by the same
//   seeded jitter as PyTorch's (its CPU generator, a Mersenne Twister seeded with 0, is reproduced here);
// - the consensus (deep_emotion/models/consensus.py `combine`): per canonical class the weighted mean over the
//   models that know it, then normalised, with the weights models.json carries (checkpoints/consensus.json).

import { argmax, SIZE, toInput } from "./analysis.js";
import { squareInPhoto } from "./framing.js";

export const CANONICAL = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "contempt"];
export const REGIONS = ["eyes", "brows", "nose", "mouth", "rest"];
// regions.TYPICAL_LANDMARKS: MTCNN's five landmarks on a typical FER2013 crop (48x48), for a face without its own
export const TYPICAL_LANDMARKS = [[14.3, 19.3], [32.9, 18.8], [23.9, 29.1], [16.3, 38.7], [31.8, 38.2]];
export const REGION_BLUR = 4.0; // registry.Context.region_blur: sigma (pixels) of the blurred face
export const STEPS = 32; // faithfulness: deletion / insertion steps
const CHUNK = 256; // images per session.run (faithfulness.faithfulness's batch_size)

async function run(session, faces, n) {
  const ort = globalThis.ort;
  const out = await session.run({ face: new ort.Tensor("float32", faces, [n, 1, SIZE, SIZE]) });
  return out.probabilities.data;
}

/** Probabilities (Float32Array, n x classes) of n faces (Float32Array n x 48 x 48), CHUNK faces per run (all
 * sent at once: the engine's workers share them). */
async function probabilities(session, faces, n) {
  const per = SIZE * SIZE;
  const runs = [];
  for (let start = 0; start < n; start += CHUNK) {
    const m = Math.min(CHUNK, n - start);
    runs.push(run(session, faces.subarray(start * per, (start + m) * per), m));
  }
  const parts = await Promise.all(runs);
  const k = parts[0].length / Math.min(CHUNK, n);
  const out = new Float32Array(n * k);
  parts.forEach((p, i) => out.set(p, i * CHUNK * k));
  return { p: out, k };
}

// --- landmarks and regions ---------------------------------------------------------------------------------

/** The photo's five landmarks ([[x, y] x 5]) in the pixels of the face's 48x48 crop, as faces.landmarks_in_crop
 * computes them: relative to the centre of the face's square (framing.js squareInPhoto, turned by `angle`
 * degrees: framing.js faceTurn), turned with the crop, scaled to `out` pixels. Python uses the square's exact
 * centre and side (not the crop's rounded pixel bounds), and so does this. */
export function landmarksInCrop(landmarks, box, photoWidth, photoHeight, margin, angle = 0, out = SIZE) {
  const [cx, cy, side] = squareInPhoto(box, photoWidth, photoHeight, margin, angle);
  const a = (angle * Math.PI) / 180, cos = Math.cos(a), sin = Math.sin(a); // the crop turns the photo clockwise
  return landmarks.map(([x, y]) => {
    const dx = x - cx, dy = y - cy;
    return [((dx * cos - dy * sin) / side) * out + out / 2, ((dx * sin + dy * cos) / side) * out + out / 2];
  });
}

/** regions.region_mask: {mask: Uint8Array(size*size) of REGIONS indices, own: whether the face's own landmarks
 * were used (false: TYPICAL_LANDMARKS, scaled to `size`; also when they are missing, not finite, or the eyes are
 * less than 2 pixels apart)}. Ellipses in the eye line's frame; where two overlap the earlier of mouth, eyes,
 * brows, nose wins; everything else is "rest". */
export function regionMask(landmarks, size = SIZE) {
  const typical = () => TYPICAL_LANDMARKS.map(([x, y]) => [(x * size) / 48, (y * size) / 48]);
  let own = Array.isArray(landmarks) && landmarks.length === 5 &&
    landmarks.every((p) => p && p.length === 2 && Number.isFinite(p[0]) && Number.isFinite(p[1]));
  let pts = own ? landmarks.map(([x, y]) => [Number(x), Number(y)]) : typical();
  let d = Math.hypot(pts[1][0] - pts[0][0], pts[1][1] - pts[0][1]);
  if (!own || d < 2) {
    pts = typical();
    d = Math.hypot(pts[1][0] - pts[0][0], pts[1][1] - pts[0][1]);
    own = false;
  }
  const [le, re, nose, ml, mr] = pts;
  const u = [(re[0] - le[0]) / d, (re[1] - le[1]) / d];
  const v = [-u[1], u[0]]; // perpendicular, pointing down the face
  const eyesMid = [(le[0] + re[0]) / 2, (le[1] + re[1]) / 2];
  const mouthMid = [(ml[0] + mr[0]) / 2, (ml[1] + mr[1]) / 2];
  const mouthHalf = Math.max(Math.hypot(mr[0] - ml[0], mr[1] - ml[1]) / 2, 0.2 * d);
  const noseLen = Math.max((nose[0] - eyesMid[0]) * v[0] + (nose[1] - eyesMid[1]) * v[1], 0.3 * d);
  const along = (p, k) => [p[0] + k * v[0], p[1] + k * v[1]];
  const ellipse = (c, ra, rb) => (x, y) => {
    const rx = x - c[0], ry = y - c[1];
    return ((rx * u[0] + ry * u[1]) / ra) ** 2 + ((rx * v[0] + ry * v[1]) / rb) ** 2 <= 1;
  };
  const either = (f, g) => (x, y) => f(x, y) || g(x, y);
  const shapes = [ // earlier regions win where two overlap
    ["mouth", ellipse(along(mouthMid, 0.05 * d), mouthHalf + 0.2 * d, 0.3 * d)],
    ["eyes", either(ellipse(le, 0.3 * d, 0.2 * d), ellipse(re, 0.3 * d, 0.2 * d))],
    ["brows", either(ellipse(along(le, -0.38 * d), 0.36 * d, 0.16 * d), ellipse(along(re, -0.38 * d), 0.36 * d, 0.16 * d))],
    ["nose", ellipse(along(eyesMid, 0.55 * noseLen), 0.22 * d, 0.55 * noseLen + 0.05 * d)],
  ];
  const mask = new Uint8Array(size * size).fill(REGIONS.indexOf("rest"));
  for (let row = 0; row < size; row++) {
    for (let col = 0; col < size; col++) {
      const hit = shapes.find(([, inside]) => inside(col + 0.5, row + 0.5));
      if (hit) mask[row * size + col] = REGIONS.indexOf(hit[0]);
    }
  }
  return { mask, own };
}

/** torchvision's gaussian_blur of one size x size image (Float32Array): kernel 2 ceil(3 sigma) + 1, the image
 * reflected at its edges (without repeating the edge pixel), separable (the same 2-D kernel, outer product). */
export function gaussianBlur(x, sigma = REGION_BLUR, size = SIZE) {
  const ksize = 2 * Math.ceil(3 * sigma) + 1, half = (ksize - 1) / 2;
  const k = [];
  for (let i = 0; i < ksize; i++) k.push(Math.exp(-0.5 * ((i - half) / sigma) ** 2));
  const total = k.reduce((a, b) => a + b, 0);
  const w = k.map((v) => v / total);
  const reflect = (i) => {
    let j = i;
    while (j < 0 || j >= size) j = j < 0 ? -j : 2 * (size - 1) - j;
    return j;
  };
  const mid = new Float64Array(size * size), out = new Float32Array(size * size);
  for (let r = 0; r < size; r++) {
    for (let c = 0; c < size; c++) {
      let s = 0;
      for (let i = 0; i < ksize; i++) s += w[i] * x[r * size + reflect(c + i - half)];
      mid[r * size + c] = s;
    }
  }
  for (let r = 0; r < size; r++) {
    for (let c = 0; c < size; c++) {
      let s = 0;
      for (let i = 0; i < ksize; i++) s += w[i] * mid[reflect(r + i - half) * size + c];
      out[r * size + c] = s;
    }
  }
  return out;
}

/** The "regions" explainer (regions.regions, Captum's FeatureAblation with the region mask): every region present
 * replaced in turn by the same region of the face blurred (sigma `blur`), all copies and the face itself in one
 * run (`p0`, the face's own probabilities, saves nothing here but is used when given). Returns
 * {map: Float32Array(48*48) (each pixel: its region's score), scores: {region: fall of p(target)} ordered by
 * |score| (largest first, as Python's Map.regions), mask: Uint8Array (REGIONS indices), own, target,
 * probabilities (the face's own), passes (images through the network), note}. */
export async function regions(session, crop48, landmarks48, target = null, p0 = null, blur = REGION_BLUR) {
  const x = toInput(crop48);
  const { mask, own } = regionMask(landmarks48);
  const present = REGIONS.map((_, r) => r).filter((r) => mask.includes(r));
  const blurred = gaussianBlur(x, blur);
  const per = SIZE * SIZE, n = present.length + 1;
  const batch = new Float32Array(n * per);
  batch.set(x);
  present.forEach((r, i) => {
    const copy = batch.subarray((i + 1) * per, (i + 2) * per);
    for (let j = 0; j < per; j++) copy[j] = mask[j] === r ? blurred[j] : x[j];
  });
  const { p, k } = await probabilities(session, batch, n);
  const own0 = p0 ? Array.from(p0) : Array.from(p.subarray(0, k));
  const t = target == null ? argmax(own0) : target;
  const found = present.map((r, i) => [REGIONS[r], own0[t] - p[(i + 1) * k + t]]);
  found.sort((a, b) => Math.abs(b[1]) - Math.abs(a[1])); // stable, as Python's sorted
  const scores = Object.fromEntries(found);
  const map = new Float32Array(per);
  for (let j = 0; j < per; j++) map[j] = scores[REGIONS[mask[j]]];
  return { map, scores, mask, own, target: t, probabilities: own0, passes: n,
    note: own ? "" : "typical landmark positions (this face has none of its own)" };
}

/** describe.region_sentence: "blurring the mouth lowers happy by 0.69" (+ " (note)"), "" without scores. */
export function regionSentence(result, className) {
  const first = result && Object.entries(result.scores || {})[0];
  if (!first) return "";
  const [name, value] = first;
  const where = name === "rest" ? "everything but eyes, brows, nose and mouth" : `the ${name}`;
  const line = `blurring ${where} ${value >= 0 ? "lowers" : "raises"} ${className} by ${Math.abs(value).toFixed(2)}`;
  return line + (result.note ? ` (${result.note})` : "");
}

// --- faithfulness -------------------------------------------------------------------------------------------

/** PyTorch's CPU generator: a 32-bit Mersenne Twister (mt19937) seeded as torch.Generator().manual_seed(seed). */
function mt19937(seed) {
  const s = new Uint32Array(624);
  s[0] = seed >>> 0;
  for (let j = 1; j < 624; j++) {
    const prev = s[j - 1] ^ (s[j - 1] >>> 30);
    s[j] = (Math.imul(1812433253, prev) + j) >>> 0;
  }
  let i = 624;
  return () => {
    if (i >= 624) {
      for (let k = 0; k < 624; k++) {
        const y = (s[k] & 0x80000000) | (s[(k + 1) % 624] & 0x7fffffff);
        s[k] = s[(k + 397) % 624] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
      }
      i = 0;
    }
    let y = s[i++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  };
}

/** torch.rand(n, generator=torch.Generator().manual_seed(seed)) on the CPU, value for value (float32: the low
 * 24 bits of each 32-bit draw, times 2^-24). */
export function torchRand(n, seed = 0) {
  const next = mt19937(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (next() & 0xffffff) * 2 ** -24;
  return out;
}

/** faithfulness.random_map: the random importance map (size x size, seed 0) that is the faithfulness baseline;
 * the same numbers as Python's. */
export function randomMap(size = SIZE, seed = 0) {
  return torchRand(size * size, seed);
}

/** Each pixel's rank (0 = most important) as faithfulness.perturbed_images orders them: by importance, ties
 * broken by PyTorch's seeded jitter (rand(n) x 1e-9 x (max |importance| + 1e-12), in float32, as Python computes
 * it), so a map with ties — a flat one, or the regions map — gets the order Python gives it. Values that remain
 * equal after the jitter (two equal draws, rare) go by pixel index, where torch's argsort may differ. */
export function pixelRanks(importance) {
  const n = importance.length;
  const imp = Float64Array.from(importance, (v) => Math.fround(v)); // Python's maps are float32
  let top = 0;
  for (const v of imp) top = Math.max(top, Math.abs(v));
  const r = torchRand(n, 0);
  const a = Math.fround(1e-9), b = Math.fround(top + 1e-12);
  const key = new Float64Array(n);
  for (let i = 0; i < n; i++) key[i] = imp[i] + Math.fround(Math.fround(r[i] * a) * b);
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => key[j] - key[i] || i - j);
  const rank = new Int32Array(n);
  order.forEach((pixel, k) => { rank[pixel] = k; });
  return rank;
}

const roundHalfEven = (v) => {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
};

/** faithfulness.perturbed_images: (steps + 1) images (Float32Array) of the face with 0, 1/steps, ... of its
 * pixels deleted (set to `baseline`) in the map's order ("deletion"), or inserted into the baseline image
 * ("insertion"), written into `into` at image offset `at` when given. */
export function perturbedImages(x, importance, kind = "deletion", steps = STEPS, baseline = 0, into = null, at = 0) {
  if (kind !== "deletion" && kind !== "insertion") throw new Error(`kind must be 'deletion' or 'insertion', not ${kind}`);
  const n = x.length, rank = pixelRanks(importance);
  const out = into || new Float32Array((steps + 1) * n);
  for (let s = 0; s <= steps; s++) {
    const count = roundHalfEven((s * n) / steps);
    const img = out.subarray((at + s) * n, (at + s + 1) * n);
    for (let i = 0; i < n; i++) {
      const changed = rank[i] < count;
      img[i] = kind === "deletion" ? (changed ? baseline : x[i]) : (changed ? x[i] : baseline);
    }
  }
  return out;
}

/** torch.trapezoid(curve, dx=1/(len - 1)). */
export function auc(curve) {
  const dx = 1 / (curve.length - 1);
  let s = 0;
  for (let i = 1; i < curve.length; i++) s += ((curve[i - 1] + curve[i]) / 2) * dx;
  return s;
}

/** Deletion and insertion of several maps ({name: values (48*48)}) for one face and class, all curves in a few
 * runs (faithfulness.faithfulness). `random`: add the random map as "random" (as the pipeline does). Returns
 * {name: {deletion: [steps + 1 probabilities], insertion: [...], deletionAuc, insertionAuc, score}}, score =
 * insertionAuc - deletionAuc (Python's "difference": higher is more faithful). */
export async function faithfulnessAll(session, crop48, maps, target, { random = true, steps = STEPS, baseline = 0 } = {}) {
  const x = toInput(crop48);
  const all = Object.entries(maps);
  if (random) all.push(["random", randomMap(SIZE)]);
  const per = SIZE * SIZE, each = steps + 1;
  const images = new Float32Array(all.length * 2 * each * per);
  all.forEach(([, values], m) => {
    perturbedImages(x, values, "deletion", steps, baseline, images, (2 * m) * each);
    perturbedImages(x, values, "insertion", steps, baseline, images, (2 * m + 1) * each);
  });
  const { p, k } = await probabilities(session, images, all.length * 2 * each);
  const curve = (row) => Array.from({ length: each }, (_, s) => p[(row * each + s) * k + target]);
  const out = {};
  all.forEach(([name], m) => {
    const deletion = curve(2 * m), insertion = curve(2 * m + 1);
    const deletionAuc = auc(deletion), insertionAuc = auc(insertion);
    out[name] = { deletion, insertion, deletionAuc, insertionAuc, score: insertionAuc - deletionAuc };
  });
  return out;
}

/** One map's deletion and insertion curves for class `target`: {deletion, insertion, deletionAuc, insertionAuc,
 * score = insertionAuc - deletionAuc}. Deletion: lower is better; insertion: higher. */
export async function faithfulness(session, crop48, mapValues, target, options = {}) {
  return (await faithfulnessAll(session, crop48, { map: mapValues }, target, { ...options, random: false })).map;
}

const signed3 = (v) => (v < 0 || Object.is(v, -0) ? "-" : "+") + Math.abs(v).toFixed(3);

/** Which map is the most faithful (results.ModelView.most_faithful: the largest insertion - deletion, the random
 * map excluded, the first on a tie), and the sentence describe.most_faithful writes. `scores`: faithfulnessAll's
 * answer (or {name: {score}}); `title(name)`: the map's title for the sentence. Returns {best (null without
 * maps), order (map names, most faithful first, random excluded), beatsRandom (null without a random map),
 * sentence ("" without maps)}. */
export function rankMaps(scores, title = (name) => name) {
  const names = Object.keys(scores || {}).filter((n) => n !== "random");
  const order = names.map((n, i) => [n, i]).sort((a, b) => scores[b[0]].score - scores[a[0]].score || a[1] - b[1])
    .map(([n]) => n);
  const best = order.length ? order[0] : null;
  const random = scores && scores.random;
  if (best == null) return { best, order, beatsRandom: null, sentence: "" };
  const score = `insertion - deletion ${signed3(scores[best].score)}`;
  const beatsRandom = random ? scores[best].score > random.score : null;
  let sentence;
  if (random && !beatsRandom) {
    sentence = `no map does better than a random one for this face (best: ${title(best)}, ${score}; ` +
      `random map ${signed3(random.score)})`;
  } else {
    const rnd = random ? `; random map ${signed3(random.score)}` : "";
    sentence = `most faithful map for this face: ${title(best)} (${score}${rnd})`;
  }
  return { best, order, beatsRandom, sentence };
}

// --- the consensus ------------------------------------------------------------------------------------------

/** ConsensusWeights.weight: how much `model` counts for class `cls`. `weights`: models.json "consensus"
 * ({kind: "equal" | "model" | "class", weights: {model: {class or "*": w}}}); a model the weights do not name
 * counts with the mean, over the models they name, of their weight for the class ("*", else 1). */
export function consensusWeight(weights, model, cls) {
  if (!weights || !weights.kind || weights.kind === "equal") return 1;
  const all = weights.weights || {};
  const pick = (p) => (cls in p ? p[cls] : "*" in p ? p["*"] : 1);
  if (!(model in all)) {
    const known = Object.values(all).map(pick);
    return known.length ? known.reduce((a, b) => a + b, 0) / known.length : 1;
  }
  return Number(pick(all[model]));
}

/** consensus.combine over the chosen models (Pipeline.consensus: null for fewer than two). `probsByModel`:
 * {model name: probabilities in that model's class order}; `models`: models.json's model entries (an array or
 * {name: entry}) whose `classes` are canonical; `weights`: models.json "consensus"; `canonical`: models.json
 * "canonical". Returns {classes (every class some model knows, canonical order, then others sorted),
 * probabilities, top, probability (the top's), byClass ({class: p}), agree (all models name the same top class),
 * agreement (describe.agreement's sentence), sentence (describe.consensus_sentence)}. */
export function consensus(probsByModel, models, weights = null, canonical = CANONICAL) {
  const entries = Array.isArray(models) ? Object.fromEntries(models.map((m) => [m.name, m])) : models;
  const names = Object.keys(probsByModel);
  if (names.length < 2) return null;
  const per = {};
  for (const name of names) {
    const classes = entries[name]?.classes;
    if (!classes) throw new Error(`There is no model called ${name}.`);
    per[name] = Object.fromEntries(classes.map((c, i) => [c, Number(probsByModel[name][i])]));
  }
  const known = new Set(names.flatMap((n) => Object.keys(per[n])));
  const classes = canonical.filter((c) => known.has(c))
    .concat([...known].filter((c) => !canonical.includes(c)).sort());
  const mixed = classes.map((c) => {
    let num = 0, den = 0;
    for (const name of names) {
      if (!(c in per[name])) continue;
      const w = consensusWeight(weights, name, c);
      num += w * per[name][c];
      den += w;
    }
    return den > 0 ? num / den : 0;
  });
  const total = mixed.reduce((a, b) => a + b, 0);
  const probabilities = total > 0 ? mixed.map((v) => v / total) : classes.map(() => 1 / classes.length);
  const top = classes[argmax(probabilities)];
  const tops = Object.fromEntries(names.map((n) => {
    const cls = Object.keys(per[n]);
    return [n, cls[argmax(cls.map((c) => per[n][c]))]];
  }));
  const agree = new Set(Object.values(tops)).size <= 1;
  const agreement = (agree ? "All models agree: " : "The models disagree: ") +
    names.map((n) => `${n}: ${tops[n]}`).join("; ");
  const probability = probabilities[classes.indexOf(top)];
  return { classes, probabilities, top, probability, byClass: Object.fromEntries(classes.map((c, i) => [c, probabilities[i]])),
    tops, agree, agreement, sentence: `Together the models say ${top} (${probability.toFixed(2)})` };
}
