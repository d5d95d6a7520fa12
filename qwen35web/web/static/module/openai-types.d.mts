// Types of `model.chat.completions` (qwen35web.mjs, through module/completions.mjs): OpenAI's
// chat-completions objects, the fields this runtime reads and writes (see docs/page-api.md).
// Re-exported by ../qwen35web.d.mts: import them from there.

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
