"""Errors the command line turns into one clear line and an exit status."""

from __future__ import annotations


class ExportError(Exception):
    """A failure the user can act on; `exit_code` is what the CLI returns."""

    exit_code = 1


class BadInputError(ExportError):
    """The model directory or the options are unusable (exit 2, nothing written)."""

    exit_code = 2


class ValidationFailedError(ExportError):
    """The exported graph disagrees with PyTorch beyond tolerance (exit 3)."""

    exit_code = 3
