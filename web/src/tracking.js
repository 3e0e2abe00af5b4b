// Following faces from frame to frame (deep_emotion/faces/tracking.py): an IoU tracker whose ids survive short
// misses, and the weight of an exponential moving average with a half-life in seconds.

export const MATCH_IOU = 0.3; // a face continues a track when its box overlaps the track's last box this much ...
export const MAX_GAP_SECONDS = 1.0; // ... and the track was seen at most this long ago

/** Intersection over union of two [x0, y0, x1, y1] boxes. */
export function iou(a, b) {
  const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = w * h;
  const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return union > 0 ? inter / union : 0;
}

/** Face ids across frames: each face takes the id of the unclaimed track whose last box overlaps it most
 * (IoU >= minIou), or else whose centre is nearest, within one face's width; otherwise a new id. A track not
 * seen for more than maxGap seconds ends (its id is never reused). */
export class FaceTracker {
  constructor(minIou = MATCH_IOU, maxGap = MAX_GAP_SECONDS) {
    this.minIou = minIou;
    this.maxGap = maxGap;
    this.tracks = [];
    this.nextId = 1;
  }

  /** Ids for `boxes` (found at `time` seconds), in their order. */
  update(time, boxes) {
    this.tracks = this.tracks.filter((t) => time - t.seen <= this.maxGap);
    const ids = boxes.map(() => null);
    const claimed = new Set();
    const claim = (pairs) => {
      for (const [i, k] of pairs) {
        if (ids[i] === null && !claimed.has(k)) {
          ids[i] = this.tracks[k].id;
          claimed.add(k);
          this.tracks[k] = { id: ids[i], box: boxes[i], seen: time };
        }
      }
    };
    const centre = (b) => [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2];
    const pairs = [];
    for (let i = 0; i < boxes.length; i++) for (let k = 0; k < this.tracks.length; k++) pairs.push([i, k]);
    const overlap = new Map(pairs.map(([i, k]) => [`${i},${k}`, iou(boxes[i], this.tracks[k].box)]));
    const ov = ([i, k]) => overlap.get(`${i},${k}`);
    claim(pairs.filter((p) => ov(p) >= this.minIou).sort((p, q) => ov(q) - ov(p)));
    const dist = ([i, k]) => {
      const [a, b] = [centre(boxes[i]), centre(this.tracks[k].box)];
      return Math.hypot(a[0] - b[0], a[1] - b[1]);
    };
    const width = ([i, k]) => Math.max(boxes[i][2] - boxes[i][0], this.tracks[k].box[2] - this.tracks[k].box[0], 1);
    claim(pairs.filter((p) => dist(p) <= width(p)).sort((p, q) => dist(p) - dist(q)));
    boxes.forEach((b, i) => {
      if (ids[i] === null) {
        ids[i] = this.nextId;
        this.tracks.push({ id: this.nextId, box: b, seen: time });
        this.nextId++;
      }
    });
    return ids;
  }
}

/** The weight of a new value in an exponential moving average with this half-life (seconds): 1 - 2^(-dt/h). */
export function smoothingWeight(dt, halfLife) {
  return halfLife <= 0 ? 1 : 1 - 0.5 ** (Math.max(dt, 0) / halfLife);
}
