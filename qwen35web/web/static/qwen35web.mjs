// qwen35web: Qwen3.5 in a web page. The public module (types in qwen35web.d.mts; usage in docs/embedding.md).
//
//   import { load, siteModel } from "./qwen35web.mjs";
//   const model = await load({ bundle: "./models/tiny-qwen35/", onProgress: (p) => console.log(p) });
//   for await (const event of model.generate({ prompt: "Hello", maxNewTokens: 32 }, { signal })) {
//     if (event.type === "delta") output.append(event.text);       // event.kind: "text" | "reasoning"
//     else if (event.type === "done") console.log(event.stats);    // ("progress": the vision graph runs)
//   }
//   // A vision-language bundle takes images (Blob, File, ImageBitmap or URL) with a prompt or a message:
//   model.generate({ prompt: "What is in the picture?", images: [file] });
//   model.chat([{ role: "user", content: "And this one?", images: [blob] }]);
//   model.dispose();
//
// The model runs in a Web Worker (worker/worker.js beside this file, same origin): Pyodide hosts the Python
// runtime, which drives onnxruntime-web on WebGPU or wasm. Everything it loads lies beside this file.

import { AbortError, InputError, NotSupportedError, Qwen35Error, errorFor } from "./errors.mjs";
import { ChatCompletions } from "./module/completions.mjs";
import { REPLY, REQUEST } from "./module/messages.mjs";

export { AbortError, BundleError, ContextFullError, InputError, NetworkError, NotSupportedError, Qwen35Error, StorageError } from "./errors.mjs";
export { enableOffline } from "./module/shell.mjs";

const WORKER_URL = new URL("./worker/worker.js", import.meta.url);
const DEFAULT_INDEX = new URL("./models/index.json", import.meta.url);
const DEFAULT_MAX_NEW_TOKENS = 128;
// JSON (the worker's channel to Python) would turn NaN and Infinity into null, i.e. "use the
// default": refuse them here instead, so a bad setting is an error, never a silent default.
const NUMERIC_SETTINGS = [
  "maxNewTokens",
  "minNewTokens",
  "temperature",
  "topK",
  "topP",
  "repetitionPenalty",
  "presencePenalty",
  "frequencyPenalty",
  "reasoningBudget",
  "seed",
];

class WorkerClient {
  constructor(url) {
    this.worker = new Worker(url, { type: "module" });
    this.pending = new Map();
    this.nextId = 1;
    this.closed = null; // the error every later call gets, once terminated
    this.worker.onmessage = (event) => this.receive(event.data);
    this.worker.onerror = (event) => {
      event.preventDefault();
      this.terminate(new Qwen35Error(`the model's worker failed: ${event.message || "it could not start"}`));
    };
  }

  receive({ id, kind, ...payload }) {
    const call = this.pending.get(id);
    if (!call) return;
    if (kind === REPLY.event) {
      call.onEvent(payload);
      return;
    }
    this.pending.delete(id);
    if (kind === REPLY.result) call.resolve(payload.value);
    else call.reject(withApiError(errorFor(payload.code, payload.message), payload));
  }

  // {id, promise}: the id names the call for stop().
  /** @param {import("./module/messages.mjs").RequestType} type */
  start(type, payload = {}, onEvent = (/** @type {any} */ _event) => {}) {
    const id = this.nextId++;
    if (this.closed) return { id, promise: Promise.reject(this.closed) };
    const promise = new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onEvent });
      this.worker.postMessage({ id, type, ...payload });
    });
    return { id, promise };
  }

  /** @param {import("./module/messages.mjs").RequestType} type */
  call(type, payload = {}, onEvent = undefined) {
    return this.start(type, payload, onEvent).promise;
  }

  stop(target) {
    if (!this.closed) this.call(REQUEST.stop, target === undefined ? {} : { target }).catch(() => {});
  }

  terminate(error) {
    if (this.closed) return;
    this.closed = error;
    this.worker.terminate();
    for (const call of this.pending.values()) call.reject(error);
    this.pending.clear();
  }
}

// A refused chat-completions request: OpenAI's error object and HTTP status on the typed error.
/** @param {Error} error @param {{openai?: object, status?: number}} payload */
function withApiError(error, payload) {
  if (payload.openai) Object.assign(error, { error: payload.openai, status: payload.status });
  return error;
}

// A URL string resolved against the page (the worker would resolve it against its own script).
function imageSource(source) {
  if (typeof source !== "string") return source;
  return new URL(source, globalThis.document ? document.baseURI : self.location.href).href;
}

// A user message with `images` as the runtime reads it: a content list, the images first, then the text.
function imageMessage(message, imageIds) {
  const { images, content, ...rest } = message;
  if (message.role !== "user") throw new InputError(`only user messages take images, not a ${message.role} message`);
  if (typeof content !== "string" && content !== undefined) {
    throw new InputError("a message with images takes its text as a string `content`");
  }
  const parts = imageIds.map((id) => ({ type: "image", image_id: id }));
  return { ...rest, content: [...parts, { type: "text", text: content || "" }] };
}

function checkRequest(request) {
  if (!request || typeof request !== "object") throw new InputError("generate() takes a request object");
  for (const name of NUMERIC_SETTINGS) {
    const value = request[name];
    if (value !== undefined && value !== null && !Number.isFinite(value)) {
      throw new InputError(`${name} must be a finite number, got ${value}`);
    }
  }
  // Fields this module does not know travel on to the runtime unchanged (newer runtime options).
  // A setting left out (greedy included) takes the bundle's default from its generation_config.
  const { signal, onText, ...fields } = request;
  return {
    ...fields,
    chat: Boolean(fields.chat),
    ...(fields.greedy === undefined || fields.greedy === null ? {} : { greedy: Boolean(fields.greedy) }),
    maxNewTokens: fields.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS,
  };
}

// A directory URL (with its trailing slash), resolved against the page.
function bundleDirectory(value) {
  const url = new URL(String(value), globalThis.document ? document.baseURI : self.location.href);
  url.hash = "";
  url.search = "";
  if (url.pathname.endsWith("/manifest.json")) url.pathname = url.pathname.slice(0, -"manifest.json".length);
  if (!url.pathname.endsWith("/")) url.pathname += "/";
  return url.href;
}

function bundleUrls(bundle) {
  if (typeof bundle === "string" || bundle instanceof URL) return { default: bundleDirectory(bundle) };
  if (!bundle || typeof bundle !== "object" || !bundle.default) {
    throw new InputError("load() needs a bundle: its URL, or {default, wasm?, webgpu?} URLs");
  }
  return Object.fromEntries(Object.entries(bundle).map(([backend, url]) => [backend, bundleDirectory(url)]));
}

function nameOf(url) {
  return decodeURIComponent(new URL(url).pathname.split("/").filter(Boolean).pop() || "model");
}

// How much this site may still store, and whether its storage is persistent (asked for when `persist`).
async function storageFacts(persist) {
  const storage = globalThis.navigator && navigator.storage;
  if (!storage || !storage.estimate) return null;
  try {
    const { quota, usage } = await storage.estimate();
    let persisted = storage.persisted ? await storage.persisted() : false;
    if (!persisted && persist && storage.persist) persisted = await storage.persist();
    return { quota, usage, persisted };
  } catch (err) {
    console.warn(`browser storage cannot be queried (${err.message})`);
    return null;
  }
}

export class Model {
  /** @type {WorkerClient} */
  #client;
  #imageIds = new WeakMap(); // Blob / ImageBitmap -> Promise of its addImage() result
  #urlImages = new Map(); // absolute URL -> the same

  constructor(client, info) {
    this.#client = client;
    this.info = info;
    this.name = info.model;
    this.backend = info.backend;
    this.backendReason = info.backendReason;
    this.threads = info.threads;
    this.threadsReason = info.threadsReason;
    // chat(messages) is a turn of the runtime's own events; chat.completions.create speaks OpenAI's shapes.
    this.chat = Object.assign(
      /**
       * @param {import("./qwen35web.d.mts").ChatMessage[] | {messages: import("./qwen35web.d.mts").ChatMessage[]}} messages
       * @param {import("./qwen35web.d.mts").ChatOptions} [options]
       */
      (messages, options) => this.#chat(messages, options),
      { completions: new ChatCompletions(client) },
    );
  }

  get disposed() {
    return this.#client.closed !== null;
  }

  // Async iterator of {type: "delta", kind, text, ...} and, last, {type: "done", stats}. Aborting
  // `signal` stops before the next token and throws an AbortError whose `stats` has what was made.
  // With `images` the prompt becomes one user message (the images, then the text) rendered with the
  // bundle's chat template, as `qwen35web generate --chat --image` does.
  /**
   * @param {import("./qwen35web.d.mts").GenerateRequest} request
   * @param {{signal?: AbortSignal}} [options]
   */
  generate(request, { signal } = {}) {
    if (request && Array.isArray(request.images) && request.images.length) {
      const { images, prompt, ...rest } = request;
      const messages = [{ role: "user", content: prompt ?? "", images }];
      return this.#stream(checkRequest({ ...rest, messages, chat: true }), signal);
    }
    return this.#stream(checkRequest(request), signal);
  }

  // Decode, resize (as transformers' PIL processor would) and register an image with the model:
  // {imageId, tokens, width, height, sourceWidth, sourceHeight}. A bad image throws InputError. The
  // same Blob, ImageBitmap or URL again costs nothing (its id is kept).
  addImage(source) {
    const resolved = imageSource(source);
    const cache = typeof resolved === "string" ? this.#urlImages : this.#imageIds;
    const isObject = typeof resolved === "object" && resolved !== null;
    if ((isObject || typeof resolved === "string") && cache.has(resolved)) return cache.get(resolved);
    const added = this.#client.call(REQUEST.addImage, { source: resolved });
    if (isObject || typeof resolved === "string") {
      cache.set(resolved, added);
      added.catch(() => cache.delete(resolved)); // a failure is not kept: the next call tries again
    }
    return added;
  }

  // Messages with `images` turned into the runtime's content lists (each image added once).
  async #withImageIds(messages) {
    const out = [];
    for (const message of messages) {
      if (!message || !Array.isArray(message.images) || !message.images.length) {
        if (message && message.images !== undefined) {
          const { images, ...rest } = message;
          out.push(rest);
        } else out.push(message);
        continue;
      }
      const ids = [];
      for (const image of message.images) ids.push((await this.addImage(image)).imageId);
      out.push(imageMessage(message, ids));
    }
    return out;
  }

  async *#stream(request, signal) {
    if (signal && signal.aborted) throw new AbortError("the generation was aborted before it started");
    if (request.messages) request = { ...request, messages: await this.#withImageIds(request.messages) };
    if (signal && signal.aborted) throw new AbortError("the generation was aborted before it started");
    const queue = [];
    let wake = null;
    /** @type {{result?: any, error?: any} | null} */
    let outcome = null;
    const { id, promise } = this.#client.start(REQUEST.generate, { request }, (event) => {
      if (event.delta) queue.push({ type: "delta", ...event.delta });
      if (event.progress) queue.push({ type: "progress", ...event.progress });
      if (wake) wake();
    });
    promise.then(
      (result) => (outcome = { result }),
      (error) => (outcome = { error }),
    ).then(() => wake && wake());
    const onAbort = () => this.#client.stop(id);
    if (signal) signal.addEventListener("abort", onAbort, { once: true });
    try {
      for (;;) {
        while (queue.length) yield queue.shift();
        if (outcome) break;
        await new Promise((resolve) => (wake = resolve));
        wake = null;
      }
      if (outcome.error) throw outcome.error;
      if (signal && signal.aborted && outcome.result.stopReason === "cancelled") {
        throw new AbortError("the generation was aborted", outcome.result);
      }
      yield { type: "done", stats: outcome.result };
    } finally {
      if (signal) signal.removeEventListener("abort", onAbort);
      if (!outcome) {
        // The caller stopped iterating early: stop the worker too, so the model is free again.
        this.#client.stop(id);
        await promise.catch(() => {});
      }
    }
  }

  // One assistant turn of a chat: `messages` ([{role, content, reasoning_content?}], or an object with
  // `.messages`) rendered with the bundle's template. The same events as generate(); deltas say
  // whether they are reasoning or answer (`kind`), the done stats carry both (`reasoning`, `text`),
  // reusedTokens/prefilledTokens, firstTokenMs, promptTokens and contextTokens. A conversation that no
  // longer fits throws ContextFullError (nothing is cut), unless `dropOldest: true` asks to leave out
  // its oldest turns; the stats then say how many went (droppedMessages, droppedTurns).
  /**
   * @param {import("./qwen35web.d.mts").ChatMessage[] | {messages: import("./qwen35web.d.mts").ChatMessage[]}} messages
   * @param {import("./qwen35web.d.mts").ChatOptions} [options]
   */
  #chat(messages, { signal, enableThinking, ...settings } = {}) {
    const list = Array.isArray(messages) ? messages : messages && messages.messages;
    if (!Array.isArray(list)) throw new InputError("chat() takes a list of messages");
    /** @type {Record<string, any>} */
    const request = { ...settings, messages: list, chat: true };
    if (enableThinking !== undefined) request.enableThinking = Boolean(enableThinking);
    return this.#stream(checkRequest(request), signal);
  }

  // Prefill in the background what the next chat() over these messages will start with: `messages`
  // end with the message being typed (its stable part: all but its last word) or with the last reply
  // (the next user turn's opening). Resolves at once to {targetTokens}; the work stops within one
  // small chunk when any other call comes, and never changes a result. Call it as the person types
  // (debounced); chat() already prepares the next turn after each reply unless `prefillAhead: false`.
  // Conversations with images are not prepared ({targetTokens: 0}).
  /**
   * @param {Parameters<import("./qwen35web.d.mts").Model["prepare"]>[0]} messages
   * @param {{ enableThinking?: boolean }} [options]
   */
  async prepare(messages, { enableThinking } = {}) {
    const list = Array.isArray(messages) ? messages : messages && messages.messages;
    if (!Array.isArray(list)) throw new InputError("prepare() takes a list of messages");
    if (list.some((m) => m && Array.isArray(m.images) && m.images.length)) return { targetTokens: 0 };
    const request = { messages: list };
    if (enableThinking !== undefined) request.enableThinking = Boolean(enableThinking);
    return this.#client.call(REQUEST.prepare, { request });
  }

  // The conversation with the state its next turn resumes from, as bytes (store them anywhere). Its
  // images' pixels (at the model's size) are in the bytes too. Tool turns (assistant `tool_calls`,
  // `tool` messages) are kept; `tools`: those the turns were asked with (chat.completions.create's),
  // which the prompt holds, so that the next turn with the same tools reuses the state.
  /**
   * @param {Parameters<import("./qwen35web.d.mts").Model["saveConversation"]>[0]} messages
   * @param {{ tools?: import("./qwen35web.d.mts").ChatCompletionTool[] }} [options]
   */
  async saveConversation(messages, { tools } = {}) {
    const list = Array.isArray(messages) ? messages : messages && messages.messages;
    if (tools !== undefined && !Array.isArray(tools)) throw new InputError("saveConversation()'s tools must be a list");
    const request = { messages: await this.#withImageIds(list || []) };
    if (tools && tools.length) request.tools = tools;
    return this.#client.call(REQUEST.saveConversation, request);
  }

  // Load saved bytes back: {messages, tools, tokens}. Its next chat() (or chat.completions.create()
  // with those tools) prefills only the new tokens. Bytes of
  // another bundle, truncated or corrupted, throw InputError and change nothing.
  restoreConversation(bytes) {
    if (!(bytes instanceof Uint8Array)) throw new InputError("restoreConversation() takes a Uint8Array");
    return this.#client.call(REQUEST.restoreConversation, { bytes });
  }

  // Last position's logits after `tokenIds` (number[] of length vocabSize).
  logits(tokenIds) {
    return this.#client.call(REQUEST.logits, { ids: Array.from(tokenIds) });
  }

  tokenize(text) {
    return this.#client.call(REQUEST.tokenize, { text });
  }

  // {liveTensors, heldTensors, keptStates, keptBytes, keepMs}: leak checks and state reuse.
  stats() {
    return this.#client.call(REQUEST.stats);
  }

  // Stops whatever generation runs (generate's signal is the per-call way).
  stop() {
    this.#client.stop();
  }

  // Ends the worker: the model's memory (wasm heap, GPU buffers) is freed; later calls reject.
  dispose() {
    this.#client.terminate(new AbortError("the model was disposed"));
  }
}

// Load a bundle (a directory URL with manifest.json, or {default, wasm?, webgpu?} URLs per backend).
// The JSDoc types are the declarations' (qwen35web.d.mts): `make typecheck-js` checks this against them.
/**
 * @param {import("./qwen35web.d.mts").LoadOptions} options
 * @returns {Promise<import("./qwen35web.d.mts").Model>}
 */
export async function load(options = /** @type {any} */ ({})) {
  const bundles = bundleUrls(options.bundle);
  if (typeof Worker === "undefined") throw new NotSupportedError("this browser has no Web Workers");
  const { signal, onProgress } = options;
  if (signal && signal.aborted) throw new AbortError("loading was aborted");
  const storage = await storageFacts(options.persist !== false);
  const client = new WorkerClient(WORKER_URL);
  const onAbort = () => client.terminate(new AbortError("loading was aborted"));
  if (signal) signal.addEventListener("abort", onAbort, { once: true });
  try {
    const info = await client.call(
      REQUEST.init,
      {
        bundles,
        name: options.name || nameOf(bundles.default),
        backend: options.backend ?? "auto",
        threads: options.threads ?? "auto",
        prefillChunk: options.prefillChunk ?? null,
        maxContext: options.maxContext ?? null,
        maxImageTokens: options.maxImageTokens ?? null,
        maxPromptImageTokens: options.maxPromptImageTokens ?? null,
        storage: storage && { quota: storage.quota, usage: storage.usage },
      },
      (event) => event.progress && onProgress && onProgress(event.progress),
    );
    return new Model(client, { ...info, storage });
  } catch (err) {
    client.terminate(err);
    throw err;
  } finally {
    if (signal) signal.removeEventListener("abort", onAbort);
  }
}

// A model of a site made by `qwen35web site build`: {name, note, bytes, bundle} from its models/index.json
// (by default the one beside this module); `bundle` goes straight to load().
/**
 * @param {string} [name]
 * @param {{index?: string | URL}} [options]
 * @returns {Promise<import("./qwen35web.d.mts").SiteModel>}
 */
export async function siteModel(name = undefined, { index = DEFAULT_INDEX } = {}) {
  let response;
  try {
    response = await fetch(index);
  } catch (err) {
    throw errorFor("network", `models/index.json: the server cannot be reached (${err.message})`);
  }
  if (!response.ok) throw errorFor("bad-bundle", `models/index.json: the server answered HTTP ${response.status}`);
  const catalogue = await response.json();
  const chosen = name || catalogue.default;
  const entry = catalogue.models.find((m) => m.name === chosen);
  if (!entry) {
    const known = catalogue.models.map((m) => m.name).join(", ");
    throw new InputError(`unknown model "${chosen}" (this site has: ${known})`);
  }
  const base = new URL("./", response.url || index);
  const directory = (dir) => new URL(`${encodeURIComponent(dir)}/`, base).href;
  const bundle = { default: directory(entry.name) };
  for (const [backend, spec] of Object.entries(entry.backends || {})) bundle[backend] = directory(spec.dir);
  return { name: entry.name, note: entry.note || "", bytes: entry.bytes, bundle };
}
