// The model's engine room, off the main thread so the page never freezes: Pyodide hosts
// qwen35web.runtime, which drives onnxruntime-web (WebGPU or wasm). Driven by qwen35web.mjs.
// Messages in: {id, type, ...}; out: {id, kind, ...} with kind "event" (progress, streamed deltas),
// "result" or "error" ({message, code}: errors.mjs turns the code back into a class).

import { coded } from "./errors.mjs";
import { prepareImage } from "./images.js";
import { checked, loadModel, readable } from "./loader.js";

let session = null; // PyProxy of qwen35web.runtime.web_entry.WebSession
let vision = null; // the bundle's image settings (web_images.vision_facts), null for a text-only one
let queue = Promise.resolve(); // calls into Python run one after the other
let running = null; // id of the generate call in progress
const cancelledBeforeStart = new Set();

function post(id, kind, payload = {}, transfer = []) {
  self.postMessage({ id, kind, ...payload }, transfer);
}

async function init(id, options) {
  const loaded = await loadModel(options, (progress) => post(id, "event", { progress }));
  session = loaded.session;
  vision = loaded.info.facts.vision;
  return loaded.info;
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
    const onProgress = (json) => post(id, "event", { progress: JSON.parse(json) });
    return checked(await session.generate(JSON.stringify(request), onText, onProgress));
  } finally {
    running = null;
  }
}

// The conversation and its state as saved_conversation's bytes (a Uint8Array, handed over without a copy).
async function saveConversation(id, { messages }) {
  const saved = await session.save_conversation(JSON.stringify(messages));
  if (typeof saved === "string") checked(saved);
  try {
    return saved.toJs();
  } finally {
    saved.destroy();
  }
}

// An image (Blob, File, ImageBitmap or absolute URL) decoded and resized here, as Pillow would, to the
// size Python names; then registered with the runtime: {imageId, tokens, width, height, sourceWidth, sourceHeight}.
async function addImage(id, { source }) {
  if (!vision) throw coded("bad-input", "this model takes no images (its bundle has no vision graph)");
  const targetSize = (height, width) => {
    const size = checked(session.image_target_size(height, width));
    return [size.height, size.width];
  };
  const image = await prepareImage(source, { targetSize, resample: vision.resample });
  const added = checked(session.add_image(image.height, image.width, image.rgb));
  const { rgb, ...size } = image;
  return { ...added, ...size };
}

const HANDLERS = {
  addImage,
  saveConversation,
  restoreConversation: async (id, { bytes }) => checked(await session.restore_conversation(bytes)),
  // Starts background prefill (Python keeps it running between calls; any later call pre-empts it).
  prepare: async (id, { request }) => checked(await session.prepare(JSON.stringify(request))),
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
    const value = await HANDLERS[type](id, message);
    post(id, "result", { value }, value instanceof Uint8Array ? [value.buffer] : []);
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
