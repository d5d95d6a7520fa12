"""`--vision-dtype auto`: the vision graph's format follows the decoder's backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwen35web.export.pipeline import ExportOptions, vision_format


@pytest.mark.parametrize(
    "dtype, vision",
    [("fp32", "fp32"), ("fp16", "fp16"), ("q4f16", "fp16"), ("q8", "q8"), ("q4", "q8")],
)
def test_auto_follows_the_decoder_format(dtype: str, vision: str) -> None:
    assert vision_format(ExportOptions(Path("m"), Path("o"), dtype=dtype)) == vision


def test_an_explicit_format_wins() -> None:
    assert vision_format(ExportOptions(Path("m"), Path("o"), dtype="q4", vision_dtype="fp32")) == "fp32"
