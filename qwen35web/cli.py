"""`qwen35web COMMAND ...`: one program for every task (`python -m qwen35web` is the same program).

Each subcommand lives with its concern and is imported only when it runs, so `generate` and `site`
work on the base install (no torch) and `export` names the extra it needs when it is missing.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

from qwen35web import __version__
from qwen35web.cli_support import fail

PROG = "qwen35web"

# name -> (module with `main(argv, prog)`, one-line summary, extra it needs or None)
COMMANDS: dict[str, tuple[str, str, str | None]] = {
    "export": ("qwen35web.export.cli", "export a Hugging Face checkpoint to an ONNX bundle", "export"),
    "generate": (
        "qwen35web.runtime.native.generate_cli",
        "generate a continuation of one prompt with a bundle",
        None,
    ),
    "chat": (
        "qwen35web.runtime.native.chat_cli",
        "hold a conversation with a bundle (interactive or scripted)",
        None,
    ),
    "serve": (
        "qwen35web.serve.cli",
        "serve a bundle with an OpenAI-compatible HTTP API (/v1/chat/completions)",
        None,
    ),
    "site": (
        "qwen35web.web.cli",
        "build the static page with bundles (`site build`) or serve it (`site serve`)",
        None,
    ),
}


def _usage() -> str:
    lines = [
        f"usage: {PROG} COMMAND [ARGS ...]   ({PROG} COMMAND --help for its flags)",
        "",
        "Run Qwen3.5 in the browser: export checkpoints, generate, chat, build and serve the page.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<10}{summary}" for name, (_, summary, _) in COMMANDS.items()]
    lines += ["", "options:", "  -h, --help  show this message", "  --version   print the version"]
    return "\n".join(lines) + "\n"


def _load(name: str) -> Callable[..., int]:
    module_name, _, extra = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        # A missing third-party module means the extra is not installed; a missing module of ours is a bug.
        if extra and err.name and err.name.split(".")[0] != "qwen35web":
            fail(
                f"`{PROG} {name}` needs the {extra!r} extra ({err.name} is not installed): "
                f"pip install 'qwen35-web[{extra}]'"
            )
        raise
    return module.main


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(_usage())
        return 0 if args else 2
    if args[0] == "--version":
        print(f"{PROG} {__version__}")
        return 0
    if args[0] not in COMMANDS:
        fail(f"unknown command {args[0]!r}; choose from {', '.join(COMMANDS)} (see `{PROG} --help`)")
    return _load(args[0])(args[1:], prog=f"{PROG} {args[0]}")
