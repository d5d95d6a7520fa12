"""Prefill ahead: run, while the person reads or types, the tokens their next turn will start with.

Two targets, both token prefixes of the next prompt that do not depend on what is still unknown:

- after a reply, the conversation as the next turn renders it (the reply as the template re-renders
  it: Qwen's templates drop a past reply's reasoning) and the opening of the next user turn;
- while a message is typed, that plus the draft's *stable* prefix: the text before its last
  pre-tokenizer piece (a later character can merge into the last word), so edits reuse it.

The work runs as one background task through the prefix cache, in small chunks, and keeps the
state at its end: the next turn resumes there. Any request that uses the runner first calls
`hold()`, which stops the task at the end of the chunk in flight (never inside a chunk: a runner
is only consistent between forwards), so it waits at most one chunk. The result of a turn never
depends on this work: the prefix cache resumes only from states whose token ids are an exact
prefix of the turn's own prompt, and a state holds exactly what a fresh prefill of those ids would.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qwen35web.runtime.chat import Message
from qwen35web.runtime.vision.prompt import image_ids_in

if TYPE_CHECKING:
    from qwen35web.runtime.loaded_model import Runtime
    from qwen35web.runtime.prompt import Prompt

logger = logging.getLogger(__name__)

DEFAULT_AHEAD_CHUNK = 8  # tokens per background forward: the most a request may wait for
AHEAD_LABEL, DRAFT_LABEL = "ahead", "draft"
HISTORY_LABEL = "history"  # as the prefix cache labels the state kept at a turn's history end
KEPT_DRAFTS = 4  # the newest drafts' states kept (edits reuse them); older ones go first
# Two next user messages that differ in their first character: what their renders share is what
# any next message's render shares (see next_turn_opening).
_PROBES = ("a", "1")


def common_prefix(first: Sequence[int], second: Sequence[int]) -> list[int]:
    n = 0
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        n += 1
    return list(first[:n])


def _render(runtime: Runtime, messages: list[Message], enable_thinking: bool | None) -> list[int]:
    return runtime.prompt(messages=messages, enable_thinking=enable_thinking).ids


def next_turn_opening(runtime: Runtime, messages: list[Message], enable_thinking: bool | None) -> list[int]:
    """The longest token prefix of any next prompt that does not depend on the next message.

    The conversation is rendered twice with two different probe user messages; the common token
    prefix is the history as the next turn renders it (the last reply without its reasoning where
    the template drops it) and the opening of the user turn (`<|im_start|>user\\n`)."""
    first, second = (_render(runtime, [*messages, _user(p)], enable_thinking) for p in _PROBES)
    return common_prefix(first, second)


def _user(text: str) -> Message:
    return {"role": "user", "content": text}


def stable_text(tokenizer: Any, draft: str) -> str:
    """The part of `draft` that no later character can re-tokenize: the text before its last
    pre-tokenizer piece, less trailing whitespace pieces (a newline typed after spaces merges them
    with it). Tokenizers without `pieces` give no stable part."""
    pieces = tokenizer.pieces(draft) if hasattr(tokenizer, "pieces") else None
    if not pieces:
        return ""
    pieces = pieces[:-1]
    while pieces and not pieces[-1].strip():
        pieces.pop()
    return "".join(pieces)


@dataclass(frozen=True)
class Opening:
    """The next turn's opening for one conversation, kept while the person types (each draft then
    costs two encodes of its own text, not two renders of the whole conversation)."""

    key: str  # the conversation it belongs to
    ids: list[int]
    head: int  # ids[:head] end with the last special token: the text after it is encoded alone
    tail_text: str  # the text of ids[head:] (`user\n`): a draft's tokens are encode(tail_text + draft)


def opening_for(runtime: Runtime, messages: list[Message], enable_thinking: bool | None) -> Opening:
    key = json.dumps([messages, enable_thinking], sort_keys=True, default=str)
    ids = next_turn_opening(runtime, messages, enable_thinking)
    tokenizer = runtime.tokenizer
    special: frozenset[int] = getattr(tokenizer, "special_ids", frozenset())
    head = max((i + 1 for i, t in enumerate(ids) if t in special), default=0)
    tail_text = tokenizer.decode(ids[head:])
    if ids[head:] != tokenizer.encode(tail_text):  # does not spell back: no fast path
        head, tail_text = len(ids), ""
    return Opening(key, ids, head, tail_text)


def draft_target(runtime: Runtime, opening: Opening, draft: str) -> list[int]:
    """Tokens of the next prompt fixed by the conversation and the stable prefix of the typed
    `draft`. The tokenizer splits its input at special tokens, so the user turn's text after the
    opening's last one is encoded on its own; this assumes the template writes the user's text right
    after the opening, as Qwen's do (were it not so, the work would only be wasted: a turn resumes
    from exact prefixes of its own prompt alone). Never shorter than the opening."""
    stable = stable_text(runtime.tokenizer, draft)
    if not stable.strip() or opening.head == len(opening.ids):
        return opening.ids
    encode, head = runtime.tokenizer.encode, opening.ids[: opening.head]
    full = head + encode(opening.tail_text + draft)
    cut = head + encode(opening.tail_text + stable)
    shared = common_prefix(full, cut)
    return shared if len(shared) > len(opening.ids) else opening.ids


def turn_keep_points(runtime: Runtime, prompt: Prompt, ahead: bool) -> tuple[int, ...]:
    """Where a turn's prefill keeps a state besides the prompt's end (Generator.stream's
    `keep_at`): at the end of the history (before the assistant opening), where the next turn
    resumes when the reply does not re-render as generated, and a regenerate when the prompt's own
    kept state holds no logits. None with prefill ahead on a bundle of last-position logits: there a
    kept state inside the few tokens left after Send costs a second forward (on wasm each forward
    pays ~0.2 s for the weights, at any length), the background keeps it on its way to the next
    turn's opening instead (pass the same points to `prepare_next_turn`), and the prompt's kept state
    keeps its logits row for a regenerate. The first token comes a forward sooner; results are equal."""
    if ahead and runtime.ahead.enabled and runtime.manifest.logits == "last":
        return ()
    return tuple(prompt.keep_at)


def prepare_next_turn(
    runtime: Runtime, messages: list[Message], enable_thinking: bool | None, keep_at: Sequence[int] = ()
) -> None:
    """After a reply: prepare the next turn's opening, keeping states on the way at `keep_at`
    (the turn's history end: see turn_keep_points). Only a help: a failure here (a template that
    cannot render the probes, say) is logged and never reaches the turn that just ended."""
    try:
        prepare(runtime, messages, "", enable_thinking, keep_at)
    except Exception:
        logger.exception("the next turn cannot be prepared ahead; it will prefill on its own")


def split_draft(messages: list[Message]) -> tuple[list[Message], str]:
    """(the conversation, the message being typed): a trailing user message of plain text is the
    draft; otherwise there is none (the next turn's opening is what can be prepared)."""
    last = messages[-1] if messages else None
    if last is not None and last.get("role") == "user" and isinstance(last.get("content"), str):
        return messages[:-1], last["content"]
    return messages, ""


def prepare(
    runtime: Runtime,
    messages: list[Message],
    draft: str,
    enable_thinking: bool | None,
    keep_at: Sequence[int] = (),
) -> int:
    """Start prefilling, in the background, what the turn after `messages` starts with (with the
    stable part of `draft`, the message being typed, when there is one), keeping a state at each
    of `keep_at` (token counts) it passes. Returns the target's token count (0: nothing to do: no
    cache, no chat template, images in the conversation)."""
    ahead = runtime.ahead
    if not ahead.enabled or runtime.manifest.chat_template is None or image_ids_in(messages):
        return 0
    opening = ahead.opening
    if opening is None or opening.key != json.dumps([messages, enable_thinking], sort_keys=True, default=str):
        opening = ahead.opening = opening_for(runtime, messages, enable_thinking)
    target = draft_target(runtime, opening, draft) if draft.strip() else opening.ids
    if len(target) >= runtime.max_context:
        return 0
    runtime.ahead.start(target, DRAFT_LABEL if draft.strip() else AHEAD_LABEL, keep_at)
    return len(target)


@dataclass
class AheadStats:
    target_tokens: int = 0  # what the current (or last) job aims to hold
    held_tokens: int = 0  # how many of them the runner or a kept state holds now
    prefilled_tokens: int = 0  # run in the background so far (all jobs)
    preempted: int = 0  # jobs stopped before their end by a request
    last_wait_ms: float = 0.0  # what the last request waited for the chunk in flight
    running: bool = False


class PrefillAhead:
    """At most one background prefill job on a runtime; requests pre-empt it with `hold()`."""

    def __init__(self, runtime: Runtime, chunk: int = DEFAULT_AHEAD_CHUNK):
        self.runtime = runtime
        self.chunk = max(1, chunk)
        self.enabled = runtime.cache is not None  # no cache: nothing could keep the work
        self._target: list[int] = []
        self._label = AHEAD_LABEL
        self._keep_at: tuple[int, ...] = ()
        self._task: asyncio.Task[None] | None = None
        self._job = 0  # the current job's number: a job runs while it is still the current one
        self._holds = 0
        self.stats = AheadStats()
        self.opening: Opening | None = None  # the last conversation's next-turn opening (drafts reuse it)

    # -- what to prefill ------------------------------------------------------------------------

    def start(self, ids: Sequence[int], label: str = AHEAD_LABEL, keep_at: Sequence[int] = ()) -> None:
        """Prefill `ids` in the background (replacing any earlier target), keeping a state at each
        of `keep_at` on the way. Needs a running event loop; while a request holds the runner, the
        target waits for it to end."""
        if not self.enabled:
            return
        self._target, self._label, self._keep_at = list(ids), label, tuple(keep_at)
        self.stats.target_tokens = len(ids)
        if self._holds == 0:
            self._launch()

    def cancel(self) -> None:
        """The conversation changed: forget the target; a chunk in flight still ends cleanly."""
        self._target = []
        self._job += 1

    async def settled(self) -> None:
        """Wait until the job in flight has ended (done, pre-empted or cancelled)."""
        task = self._task
        if task is not None and not task.done():
            await asyncio.shield(task)

    @asynccontextmanager
    async def hold(self, keep_target: bool = False) -> AsyncIterator[None]:
        """Use the runner exclusively: the job stops at its chunk's end (the wait is at most one
        chunk). With `keep_target` the job goes on afterwards (the conversation did not change)."""
        self._holds += 1
        try:
            await self._stop()
            if not keep_target:
                self._target = []
            yield
        finally:
            self._holds -= 1
            if self._holds == 0 and self._target:
                self._launch()

    # -- the job ---------------------------------------------------------------------------------

    def _launch(self) -> None:
        self._job += 1  # an older job ends at its next chunk boundary
        previous, target, label = self._task, list(self._target), self._label
        run = self._run(previous, target, label, self._job, self._keep_at)
        self._task = asyncio.get_running_loop().create_task(run)

    def _current(self, job: int) -> bool:
        return job == self._job and self._holds == 0

    async def _stop(self) -> None:
        self._job += 1
        task = self._task
        if task is not None and not task.done():
            if task.get_loop() is asyncio.get_running_loop():
                await asyncio.shield(task)
            else:  # left over from a loop that has ended: it can no longer run
                task.cancel()
        self._task = None

    async def _run(
        self,
        previous: asyncio.Task[None] | None,
        target: list[int],
        label: str,
        job: int,
        keep_at: tuple[int, ...] = (),
    ) -> None:
        if previous is not None and not previous.done():
            await asyncio.shield(previous)
        await asyncio.sleep(0)  # a request sent with the same message goes first
        if not target or not self._current(job):
            return
        self.stats.running = True
        try:
            await self._prefill(target, label, job, keep_at)
        except Exception:  # background work: a failure must never reach a request; it resumes anew
            logger.exception("background prefill failed; the next turn prefills on its own")
            self.runtime.runner.reset()
        finally:
            self.stats.running = False

    async def _prefill(self, target: list[int], label: str, job: int, keep_at: tuple[int, ...]) -> None:
        cache, runner = self.runtime.cache, self.runtime.runner
        assert cache is not None
        position = cache.resume(target)
        start = position
        marks = sorted(m for m in keep_at if position < m < len(target))
        while position < len(target):
            if not self._current(job):
                self.stats.preempted += 1
                break
            end = min(position + self.chunk, len(target), *marks)  # a chunk ends at the next mark
            await runner.forward(target[position:end])
            self.stats.prefilled_tokens += end - position
            position = end
            if marks and position == marks[0]:
                marks.pop(0)
                cache.remember(HISTORY_LABEL)  # where a regenerate or an edited reply resumes
            await asyncio.sleep(0)  # a waiting request gets in here, between two chunks
        self.stats.held_tokens = position
        if position > start:
            cache.remember(label)
            if label == DRAFT_LABEL:
                cache.keep_newest(DRAFT_LABEL, KEPT_DRAFTS)
        logger.debug("prefilled %d ahead (%s): %d of %d", position - start, label, position, len(target))
