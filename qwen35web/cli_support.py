"""What every subcommand's command line shares: bad usage is one `error:` line and exit 2."""

from __future__ import annotations

import argparse
import sys

BAD_INPUT = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (no usage dump) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        fail(message)


def fail(message: str, code: int = BAD_INPUT) -> None:
    """Print `error: message` on stderr and exit with `code`."""
    sys.stderr.write(f"error: {message}\n")
    raise SystemExit(code)
