"""A recipe candidate's bundle made from the float bundle of its trace dtype, without tracing again.

`make fidelity` scores two dozen recipe candidates; tracing the decoder for each is most of its time
(about a minute each on these 2 shared cores). A q4/q4f16 export is the fp32/fp16 fused export with
one pass more, the format's `quantize` (export_passes: ops, fusions, quantize, split; the split
changes nothing at the tiny model's size). So a candidate is that float bundle's graph with the
format's own `quantize` run on it, beside a copy of the bundle's other files and a manifest that
records the format and recipe as an export would. The plain `--dtype q4` / `q4f16` / `q8` rows of
the table are real exports, and tests/bench/test_fidelity_derive.py checks that a derived bundle's graph
computes what a real export of the same recipe computes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx_ir as ir

from qwen35web.export import formats
from qwen35web.export.bundle import file_table
from qwen35web.export.config import read_config_json, spec_from_config

MODEL_FILE = "model.onnx"
DATA_FILE = "model.onnx.data"
DERIVED_KEY = "derived_from"  # the manifest entry that says which float bundle a derived one came from


def base_bundle_name(dtype: str) -> str:
    """The float bundle of the format's trace dtype: fp32-fused for q4 and q8, fp16-fused for q4f16."""
    return "fp16-fused" if formats.FORMATS[dtype].trace_dtype.itemsize == 2 else "fp32-fused"


def derive_bundle(base: Path, out: Path, checkpoint: Path, dtype: str, knobs: dict) -> Path:
    """Writes `out` (replacing it) from the float bundle `base`: its graph quantized by `dtype`'s
    recipe with the given knobs (the others the size's defaults, as an export takes them)."""
    choice = formats.choose(dtype, spec_from_config(read_config_json(checkpoint)), **knobs)
    assert choice.format.quantize is not None, f"{dtype} is not a quantized format"
    model = ir.load(base / MODEL_FILE)
    choice.format.quantize(model, choice.recipe)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(base, partial, ignore=shutil.ignore_patterns("model.onnx*", "*.npz"))
    ir.save(model, partial / MODEL_FILE, external_data=DATA_FILE)
    manifest = json.loads((base / "manifest.json").read_text())
    manifest.update(dtype=dtype, external_data=[DATA_FILE], **formats.manifest_fields(choice))
    manifest[DERIVED_KEY] = base.name
    manifest["files"] = {name: entry.to_json() for name, entry in file_table(partial).items()}
    (partial / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    return out
