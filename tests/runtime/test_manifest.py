"""Manifest parsing and bundle integrity: every problem is one BundleError."""

from __future__ import annotations

import json
import shutil

import pytest

from qwen35web.runtime.errors import BundleError
from qwen35web.runtime.manifest import load_local_manifest, parse_manifest


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
        parse_manifest(data)
