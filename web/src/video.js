// A video file read in the page: frames sampled at a chosen rate, faces found in each (MTCNN on a copy whose
// longer side is 480 px, without the photo page's retries), followed across frames (FaceTracker), cropped from the
// full frame and read by every chosen model; then a timeline per face and the CSV of the Python pipeline
// (deep_emotion/video/analysis.py, webapp/video.py). The file is read by a <video> element from an object URL:
// it never leaves the page.

import { argmax, classify } from "./analysis.js";
import { cropFace, faceTurn, findFaces, grey, squareInPhoto } from "./framing.js";
import { classColour, smoothRows, timelineSvg, toCsv } from "./timeline.js";
import { FaceTracker, MAX_GAP_SECONDS } from "./tracking.js";
import { Cancelled, DEFAULT_FPS, DETECT_SIDE, MAX_FPS, MAX_SECONDS, VideoError, cancelSwitch, checkFile, openVideo,
  plural, sampleCount, sampleTimes, seek, whenVisible } from "./video-frames.js";

const SMOOTH_CHOICES = [0, 0.25, 0.5, 1, 2]; // webapp/video.py's half-lives (s)
const THUMB = 72;
const RENDER_EVERY_MS = 1500; // the timelines are redrawn this often while a clip is read

function make(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k in e && typeof v !== "string") e[k] = v;
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

const seconds = (t) => (t >= 60 ? `${Math.floor(t / 60)} min ${(t % 60).toFixed(0)} s` : `${t.toFixed(1)} s`);
const listOf = (xs) => (xs.length < 2 ? xs.join("") : `${xs.slice(0, -1).join(", ")} and ${xs[xs.length - 1]}`);

/** Build the video panel inside `panel`; `page`: the shared engine and controls (see app.js). */
export function mount(panel, page) {
  panel.textContent = "";
  panel.classList.add("video");
  const ui = {
    file: make("input", { type: "file", accept: "video/*", hidden: true, id: "video-file" }),
    fileName: make("span", { class: "video-name", text: "No video chosen" }),
    fps: make("input", { type: "number", id: "video-fps", min: "1", max: String(MAX_FPS), step: "1", value: String(DEFAULT_FPS), inputMode: "numeric" }),
    smooth: make("select", { id: "video-smooth" }),
    go: make("button", { type: "button", id: "video-go", text: "Analyse", disabled: true }),
    about: make("p", { class: "video-about" }),
    status: make("p", { class: "video-status", role: "status", id: "video-status" }),
    bar: make("progress", { class: "video-progress", max: 1, value: 0, hidden: true }),
    error: make("p", { class: "video-error", role: "alert", id: "video-error", hidden: true }),
    note: make("p", { class: "video-note warning", id: "video-note", hidden: true }),
    preview: make("canvas", { class: "video-preview", id: "video-preview", width: 320, height: 240, hidden: true,
      "aria-label": "The frame being read, with the faces found" }),
    previewCap: make("p", { class: "video-preview-caption", hidden: true }),
    explainFrame: make("button", { type: "button", id: "video-explain-frame", hidden: true,
      text: "Explain this frame in the Photo tab" }),
    results: make("div", { class: "video-results", id: "video-results", hidden: true }),
    model: make("select", { id: "video-model" }),
    modelRow: make("label", { class: "video-model" }),
    csv: make("a", { class: "button video-csv", id: "video-csv", text: "Download the timeline (CSV)" }),
    summary: make("p", { class: "video-summary", id: "video-summary" }),
    legend: make("div", { class: "video-legend", id: "video-legend" }),
    faces: make("div", { class: "video-faces", id: "video-faces", hidden: true }),
  };
  for (const h of SMOOTH_CHOICES) ui.smooth.append(new Option(h ? `${h} s half-life` : "none (each frame alone)", String(h)));
  ui.modelRow.append("Timeline of ", ui.model);
  const chooser = make("label", { class: "button video-choose" }, "Choose a video", ui.file);
  const controls = make("div", { class: "video-controls" },
    make("div", { class: "video-source" }, chooser, ui.fileName),
    make("label", { class: "video-field" }, make("span", { text: "Frames read per second" }), ui.fps),
    make("label", { class: "video-field", title: "Each face's probabilities averaged over time: a frame's weight halves every this many seconds." },
      make("span", { text: "Smoothing" }), ui.smooth),
    ui.go);
  const stage = make("figure", { class: "video-stage" }, ui.preview, ui.previewCap, ui.explainFrame);
  ui.results.append(make("div", { class: "video-toolbar" }, ui.modelRow, ui.csv), ui.summary, ui.legend);
  const info = make("div", { class: "video-info" }, ui.status, ui.bar, ui.error, ui.note, ui.results);
  panel.append(controls, ui.about, make("div", { class: "video-top" }, stage, info), ui.faces);

  const state = { file: null, run: null, result: null, open: null, shownAt: null, dirty: false, lastRender: 0 };
  panel.dataset.state = "idle";

  const about = () => {
    const models = page.chosenModels().map((m) => m.name);
    ui.about.textContent = models.length
      ? `Each face is read by ${models.length === 1 ? "the model" : `each of the ${models.length} models`} ticked on the left (${listOf(models)}); the timelines show one model at a time. The video is read on this device and never uploaded.`
      : "Tick at least one model on the left.";
  };
  const status = (text, busy = false) => {
    ui.status.textContent = text;
    ui.status.classList.toggle("busy", busy && !!text);
  };
  const error = (text) => {
    ui.error.textContent = text || "";
    ui.error.hidden = !text;
  };
  const note = (text) => {
    ui.note.textContent = text || "";
    ui.note.hidden = !text;
  };
  const fps = () => {
    const v = Number(ui.fps.value);
    if (!Number.isFinite(v) || v < 1 || v > MAX_FPS) throw new VideoError(`Frames read per second: a number from 1 to ${MAX_FPS}.`);
    return v;
  };
  const setRunning = (on) => {
    ui.go.textContent = on ? "Cancel" : "Analyse";
    ui.go.classList.toggle("cancel", on);
    ui.go.disabled = !on && !state.file;
    ui.file.disabled = on;
    chooser.classList.toggle("disabled", on);
    ui.bar.hidden = !on;
  };

  // --- the results ---------------------------------------------------------------------------------------
  function shownModel(result) {
    return result.models.find((m) => m.name === ui.model.value) || result.models[0];
  }

  function render() {
    const result = state.result;
    state.lastRender = performance.now();
    ui.results.hidden = ui.faces.hidden = !result || !result.rows.length;
    if (ui.results.hidden) return;
    const model = shownModel(result);
    const half = Number(ui.smooth.value);
    const rows = smoothRows(result.rows, half);
    const faceIds = [...new Set(rows.map((r) => r.face))].sort((a, b) => a - b);
    const step = 1 / result.fps;
    const lastTime = rows[rows.length - 1].time;
    const end = Math.max(result.duration || 0, result.readUpTo || 0, lastTime + step);
    // the legend: the shown model's classes in its colours
    ui.legend.textContent = "";
    for (const c of model.classes) {
      ui.legend.append(make("span", { class: "video-key" },
        make("i", { style: `background:${classColour(c, model.classes)}` }), c));
    }
    ui.legend.append(make("span", { class: "video-key-note", text: "The band above each chart: the top class." }));
    ui.faces.textContent = "";
    for (const face of faceIds) {
      const fr = rows.filter((r) => r.face === face);
      const tops = new Map();
      for (const r of fr) {
        const c = model.classes[argmax(r.probabilities[model.name])];
        tops.set(c, (tops.get(c) || 0) + 1);
      }
      const [mostly, count] = [...tops.entries()].sort((a, b) => b[1] - a[1])[0];
      const thumb = make("canvas", { width: THUMB, height: THUMB, class: "video-thumb" });
      if (result.thumbs.has(face)) thumb.getContext("2d").drawImage(result.thumbs.get(face), 0, 0);
      const caption = make("figcaption", {},
        make("b", { text: `face ${face}` }),
        make("span", { text: `${fr[0].time.toFixed(1)}–${(fr[fr.length - 1].time + step).toFixed(1)} s` }),
        make("span", { text: `mostly ${mostly} (${Math.round((100 * count) / fr.length)} % of ${plural(fr.length, "frame")})` }));
      const chart = make("div", { class: "video-chart" });
      ui.faces.append(make("article", { class: "video-face", "data-face": String(face) },
        make("figure", { class: "video-face-id" }, thumb, caption), chart));
      const width = chart.clientWidth || 600; // laid out first: the chart is drawn at the width it is shown
      const svg = timelineSvg(fr, { model: model.name, classes: model.classes, step, end, width, at: state.shownAt });
      svg.setAttribute("aria-label", `Face ${face}: ${model.name}'s probabilities over time; mostly ${mostly}.`);
      const readout = make("p", { class: "video-readout", text: "Point at the chart to read a moment; click to see its frame." });
      chart.append(svg, readout);
      const read = (ev) => {
        const box = svg.getBoundingClientRect();
        const t = svg.timeAt(((ev.clientX - box.left) * svg.width.baseVal.value) / box.width);
        const r = svg.rowAt(t);
        if (!r) { readout.textContent = `${t.toFixed(2)} s: face ${face} not seen`; return null; }
        const p = r.probabilities[model.name];
        const order = p.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0]).slice(0, 3);
        readout.textContent = `${r.time.toFixed(2)} s: ${order.map(([v, i]) => `${model.classes[i]} ${Math.round(100 * v)} %`).join(", ")}`;
        return r;
      };
      svg.addEventListener("pointermove", read);
      svg.addEventListener("click", (ev) => {
        const r = read(ev);
        if (r) showFrame(r.time);
      });
    }
    const done = result.finished;
    const models = result.models.map((m) => m.name);
    ui.summary.textContent = `${result.name}: ${result.width}x${result.height}, ${result.duration ? seconds(result.duration) : "length not given"}; `
      + `${plural(result.frames, "frame")} read at ${result.fps} per second, ${plural(faceIds.length, "face")} followed, `
      + `by ${listOf(models)}${done ? ` in ${seconds(result.ms / 1000)}` : " (so far)"}.`
      + (half > 0 ? ` Probabilities smoothed over time (half-life ${half} s).` : "");
    if (ui.csv.href) URL.revokeObjectURL(ui.csv.href);
    ui.csv.href = URL.createObjectURL(new Blob([toCsv(rows, result.models)], { type: "text/csv" }));
    ui.csv.download = `${result.name.replace(/\.[^.]*$/, "") || "video"}-emotions.csv`;
  }

  function modelChoices(result) {
    const was = ui.model.value;
    ui.model.textContent = "";
    for (const m of result.models) ui.model.append(new Option(m.name, m.name));
    if (result.models.some((m) => m.name === was)) ui.model.value = was;
    ui.modelRow.hidden = result.models.length < 2;
  }

  // --- the preview: a frame with its faces' boxes ---------------------------------------------------------
  function drawPreview(source, sw, sh, faces, caption) {
    const scale = Math.min(1, 480 / Math.max(sw, sh));
    const c = ui.preview;
    c.width = Math.round(sw * scale);
    c.height = Math.round(sh * scale);
    const ctx = c.getContext("2d");
    ctx.drawImage(source, 0, 0, c.width, c.height);
    ctx.font = "600 14px system-ui, sans-serif";
    ctx.lineWidth = 2;
    for (const f of faces) {
      const [x0, y0, x1, y1] = f.box.map((v) => v * scale);
      const colour = f.label ? classColour(f.label) : "#00e5ff";
      ctx.strokeStyle = colour;
      ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
      const text = `${f.face} ${f.label || ""}`.trim();
      const tw = ctx.measureText(text).width + 8;
      const ty = y0 >= 18 ? y0 - 18 : y1;
      ctx.fillStyle = colour;
      ctx.fillRect(x0 - 1, ty, tw, 18);
      ctx.fillStyle = "#000";
      ctx.fillText(text, x0 + 3, ty + 14);
    }
    c.hidden = false;
    ui.previewCap.hidden = !caption;
    ui.previewCap.textContent = caption || "";
  }

  async function showFrame(t) {
    const result = state.result;
    if (state.run || !state.open || !result) return;
    state.shownAt = t;
    for (const svg of ui.faces.querySelectorAll("svg")) svg.showAt?.(t);
    const model = shownModel(result);
    const rows = smoothRows(result.rows, Number(ui.smooth.value)).filter((r) => Math.abs(r.time - t) < 1e-6);
    try {
      await seek(state.open.video, t, cancelSwitch(), result.name);
      if (state.run || state.shownAt !== t) return;
      drawPreview(state.open.video, result.width, result.height,
        rows.map((r) => ({ face: r.face, box: r.box, label: model.classes[argmax(r.probabilities[model.name])] })),
        `The frame at ${t.toFixed(2)} s (${model.name}).`);
      ui.explainFrame.hidden = !page.showPhoto;
    } catch {
      // the frame could not be shown again: the results stay as they are
    }
  }

  // the frame shown, at the video's own size, handed to the photo tab to be explained like a photo
  ui.explainFrame.addEventListener("click", async () => {
    const video = state.open?.video, result = state.result;
    if (!video || !result || state.run) return;
    const c = make("canvas", { width: video.videoWidth, height: video.videoHeight });
    c.getContext("2d").drawImage(video, 0, 0);
    const blob = await new Promise((resolve) => c.toBlob(resolve, "image/png"));
    if (blob) page.showPhoto(blob, `${result.name.replace(/\.[^.]+$/, "")}-${state.shownAt.toFixed(2)}s.png`);
  });

  // --- a run --------------------------------------------------------------------------------------------
  async function analyse() {
    ui.explainFrame.hidden = true;
    if (state.run) { state.run.cancel(); return; }
    error("");
    note("");
    const file = state.file;
    if (!file) return;
    const models = page.chosenModels().map((m) => ({ name: m.name, file: m.file, classes: [...m.classes] }));
    let rate;
    try {
      rate = fps();
      if (!models.length) throw new VideoError("Tick at least one model on the left.");
      checkFile(file);
    } catch (e) {
      error(e.message);
      return;
    }
    const cancel = cancelSwitch();
    state.run = cancel;
    state.dirty = false;
    state.shownAt = null;
    setRunning(true);
    panel.dataset.state = "running";
    ui.results.hidden = ui.faces.hidden = true;
    const t0 = performance.now();
    if (state.open) { state.open.close(); state.open = null; }
    const result = { name: file.name || "video", fps: rate, models, rows: [], frames: 0, thumbs: new Map(),
      width: 0, height: 0, duration: null, readUpTo: 0, finished: false, ms: 0 };
    state.result = result;
    modelChoices(result);
    let outcome = "done";
    try {
      status(`Opening ${result.name}…`, true);
      const open = await openVideo(file, cancel);
      state.open = open;
      Object.assign(result, { width: open.width, height: open.height, duration: open.duration });
      if (open.duration !== null && !open.told) {
        note(`${result.name} does not say how long it is (a recording straight from a camera or a browser?); its end was found at ${seconds(open.duration)}.`);
      } else if (open.duration === null) {
        note(`${result.name} does not say how long it is (a recording straight from a camera or a browser?): it is read until it ends, ${MAX_SECONDS / 60} minutes at most.`);
      }
      status("Loading the models…", true);
      const nets = await page.nets();
      const sessions = [];
      for (const m of models) sessions.push(await page.session(m.file)); // one at a time
      cancel.check();
      await readFrames(open, result, rate, nets, sessions, cancel);
    } catch (e) {
      if (e instanceof Cancelled) {
        outcome = "cancelled";
      } else {
        outcome = "error";
        error(e instanceof VideoError ? e.message : `${result.name}: the analysis stopped (${e.message || e}).`);
      }
    }
    result.finished = true;
    result.ms = performance.now() - t0;
    state.run = null;
    setRunning(false);
    modelChoices(result);
    render();
    const read = `${plural(result.frames, "frame")} read`;
    if (outcome === "done") {
      status(result.rows.length ? `Done: ${read} in ${seconds(result.ms / 1000)}.` : "");
      if (!result.rows.length) error(`No face was found in ${result.name} (${read}). Faces should be at least about ${Math.ceil(20 * Math.max(result.width, result.height) / DETECT_SIDE)} px tall, lit from the front and upright.`);
    } else if (outcome === "cancelled") {
      status(`Cancelled after ${read}${result.rows.length ? "; the timelines show the part read" : ""}.`);
    } else {
      status(result.frames ? `Stopped after ${read}.` : "");
    }
    panel.dataset.state = outcome;
  }

  async function readFrames(open, result, rate, nets, sessions, cancel) {
    const { video, width, height } = open;
    const rules = { ...page.runtime.index.framing, context_retry: false, rotate_retry: 0 }; // clips.VIDEO_FRAMING
    const scale = Math.min(1, DETECT_SIDE / Math.max(width, height));
    const full = make("canvas", { width, height });
    const fullCtx = full.getContext("2d", { willReadFrequently: true });
    const small = make("canvas", { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) });
    const smallCtx = small.getContext("2d", { willReadFrequently: true });
    smallCtx.imageSmoothingQuality = "high";
    // a face unseen for more than a second ends, or for 1.5 steps at sparse sampling (analyze_video)
    const tracker = new FaceTracker(undefined, Math.max(MAX_GAP_SECONDS, 1.5 / rate));
    const total = sampleCount(rate, open.duration, !open.told);
    let paused = false, last = -1;
    const shown = result.models[0];
    for (const t of sampleTimes(rate, open.duration, !open.told)) {
      cancel.check();
      if (document.hidden) {
        paused = true;
        status(`Paused at ${t.toFixed(1)} s: this browser tab is in the background. Reading continues when you come back to it.`, false);
        await whenVisible(cancel);
      }
      await seek(video, t, cancel, result.name);
      if (open.duration === null && (video.currentTime + 1e-3 < t || (video.ended && video.currentTime <= last + 1e-6))) break; // its end
      last = video.currentTime;
      fullCtx.drawImage(video, 0, 0, width, height);
      smallCtx.drawImage(full, 0, 0, small.width, small.height);
      const found = await findFaces(nets, small, rules);
      cancel.check();
      const faces = found.map((f) => ({ ...f, box: f.box.map((v) => v / scale),
        landmarks: f.landmarks ? f.landmarks.map(([x, y]) => [x / scale, y / scale]) : null }));
      const ids = tracker.update(t, faces.map((f) => f.box));
      const g = faces.length ? grey(fullCtx.getImageData(0, 0, width, height)) : null;
      const labels = [];
      for (const [j, f] of faces.entries()) {
        const crop = cropFace(g, f.box, rules.margin, faceTurn(f.landmarks, rules));
        const probabilities = {};
        for (const [i, m] of result.models.entries()) {
          probabilities[m.name] = (await classify(sessions[i], crop)).probabilities; // sessions run one at a time
        }
        cancel.check();
        result.rows.push({ time: t, frame: result.frames, face: ids[j], box: f.box, faceProbability: f.probability,
          detected: true, probabilities });
        if (!result.thumbs.has(ids[j])) result.thumbs.set(ids[j], thumbnail(full, f, rules.margin));
        labels.push({ face: ids[j], box: f.box, label: shown.classes[argmax(probabilities[shown.name])] });
      }
      result.frames += 1;
      result.readUpTo = t + 1 / rate;
      drawPreview(full, width, height, labels, `The frame at ${t.toFixed(2)} s${labels.length ? ` (${shown.name})` : ": no face found"}.`);
      const faceCount = new Set(result.rows.map((r) => r.face)).size;
      const where = open.duration ? `${t.toFixed(1)} of ${open.duration.toFixed(1)} s` : `${t.toFixed(1)} s`;
      status(`${paused ? "Back again. " : ""}Reading ${result.name}: ${where}, frame ${result.frames}${total ? ` of ${total}` : ""}; ${plural(faceCount, "face")} so far.`, true);
      paused = false;
      if (total) ui.bar.value = result.frames / total;
      else ui.bar.removeAttribute("value");
      if (performance.now() - state.lastRender > RENDER_EVERY_MS) render();
    }
    if (open.duration === null) {
      const end = result.readUpTo;
      note(end >= MAX_SECONDS - 1e-6
        ? `${result.name} does not say how long it is; it was read up to ${MAX_SECONDS / 60} minutes, the most that is read.`
        : `${result.name} does not say how long it is; it was read to its end (${seconds(end)}).`);
    }
  }

  function thumbnail(full, f, margin) {
    const [cx, cy, side] = squareInPhoto(f.box, full.width, full.height, margin);
    const c = make("canvas", { width: THUMB, height: THUMB });
    c.getContext("2d").drawImage(full, cx - side / 2, cy - side / 2, side, side, 0, 0, THUMB, THUMB);
    return c;
  }

  // --- wiring ---------------------------------------------------------------------------------------------
  ui.file.addEventListener("change", () => {
    const f = ui.file.files[0];
    if (!f) return;
    state.file = f;
    ui.fileName.textContent = f.name;
    ui.go.disabled = false;
    analyse();
  });
  ui.go.addEventListener("click", () => analyse());
  ui.fps.addEventListener("change", () => {
    error("");
    try { fps(); } catch (e) { error(e.message); return; }
    if (state.result && state.result.finished && state.result.fps !== Number(ui.fps.value)) {
      status(`Press Analyse to read the clip again at ${ui.fps.value} frames per second.`);
    }
  });
  ui.smooth.addEventListener("change", () => { if (state.result && !state.run) render(); });
  ui.model.addEventListener("change", () => render());
  page.onModelsChange(() => {
    about();
    if (state.result && !state.run) status("The models ticked have changed: press Analyse to read the clip with them.");
  });
  let width = 0;
  new ResizeObserver(() => {
    const w = panel.clientWidth;
    if (Math.abs(w - width) > 8 && state.result && !state.run && !panel.hidden) { width = w; render(); }
    else width = w || width;
  }).observe(panel);
  page.onTab((name) => { if (name === "video" && state.result && !state.run) render(); });
  about();
}
