"""Property tests: whatever JSON a manifest holds, parsing ends in a Manifest or one BundleError."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qwen35web.runtime.bundle_format import Manifest, check_relative_path
from qwen35web.runtime.errors import BundleError
from qwen35web.runtime.manifest import parse_manifest_text

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)

# Near-valid manifests: the real keys with arbitrary values, so parsing gets past the first checks.
near_valid = st.fixed_dictionaries(
    {"format_version": st.sampled_from([1, 1, 2, "1", None])},
    optional={
        "files": json_values | st.dictionaries(st.text(max_size=20), json_values, max_size=3),
        "io": json_values,
        "model": json_values,
        "ops": st.sampled_from(["fused", "portable", "x"]),
        "activation_dtype": st.sampled_from(["float32", "float16", "x"]),
        "logits": st.sampled_from(["all", "last", None]),
        "sampler": json_values,
        "dtype": json_values,
        "eos_token_ids": json_values,
        "pad_token_id": json_values,
        "chat_template": json_values,
        "thinking_default": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(json_values | near_valid)
def test_arbitrary_json_gives_a_manifest_or_bundle_error(data):
    try:
        Manifest.from_json(data)
    except BundleError as err:
        assert str(err).startswith("manifest.json")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_arbitrary_bytes_give_a_manifest_or_bundle_error(raw):
    with contextlib.suppress(BundleError):
        parse_manifest_text(raw)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_accepted_paths_never_escape(path):
    try:
        accepted = check_relative_path(path)
    except BundleError:
        return
    parts = accepted.split("/")
    assert not accepted.startswith("/") and ".." not in parts and "" not in parts and "\\" not in accepted


def test_deeply_nested_json_is_a_bundle_error():
    with pytest.raises(BundleError):
        parse_manifest_text("[" * 100_000 + "]" * 100_000)
