"""bench.fidelity's recipe candidates are quantized from the float bundle instead of re-traced: the
graph they score must be the one a real export of the same recipe writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from bench.fidelity_derive import DERIVED_KEY, base_bundle_name, derive_bundle
from qwen35web.export.ort_runner import GraphRunner
from qwen35web.runtime.manifest import load_local_manifest


def _logits(bundle: Path) -> np.ndarray:
    runner = GraphRunner(bundle / "model.onnx", threads=1)
    ids = np.arange(3, 40, dtype=np.int64)[None]  # [1, T]
    logits, _ = runner.step(ids, 0, runner.zero_states(1))  # [1, T, V]
    return logits


def _initializer_bytes(bundle: Path) -> dict[str, bytes]:
    model = onnx.load(str(bundle / "model.onnx"))
    return {t.name: onnx.numpy_helper.to_array(t).tobytes() for t in model.graph.initializer}


@pytest.mark.parametrize("dtype", ["q4", "q8"])
def test_a_derived_bundle_is_the_export_of_the_same_recipe(export_bundle, tiny_text_dir, tmp_path, dtype):
    assert base_bundle_name(dtype) == "fp32-fused" and base_bundle_name("q4f16") == "fp16-fused"
    exported = export_bundle("text", "fused", dtype)
    derived = derive_bundle(export_bundle("text", "fused"), tmp_path / dtype, tiny_text_dir, dtype, {})
    manifest = json.loads((derived / "manifest.json").read_text())
    expected = json.loads((exported / "manifest.json").read_text())
    assert manifest["dtype"] == dtype and manifest[DERIVED_KEY] == "text-fused-fp32"
    assert manifest["quantization"] == expected["quantization"]
    assert load_local_manifest(derived, verify_hashes=True).dtype == dtype  # a bundle the site accepts
    assert _initializer_bytes(derived) == _initializer_bytes(exported)
    np.testing.assert_array_equal(_logits(derived), _logits(exported))
