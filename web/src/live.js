// The live camera: frames from getUserMedia, faces found on a small copy of each (as deep_emotion/video/live.py's
// LiveReader does), followed across frames with an id and a smoothed top class each, and the largest face's coarse
// occlusion map (probability drop, window 12, stride 6) refreshed a few times a second beside the picture.
// Frames are read only while the tab is shown and the page visible; they never leave the page. Every model run
// of the panel goes through one queue (ONNX Runtime Web sessions must not run concurrently) and a frame that
// arrives while the previous one is being read is skipped, so nothing piles up.

import { argmax, classifyBatch, occlusion, SIZE } from "./analysis.js";
import { cropFace, faceSquare, faceTurn, grey } from "./framing.js";
import { detect } from "./mtcnn.js";
import { colourBar, drawBoxes, drawOverlay, mapScale } from "./render.js";
import { FaceTracker, smoothingWeight } from "./tracking.js";

export const DETECT_SIDE = 320; // faces are found on a copy whose longer side is this (LIVE_DETECT_SIDE)
export const WINDOW = 12, STRIDE = 6; // the live map's coarse grid (LIVE_WINDOW, LIVE_STRIDE): 7 x 7 windows
export const HALF_LIFE = 0.5; // seconds: the smoothing of each face's probabilities (LIVE_HALF_LIFE)
export const MAP_EVERY = 0.5; // seconds between map refreshes (at most; a map waits for the frame being read)
const MAP_PX = 192;
const RATE_SPAN = 3; // seconds of history behind the rates shown
const FRAME_FAILED = "A camera frame could not be read:";

const MESSAGES = {
  insecure: "The camera can only be used on a secure page (an https:// address, or localhost). Open the page that way, or read a video file instead.",
  unsupported: "This browser does not give pages access to a camera. Try a recent Chrome, Edge, Firefox or Safari, or read a video file instead.",
  denied: "The camera is blocked for this page. To allow it, click the camera (or padlock) icon next to the address bar, choose Allow, and press Start camera again. On a phone, allow the camera for this browser in the system settings too.",
  missing: "No camera was found. Connect or switch on a camera and press Start camera again, or read a video file instead.",
  busy: "The camera could not be started: another app or browser tab may be using it. Close that app or tab and press Start camera again.",
  framed: "This page is shown inside another page, which may not let it use the camera: open it on its own (its direct address) and try again.",
  ended: "The camera stopped sending pictures (it may have been unplugged or taken by another app). Press Start camera to try again.",
};

function framed() {
  try {
    return globalThis.top !== globalThis.self;
  } catch {
    return true; // a cross-origin parent
  }
}

/** The message for a getUserMedia failure. */
export function cameraMessage(error) {
  switch (error && error.name) {
    case "NotAllowedError":
    case "PermissionDeniedError":
    case "SecurityError":
      return framed() ? `${MESSAGES.denied} ${MESSAGES.framed}` : MESSAGES.denied;
    case "NotFoundError":
    case "DevicesNotFoundError":
    case "OverconstrainedError":
      return MESSAGES.missing;
    case "NotReadableError":
    case "TrackStartError":
    case "AbortError":
      return MESSAGES.busy;
    default:
      return `The camera could not be started (${(error && error.message) || error}). Press Start camera to try again.`;
  }
}

function el(tag, props = {}, ...children) {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
}

function canvas2d(w = 1, h = 1) {
  const c = el("canvas", { width: w, height: h });
  return [c, c.getContext("2d", { willReadFrequently: true })];
}

/** Events per second over the last RATE_SPAN seconds of `times` (seconds, oldest first; trimmed in place). */
function rate(times, now) {
  while (times.length && now - times[0] > RATE_SPAN) times.shift();
  if (times.length < 2) return 0;
  const span = Math.max(now - times[0], 1e-3);
  return (times.length - 1) / span;
}

/** Probabilities of many 48x48 crops in one pass: an array of arrays. */
/** Build the live panel inside `panel`; `page`: the shared engine and controls (see app.js). */
export function mount(panel, page) {
  const rules = page.runtime.index.framing;
  const stats = { frames: 0, maps: 0, fps: 0, mapRate: 0, faces: [], state: "off", errors: 0 };
  globalThis.deepEmotionLive = stats;

  // --- the panel's parts
  const start = el("button", { type: "button", id: "live-start", textContent: "Start camera" });
  const stop = el("button", { type: "button", id: "live-stop", textContent: "Stop camera", disabled: true });
  const picker = el("select", { id: "live-model" });
  const pickerLabel = el("label", { className: "live-model" }, "Model ", picker);
  const message = el("p", { id: "live-message", role: "status" });
  const error = el("p", { id: "live-error", role: "alert", hidden: true });
  const video = el("video", { id: "live-video", muted: true, playsInline: true, autoplay: true });
  video.setAttribute("playsinline", "");
  video.setAttribute("aria-hidden", "true");
  const view = el("canvas", { id: "live-view", width: 640, height: 480 });
  view.setAttribute("aria-label", "The camera picture with each face's box, number and expression");
  const stage = el("div", { className: "live-stage" }, video, view);
  const fps = el("span", { id: "live-fps", textContent: "–" });
  const mapRate = el("span", { id: "live-map-rate", textContent: "–" });
  const facesLine = el("span", { id: "live-faces", textContent: "" });
  const rates = el("p", { className: "live-rates", id: "live-rates" },
    "Frames read ", fps, " per second · map refreshed ", mapRate, " per second", facesLine);
  const mapCanvas = el("canvas", { id: "live-map", className: "map", width: MAP_PX, height: MAP_PX });
  mapCanvas.setAttribute("aria-label", "Occlusion map of the largest face");
  const barSlot = el("div", { className: "live-bar" });
  const mapCaption = el("figcaption", { id: "live-map-caption" });
  const mapNote = el("p", { className: "live-map-note", textContent: "The largest face's occlusion map appears here." });
  const mapFigure = el("figure", { className: "live-map-figure", id: "live-map-figure" }, mapNote, mapCanvas, barSlot, mapCaption);
  mapCanvas.hidden = true;
  const about = el("p", { className: "live-about", textContent:
    "Each face gets a number that stays with it while it is in view, and its most likely expression, averaged over about half a second. Next to the picture, the largest face's occlusion map: how much hiding each spot (a 12-pixel square, moved 6 pixels at a time — coarser than the Photo tab's, to keep up with the camera) lowers the probability of its expression. The picture stays on this device." });
  const body = el("div", { className: "live-body", hidden: true }, el("div", { className: "live-left" }, stage, rates),
    mapFigure);
  panel.innerHTML = "";
  panel.classList.add("live");
  panel.append(
    el("div", { className: "live-controls" }, start, stop, pickerLabel),
    message, error,
    body,
    about,
  );

  // --- state
  const live = { run: 0, stream: null, wanted: false, paused: false, busy: null, callback: null,
    tracker: new FaceTracker(), last: new Map(), frameTimes: [], mapTimes: [], lastMap: -Infinity, presented: 0, read: -1 };
  const [frame, frameCtx] = canvas2d(640, 480);
  const [small, smallCtx] = canvas2d(DETECT_SIDE, 240);
  let queue = Promise.resolve();
  // one run at a time, shared with the rest of the page when app.js offers a queue
  const serial = page.serial || ((fn) => {
    const next = queue.then(fn, fn);
    queue = next.catch(() => {});
    return next;
  });

  const say = (text) => { message.textContent = text; };
  const fail = (text) => {
    error.textContent = text;
    error.hidden = !text;
  };
  const setState = (s) => {
    stats.state = s;
    panel.dataset.state = s;
    body.classList.toggle("paused", s === "paused");
    start.disabled = s === "starting" || s === "running";
    stop.disabled = s === "off";
  };
  setState("off");
  panel.dataset.frames = "0";
  panel.dataset.maps = "0";

  function modelEntry() {
    return page.chosenModels().find((m) => m.name === picker.value) || null;
  }

  function fillPicker() {
    const chosen = page.chosenModels();
    const keep = picker.value;
    picker.innerHTML = "";
    for (const m of chosen) picker.append(new Option(m.name, m.name));
    if (chosen.some((m) => m.name === keep)) picker.value = keep;
    picker.disabled = !chosen.length;
    if (!chosen.length) say("Pick a model on the left to read expressions.");
    else if (message.textContent.startsWith("Pick a model")) say(live.stream ? "" : "Press Start camera.");
    live.last.clear(); // smoothed probabilities belong to one model's classes
  }
  fillPicker();
  picker.addEventListener("change", () => live.last.clear());
  page.onModelsChange(() => fillPicker());

  function release() {
    if (live.callback != null) {
      if (video.cancelVideoFrameCallback) video.cancelVideoFrameCallback(live.callback);
      cancelAnimationFrame(live.callback);
      live.callback = null;
    }
    if (live.stream) for (const t of live.stream.getTracks()) t.stop();
    live.stream = null;
    video.srcObject = null;
  }

  function shownNow() {
    return page.currentTab() === "live" && document.visibilityState !== "hidden";
  }

  async function startCamera() {
    const run = ++live.run;
    fail("");
    live.wanted = true;
    live.paused = false;
    if (!globalThis.isSecureContext) {
      live.wanted = false;
      fail(MESSAGES.insecure);
      return;
    }
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      live.wanted = false;
      fail(MESSAGES.unsupported);
      return;
    }
    setState("starting");
    say("Asking for the camera…");
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
    } catch (e) {
      if (run !== live.run) return;
      live.wanted = false;
      setState("off");
      say("");
      fail(cameraMessage(e));
      return;
    }
    if (run !== live.run) { // stopped or paused meanwhile
      for (const t of stream.getTracks()) t.stop();
      return;
    }
    live.stream = stream;
    for (const t of stream.getVideoTracks()) {
      t.addEventListener("ended", () => {
        if (run !== live.run) return;
        stopCamera("");
        fail(MESSAGES.ended);
      });
    }
    video.srcObject = stream;
    try {
      await video.play();
    } catch (e) {
      if (run !== live.run) return;
      // autoplay refusals are not fatal for a muted camera picture; frames still arrive
    }
    if (run !== live.run) return;
    say("Loading the face finder and the model…");
    try {
      await page.nets();
      const m = modelEntry();
      if (m) await page.session(m.file);
    } catch (e) {
      if (run !== live.run) return;
      stopCamera("");
      fail(e.message || String(e));
      return;
    }
    if (run !== live.run) return;
    body.hidden = false;
    Object.assign(live, { tracker: new FaceTracker(), presented: 0, read: -1, frameTimes: [], mapTimes: [] });
    live.last.clear();
    setState("running");
    say(modelEntry() ? "" : "Pick a model on the left to read expressions.");
    next(run);
  }

  function stopCamera(text = "Camera off.") {
    live.run++;
    live.wanted = false;
    live.paused = false;
    release();
    setState("off");
    stats.faces = [];
    body.hidden = true;
    mapCanvas.hidden = true;
    barSlot.replaceChildren();
    mapCaption.textContent = "";
    mapNote.hidden = false;
    view.getContext("2d").clearRect(0, 0, view.width, view.height);
    say(text);
  }

  function pause() {
    if (!live.wanted || live.paused) return;
    live.run++;
    live.paused = true;
    release();
    setState("paused");
    fps.textContent = mapRate.textContent = "–";
    say("Paused: the camera is off while this tab is not shown. It starts again when you come back.");
  }

  function resume() {
    if (!live.paused || !shownNow()) return;
    startCamera();
  }

  // --- the loop: a callback per camera frame; the newest frame is read as soon as the previous one is done
  // (frames that arrive meanwhile are skipped)
  function next(run) {
    if (run !== live.run) return;
    if (video.requestVideoFrameCallback) live.callback = video.requestVideoFrameCallback((_, meta) => tick(run, meta));
    else live.callback = requestAnimationFrame(() => tick(run, null));
  }

  function tick(run, meta) {
    live.callback = null;
    if (run !== live.run) return;
    live.presented = meta && Number.isFinite(meta.presentedFrames) ? meta.presentedFrames : live.presented + 1;
    pump(run);
    next(run);
  }

  function pump(run) {
    if (live.busy || run !== live.run || live.presented === live.read || video.readyState < 2 || !video.videoWidth) return;
    live.read = live.presented;
    live.busy = step(run).catch((e) => {
      stats.errors++;
      if (run === live.run) fail(`${FRAME_FAILED} ${e.message || e}`);
    }).finally(() => {
      live.busy = null;
      pump(run);
    });
  }

  async function step(run) {
    const m = modelEntry();
    const w = video.videoWidth, h = video.videoHeight;
    const time = performance.now() / 1000;
    if (frame.width !== w || frame.height !== h) Object.assign(frame, { width: w, height: h });
    frameCtx.drawImage(video, 0, 0, w, h);
    const s = Math.min(1, DETECT_SIDE / Math.max(w, h));
    const sw = Math.max(1, Math.round(w * s)), sh = Math.max(1, Math.round(h * s));
    if (small.width !== sw || small.height !== sh) Object.assign(small, { width: sw, height: sh });
    smallCtx.imageSmoothingQuality = "high";
    smallCtx.drawImage(frame, 0, 0, sw, sh);
    const nets = await page.nets();
    const t0 = performance.now();
    const found = Math.min(sw, sh) >= 20 ? await serial(() => detect(nets, smallCtx.getImageData(0, 0, sw, sh))) : [];
    const t1 = performance.now();
    if (run !== live.run) return;
    const faces = found.filter((f) => f.probability >= rules.min_probability && f.box.every(Number.isFinite))
      .map((f) => ({ box: f.box.map((v) => v / s), landmarks: f.landmarks.map(([x, y]) => [x / s, y / s]),
        probability: f.probability }))
      .filter((f) => f.box[2] - f.box[0] >= 1 && f.box[3] - f.box[1] >= 1)
      .sort((a, b) => (b.box[2] - b.box[0]) * (b.box[3] - b.box[1]) - (a.box[2] - a.box[0]) * (a.box[3] - a.box[1]));
    const ids = live.tracker.update(time, faces.map((f) => f.box));
    const alive = new Set(live.tracker.tracks.map((t) => t.id));
    for (const id of [...live.last.keys()]) if (!alive.has(id)) live.last.delete(id);
    let probs = [];
    if (faces.length && m) {
      const g = grey(frameCtx.getImageData(0, 0, w, h));
      for (const f of faces) f.crop = cropFace(g, f.box, rules.margin, faceTurn(f.landmarks, rules));
      const session = await page.session(m.file);
      probs = (await serial(() => classifyBatch(session, faces.map((f) => f.crop)))).map((r) => r.probabilities);
      if (run !== live.run || modelEntry() !== m) return;
    }
    const t2 = performance.now();
    faces.forEach((f, i) => {
      f.id = ids[i];
      if (!m) {
        f.text = `${f.id}`;
        return;
      }
      let p = probs[i];
      const before = live.last.get(f.id);
      if (HALF_LIFE > 0 && before) {
        const a = smoothingWeight(time - before.time, HALF_LIFE);
        p = before.p.map((v, k) => v + a * (p[k] - v));
      }
      live.last.set(f.id, { time, p });
      f.raw = probs[i];
      f.top = argmax(p);
      f.probability = p[f.top];
      f.label = m.classes[f.top];
      f.text = `${f.id}: ${f.label} ${(100 * f.probability).toFixed(0)} %`;
    });
    drawBoxes(view, frame, faces, faces.map((f) => f.text), 0, view.clientWidth || w, false);
    const t3 = performance.now();
    stats.ms = { ...stats.ms, detect: Math.round(t1 - t0), classify: Math.round(t2 - t1), frame: Math.round(t3 - 1000 * time) };
    stats.frames++;
    if (error.textContent.startsWith(FRAME_FAILED)) fail(""); // a passing hitch
    live.frameTimes.push(time);
    stats.fps = rate(live.frameTimes, time);
    stats.faces = faces.map((f) => ({ id: f.id, label: f.label || null, probability: f.label ? f.probability : null,
      box: f.box.map((v) => Math.round(v)) }));
    panel.dataset.frames = String(stats.frames);
    fps.textContent = stats.fps.toFixed(1);
    facesLine.textContent = faces.length ? ` · ${faces.length} face${faces.length > 1 ? "s" : ""}` : " · no face found";
    mapFigure.classList.toggle("stale", !faces.length);
    if (faces.length && m && time - live.lastMap >= MAP_EVERY) {
      live.lastMap = time;
      await refreshMap(run, m, faces[0]);
    }
    const now = performance.now() / 1000;
    stats.mapRate = rate(live.mapTimes, now);
    mapRate.textContent = stats.mapRate.toFixed(1);
  }

  async function refreshMap(run, m, face) {
    const session = await page.session(m.file);
    const t0 = performance.now();
    const maps = await serial(() => occlusion(session, face.crop, WINDOW, STRIDE, face.top, null, face.raw));
    stats.ms.map = Math.round(performance.now() - t0);
    if (run !== live.run) return;
    const values = maps.drop;
    const scale = mapScale(values, true);
    drawOverlay(mapCanvas, faceSquare(frame, face, rules, MAP_PX), values, SIZE, scale);
    barSlot.replaceChildren(colourBar(scale, `fall of p(${face.label})`, MAP_PX));
    mapCaption.textContent = `Face ${face.id}: ${face.label}. Occlusion map (probability drop): red spots, when hidden, lower the probability of ${face.label}; blue ones raise it. Window 12 px, stride 6.`;
    mapCanvas.hidden = false;
    mapNote.hidden = true;
    stats.maps++;
    panel.dataset.maps = String(stats.maps);
    live.mapTimes.push(performance.now() / 1000);
  }

  start.addEventListener("click", () => startCamera());
  stop.addEventListener("click", () => stopCamera());
  page.onTab((name) => (name === "live" ? resume() : pause()));
  document.addEventListener("visibilitychange", () => (document.visibilityState === "hidden" ? pause() : resume()));
  say("Press Start camera. The picture is read on this device and is not recorded or sent anywhere.");
}
