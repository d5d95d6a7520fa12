"""`qwen35web export OWNER/NAME OUT`: repo ids resolve through huggingface_hub's cache, offline here.

The tests lay out a Hub cache by hand (refs/ + snapshots/, as huggingface_hub writes it) and run with
HF_HUB_OFFLINE=1, so nothing touches the network.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qwen35web.export.errors import BadInputError
from qwen35web.export.model_source import is_repo_id, resolve_model

ROOT = Path(__file__).resolve().parents[2]
COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


def _lay_out_cache(cache: Path, repo_id: str, checkpoint: Path) -> None:
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    for commit in (COMMIT, OTHER_COMMIT):
        shutil.copytree(checkpoint, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    (repo / "refs" / "v1").write_text(OTHER_COMMIT)
    # Mark the other snapshot so the test can tell which revision was exported.
    config = repo / "snapshots" / OTHER_COMMIT / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "_marker": "v1"}))


@pytest.fixture
def hub_cache(tmp_path: Path, tiny_text_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "hub"
    _lay_out_cache(cache, "tiny-org/Tiny-Qwen3.5", tiny_text_dir)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads its settings once at import: reload them for this test.
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Qwen/Qwen3.5-0.8B", True), ("a/b", True), ("./model", False), ("a/b/c", False), ("x", False)],
)
def test_repo_id_shape(text: str, expected: bool) -> None:
    assert is_repo_id(text) is expected


def test_repo_id_resolves_from_the_offline_cache(hub_cache: Path) -> None:
    resolved = resolve_model("tiny-org/Tiny-Qwen3.5")
    assert resolved.name == COMMIT and (resolved / "config.json").is_file()
    tagged = resolve_model("tiny-org/Tiny-Qwen3.5", revision="v1")
    assert json.loads((tagged / "config.json").read_text())["_marker"] == "v1"


def test_uncached_repo_id_offline_is_one_clear_error(hub_cache: Path) -> None:
    with pytest.raises(BadInputError, match="not in the local Hugging Face cache"):
        resolve_model("tiny-org/Not-Downloaded")


def test_local_path_wins_and_revision_needs_a_repo_id(tiny_text_dir: Path, tmp_path: Path) -> None:
    assert resolve_model(str(tiny_text_dir)) == tiny_text_dir
    with pytest.raises(BadInputError, match="--revision"):
        resolve_model(str(tiny_text_dir), revision="main")
    with pytest.raises(BadInputError, match="does not exist"):
        resolve_model(str(tmp_path / "missing" / "deeper" / "x"))


def _cli(cache: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "qwen35web", "export", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )


def test_cli_exports_a_repo_id_offline(hub_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    done = _cli(hub_cache, "tiny-org/Tiny-Qwen3.5", str(out), "--revision", "v1")
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "config.json").read_text())["_marker"] == "v1"
    missing = _cli(hub_cache, "tiny-org/Not-Downloaded", str(tmp_path / "other"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert [line for line in missing.stderr.splitlines() if line.startswith("error:")] == [
        missing.stderr.strip().splitlines()[-1]
    ]
    assert not (tmp_path / "other").exists()
