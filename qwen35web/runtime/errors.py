"""Errors with a message meant for the user (the CLI prints one line; the page shows it).

Each class carries `code`, the page's error code (web/static/errors.mjs turns it into that module's
error class): a subclass inherits its parent's code unless it names its own, so a new kind of bad
input is a bad-input error on the page without any table to update.
"""

from __future__ import annotations

# The codes web/static/errors.mjs knows (tests/runtime/test_error_codes.py keeps the two in step).
PAGE_ERROR_CODES = frozenset(
    {"runtime", "bad-bundle", "bad-input", "context-full", "not-supported", "storage", "network", "aborted"}
)


class RuntimeUserError(Exception):
    """Bad input or an unusable bundle; `exit_code` is what the CLI returns, `code` what the page gets."""

    exit_code = 2
    code = "runtime"


class BundleError(RuntimeUserError):
    """The bundle is missing, malformed, of an unknown format, or fails its integrity checks."""

    code = "bad-bundle"


class GenerationInputError(RuntimeUserError):
    """A prompt or a sampling setting the runtime cannot honour."""

    code = "bad-input"


def error_code(err: BaseException) -> str:
    """The page's error code for `err`: its class's `code`, "runtime" for anything not meant for the user."""
    return err.code if isinstance(err, RuntimeUserError) else "runtime"
