"""The page's error codes ride on the runtime's error classes (no table keyed by class name)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from qwen35web.runtime.browser import session
from qwen35web.runtime.context_fit import ContextFullError
from qwen35web.runtime.conversation_file import SavedConversationError
from qwen35web.runtime.errors import (
    PAGE_ERROR_CODES,
    BundleError,
    GenerationInputError,
    RuntimeUserError,
    error_code,
)
from qwen35web.runtime.vision.errors import ImageInputError

ERRORS_MJS = Path(__file__).resolve().parents[2] / "qwen35web" / "web" / "static" / "errors.mjs"


def _all_subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _all_subclasses(sub)
    return found


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (BundleError, "bad-bundle"),
        (GenerationInputError, "bad-input"),
        (ImageInputError, "bad-input"),
        (SavedConversationError, "bad-input"),
        (ContextFullError, "context-full"),
        (RuntimeUserError, "runtime"),
    ],
)
def test_each_error_class_carries_its_page_code(error: type[RuntimeUserError], code: str) -> None:
    assert error_code(error("x")) == code


def test_a_new_subclass_inherits_its_parents_code() -> None:
    class TooManyStops(GenerationInputError):
        pass

    class FullAgain(ContextFullError):
        pass

    assert error_code(TooManyStops("x")) == "bad-input"
    assert error_code(FullAgain("x")) == "context-full"


def test_errors_not_meant_for_the_user_are_runtime_errors() -> None:
    assert error_code(ValueError("x")) == "runtime"
    assert error_code(KeyError("x")) == "runtime"


def test_every_code_is_one_the_page_module_knows() -> None:
    """errors.mjs's CLASSES table (plus "runtime", its fallback) holds exactly PAGE_ERROR_CODES."""
    text = ERRORS_MJS.read_text(encoding="utf-8")
    table = re.search(r"const CLASSES = \{(.*?)\};", text, re.S)
    assert table is not None
    page_codes = set(re.findall(r'^\s*"?([a-z-]+)"?:', table.group(1), re.M)) | {"runtime"}
    assert page_codes == PAGE_ERROR_CODES
    for cls in _all_subclasses(RuntimeUserError) | {RuntimeUserError}:
        assert cls.code in PAGE_ERROR_CODES, cls


def test_the_page_gets_the_code_in_the_error_json() -> None:
    answer = json.loads(session.download_plan("{not json"))
    assert answer["code"] == "bad-bundle" and answer["error"]
