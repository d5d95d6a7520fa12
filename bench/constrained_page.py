"""Constrained sampling in the real demo page at Qwen3.5's real vocabulary (248,077 tokens): what a
JSON-schema answer and a forced tool call cost per token through the module's `chat.completions.create`,
in Chromium (wasm).

    python -m bench constrained_page [--tokens 96] [--repeats 3] [--work build/bench/constrained-page]
                                     [--baseline-site DIR]

The model is the replica of the published Qwen3.5-0.8B repository (devtools.published_replica: the real
tokenizer, replica-scale random weights), exported once and served as a site. Random weights are the worst
case for the constraint: the sampler's candidates rarely fit, so most structural steps take the
whole-vocabulary pass (the row of logits read from onnxruntime-web, the trie walk in Pyodide). Each case is
timed against the same request unconstrained (the same messages and tools, `tool_choice` "none" / no
`response_format`, sampled, as many tokens: `min_tokens` = `max_tokens` = the constrained reply's count),
each after a warm-up of the same prompt (so both resume from a kept state and mostly decode): the
difference per token is the constraint's cost in the page. The first constrained request (the trie built
once per tokenizer, in Pyodide) is timed apart.

With --baseline-site (a site built from another commit, e.g. before a change), a second page opens it
and every request runs on both pages in turn, so the two sets of figures share the machine's load
(written under "baseline").

Appends one JSON line to bench/results/constrained-sampling.jsonl (env "chromium-page") with the 1-minute
load average before and after.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

from bench.constrained_sampling import SCHEMA, TOOL  # the same requests as the native and Pyodide bench
from bench.page_harness import REPO, RESULTS, chromium_version
from devtools.chromium import CHROMIUM, CHROMIUM_FLAGS

log = logging.getLogger("bench.constrained_page")

MODEL = "qwen3.5-0.8b-replica"
RESULTS_FILE = RESULTS / "constrained-sampling.jsonl"
MESSAGES = [{"role": "user", "content": "Describe a person as JSON, then tell me the weather in Paris."}]
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "json_schema": (
        {"response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}}},
        {},
    ),
    "forced_call": (
        {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        {"tools": [TOOL], "tool_choice": "none"},
    ),
}

# One request in the page: wall time of create() and the reply's token count.
TIMED = """async (body) => {
    const model = await app.model();
    const started = performance.now();
    const reply = await model.chat.completions.create(body);
    return { ms: performance.now() - started, tokens: reply.usage.completion_tokens,
             cached: reply.usage.prompt_tokens_details.cached_tokens, prompt: reply.usage.prompt_tokens,
             finish: reply.choices[0].finish_reason, message: reply.choices[0].message };
}"""


def replica_site(work: Path) -> Path:
    """The demo site with the exported replica (built once under `work`)."""
    from devtools.published_replica import write_replica
    from qwen35web.export.pipeline import ExportOptions, run_export
    from qwen35web.web.build import SiteSpec, build_site

    checkpoint, bundle, site = work / "ckpt", work / "bundle", work / "site"
    if not (bundle / "manifest.json").exists():
        log.info("writing the replica and exporting it under %s", work)
        write_replica(checkpoint, "0.8b")
        run_export(ExportOptions(checkpoint, bundle))
    if not (site / "index.html").exists():
        build_site(SiteSpec(site, [(MODEL, bundle)], {MODEL: "Replica (real vocabulary, random weights)."}))
    return site


def _request(extra: dict[str, Any], tokens: int, seed: int, exact: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": MESSAGES, "max_tokens": tokens, "temperature": 1.0, "seed": seed}
    body["chat_template_kwargs"] = {"enable_thinking": False}
    if exact is not None:
        body.update(max_tokens=exact, min_tokens=exact)
    return body | extra


def _timed_pair(page: Any, name: str, tokens: int, seed: int) -> dict[str, Any]:
    """One seed of a case on one page: the constrained reply, then the free one with as many tokens."""
    constrained, free = CASES[name]
    page.evaluate(TIMED, _request(constrained, tokens, seed))  # warm: the prompt's state is kept
    timed = page.evaluate(TIMED, _request(constrained, tokens, seed))
    count = timed["tokens"]
    page.evaluate(TIMED, _request(free, tokens, seed, count))
    baseline = page.evaluate(TIMED, _request(free, tokens, seed, count))
    assert baseline["tokens"] == count, (baseline, count)
    return {
        "tokens": count,
        "finish": timed["finish"],
        "constrained_ms": timed["ms"],
        "free_ms": baseline["ms"],
        "cached": [timed["cached"], baseline["cached"]],
        "prompt": timed["prompt"],
        "ms_per_token": (timed["ms"] - baseline["ms"]) / count,
    }


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    total = sum(r["tokens"] for r in runs)
    extra = sum(r["constrained_ms"] - r["free_ms"] for r in runs)
    return {
        "runs": runs,
        "ms_per_token": extra / total,
        "free_ms_per_token": sum(r["free_ms"] for r in runs) / total,
        "constrained_ms_per_token": sum(r["constrained_ms"] for r in runs) / total,
    }


def _measure_cases(pages: list[Any], tokens: int, repeats: int) -> list[dict[str, Any]]:
    """Per page, {case: summary}; the pages take turns at every seed (they share the load)."""
    runs: list[dict[str, list[dict[str, Any]]]] = [{name: [] for name in CASES} for _ in pages]
    for name in CASES:
        for seed in range(1, repeats + 1):
            for index, page in enumerate(pages):
                runs[index][name].append(_timed_pair(page, name, tokens, seed))
                log.info("page %d %s seed %d: %s", index, name, seed, runs[index][name][-1])
    return [{name: _summary(by_case[name]) for name in CASES} for by_case in runs]


def _open_page(browser: Any, url: str, tokens: int) -> tuple[Any, dict[str, Any], float, dict[str, Any]]:
    """A page of the site at `url`, warmed, with its first constrained request timed (the trie build)."""
    page = browser.new_page()
    page.set_default_timeout(900_000)
    page.goto(f"{url}?backend=wasm&prefillAhead=0")
    ready = page.evaluate("app.ready")
    page.evaluate(TIMED, _request({}, 4, 1))  # the first request's own costs (template, graphs)
    started = time.perf_counter()
    first = page.evaluate(TIMED, _request(CASES["json_schema"][0], tokens, 99))
    return page, ready, time.perf_counter() - started, first


def run(work: Path, tokens: int, repeats: int, baseline_site: Path | None = None) -> dict[str, Any]:
    from contextlib import ExitStack

    from playwright.sync_api import sync_playwright

    from qwen35web.web.serve import serving

    sites = [replica_site(work), *([baseline_site] if baseline_site else [])]
    load_before = os.getloadavg()[0]
    with ExitStack() as stack, sync_playwright() as playwright:
        urls = [stack.enter_context(serving(site)) for site in sites]
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            opened = [_open_page(browser, url, tokens) for url in urls]
            measured = _measure_cases([page for page, *_ in opened], tokens, repeats)
            info = opened[0][0].evaluate("app.info()")
        finally:
            browser.close()
    (_, ready, first_s, first), *others = opened
    result = {
        "env": "chromium-page",
        "when": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "chromium": chromium_version(),
        "backend": ready["backend"],
        "threads": info.get("threads"),
        "vocab": info["facts"]["vocabSize"],
        "model": MODEL,
        "machine": platform.processor() or platform.machine(),
        "first_constrained_request_s": first_s,  # the trie built in Pyodide, then one reply
        "first_constrained_tokens": first["tokens"],
        "cases": measured[0],
        "load_1min_before": load_before,
        "load_1min_after": os.getloadavg()[0],
        "command": "python -m bench constrained_page",
    }
    if others:
        (_, _, base_first_s, _) = others[0]
        result["baseline"] = {"site": str(baseline_site), "first_constrained_request_s": base_first_s}
        result["baseline"]["cases"] = measured[1]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=96, help="max_tokens of each constrained reply")
    parser.add_argument("--repeats", type=int, default=3, help="seeds per case")
    parser.add_argument("--work", type=Path, default=REPO / "build" / "bench" / "constrained-page")
    parser.add_argument("--baseline-site", type=Path, help="a second site, measured in turn with this one")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    result = run(args.work, args.tokens, args.repeats, args.baseline_site)
    line = json.dumps(result)
    print(line)
    with RESULTS_FILE.open("a", encoding="utf-8") as out:
        out.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
