// Functions for tests and benchmarks, added to globalThis.deepEmotion by app.js: the page's own code run on data
// given directly, so that its answers can be checked against the Python pipeline. Answers are plain arrays and
// objects (JSON).

import { faceTurn } from "./framing.js";
import * as explain from "./explain.js";
import { modelInfo, runtime, session } from "./runtime.js";

const plain = (a) => Array.from(a);

export const hooks = {
  /** The five photo landmarks in the face's crop pixels, with the page's framing rules (turned as it crops). */
  landmarksInCrop(landmarks, box, width, height) {
    const rules = runtime.index.framing;
    return explain.landmarksInCrop(landmarks, box, width, height, rules.margin, faceTurn(landmarks, rules));
  },

  regionMask(landmarks48) {
    const { mask, own } = explain.regionMask(landmarks48);
    return { mask: plain(mask), own };
  },

  /** The facial-regions map of a 48x48 crop (uint8 values) by model `name`. */
  async regions(crop, name, landmarks48 = null, target = null) {
    const s = await session(modelInfo(name).file);
    const r = await explain.regions(s, Uint8Array.from(crop), landmarks48, target);
    const sentence = explain.regionSentence(r, modelInfo(name).classes[r.target]);
    return { ...r, map: plain(r.map), mask: plain(r.mask), sentence };
  },

  /** Deletion / insertion of `maps` ({name: 48*48 values}, or one map as an array) for class index `target`,
   * with the random map (unless `random` is false), and the ranking; `titles`: {map name: title} for its
   * sentence. */
  async faithfulness(crop, name, maps, target, random = true, titles = {}) {
    const s = await session(modelInfo(name).file);
    const given = Array.isArray(maps) ? { map: maps } : maps;
    const scores = await explain.faithfulnessAll(s, Uint8Array.from(crop), given, target, { random });
    return { scores, ranking: explain.rankMaps(scores, (n) => titles[n] || n) };
  },

  randomMap: () => plain(explain.randomMap()),
  pixelRanks: (values) => plain(explain.pixelRanks(values)),

  /** The consensus of {model: probabilities in its class order} with models.json's weights (or `weights`, in
   * the same form). */
  consensus(probsByModel, weights = null) {
    const index = runtime.index;
    return explain.consensus(probsByModel, index.models, weights || index.consensus,
      index.canonical || explain.CANONICAL);
  },
};
