"""A vision checkpoint without preprocessor_config.json (what `save_pretrained` writes for a fine-tune)
is refused with one line naming the file and --text-only, before anything is traced or written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _copy_without(checkpoint: Path, target: Path, missing: str) -> Path:
    target.mkdir()
    for path in checkpoint.iterdir():
        if path.name != missing:
            (target / path.name).symlink_to(path)
    return target


def _export(model_dir: Path, out: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "qwen35web", "export", str(model_dir), str(out), *flags]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def test_missing_preprocessor_config_is_one_line_and_exit_2(vl_checkpoint, tmp_path: Path):
    model_dir = _copy_without(vl_checkpoint("tiny"), tmp_path / "fine-tune", "preprocessor_config.json")
    done = _export(model_dir, tmp_path / "bundle")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and "preprocessor_config.json is missing" in lines[0]
    assert "--text-only" in lines[0]
    assert not (tmp_path / "bundle").exists()
