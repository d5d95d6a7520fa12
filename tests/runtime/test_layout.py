"""Where the runtime's code runs shows in its layout, and the imports keep to it.

- the portable core (qwen35web/runtime/ minus native/ and browser/) imports neither CPython-only packages nor
  Pyodide's FFI, nor the other two parts, nor the exporter or the site builder;
- native/ never reaches the browser part or Pyodide; browser/ never reaches native/ or CPython-only packages.

Checked twice: statically over every import statement (lazy ones inside functions included), and by importing
every core and browser module in a fresh interpreter where numpy, onnxruntime and Pillow cannot be imported.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

RUNTIME = Path(__file__).resolve().parents[2] / "qwen35web" / "runtime"
NATIVE_PACKAGES = {"numpy", "onnxruntime", "PIL"}
BROWSER_PACKAGES = {"js", "pyodide"}
FORBIDDEN = {
    "core": NATIVE_PACKAGES
    | BROWSER_PACKAGES
    | {"qwen35web.runtime.native", "qwen35web.runtime.browser", "qwen35web.export", "qwen35web.web"},
    "native": BROWSER_PACKAGES | {"qwen35web.runtime.browser", "qwen35web.web"},
    "browser": NATIVE_PACKAGES | {"qwen35web.runtime.native", "qwen35web.export", "qwen35web.web"},
}


def _part(path: Path) -> str:
    first = path.relative_to(RUNTIME).parts[0]
    return first if first in ("native", "browser") else "core"


def _modules() -> list[Path]:
    return sorted(p for p in RUNTIME.rglob("*.py") if not p.name.startswith("_generate"))


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _breaks(name: str, forbidden: set[str]) -> bool:
    return any(name == f or name.startswith(f + ".") for f in forbidden)


def test_every_part_has_modules() -> None:
    parts = {_part(p) for p in _modules()}
    assert parts == {"core", "native", "browser"}


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(RUNTIME)))
def test_imports_stay_in_their_part(path: Path) -> None:
    part = _part(path)
    wrong = sorted(name for name in _imports(path) if _breaks(name, FORBIDDEN[part]))
    assert not wrong, f"{path.relative_to(RUNTIME)} ({part}) imports {wrong}"


def test_core_and_browser_import_without_cpython_only_packages() -> None:
    """What ships to Pyodide imports in an interpreter that has no numpy, onnxruntime or Pillow."""
    names = [
        ".".join(("qwen35web", "runtime", *p.relative_to(RUNTIME).with_suffix("").parts)).removesuffix(
            ".__init__"
        )
        for p in _modules()
        if _part(p) != "native"
    ]
    script = (
        "import sys, importlib, types\n"
        f"for blocked in {sorted(NATIVE_PACKAGES)!r}:\n"
        "    sys.modules[blocked] = None\n"
        # Pyodide's FFI modules exist only in Pyodide: stand-ins, so the browser part's imports resolve.
        "class FFI(types.ModuleType):\n"
        "    def __getattr__(self, name): return object()\n"
        "for fake in ('js', 'pyodide', 'pyodide.ffi'):\n"
        "    sys.modules[fake] = FFI(fake)\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "print('imported', len(sys.argv) and 'ok')\n"
    )
    root = str(RUNTIME.parents[1])
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert "imported ok" in proc.stdout
