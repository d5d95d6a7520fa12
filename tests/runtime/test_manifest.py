"""Manifest parsing and bundle integrity: every problem is one BundleError."""

from __future__ import annotations

import json
import shutil

import pytest

from qwen35web.runtime.bundle_format import Manifest
from qwen35web.runtime.errors import BundleError
from qwen35web.runtime.manifest import load_local_manifest
from tests.old_bundles import FORMAT_1_MESSAGE


@pytest.fixture()
def bundle_copy(export_bundle, tmp_path):
    dst = tmp_path / "bundle"
    shutil.copytree(export_bundle("text", "fused"), dst)
    return dst


def _edit_manifest(bundle, edit):
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_exported_bundle_loads(bundle_copy):
    manifest = load_local_manifest(bundle_copy)
    assert manifest.ops == "fused" and "model.onnx" in manifest.files and "sampler.onnx" in manifest.files


@pytest.mark.parametrize(
    ("name", "damage", "message"),
    [
        (
            "unknown-version",
            lambda b: _edit_manifest(b, lambda d: d.update(format_version=99)),
            "format_version",
        ),
        ("missing-file", lambda b: (b / "tokenizer.json").unlink(), "missing"),
        (
            "truncated-data",
            lambda b: (b / "model.onnx.data").write_bytes((b / "model.onnx.data").read_bytes()[:-10]),
            "truncated",
        ),
        (
            "corrupt-data",
            lambda b: (b / "model.onnx.data").write_bytes(b"\0" * len((b / "model.onnx.data").read_bytes())),
            "sha256",
        ),
        (
            "escaping-path",
            lambda b: _edit_manifest(
                b, lambda d: d["files"].update({"../outside": {"size": 1, "sha256": "0" * 64}})
            ),
            "inside the bundle",
        ),
        (
            "absolute-path",
            lambda b: _edit_manifest(
                b, lambda d: d["files"].update({"/etc/passwd": {"size": 1, "sha256": "0" * 64}})
            ),
            "inside the bundle",
        ),
        ("not-json", lambda b: (b / "manifest.json").write_text("{"), "not valid JSON"),
        ("no-manifest", lambda b: (b / "manifest.json").unlink(), "not a bundle"),
    ],
)
def test_damaged_bundle_is_one_clear_error(bundle_copy, name, damage, message):
    damage(bundle_copy)
    with pytest.raises(BundleError, match=message):
        load_local_manifest(bundle_copy)


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        "x",
        {"format_version": "1"},
        {"format_version": 1},
        {"format_version": 1, "files": []},
        {"format_version": True},
    ],
)
def test_malformed_manifests(data):
    with pytest.raises(BundleError):
        Manifest.from_json(data)


def test_a_format_1_manifest_is_refused_in_one_line(format_1_bundle):
    with pytest.raises(BundleError) as refused:
        load_local_manifest(format_1_bundle)
    assert str(refused.value) == FORMAT_1_MESSAGE


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["io"]["inputs"][2].update(shape=["batch_size", "sequence_length"]),
        lambda d: d["io"]["inputs"][3].update(dtype="float16"),
        lambda d: d.update(activation_dtype="float16"),
        lambda d: d.update(logits="last"),
        lambda d: d["model"].update(conv_kernel=3),
    ],
    ids=["rank-2-positions", "state-dtype", "activation-dtype", "logits", "model-facts"],
)
def test_io_that_is_not_the_contract_of_the_model_is_refused(export_bundle, edit):
    data = json.loads((export_bundle("text", "fused") / "manifest.json").read_text())
    edit(data)
    with pytest.raises(BundleError, match="'io' is not the graph contract"):
        Manifest.from_json(data)
