"""Errors with a message meant for the user (the CLI prints one line; the page shows it)."""

from __future__ import annotations


class RuntimeUserError(Exception):
    """Bad input or an unusable bundle; `exit_code` is what the CLI returns."""

    exit_code = 2


class BundleError(RuntimeUserError):
    """The bundle is missing, malformed, of an unknown format, or fails its integrity checks."""


class GenerationInputError(RuntimeUserError):
    """A prompt or a sampling setting the runtime cannot honour."""
