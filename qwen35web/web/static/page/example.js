// A page that uses qwen35web.mjs and nothing else: the smallest complete use of the module.

import { AbortError, load, siteModel } from "../qwen35web.mjs";

/** @type {(id: string) => PageControl} */
const $ = (id) => /** @type {PageControl} */ (document.getElementById(id));
let model = null;
let controller = null;

function fail(err) {
  $("error").textContent = `${err.name}: ${err.message}`;
  $("error").hidden = false;
}

function onProgress({ phase, loaded, total }) {
  if (phase === "download" && total > 0) {
    $("progress").max = total;
    $("progress").value = loaded;
  }
  $("status").textContent = phase === "download" ? `download ${loaded ?? 0} / ${total ?? 0} bytes` : phase;
}

async function generate(event) {
  event.preventDefault();
  controller = new AbortController();
  $("generate").disabled = true;
  $("stop").disabled = false;
  $("output").textContent = $("reasoning").textContent = $("stats").textContent = "";
  try {
    const request = { prompt: $("prompt").value, maxNewTokens: 24, greedy: true };
    for await (const event of model.generate(request, { signal: controller.signal })) {
      if (event.type === "delta") {
        const target = event.kind === "reasoning" ? $("reasoning") : $("output");
        target.hidden = false;
        target.textContent += event.text;
      } else {
        const { tokens, decodeTokensPerSecond, stopReason } = event.stats;
        $("stats").textContent = `${tokens.length} tokens · ${decodeTokensPerSecond.toFixed(1)} tokens/s · ${stopReason}`;
        $("stats").dataset.tokens = JSON.stringify(tokens);
      }
    }
  } catch (err) {
    if (err instanceof AbortError) $("stats").textContent = `stopped after ${err.stats?.tokens.length ?? 0} tokens`;
    else fail(err);
  } finally {
    $("generate").disabled = false;
    $("stop").disabled = true;
  }
}

async function main() {
  const asked = new URLSearchParams(location.search).get("bundle");
  const bundle = asked || (await siteModel()).bundle;
  model = await load({ bundle, onProgress });
  $("status").textContent = `ready: ${model.name} on ${model.backend} (${model.backendReason}; ${model.threadsReason})`;
  $("generate").disabled = false;
}

$("form").addEventListener("submit", generate);
$("stop").addEventListener("click", () => controller && controller.abort());
main().catch(fail);
