// Functions for tests and benchmarks, added to globalThis.deepEmotion by app.js: the page's own code run on data
// given directly, so that its answers can be checked against the Python pipeline.

export const hooks = {};
