"""Sampling defaults where a checkpoint ships no generation_config.json: the Qwen3.5 model card's values
for the template's default mode (with their source), a user's --generation-config FILE, and none for a
stand-in checkpoint; the manifest reader, the CLI and the runtime take them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qwen35web.export import card_sampling
from qwen35web.export.card_sampling import CARD_SAMPLING, CARD_URL, generation_section
from qwen35web.export.errors import BadInputError
from qwen35web.export.pipeline import ExportOptions, run_export
from qwen35web.runtime.generation_defaults import with_bundle_defaults
from qwen35web.runtime.manifest import load_local_manifest
from qwen35web.runtime.sampling import SamplingParams

ROOT = Path(__file__).resolve().parents[2]
REAL_VOCAB = card_sampling.QWEN35_VOCAB_SIZE
THINKS = "{% for m in messages %}{{ m['content'] }}{% endfor %}<|im_start|>assistant\n<think>\n"
ANSWERS = (
    "{% for m in messages %}{{ m['content'] }}{% endfor %}<|im_start|>assistant\n<think>\n\n</think>\n\n"
)


def test_the_card_values_follow_the_template_default_mode(tmp_path: Path) -> None:
    thinking = generation_section(tmp_path, REAL_VOCAB, THINKS)
    answering = generation_section(tmp_path, REAL_VOCAB, ANSWERS)
    assert {k: thinking[k] for k in CARD_SAMPLING["thinking"]} == {
        "do_sample": True,
        "temperature": 1.0,
        "top_p": 0.95,
        "top_k": 20,
        "presence_penalty": 1.5,
    }
    assert answering["presence_penalty"] == 2.0 and answering["top_p"] == 1.0
    assert "thinking mode" in thinking["source"] and "non-thinking mode" in answering["source"]
    assert CARD_URL in answering["source"]
    assert generation_section(tmp_path, REAL_VOCAB, None)["source"] == card_sampling.card_source(
        "non-thinking"
    )
    # A stand-in with another vocabulary is not a model the card speaks for.
    assert generation_section(tmp_path, 500, THINKS) == {}
    SamplingParams(**with_bundle_defaults({}, thinking))  # every recorded value is a valid setting


def test_a_checkpoint_file_or_a_user_file_wins_over_the_card(tmp_path: Path) -> None:
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [7], "temperature": 0.5}))
    own = generation_section(tmp_path, REAL_VOCAB, THINKS)
    assert own == {"eos_token_ids": [7], "temperature": 0.5, "source": "generation_config.json"}
    eos_only = tmp_path / "eos-only"
    eos_only.mkdir()
    (eos_only / "generation_config.json").write_text(json.dumps({"eos_token_id": 2}))
    # eos ids only (save_pretrained's file for a fine-tune): the card's sampling beside them.
    assert generation_section(eos_only, REAL_VOCAB, THINKS) == {
        "eos_token_ids": [2],
        **CARD_SAMPLING["thinking"],
        "source": card_sampling.card_source("thinking"),
    }
    user = tmp_path / "mine.json"
    user.write_text(json.dumps({"top_k": 5, "presence_penalty": 0.5, "frequency_penalty": -0.5}))
    section = generation_section(tmp_path, REAL_VOCAB, THINKS, user)
    assert section == {
        "top_k": 5,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "source": "--generation-config mine.json",
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such file"), ({"presence_penalty": 3}, "presence_penalty"), ("{", "not valid JSON")],
)
def test_a_bad_user_file_is_one_clear_error(tmp_path: Path, content, message) -> None:
    user = tmp_path / "given.json"
    if content is not None:
        user.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(BadInputError, match=message):
        generation_section(tmp_path, REAL_VOCAB, None, user)


def test_export_cli_refuses_a_missing_generation_config(tmp_path: Path, tiny_text_dir: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "qwen35web",
            "export",
            str(tiny_text_dir),
            str(tmp_path / "out"),
            "--generation-config",
            str(tmp_path / "absent.json"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: --generation-config: no such file: {tmp_path / 'absent.json'}"
    ]
    assert not (tmp_path / "out").exists()


def test_an_exported_card_default_reaches_the_manifest_and_the_cli(
    tmp_path: Path, tiny_text_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tiny checkpoint stands in for a published one: the card applies to its vocabulary here.
    config = json.loads((tiny_text_dir / "config.json").read_text())
    vocab = config.get("text_config", config)["vocab_size"]
    monkeypatch.setattr(card_sampling, "QWEN35_VOCAB_SIZE", vocab)
    bundle = tmp_path / "bundle"
    run_export(ExportOptions(tiny_text_dir, bundle))
    manifest = load_local_manifest(bundle)
    assert manifest.generation["presence_penalty"] == 2.0 and manifest.generation["top_k"] == 20
    assert manifest.generation["source"] == card_sampling.card_source("non-thinking")

    def generate(*flags: str) -> list[int]:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "qwen35web",
                "generate",
                str(bundle),
                "--prompt",
                "the the the",
                "--json",
                "--greedy",
                "--max-new-tokens",
                "24",
                "--min-new-tokens",
                "24",
                *flags,
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)["tokens"]

    by_default = generate()
    assert by_default == generate("--presence-penalty", "2")  # the card's value is the default
    unpenalised = generate("--presence-penalty", "0")
    assert by_default != unpenalised
    assert len(set(by_default)) > len(set(unpenalised))
    assert generate("--presence-penalty", "0", "--frequency-penalty", "1.5") != unpenalised
