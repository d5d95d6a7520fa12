// The model's engine room, off the main thread so the page never freezes: Pyodide hosts
// qwen35web.runtime, which drives onnxruntime-web (WebGPU or wasm). Driven by qwen35web.mjs.
// Messages in: {id, type, ...}; out: {id, kind, ...} with kind "event" (progress, streamed deltas),
// "result" or "error" ({message, code}: errors.mjs turns the code back into a class).

import { loadPyodide } from "./vendor/pyodide/pyodide.mjs";
import { coded } from "./errors.mjs";
import { WeightCache } from "./weight-cache.js";
import { WeightStore } from "./weights.js";

const ORT_BUILDS = {
  webgpu: "./vendor/ort/ort.webgpu.bundle.min.mjs", // native WebGPU build (asyncify wasm)
  wasm: "./vendor/ort/ort.wasm.bundle.min.mjs",
};
const RUNTIME_ARCHIVE = "./py/runtime.zip";
const PYTHON_APP_DIR = "/home/pyodide/app";
// Threads onnxruntime-web's wasm gets when the page does not ask: one per core, at most this many.
// Measured here (bench/results/threads.md) only up to the 2 cores this machine has; 4 is
// onnxruntime-web's own ceiling for its default.
const MAX_AUTO_THREADS = 4;
// web_entry's error types (the JSON's errorType) -> errors.mjs codes; anything else is "runtime".
const PYTHON_ERROR_CODES = { BundleError: "bad-bundle", GenerationInputError: "bad-input" };

let session = null; // PyProxy of qwen35web.runtime.web_entry.WebSession
let queue = Promise.resolve(); // calls into Python run one after the other
let running = null; // id of the generate call in progress
const cancelledBeforeStart = new Set();

function post(id, kind, payload = {}) {
  self.postMessage({ id, kind, ...payload });
}

// One readable line: for a Python exception, its last line ("Type: message") without the traceback.
function readable(err) {
  const text = String((err && err.message) || err || "unknown error").trim();
  if (err && err.type && text.includes("Traceback")) {
    const lines = text.split("\n").filter((line) => line.trim());
    return lines[lines.length - 1];
  }
  return text;
}

// web_entry answers JSON; {"error": message, "errorType": class name} is a failure.
function checked(json) {
  const value = JSON.parse(json);
  if (value && value.error) throw coded(PYTHON_ERROR_CODES[value.errorType] || "runtime", value.error);
  return value;
}

async function fetchOk(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: the server answered HTTP ${response.status}`);
  return response;
}

async function chooseBackend(requested) {
  if (requested && !Object.hasOwn(ORT_BUILDS, requested)) {
    throw coded("bad-input", `unknown backend "${requested}" (use "webgpu" or "wasm")`);
  }
  if (requested === "wasm") return { backend: "wasm", reason: "wasm, as asked for" };
  const adapter = self.navigator.gpu ? await self.navigator.gpu.requestAdapter().catch(() => null) : null;
  if (requested === "webgpu") {
    if (!adapter) throw coded("not-supported", "WebGPU was asked for, but this browser offers no WebGPU adapter");
    return { backend: "webgpu", reason: "WebGPU, as asked for" };
  }
  if (!adapter) return { backend: "wasm", reason: "no WebGPU adapter in this browser: running on wasm" };
  // A fallback adapter (a CPU rasteriser such as SwiftShader) counts as none: wasm is much faster.
  const fallback = adapter.isFallbackAdapter || (adapter.info && adapter.info.isFallbackAdapter);
  if (fallback) return { backend: "wasm", reason: "only a software WebGPU adapter (no GPU): running on wasm" };
  return { backend: "webgpu", reason: "hardware WebGPU adapter" };
}

// onnxruntime-web's wasm threads: they need SharedArrayBuffer, i.e. a cross-origin isolated page.
function chooseThreads(requested) {
  const cores = self.navigator.hardwareConcurrency || 1;
  if (Number.isInteger(requested) && requested >= 1) {
    if (requested > 1 && !self.crossOriginIsolated) {
      throw coded("not-supported", `${requested} threads need a cross-origin isolated page (COOP/COEP headers)`);
    }
    return { threads: requested, reason: `${requested} thread${requested > 1 ? "s" : ""}, as asked for` };
  }
  if (!self.crossOriginIsolated) {
    return { threads: 1, reason: "1 thread: the page is not cross-origin isolated (no COOP/COEP headers)" };
  }
  const threads = Math.min(cores, MAX_AUTO_THREADS);
  const capped = cores > MAX_AUTO_THREADS ? `, at most ${MAX_AUTO_THREADS}` : "";
  return { threads, reason: `${threads} thread${threads > 1 ? "s" : ""} (${cores} cores${capped})` };
}

async function loadOrt(backend, threads) {
  const ort = await import(ORT_BUILDS[backend]);
  ort.env.logLevel = "error";
  ort.env.wasm.numThreads = threads;
  return ort;
}

async function startPython() {
  const indexURL = new URL("./vendor/pyodide/", import.meta.url).href;
  const [pyodide, archive] = await Promise.all([
    loadPyodide({ indexURL, stdout: (line) => console.log(line), stderr: (line) => console.warn(line) }),
    fetchOk(RUNTIME_ARCHIVE).then((r) => r.arrayBuffer()),
  ]);
  pyodide.unpackArchive(archive, "zip", { extractDir: PYTHON_APP_DIR });
  pyodide.runPython(`import sys; sys.path.insert(0, ${JSON.stringify(PYTHON_APP_DIR)})`);
  return pyodide;
}

// The bundle's manifest: from the server, or (offline) the copy stored when it was last loaded.
async function fetchManifest(base, cache) {
  let response;
  try {
    response = await fetch(new URL("manifest.json", base), { cache: "no-cache" });
  } catch (err) {
    const record = await cache.bundleRecord(base.href);
    if (record && typeof record.manifestText === "string") return record.manifestText;
    throw coded("network", `manifest.json: the server cannot be reached (${err.message}) and this model is not stored here`);
  }
  if (!response.ok) throw coded("bad-bundle", `manifest.json: the server answered HTTP ${response.status}`);
  return response.text();
}

// A WebSession on `backend` over the verified files (a PyProxy); throws the runtime's readable error.
async function openSession(pyodide, backend, threads, bundle, name, prefillChunk) {
  const ort = await loadOrt(backend, threads);
  const engine = pyodide.pyimport("qwen35web.runtime.engine_web").WebEngine(ort, backend, bundle.store);
  const entry = pyodide.pyimport("qwen35web.runtime.web_entry");
  try {
    const opened = await entry.open_session(bundle.manifestText, engine, bundle.store, name, prefillChunk ?? undefined);
    if (typeof opened === "string") checked(opened);
    return opened;
  } finally {
    engine.destroy();
    entry.destroy();
  }
}

// The bundle for `backend`: a site may carry one per backend (e.g. the int8 format that is fast in wasm).
function bundleUrl(bundles, backend) {
  return bundles[backend] || bundles.default;
}

// Fetches (or takes from storage) and verifies one bundle's files; {url, manifestText, store, weightsMs}.
async function loadBundle(pyodide, cache, url, storage, report) {
  const base = new URL(url);
  const started = performance.now();
  const manifestText = await fetchManifest(base, cache);
  const plan = checked(pyodide.pyimport("qwen35web.runtime.web_entry").download_plan(manifestText));
  await cache.recordBundle(base.href, manifestText, plan.files); // before downloading: eviction keeps these
  const store = new WeightStore(base, plan.files, cache, storage);
  await store.load(report);
  return { url: base.href, manifestText, store, weightsMs: performance.now() - started };
}

async function init(id, options) {
  const started = performance.now();
  const since = (t) => Math.round(performance.now() - t);
  const report = (progress) => post(id, "event", { progress });
  report({ phase: "runtime" });
  const python = startPython();
  python.catch(() => {}); // awaited below; a failure here must not also surface as unhandled
  const cache = await WeightCache.open();
  const requested = options.backend && options.backend !== "auto" ? options.backend : null;
  let { backend, reason: backendReason } = await chooseBackend(requested);
  const { threads, reason: threadsReason } = chooseThreads(options.threads);
  const pyodide = await python;
  const pythonMs = since(started);
  let bundle = await loadBundle(pyodide, cache, bundleUrl(options.bundles, backend), options.storage, report);
  report({ phase: "session" });
  const sessionStart = performance.now();
  const open = () => openSession(pyodide, backend, threads, bundle, options.name, options.prefillChunk);
  try {
    session = await open();
  } catch (err) {
    if (requested || backend === "wasm") throw err;
    // WebGPU was only our guess (e.g. the adapter lacks a feature this model needs): use wasm instead.
    console.warn(`WebGPU could not run this model (${readable(err)}); using wasm`);
    backend = "wasm";
    backendReason = `WebGPU could not run this model (${readable(err)}): running on wasm`;
    if (bundleUrl(options.bundles, backend) !== bundle.url) {
      bundle.store.release();
      bundle = await loadBundle(pyodide, cache, bundleUrl(options.bundles, backend), options.storage, report);
    }
    session = await open();
  } finally {
    bundle.store.release();
  }
  const evicted = await cache.evictUnreferenced();
  const timings = { pythonMs, weightsMs: Math.round(bundle.weightsMs), sessionMs: since(sessionStart), totalMs: since(started) };
  const facts = JSON.parse(session.describe());
  return {
    backend,
    backendReason,
    threads: backend === "wasm" ? threads : 1,
    threadsReason: backend === "wasm" ? threadsReason : "WebGPU: the model runs on the GPU",
    crossOriginIsolated: Boolean(self.crossOriginIsolated),
    model: options.name,
    bundleUrl: bundle.url,
    facts,
    weights: { ...bundle.store.stats, evictedEntries: evicted, cacheUsable: cache.usable },
    timings,
  };
}

// One streamed piece from Python as a delta event: a str is plain text; a dict (or a kind argument)
// may carry more (e.g. kind "reasoning"), passed along as it is.
function delta(piece, kind, extra) {
  const fields = (value) => {
    if (value && typeof value.toJs === "function") {
      const converted = value.toJs({ dict_converter: Object.fromEntries });
      value.destroy();
      return converted;
    }
    return value && typeof value === "object" ? value : {};
  };
  const event = typeof piece === "string" ? { text: piece } : fields(piece);
  Object.assign(event, fields(extra));
  if (typeof kind === "string") event.kind = kind;
  event.kind = event.kind || "text";
  return event;
}

async function generate(id, { request }) {
  if (cancelledBeforeStart.delete(id)) throw coded("aborted", "the generation was cancelled before it started");
  running = id;
  try {
    const onText = (piece, kind, extra) => post(id, "event", { delta: delta(piece, kind, extra) });
    return checked(await session.generate(JSON.stringify(request), onText));
  } finally {
    running = null;
  }
}

const HANDLERS = {
  init,
  generate,
  logits: async (id, { ids }) => checked(await session.logits(JSON.stringify(ids))).logits,
  tokenize: async (id, { text }) => checked(session.tokenize(text)).ids,
  stats: async () => checked(session.stats()),
};

async function handle(message) {
  const { id, type } = message;
  try {
    if (type !== "init" && !session) throw coded("runtime", "the model is not loaded");
    post(id, "result", { value: await HANDLERS[type](id, message) });
  } catch (err) {
    post(id, "error", { message: readable(err), code: err.code || "runtime" });
  }
}

// Not queued: it must reach the generation that is running now. `target` names one generate call
// (one that has not started yet is dropped when its turn comes); without it, whatever runs stops.
function stop({ id, target }) {
  if (target === undefined || target === running) {
    post(id, "result", { value: session ? session.cancel() : false });
    return;
  }
  cancelledBeforeStart.add(target);
  post(id, "result", { value: true });
}

self.onmessage = (event) => {
  const message = event.data;
  if (message.type === "stop") {
    stop(message);
    return;
  }
  if (!Object.hasOwn(HANDLERS, message.type)) {
    post(message.id, "error", { message: `unknown request "${message.type}"`, code: "bad-input" });
    return;
  }
  queue = queue.then(() => handle(message));
};
