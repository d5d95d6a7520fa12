// A worker of its own for a bundle's files (weights.js): downloading, storing and verifying them never waits
// on the model's worker, which meanwhile starts Pyodide (seconds of work that hold its thread).
// In: {url, manifestText, files, storage}. Out: {progress} events, then {done: {stats, buffers}} (the
// buffers transferred, by path) or {error: {code, message}}.

import { WeightCache } from "./weight-cache.js";
import { WeightStore } from "./weights.js";

self.onmessage = async ({ data }) => {
  try {
    const cache = await WeightCache.open();
    await cache.recordBundle(data.url, data.manifestText, data.files); // before downloading: eviction keeps these
    const store = new WeightStore(new URL(data.url), data.files, cache, data.storage);
    await store.load((progress) => self.postMessage({ progress }));
    const buffers = Object.fromEntries(Array.from(store.data, ([path, bytes]) => [path, bytes.buffer]));
    const stats = { ...store.stats, readMs: Math.round(store.stats.readMs), verifyMs: Math.round(store.stats.verifyMs) };
    self.postMessage({ done: { stats, buffers } }, Object.values(buffers));
  } catch (err) {
    const code = typeof err.code === "string" ? err.code : "runtime";
    self.postMessage({ error: { code, message: (err && err.message) || String(err) } });
  }
};
