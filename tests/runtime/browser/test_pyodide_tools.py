"""The tool-call parser and constrained sampling run in Pyodide (no numpy there) and give what they
give in CPython. Needs `node` and node_modules/pyodide (`make setup`)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from qwen35web.runtime.tool_calls import parse_call

TOOL = {
    "type": "function",
    "function": {
        "name": "f",
        "parameters": {
            "type": "object",
            "properties": {"n": {"type": "integer"}, "s": {"type": "string"}},
            "required": ["n"],
        },
    },
}

REPO = Path(__file__).resolve().parents[3]
PYODIDE = REPO / "node_modules" / "pyodide"
NODE = shutil.which("node")

_RUNNER = """
import { loadPyodide } from "%(pyodide)s/pyodide.mjs";
import fs from "fs";
const [runtime, check] = process.argv.slice(2);
const py = await loadPyodide({ indexURL: "%(pyodide)s/" });
py.FS.mkdirTree("/work/qwen35web");
py.FS.writeFile("/work/qwen35web/__init__.py", "");
for (const entry of fs.readdirSync(runtime, { recursive: true })) {
  if (!entry.endsWith(".py")) continue;
  const target = `/work/qwen35web/runtime/${entry}`;
  py.FS.mkdirTree(target.slice(0, target.lastIndexOf("/")));
  py.FS.writeFile(target, fs.readFileSync(`${runtime}/${entry}`));
}
console.log(await py.runPythonAsync(fs.readFileSync(check, "utf8")));
"""

# Runs in both interpreters; prints one JSON line.
CHECK = """
import json, random, sys
sys.path.insert(0, "/work")
from qwen35web.runtime.constraint import GrammarConstraint, output_grammar
from qwen35web.runtime.grammar import LazyDfa
from qwen35web.runtime.sampling import SamplingParams
from qwen35web.runtime.token_trie import TokenTrie
from qwen35web.runtime.tool_calls import ToolCallParser
from qwen35web.runtime.tools import ToolChoice

TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object",
        "properties": {"n": {"type": "integer"}, "s": {"type": "string"}}, "required": ["n"]}}}
SCHEMA = {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "boolean"}},
          "b": {"enum": ["x", "y"]}}, "required": ["a", "b"]}
parser = ToolCallParser([TOOL], make_id=lambda: "call_0")
text = "Hi<tool_call>\\n<function=f>\\n<parameter=n>\\n7\\n</parameter>\\n</function>\\n</tool_call>"
shown = [parser.push(c)[0] for c in text] + [parser.flush()[0]]
# A byte-level vocabulary: every byte one token, plus a few longer ones; id 300 ends the turn.
vocab = [bytes([b]) for b in range(256)] + [b'{"', b'":', b'true', b'false', b'</parameter>\\n']
token_bytes = lambda i: vocab[i] if i < len(vocab) else None
out = []
schema_format = {"type": "json_schema", "json_schema": {"schema": SCHEMA}}
for grammar in (output_grammar([], ToolChoice(), schema_format, False),
                output_grammar([TOOL], ToolChoice("function", "f"), None, True)):
    constraint = GrammarConstraint(LazyDfa(grammar), TokenTrie(vocab), token_bytes, frozenset({300}))
    rng, params, written = random.Random(0), SamplingParams(temperature=1.0, seed=0), b""
    for step in range(120):
        ids = rng.sample(range(len(vocab)), 16)
        token = constraint.pick([-i / 4 for i in range(16)], ids, 0.0, params, rng, 120 - step)
        if token is None:
            token = constraint.pick_whole(lambda i: -(i %% 7), params, rng, 120 - step, frozenset())
        if token == 300:
            break
        constraint.advance(token)
        written += token_bytes(token)
    out.append(written.decode("utf-8", "replace"))
json.dumps({"content": parser.content, "shown": "".join(shown),
            "call": [parser.calls[0].name, parser.calls[0].arguments, parser.calls[0].error], "outputs": out})
"""


def _native() -> dict:
    namespace: dict = {}
    lines = CHECK.replace("%%", "%").strip().splitlines()
    exec("\n".join(lines[:-2]), namespace)
    return json.loads(eval(lines[-2] + lines[-1], namespace))


def test_the_parser_and_constraints_give_the_same_in_pyodide(tmp_path):
    assert NODE is not None and (PYODIDE / "pyodide.mjs").exists(), (
        "node and node_modules/pyodide (make setup)"
    )
    check = tmp_path / "check.py"
    check.write_text(CHECK.replace("%%", "%"), encoding="utf-8")
    runner = tmp_path / "run.mjs"
    runner.write_text(_RUNNER % {"pyodide": PYODIDE.as_posix()}, encoding="utf-8")
    done = subprocess.run(
        [NODE, str(runner), str(REPO / "qwen35web" / "runtime"), str(check)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    in_pyodide = json.loads(done.stdout.strip().splitlines()[-1])
    assert in_pyodide == _native()
    assert in_pyodide["content"] == in_pyodide["shown"] == "Hi"
    assert in_pyodide["call"] == ["f", {"n": 7}, None]
    value = json.loads(in_pyodide["outputs"][0])
    assert set(value) >= {"a", "b"} and value["b"] in ("x", "y")
    assert all(isinstance(v, bool) for v in value["a"])
    call = parse_call(in_pyodide["outputs"][1].split("</think>")[-1].lstrip(), [TOOL], "call_1")
    assert call.name == "f" and call.error is None and isinstance(call.arguments["n"], int)
