"""Cost per token of constrained sampling at Qwen3.5's real vocabulary (248k tokens).

    .venv/bin/python bench/constrained_sampling.py [--tokens 200] [--pyodide]

Measures the constraint's own Python work per generated token (constraint.py), given what the
sampler graph returns, for two kinds of model:
  - "random": the 256 candidates are random tokens (a random-weights model), so most structural
    steps find no candidate that fits and need the whole-vocabulary pass (trie walk + filtering
    the ranked vocabulary);
  - "following": the best candidate is the next token of a valid answer (a model that writes the
    format), the other 255 random: the candidates-first path;
  - "never": no candidate ever fits (special tokens only), so every step is a whole-row pass: the
    worst case, and the one where a state inside a string allows almost the whole vocabulary.
The whole-row pass gets the row as the decode loop hands it over (sampling.scaled_logits).
for a JSON schema and a forced tool call, plus the one-off trie build. Natively it also times the
sampler graph (onnxruntime) with k = 256 and with k = the vocabulary, and reading one raw row of
logits (what a whole-vocabulary pass reads). With --pyodide the pure-Python part runs again
inside Pyodide (Node), and the row is also read from a JS Float32Array through the web engine
(`read_row_ms`: WebEngine.read_last_row, what a whole-row pass reads in the page).
Prints one JSON line per environment and appends them to bench/results/constrained-sampling.jsonl.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 4},
        "ok": {"type": "boolean"},
    },
    "required": ["name", "age", "tags", "ok"],
}
SCHEMA_ANSWER = '{"name": "Ada Lovelace", "age": 36, "tags": ["maths", "engines"], "ok": true}'
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}
CALL_ANSWER = (
    "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n"
    "<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>"
)


def measure_constraint(tokenizer_path: str, tokens: int) -> dict:
    """The pure-Python part (runs natively and in Pyodide)."""
    from qwen35web.runtime.constraint import GrammarConstraint, output_grammar
    from qwen35web.runtime.grammar import LazyDfa
    from qwen35web.runtime.sampling import SamplingParams
    from qwen35web.runtime.token_trie import TokenTrie
    from qwen35web.runtime.tokenizer import Tokenizer
    from qwen35web.runtime.tools import ToolChoice

    tokenizer = Tokenizer.from_file(tokenizer_path)
    vocab = tokenizer.vocab_size
    eos = tokenizer.token_to_id("<|im_end|>")
    assert eos is not None, "the real vocabulary has <|im_end|>"
    started = time.perf_counter()
    trie = TokenTrie.for_tokenizer(tokenizer, vocab)
    report: dict = {"vocab": vocab, "trie_build_s": round(time.perf_counter() - started, 3)}
    rng = random.Random(0)
    row = [rng.gauss(0.0, 2.0) for _ in range(vocab)]  # a random model's logits
    sampled = SamplingParams(temperature=1.0, seed=0, max_new_tokens=tokens)
    greedy = SamplingParams(greedy=True, max_new_tokens=tokens)
    cases = {
        "json_schema": (output_grammar([], ToolChoice(), _schema_format(), False), SCHEMA_ANSWER),
        "forced_call": (
            output_grammar([TOOL], ToolChoice("function", "get_weather"), None, False),
            CALL_ANSWER,
        ),
    }
    never = [i for i in range(vocab - 64, vocab) if tokenizer.token_bytes(i) is None and i != eos]
    for name, (grammar, answer) in cases.items():
        assert grammar is not None, name  # both cases constrain the reply
        for model in ("random", "following", "never"):
            constraint = GrammarConstraint(LazyDfa(grammar), trie, tokenizer.token_bytes, frozenset({eos}))
            script = [*tokenizer.encode(answer), eos]
            params = greedy if model == "following" else sampled
            candidates = (never * 256)[:256] if model == "never" else None
            timings = _run(constraint, script, model, rng, params, row, tokens, candidates)
            report[f"{name}/{model}"] = timings
    return report


def _schema_format() -> dict:
    return {"type": "json_schema", "json_schema": {"schema": SCHEMA}}


def _run(constraint, script, model, rng, params, row, tokens, candidates) -> dict:
    from qwen35web.runtime.sampling import scaled_logits

    pick_ms, full_ms, produced, full = [], [], 0, 0
    for step in range(tokens):
        ids = list(candidates) if candidates else rng.sample(range(len(row)), 256)
        if model == "following" and step < len(script):
            ids[0] = script[step]
        logits = [-i / 50 for i in range(256)]
        log_z = math.log(sum(math.exp(v) for v in logits)) + 1.0
        started = time.perf_counter()
        token = constraint.pick(logits, ids, log_z, params, rng, tokens - step)
        pick_ms.append((time.perf_counter() - started) * 1000)
        if token is None:
            started = time.perf_counter()
            logit_of = scaled_logits(row, params, [], ([], []))  # as generation.next_token hands it over
            token = constraint.pick_whole(logit_of, params, rng, tokens - step, frozenset())
            full_ms.append((time.perf_counter() - started) * 1000)
            full += 1
        produced += 1
        if token in constraint.eos_ids:
            break
        constraint.advance(token)
    total = sum(pick_ms) + sum(full_ms)
    return {
        "tokens": produced,
        "full_passes": full,
        "candidates_ms_mean": round(sum(pick_ms) / len(pick_ms), 3),
        "full_pass_ms_mean": round(sum(full_ms) / len(full_ms), 1) if full_ms else 0.0,
        "full_pass_ms_max": round(max(full_ms), 1) if full_ms else 0.0,
        "per_token_ms_mean": round(total / produced, 3),
        "dfa_states": constraint.dfa.size,
    }


def measure_sampler(vocab: int) -> dict:
    """onnxruntime: the sampler graph with k = 256 and with k = the vocabulary (plus reading it:
    the whole-vocabulary pass we did not choose), and reading one raw row of logits (the one we did)."""
    import numpy as np
    import onnxruntime as ort

    from qwen35web.export.sampler_graph import sampler_model

    session = ort.InferenceSession(sampler_model().SerializeToString(), providers=["CPUExecutionProvider"])
    logits = np.random.default_rng(0).standard_normal((1, 1, vocab), dtype=np.float32)
    out = {}
    for k in (256, vocab):
        feeds = {
            "logits": logits,
            "penalty_ids": np.zeros((1, 1), np.int64),
            "penalty": np.ones(1, np.float32),
            "bias_ids": np.zeros((1, 1), np.int64),  # presence/frequency biases: none
            "bias": np.zeros((1, 1), np.float32),
            "temperature": np.ones(1, np.float32),
            "k": np.array([k], np.int64),
        }
        times = []
        for _ in range(5):
            started = time.perf_counter()
            top, ids, _ = session.run(None, feeds)
            top.ravel().tolist(), ids.ravel().tolist()
            times.append((time.perf_counter() - started) * 1000)
        out[f"sampler_k{'_vocab' if k == vocab else k}_ms"] = round(min(times), 2)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        logits[0, -1].astype(np.float32).tolist()  # NativeEngine.read_last_row
        times.append((time.perf_counter() - started) * 1000)
    out["read_row_ms"] = round(min(times), 2)
    return out


_NODE_RUNNER = """
import { loadPyodide } from "%(pyodide)s/pyodide.mjs";
import fs from "fs";
import path from "path";
const [root, tokenizer, tokens] = process.argv.slice(2);
const py = await loadPyodide({ indexURL: "%(pyodide)s/" });
function copy(dir, target) {
  py.FS.mkdirTree(target);
  for (const name of fs.readdirSync(dir)) {
    const full = path.join(dir, name);
    if (fs.statSync(full).isDirectory()) copy(full, `${target}/${name}`);
    else if (name.endsWith(".py")) py.FS.writeFile(`${target}/${name}`, fs.readFileSync(full));
  }
}
copy(`${root}/qwen35web/runtime`, "/work/qwen35web/runtime");
py.FS.writeFile("/work/qwen35web/__init__.py", "");
py.FS.writeFile("/work/bench_constrained.py", fs.readFileSync(`${root}/bench/constrained_sampling.py`));
py.FS.writeFile("/work/tokenizer.json", fs.readFileSync(tokenizer));
globalThis.logits = { dims: [1, 1, 248320], data: new Float32Array(248320).map(() => Math.random()) };
console.log(await py.runPythonAsync(`
import json, sys, time
sys.path.insert(0, "/work")
from bench_constrained import measure_constraint
from qwen35web.runtime.browser.engine import WebEngine
import js
engine = WebEngine.__new__(WebEngine)  # only its reading of a CPU tensor: no onnxruntime here
engine._live = {}
times = []
for _ in range(5):
    started = time.perf_counter()
    await engine.read_last_row(js.logits)
    times.append((time.perf_counter() - started) * 1000)
report = measure_constraint("/work/tokenizer.json", ${tokens})
json.dumps(report | {"read_row_ms": round(min(times), 2)})
`));
"""


def measure_pyodide(tokenizer_path: Path, tokens: int) -> dict:
    node = shutil.which("node")
    pyodide = ROOT / "node_modules" / "pyodide"
    if node is None or not (pyodide / "pyodide.mjs").exists():
        raise SystemExit("node and node_modules/pyodide are needed for --pyodide (make setup)")
    with tempfile.TemporaryDirectory() as work:
        runner = Path(work) / "run.mjs"
        runner.write_text(_NODE_RUNNER % {"pyodide": pyodide.as_posix()}, encoding="utf-8")
        done = subprocess.run(
            [node, str(runner), str(ROOT), str(tokenizer_path), str(tokens)],
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--pyodide", action="store_true")
    args = parser.parse_args()
    from devtools.real_vocab import real_tokenizer_json

    path = real_tokenizer_json()
    lines = []
    native = {"env": f"native CPython {sys.version.split()[0]}", **measure_constraint(str(path), args.tokens)}
    native.update(measure_sampler(native["vocab"]))
    lines.append(native)
    if args.pyodide:
        lines.append({"env": "pyodide (node)", **measure_pyodide(path, args.tokens)})
    load = os.getloadavg()[0]
    out = ROOT / "bench" / "results" / "constrained-sampling.jsonl"
    with out.open("a", encoding="utf-8") as handle:
        for line in lines:
            line.update({"load_1min": round(load, 2), "date": time.strftime("%Y-%m-%d %H:%M")})
            print(json.dumps(line))
            handle.write(json.dumps(line) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
