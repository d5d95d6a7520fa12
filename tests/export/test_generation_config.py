"""generation_config.json: its eos ids and sampling defaults reach the manifest and the runtime's defaults."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from qwen35web.export.errors import BadInputError
from qwen35web.export.generation_config import read_generation_config
from qwen35web.export.pipeline import ExportOptions, run_export
from qwen35web.runtime.generation_defaults import with_bundle_defaults
from qwen35web.runtime.manifest import load_local_manifest
from qwen35web.runtime.sampling import SamplingParams

QWEN_STYLE = {
    "bos_token_id": 248044,
    "do_sample": True,
    "eos_token_id": [248046, 248044],
    "pad_token_id": 248044,
    "temperature": 0.6,
    "top_k": 20,
    "top_p": 0.95,
    "transformers_version": "5.23.0",
}


def _with_generation_config(source: Path, target: Path, content: object) -> Path:
    shutil.copytree(source, target)
    (target / "generation_config.json").write_text(json.dumps(content))
    return target


def test_fields_the_runtime_understands_are_kept(tmp_path: Path) -> None:
    (tmp_path / "generation_config.json").write_text(json.dumps(QWEN_STYLE))
    section = read_generation_config(tmp_path)
    assert section == {
        "eos_token_ids": [248046, 248044],
        "do_sample": True,
        "temperature": 0.6,
        "top_p": 0.95,
        "top_k": 20,
    }
    assert read_generation_config(tmp_path / "nothing-here") == {}


@pytest.mark.parametrize(
    "content",
    ["not json", [1, 2], {"temperature": 0}, {"top_p": 1.5}, {"top_k": -1}, {"eos_token_id": "x"}],
)
def test_a_malformed_file_is_bad_input(tmp_path: Path, content: object) -> None:
    text = content if isinstance(content, str) else json.dumps(content)
    (tmp_path / "generation_config.json").write_text(text)
    with pytest.raises(BadInputError, match=r"generation_config\.json"):
        read_generation_config(tmp_path)


def test_user_settings_win_over_the_bundle_defaults() -> None:
    generation = {"do_sample": True, "temperature": 0.6, "top_k": 20, "top_p": 0.95}
    merged = with_bundle_defaults({"temperature": 1.2, "top_p": None, "greedy": None}, generation)
    assert merged == {"temperature": 1.2, "top_k": 20, "top_p": 0.95, "greedy": False}
    assert with_bundle_defaults({}, {"do_sample": False})["greedy"] is True
    SamplingParams(**merged)  # every default is a valid setting


def test_export_records_the_generation_section(tmp_path: Path, tiny_text_dir: Path) -> None:
    checkpoint = _with_generation_config(
        tiny_text_dir, tmp_path / "ckpt", {**QWEN_STYLE, "eos_token_id": [7, 9]}
    )
    run_export(ExportOptions(checkpoint, tmp_path / "bundle"))
    manifest = load_local_manifest(tmp_path / "bundle")
    assert manifest.generation["top_k"] == 20 and manifest.generation["temperature"] == 0.6
    assert set(manifest.eos_token_ids) >= {7, 9}
    assert "generation_config.json" in manifest.files


def test_cli_takes_the_bundle_defaults_unless_told_otherwise(tmp_path: Path, tiny_text_dir: Path) -> None:
    import os
    import subprocess
    import sys

    checkpoint = _with_generation_config(tiny_text_dir, tmp_path / "ckpt", {"do_sample": False})
    bundle = tmp_path / "bundle"
    run_export(ExportOptions(checkpoint, bundle))
    root = Path(__file__).resolve().parents[2]

    def tokens(*flags: str) -> list[int]:
        done = subprocess.run(
            [sys.executable, "-m", "qwen35web", "generate", str(bundle), "--prompt", "ab", "--json", *flags],
            capture_output=True,
            text=True,
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)["tokens"]

    greedy = tokens("--greedy", "--max-new-tokens", "12")
    assert tokens("--max-new-tokens", "12") == greedy  # do_sample: false -> greedy by default
    sampled = [tokens("--sample", "--seed", str(seed), "--max-new-tokens", "12") for seed in (1, 2, 3)]
    assert any(run != greedy for run in sampled)
