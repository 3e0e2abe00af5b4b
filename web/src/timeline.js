// A clip's faces over time, drawn and written out (the video panel's results; deep_emotion/video/analysis.py and
// webapp/charts.py): each face's probabilities smoothed over time as the Python pipeline smooths them, the
// records and CSV of VideoAnalysis.write_csv, and a timeline per face as an SVG drawn by hand: every class's
// probability stacked over time, the top class as a labelled band above it, the time axis in seconds.

import { argmax } from "./analysis.js";
import { smoothingWeight } from "./tracking.js";

// one colour per class, the same in every model and every chart (Tableau 10)
export const CLASS_COLOURS = {
  angry: "#e15759", disgust: "#59a14f", fear: "#b07aa1", happy: "#edc948", sad: "#4e79a7",
  surprise: "#f28e2b", neutral: "#bab0ac", contempt: "#9c755f",
};
const SPARE = ["#76b7b2", "#ff9da7", "#17becf", "#8c564b"];
export const STACK_ORDER = ["happy", "surprise", "neutral", "sad", "fear", "angry", "disgust", "contempt"];

export function classColour(name, classes = []) {
  if (CLASS_COLOURS[name]) return CLASS_COLOURS[name];
  const i = Math.max(0, classes.indexOf(name));
  return SPARE[i % SPARE.length];
}

/** Rows with each face's probabilities smoothed per model: an exponential moving average whose weight halves every
 * `halfLife` seconds (0: each frame alone), over the face's rows in time order (analyze_video's `smooth`). */
export function smoothRows(rows, halfLife) {
  if (!(halfLife > 0)) return rows;
  const last = new Map(); // "face|model" -> [time, smoothed]
  return rows.map((r) => {
    const probabilities = {};
    for (const [m, p] of Object.entries(r.probabilities)) {
      const key = `${r.face}|${m}`;
      let q = p;
      if (last.has(key)) {
        const [t0, prev] = last.get(key);
        const w = smoothingWeight(r.time - t0, halfLife);
        q = prev.map((v, i) => v + w * (p[i] - v));
      }
      last.set(key, [r.time, q]);
      probabilities[m] = q;
    }
    return { ...r, probabilities };
  });
}

/** VideoAnalysis.columns(): the record's fields, then every model's classes (first seen first). */
export function columns(models) {
  const classes = [...new Set(models.flatMap((m) => m.classes))];
  return ["time_s", "frame", "face", "model", "x0", "y0", "x1", "y1", "face_probability", "detected", "top", ...classes];
}

const round = (v, n) => Math.round(v * 10 ** n) / 10 ** n;

/** VideoAnalysis.records(): one per (sampled frame, face, model). */
export function records(rows, models) {
  const out = [];
  for (const r of rows) {
    for (const m of models) {
      const p = r.probabilities[m.name];
      if (!p) continue;
      const rec = { time_s: round(r.time, 3), frame: r.frame, face: r.face, model: m.name,
        x0: round(r.box[0], 1), y0: round(r.box[1], 1), x1: round(r.box[2], 1), y1: round(r.box[3], 1),
        face_probability: round(r.faceProbability, 4), detected: r.detected, top: m.classes[argmax(p)] };
      m.classes.forEach((c, i) => { rec[c] = round(p[i], 4); });
      out.push(rec);
    }
  }
  return out;
}

/** A value as Python's csv module writes it (floats with a decimal point, True/False, strings quoted when needed). */
function cell(v, float) {
  if (v === undefined || v === null) return "";
  if (typeof v === "boolean") return v ? "True" : "False";
  if (typeof v === "number") return float && Number.isInteger(v) ? `${v}.0` : String(v);
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

const INTS = new Set(["frame", "face"]);

/** The CSV text of VideoAnalysis.write_csv (a class a model does not have: empty). */
export function toCsv(rows, models) {
  const cols = columns(models);
  const lines = [cols.join(",")];
  for (const rec of records(rows, models)) lines.push(cols.map((c) => cell(rec[c], !INTS.has(c))).join(","));
  return lines.join("\r\n") + "\r\n";
}

/** Each row's end on the chart: it holds until the face's next row, at most 1.5 steps (a longer gap shows). */
export function segments(faceRows, step) {
  return faceRows.map((r, i) => {
    const next = faceRows[i + 1];
    return { row: r, start: r.time, end: next ? Math.min(next.time, r.time + 1.5 * step) : r.time + step };
  });
}

/** Runs of segments with the same top class and no gap: [{cls, start, end}]. */
export function topRuns(segs, model, classes) {
  const runs = [];
  for (const s of segs) {
    const cls = classes[argmax(s.row.probabilities[model])];
    const prev = runs[runs.length - 1];
    if (prev && prev.cls === cls && Math.abs(prev.end - s.start) < 1e-6) prev.end = s.end;
    else runs.push({ cls, start: s.start, end: s.end });
  }
  return runs;
}

const SVG = "http://www.w3.org/2000/svg";

function el(name, attrs = {}, text = null) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== null) e.textContent = text;
  return e;
}

function niceStep(span, target) {
  const raw = span / Math.max(1, target);
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const k of [1, 2, 5, 10]) if (k * p >= raw) return k * p;
  return 10 * p;
}

function timeLabel(t, step) {
  if (step >= 60 && t >= 60) {
    const m = Math.floor(t / 60), s = Math.round(t - 60 * m);
    return `${m}:${String(s).padStart(2, "0")}`;
  }
  return step < 1 ? t.toFixed(step < 0.1 ? 2 : 1) : String(Math.round(t));
}

/** Segments merged so that there are at most about `n` of them (each pixel column one average). */
function thin(segs, model, n) {
  if (segs.length <= n) return segs;
  const per = Math.ceil(segs.length / n);
  const out = [];
  for (let i = 0; i < segs.length; i += per) {
    const part = [];
    for (const s of segs.slice(i, i + per)) {
      const prev = part[part.length - 1];
      if (prev && s.start - prev[prev.length - 1].end > 1e-6) part.push([s]); // a gap: not averaged over
      else if (prev) prev.push(s);
      else part.push([s]);
    }
    for (const group of part) {
      const k = group[0].row.probabilities[model].length;
      const mean = new Array(k).fill(0);
      for (const s of group) s.row.probabilities[model].forEach((v, j) => { mean[j] += v / group.length; });
      out.push({ row: { ...group[0].row, probabilities: { [model]: mean } }, start: group[0].start,
        end: group[group.length - 1].end });
    }
  }
  return out;
}

/**
 * One face's timeline as an <svg> `width` px wide: the model's classes stacked (probabilities sum to 1) over
 * [0, end] seconds, the top class as a band with its name where it fits, a marker at `at` seconds (or none).
 */
export function timelineSvg(faceRows, { model, classes, step, end, width, at = null }) {
  const W = Math.max(240, Math.round(width));
  const left = 38, right = 10, bandTop = 4, bandH = 20, plotTop = bandTop + bandH + 6, plotH = 110;
  const axisY = plotTop + plotH, H = axisY + 24;
  const x = (t) => left + ((W - left - right) * t) / Math.max(end, 1e-9);
  const y = (p) => plotTop + plotH * (1 - p);
  const svg = el("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: "timeline-chart", role: "img" });
  const segs = segments(faceRows, step);
  const drawn = thin(segs, model, Math.max(50, Math.floor((W - left - right) / 2)));
  // the stack: every class a polygon per run of segments without a gap
  const order = [...classes].sort((a, b) => {
    const ia = STACK_ORDER.indexOf(a), ib = STACK_ORDER.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib);
  });
  const runs = [];
  for (const s of drawn) {
    const prev = runs[runs.length - 1];
    if (prev && Math.abs(prev[prev.length - 1].end - s.start) < 1e-6) prev.push(s);
    else runs.push([s]);
  }
  const areas = el("g", { class: "areas" });
  for (const run of runs) {
    const base = run.map(() => 0);
    for (const c of order) {
      const k = classes.indexOf(c);
      const upper = [], lower = [];
      run.forEach((s, i) => {
        const lo = base[i], hi = lo + s.row.probabilities[model][k];
        base[i] = hi;
        upper.push(`${x(s.start).toFixed(1)},${y(hi).toFixed(1)}`, `${x(s.end).toFixed(1)},${y(hi).toFixed(1)}`);
        lower.push(`${x(s.start).toFixed(1)},${y(lo).toFixed(1)}`, `${x(s.end).toFixed(1)},${y(lo).toFixed(1)}`);
      });
      areas.append(el("polygon", { points: [...upper, ...lower.reverse()].join(" "), fill: classColour(c, classes),
        "data-class": c }));
    }
  }
  svg.append(areas);
  // the top class over time: a band with the class's name where there is room
  const band = el("g", { class: "top-band" });
  for (const r of topRuns(segs, model, classes)) {
    const x0 = x(r.start), x1 = x(r.end);
    const rect = el("rect", { x: x0.toFixed(1), y: bandTop, width: Math.max(0.5, x1 - x0).toFixed(1), height: bandH,
      fill: classColour(r.cls, classes), "data-class": r.cls });
    rect.append(el("title", {}, `${r.cls}: ${r.start.toFixed(2)}–${r.end.toFixed(2)} s`));
    band.append(rect);
    if (x1 - x0 > 7.5 * r.cls.length + 6) {
      band.append(el("text", { x: ((x0 + x1) / 2).toFixed(1), y: bandTop + 14, "text-anchor": "middle",
        class: "band-label" }, r.cls));
    }
  }
  svg.append(band);
  // axes: probability (0, 50, 100 %) and time in seconds
  const axes = el("g", { class: "axes" });
  for (const p of [0, 0.5, 1]) {
    axes.append(el("line", { x1: left - 4, x2: W - right, y1: y(p), y2: y(p), class: p === 0 ? "axis" : "grid" }));
    axes.append(el("text", { x: left - 6, y: y(p) + 4, "text-anchor": "end" }, `${Math.round(100 * p)}%`));
  }
  const tick = niceStep(end, Math.max(2, Math.floor((W - left - right) / 70)));
  for (let t = 0; t <= end + 1e-9; t += tick) {
    axes.append(el("line", { x1: x(t), x2: x(t), y1: axisY, y2: axisY + 4, class: "axis" }));
    const anchor = t === 0 ? "start" : x(t) > W - right - 20 ? "end" : "middle";
    axes.append(el("text", { x: x(t), y: axisY + 16, "text-anchor": anchor }, `${timeLabel(t, tick)}${tick >= 60 && t >= 60 ? "" : " s"}`));
  }
  svg.append(axes);
  const marker = el("line", { class: "marker", x1: 0, x2: 0, y1: bandTop, y2: axisY, visibility: "hidden" });
  svg.append(marker);
  svg.showAt = (t) => {
    if (t === null || t === undefined) { marker.setAttribute("visibility", "hidden"); return; }
    marker.setAttribute("x1", x(t));
    marker.setAttribute("x2", x(t));
    marker.setAttribute("visibility", "visible");
  };
  svg.timeAt = (px) => Math.min(end, Math.max(0, ((px - left) * end) / (W - left - right)));
  svg.rowAt = (t) => {
    const s = segs.find((g) => t >= g.start && t < g.end);
    return s ? s.row : null;
  };
  svg.showAt(at);
  return svg;
}
