// The in-browser page: a photo (file or camera) -> faces (MTCNN) -> each chosen model's probabilities, the STN's
// view with the quadrilateral it samples, and the paper's occlusion map with the user's window and stride.
// Everything runs here with onnxruntime-web; nothing is sent anywhere.

import { argmax, classify, checkWindow, occlusion, SIZE, stnQuad } from "./analysis.js";
import { cropFace, faceTurn, findFaces, grey, looksLikeFaceCrop, planar, resizeGrey, squareInPhoto } from "./framing.js";
import { readPhoto } from "./images.js";
import { colourBar, drawBoxes, drawOutline, drawOverlay, greyCanvas, mapScale, setColourMaps } from "./render.js";

const ort = globalThis.ort;
ort.env.wasm.wasmPaths = new URL("../ort/", import.meta.url).href;
ort.env.wasm.numThreads = globalThis.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;

const $ = (id) => document.getElementById(id);
const MAPS = {
  flip: { title: "Occlusion: label flips (the paper's map)", unit: "label flips", signed: false,
    about: "How many occluding windows over each pixel change the predicted emotion." },
  drop: { title: "Occlusion: probability drop (= Captum Occlusion)", unit: "fall of p(class)", signed: true,
    about: "The fall of the predicted class's probability when a window hides the pixel, averaged over the windows (exactly Captum's Occlusion on the softmax). Red: evidence for the class; blue: against it." },
};
const FACE_PX = 240;

// photoRun: the photo being read and searched; analysisRun: the analysis being computed. A newer one of either
// supersedes an older one of the same kind; the photo and its faces are replaced together.
const state = { index: null, sessions: new Map(), nets: null, photo: null, faces: [], face: 0, crop: null,
  results: new Map(), photoRun: 0, analysisRun: 0, whole: false };

function status(text, busy = true) {
  $("status").textContent = text;
  $("status").classList.toggle("busy", busy && !!text);
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

async function session(file) {
  if (!state.sessions.has(file)) {
    const created = ort.InferenceSession.create(new URL(`../models/${file}`, import.meta.url).href,
      { executionProviders: ["wasm"] });
    created.catch(() => state.sessions.delete(file)); // a failed load is tried again next time
    state.sessions.set(file, created);
  }
  try {
    return await state.sessions.get(file);
  } catch (e) {
    throw new Error(`The model file ${file} could not be loaded (${e.message || e}). Reload the page to try again.`);
  }
}

async function nets() {
  const m = state.index.mtcnn;
  const [pnet, rnet, onet] = await Promise.all([session(m.pnet), session(m.rnet), session(m.onet)]);
  return { pnet, rnet, onet };
}

function chosenModels() {
  return state.index.models.filter((m) => $(`model-${m.name}`)?.checked);
}

function controls() {
  const window = Number($("window").value), stride = Number($("stride").value);
  checkWindow(window, stride);
  return { window, stride, map: $("map").value };
}

function buildControls() {
  const box = $("models");
  for (const m of state.index.models) {
    const label = document.createElement("label");
    const input = Object.assign(document.createElement("input"), { type: "checkbox", id: `model-${m.name}`,
      checked: state.index.default_models.includes(m.name) });
    input.addEventListener("change", () => analyse());
    label.append(input, ` ${m.name} `);
    const note = document.createElement("small");
    note.textContent = `${m.dataset}, test accuracy ${(100 * m.test_accuracy).toFixed(1)} %`;
    label.append(note);
    box.append(label);
  }
  for (const id of ["window", "stride"]) {
    $(id).addEventListener("input", () => { $(`${id}-value`).textContent = $(id).value; });
    $(id).addEventListener("change", () => analyse());
  }
  $("map").addEventListener("change", () => { if (state.photo && state.faces.length) render(); });
  $("file").addEventListener("change", (e) => e.target.files[0] && usePhoto(e.target.files[0]));
  $("camera").addEventListener("change", (e) => e.target.files[0] && usePhoto(e.target.files[0]));
  $("example").addEventListener("click", async () => {
    const blob = await (await fetch(new URL("../example.jpg", import.meta.url))).blob();
    usePhoto(new File([blob], "example.jpg", { type: blob.type }));
  });
  $("face").addEventListener("change", () => { state.face = Number($("face").value); state.crop = null; analyse(); });
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
    if (!faces.length) {
      if (looksLikeFaceCrop(g, state.index.framing)) {
        whole = true;
        faces.push({ box: [0, 0, photo.canvas.width, photo.canvas.height], probability: 1, detected: false });
      }
    }
    Object.assign(state, { photo: { ...photo, name: file.name, grey: g }, faces, face: 0, whole, crop: null });
    state.results.clear();
    const picker = $("face");
    picker.innerHTML = "";
    faces.forEach((f, i) => picker.append(new Option(`face ${i + 1}`, i)));
    $("face-row").hidden = faces.length < 2;
    if (!faces.length) {
      drawPhoto([]);
      $("cards").innerHTML = "";
      $("results").classList.remove("stale");
      status("", false);
      showError("No face was found in this photo. Try one where the face is larger, lit from the front and upright.");
      return;
    }
    await analyse();
  } catch (e) {
    if (run !== state.photoRun) return;
    status("", false);
    showError(e.message || String(e));
  }
}

function drawPhoto(labels) {
  const c = $("photo");
  drawBoxes(c, state.photo.canvas, state.faces, labels, state.face, c.clientWidth || 600);
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
  $("results").classList.add("stale");
  const face = state.faces[state.face];
  // made once per photo and face (the grey photo once per photo): a face MTCNN found, its square; the whole
  // picture read as a face, all of it squeezed to 48x48 (as Python)
  const g = state.photo.grey;
  state.crop = state.crop || (face.detected === false ? resizeGrey(g, SIZE, SIZE).data
    : cropFace(g, face.box, state.index.framing.margin, faceTurn(face.landmarks, state.index.framing)));
  const models = chosenModels();
  if (!models.length) {
    status("", false);
    showError("Pick at least one model.");
    return;
  }
  const t0 = performance.now();
  for (const [i, m] of models.entries()) {
    if (run !== state.analysisRun) return;
    status(`${m.name}: loading the model (${i + 1} of ${models.length})…`);
    const s = await session(m.file);
    const key = m.name;
    let r = state.results.get(key);
    if (r && r.crop === state.crop && r.window === opts.window && r.stride === opts.stride) continue; // done
    if (!r || r.crop !== state.crop) { // classification depends on the crop alone
      r = { crop: state.crop, ...(await classify(s, state.crop)) };
    }
    status(`${m.name}: occlusion map (${i + 1} of ${models.length})…`);
    const maps = await occlusion(s, state.crop, opts.window, opts.stride, null, (done, total) => {
      if (run === state.analysisRun) status(`${m.name}: occlusion map, ${done} of ${total} windows (${i + 1} of ${models.length} models)…`);
    }, r.probabilities);
    if (run !== state.analysisRun) return;
    state.results.set(key, { ...r, maps, window: opts.window, stride: opts.stride });
  }
  const ms = performance.now() - t0;
  render();
  status(`${state.photo.name}: face ${state.face + 1} of ${state.faces.length} explained by ${models.length} model(s) in ${(ms / 1000).toFixed(1)} s.`, false);
}

/** The face's square of the photo at FACE_PX pixels, turned upright as its crop is (the maps go over it). */
function faceSquare() {
  const { canvas } = state.photo;
  const face = state.faces[state.face];
  const c = document.createElement("canvas");
  c.width = c.height = FACE_PX;
  const ctx = c.getContext("2d");
  if (face.detected === false) {
    ctx.drawImage(canvas, 0, 0, canvas.width, canvas.height, 0, 0, FACE_PX, FACE_PX);
    return c;
  }
  const angle = faceTurn(face.landmarks, state.index.framing);
  const [cx, cy, side] = squareInPhoto(face.box, canvas.width, canvas.height, state.index.framing.margin, angle);
  ctx.translate(FACE_PX / 2, FACE_PX / 2);
  ctx.scale(FACE_PX / side, FACE_PX / side);
  ctx.rotate((angle * Math.PI) / 180); // clockwise on the screen: the tilted face comes upright
  ctx.translate(-cx, -cy);
  ctx.drawImage(canvas, 0, 0);
  return c;
}

function render() {
  const models = chosenModels().filter((m) => state.results.has(m.name));
  const map = $("map").value;
  const spec = MAPS[map];
  const face = faceSquare();
  // one colour scale per map type, shared by the models shown
  const limit = Math.max(...models.map((m) => {
    const v = state.results.get(m.name).maps[map];
    return v.reduce((a, x) => Math.max(a, spec.signed ? Math.abs(x) : x), 0);
  }), 0);
  const scale = mapScale([], spec.signed, limit > 0 ? limit : 1);
  const labels = state.faces.map((_, i) => (i === state.face && models.length
    ? state.index.models.find((m) => m.name === models[0].name).classes[argmax(state.results.get(models[0].name).probabilities)] : ""));
  drawPhoto(labels);
  $("map-about").textContent = spec.about;
  const cards = $("cards");
  cards.innerHTML = "";
  if (state.whole) {
    const w = document.createElement("p");
    w.className = "warning";
    w.textContent = "No face was detected; the whole picture was read as one face crop.";
    cards.append(w);
  }
  for (const m of models) {
    const r = state.results.get(m.name);
    const card = document.createElement("article");
    card.className = "card";
    const top = argmax(r.probabilities);
    card.innerHTML = `<h3>${m.name}</h3><p class="top">${m.classes[top]} <b>${(100 * r.probabilities[top]).toFixed(0)} %</b></p>`;
    const bars = document.createElement("div");
    bars.className = "bars";
    m.classes.forEach((c, k) => {
      const row = document.createElement("div");
      row.className = "bar-row" + (k === top ? " top" : "");
      row.innerHTML = `<span>${c}</span><span class="track"><span style="width:${(100 * r.probabilities[k]).toFixed(1)}%"></span></span><span>${(100 * r.probabilities[k]).toFixed(1)}</span>`;
      bars.append(row);
    });
    card.append(bars);
    const views = document.createElement("div");
    views.className = "views";
    const mapFig = document.createElement("figure");
    mapFig.className = "map-figure";
    const overlay = document.createElement("canvas");
    overlay.width = overlay.height = FACE_PX;
    overlay.className = "map";
    drawOverlay(overlay, face, r.maps[map], SIZE, scale);
    mapFig.append(overlay, colourBar(scale, spec.unit, FACE_PX));
    const cap = document.createElement("figcaption");
    cap.textContent = `${spec.title}, window ${r.window}, stride ${r.stride}`;
    mapFig.append(cap);
    const stnFig = document.createElement("figure");
    const att = document.createElement("canvas");
    att.width = att.height = FACE_PX;
    att.className = "map";
    att.getContext("2d").drawImage(face, 0, 0);
    drawOutline(att, stnQuad(r.theta), SIZE);
    const view = greyCanvas(r.view, SIZE, FACE_PX);
    view.className = "map";
    stnFig.append(att, view);
    const stnCap = document.createElement("figcaption");
    stnCap.textContent = "The spatial transformer: the area it samples (outline) and what the classifier sees";
    stnFig.append(stnCap);
    views.append(mapFig, stnFig);
    card.append(views);
    cards.append(card);
  }
  $("results").classList.remove("stale");
}

async function start() {
  try {
    status("Loading…");
    state.index = await (await fetch(new URL("../models/models.json", import.meta.url))).json();
    setColourMaps(state.index.colour_maps);
    buildControls();
    status("", false);
  } catch (e) {
    showError(`The page could not load its models: ${e.message || e}`);
  }
}

// for tests and benchmarks: the same functions the page uses, on data given directly
globalThis.deepEmotion = {
  ready: start(),
  async mtcnn(rgba, width, height) {
    const { detect } = await import("./mtcnn.js");
    return detect(await nets(), planar(new ImageData(new Uint8ClampedArray(rgba), width, height)));
  },
  async detect(rgba, width, height) {
    const c = Object.assign(document.createElement("canvas"), { width, height });
    c.getContext("2d").putImageData(new ImageData(new Uint8ClampedArray(rgba), width, height), 0, 0);
    return findFaces(await nets(), c, state.index.framing);
  },
  async analyzeCrop(crop, name, window = 8, stride = 2) {
    const m = state.index.models.find((x) => x.name === name);
    const s = await session(m.file);
    const c = Uint8Array.from(crop);
    const r = await classify(s, c);
    const maps = await occlusion(s, c, window, stride);
    return { probabilities: r.probabilities, theta: r.theta, view: Array.from(r.view), flip: Array.from(maps.flip),
      drop: Array.from(maps.drop) };
  },
  cropFace(rgba, width, height, box, landmarks = null) {
    const g = grey(new ImageData(new Uint8ClampedArray(rgba), width, height));
    return Array.from(cropFace(g, box, state.index.framing.margin, faceTurn(landmarks, state.index.framing)));
  },
};
