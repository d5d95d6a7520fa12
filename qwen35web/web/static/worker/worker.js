// The model's engine room, off the main thread so the page never freezes: Pyodide hosts
// qwen35web.runtime, which drives onnxruntime-web (WebGPU or wasm). Driven by qwen35web.mjs.
// Its messages (in: requests, out: events, a result or an error) are the table in module/messages.mjs.

import { coded } from "../errors.mjs";
import { REPLY, REQUEST } from "../module/messages.mjs";
import { prepareImage } from "./images.js";
import { checked, loadModel, readable } from "./loader.js";

let session = null; // PyProxy of qwen35web.runtime.browser.session.WebSession
let vision = null; // the bundle's image settings (browser/images.vision_facts), null for a text-only one
let queue = Promise.resolve(); // calls into Python run one after the other
let running = null; // id of the generate call in progress
const cancelledBeforeStart = new Set();

function post(id, kind, payload = {}, transfer = []) {
  self.postMessage({ id, kind, ...payload }, transfer);
}

async function init(id, options) {
  const loaded = await loadModel(options, (progress) => post(id, REPLY.event, { progress }));
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
    const onText = (piece, kind, extra) => post(id, REPLY.event, { delta: delta(piece, kind, extra) });
    const onProgress = (json) => post(id, REPLY.event, { progress: JSON.parse(json) });
    return checked(await session.generate(JSON.stringify(request), onText, onProgress));
  } finally {
    running = null;
  }
}

// The conversation (with the tools its turns were rendered with) and its state as saved_conversation's
// bytes (a Uint8Array, handed over without a copy).
async function saveConversation(id, { messages, tools }) {
  const saved = await session.save_conversation(JSON.stringify(messages), tools ? JSON.stringify(tools) : null);
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

// An image_url part the runtime's mapping reads as an image (openai_api/messages.image_bytes): a base64
// data URL of an image type (or none). Anything else is left to the runtime, which refuses it by name.
function isImageDataUrl(url) {
  if (typeof url !== "string" || !url.startsWith("data:")) return false;
  const comma = url.indexOf(",");
  if (comma < 0) return false;
  const header = url.slice("data:".length, comma);
  const mediaType = header.split(";")[0];
  return header.endsWith(";base64") && (!mediaType || mediaType.startsWith("image/"));
}

// A base64 data URL's bytes as a Blob: decoded here, since the page's CSP lets nothing fetch a data: URL.
function dataUrlBlob(url) {
  const comma = url.indexOf(",");
  const mediaType = url.slice("data:".length, comma).split(";")[0];
  let binary;
  try {
    binary = atob(url.slice(comma + 1));
  } catch {
    throw coded("bad-input", "the data URL is not valid base64");
  }
  return new Blob([Uint8Array.from(binary, (c) => c.charCodeAt(0))], { type: mediaType });
}

// The request's image parts decoded and registered as addImage does, in the order the runtime's mapping
// meets them (by message, then by part; a user message whose parts are all text has none): their ids.
async function requestImages(id, request) {
  const ids = [];
  const messages = request && Array.isArray(request.messages) ? request.messages : [];
  for (const [i, message] of messages.entries()) {
    if (!message || message.role !== "user" || !Array.isArray(message.content)) continue;
    for (const [j, part] of message.content.entries()) {
      if (!part || part.type !== "image_url") continue;
      const url = typeof part.image_url === "string" ? part.image_url : part.image_url && part.image_url.url;
      if (!isImageDataUrl(url)) continue;
      try {
        ids.push((await addImage(id, { source: dataUrlBlob(url) })).imageId);
      } catch (err) {
        throw coded(err.code || "bad-input", `messages[${i}].content[${j}]: ${err.message}`);
      }
    }
  }
  return ids;
}

// Python's answer, or its error thrown with OpenAI's error object and status kept (handle() passes them on).
function answered(json) {
  const value = JSON.parse(json);
  if (value && value.error) {
    throw Object.assign(coded(value.code || "runtime", value.error), { openai: value.openai, status: value.status });
  }
  return value;
}

// model.chat.completions.create: {response, stopReason} (response null when streamed as chunk events).
async function chatCompletion(id, { request }) {
  if (cancelledBeforeStart.delete(id)) throw coded("aborted", "the request was cancelled before it started");
  const imageIds = await requestImages(id, request);
  if (cancelledBeforeStart.delete(id)) throw coded("aborted", "the request was cancelled before it started");
  running = id;
  try {
    const onChunk = (json) => post(id, REPLY.event, { chunk: JSON.parse(json) });
    return answered(await session.chat_completion(JSON.stringify(request), onChunk, JSON.stringify(imageIds)));
  } finally {
    running = null;
  }
}

// Every queued request of module/messages.mjs (stop is not queued: see below); the type makes a request
// without its handler a type error.
/** @type {Record<Exclude<import("../module/messages.mjs").RequestType, "stop">, (id: number, message: any) => Promise<any>>} */
const HANDLERS = {
  [REQUEST.addImage]: addImage,
  [REQUEST.saveConversation]: saveConversation,
  [REQUEST.restoreConversation]: async (id, { bytes }) => checked(await session.restore_conversation(bytes)),
  // Starts background prefill (Python keeps it running between calls; any later call pre-empts it).
  [REQUEST.prepare]: async (id, { request }) => checked(await session.prepare(JSON.stringify(request))),
  [REQUEST.init]: init,
  [REQUEST.generate]: generate,
  [REQUEST.chatCompletion]: chatCompletion,
  [REQUEST.logits]: async (id, { ids }) => checked(await session.logits(JSON.stringify(ids))).logits,
  [REQUEST.tokenize]: async (id, { text }) => checked(session.tokenize(text)).ids,
  [REQUEST.stats]: async () => checked(await session.stats()),
};

async function handle(message) {
  const { id, type } = message;
  try {
    if (type !== REQUEST.init && !session) throw coded("runtime", "the model is not loaded");
    const value = await HANDLERS[type](id, message);
    post(id, REPLY.result, { value }, value instanceof Uint8Array ? [value.buffer] : []);
  } catch (err) {
    const openai = err.openai ? { openai: err.openai, status: err.status } : {};
    post(id, REPLY.error, { message: readable(err), code: err.code || "runtime", ...openai });
  }
}

// Not queued: it must reach the generation that is running now. `target` names one generate call
// (one that has not started yet is dropped when its turn comes); without it, whatever runs stops.
function stop({ id, target }) {
  if (target === undefined || target === running) {
    post(id, REPLY.result, { value: session ? session.cancel() : false });
    return;
  }
  cancelledBeforeStart.add(target);
  post(id, REPLY.result, { value: true });
}

self.onmessage = (event) => {
  const message = event.data;
  if (message.type === REQUEST.stop) {
    stop(message);
    return;
  }
  if (!Object.hasOwn(HANDLERS, message.type)) {
    post(message.id, REPLY.error, { message: `unknown request "${message.type}"`, code: "bad-input" });
    return;
  }
  queue = queue.then(() => handle(message));
};
