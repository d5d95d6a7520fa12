"""Session-wide fixtures: seeded tiny checkpoints (both layouts) and their exported bundles."""

from __future__ import annotations

import os

# Before torch is imported (OpenMP reads it once): OpenMP's default spin-waiting makes torch's batched
# LAPACK calls (the reference delta rule) many times slower while Chromium or a server shares the cores.
# Waiting passively changes no result.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.chromium import CHROMIUM, CHROMIUM_FLAGS
from devtools.published_replica import write_replica
from tests.checkpoints import TINY_TEXT_CONFIG, random_model, write_text_checkpoint, write_vl_checkpoint
from tests.old_bundles import copy_as_format_1

logging.getLogger("qwen35web.export").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def tiny_text_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Sharded, so the index path is exercised too.
    return write_text_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-text", shard_size="100KB")


@pytest.fixture(scope="session")
def tiny_vl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_vl_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-vl")


@pytest.fixture(scope="session")
def tiny_reference():
    """transformers' model with the same seeded weights as both tiny checkpoints."""
    return random_model(TINY_TEXT_CONFIG, seed=0)


_BUNDLES: dict[tuple[str, str, str, str], Path] = {}


@pytest.fixture(scope="session")
def export_bundle(tmp_path_factory: pytest.TempPathFactory, tiny_text_dir: Path, tiny_vl_dir: Path):
    """Export (layout, ops, dtype, logits) once per session and hand back the bundle directory."""
    from qwen35web.export.pipeline import ExportOptions, run_export

    def get(layout: str, ops: str, dtype: str = "fp32", logits: str = "all") -> Path:
        key = (layout, ops, dtype, logits)
        if key not in _BUNDLES:
            source = tiny_text_dir if layout == "text" else tiny_vl_dir
            suffix = "" if logits == "all" else f"-{logits}"
            out = tmp_path_factory.mktemp("bundle") / f"{layout}-{ops}-{dtype}{suffix}"
            run_export(ExportOptions(source, out, ops=ops, dtype=dtype, logits=logits))
            _BUNDLES[key] = out
        return _BUNDLES[key]

    return get


@pytest.fixture()
def format_1_bundle(export_bundle, tmp_path: Path) -> Path:
    """A copy of the tiny fused bundle whose manifest is format 1 (before MRoPE position rows)."""
    return copy_as_format_1(export_bundle("text", "fused"), tmp_path / "format-1")


_REPLICAS: dict[str, Path] = {}
_REPLICA_EXPORTS: dict[tuple[str, str], Path] = {}


@pytest.fixture(scope="session")
def published_replica(tmp_path_factory: pytest.TempPathFactory):
    """Replicas of the published Qwen3.5 repositories (devtools.published_replica), each built once per
    session: "0.8b" with a model that ends its turns within a few tokens, "4b" as drawn."""

    def get(layout: str) -> Path:
        if layout not in _REPLICAS:
            out = tmp_path_factory.mktemp("replica") / f"qwen3.5-{layout}"
            _REPLICAS[layout] = write_replica(out, layout, ends_turns=layout == "0.8b")
        return _REPLICAS[layout]

    return get


@pytest.fixture(scope="session")
def replica_export(tmp_path_factory: pytest.TempPathFactory, published_replica):
    """A replica exported once per session: a bundle (with its vision tower) or transformers.js's layout."""
    from qwen35web.export.pipeline import ExportOptions, run_export

    def get(layout: str, target: str = "bundle") -> Path:
        key = (layout, target)
        if key not in _REPLICA_EXPORTS:
            out = tmp_path_factory.mktemp("replica-export") / f"{layout}-{target}"
            run_export(ExportOptions(published_replica(layout), out, layout=target))
            _REPLICA_EXPORTS[key] = out
        return _REPLICA_EXPORTS[key]

    return get


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the whole session (Playwright's sync API allows one driver per
    process: every test that drives a page, the page's own or a bare WebGPU one, shares it)."""
    if not (os.path.isfile(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.fail(
            f"browser tests need Chromium at {CHROMIUM}: `apt-get install -y chromium` (or `make setup`)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield chromium
        chromium.close()
