// A video file read in the page, within the Python pipeline's caps (deep_emotion/video/clips.py): a <video>
// element on an object URL (nothing is uploaded), checked before anything is analysed, then frames taken by
// seeking, each seek with a time limit. A file that does not say how long it is (a WebM recorded in a browser)
// is asked for its end first; failing that it is read until seeking stops moving, 15 minutes at most.

export const MAX_BYTES = 500 * 1024 * 1024;
export const MAX_SECONDS = 15 * 60;
export const MAX_SIDE = 3840;
export const MAX_FPS = 30;
export const DEFAULT_FPS = 4;
export const DETECT_SIDE = 480; // faces are searched on a copy whose longer side is this (clips.DETECT_SIDE)
export const SEEK_TIMEOUT_MS = 5000;
const OPEN_TIMEOUT_MS = 20000;
const END_TIMEOUT_MS = 5000;

/** An Error whose message is a sentence for the user. */
export class VideoError extends Error {}
/** The run was cancelled. */
export class Cancelled extends Error {}

/** A promise that resolves when the page is visible again (at once when it is); rejects on `cancelled()`. */
export function whenVisible(cancel) {
  if (!document.hidden) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = () => {
      document.removeEventListener("visibilitychange", check);
      cancel.off(stop);
    };
    const check = () => { if (!document.hidden) { done(); resolve(); } };
    const stop = () => { done(); reject(new Cancelled()); };
    document.addEventListener("visibilitychange", check);
    cancel.on(stop);
  });
}

/** A cancel switch: `cancel()`, `cancelled`, `on(f)` / `off(f)` (f called once on cancel). */
export function cancelSwitch() {
  const fs = new Set();
  const s = {
    cancelled: false,
    cancel() { if (!s.cancelled) { s.cancelled = true; for (const f of [...fs]) f(); fs.clear(); } },
    on(f) { if (s.cancelled) f(); else fs.add(f); },
    off(f) { fs.delete(f); },
    check() { if (s.cancelled) throw new Cancelled(); },
  };
  return s;
}

/** Wait for one of `events` on `target` (resolves with its name), or `ms` of visible time (rejects `onTimeout()`),
 * or a cancel. The time limit only runs while the page is visible: a background tab may be slowed down. */
function waitFor(target, events, ms, cancel, onTimeout) {
  return new Promise((resolve, reject) => {
    let timer = null, left = ms, since = 0;
    const handlers = events.map((e) => [e, () => finish(() => resolve(e))]);
    const arm = () => { since = performance.now(); timer = setTimeout(() => finish(() => reject(onTimeout())), left); };
    const visibility = () => {
      if (document.hidden && timer !== null) { clearTimeout(timer); timer = null; left -= performance.now() - since; }
      else if (!document.hidden && timer === null) arm();
    };
    const stop = () => finish(() => reject(new Cancelled()));
    function finish(f) {
      clearTimeout(timer);
      for (const [e, h] of handlers) target.removeEventListener(e, h);
      document.removeEventListener("visibilitychange", visibility);
      cancel.off(stop);
      f();
    }
    for (const [e, h] of handlers) target.addEventListener(e, h);
    document.addEventListener("visibilitychange", visibility);
    cancel.on(stop);
    if (!document.hidden) arm();
  });
}

const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** Checks that need no reading: size. Throws a VideoError. */
export function checkFile(file) {
  const name = file.name || "The file";
  if (!file.size) throw new VideoError(`${name}: the file is empty.`);
  if (file.size > MAX_BYTES) {
    throw new VideoError(`${name}: the file is ${Math.round(file.size / 2 ** 20)} MB, larger than the ${MAX_BYTES / 2 ** 20} MB accepted. Cut the clip or make it smaller first.`);
  }
}

/** The file opened in a muted <video>: {video, url, width, height, duration (seconds, or null when the file does
 * not say), told (false: the file did not say its length), close()}; a VideoError when the browser cannot read it or it is over the caps. */
export async function openVideo(file, cancel) {
  checkFile(file);
  const name = file.name || "The file";
  const video = document.createElement("video");
  Object.assign(video, { muted: true, playsInline: true, preload: "auto", disablePictureInPicture: true });
  const url = URL.createObjectURL(file);
  const close = () => {
    video.removeAttribute("src");
    video.load();
    URL.revokeObjectURL(url);
  };
  try {
    video.src = url;
    const unreadable = () => new VideoError(`${name}: this browser cannot read it as a video. It may be damaged, not a video, or in a format this browser does not play (MP4 with H.264, or WebM, are read everywhere).`);
    const got = await waitFor(video, ["loadedmetadata", "error"], OPEN_TIMEOUT_MS, cancel, unreadable);
    if (got === "error") throw unreadable();
    const width = video.videoWidth, height = video.videoHeight;
    if (!width || !height) throw new VideoError(`${name}: the file holds no pictures (only sound?).`);
    if (Math.max(width, height) > MAX_SIDE) {
      throw new VideoError(`${name}: its frames are ${width}x${height} pixels, larger than the ${MAX_SIDE} px (4K) accepted. Scale the video down first.`);
    }
    let duration = Number.isFinite(video.duration) && video.duration > 0 ? video.duration : null;
    const told = duration !== null;
    if (!told) duration = await findEnd(video, cancel);
    if (duration !== null && duration > MAX_SECONDS + 1e-6) {
      throw new VideoError(`${name}: ${(duration / 60).toFixed(1)} min is longer than the ${MAX_SECONDS / 60} min accepted. Cut the clip first.`);
    }
    return { video, url, width, height, duration, told, close };
  } catch (e) {
    close();
    throw e;
  }
}

/** The length of a file that does not say it: a seek far past the end makes the browser find it (a WebM
 * recorded by a browser has no duration until then). null when it is still unknown. */
async function findEnd(video, cancel) {
  try {
    video.currentTime = 1e101;
    await waitFor(video, ["durationchange", "seeked", "error"], END_TIMEOUT_MS, cancel, () => new Error("no end"));
  } catch (e) {
    if (e instanceof Cancelled) throw e;
  }
  const d = video.duration;
  return Number.isFinite(d) && d > 0 ? d : null;
}

/** Show the frame at `t` seconds: resolves once it can be drawn, with its own time when the browser tells it (or
 * null); a VideoError after SEEK_TIMEOUT_MS (visible time) or on a decoding error. A "seeked" event alone can come
 * before the new frame is there to draw (a busy page then reads the previous frame): the frame callback waits for it. */
export async function seek(video, t, cancel, name) {
  const slow = () => new VideoError(`${name}: the frame at ${t.toFixed(2)} s did not come within ${SEEK_TIMEOUT_MS / 1000} s; the file may be damaged, or this device is too busy. The timeline shows what was read before it.`);
  const damaged = () => new VideoError(`${name}: the video is damaged or cut short near ${t.toFixed(1)} s. The timeline shows what was read before it.`);
  if (video.currentTime === t && video.readyState >= 2 && video.dataset.shown === String(t)) return null; // there already
  let frame = null, handle = null;
  const framed = "requestVideoFrameCallback" in video
    ? new Promise((resolve) => { handle = video.requestVideoFrameCallback((now, meta) => { frame = meta.mediaTime; resolve(); }); })
    : null;
  const target = new EventTarget();
  framed?.then(() => target.dispatchEvent(new Event("frame")));
  try {
    video.currentTime = t;
    const got = await waitFor(video, ["seeked", "error"], SEEK_TIMEOUT_MS, cancel, slow);
    if (got === "error") throw damaged();
    if (video.readyState < 2) { // HAVE_CURRENT_DATA: the frame itself
      if ((await waitFor(video, ["loadeddata", "canplay", "error"], SEEK_TIMEOUT_MS, cancel, slow)) === "error") throw damaged();
    }
    if (framed && frame === null) {
      try {
        await waitFor(target, ["frame"], 1000, cancel, () => new Error("no frame callback"));
      } catch (e) {
        if (e instanceof Cancelled) throw e; // else: drawn as it is (a browser that skips the callback)
      }
    } else if (!framed) { // no frame callbacks: two animation frames
      for (let i = 0; i < 2; i++) await new Promise((r) => requestAnimationFrame(r));
    }
    video.dataset.shown = String(t);
    return frame;
  } finally {
    if (frame === null && handle !== null) video.cancelVideoFrameCallback(handle);
  }
}

/** The sample times k / fps inside [0, duration) (`last`: [0, duration], when the duration is the last frame's
 * time, as a length found by seeking is; duration null: up to MAX_SECONDS), as a generator. */
export function* sampleTimes(fps, duration, last = false) {
  const end = duration === null ? MAX_SECONDS : Math.min(duration, MAX_SECONDS);
  const inside = duration !== null && last && duration <= MAX_SECONDS ? (t) => t <= end + 1e-6 : (t) => t < end - 1e-6;
  for (let k = 0; k === 0 || inside(k / fps); k++) yield k / fps;
}

/** How many samples sampleTimes gives (null when the length is unknown). */
export function sampleCount(fps, duration, last = false) {
  if (duration === null) return null;
  let n = 0;
  for (const t of sampleTimes(fps, duration, last)) n += t >= 0 ? 1 : 0;
  return n;
}

export { plural };
