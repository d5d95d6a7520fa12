"""Bad input: one clear line on stderr, exit 2, no traceback, nothing written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qwen35web.export.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _run_in_process(capsys, args: list[str]) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err
    return code, err


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_config(model_dir: Path, edit) -> None:
    path = model_dir / "config.json"
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))


def _case_missing_dir(tmp: Path, good: Path) -> Path:
    return tmp / "does-not-exist"


def _case_empty_dir(tmp: Path, good: Path) -> Path:
    (tmp / "empty").mkdir()
    return tmp / "empty"


def _case_unsupported_type(tmp: Path, good: Path) -> Path:
    model = _copy(good, tmp / "llama")
    _edit_config(model, lambda c: c.update(model_type="llama"))
    return model


def _case_missing_field(tmp: Path, good: Path) -> Path:
    model = _copy(good, tmp / "nofield")
    _edit_config(model, lambda c: c.pop("hidden_size"))
    return model


def _case_inconsistent_config(tmp: Path, good: Path) -> Path:
    model = _copy(good, tmp / "inconsistent")
    _edit_config(model, lambda c: c.update(intermediate_size=96))
    return model


def _case_bad_json(tmp: Path, good: Path) -> Path:
    model = _copy(good, tmp / "badjson")
    (model / "config.json").write_text("{not json")
    return model


def _case_missing_shard(tmp: Path, good: Path) -> Path:
    model = _copy(good, tmp / "noshard")
    sorted(model.glob("model-*.safetensors"))[-1].unlink()
    return model


def _case_truncated_weights(tmp: Path, good: Path) -> Path:
    model = _copy(good, tmp / "truncated")
    shard = sorted(model.glob("model-*.safetensors"))[0]
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) - 100])
    return model


def _case_corrupt_header(tmp: Path, good: Path) -> Path:
    model = _copy(good, tmp / "corrupt")
    shard = sorted(model.glob("model-*.safetensors"))[0]
    data = bytearray(shard.read_bytes())
    data[8:16] = b"\xff" * 8
    shard.write_bytes(bytes(data))
    return model


def _case_no_tokenizer(tmp: Path, good: Path) -> Path:
    model = _copy(good, tmp / "notok")
    (model / "tokenizer.json").unlink()
    return model


CASES = {
    "nonexistent-dir": (_case_missing_dir, "does not exist"),
    "empty-dir": (_case_empty_dir, "config.json"),
    "unsupported-model-type": (_case_unsupported_type, "unsupported model_type 'llama'"),
    "missing-config-field": (_case_missing_field, "'hidden_size' is missing"),
    "config-inconsistent-with-weights": (_case_inconsistent_config, "do not match config.json"),
    "config-not-json": (_case_bad_json, "not valid JSON"),
    "missing-weight-shard": (_case_missing_shard, "missing"),
    "truncated-weights": (_case_truncated_weights, "truncated"),
    "corrupt-header": (_case_corrupt_header, "safetensors"),
    "no-tokenizer": (_case_no_tokenizer, "tokenizer.json"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_model_dir(case, tiny_text_dir, tmp_path, capsys):
    make, expected = CASES[case]
    model_dir = make(tmp_path, tiny_text_dir)
    out = tmp_path / "out"
    code, err = _run_in_process(capsys, [str(model_dir), str(out)])
    assert code == 2, err
    assert len(_error_lines(err)) == 1 and expected in err, err
    assert "Traceback" not in err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_existing_output_is_kept_without_force(tiny_text_dir, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, err = _run_in_process(capsys, [str(tiny_text_dir), str(out)])
    assert code == 2 and "--force" in err
    assert (out / "keep.txt").read_text() == "mine"


def test_unwritable_output_parent(tiny_text_dir, tmp_path, capsys):
    if os.geteuid() == 0:
        target = Path("/proc/out")  # root ignores mode bits; /proc refuses new entries anyway
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "out"
    code, err = _run_in_process(capsys, [str(tiny_text_dir), str(target)])
    assert code == 2 and len(_error_lines(err)) == 1, err


def test_cli_subprocess_bad_option_and_bad_dir(tmp_path):
    """The real entry point: argparse errors and bad input are one line each, exit 2."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for args in (["--ops", "magic", "a", "b"], [str(tmp_path / "missing"), str(tmp_path / "out")]):
        proc = subprocess.run(
            [sys.executable, "-m", "qwen35web", "export", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=120,
        )
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        assert len(_error_lines(proc.stderr)) == 1, proc.stderr
