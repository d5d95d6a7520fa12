"""`--layout transformers.js` folders run in @huggingface/transformers 4.3.2 (node, onnxruntime-node 1.30).

tests/transformers_js/run_model.mjs loads an exported folder with transformers.js as a user would
(AutoModelForCausalLM / AutoTokenizer from a local path, nothing patched) and reports its prefill
logits, its greedy tokens and the feeds of every session run. Here they are compared with PyTorch
(transformers' model with the same weights) and, for q4, with onnxruntime on the same graph.

transformers.js 4.3.2's text-only MRoPE delta is `max(position) + 1 + T` (its
_get_text_only_rope_index), where transformers computes `max + 1 - T` (= 0 for a plain prompt).
After a T-token prompt it therefore feeds decode step k at position 3T + k instead of T + k: the
prefill and the first token are right, every decode step after that runs 2T positions too far. The
tests do not hide this. They assert the delta and the positions transformers.js feeds, that its
tokens equal PyTorch's run at exactly those positions, and that they equal PyTorch's correct greedy
tokens up to the first token where the two PyTorch runs differ; what follows is recorded in
build/transformers-js-report.json (first differing token, per prompt), not asserted away.

Missing node or node_modules fail with the command that fixes them (`make setup`); never a skip.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from tokenizers import Tokenizer

from devtools.train_tiny.evaluate import CHAT_QUESTION, CONTINUATION_PROMPT, chat_prompt
from qwen35web.export.config import spec_from_config
from qwen35web.export.layout_transformers_js import config_for
from qwen35web.export.ort_runner import GraphRunner, batch_text_positions
from qwen35web.export.validate import reference_greedy
from qwen35web.runtime.graph_io import graph_inputs, text_positions
from tests.run_async import run_async

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "tests" / "transformers_js"
SCRIPT = NODE_DIR / "run_model.mjs"
TRAINED = ROOT / "models" / "tiny-qwen35"
REPORT_FILE = ROOT / "build" / "transformers-js-report.json"
INSTALL_HINT = (
    "`make setup` (or: cd tests/transformers_js && ONNXRUNTIME_NODE_INSTALL=skip npm ci --ignore-scripts)"
)

TINY_PROMPT = "Return a new list containing the items of the iterable."
TRAINED_PROMPTS = {
    "continuation": CONTINUATION_PROMPT,
    "chat": chat_prompt(CHAT_QUESTION),
    "docstring": 'def read_file(path):\n    """Return the',
}
NEW_TOKENS = 32
LOGITS_ATOL = 1e-4


def transformers_js_delta(prompt_tokens: int) -> int:
    """4.3.2's text-only mrope delta for a plain prompt: max (T - 1) + 1 + T."""
    return 2 * prompt_tokens


# --- running transformers.js -------------------------------------------------------------------


def run_transformers_js(
    folder: Path, prompt: str, new_tokens: int, work: Path, stop_at_eos: bool = False
) -> dict[str, Any]:
    if shutil.which("node") is None:
        pytest.fail(f"these tests need node on PATH and the npm packages: {INSTALL_HINT}")
    if not (NODE_DIR / "node_modules" / "@huggingface" / "transformers").is_dir():
        pytest.fail(f"tests/transformers_js/node_modules is missing: {INSTALL_HINT}")
    request = work / f"request-{folder.name}.json"
    request.write_text(
        json.dumps(
            {"folder": str(folder), "prompt": prompt, "new_tokens": new_tokens, "stop_at_eos": stop_at_eos}
        )
    )
    proc = subprocess.run(
        ["node", str(SCRIPT), str(request)], cwd=NODE_DIR, capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        pytest.fail(f"transformers.js failed on {folder}:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def tjs_logits(result: dict[str, Any]) -> np.ndarray:
    logits = result["logits"]
    return np.array(logits["data"], dtype=np.float32).reshape(logits["dims"])[0]  # [T, V]


def decode_positions(result: dict[str, Any]) -> list[list[int]]:
    """The position_ids rows transformers.js fed each decode step (generate's runs after the prefill)."""
    return [run["position_ids"]["data"] for run in result["generate_runs"][1:]]


def eos_ids(folder: Path) -> tuple[int, ...]:
    eos = json.loads((folder / "generation_config.json").read_text())["eos_token_id"]
    return tuple(eos) if isinstance(eos, list) else (eos,)


# --- the references: greedy decoding with the decode positions shifted ---------------------------


def _pick(logits: np.ndarray, suppress: tuple[int, ...]) -> int:
    logits = logits.copy()
    logits[list(suppress)] = -np.inf  # as min_new_tokens does on both sides
    return int(np.argmax(logits))


@torch.no_grad()
def torch_greedy(model: Any, prompt: list[int], new_tokens: int, shift: int, suppress: tuple[int, ...]):
    """transformers' model with its cache: decode step k (after T prompt tokens) at T + k + `shift`.

    Returns the tokens and the logits [V] each step chose from.
    """
    out = model(input_ids=torch.tensor([prompt]), use_cache=True)
    tokens: list[int] = []
    chosen_from: list[np.ndarray] = []
    for step in range(new_tokens):
        chosen_from.append(out.logits[0, -1].float().numpy())
        tokens.append(_pick(chosen_from[-1], suppress))
        if step == new_tokens - 1:
            break
        past = len(prompt) + step
        out = model(
            input_ids=torch.tensor([[tokens[-1]]]),
            attention_mask=torch.ones(1, past + 1, dtype=torch.long),
            position_ids=torch.tensor([[past + shift]]),
            past_key_values=out.past_key_values,
            use_cache=True,
        )
    return tokens, chosen_from


def ort_greedy(
    runner: GraphRunner, prompt: list[int], new_tokens: int, shift: int, suppress: tuple[int, ...]
):
    """onnxruntime on the graph itself, decode steps at T + k + `shift` (like torch_greedy)."""
    logits, states = runner.step(np.array([prompt]), 0, runner.zero_states(1))
    tokens: list[int] = []
    for step in range(new_tokens):
        tokens.append(_pick(logits[0, -1], suppress))
        if step == new_tokens - 1:
            break
        past = len(prompt) + step
        positions = batch_text_positions(1, past + shift, 1)
        logits, states = runner.step(np.array([[tokens[-1]]]), past, states, positions=positions)
    return tokens


def first_difference(a: list[int], b: list[int]) -> int | None:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), None)


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def report() -> Iterator[dict[str, Any]]:
    """What the tests measure, written to build/transformers-js-report.json."""
    measured: dict[str, Any] = {}
    yield measured
    if measured:
        REPORT_FILE.parent.mkdir(parents=True, exist_ok=True)
        REPORT_FILE.write_text(json.dumps(measured, indent=2, sort_keys=True) + "\n")


@pytest.fixture(scope="module")
def tjs_export(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Export a checkpoint with --layout transformers.js once per (source, dtype, file limit)."""
    from qwen35web.export.pipeline import ExportOptions, run_export

    made: dict[tuple[Path, str, int | None], Path] = {}

    def get(source: Path, dtype: str = "fp32", max_data_file_bytes: int | None = None) -> Path:
        key = (source, dtype, max_data_file_bytes)
        if key not in made:
            out = tmp_path_factory.mktemp("tjs") / f"{source.name}-{dtype}"
            limit = {"max_data_file_bytes": max_data_file_bytes} if max_data_file_bytes else {}
            run_export(ExportOptions(source, out, dtype=dtype, layout="transformers.js", **limit))
            made[key] = out
        return made[key]

    return get


# The tiny fp32 export is split into several data files, so that transformers.js's chunk names
# (model.onnx_data, model.onnx_data_1, ...) are exercised.
SPLIT_LIMIT = 300_000


@pytest.fixture(scope="module")
def tiny_fp32(tjs_export, tiny_text_dir: Path) -> Path:
    return tjs_export(tiny_text_dir, "fp32", SPLIT_LIMIT)


@pytest.fixture(scope="module")
def tiny_result(tiny_fp32: Path, tmp_path_factory) -> dict[str, Any]:
    return run_transformers_js(tiny_fp32, TINY_PROMPT, NEW_TOKENS, tmp_path_factory.mktemp("node"))


@pytest.fixture(scope="module")
def trained_model() -> Any:
    from transformers import Qwen3_5ForCausalLM

    return Qwen3_5ForCausalLM.from_pretrained(TRAINED, dtype=torch.float32).eval()


# --- the folder ----------------------------------------------------------------------------------


def test_folder_holds_what_transformers_js_opens(tiny_fp32: Path) -> None:
    files = sorted(p.relative_to(tiny_fp32).as_posix() for p in tiny_fp32.rglob("*") if p.is_file())
    data = [f for f in files if f.startswith("onnx/model.onnx_data")]
    assert len(data) >= 3
    assert data == ["onnx/model.onnx_data"] + [f"onnx/model.onnx_data_{i}" for i in range(1, len(data))]
    expected = [
        "config.json",
        "generation_config.json",
        "onnx/model.onnx",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert sorted(set(files) - set(data)) == expected  # no manifest, sampler or root model.onnx
    config = json.loads((tiny_fp32 / "config.json").read_text())
    assert config["model_type"] == "qwen3_5_text" and config["architectures"] == ["Qwen3_5ForCausalLM"]
    assert config["vision_config"] == {"spatial_merge_size": 2}
    assert config["transformers.js_config"] == {
        "dtype": "fp32",
        "use_external_data_format": {"model.onnx": len(data)},
    }
    graph = onnx.load(str(tiny_fp32 / "onnx" / "model.onnx"), load_external_data=False).graph
    locations = {e.value for t in graph.initializer for e in t.external_data if e.key == "location"}
    assert locations == {Path(f).name for f in data}


def test_a_vision_language_config_becomes_the_text_config_transformers_js_reads() -> None:
    text = {"hidden_size": 64, "layer_types": ["full_attention"], "eos_token_id": 7}
    vl = {
        "model_type": "qwen3_5",
        "architectures": ["Qwen3_5ForConditionalGeneration"],
        "text_config": {**text, "model_type": "qwen3_5_text"},
        "vision_config": {"depth": 1, "spatial_merge_size": 2},
        "tie_word_embeddings": True,
        "image_token_id": 5,
    }
    config = config_for(vl, "model_q4.onnx", 2, "q4")
    assert config == {
        **text,
        "tie_word_embeddings": True,
        "model_type": "qwen3_5_text",
        "architectures": ["Qwen3_5ForCausalLM"],
        "vision_config": {"depth": 1, "spatial_merge_size": 2},
        "transformers.js_config": {"dtype": "q4", "use_external_data_format": {"model_q4.onnx": 2}},
    }


# --- fused fp32, seeded tiny checkpoint ----------------------------------------------------------


def test_transformers_js_loads_it_as_a_text_model_and_feeds_the_graph_contract(
    tiny_fp32: Path, tiny_result: dict[str, Any], tiny_text_dir: Path
) -> None:
    assert tiny_result["model_class"] == "Qwen3_5ForCausalLM" and tiny_result["sessions"] == ["model"]
    facts = spec_from_config(json.loads((tiny_text_dir / "config.json").read_text()))
    # input_ids, attention_mask, position_ids, the states
    contract = [spec.name for spec in graph_inputs(facts, "float32")]
    assert tiny_result["session_inputs"] == contract
    # What generate() feeds, every step: exactly the contract (no num_logits_to_keep, no inputs_embeds).
    assert all(run["inputs"] == contract for run in tiny_result["generate_runs"])
    ids = Tokenizer.from_file(str(tiny_fp32 / "tokenizer.json")).encode(TINY_PROMPT).ids
    assert tiny_result["input_ids"] == ids
    prompt_tokens = len(ids)
    assert tiny_result["position_ids"]["dims"] == [3, 1, prompt_tokens]
    assert tiny_result["position_ids"]["data"] == [p for row in text_positions(0, prompt_tokens) for p in row]


def test_prefill_logits_equal_pytorch(tiny_result: dict[str, Any], tiny_reference, report) -> None:
    with torch.no_grad():
        expected = tiny_reference(torch.tensor([tiny_result["input_ids"]])).logits[0].numpy()
    logits = tjs_logits(tiny_result)
    worst = float(np.abs(logits - expected).max())
    report["tiny_fp32_prefill_max_abs"] = worst
    assert worst <= LOGITS_ATOL


def _check_greedy(
    result: dict[str, Any], model: Any, suppress: tuple[int, ...], new_tokens: int, against_generate: bool
) -> dict[str, Any]:
    """transformers.js's tokens against PyTorch's, the delta accounted for; returns the findings.

    `against_generate`: also check that the emulation at the right positions is transformers' own
    generate() (once per model is enough: the emulation is the same code for every prompt).
    """
    prompt = result["input_ids"]
    prompt_tokens, delta = len(prompt), transformers_js_delta(len(prompt))
    # transformers.js's own numbers: the delta, and decode step k fed at 3T + k (PyTorch: T + k).
    assert result["rope_deltas"] == [delta]
    assert decode_positions(result) == [[prompt_tokens + delta + k] * 3 for k in range(new_tokens - 1)]
    correct, correct_logits = torch_greedy(model, prompt, new_tokens, 0, suppress)
    if against_generate:
        assert correct == reference_greedy(model, np.array(prompt), new_tokens)
    shifted, shifted_logits = torch_greedy(model, prompt, new_tokens, delta, suppress)
    tokens = result["generated"]
    assert tokens == shifted  # PyTorch fed the positions transformers.js feeds: the same tokens
    first = first_difference(correct, shifted)
    assert first is None or first >= 1  # the prefill (token 0) is not affected
    assert tokens[:first] == correct[:first]
    return {
        "prompt_tokens": prompt_tokens,
        "rope_delta": delta,
        "first_decode_position": {"transformers.js": prompt_tokens + delta, "transformers": prompt_tokens},
        "step1_logits_max_abs_change": float(np.abs(correct_logits[1] - shifted_logits[1]).max()),
        "first_differing_token": first,
        "transformers_js_tokens": tokens,
        "pytorch_greedy_tokens": correct,
    }


def test_greedy_tokens_against_pytorch(tiny_fp32: Path, tiny_result, tiny_reference, report) -> None:
    findings = _check_greedy(
        tiny_result, tiny_reference, eos_ids(tiny_fp32), NEW_TOKENS, against_generate=True
    )
    report["tiny_fp32_greedy"] = findings


# --- fused fp32, the trained model: its greedy text depends on positions -------------------------


def test_trained_model_prefill_and_greedy_against_pytorch(
    tjs_export, trained_model, tmp_path: Path, report
) -> None:
    folder = tjs_export(TRAINED, "fp32")
    assert json.loads((folder / "config.json").read_text())["transformers.js_config"] == {
        "dtype": "fp32",
        "use_external_data_format": {"model.onnx": 1},
    }
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    cases = {}
    for index, (name, prompt) in enumerate(TRAINED_PROMPTS.items()):
        result = run_transformers_js(folder, prompt, NEW_TOKENS, tmp_path)
        assert result["input_ids"] == tokenizer.encode(prompt).ids, name
        with torch.no_grad():
            expected = trained_model(torch.tensor([result["input_ids"]])).logits[0].numpy()
        worst = float(np.abs(tjs_logits(result) - expected).max())
        assert worst <= LOGITS_ATOL, name
        cases[name] = {
            "prefill_max_abs": worst,
            **_check_greedy(result, trained_model, eos_ids(folder), NEW_TOKENS, against_generate=index == 0),
        }
    report["trained_fp32"] = cases
    # The delta is not harmless: on this model at least one prompt's greedy text changes.
    assert any(case["first_differing_token"] is not None for case in cases.values()), cases


# --- q4 ------------------------------------------------------------------------------------------


def test_q4_folder_runs_like_onnxruntime_on_the_same_graph(
    tjs_export, tiny_text_dir, tmp_path, report
) -> None:
    folder = tjs_export(tiny_text_dir, "q4")
    assert (folder / "onnx" / "model_q4.onnx").is_file() and (
        folder / "onnx" / "model_q4.onnx_data"
    ).is_file()
    assert json.loads((folder / "config.json").read_text())["transformers.js_config"]["dtype"] == "q4"
    result = run_transformers_js(folder, TINY_PROMPT, NEW_TOKENS, tmp_path)
    runner = GraphRunner(folder / "onnx" / "model_q4.onnx")
    prompt = result["input_ids"]
    expected, _ = runner.step(np.array([prompt]), 0, runner.zero_states(1))
    worst = float(np.abs(tjs_logits(result) - expected[0]).max())
    assert worst <= LOGITS_ATOL
    delta = transformers_js_delta(len(prompt))
    shifted = ort_greedy(runner, prompt, NEW_TOKENS, delta, eos_ids(folder))
    assert result["generated"] == shifted
    correct = ort_greedy(runner, prompt, NEW_TOKENS, 0, eos_ids(folder))
    first = first_difference(correct, shifted)
    assert result["generated"][:first] == correct[:first]
    report["tiny_q4"] = {"prefill_max_abs_vs_onnxruntime": worst, "first_differing_token": first}


# --- bad input -----------------------------------------------------------------------------------


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def test_unknown_layout_is_one_line(tmp_path: Path, capsys) -> None:
    from qwen35web.export.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path), str(tmp_path / "out"), "--layout", "onnx-community"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(_error_lines(err)) == 1 and "--layout" in err, err


def test_a_bad_vision_config_is_refused_before_any_work(tiny_text_dir: Path, tmp_path: Path, capsys) -> None:
    from qwen35web.export.cli import main

    model = tmp_path / "model"
    shutil.copytree(tiny_text_dir, model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "vision_config": {"spatial_merge_size": 0}}))
    out = tmp_path / "out"
    code = main([str(model), str(out), "--layout", "transformers.js"])
    err = capsys.readouterr().err
    assert code == 2 and len(_error_lines(err)) == 1 and "spatial_merge_size" in err, err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_a_failure_while_arranging_keeps_what_the_user_had(
    tiny_text_dir: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    from qwen35web.export import layout_transformers_js
    from qwen35web.export.cli import main

    def disk_full(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    # The last step of `arrange`: the weights and the graph are already in place in the staging dir.
    monkeypatch.setattr(layout_transformers_js, "_write_generation_config", disk_full)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code = main([str(tiny_text_dir), str(out), "--layout", "transformers.js", "--force"])
    err = capsys.readouterr().err
    assert code == 1 and len(_error_lines(err)) == 1 and "No space left" in err, err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name or ".old-" in p.name]


def test_the_published_replica_stops_at_the_turn_end_in_transformers_js(
    replica_export, tmp_path: Path
) -> None:
    """The 0.8B replica (whose model ends its turn after one token, see
    tests/devtools/test_published_replica.py): its folder's generation_config.json carries the bundle's
    stop ids, and transformers.js's own generate ends the reply at <|im_end|> where the bundle does."""
    from qwen35web.runtime.chat import render_chat
    from qwen35web.runtime.native.open_bundle import open_native
    from qwen35web.runtime.sampling import SamplingParams

    folder = replica_export("0.8b", "transformers.js")
    bundle = replica_export("0.8b")
    assert eos_ids(folder) == (248044, 248046)

    async def ours() -> tuple[str, list[int]]:
        runtime = await open_native(bundle)
        try:
            messages = [{"role": "user", "content": "Tell me a story."}]
            prompt = runtime.prompt(messages=messages)
            result = await runtime.generate(prompt.ids, SamplingParams(greedy=True, max_new_tokens=16))
            return render_chat(runtime.manifest.chat_template or "", messages), result.tokens
        finally:
            await runtime.close()

    text, tokens = run_async(ours())
    result = run_transformers_js(folder, text, 16, tmp_path, stop_at_eos=True)
    assert result["generated"] == [*tokens, 248046], (result["generated"], tokens)
