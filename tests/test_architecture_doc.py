"""docs/architecture.md names the home of every module: a newcomer finds any file from it."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "qwen35web"
DOC = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")


def _modules() -> list[Path]:
    skipped = ("__init__.py", "__main__.py")
    return sorted(
        p for p in PACKAGE.rglob("*.py") if p.name not in skipped and not p.name.startswith("_generate")
    )


def _named(module: Path) -> bool:
    """Its path under qwen35web/ appears, or its file name in backticks on a line naming its folder."""
    relative = module.relative_to(PACKAGE).as_posix()
    if relative in DOC:
        return True
    folder = module.parent.relative_to(PACKAGE).as_posix() + "/"
    return any(f"`{module.name}`" in line and folder in line for line in DOC.splitlines())


@pytest.mark.parametrize("module", _modules(), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_every_module_is_named_in_the_architecture(module: Path) -> None:
    assert _named(module), f"docs/architecture.md does not name {module.relative_to(PACKAGE)}"
