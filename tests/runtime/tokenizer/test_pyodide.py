"""The tokenizer inside Pyodide (CPython 3.14 as wasm, run by Node) gives `tokenizers`' ids on the real vocab.

Pyodide's Python has a newer `unicodedata` (Unicode 16) than the native venv, so this also checks that our
frozen class tables and NFC agree with `tokenizers` there. Needs `node` and node_modules/pyodide, which
`make setup` installs (package.json); without them the test fails (CI must not pass without Pyodide).
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.runtime.tokenizer.conftest import TokenizerPair
from tests.runtime.tokenizer.corpus import CORPUS

REPO = Path(__file__).resolve().parents[3]
PYODIDE_DIR = REPO / "node_modules" / "pyodide"
NODE = shutil.which("node")


@pytest.fixture(autouse=True)
def _require_pyodide() -> None:
    assert NODE is not None, "node is not on PATH (make setup)"
    assert (PYODIDE_DIR / "pyodide.mjs").exists(), "node_modules/pyodide is missing (make setup)"


_RUNNER = """
import { loadPyodide } from "%(pyodide)s/pyodide.mjs";
import fs from "fs";
const [work, source] = process.argv.slice(2);
const py = await loadPyodide({ indexURL: "%(pyodide)s/" });
py.FS.mkdirTree("/work/qwen35web/runtime/tokenizer");
py.FS.writeFile("/work/qwen35web/__init__.py", "");
py.FS.writeFile("/work/qwen35web/runtime/__init__.py", "");
for (const name of fs.readdirSync(source)) {
  if (name.endsWith(".py")) {
    py.FS.writeFile(`/work/qwen35web/runtime/tokenizer/${name}`, fs.readFileSync(`${source}/${name}`));
  }
}
for (const name of ["tokenizer.json", "cases.json", "check.py"]) {
  py.FS.writeFile(`/work/${name}`, fs.readFileSync(`${work}/${name}`));
}
console.log(await py.runPythonAsync(fs.readFileSync(`${work}/check.py`, "utf8")));
"""

_CHECK = """
import json, sys, time
sys.path.insert(0, "/work")
start = time.perf_counter()
from qwen35web.runtime.tokenizer import Tokenizer
tokenizer = Tokenizer.from_file("/work/tokenizer.json")
loaded = time.perf_counter()
cases = json.load(open("/work/cases.json"))
failures = []
for text, ids, decoded in cases:
    if tokenizer.encode(text) != ids:
        failures.append(["encode", text])
    if tokenizer.decode(ids) != decoded:
        failures.append(["decode", text])
    stream = tokenizer.stream_decoder()
    if "".join(stream.push(i) for i in ids) + stream.flush() != decoded:
        failures.append(["stream", text])
json.dumps({"python": sys.version.split()[0], "load_s": loaded - start,
            "encode_all_s": time.perf_counter() - loaded, "failures": failures[:5]})
"""


def _generated_texts(count: int, seed: int = 1234) -> list[str]:
    rng = random.Random(seed)
    pools = [
        [chr(cp) for cp in range(0x20, 0x7F)],
        [" ", "\n", "\t", "\r\n", "'s", "'T", "<|im_end|>", "\u00a0", "\x1c"],
        [chr(rng.randrange(0x80, 0x3400)) for _ in range(400)],
        [chr(rng.randrange(0x3400, 0x10FFFF)) for _ in range(400)],
    ]
    texts = []
    for _ in range(count):
        parts = [rng.choice(rng.choice(pools)) for _ in range(rng.randrange(1, 40))]
        texts.append("".join(part for part in parts if not 0xD800 <= ord(part[0]) <= 0xDFFF))
    return texts


def test_pyodide_encodes_and_decodes_like_tokenizers(
    real_pair: TokenizerPair, real_tokenizer_path: Path, tmp_path: Path
) -> None:
    texts = [*CORPUS, *_generated_texts(300)]
    cases = []
    for text in texts:
        ids = real_pair.hf.encode(text, add_special_tokens=False).ids
        cases.append([text, ids, real_pair.hf.decode(ids, skip_special_tokens=False)])
    (tmp_path / "cases.json").write_text(json.dumps(cases), encoding="utf-8")
    (tmp_path / "check.py").write_text(_CHECK, encoding="utf-8")
    (tmp_path / "tokenizer.json").symlink_to(real_tokenizer_path)
    runner = tmp_path / "run.mjs"
    runner.write_text(_RUNNER % {"pyodide": PYODIDE_DIR.as_posix()}, encoding="utf-8")
    source = REPO / "qwen35web" / "runtime" / "tokenizer"
    completed = subprocess.run(
        [str(NODE), str(runner), str(tmp_path), str(source)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    print("pyodide:", report)
    assert report["python"].startswith("3.")
    assert report["failures"] == []
