// The page's engine room, off the main thread so the UI never freezes: Pyodide hosts qwen35web.runtime,
// which drives onnxruntime-web (WebGPU or wasm). Messages in: {id, type, ...}; out: {id, kind, ...}
// with kind "event" (progress, streamed text), "result" or "error".

import { loadPyodide } from "./vendor/pyodide/pyodide.mjs";
import { WeightStore } from "./weights.js";

const ORT_BUILDS = {
  webgpu: "./vendor/ort/ort.webgpu.bundle.min.mjs", // native WebGPU build (asyncify wasm)
  wasm: "./vendor/ort/ort.wasm.bundle.min.mjs",
};
const RUNTIME_ARCHIVE = "./py/runtime.zip";
const MODELS_INDEX = "./models/index.json";
const PYTHON_APP_DIR = "/home/pyodide/app";

let session = null; // PyProxy of qwen35web.runtime.web_entry.WebSession
let queue = Promise.resolve(); // calls into Python run one after the other

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

function checked(json) {
  const value = JSON.parse(json);
  if (value && value.error) throw new Error(value.error);
  return value;
}

async function fetchOk(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: the server answered HTTP ${response.status}`);
  return response;
}

async function chooseBackend(requested) {
  if (requested && !Object.hasOwn(ORT_BUILDS, requested)) {
    throw new Error(`unknown backend "${requested}" (use ?backend=webgpu or ?backend=wasm)`);
  }
  if (requested === "wasm") return { backend: "wasm", reason: "wasm, as asked for with ?backend=wasm" };
  const adapter = self.navigator.gpu ? await self.navigator.gpu.requestAdapter().catch(() => null) : null;
  if (requested === "webgpu") {
    if (!adapter) throw new Error("?backend=webgpu was asked for, but this browser offers no WebGPU adapter");
    return { backend: "webgpu", reason: "WebGPU, as asked for with ?backend=webgpu" };
  }
  if (!adapter) return { backend: "wasm", reason: "no WebGPU adapter in this browser: running on wasm" };
  // A fallback adapter (a CPU rasteriser such as SwiftShader) counts as none: wasm is much faster.
  const fallback = adapter.isFallbackAdapter || (adapter.info && adapter.info.isFallbackAdapter);
  if (fallback) return { backend: "wasm", reason: "only a software WebGPU adapter (no GPU): running on wasm" };
  return { backend: "webgpu", reason: "hardware WebGPU adapter" };
}

async function loadOrt(backend) {
  const ort = await import(ORT_BUILDS[backend]);
  ort.env.logLevel = "error";
  // Threads need cross-origin isolation (serve --coop-coep); on 2 cores one thread is faster anyway.
  ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
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

async function chooseModel(requested) {
  const index = await (await fetchOk(MODELS_INDEX)).json();
  const name = requested || index.default;
  const model = index.models.find((m) => m.name === name);
  if (!model) {
    const known = index.models.map((m) => m.name).join(", ");
    throw new Error(`unknown model "${name}" (this site has: ${known})`);
  }
  return model;
}

// A WebSession on `backend` over the verified files (a PyProxy); throws the runtime's readable error.
async function openSession(pyodide, backend, manifestText, store, model, prefillChunk) {
  const ort = await loadOrt(backend);
  const engine = pyodide.pyimport("qwen35web.runtime.engine_web").WebEngine(ort, backend, store);
  const entry = pyodide.pyimport("qwen35web.runtime.web_entry");
  try {
    const opened = await entry.open_session(manifestText, engine, store, model.name, prefillChunk ?? undefined);
    if (typeof opened === "string") checked(opened);
    return opened;
  } finally {
    engine.destroy();
    entry.destroy();
  }
}

// The site's directory of `model`'s bundle for `backend`: a site may carry one bundle per backend
// (`qwen35web site build --wasm-bundle`), e.g. the int8 format that is fast in wasm.
function bundleDir(model, backend) {
  return model.backends?.[backend]?.dir ?? model.name;
}

// Fetches and verifies one bundle's files; {dir, manifestText, store, weightsMs}.
async function loadBundle(id, pyodide, dir) {
  const base = new URL(`./models/${encodeURIComponent(dir)}/`, self.location.href);
  const manifestText = await (await fetchOk(new URL("manifest.json", base))).text();
  const plan = checked(pyodide.pyimport("qwen35web.runtime.web_entry").download_plan(manifestText));
  const store = new WeightStore(base, plan.files);
  const started = performance.now();
  await store.load((progress) => post(id, "event", { progress }));
  return { dir, manifestText, store, weightsMs: performance.now() - started };
}

async function init(id, { backend: requested, model: requestedModel, prefillChunk }) {
  const started = performance.now();
  const since = (t) => Math.round(performance.now() - t);
  let { backend, reason: backendReason } = await chooseBackend(requested);
  const [pyodide, model] = await Promise.all([startPython(), chooseModel(requestedModel)]);
  const pythonMs = since(started);
  let bundle = await loadBundle(id, pyodide, bundleDir(model, backend));
  post(id, "event", { progress: { phase: "session" } });
  const sessionStart = performance.now();
  const open = () => openSession(pyodide, backend, bundle.manifestText, bundle.store, model, prefillChunk);
  try {
    session = await open();
  } catch (err) {
    if (requested || backend === "wasm") throw err;
    // WebGPU was only our guess (e.g. the adapter lacks a feature this model needs): use wasm instead.
    console.warn(`WebGPU could not run this model (${readable(err)}); using wasm`);
    backend = "wasm";
    backendReason = `WebGPU could not run this model (${readable(err)}): running on wasm`;
    if (bundleDir(model, backend) !== bundle.dir) {
      bundle.store.release();
      bundle = await loadBundle(id, pyodide, bundleDir(model, backend));
    }
    session = await open();
  } finally {
    bundle.store.release();
  }
  const timings = {
    pythonMs,
    weightsMs: Math.round(bundle.weightsMs),
    sessionMs: since(sessionStart),
    totalMs: since(started),
  };
  const facts = JSON.parse(session.describe());
  const weights = bundle.store.stats;
  return { backend, backendReason, model: model.name, bundle: bundle.dir, note: model.note || "", facts, weights, timings };
}

async function generate(id, { request }) {
  const onText = (piece) => post(id, "event", { text: piece });
  return checked(await session.generate(JSON.stringify(request), onText));
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
    if (type !== "init" && !session) throw new Error("the model is not loaded");
    post(id, "result", { value: await HANDLERS[type](id, message) });
  } catch (err) {
    post(id, "error", { message: readable(err) });
  }
}

self.onmessage = (event) => {
  const message = event.data;
  if (message.type === "stop") {
    // Not queued: it must reach the generation that is running now.
    post(message.id, "result", { value: session ? session.cancel() : false });
    return;
  }
  if (!Object.hasOwn(HANDLERS, message.type)) {
    post(message.id, "error", { message: `unknown request "${message.type}"` });
    return;
  }
  queue = queue.then(() => handle(message));
};
