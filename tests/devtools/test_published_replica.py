"""End to end on replicas of the published Qwen3.5 repositories (devtools.published_replica): the layout,
its export (0.8B and 4B layouts), where a reply stops, the template's thinking default, generate and chat.

The 0.8B replica's model ends its turns (devtools.published_replica.end_turns): transformers' greedy
`generate` with the bundle's stop ids answers STOP_PROMPT with one token and `<|im_end|>`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from devtools.published_replica import ENDOFTEXT_ID, IM_END_ID, INDEX_FILE, shard_names
from qwen35web.export.card_sampling import CARD_SAMPLING, card_source
from qwen35web.export.chat_facts import stop_token_ids, thinking_default
from qwen35web.export.checkpoint import Checkpoint
from qwen35web.export.config import read_config_json, spec_from_config
from qwen35web.export.errors import BadInputError
from qwen35web.export.generation_config import read_generation_config
from qwen35web.export.mtp import check_mtp
from qwen35web.runtime.errors import GenerationInputError
from qwen35web.runtime.manifest import load_local_manifest
from qwen35web.runtime.native.open_bundle import open_native
from qwen35web.runtime.sampling import SamplingParams
from tests.run_async import run_async

ROOT = Path(__file__).resolve().parents[2]
STOP_PROMPT = "Tell me a story."
MAX_NEW_TOKENS = 24
STOP_IDS = [ENDOFTEXT_ID, IM_END_ID]
PUBLISHED_FILES = {
    "chat_template.jinja",
    "config.json",
    "merges.txt",
    "vocab.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "preprocessor_config.json",
    "video_preprocessor_config.json",
    INDEX_FILE,
}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qwen35web", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=600,
    )


@pytest.mark.parametrize(("layout", "shards"), [("0.8b", 1), ("4b", 2)])
def test_the_replica_is_laid_out_as_published(published_replica, layout: str, shards: int) -> None:
    folder = published_replica(layout)
    assert {p.name for p in folder.iterdir()} == PUBLISHED_FILES | set(shard_names(shards))
    config = json.loads((folder / "config.json").read_text())
    text = config["text_config"]
    assert (
        config["architectures"] == ["Qwen3_5ForConditionalGeneration"] and config["image_token_id"] == 248056
    )
    assert text["dtype"] == "bfloat16" and "torch_dtype" not in text
    assert type(text["rope_parameters"]["rope_theta"]) is int
    assert text["eos_token_id"] == ENDOFTEXT_ID and "eos_token_id" not in config
    assert "pad_token_id" not in config and "pad_token_id" not in text
    names = set(Checkpoint(folder).entries)
    assert "mtp.fc.weight" in names and "mtp.layers.0.self_attn.q_proj.weight" in names
    assert any(n.startswith("model.visual.") for n in names) and "lm_head.weight" not in names
    index = json.loads((folder / INDEX_FILE).read_text())
    assert sorted(set(index["weight_map"].values())) == shard_names(shards)
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    assert tokenizer_config["eos_token"] == "<|im_end|>" and "pad_token" not in tokenizer_config
    vocab = json.loads((folder / "vocab.json").read_text())
    assert len(vocab) == 248044 and (folder / "merges.txt").read_text().startswith("#version")


def test_what_the_templates_do_by_default(published_replica) -> None:
    small = (published_replica("0.8b") / "chat_template.jinja").read_text()
    large = (published_replica("4b") / "chat_template.jinja").read_text()
    assert thinking_default(small) is False and thinking_default(large) is True
    assert thinking_default("{% for m in messages %}{{ m.content }}{% endfor %}") is None


@pytest.mark.parametrize(("layout", "thinks"), [("0.8b", False), ("4b", True)])
def test_the_export_records_the_stop_ids_and_the_thinking_default(
    replica_export, layout: str, thinks: bool
) -> None:
    manifest = load_local_manifest(replica_export(layout))
    assert list(manifest.eos_token_ids) == STOP_IDS  # config's <|endoftext|> and the turn's <|im_end|>
    assert manifest.thinking_default is thinks
    # No generation_config.json: the model card's values for the mode the template starts in, said so.
    mode = "thinking" if thinks else "non-thinking"
    assert manifest.generation == {**CARD_SAMPLING[mode], "source": card_source(mode)}
    assert manifest.vision is not None


def _transformers_greedy(checkpoint: Path, prompt_ids: list[int]) -> list[int]:
    from qwen35web.export.reference import load_reference

    config = read_config_json(checkpoint)
    model = load_reference(spec_from_config(config), config, Checkpoint(checkpoint))
    with torch.no_grad():
        out = model.generate(
            torch.tensor([prompt_ids]),
            max_new_tokens=MAX_NEW_TOKENS,
            do_sample=False,
            eos_token_id=STOP_IDS,
            pad_token_id=ENDOFTEXT_ID,
        )
    return out[0, len(prompt_ids) :].tolist()


def test_a_reply_stops_where_the_turn_ends_as_in_transformers(published_replica, replica_export) -> None:
    async def ours():
        runtime = await open_native(replica_export("0.8b"))
        try:
            prompt = runtime.prompt(STOP_PROMPT, chat=True)
            params = SamplingParams(greedy=True, max_new_tokens=MAX_NEW_TOKENS)
            return prompt.ids, await runtime.generate(prompt.ids, params)
        finally:
            await runtime.close()

    prompt_ids, result = run_async(ours())
    reference = _transformers_greedy(published_replica("0.8b"), prompt_ids)
    assert reference[-1] == IM_END_ID and len(reference) < MAX_NEW_TOKENS, reference
    assert result.stop_reason == "eos" and result.tokens == reference[:-1], (result.tokens, reference)


def _generate_json(bundle: Path, *flags: str) -> dict:
    done = _cli("generate", str(bundle), "--prompt", STOP_PROMPT, "--chat", "--greedy", "--json", *flags)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize(("layout", "thinks"), [("0.8b", False), ("4b", True)])
def test_generate_passes_enable_thinking_only_when_asked(replica_export, layout: str, thinks: bool) -> None:
    bundle = replica_export(layout)
    default, on, off = (
        _generate_json(bundle, "--max-new-tokens", "4", *flags)
        for flags in ((), ("--thinking",), ("--no-thinking",))
    )
    # The open <think> is 3 tokens shorter than the closed "<think>\n\n</think>\n\n".
    assert on["prompt_tokens"] < off["prompt_tokens"]
    assert default["prompt_tokens"] == (on if thinks else off)["prompt_tokens"]
    assert default["tokens"] == (on if thinks else off)["tokens"]


def test_chat_ends_each_reply_at_the_turn_end(replica_export) -> None:
    bundle = replica_export("0.8b")
    done = subprocess.run(
        [sys.executable, "-m", "qwen35web", "chat", str(bundle), "--greedy", "--json"],
        input=f"{STOP_PROMPT}\nAnd another one.\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    turns = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(turns) == 2 and all(t["stop_reason"] == "eos" for t in turns), turns
    assert all(len(t["tokens"]) < MAX_NEW_TOKENS for t in turns)  # not run on to --max-new-tokens (512)


def test_a_template_without_a_user_query_is_refused(replica_export) -> None:
    async def go():
        runtime = await open_native(replica_export("0.8b"))
        try:
            runtime.prompt(messages=[{"role": "system", "content": "Be brief."}])
        finally:
            await runtime.close()

    with pytest.raises(GenerationInputError, match="no user query"):
        run_async(go())


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def test_a_shard_the_index_names_but_lacks_is_one_line(published_replica, tmp_path: Path, capsys) -> None:
    from qwen35web.export.cli import main

    checkpoint = _copy(published_replica("4b"), tmp_path / "ckpt")
    (checkpoint / shard_names(2)[1]).unlink()
    out = tmp_path / "out"
    code = main([str(checkpoint), str(out)])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and shard_names(2)[1] in errors[0] and "Traceback" not in err, err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_mtp_tensors_of_odd_shape_are_one_warning(published_replica, tmp_path: Path, caplog) -> None:
    from safetensors.torch import load_file, save_file

    checkpoint = _copy(published_replica("0.8b"), tmp_path / "ckpt")
    shard = checkpoint / shard_names(1)[0]
    tensors = load_file(str(shard))
    spec = spec_from_config(read_config_json(checkpoint))
    assert check_mtp(spec, Checkpoint(checkpoint)) == []
    tensors["mtp.fc.weight"] = tensors["mtp.fc.weight"][:, :7].contiguous()
    save_file(tensors, str(shard), metadata={"format": "pt"})
    with caplog.at_level(logging.WARNING, logger="qwen35web.export.mtp"):
        odd = check_mtp(spec, Checkpoint(checkpoint))
    assert odd == ["mtp.fc.weight [32, 7]"]
    assert len(caplog.records) == 1 and "mtp.fc.weight" in caplog.records[0].getMessage()


def test_generation_config_eos_lists_the_tokenizer_does_not_agree_with(
    published_replica, tmp_path: Path, caplog
) -> None:
    checkpoint = _copy(published_replica("0.8b"), tmp_path / "ckpt")
    template = (checkpoint / "chat_template.jinja").read_text()
    config = read_config_json(checkpoint)
    spec = spec_from_config(config)

    def stops(eos: object) -> tuple[int, ...]:
        (checkpoint / "generation_config.json").write_text(json.dumps({"eos_token_id": eos}))
        generation = read_generation_config(checkpoint)
        return stop_token_ids(spec.eos_token_ids, generation, checkpoint, template, spec.vocab_size)

    with caplog.at_level(logging.WARNING, logger="qwen35web.export.chat_facts"):
        assert stops([ENDOFTEXT_ID]) == tuple(STOP_IDS)  # warned, and the bundle stops at both
    assert len(caplog.records) == 1 and "eos_token" in caplog.records[0].getMessage()
    assert stops([IM_END_ID, ENDOFTEXT_ID]) == tuple(STOP_IDS)
    with pytest.raises(BadInputError, match="outside the vocabulary"):
        stops([300000])


def test_thinking_flags_need_a_chat(tmp_path: Path) -> None:
    done = _cli("generate", str(tmp_path), "--prompt", "Hi", "--thinking")
    assert done.returncode == 2 and done.stderr.count("error:") == 1 and "--chat" in done.stderr, done.stderr
    done = _cli("chat", str(tmp_path), "--thinking", "--no-thinking")
    assert done.returncode == 2 and "not allowed with" in done.stderr, done.stderr
