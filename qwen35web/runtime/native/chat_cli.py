"""`qwen35web chat BUNDLE [--system TEXT] [sampling flags] [--thinking | --no-thinking] [--json] [--save FILE]
[--resume FILE] [--tools FILE.json [--tool-choice auto|none|required|NAME]]`: hold a conversation.

With --tools the model may call the tools the file lists (OpenAI function schemas): each call is
shown (name and arguments; a malformed one with what is wrong) and the person types its result —
on a terminal at a `result of NAME>` prompt, scripted as the next stdin line(s), one per call —
then the model goes on until it answers without a call. --tool-choice applies to the turn a user
message starts (the turns after tool results are "auto").

On a terminal it is interactive: replies stream as they come (reasoning dimmed above the answer),
Ctrl+C stops a reply and keeps the program, and /save [FILE], /reset, /quit are commands. Otherwise
(stdin is a file or a pipe) every line of stdin is one user message; with --json each turn prints
one JSON object on its own line. Each turn prefills only what the conversation added since the last
one (the runtime's prefix cache).

A conversation that outgrows the context is refused with what to do (/reset; scripted: the program
ends with that error, --save still writes what was said); with --drop-oldest, or /drop to resend
the refused message, its oldest turns are left out instead and a line says so (`dropped_turns` in
--json): the model then re-reads the rest in a fresh prefill.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TextIO, TypeVar

from qwen35web.cli_support import OneLineParser
from qwen35web.runtime.context_fit import ContextFullError
from qwen35web.runtime.conversation import Conversation
from qwen35web.runtime.errors import GenerationInputError, RuntimeUserError
from qwen35web.runtime.generation import CancelToken
from qwen35web.runtime.loaded_model import Runtime
from qwen35web.runtime.native.generate_cli import (
    add_image_limit_arguments,
    add_kept_states_argument,
    add_sampling_arguments,
    add_thinking_arguments,
    sampling_params,
)
from qwen35web.runtime.sampling import SamplingParams
from qwen35web.runtime.tool_calls import ToolCall
from qwen35web.runtime.tools import check_tools
from qwen35web.runtime.turn import TurnResult

T = TypeVar("T")
HELP = (
    "commands: /image PATH (attach to the next message)  /save [FILE]  /reset (new chat)  /drop (resend a"
    " refused message without the oldest turns)  /quit   (Ctrl+C stops a reply, Ctrl+D quits)"
)
JSON_LINE_SHAPE = '{"content": TEXT, "images": [PATH, ...]}'


def parse_line(line: str) -> tuple[str, list[str]]:
    """A scripted stdin line: plain text, or a JSON object with the text and image files."""
    if not line.lstrip().startswith("{"):
        return line, []
    try:
        message = json.loads(line)
    except ValueError:
        return line, []  # text that happens to start with a brace
    images = message.get("images", []) if isinstance(message, dict) else None
    if not (isinstance(message, dict) and isinstance(message.get("content"), str)) or not (
        isinstance(images, list) and all(isinstance(p, str) for p in images)
    ):
        raise GenerationInputError(f"a JSON message line must be {JSON_LINE_SHAPE}")
    return message["content"], images


def build_parser(prog: str = "qwen35web chat") -> argparse.ArgumentParser:
    chat = OneLineParser(prog=prog, description="Hold a conversation with an exported Qwen3.5 bundle.")
    chat.add_argument("bundle", type=Path, help="a bundle directory written by `qwen35web export`")
    chat.add_argument("--system", default=None, help="system message of a new conversation")
    add_sampling_arguments(chat, max_new_tokens=512)
    add_thinking_arguments(chat)
    add_image_limit_arguments(chat)
    chat.add_argument("--json", action="store_true", help="one JSON object per turn instead of text")
    chat.add_argument("--save", type=Path, default=None, help="write the conversation here at the end")
    chat.add_argument("--resume", type=Path, default=None, help="continue a conversation saved with --save")
    add_kept_states_argument(chat)
    chat.add_argument(
        "--drop-oldest",
        action="store_true",
        help="when the context is full, drop the oldest turns (said on each turn) instead of stopping",
    )
    chat.add_argument(
        "--max-context", type=int, default=None, help="tokens a conversation may hold (default: the bundle's)"
    )
    chat.add_argument("--tools", type=Path, default=None, help="a JSON file: a list of OpenAI function tools")
    chat.add_argument(
        "--tool-choice",
        default="auto",
        help="auto (default), none, required, or a tool's name (that call is forced)",
    )
    return chat


def load_tools(path: Path | None) -> list[dict[str, Any]]:
    if path is None:
        return []
    try:
        tools = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise GenerationInputError(f"--tools {path}: not a readable JSON file ({err})") from None
    try:
        return check_tools(tools)
    except GenerationInputError as err:
        raise GenerationInputError(f"--tools {path}: {err}") from None


def tool_choice_arg(value: str) -> Any:
    return (
        value if value in ("auto", "none", "required") else {"type": "function", "function": {"name": value}}
    )


class _Style:
    """ANSI styling on a terminal, plain text elsewhere."""

    def __init__(self, stream: TextIO):
        self.on = stream.isatty()

    def dim(self, text: str) -> str:
        return f"\x1b[2m{text}\x1b[0m" if self.on and text else text

    def bold(self, text: str) -> str:
        return f"\x1b[1m{text}\x1b[0m" if self.on and text else text


class ChatSession:
    def __init__(self, args: argparse.Namespace, runtime: Runtime, loop: asyncio.AbstractEventLoop):
        self.args = args
        self.runtime = runtime
        self.loop = loop
        self.params: SamplingParams = sampling_params(args, runtime.manifest.generation)
        self.out = sys.stdout
        self.style = _Style(self.out)
        self.tools = load_tools(args.tools)
        self.conversation = Conversation(
            runtime, args.system, enable_thinking=args.enable_thinking, tools=self.tools
        )
        self.attached: list[str] = []  # image ids for the next message (interactive /image)
        # The last message a full context refused, with its images (for /drop).
        self.refused: tuple[str, list[str]] | None = None

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def resume(self, path: Path) -> None:
        from qwen35web.runtime.saved_conversation import load_file

        self.conversation.messages = load_file(self.runtime, path)

    def save(self, path: Path) -> int:
        from qwen35web.runtime.saved_conversation import save_file

        return self.run(save_file(self.runtime, self.conversation.messages, path, self.tools))

    def attach(self, path: str) -> str:
        """Add an image file to the runtime (checked now); returns its id."""
        return self.runtime.add_image(Path(path))

    async def _stream(
        self, text: str | None, cancel: CancelToken, show: bool, image_ids: list[str], drop: bool
    ) -> TurnResult:
        """A turn for `text`, or (None) the model going on after tool results."""
        kind = None
        if text is None:
            pieces = self.conversation.reply(self.params, cancel, drop_oldest=drop)
        else:
            choice = tool_choice_arg(self.args.tool_choice) if self.tools else None
            pieces = self.conversation.turn(
                text, self.params, cancel, image_ids, drop_oldest=drop, tool_choice=choice
            )
        async for piece in pieces:
            if not show or piece.kind == "tool_call":
                continue
            if piece.kind != kind and kind == "reasoning":
                self.write("\n")  # the answer starts below the reasoning
            kind = piece.kind
            self.write(self.style.dim(piece.text) if piece.kind == "reasoning" else piece.text)
        assert self.conversation.last is not None
        return self.conversation.last

    def reply(
        self, text: str | None, show: bool, image_ids: list[str] | None = None, drop: bool = False
    ) -> TurnResult:
        """One turn; Ctrl+C while it runs stops the reply (not the program). `drop` (or --drop-oldest):
        a conversation too long for the context loses its oldest turns first."""
        cancel = CancelToken()
        previous = signal.signal(signal.SIGINT, lambda *_: cancel.cancel())
        try:
            return self.run(self._stream(text, cancel, show, image_ids or [], drop or self.args.drop_oldest))
        finally:
            signal.signal(signal.SIGINT, previous)

    def stats_line(self, result: TurnResult) -> str:
        used = result.prompt_tokens + len(result.tokens)
        return (
            f"{result.reused_tokens} tokens reused, {result.prefilled_tokens} prefilled · first token "
            f"{result.first_token_ms / 1000:.2f} s · {result.decode_tokens_per_s:.1f} tokens/s · "
            f"context {used}/{result.context_tokens}"
        )

    def dropped_note(self, result: TurnResult) -> str | None:
        if not result.dropped_turns:
            return None
        turns = "oldest turn" if result.dropped_turns == 1 else f"{result.dropped_turns} oldest turns"
        return (
            f"[dropped the {turns} to fit the context; the model re-read "
            f"the rest ({result.prefilled_tokens} tokens prefilled)]"
        )

    def end_of_turn_note(self, result: TurnResult) -> str | None:
        if result.stop_reason == "cancelled":
            return "[stopped]"
        if result.stop_reason == "context_full":
            return "[the reply reached the end of the context: /reset starts a new chat]"
        return None


def call_line(call: ToolCall) -> str:
    arguments = json.dumps(call.arguments, ensure_ascii=False)
    if call.error:
        return f"[tool call {call.name or '?'} could not be read: {call.error}]"
    return f"[tool call] {call.name} {arguments}"


def answered_calls(result: TurnResult) -> list[ToolCall]:
    """The calls of a reply that wait for a result (a malformed one is shown, not run)."""
    return [call for call in result.tool_calls if call.error is None]


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"


def _message_text(content: Any) -> str:
    """A message's text, an [image] mark for each image part."""
    if not isinstance(content, list):
        return str(content)
    parts = [p for p in content if isinstance(p, dict)]
    return " ".join("[image]" if p.get("type") == "image" else str(p.get("text", "")) for p in parts)


def _show_transcript(session: ChatSession) -> None:
    style = session.style
    for message in session.conversation.messages:
        role, content = message.get("role"), _message_text(message.get("content", ""))
        if role == "user":
            session.write(f"{style.bold('you>')} {content}\n")
        elif role == "assistant":
            reasoning = str(message.get("reasoning_content", ""))
            if reasoning:
                session.write(style.dim(reasoning) + "\n")
            session.write(content + "\n\n")
        elif role == "system":
            session.write(style.dim(f"system: {content}") + "\n")


def _command(session: ChatSession, line: str) -> bool:
    """Run a /command; False when the program should end."""
    name, _, argument = line[1:].partition(" ")
    if name in ("quit", "exit", "q"):
        return False
    if name == "image":
        if not argument.strip():
            session.write("error: /image needs a file name\n")
        else:
            try:
                session.attached.append(session.attach(argument.strip()))
                session.write(session.style.dim(f"attached {argument.strip()} (to your next message)") + "\n")
            except RuntimeUserError as err:
                session.write(f"error: {err}\n")
    elif name == "reset":
        session.conversation.reset()
        session.attached = []
        session.write(session.style.dim("new chat") + "\n")
    elif name == "drop":
        if session.refused is None:
            session.write("nothing to resend: /drop follows a message the full context refused\n")
        else:
            text, images = session.refused
            _interactive_turn(session, text, drop=True, images=images)
    elif name == "save":
        target = Path(argument.strip()) if argument.strip() else session.args.save
        if target is None:
            session.write("error: /save needs a file name (or start with --save FILE)\n")
        else:
            size = session.save(target)
            session.write(session.style.dim(f"saved to {target} ({_megabytes(size)})") + "\n")
    else:
        session.write(HELP + "\n")
    return True


def _interactive_turn(
    session: ChatSession, line: str, drop: bool = False, images: list[str] | None = None
) -> None:
    """One turn from the terminal: the attached images (or `images`, a resent message's) go with it."""
    images = list(session.attached) if images is None else images
    try:
        result = session.reply(line, show=True, image_ids=images, drop=drop)
    except ContextFullError as err:
        session.refused = (line, images)
        session.write(
            f"context full: {err} with /reset (/save FILE first keeps this one), or /drop sends this "
            "message without the oldest turns\n"
        )
        return
    except RuntimeUserError as err:  # e.g. images in a text-only bundle: the conversation is kept
        session.write(f"error: {err}\n")
        return
    finally:
        session.attached = []
    session.refused = None
    while True:
        _after_reply(session, result)
        calls = answered_calls(result)
        if not calls or result.stop_reason == "cancelled":
            return
        for call in calls:
            try:
                content = input(session.style.bold(f"result of {call.name}>") + " ")
            except (EOFError, KeyboardInterrupt):
                session.write("\n[no result given: the calls stay unanswered]\n")
                return
            session.conversation.add_tool_result(call.id, content)
        try:
            result = session.reply(None, show=True)
        except RuntimeUserError as err:
            session.write(f"error: {err}\n")
            return


def _after_reply(session: ChatSession, result: TurnResult) -> None:
    for call in result.tool_calls:
        session.write("\n" + session.style.dim(call_line(call)))
    note = session.end_of_turn_note(result)
    session.write((f" {note}" if note else "") + "\n")
    dropped = session.dropped_note(result)
    if dropped:
        session.write(session.style.dim(dropped) + "\n")
    session.write(session.style.dim(session.stats_line(result)) + "\n\n")


def _interactive(session: ChatSession) -> None:
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  (line editing and history for input())
    manifest = session.runtime.manifest
    session.write(
        session.style.dim(
            f"{session.args.bundle} · {manifest.dtype} · context {session.runtime.max_context} tokens\n{HELP}"
        )
        + "\n\n"
    )
    if session.conversation.messages:
        _show_transcript(session)
    prompt = session.style.bold("you>") + " "
    while True:
        try:
            line = input(prompt).strip()
        except EOFError:
            session.write("\n")
            return
        except KeyboardInterrupt:
            session.write("^C (Ctrl+D or /quit to leave)\n")
            continue
        if not line:
            continue
        if line.startswith("/") and not line.startswith("//"):
            if not _command(session, line):
                return
            continue
        _interactive_turn(session, line.removeprefix("/"))


def _scripted(session: ChatSession, stdin: TextIO) -> None:
    lines = iter(stdin)
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        text, paths = parse_line(line)
        image_ids = [session.attach(path) for path in paths]
        try:
            result = session.reply(text, show=not session.args.json, image_ids=image_ids)
            _scripted_output(session, result)
            while answered_calls(result):
                for call in answered_calls(result):
                    answer = next(lines, None)
                    if answer is None:
                        raise GenerationInputError(f"stdin ended before the result of {call.name}'s call")
                    session.conversation.add_tool_result(call.id, answer.rstrip("\r\n"))
                result = session.reply(None, show=not session.args.json)
                _scripted_output(session, result)
        except ContextFullError as err:
            raise ContextFullError(f"{err} (--drop-oldest drops the oldest turns instead)") from None


def _scripted_output(session: ChatSession, result: TurnResult) -> None:
    if session.args.json:
        session.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
        return
    for call in result.tool_calls:
        session.write("\n" + call_line(call))
    session.write("\n")
    dropped = session.dropped_note(result)
    if dropped:  # on stderr: stdout keeps only the replies
        sys.stderr.write(dropped + "\n")


def _chat(args: argparse.Namespace) -> int:
    from qwen35web.runtime.native.open_bundle import open_native

    if args.resume is not None and args.system is not None:
        raise RuntimeUserError("--system starts a new conversation; a resumed one keeps its own")
    if args.max_context is not None and args.max_context < 2:
        raise RuntimeUserError(f"--max-context must be at least 2 tokens, got {args.max_context}")
    if args.kept_states_mb < 0:
        raise RuntimeUserError(f"--kept-states-mb must be >= 0, got {args.kept_states_mb}")
    sampling_params(args, {})  # bad flags fail before the bundle loads
    loop = asyncio.new_event_loop()  # not asyncio.run: its SIGINT handler would end the program
    budget = int(args.kept_states_mb * 2**20)
    runtime = loop.run_until_complete(
        open_native(
            args.bundle,
            threads=args.threads,
            prefill_chunk=args.prefill_chunk,
            kept_states_budget=budget,
            max_context=args.max_context,
            max_image_tokens=args.max_image_tokens,
            max_prompt_image_tokens=args.max_prompt_image_tokens,
        )
    )
    session = ChatSession(args, runtime, loop)
    try:
        if args.resume is not None:
            session.resume(args.resume)
        try:
            if sys.stdin.isatty() and not args.json:
                _interactive(session)
            else:
                _scripted(session, sys.stdin)
        finally:
            if args.save is not None:
                session.save(args.save)  # what was said so far is kept, whatever ended the session
    finally:
        loop.run_until_complete(runtime.close())
        loop.close()
    return 0


def main(argv: list[str] | None = None, prog: str = "qwen35web chat") -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        return _chat(args)
    except RuntimeUserError as err:
        sys.stderr.write(f"error: {err}\n")
        return err.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        return 130
