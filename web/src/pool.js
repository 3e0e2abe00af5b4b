// The page's CPU engine: one worker per core (worker.js), each running onnxruntime-web on one WebAssembly thread
// (and our own kernels, layers.js, for MTCNN and the paper models' maps).
// A batch of faces is cut into one part per worker and the parts run side by side (each face is computed on its
// own, so the parts' answers are the same as the whole batch's); a small run goes to the least busy worker.
// Splitting the batch keeps every core busy; ORT's own threads share each convolution between cores, which on
// these small networks keeps them waiting on each other (docs/performance.md: "In the browser").
// The page's own thread only cuts and joins the arrays, so it stays free to draw and answer clicks.

const MIN_PART = 2; // a batch is split only where every part gets at least this many items (O-Net: ~1 ms an item)

/** The typed arrays `pieces` one after another, in one array of their type. */
function concat(pieces) {
  const out = new pieces[0].constructor(pieces.reduce((s, a) => s + a.length, 0));
  let at = 0;
  for (const a of pieces) { out.set(a, at); at += a.length; }
  return out;
}

export class Pool {
  /** `size` workers, each loading onnxruntime-web (and our kernels) from the page's own files. */
  constructor(size) {
    this.size = size;
    this.workers = Array.from({ length: size }, () => new Worker(new URL("./worker.js", import.meta.url), { type: "module" }));
    this.busy = new Array(size).fill(0); // work sent and not answered (numbers to read), per worker
    this.dead = new Array(size).fill(null); // why a worker stopped, once it has
    this.waiting = new Map(); // id -> [resolve, reject, worker, work]
    this.next = 0;
    this.workers.forEach((w, i) => {
      w.onmessage = (e) => this.answer(e.data);
      w.onerror = (e) => this.failed(i, e.message || "the worker could not start");
    });
  }

  answer({ id, error, ...rest }) {
    const entry = this.waiting.get(id);
    if (!entry) return;
    this.waiting.delete(id);
    this.busy[entry[2]] -= entry[3];
    if (error) entry[1](new Error(error));
    else entry[0](rest);
  }

  /** A worker that could not start (or stopped) fails what it was given and what it is given later: an error
   * the page shows, not a hang. */
  failed(worker, message) {
    this.dead[worker] = `The model engine stopped (${message}). Reload the page to try again.`;
    for (const [id, entry] of this.waiting) {
      if (entry[2] !== worker) continue;
      this.waiting.delete(id);
      this.busy[worker] -= entry[3];
      entry[1](new Error(this.dead[worker]));
    }
  }

  /** Post `message` to a worker; `work`: how much it asks (the numbers its inputs hold), for `idlest`. */
  send(worker, message, transfer = [], work = 1) {
    if (this.dead[worker]) return Promise.reject(new Error(this.dead[worker]));
    const id = this.next++;
    this.busy[worker] += work;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, [resolve, reject, worker, work]);
      this.workers[worker].postMessage({ id, ...message }, transfer);
    });
  }

  /** The `count` least busy working workers (the least work waiting), least busy first; a stopped one only when
   * none works (it answers with why). */
  idlest(count) {
    const live = this.busy.map((b, i) => [b, i]).filter(([, i]) => !this.dead[i]);
    if (!live.length) return [0];
    return live.sort((a, b) => a[0] - b[0] || a[1] - b[1]).slice(0, count).map(([, i]) => i);
  }

  /** A session-like object for the ONNX file at `url` (fetched once, loaded in every worker): `run(feeds)` takes
   * {name: {type, data, dims}} (an ort.Tensor will do) and answers {name: {type, data, dims}}. */
  async session(file, url) {
    const res = await fetch(url);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const bytes = await res.arrayBuffer();
    await Promise.all(this.idlest(this.size).map((i) => this.send(i, { op: "load", file, bytes })));
    return { run: (feeds) => this.run(file, feeds) };
  }

  /** The workers that share a batch of n items (one part each, at least MIN_PART items a part) and the bounds of
   * their parts: [workers, cuts], part p = items cuts[p] .. cuts[p + 1] - 1. */
  shares(n) {
    const workers = this.idlest(Math.max(1, Math.min(this.size, Math.floor(n / MIN_PART))));
    return [workers, workers.map((_, p) => Math.round((p * n) / workers.length)).concat(n)];
  }

  /** incremental.js's `occluded` for a model's incremental graphs (`graphs`: its models.json entry, every file
   * loaded by `session`): the windows cut into one part per worker. Probabilities (Float32Array, K x classes). */
  async occluded(graphs, x, windows, window) {
    const n = windows.length;
    const [workers, cuts] = this.shares(n);
    const answers = await Promise.all(workers.map((w, p) =>
      this.send(w, { op: "occluded", graphs, x, windows: windows.slice(cuts[p], cuts[p + 1]), window }, [],
        (cuts[p + 1] - cuts[p]) * x.length)));
    return answers.length === 1 ? answers[0].probabilities : concat(answers.map((a) => a.probabilities));
  }

  async run(file, feeds) {
    const entries = Object.entries(feeds);
    const n = entries[0][1].dims[0];
    const [workers, cuts] = this.shares(n);
    const answers = await Promise.all(workers.map((w, p) => {
      const part = {}, transfer = [];
      let work = 0;
      for (const [k, t] of entries) {
        const per = t.data.length / n;
        const data = t.data.slice(cuts[p] * per, cuts[p + 1] * per); // a copy: the caller keeps its array
        part[k] = { type: t.type, data, dims: [cuts[p + 1] - cuts[p], ...t.dims.slice(1)] };
        transfer.push(data.buffer);
        work += data.length;
      }
      return this.send(w, { op: "run", file, feeds: part }, transfer, work);
    }));
    if (answers.length === 1) return answers[0].outputs;
    const joined = {};
    for (const k of Object.keys(answers[0].outputs)) {
      const pieces = answers.map((a) => a.outputs[k]);
      const n = pieces.reduce((s, t) => s + t.dims[0], 0);
      joined[k] = { type: pieces[0].type, data: concat(pieces.map((t) => t.data)), dims: [n, ...pieces[0].dims.slice(1)] };
    }
    return joined;
  }
}
