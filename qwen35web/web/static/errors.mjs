// The module's typed errors. Failures cross the worker boundary as {code, message}; `errorFor`
// turns them back into these classes, so a page can tell a bad bundle from bad input, an
// unsupported browser, full storage, a lost network or a cancelled call (`instanceof` or `.code`).

export class Qwen35Error extends Error {
  constructor(message, code = "runtime") {
    super(message);
    this.name = "Qwen35Error";
    this.code = code;
  }
}

// The bundle is missing, malformed, of an unknown format, truncated or fails its sha256.
export class BundleError extends Qwen35Error {
  constructor(message) {
    super(message, "bad-bundle");
    this.name = "BundleError";
  }
}

// A prompt, token id or setting the runtime cannot honour.
export class InputError extends Qwen35Error {
  constructor(message) {
    super(message, "bad-input");
    this.name = "InputError";
  }
}

// This browser lacks what was asked for (WebGPU, a secure context, module workers).
export class NotSupportedError extends Qwen35Error {
  constructor(message) {
    super(message, "not-supported");
    this.name = "NotSupportedError";
  }
}

// Browser storage cannot hold the model (quota too small, storage denied).
export class StorageError extends Qwen35Error {
  constructor(message) {
    super(message, "storage");
    this.name = "StorageError";
  }
}

// The server could not be reached, or the connection dropped (what was received is kept).
export class NetworkError extends Qwen35Error {
  constructor(message) {
    super(message, "network");
    this.name = "NetworkError";
  }
}

// An AbortSignal fired (or dispose() ran). `stats` holds a cancelled generation's partial result.
export class AbortError extends Qwen35Error {
  constructor(message = "the operation was aborted", stats = undefined) {
    super(message, "aborted");
    this.name = "AbortError";
    if (stats !== undefined) this.stats = stats;
  }
}

// A conversation no longer fits the model's context: nothing was cut, a new chat is needed.
export class ContextFullError extends Qwen35Error {
  constructor(message) {
    super(message, "context-full");
    this.name = "ContextFullError";
  }
}

const CLASSES = {
  "context-full": ContextFullError,
  "bad-bundle": BundleError,
  "bad-input": InputError,
  "not-supported": NotSupportedError,
  storage: StorageError,
  network: NetworkError,
  aborted: AbortError,
};

export function errorFor(code, message) {
  const Class = CLASSES[code];
  return Class ? new Class(message) : new Qwen35Error(message, "runtime");
}

/** @typedef {"runtime" | keyof typeof CLASSES} ErrorCode */

/**
 * An Error carrying a code, for code that runs in the worker (no classes cross postMessage).
 * @param {ErrorCode} code
 * @param {string} message
 */
export function coded(code, message) {
  const err = /** @type {Error & {code: ErrorCode}} */ (new Error(message));
  err.code = code;
  return err;
}
