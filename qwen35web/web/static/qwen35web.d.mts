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
  /** Python (Pyodide from its memory snapshot after the first visit) started from a snapshot. */
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
  /** The text; or the runtime's content list (images by id, then text). */
  content: string | ContentPart[];
  /** A user message's images, before its text (a vision-language bundle only). */
  images?: ImageSource[];
  /** An assistant turn's reasoning, beside its answer (as Qwen's templates expect it). */
  reasoning_content?: string;
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

// OpenAI's chat-completions objects (the fields this runtime reads and writes; see docs/page-api.md).

export interface ChatCompletionContentPartText {
  type: "text";
  text: string;
}

/** An image as a base64 data URL (`data:image/png;base64,...`); nothing is ever fetched. User messages only. */
export interface ChatCompletionContentPartImage {
  type: "image_url";
  image_url: { url: string; detail?: string } | string;
}

export type ChatCompletionContentPart = ChatCompletionContentPartText | ChatCompletionContentPartImage;

export interface ChatCompletionMessageToolCall {
  id: string;
  type: "function";
  /** `arguments`: a JSON object as a string (JSON.parse it). */
  function: { name: string; arguments: string };
}

export type ChatCompletionMessageParam =
  | { role: "system" | "developer"; content: string | ChatCompletionContentPartText[]; name?: string }
  | { role: "user"; content: string | ChatCompletionContentPart[]; name?: string }
  | {
      role: "assistant";
      content?: string | ChatCompletionContentPartText[] | null;
      tool_calls?: ChatCompletionMessageToolCall[];
      /** The reply's reasoning, as a response gave it (a thinking model's). */
      reasoning_content?: string | null;
      name?: string;
    }
  | { role: "tool"; content: string | ChatCompletionContentPartText[]; tool_call_id: string };

export interface ChatCompletionTool {
  type: "function";
  function: {
    name: string;
    description?: string;
    /** A JSON schema of the arguments (an object schema). */
    parameters?: Record<string, unknown>;
    strict?: boolean;
  };
}

/** "none", "auto" (default with tools), "required" (some call), or one function by name: the call is
 * then constrained to parse and validate against its schema whatever the weights. */
export type ChatCompletionToolChoiceOption =
  | "none"
  | "auto"
  | "required"
  | { type: "function"; function: { name: string } };

export type ResponseFormat =
  | { type: "text" }
  | { type: "json_object" }
  | { type: "json_schema"; json_schema: { name: string; schema?: Record<string, unknown>; strict?: boolean; description?: string } };

export interface ChatCompletionCreateParams {
  messages: ChatCompletionMessageParam[];
  /** Optional here (the page has one model); when given, it must be `model.name`. */
  model?: string;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean } | null;
  tools?: ChatCompletionTool[];
  tool_choice?: ChatCompletionToolChoiceOption;
  response_format?: ResponseFormat;
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
  /** 0: greedy. Left out: the bundle's default (as every sampling setting). */
  temperature?: number | null;
  top_p?: number | null;
  seed?: number | null;
  stop?: string | string[] | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  logprobs?: boolean | null;
  top_logprobs?: number | null;
  n?: 1 | null;
  /** Extensions other local servers accept too. */
  top_k?: number | null;
  min_tokens?: number | null;
  repetition_penalty?: number | null;
  chat_template_kwargs?: { enable_thinking?: boolean };
  [field: string]: unknown;
}

export interface ChatCompletionTokenLogprob {
  token: string;
  logprob: number;
  bytes: number[] | null;
  top_logprobs: { token: string; logprob: number; bytes: number[] | null }[];
}

export interface ChatCompletionLogprobs {
  content: ChatCompletionTokenLogprob[] | null;
  refusal: null;
}

export interface CompletionUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** cached_tokens: prompt tokens a kept state already held (not run again). */
  prompt_tokens_details: { cached_tokens: number };
}

export type FinishReason = "stop" | "length" | "tool_calls";

export interface ChatCompletionMessage {
  role: "assistant";
  content: string | null;
  refusal: null;
  tool_calls?: ChatCompletionMessageToolCall[];
  /** A thinking model's reasoning, apart from `content`. */
  reasoning_content?: string;
}

export interface ChatCompletion {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  system_fingerprint: null;
  choices: { index: number; message: ChatCompletionMessage; logprobs: ChatCompletionLogprobs | null; finish_reason: FinishReason }[];
  usage: CompletionUsage;
}

export interface ChatCompletionChunkToolCall {
  index: number;
  id?: string;
  type?: "function";
  function?: { name?: string; arguments?: string };
}

export interface ChatCompletionChunk {
  id: string;
  object: "chat.completion.chunk";
  created: number;
  model: string;
  system_fingerprint: null;
  choices: {
    index: number;
    delta: {
      role?: "assistant";
      content?: string | null;
      reasoning_content?: string;
      tool_calls?: ChatCompletionChunkToolCall[];
    };
    logprobs: ChatCompletionLogprobs | null;
    finish_reason: FinishReason | null;
  }[];
  /** With stream_options.include_usage: null on every chunk but a last one with no choices. */
  usage?: CompletionUsage | null;
}

/** OpenAI's error object, on the typed error a refused request throws (`.error`). */
export interface ApiErrorObject {
  message: string;
  type: string;
  param: string | null;
  code: string | null;
}

export interface ChatCompletions {
  /** A ChatCompletion; with `stream: true` an async iterable of ChatCompletionChunk (after the
   * request was accepted: a refusal rejects here). Aborting `signal`, or leaving the loop early,
   * stops the generation before its next token (an abort throws AbortError). */
  create(params: ChatCompletionCreateParams & { stream: true }, options?: { signal?: AbortSignal }): Promise<AsyncIterable<ChatCompletionChunk>>;
  create(params: ChatCompletionCreateParams & { stream?: false | null }, options?: { signal?: AbortSignal }): Promise<ChatCompletion>;
  create(
    params: ChatCompletionCreateParams,
    options?: { signal?: AbortSignal },
  ): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>>;
}

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
  saveConversation(messages: ChatMessage[] | { messages: ChatMessage[] }): Promise<Uint8Array>;
  /** Load saved bytes back (InputError, and no change, for another bundle's or damaged bytes). */
  restoreConversation(bytes: Uint8Array): Promise<{ messages: ChatMessage[]; tokens: number }>;
  /** The last position's logits after `tokenIds`. */
  logits(tokenIds: ArrayLike<number>): Promise<number[]>;
  tokenize(text: string): Promise<number[]>;
  stats(): Promise<{ liveTensors: number; heldTensors: number }>;
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
