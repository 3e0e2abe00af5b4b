// The photo panel's pieces, built as DOM from results already computed: the face gallery under a group photo,
// the comparison grid (every model's probabilities side by side, the consensus on top), and one card per model
// (its probabilities, the map over the face, the spatial transformer's view).

import { argmax, SIZE, stnQuad } from "./analysis.js";
import { colourBar, drawOutline, drawOverlay, greyCanvas } from "./render.js";

const el = (tag, props = {}, ...children) => {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
};
export const DATASETS = { fer2013: "FER2013", ferplus: "FERPlus", ckplus: "CK+", jaffe: "JAFFE" };
const pct = (p, digits = 0) => `${(100 * p).toFixed(digits)} %`;

/** Thumbnails of every face, each with its number and top class; `pick(i)` when one is chosen. */
export function gallery(box, thumbs, labels, selected, pick) {
  box.replaceChildren();
  box.hidden = thumbs.length < 2;
  thumbs.forEach((canvas, i) => {
    const item = el("button", { type: "button", className: "thumb" + (i === selected ? " selected" : ""),
      title: `Face ${i + 1}${labels[i] ? `: ${labels[i]}` : ""}` });
    item.setAttribute("role", "option");
    item.setAttribute("aria-selected", String(i === selected));
    item.append(canvas, el("span", { textContent: `${i + 1}` }), el("small", { textContent: labels[i] || "" }));
    item.addEventListener("click", () => pick(i));
    box.append(item);
  });
}

/** Rows: models (and the consensus first, when given); columns: the classes any of them knows. */
export function comparison(models, results, consensus) {
  const classes = [];
  for (const m of models) for (const c of m.classes) if (!classes.includes(c)) classes.push(c);
  if (consensus) for (const c of consensus.classes) if (!classes.includes(c)) classes.push(c);
  const table = el("table", { className: "comparison" });
  table.append(el("caption", { textContent: "Every chosen model's probabilities for this face (%)" }));
  const head = el("tr", {}, el("th", { textContent: "model" }), ...classes.map((c) => el("th", { textContent: c })));
  table.append(el("thead", {}, head));
  const body = el("tbody");
  const row = (name, cls, probs, className = "") => {
    const top = argmax(probs);
    const tr = el("tr", { className }, el("th", { textContent: name, scope: "row" }));
    for (const c of classes) {
      const k = cls.indexOf(c);
      const td = el("td", { textContent: k < 0 ? "–" : (100 * probs[k]).toFixed(0) });
      if (k >= 0) td.style.setProperty("--p", probs[k].toFixed(3));
      if (k === top) td.className = "top";
      if (k < 0) td.title = `${name} does not know ${c}`;
      tr.append(td);
    }
    body.append(tr);
  };
  if (consensus) row("together", consensus.classes, consensus.probabilities, "consensus");
  for (const m of models) row(m.name, m.classes, results.get(m.name).probabilities);
  table.append(body);
  return el("div", { className: "table-wrap" }, table);
}

/** The models' combined answer and whether they agree, in the words explain.consensus gives (describe.py's). */
export function consensusLine(consensus) {
  const p = el("p", { className: "agreement" + (consensus.agree ? "" : " disagree"), textContent: consensus.agreement });
  p.prepend(el("b", { textContent: `${consensus.sentence}. ` }));
  return p;
}

/** One model's card: top class, probability bars, the map over the face with its colour bar and caption, and the
 * spatial transformer's sampled area (outline, kept inside the picture) and view. */
export function modelCard(m, r, face, spec, mapValues, scale, caption, px) {
  const top = argmax(r.probabilities);
  const card = el("article", { className: "card" });
  card.dataset.model = m.name;
  card.append(el("h3", {}, m.name, el("small", { textContent: ` trained on ${DATASETS[m.dataset] || m.dataset}` })),
    el("p", { className: "top" }, `${m.classes[top]} `, el("b", { textContent: pct(r.probabilities[top]) })));
  const bars = el("div", { className: "bars" });
  m.classes.forEach((c, k) => {
    const track = el("span", { className: "track" }, el("span"));
    track.firstChild.style.width = `${(100 * r.probabilities[k]).toFixed(1)}%`;
    bars.append(el("div", { className: "bar-row" + (k === top ? " top" : "") }, el("span", { textContent: c }), track,
      el("span", { textContent: (100 * r.probabilities[k]).toFixed(1) })));
  });
  card.append(bars);
  const views = el("div", { className: "views" });
  const overlay = el("canvas", { width: px, height: px, className: "map" });
  overlay.setAttribute("role", "img");
  overlay.setAttribute("aria-label", caption);
  drawOverlay(overlay, face, mapValues, SIZE, scale);
  views.append(el("figure", { className: "map-figure" }, overlay, colourBar(scale, spec.unit, px),
    el("figcaption", { textContent: caption })));
  const att = el("canvas", { width: px, height: px, className: "map" });
  const ctx = att.getContext("2d");
  ctx.drawImage(face, 0, 0);
  ctx.save();
  ctx.beginPath();
  ctx.rect(0, 0, px, px);
  ctx.clip(); // the sampled area may reach past the face's square: the outline stops at the picture's edge
  drawOutline(att, stnQuad(r.theta), SIZE);
  ctx.restore();
  const view = greyCanvas(r.view, SIZE, px);
  view.className = "map";
  views.append(el("figure", { className: "stn-figure" }, el("div", { className: "pair" }, att, view),
    el("figcaption", { textContent: "The spatial transformer: the area it samples (outline) and what the classifier sees" })));
  card.append(views);
  const notes = el("p", { className: "notes" });
  card.append(notes);
  return card;
}
