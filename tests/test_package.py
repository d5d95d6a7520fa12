"""The package as a user gets it: one `qwen35web` command, and a wheel that works outside the checkout.

The wheel is built here (no build isolation: the build needs only setuptools and the npm files, which
`make setup` installed), unpacked into a temporary directory and run from there with the checkout out of
sys.path, so a file that only the checkout has cannot make these tests pass.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from qwen35web.cli import COMMANDS

ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )


def test_help_lists_every_subcommand_and_each_documents_its_flags(tmp_path: Path) -> None:
    top = _run(["-m", "qwen35web", "--help"], tmp_path, {**os.environ, "PYTHONPATH": str(ROOT)})
    assert top.returncode == 0
    for name in COMMANDS:
        assert f"  {name} " in top.stdout
    for argv, flags in [
        (["export"], ["--ops", "--dtype", "--validate", "--revision", "--force", "--logits"]),
        (["generate"], ["--prompt", "--chat", "--max-new-tokens", "--temperature", "--json"]),
        (["site", "build"], ["--bundle", "--wasm-bundle", "--note"]),
        (["site", "serve"], ["--port", "--host"]),
        (["serve"], ["--port", "--host", "--model-name", "--max-tokens"]),
    ]:
        done = _run(["-m", "qwen35web", *argv, "--help"], tmp_path, {**os.environ, "PYTHONPATH": str(ROOT)})
        assert done.returncode == 0, done.stderr
        for flag in flags:
            assert flag in done.stdout, (argv, flag)


def test_unknown_command_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = _run(["-m", "qwen35web", "frobnicate"], tmp_path, {**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: unknown command")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    (found,) = out.glob("qwen35_web-*.whl")
    return found


def test_wheel_installs_one_namespace_with_the_page_and_no_dev_code(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"qwen35web"}
    assert "qwen35web/web/static/index.html" in names
    for page_file in ("page/ui.js", "worker/worker.js", "module/shell.mjs", "qwen35web.d.mts"):
        assert f"qwen35web/web/static/{page_file}" in names, page_file
    for vendored in ("onnxruntime-web/dist/ort.wasm.bundle.min.mjs", "pyodide/pyodide.asm.wasm"):
        assert f"qwen35web/web/_vendor/{vendored}" in names
    assert not any("train_tiny" in n or "random_checkpoint" in n or "chromium" in n for n in names)
    # The JS checks' tools (package.json's devDependencies) and their type files stay in the checkout.
    assert not any(f"_vendor/{tool}/" in n for n in names for tool in ("typescript", "eslint", "globals"))
    assert not any(n.startswith("qwen35web/web/types/") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "qwen35web = qwen35web.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_unpacked_wheel_generates_and_builds_a_site_outside_the_checkout(
    wheel: Path, tmp_path: Path, export_bundle
) -> None:
    installed = tmp_path / "site-packages"
    zipfile.ZipFile(wheel).extractall(installed)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # Only the unpacked wheel: the checkout is neither the working directory nor on PYTHONPATH.
    env = {**os.environ, "PYTHONPATH": str(installed)}
    probe = _run(["-c", "import qwen35web; print(qwen35web.__file__)"], elsewhere, env)
    assert probe.stdout.strip().startswith(str(installed)), probe.stdout
    bundle = export_bundle("text", "fused")
    generated = _run(
        [
            "-m",
            "qwen35web",
            "generate",
            str(bundle),
            "--prompt",
            "hi",
            "--max-new-tokens",
            "3",
            "--greedy",
            "--json",
        ],
        elsewhere,
        env,
    )
    assert generated.returncode == 0, generated.stderr
    assert len(json.loads(generated.stdout)["tokens"]) == 3
    site = elsewhere / "site"
    built = _run(["-m", "qwen35web", "site", "build", str(site), "--bundle", f"m={bundle}"], elsewhere, env)
    assert built.returncode == 0, built.stderr
    assert (site / "vendor" / "pyodide" / "pyodide.asm.wasm").is_file()
    assert (site / "vendor" / "ort" / "ort-wasm-simd-threaded.wasm").is_file()
    assert (site / "py" / "runtime.zip").is_file() and (site / "models" / "m" / "manifest.json").is_file()
