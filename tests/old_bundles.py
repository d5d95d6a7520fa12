"""Bundles of an older format, made from a current one: what a user upgrading still has on disk."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

# What `qwen35web` prints for a bundle of format 1 (the runtime CLI, `site build` and the page).
FORMAT_1_MESSAGE = (
    "manifest.json: the bundle has format_version 1; this qwen35web reads format 2: "
    "re-export the model with `qwen35web export`"
)


def _rename_batch(shape: list[Any]) -> list[Any]:
    return ["batch" if d == "batch_size" else d for d in shape]


def format_1_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest as format 1 wrote it: position_ids [batch, sequence_length], dims named batch."""
    old = copy.deepcopy(manifest)
    old["format_version"] = 1
    for key in ("activation_dtype",):
        old.pop(key, None)
    for entry in old["io"]["inputs"] + old["io"]["outputs"]:
        entry["shape"] = _rename_batch(entry["shape"])
        if entry["name"] == "position_ids":
            entry["shape"] = entry["shape"][1:]
    return old


def copy_as_format_1(bundle: Path, out: Path) -> Path:
    shutil.copytree(bundle, out)
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps(format_1_manifest(manifest), indent=2))
    return out


def copy_with_old_sampler(bundle: Path, out: Path) -> Path:
    """A copy of `bundle` whose sampler graph and manifest are those of a bundle exported before the
    sampler took additive biases (presence/frequency penalties)."""
    import hashlib

    import onnx

    shutil.copytree(bundle, out)
    from tests.old_sampler import old_sampler_model

    onnx.save(old_sampler_model(), str(out / "sampler.onnx"))
    data = (out / "sampler.onnx").read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    sampler = manifest["sampler"]
    sampler["inputs"] = [i for i in sampler["inputs"] if i["name"] not in ("bias_ids", "bias")]
    manifest["files"][sampler["file"]] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return out
