"""The bench harness: every bench in bench/registry.py imports and has a `main`; bench/ stands on its own.

No bench runs here (they take minutes to hours): imports and a scan of the source only.
"""

from __future__ import annotations

import ast
import importlib
import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from bench.__main__ import main as bench_main
from bench.registry import BENCHES

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"
OUR_PACKAGES = ("bench", "devtools", "qwen35web")


def _bench_files() -> list[Path]:
    return sorted(BENCH_DIR.rglob("*.py"))


def _imports(path: Path) -> list[ast.Import | ast.ImportFrom]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]


def _is_runnable(path: Path) -> bool:
    return 'if __name__ == "__main__":' in path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(BENCHES))
def test_every_bench_in_the_table_imports_and_has_a_main(name: str) -> None:
    module = importlib.import_module(BENCHES[name].module)
    assert callable(getattr(module, "main", None)), f"{BENCHES[name].module} has no main()"
    assert BENCHES[name].summary.strip()


def test_every_runnable_bench_module_is_in_the_table() -> None:
    runnable = {p.stem for p in _bench_files() if p.parent == BENCH_DIR and _is_runnable(p)}
    runnable.discard("__main__")
    assert runnable == set(BENCHES), "bench/registry.py and the bench modules with a __main__ disagree"


def test_no_bench_module_imports_from_tests() -> None:
    offenders = []
    for path in _bench_files():
        for node in _imports(path):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            if isinstance(node, ast.ImportFrom) and node.level:
                continue
            offenders += [f"{path.name}:{node.lineno} {n}" for n in names if n.split(".")[0] == "tests"]
    assert not offenders, f"bench/ imports from tests/ (move the helper to devtools/): {offenders}"


def test_bench_modules_import_no_private_names_of_each_other() -> None:
    offenders = [
        f"{path.name}:{node.lineno} {alias.name}"
        for path in _bench_files()
        for node in _imports(path)
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in OUR_PACKAGES
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert not offenders, f"private helpers imported across modules (make them public): {offenders}"


def test_every_import_of_our_code_in_bench_resolves() -> None:
    """Lazy imports inside functions too: a moved or renamed helper fails here, not an hour into a run."""
    missing = []
    for path in _bench_files():
        for node in _imports(path):
            if not isinstance(node, ast.ImportFrom) or node.level:
                continue
            if (node.module or "").split(".")[0] not in OUR_PACKAGES:
                continue
            module = importlib.import_module(node.module or "")
            missing += [
                f"{path.name}:{node.lineno} {node.module}.{alias.name}"
                for alias in node.names
                if not hasattr(module, alias.name) and not _is_submodule(f"{node.module}.{alias.name}")
            ]
    assert not missing, f"bench/ imports names that do not exist: {missing}"


def _is_submodule(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def test_python_m_bench_lists_every_bench() -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        assert bench_main(["--list"]) == 0
    listed = {line.split()[0] for line in out.getvalue().splitlines()[1:]}
    assert listed == set(BENCHES)


def test_python_m_bench_refuses_an_unknown_name_with_exit_2() -> None:
    err = io.StringIO()
    with redirect_stderr(err):
        assert bench_main(["no-such-bench"]) == 2
    assert err.getvalue().count("\n") == 1 and "no-such-bench" in err.getvalue()
