// model.chat.completions.create: OpenAI's chat-completions request and response objects in the page, so
// code written for an OpenAI-compatible browser engine runs on this one. The request goes to the worker
// as it is (REQUEST.chatCompletion) and reaches the mapping the native server uses (runtime/openai_api,
// through WebSession.chat_completion).
//
//   const reply = await model.chat.completions.create({ messages, tools, tool_choice: "auto" });
//   const chunks = await model.chat.completions.create({ messages, stream: true }, { signal });
//   for await (const chunk of chunks) out.append(chunk.choices[0]?.delta.content ?? "");
//
// A refused request rejects create() with the module's typed error (InputError, ContextFullError, ...)
// carrying OpenAI's error object (`.error`) and HTTP status (`.status`); a streamed one rejects before
// its first chunk, as OpenAI's client does. Aborting `signal`, or leaving the chunks' loop early, stops
// the generation before its next token (the abort then throws AbortError).

import { AbortError, InputError } from "../errors.mjs";
import { REQUEST } from "./messages.mjs";

// JSON would turn NaN and Infinity into null ("use the default"): refused here instead.
const NUMERIC_FIELDS = [
  "temperature",
  "top_p",
  "top_k",
  "max_tokens",
  "max_completion_tokens",
  "min_tokens",
  "seed",
  "presence_penalty",
  "frequency_penalty",
  "repetition_penalty",
  "top_logprobs",
];

function checkParams(params) {
  if (!params || typeof params !== "object" || Array.isArray(params)) {
    throw new InputError("chat.completions.create() takes a request object");
  }
  for (const name of NUMERIC_FIELDS) {
    const value = params[name];
    if (value !== undefined && value !== null && !Number.isFinite(value)) {
      throw new InputError(`'${name}' must be a finite number, got ${value}`);
    }
  }
  const { signal, ...request } = params; // a signal belongs in the options; tolerated in the body
  return { request, signal };
}

// One request in flight: the chunks as they come, then the worker's {response, stopReason} or its error.
class Call {
  constructor(client, request, signal) {
    this.client = client;
    this.signal = signal;
    this.queue = [];
    /** @type {{result?: any, error?: any} | null} */
    this.outcome = null;
    this.wake = null;
    const { id, promise } = client.start(REQUEST.chatCompletion, { request }, (event) => {
      if (event.chunk) this.queue.push(event.chunk);
      this.wakeUp();
    });
    this.id = id;
    this.done = promise
      .then(
        (result) => (this.outcome = { result }),
        (error) => (this.outcome = { error }),
      )
      .then(() => this.wakeUp());
    this.onAbort = () => client.stop(id);
    if (signal) signal.addEventListener("abort", this.onAbort, { once: true });
  }

  wakeUp() {
    const wake = this.wake;
    this.wake = null;
    if (wake) wake();
  }

  next() {
    return new Promise((resolve) => (this.wake = resolve));
  }

  release() {
    if (this.signal) this.signal.removeEventListener("abort", this.onAbort);
  }

  // The error, or an AbortError where the signal stopped the reply; else the worker's result.
  settled() {
    if (this.outcome.error) throw this.outcome.error;
    if (this.signal && this.signal.aborted && this.outcome.result.stopReason === "cancelled") {
      throw new AbortError("the chat completion was aborted");
    }
    return this.outcome.result;
  }

  async response() {
    try {
      await this.done;
      return this.settled().response;
    } finally {
      this.release();
    }
  }

  // Resolves once the first chunk came (the request was accepted), or rejects with the refusal.
  async accepted() {
    while (!this.queue.length && !this.outcome) await this.next();
    if (this.outcome && this.outcome.error) {
      this.release();
      throw this.outcome.error;
    }
  }

  async *chunks() {
    try {
      for (;;) {
        while (this.queue.length) yield this.queue.shift();
        if (this.outcome) break;
        await this.next();
      }
      this.settled();
    } finally {
      this.release();
      if (!this.outcome) {
        // The caller left the loop early: stop the generation, so the model is free again.
        this.client.stop(this.id);
        await this.done;
      }
    }
  }
}

export class ChatCompletions {
  #client;

  /** @param {{start: Function, stop: Function}} client the module's WorkerClient */
  constructor(client) {
    this.#client = client;
  }

  /**
   * @param {import("../qwen35web.d.mts").ChatCompletionCreateParams} params
   * @param {{signal?: AbortSignal}} [options]
   * @returns {Promise<any>}
   */
  async create(params, options = {}) {
    const { request, signal: bodySignal } = checkParams(params);
    const signal = (options && options.signal) || bodySignal;
    if (signal && signal.aborted) throw new AbortError("the chat completion was aborted before it started");
    const call = new Call(this.#client, request, signal);
    if (!request.stream) return call.response();
    await call.accepted();
    return call.chunks();
  }
}
