// Types of qwen35web.mjs: Qwen3.5 in a web page (Pyodide + onnxruntime-web in a Web Worker).

export type Backend = "webgpu" | "wasm";

/** A bundle directory URL (holding manifest.json), or one per backend with a default. */
export type BundleSource = string | URL | ({ default: string | URL } & Partial<Record<Backend, string | URL>>);

export type LoadPhase = "runtime" | "download" | "session";

export interface LoadProgress {
  phase: LoadPhase;
  /** download: bytes fetched so far (including bytes resumed from an earlier, broken-off download). */
  loaded?: number;
  /** download: bytes this load fetches (0 when every file came from browser storage). */
  total?: number;
  /** download: the file the last bytes belong to. */
  file?: string;
  /** the first download event: bytes taken from browser storage. */
  cachedBytes?: number;
}

export interface LoadOptions {
  bundle: BundleSource;
  /** Shown in stats; default: the bundle directory's name. */
  name?: string;
  /** "auto" (default): WebGPU on a hardware adapter, else wasm; the reason is in Model.backendReason. */
  backend?: Backend | "auto";
  /** wasm threads: "auto" (default) one per core up to a cap, when the page is cross-origin isolated. */
  threads?: number | "auto";
  /** Prompt tokens per prefill step. */
  prefillChunk?: number;
  /** Tokens a conversation may hold (default and ceiling: the model's positions). */
  maxContext?: number;
  /** Vision bundles: resize each image to at most this many image tokens (default: the bundle's cap for the backend). */
  maxImageTokens?: number;
  /** Vision bundles: refuse a prompt whose images need more image tokens together (default: the bundle's). */
  maxPromptImageTokens?: number;
  onProgress?: (progress: LoadProgress) => void;
  /** Aborting ends the load (and its worker) with an AbortError. */
  signal?: AbortSignal;
  /** Ask for persistent storage (navigator.storage.persist()); default true. */
  persist?: boolean;
}

export interface ModelFacts {
  model: string;
  backend: Backend;
  dtype: string;
  ops: string;
  vocabSize: number;
  layers: number;
  hiddenSize: number;
  /** The decoder's weights (model.onnx and its data files). */
  weightBytes: number;
  /** The vision and patchify graphs' (0 for a text-only bundle). */
  visionWeightBytes: number;
  chat: boolean;
  /** What the chat template does when `enableThinking` is not passed: true (it reasons first), false,
   * or null (no reasoning switch, or no template): the manifest's `thinking_default`. */
  thinkingDefault: boolean | null;
  /** Tokens a conversation may hold. */
  contextTokens: number;
  /** A vision-language bundle's image settings; null when the bundle takes no images. */
  vision: VisionFacts | null;
  /** The bundle's sampling defaults (its generation_config.json, a file given at export, or the Qwen3.5
   * model card's values); a setting left out takes these. */
  generation: {
    greedy?: boolean;
    temperature?: number;
    topK?: number;
    topP?: number;
    repetitionPenalty?: number;
    presencePenalty?: number;
    frequencyPenalty?: number;
  };
  /** Where `generation` comes from ("generation_config.json", "model card: …"); null when it is empty. */
  generationSource: string | null;
  /** Whether the bundle's sampler applies presencePenalty/frequencyPenalty (bundles exported before
   * they existed do not: asking for them there throws InputError). */
  penalties: boolean;
  [field: string]: unknown;
}

export interface VisionFacts {
  /** PIL's resampling filter number the processor resizes with (3: bicubic). */
  resample: number;
  /** Resized sides are multiples of this (patch x merge). */
  factor: number;
  minPixels: number;
  maxPixels: number;
  /** The largest decoded image accepted (pixels). */
  maxImagePixels: number;
  /** Each image is resized to at most this many image tokens (maxPixels = maxImageTokens x factor^2). */
  maxImageTokens: number;
  /** A prompt whose images need more image tokens together throws InputError. */
  maxPromptImageTokens: number;
}

/** An image for the model: a Blob or File (PNG, JPEG, GIF, BMP, WebP: what the browser decodes), an
 * ImageBitmap, or a URL (resolved against the page). */
export type ImageSource = Blob | ImageBitmap | string;

export interface AddedImage {
  /** The sha256 of the resized pixels: what a content part's `image_id` names. */
  imageId: string;
  /** Image tokens it takes in the prompt. */
  tokens: number;
  /** The size it was resized to (the model's), and the size it was decoded at (upright). */
  width: number;
  height: number;
  sourceWidth: number;
  sourceHeight: number;
}

/** The runtime's own form of a message part (what restoreConversation() returns for images). */
export type ContentPart = { type: "image"; image_id: string } | { type: "text"; text: string };

export interface ModelInfo {
  model: string;
  backend: Backend;
  backendReason: string;
  threads: number;
  threadsReason: string;
  crossOriginIsolated: boolean;
  bundleUrl: string;
  facts: ModelFacts;
  weights: {
    cachedFiles: number;
    cachedBytes: number;
    downloadedBytes: number;
    resumedBytes: number;
    evictedEntries: number;
    cacheUsable: boolean;
  };
  /** Python started from its memory image (Pyodide's memory snapshot, taken on the first visit). */
  pythonFromSnapshot: boolean;
  /** Each part's own duration; the parts overlap (weights and onnxruntime-web load while Python starts). */
  timings: {
    pythonMs: number;
    pyodideMs: number;
    manifestMs: number;
    weightsMs: number;
    ortMs: number;
    sessionMs: number;
    totalMs: number;
  };
  storage: { quota: number; usage: number; persisted: boolean } | null;
}

export interface ChatMessage {
  role: "system" | "user" | "assistant" | string;
  /** The text; or the runtime's content list (images by id, then text); null beside tool calls. */
  content: string | ContentPart[] | null;
  /** A user message's images, before its text (a vision-language bundle only). */
  images?: ImageSource[];
  /** An assistant turn's reasoning, beside its answer (as Qwen's templates expect it). */
  reasoning_content?: string;
  /** Tool turns, as chat.completions.create() takes them (an assistant's calls; a tool's result). */
  tool_calls?: ChatCompletionMessageToolCall[];
  tool_call_id?: string;
}

export interface GenerateRequest {
  prompt?: string;
  /** Images with the prompt: it becomes one user message (the images, then the text) rendered with
   * the bundle's chat template. */
  images?: ImageSource[];
  /** Parity checks: the done stats carry `lastLogits`, the logits after the last token fed. */
  returnLogits?: boolean;
  /** Render the bundle's chat template around `prompt` (or `messages`). */
  chat?: boolean;
  messages?: ChatMessage[];
  maxNewTokens?: number;
  minNewTokens?: number;
  greedy?: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  repetitionPenalty?: number;
  /** OpenAI semantics, in [-2, 2]: subtracted from the logit of every token the reply so far holds
   * (presence), or once per occurrence there (frequency); the prompt does not count. */
  presencePenalty?: number;
  frequencyPenalty?: number;
  /** After this many reasoning tokens (>= 1) the runtime feeds `reasoningNudge` and `</think>` and the
   * model answers; the fed text is part of the reply. Left out: no limit. */
  reasoningBudget?: number;
  /** The sentence fed before the closing tag ("" for none; left out: the runtime's own). */
  reasoningNudge?: string;
  seed?: number;
  stop?: string[];
  /** A chat too long for the context: drop its fewest oldest turns (leaving room for the reply)
   * instead of throwing ContextFullError. The stats say how many went (`droppedMessages`). */
  dropOldest?: boolean;
  /** Fields the module does not know are passed to the runtime unchanged. */
  [field: string]: unknown;
}

export interface GenerationStats {
  tokens: number[];
  text: string;
  backend: Backend;
  model: string;
  promptTokens: number;
  stopReason: "eos" | "max_new_tokens" | "stop_string" | "context_full" | "cancelled" | string;
  prefillMs: number;
  decodeMs: number;
  decodeTokensPerSecond: number;
  /** Share of decode time spent in Python (the rest in onnxruntime-web). */
  pythonShare: number;
  /** Prompt tokens resumed from a kept state, and those prefilled anew. */
  reusedTokens: number;
  prefilledTokens: number;
  /** From the call to the first generated token; of it, rendering + tokenising the prompt and the
   * wait for a background prefill chunk in flight (prefillMs, then the first sampler run, follow). */
  firstTokenMs: number;
  renderMs: number;
  waitedMs: number;
  /** Tokens the context holds: promptTokens + tokens.length of it are used. */
  contextTokens: number;
  /** A chat reply's reasoning (`text` is then the answer alone); "" otherwise. */
  reasoning: string;
  /** Images this call ran through the vision graph (0 when every image's tokens were reused). */
  imagesEncoded: number;
  /** With `dropOldest`: the oldest messages (and the user turns among them) left out to fit; the
   * rest was prefilled afresh. 0 otherwise. */
  droppedMessages: number;
  droppedTurns: number;
  /** A reasoning budget closed the reasoning (its fed tokens are in `tokens`). */
  reasoningCut: boolean;
  /** Newer runtimes add fields; they arrive as they are. */
  [field: string]: unknown;
}

export interface DeltaEvent {
  type: "delta";
  /** "reasoning" for a thinking model's reasoning, "text" for the answer. */
  kind: "text" | "reasoning";
  text: string;
  [field: string]: unknown;
}

export interface DoneEvent {
  type: "done";
  stats: GenerationStats;
}

/** Before the first token: the vision graph starts and ends each image it encodes. */
export interface ProgressEvent {
  type: "progress";
  phase: "vision";
  state: "start" | "done";
  /** 1, 2, ...: the images this call encodes, in prompt order. */
  image: number;
  /** With "done": how long the patchify and vision graphs took for it. */
  ms?: number;
}

export type GenerationEvent = DeltaEvent | ProgressEvent | DoneEvent;

export interface ChatOptions {
  signal?: AbortSignal;
  /** The template's enable_thinking (Qwen3.5: reason before answering); default the template's own. */
  enableThinking?: boolean;
  /** See GenerateRequest.dropOldest. */
  dropOldest?: boolean;
  /** After the reply, prefill the next user turn's opening in the background (default true). */
  prefillAhead?: boolean;
  maxNewTokens?: number;
  greedy?: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  [field: string]: unknown;
}

/** `model.chat`: a call for one chat turn, and OpenAI's chat-completions interface beside it. */
export interface Chat {
  (messages: ChatMessage[] | { messages: ChatMessage[] }, options?: ChatOptions): AsyncGenerator<
    GenerationEvent,
    void,
    undefined
  >;
  readonly completions: ChatCompletions;
}

// OpenAI's chat-completions objects (`model.chat.completions`): module/openai-types.d.mts.
import type { ApiErrorObject, ChatCompletions } from "./module/openai-types.d.mts";
export type * from "./module/openai-types.d.mts";

export declare class Model {
  readonly name: string;
  readonly backend: Backend;
  readonly backendReason: string;
  readonly threads: number;
  readonly threadsReason: string;
  readonly info: ModelInfo;
  readonly disposed: boolean;
  /** Deltas as they stream, then one done event. Aborting `signal` throws an AbortError with `stats`. */
  generate(request: GenerateRequest, options?: { signal?: AbortSignal }): AsyncGenerator<GenerationEvent, void, undefined>;
  /** One assistant turn of a chat over `messages` (deltas of kind "reasoning" or "text"); a
   * conversation beyond the context throws ContextFullError, nothing is cut. `chat.completions.create`
   * takes and answers OpenAI's chat-completions objects instead. */
  readonly chat: Chat;
  /** Decode and resize an image as transformers' PIL processor would and register it (InputError for
   * a bad one: not an image, no pixels, too large, too elongated, or a bundle without vision). The
   * same Blob, ImageBitmap or URL again is not decoded again. */
  addImage(source: ImageSource): Promise<AddedImage>;
  /** Prefill in the background what the next chat() over `messages` starts with: the conversation
   * as the next turn renders it, and the stable part (all but the last word) of a trailing user
   * message being typed. Resolves at once; any other call pre-empts the work within one small chunk;
   * results never change. Conversations with images are not prepared (targetTokens 0). */
  prepare(
    messages: ChatMessage[] | { messages: ChatMessage[] },
    options?: { enableThinking?: boolean },
  ): Promise<{ targetTokens: number }>;
  /** The conversation and the state its next turn resumes from, as bytes to store (with its images'
   * pixels at the model's size). */
  saveConversation(
    messages: ChatMessage[] | { messages: ChatMessage[] },
    options?: { tools?: ChatCompletionTool[] },
  ): Promise<Uint8Array>;
  /** Load saved bytes back (InputError, and no change, for another bundle's or damaged bytes). */
  restoreConversation(bytes: Uint8Array): Promise<{ messages: ChatMessage[]; tools: ChatCompletionTool[]; tokens: number }>;
  /** The last position's logits after `tokenIds`. */
  logits(tokenIds: ArrayLike<number>): Promise<number[]>;
  tokenize(text: string): Promise<number[]>;
  /** Leak checks and state reuse: tensors alive in the engine, those the runner and the kept states
   * hold, and the kept states (prefix reuse: how many, their bytes, the time spent keeping them). */
  stats(): Promise<{ liveTensors: number; heldTensors: number; keptStates: number; keptBytes: number; keepMs: number }>;
  /** Stops whatever generation runs, before its next token. */
  stop(): void;
  /** Ends the worker and frees the model's memory; later calls reject with an AbortError. */
  dispose(): void;
}

export declare function load(options: LoadOptions): Promise<Model>;

export interface SiteModel {
  name: string;
  note: string;
  bytes: number;
  bundle: BundleSource;
}

/** A model of a site built by `qwen35web site build` (its models/index.json; default beside the module). */
export declare function siteModel(name?: string, options?: { index?: string | URL }): Promise<SiteModel>;

export interface Shell {
  readonly controlled: boolean;
  /** The active site version, once its shell is cached. */
  ready(): Promise<{ version: string }>;
  /** Cache onnxruntime-web's files of `backend` too: the page then works offline. */
  cacheBackend(backend: Backend): Promise<{ version: string; backend: Backend }>;
  /** Called once a new site version is installed and waiting. */
  onUpdate(listener: () => void): void;
  checkForUpdate(): Promise<unknown>;
  /** Switch to the waiting version (the page reloads); false when none waits. */
  applyUpdate(): boolean;
}

/**
 * Register the site's service worker: the shell offline, and cross-origin isolation where the server
 * sends no COOP/COEP (the page reloads once, and the promise never settles). null: no service worker here.
 */
export declare function enableOffline(options?: { isolate?: boolean }): Promise<Shell | null>;

export declare class Qwen35Error extends Error {
  readonly code: "runtime" | "bad-bundle" | "bad-input" | "not-supported" | "storage" | "network" | "aborted" | "context-full";
  /** A refused chat.completions.create request: OpenAI's error object and its HTTP status. */
  readonly error?: ApiErrorObject;
  readonly status?: number;
}
export declare class BundleError extends Qwen35Error {}
export declare class InputError extends Qwen35Error {}
export declare class NotSupportedError extends Qwen35Error {}
export declare class StorageError extends Qwen35Error {}
export declare class NetworkError extends Qwen35Error {}
export declare class ContextFullError extends Qwen35Error {}
export declare class AbortError extends Qwen35Error {
  /** A cancelled generation's partial result. */
  readonly stats?: GenerationStats;
}
