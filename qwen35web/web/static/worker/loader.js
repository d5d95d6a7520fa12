// Loading a model in the worker: Pyodide with qwen35web.runtime, the bundle's verified files, onnxruntime-web
// on the chosen backend, then the runtime's session over them. The slow parts overlap: the manifest and the
// weights (from storage or the network) and onnxruntime-web's own start-up run while Pyodide starts; only
// the session needs all of them. Each part's own time is in the result's `timings`.

import { coded } from "../errors.mjs";
import { warmUp } from "./ort-warmup.js";
import { startPython } from "./python-start.js";
import { WeightCache } from "./weight-cache.js";
import { planFromManifest } from "./weights.js";

const ORT_BUILDS = {
  webgpu: "../vendor/ort/ort.webgpu.bundle.min.mjs", // native WebGPU build (asyncify wasm)
  wasm: "../vendor/ort/ort.wasm.bundle.min.mjs",
};
// Threads onnxruntime-web's wasm gets when the page does not ask: one per core, at most this many.
// Measured here (bench/results/threads.md) only up to the 2 cores this machine has; 4 is
// onnxruntime-web's own ceiling for its default.
const MAX_AUTO_THREADS = 4;

// One readable line: for a Python exception, its last line ("Type: message") without the traceback.
export function readable(err) {
  const text = String((err && err.message) || err || "unknown error").trim();
  if (err && err.type && text.includes("Traceback")) {
    const lines = text.split("\n").filter((line) => line.trim());
    return lines[lines.length - 1];
  }
  return text;
}

// browser/session answers JSON; {"error": message, "code": code} is a failure, its code carried by the Python
// error's class (qwen35web.runtime.errors: a subclass has its parent's code unless it names its own).
export function checked(json) {
  const value = JSON.parse(json);
  if (value && value.error) throw coded(value.code || "runtime", value.error);
  return value;
}

// Durations of the load's parts (they overlap, so they do not add up to the total).
class Timings {
  constructor() {
    this.started = performance.now();
    this.ms = {};
  }

  time(name, promise) {
    const start = performance.now();
    const done = () => (this.ms[`${name}Ms`] = Math.round(performance.now() - start));
    promise.then(done, done);
    return promise;
  }

  result() {
    return { ...this.ms, totalMs: Math.round(performance.now() - this.started) };
  }
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

// onnxruntime-web for `backend`, its runtime already started (see ort-warmup.js).
async function startOrt(backend, threads) {
  const ort = await import(ORT_BUILDS[backend]);
  ort.env.logLevel = "error";
  ort.env.wasm.numThreads = threads;
  await warmUp(ort, backend);
  return ort;
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

// A bundle's verified files as the engine reads them (bytes/text/externalData), loaded by weights-worker.js.
class BundleFiles {
  constructor(files) {
    this.files = files;
    this.data = new Map();
    this.stats = null;
    this.stop = null; // cancel(): ends the worker and rejects the load
  }

  load(url, manifestText, storage, report) {
    return new Promise((resolve, reject) => {
      const worker = new Worker(new URL("./weights-worker.js", import.meta.url), { type: "module" });
      const finish = (error) => {
        worker.terminate();
        this.stop = null;
        if (error) reject(error);
        else resolve();
      };
      this.stop = () => finish(coded("aborted", "the download was cancelled"));
      worker.onmessage = ({ data }) => {
        if (data.progress) return report(data.progress);
        if (data.error) return finish(coded(data.error.code, data.error.message));
        for (const [path, buffer] of Object.entries(data.done.buffers)) this.data.set(path, new Uint8Array(buffer));
        this.stats = data.done.stats;
        finish(null);
      };
      worker.onerror = (event) => {
        event.preventDefault();
        finish(new Error(`the weights worker failed: ${event.message || "it could not start"}`));
      };
      worker.postMessage({ url, manifestText, files: this.files, storage });
    });
  }

  cancel() {
    if (this.stop) this.stop();
  }

  bytes(path) {
    const bytes = this.data.get(path);
    if (!bytes) throw new Error(`bundle file ${path} was not loaded`);
    return bytes;
  }

  text(path) {
    return new TextDecoder("utf-8").decode(this.bytes(path));
  }

  externalData(path) {
    const file = this.files.find((f) => f.path === path);
    return file ? file.externalData : [];
  }

  // The sessions hold their own copies once created: drop ours.
  release() {
    this.data.clear();
  }
}

// One bundle: its manifest, and `loading`, its files (from storage or the network) into `store`.
class Bundle {
  constructor(url, manifestText, context) {
    this.url = url;
    this.manifestText = manifestText;
    this.context = context;
    this.store = null;
    this.loading = null;
  }

  static async open(url, context) {
    const base = new URL(url);
    const manifestText = await context.timings.time("manifest", fetchManifest(base, context.cache));
    const bundle = new Bundle(base.href, manifestText, context);
    const early = planFromManifest(manifestText);
    if (early) bundle.load(early); // before Python is up; confirm() checks it against Python's plan
    return bundle;
  }

  load(files) {
    const { storage, report, timings } = this.context;
    this.store = new BundleFiles(files);
    this.loading = timings.time("weights", this.store.load(this.url, this.manifestText, storage, report));
    this.loading.catch(() => {}); // awaited in confirm(); a failure must not also surface as unhandled
  }

  // Python's plan validates the manifest; the files it names are then loaded (usually already are).
  async confirm(pyodide) {
    let plan;
    try {
      plan = checked(pyodide.pyimport("qwen35web.runtime.browser.session").download_plan(this.manifestText));
    } catch (err) {
      if (this.store) this.store.cancel();
      throw err;
    }
    if (!this.store || JSON.stringify(plan.files) !== JSON.stringify(this.store.files)) {
      if (this.store) {
        this.store.cancel();
        await this.loading.catch(() => {});
      }
      this.load(plan.files);
    }
    await this.loading;
  }
}

// A WebSession on `backend` over the verified files (a PyProxy); throws the runtime's readable error.
async function openSession(pyodide, ort, backend, bundle, options) {
  const engine = pyodide.pyimport("qwen35web.runtime.browser.engine").WebEngine(ort, backend, bundle.store);
  const entry = pyodide.pyimport("qwen35web.runtime.browser.session");
  try {
    const opened = await entry.open_session(
      bundle.manifestText,
      engine,
      bundle.store,
      options.name,
      options.prefillChunk ?? undefined,
      options.maxContext ?? undefined,
      options.maxImageTokens ?? undefined,
      options.maxPromptImageTokens ?? undefined,
    );
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

// {session, info}: the runtime's WebSession (a PyProxy) and the load's facts for the page.
export async function loadModel(options, report) {
  const timings = new Timings();
  report({ phase: "runtime" });
  const python = timings.time("python", startPython(timings));
  python.catch(() => {}); // awaited below
  const cache = await WeightCache.open();
  const context = { cache, storage: options.storage, report, timings };
  const requested = options.backend && options.backend !== "auto" ? options.backend : null;
  let { backend, reason: backendReason } = await chooseBackend(requested);
  const { threads, reason: threadsReason } = chooseThreads(options.threads);
  let ort = timings.time("ort", startOrt(backend, threads));
  ort.catch(() => {}); // awaited below
  let bundle = await Bundle.open(bundleUrl(options.bundles, backend), context);
  const { pyodide, fromMemoryImage } = await python;
  await bundle.confirm(pyodide);
  report({ phase: "session" });
  const sessionStart = performance.now();
  let session;
  try {
    session = await openSession(pyodide, await ort, backend, bundle, options);
  } catch (err) {
    if (requested || backend === "wasm") throw err;
    // WebGPU was only our guess (e.g. the adapter lacks a feature this model needs): use wasm instead.
    console.warn(`WebGPU could not run this model (${readable(err)}); using wasm`);
    backend = "wasm";
    backendReason = `WebGPU could not run this model (${readable(err)}): running on wasm`;
    ort = startOrt(backend, threads);
    if (bundleUrl(options.bundles, backend) !== bundle.url) {
      bundle.store.release();
      bundle = await Bundle.open(bundleUrl(options.bundles, backend), context);
      await bundle.confirm(pyodide);
    }
    session = await openSession(pyodide, await ort, backend, bundle, options);
  } finally {
    bundle.store.release();
  }
  timings.ms.sessionMs = Math.round(performance.now() - sessionStart);
  const evicted = await cache.evictUnreferenced();
  return {
    session,
    info: {
      backend,
      backendReason,
      threads: backend === "wasm" ? threads : 1,
      threadsReason: backend === "wasm" ? threadsReason : "WebGPU: the model runs on the GPU",
      crossOriginIsolated: Boolean(self.crossOriginIsolated),
      pythonFromSnapshot: fromMemoryImage, // the public name (Pyodide calls the image a memory snapshot)
      model: options.name,
      bundleUrl: bundle.url,
      facts: JSON.parse(session.describe()),
      weights: { ...bundle.store.stats, evictedEntries: evicted, cacheUsable: cache.usable },
      timings: timings.result(),
    },
  };
}
