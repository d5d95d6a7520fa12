// window.app: the demo page's script API for tests and the console, a thin layer over qwen35web.mjs
// (the model the page loaded). Everything a developer needs is in the module itself; this only keeps
// the calls tests make short.
//   app.ready                 -> Promise<{backend, model}> (rejects with the load error)
//   app.generate({prompt, maxNewTokens, ..., onText})
//                             -> Promise<stats> of the done event (after app.stop(): the partial stats)
//   app.model()               -> Promise<Model>: the module's model the page loaded (images, chat, ...)
//   app.logits(tokenIds) / app.tokenize(text) / app.stats()
//   app.stop()                -> stops the running generation before its next token
//   app.info()                -> the load's facts: backend(+Reason), threads(+Reason), weights, timings, ...
//   app.on("progress", fn)    -> load progress events
//   app.offline()             -> Promise<{version, backend}> once the shell and backend are cached
//   app.checkForUpdate()      -> asks the service worker to look for a new site version
//   app.chatReady             -> Promise: the chat (stored chats restored) is ready; then ui.js adds
//   app.lastTurn()            -> the last chat turn's stats; app.chat() -> {id, messages, restoredTokens}
//   app.restored()            -> Promise: the opened chat's saved state is loaded (in the background)
//   app.drafted()             -> Promise: the message being typed has been handed over (model.prepare)

import { AbortError } from "../qwen35web.mjs";

export function exposeApp(loading, progressListeners) {
  let info = null;
  const ready = loading.then(({ model, entry, shell }) => {
    const bundle = new URL(model.info.bundleUrl).pathname.split("/").filter(Boolean).pop();
    info = { ...model.info, note: entry.note, bundle, shellControlled: Boolean(shell && shell.controlled) };
    return { backend: model.backend, model: model.name };
  });
  const model = async () => (await loading).model;

  async function generate(options = {}) {
    const { onText, ...request } = options;
    const events = (await model()).generate(request);
    try {
      let stats = null;
      for await (const event of events) {
        if (event.type === "delta" && onText) onText(event.text, event);
        if (event.type === "done") stats = event.stats;
      }
      return stats;
    } catch (err) {
      if (err instanceof AbortError && err.stats) return err.stats;
      throw err;
    }
  }

  const app = {
    ready,
    generate,
    model,
    logits: async (ids) => (await model()).logits(ids),
    tokenize: async (text) => (await model()).tokenize(text),
    stats: async () => (await model()).stats(),
    stop: async () => (await model()).stop(),
    info: () => info,
    on: (event, listener) => event === "progress" && progressListeners.add(listener),
    offline: async () => (await loading).offline,
    checkForUpdate: async () => {
      const { shell } = await loading;
      if (shell) await shell.checkForUpdate();
    },
  };
  window.app = app;
  return app;
}
