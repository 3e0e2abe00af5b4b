// The in-browser page: a photo (file or camera) -> faces (MTCNN) -> every face read by each chosen model, and for
// the face picked: each model's probabilities, the STN's view with the quadrilateral it samples, the paper's
// occlusion maps with the user's window and stride or the facial regions blurred, how faithful each map is, and
// the models' combined answer. The video and live tabs are loaded when first opened (video.js, live.js).
// Everything runs here with onnxruntime-web; nothing is sent anywhere.

import { argmax, checkWindow, classify, classifyBatch, occlusion, SIZE } from "./analysis.js";
import { comparison, consensusLine, DATASETS, gallery, modelCard } from "./cards.js";
import * as explain from "./explain.js";
import { cropFace, faceSquare, faceTurn, findFaces, grey, looksLikeFaceCrop, resizeGrey } from "./framing.js";
import { hooks } from "./hooks.js";
import { readPhoto } from "./images.js";
import { drawBoxes, mapScale, setColourMaps } from "./render.js";
import { backendLine, init, modelInfo, nets, runtime, session } from "./runtime.js";

const $ = (id) => document.getElementById(id);
const MAPS = {
  flip: { title: "Occlusion: label flips (the paper's map)", unit: "label flips", signed: false, occlusion: true,
    about: "How many occluding windows over each pixel change the predicted emotion." },
  drop: { title: "Occlusion: probability drop (= Captum Occlusion)", unit: "fall of p(class)", signed: true, occlusion: true,
    about: "The fall of the predicted class's probability when a window hides the pixel, averaged over the windows (exactly Captum's Occlusion on the softmax). Red: evidence for the class; blue: against it." },
  regions: { title: "Facial regions blurred", unit: "fall of p(class)", signed: true, occlusion: false,
    about: "Eyes, brows, nose and mouth, placed from the five landmarks MTCNN finds, each blurred in turn: the fall of the predicted class's probability, painted over the region. Red: the region speaks for the class." },
};
const FACE_PX = 240;
const THUMB_PX = 72;
const NUMBERS_ONLY = 6; // more faces than this: boxes carry their number only (the gallery has the labels)

// photoRun: the photo being read and searched; analysisRun: the analysis being computed. A newer one of either
// supersedes an older one of the same kind; the photo and its faces are replaced together.
const state = { index: null, photo: null, faces: [], crops: [], thumbs: [], face: 0, whole: false,
  read: new Map(), results: new Map(), photoRun: 0, analysisRun: 0 };

/** describe.py's lower-case phrase as a sentence of its own. */
const asSentence = (phrase) => `${phrase.charAt(0).toUpperCase()}${phrase.slice(1)}.`;

function status(text, busy = true) {
  $("status").textContent = text;
  $("status").classList.toggle("busy", busy && !!text);
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

function chosenModels() {
  return state.index.models.filter((m) => $(`model-${m.name}`)?.checked);
}

function controls() {
  const window = Number($("window").value), stride = Number($("stride").value);
  checkWindow(window, stride);
  return { window, stride, map: $("map").value };
}

// Everything the video and live panels share with the photo panel: the engine, the chosen models, the tabs.
const listeners = { models: [], tab: [] };
const page = {
  runtime, session, nets,
  chosenModels: () => chosenModels(),
  onModelsChange: (f) => listeners.models.push(f),
  onTab: (f) => listeners.tab.push(f), // f(name of the tab now shown: "photo", "video" or "live")
  currentTab: () => document.querySelector('[role="tab"][aria-selected="true"]').id.slice(4),
  async showPhoto(blob, name) { // a picture from another tab (a video's frame), explained as a photo
    await showTab("photo");
    await usePhoto(new File([blob], name, { type: blob.type }));
  },
};
const mounted = new Set();

async function showTab(name) {
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    const on = tab.id === `tab-${name}`;
    tab.setAttribute("aria-selected", String(on));
    $(tab.getAttribute("aria-controls")).hidden = !on;
  }
  for (const e of document.querySelectorAll("[data-tab]")) e.hidden = e.dataset.tab !== name;
  if (name !== "photo" && !mounted.has(name)) {
    mounted.add(name);
    const module = await import(name === "video" ? "./video.js" : "./live.js");
    module.mount($(`${name}-panel`), page);
  }
  if (name === "photo" && state.stale) {
    state.stale = false;
    analyse();
  }
  listeners.tab.forEach((f) => f(name));
}

function buildControls() {
  const box = $("models");
  for (const m of state.index.models) {
    const input = Object.assign(document.createElement("input"), { type: "checkbox", id: `model-${m.name}`,
      checked: state.index.default_models.includes(m.name) });
    input.addEventListener("change", () => {
      showChosen();
      if (page.currentTab() === "photo") analyse();
      else state.stale = true; // the photo is explained again when its tab is shown
      listeners.models.forEach((f) => f(chosenModels()));
    });
    const name = Object.assign(document.createElement("span"), { className: "name", textContent: m.name });
    const note = Object.assign(document.createElement("small"), {
      textContent: `${DATASETS[m.dataset] || m.dataset} · test accuracy ${(100 * m.test_accuracy).toFixed(1)} %` });
    const label = Object.assign(document.createElement("label"), { className: "model", htmlFor: input.id });
    label.append(input, name, note);
    box.append(label);
  }
  showChosen();
  if (matchMedia("(max-width: 760px)").matches) $("models-box").open = false; // on a phone: one line until opened
  for (const id of ["window", "stride"]) {
    $(id).addEventListener("input", () => { $(`${id}-value`).textContent = $(id).value; });
    $(id).addEventListener("change", () => analyse());
  }
  $("faithful").addEventListener("change", () => analyse());
  $("map").addEventListener("change", () => {
    const occl = MAPS[$("map").value].occlusion;
    for (const id of ["window", "stride"]) $(id).disabled = !occl;
    if (state.photo && state.faces.length && state.results.size) render(controls());
  });
  $("file").addEventListener("change", (e) => e.target.files[0] && usePhoto(e.target.files[0]));
  $("camera").addEventListener("change", (e) => e.target.files[0] && usePhoto(e.target.files[0]));
  $("example").addEventListener("click", async () => {
    const blob = await (await fetch(new URL("../example.jpg", import.meta.url))).blob();
    usePhoto(new File([blob], "example.jpg", { type: blob.type }));
  });
  $("photo").addEventListener("click", (e) => { // a click on a face's box picks that face
    const c = $("photo");
    const k = c.width / c.clientWidth;
    const [x, y] = [e.offsetX * k, e.offsetY * k];
    const hit = state.faces.findIndex((f) => x >= f.box[0] && x <= f.box[2] && y >= f.box[1] && y <= f.box[3]);
    if (hit >= 0) pickFace(hit);
  });
}

function showChosen() {
  const names = chosenModels().map((m) => m.name);
  $("models-chosen").textContent = names.length ? names.join(", ") : "none chosen";
}

function pickFace(i) {
  if (i === state.face) return;
  state.face = i;
  state.results.clear();
  analyse();
}

async function usePhoto(file) {
  const run = ++state.photoRun;
  state.analysisRun++; // whatever was being computed belongs to the previous photo
  showError("");
  $("results").classList.add("stale");
  status(`Reading ${file.name}…`);
  try {
    const photo = await readPhoto(file, state.index.framing.detect_max_side);
    if (run !== state.photoRun) return;
    status("Finding faces…");
    const faces = await findFaces(await nets(), photo.canvas, state.index.framing);
    if (run !== state.photoRun) return;
    let whole = false;
    const g = grey(photo.canvas.getContext("2d").getImageData(0, 0, photo.canvas.width, photo.canvas.height));
    if (!faces.length && looksLikeFaceCrop(g, state.index.framing)) {
      whole = true;
      faces.push({ box: [0, 0, photo.canvas.width, photo.canvas.height], probability: 1, detected: false });
    }
    Object.assign(state, { photo: { ...photo, name: file.name, grey: g }, faces, face: 0, whole });
    // made once per photo (a face MTCNN found: its square; the whole picture read as a face: all of it, as Python)
    state.crops = faces.map((f) => (f.detected === false ? resizeGrey(g, SIZE, SIZE).data
      : cropFace(g, f.box, state.index.framing.margin, faceTurn(f.landmarks, state.index.framing))));
    state.thumbs = faces.map((f) => faceSquare(photo.canvas, f, state.index.framing, THUMB_PX));
    state.read.clear();
    state.results.clear();
    if (!faces.length) {
      drawPhoto();
      $("gallery").hidden = true;
      for (const id of ["cards", "summary", "map-about"]) $(id).replaceChildren();
      $("results").classList.remove("stale");
      status("", false);
      showError("No face was found in this photo. Try one where the face is larger, lit from the front and upright.");
      return;
    }
    await readAllFaces();
    if (run !== state.photoRun) return;
    await analyse();
  } catch (e) {
    if (run !== state.photoRun) return;
    status("", false);
    $("results").classList.remove("stale");
    showError(e.message || String(e));
  }
}

/** Every face through every chosen model (one batched run per model; kept per photo): the gallery's and boxes' labels. */
async function readAllFaces() {
  for (const m of chosenModels()) {
    if (state.read.has(m.name)) continue;
    status(`${m.name}: reading ${state.crops.length} face(s)…`);
    state.read.set(m.name, await classifyBatch(await session(m.file), state.crops));
  }
}

/** The label each face gets: the consensus' top class with two models or more, else the one model's. */
function faceLabels(models) {
  return state.faces.map((_, i) => {
    if (!models.length || !models.every((m) => state.read.has(m.name))) return "";
    const probs = Object.fromEntries(models.map((m) => [m.name, state.read.get(m.name)[i].probabilities]));
    const together = combined(models, probs);
    if (together) return together.classes[argmax(together.probabilities)];
    return models[0].classes[argmax(probs[models[0].name])];
  });
}

/** The chosen models' consensus ({classes, probabilities}) from {model: probabilities}; null for one model. */
function combined(models, probs) {
  if (models.length < 2) return null;
  return explain.consensus(probs, models, state.index.consensus);
}

function drawPhoto(labels = []) {
  const c = $("photo");
  const many = state.faces.length > NUMBERS_ONLY;
  drawBoxes(c, state.photo.canvas, state.faces, many ? [] : labels, state.face, c.clientWidth || 600);
}

/** Classify the chosen face with every chosen model and compute its maps (or only the maps). */
async function analyse() {
  try {
    await analyseFace();
  } catch (e) {
    status("", false);
    $("results").classList.remove("stale");
    showError(e.message || String(e));
  }
}

async function analyseFace() {
  if (!state.photo || !state.faces.length) return;
  const run = ++state.analysisRun;
  let opts;
  try {
    opts = controls();
  } catch (e) {
    showError(e.message);
    return;
  }
  showError("");
  const models = chosenModels();
  if (!models.length) {
    status("", false);
    showError("Pick at least one model.");
    return;
  }
  $("results").classList.add("stale");
  status(`Explaining face ${state.face + 1} of ${state.faces.length}…`);
  await readAllFaces();
  const crop = state.crops[state.face];
  const face = state.faces[state.face];
  const t0 = performance.now();
  for (const [i, m] of models.entries()) {
    if (run !== state.analysisRun) return;
    const key = resultKey(m, opts);
    if (state.results.has(key)) continue;
    status(`${m.name}: loading the model (${i + 1} of ${models.length})…`);
    const s = await session(m.file);
    const r = state.read.get(m.name)[state.face];
    const maps = await occlusion(s, crop, opts.window, opts.stride, null, (done, total) => {
      if (run === state.analysisRun) status(`${m.name}: occlusion map, ${done} of ${total} windows (${i + 1} of ${models.length} models)…`);
    }, r.probabilities);
    // the facial regions: a few passes more, so that the maps can be compared
    const lm = face.detected === false || !face.landmarks ? null
      : explain.landmarksInCrop(face.landmarks, face.box, state.photo.canvas.width, state.photo.canvas.height,
        state.index.framing.margin, faceTurn(face.landmarks, state.index.framing));
    const reg = await explain.regions(s, crop, lm, null, r.probabilities);
    Object.assign(maps, { regions: reg.map, scores: reg.scores, own: reg.own, note: reg.note });
    if (run !== state.analysisRun) return;
    state.results.set(key, { ...r, maps, window: opts.window, stride: opts.stride });
  }
  const ms = performance.now() - t0;
  render(opts);
  status(`${state.photo.name}: face ${state.face + 1} of ${state.faces.length} explained by ${models.length} model(s) in ${(ms / 1000).toFixed(1)} s.`, false);
  rankMaps(run, models, opts);
}

function resultKey(m, opts) {
  return `${m.name}|${opts.window}/${opts.stride}`;
}

function render(opts) {
  const models = chosenModels().filter((m) => state.results.has(resultKey(m, opts)));
  const spec = MAPS[opts.map];
  const face = faceSquare(state.photo.canvas, state.faces[state.face], state.index.framing, FACE_PX);
  const values = (m) => state.results.get(resultKey(m, opts)).maps[opts.map];
  // one colour scale per map type, shared by the models shown
  const limit = Math.max(0, ...models.map((m) => values(m).reduce((a, x) => Math.max(a, spec.signed ? Math.abs(x) : x), 0)));
  const scale = mapScale([], spec.signed, limit > 0 ? limit : 1);
  const labels = faceLabels(chosenModels());
  drawPhoto(labels);
  gallery($("gallery"), state.thumbs, labels, state.face, pickFace);
  const results = new Map(models.map((m) => [m.name, state.results.get(resultKey(m, opts))]));
  const summary = $("summary");
  summary.replaceChildren();
  if (state.whole) {
    const w = Object.assign(document.createElement("p"), { className: "warning",
      textContent: "No face was detected; the whole picture was read as one face crop." });
    summary.append(w);
  }
  if (models.length > 1) {
    const probs = Object.fromEntries(models.map((m) => [m.name, results.get(m.name).probabilities]));
    const together = combined(models, probs);
    summary.append(consensusLine(together), comparison(models, results, together));
  }
  $("map-about").textContent = spec.about;
  const cards = $("cards");
  cards.replaceChildren();
  for (const m of models) {
    const r = results.get(m.name);
    const caption = spec.occlusion ? `${spec.title}, window ${r.window}, stride ${r.stride}`
      : `${spec.title}${r.maps.own === false ? " (typical landmark positions: this face has none of its own)" : ""}`;
    const card = modelCard(m, r, face, spec, values(m), scale, caption, FACE_PX);
    const notes = card.querySelector(".notes");
    if (r.maps.scores) {
      const line = explain.regionSentence({ scores: r.maps.scores, note: r.maps.note }, m.classes[argmax(r.probabilities)]);
      notes.append(Object.assign(document.createElement("span"), { textContent: asSentence(line) }));
    }
    if (r.faithful) {
      notes.append(Object.assign(document.createElement("span"), { className: "faithful",
        textContent: asSentence(r.faithful.sentence) }));
    }
    cards.append(card);
  }
  $("results").classList.remove("stale");
}

/** After the maps are shown: each model's maps ranked by faithfulness (deletion and insertion, against a random
 * map), one sentence per card. */
async function rankMaps(run, models, opts) {
  if (!$("faithful").checked) return;
  for (const [i, m] of models.entries()) {
    if (run !== state.analysisRun) return;
    const r = state.results.get(resultKey(m, opts));
    if (!r) continue;
    if (!r.faithful) {
      status(`${m.name}: ranking the maps by faithfulness (${i + 1} of ${models.length} models)…`);
      const s = await session(m.file);
      const maps = Object.fromEntries(Object.keys(MAPS).filter((k) => r.maps[k]).map((k) => [k, r.maps[k]]));
      const scores = await explain.faithfulnessAll(s, state.crops[state.face], maps, argmax(r.probabilities));
      r.faithful = explain.rankMaps(scores, (k) => MAPS[k].title);
    }
    if (run !== state.analysisRun) return;
    const notes = document.querySelector(`#cards .card[data-model="${CSS.escape(m.name)}"] .notes`);
    if (notes && !notes.querySelector(".faithful")) {
      notes.append(Object.assign(document.createElement("span"), { className: "faithful",
        textContent: asSentence(r.faithful.sentence) }));
    }
  }
  if (run === state.analysisRun) status(`${state.photo.name}: face ${state.face + 1} of ${state.faces.length} explained by ${models.length} model(s); maps ranked.`, false);
}

async function start() {
  try {
    status("Loading…");
    await init();
    state.index = runtime.index;
    $("backend").textContent = backendLine();
    setColourMaps(state.index.colour_maps);
    buildControls();
    for (const tab of document.querySelectorAll('[role="tab"]')) tab.addEventListener("click", () => showTab(tab.id.slice(4)));
    const wanted = new URLSearchParams(location.search).get("tab");
    await showTab(["video", "live"].includes(wanted) ? wanted : "photo");
    status("", false);
  } catch (e) {
    status("", false);
    showError(`The page could not load its models: ${e.message || e}`);
  }
}

// for tests and benchmarks: the same functions the page uses, on data given directly
globalThis.deepEmotion = {
  ...hooks,
  ready: start(),
  runtime,
  async mtcnn(rgba, width, height) {
    const { detect } = await import("./mtcnn.js");
    return detect(await nets(), { data: new Uint8ClampedArray(rgba), width, height });
  },
  async detect(rgba, width, height) {
    const c = Object.assign(document.createElement("canvas"), { width, height });
    c.getContext("2d", { willReadFrequently: true }).putImageData(new ImageData(new Uint8ClampedArray(rgba), width, height), 0, 0);
    return findFaces(await nets(), c, state.index.framing);
  },
  async analyzeCrop(crop, name, window = 8, stride = 2) {
    const s = await session(modelInfo(name).file);
    const c = Uint8Array.from(crop);
    const r = await classify(s, c);
    const maps = await occlusion(s, c, window, stride, null, null, r.probabilities);
    return { probabilities: r.probabilities, theta: r.theta, view: Array.from(r.view), flip: Array.from(maps.flip),
      drop: Array.from(maps.drop) };
  },
  cropFace(rgba, width, height, box, landmarks = null) {
    const g = grey(new ImageData(new Uint8ClampedArray(rgba), width, height));
    return Array.from(cropFace(g, box, state.index.framing.margin, faceTurn(landmarks, state.index.framing)));
  },
};
