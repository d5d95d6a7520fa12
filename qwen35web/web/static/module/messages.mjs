// The worker's messages, one table for both sides: qwen35web.mjs posts requests, worker/worker.js answers.
//
//   page -> worker   {id, type: REQUEST.x, ...fields}
//   worker -> page   {id, kind: REPLY.event, progress | delta}    (any number, while the call runs)
//                    {id, kind: REPLY.result, value}              (last)
//                    {id, kind: REPLY.error, message, code}       (last; errors.mjs's errorFor(code))
//
// Each request, what it carries and the Python it reaches (qwen35web.runtime.browser.session.WebSession):
//   init                 {bundle, backend, threads, ...load options}  loadModel (worker/loader.js) -> WebSession
//   generate             {request}               WebSession.generate: delta and progress events, then the stats
//   stop                 {target?}               WebSession.cancel (not queued: reaches the running call)
//   logits               {ids}                   WebSession.logits
//   tokenize             {text}                  WebSession.tokenize
//   stats                {}                      WebSession.stats
//   addImage             {source}                worker/images.js, then WebSession.add_image
//   saveConversation     {messages}              WebSession.save_conversation (bytes, transferred)
//   restoreConversation  {bytes}                 WebSession.restore_conversation (the state, in the background)
//   prepare              {request}               WebSession.prepare: background prefill of a draft or next turn
//   chatCompletion       {request}               OpenAI chat-completions: image_url data URLs decoded as addImage,
//                                                then WebSession.chat_completion (chunk events when streaming)

/** @typedef {typeof REQUEST[keyof typeof REQUEST]} RequestType */
/** @typedef {typeof REPLY[keyof typeof REPLY]} ReplyKind */

export const REQUEST = /** @type {const} */ ({
  init: "init",
  generate: "generate",
  stop: "stop",
  logits: "logits",
  tokenize: "tokenize",
  stats: "stats",
  addImage: "addImage",
  saveConversation: "saveConversation",
  restoreConversation: "restoreConversation",
  prepare: "prepare",
  chatCompletion: "chatCompletion",
});
Object.freeze(REQUEST);

export const REPLY = /** @type {const} */ ({
  event: "event",
  result: "result",
  error: "error",
});
Object.freeze(REPLY);
