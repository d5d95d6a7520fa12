"""State reuse across calls on one loaded model: each call pays only for the tokens it adds.

Three layers in four keep a fixed-size recurrent state (plus a conv state) that cannot be rewound:
it is exact only at the token it was taken at. The full-attention layers' KV can be cut to any
shorter past. So the cache keeps states — every state tensor, and the token ids they hold — at
the points a next call can start from: the end of the conversation before the generation prompt,
the end of each prompt, the end of each reply. A call resumes from the longest kept state whose ids are
a prefix of its prompt (the runner's own current state counts as one) and prefills the rest.

No tensor is copied to keep a state: onnxruntime never writes into its inputs, so a kept state
holds the very tensors a run produced (GPU buffers on WebGPU) and `SharingEngine` frees them when
their last holder lets go. Where the engine can cut a tensor on its own device (numpy natively, typed
arrays in wasm), an older kept state whose ids prefix a newer one drops its own KV and keeps the newer,
longer KV instead, cut to its length when it is restored: the KV of one conversation is held once.
What the kept states hold is measured in bytes (distinct tensors) and kept under a budget, least
recently used dropped first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from qwen35web.runtime.bundle_format import Manifest
from qwen35web.runtime.engine import Tensor
from qwen35web.runtime.graph_io import PastState
from qwen35web.runtime.runner import ModelRunner
from qwen35web.runtime.shared_tensors import SharingEngine
from qwen35web.runtime.vision.prompt import ImagePrompt, feed_chunk

logger = logging.getLogger(__name__)

DEFAULT_BUDGET_BYTES = 512 * 2**20
DEFAULT_MAX_KEPT = 32


@dataclass
class KeptState:
    token_ids: tuple[int, ...]
    states: list[Tensor]  # in the runner's state order; KV entries may hold a longer past (shared)
    sizes: list[int]  # bytes of each state tensor
    logits: Tensor | None  # next-token logits after token_ids; only kept when one row is small
    logits_bytes: int
    kv_tensor_len: int  # past positions the KV tensors hold: > len(token_ids) once shared
    label: str  # "history", "prompt" or "reply" (logs, tests)
    next_position: int  # where positions continue (past an image: more than the token count)
    last_used: int = 0

    @property
    def length(self) -> int:
        return len(self.token_ids)

    def tensors(self) -> list[tuple[Tensor, int]]:
        pairs = list(zip(self.states, self.sizes, strict=True))
        return pairs + ([(self.logits, self.logits_bytes)] if self.logits is not None else [])


@dataclass
class CacheStats:
    kept: int = 0
    held_bytes: int = 0
    budget_bytes: int = 0
    evicted: int = 0
    remember_ms: float = 0.0  # time spent keeping states so far (bookkeeping only: no copies)
    labels: list[str] = field(default_factory=list)


def past_axes(specs: Sequence[PastState]) -> list[int | None]:
    """Per state input: its past axis for the KV caches, None for the fixed-size states."""
    return [spec.past_axis for spec in specs]


def is_prefix(ids: Sequence[int], prompt: Sequence[int]) -> bool:
    return len(ids) <= len(prompt) and tuple(prompt[: len(ids)]) == tuple(ids)


class PrefixCache:
    def __init__(
        self,
        runner: ModelRunner,
        manifest: Manifest,
        budget_bytes: int = DEFAULT_BUDGET_BYTES,
        max_kept: int = DEFAULT_MAX_KEPT,
    ):
        if not isinstance(runner.engine, SharingEngine):
            raise TypeError("the prefix cache needs the runner's engine to be a SharingEngine")
        self.runner = runner
        self.engine: SharingEngine = runner.engine
        self.budget_bytes = budget_bytes
        self.max_kept = max_kept
        # One entry per state: its past axis for KV, None for the conv/recurrent states.
        self.seq_axes = past_axes(runner.state_specs)
        self.logits_keep_bytes = 4 * manifest.vocab_size  # one fp32 row ([1, 1, V])
        self.kept: list[KeptState] = []
        self.evicted = 0
        self.remember_seconds = 0.0
        self._clock = 0

    # -- finding and restoring ----------------------------------------------------------------

    @staticmethod
    def _usable(ids: Sequence[int], has_logits: bool, prompt: Sequence[int]) -> bool:
        """Resumable for `prompt`: a proper prefix, or the whole prompt when its logits are kept."""
        n = len(ids)
        fits = n < len(prompt) or (n == len(prompt) and has_logits)
        return n > 0 and fits and is_prefix(ids, prompt)

    def best(self, prompt: Sequence[int]) -> KeptState | None:
        """The longest usable kept state for `prompt` (the most recently used among equals)."""
        usable = [s for s in self.kept if self._usable(s.token_ids, s.logits is not None, prompt)]
        return max(usable, key=lambda s: (s.length, s.last_used), default=None)

    def restore(self, entry: KeptState) -> None:
        """Put the runner at the kept state (which keeps its own hold)."""
        states = []
        for tensor, axis in zip(entry.states, self.seq_axes, strict=True):
            if axis is not None and entry.kv_tensor_len > entry.length:
                cut = self.engine.cut(tensor, axis, entry.length)
                assert cut is not None, "only cuttable KV is ever shared"
                states.append(cut)
            else:
                states.append(self.engine.retain(tensor))
        logits = self.engine.retain(entry.logits) if entry.logits is not None else None
        self.runner.load_state(states, logits, list(entry.token_ids), entry.next_position)
        self._touch(entry)

    def resume(self, prompt: Sequence[int]) -> int:
        """Put the runner at the longest usable prefix of `prompt`; returns how many tokens it holds."""
        current = self.runner.token_ids
        here = len(current) if self._usable(current, self.runner.logits is not None, prompt) else 0
        entry = self.best(prompt)
        if entry is not None and entry.length > here:
            self.restore(entry)
            return entry.length
        if here:
            return here
        self.runner.reset()
        return 0

    async def prefill(
        self,
        prompt: Sequence[int],
        chunk: int,
        keep_at: Sequence[int] = (),
        images: ImagePrompt | None = None,
    ) -> int:
        """Run `prompt` from the best resume point, in chunks of `chunk`, keeping the state at each of
        `keep_at` (token counts) and at the end. Returns the tokens reused. With `images`, the
        resume point is found on its keys (which name the pixels) and only the images past it are
        encoded."""
        prompt = list(prompt)
        start = self.resume(prompt if images is None else images.keys)
        stops = sorted({m for m in keep_at if start < m < len(prompt)} | {len(prompt)})
        position = start
        for stop in stops:
            if position >= stop:
                continue
            while position < stop:
                end = min(position + chunk, stop)
                await feed_chunk(self.runner, prompt, position, end, images)
                position = end
            self.remember("prompt" if stop == len(prompt) else "history")
        return start

    # -- keeping ------------------------------------------------------------------------------

    def remember(self, label: str) -> KeptState | None:
        """Keep the runner's current state (no copy: the kept state holds the same tensors)."""
        start = time.perf_counter()
        try:
            return self._remember(label)
        finally:
            self.remember_seconds += time.perf_counter() - start

    def _remember(self, label: str) -> KeptState | None:
        ids = tuple(self.runner.token_ids)
        if not ids or not self.runner.states:
            return None
        for old in [s for s in self.kept if s.token_ids == ids]:
            self._drop(old)
        logits, logits_bytes = self.runner.logits, 0
        if logits is not None:
            logits_bytes = self.engine.nbytes(logits)
            if logits_bytes > self.logits_keep_bytes:
                logits, logits_bytes = None, 0
        entry = KeptState(
            token_ids=ids,
            states=[self.engine.retain(t) for t in self.runner.states],
            sizes=[self.engine.nbytes(t) for t in self.runner.states],
            logits=self.engine.retain(logits) if logits is not None else None,
            logits_bytes=logits_bytes,
            kv_tensor_len=len(ids),
            label=label,
            next_position=self.runner.next_position,
        )
        self._share_kv(entry)
        self.kept.append(entry)
        self._touch(entry)
        self._evict()
        return entry if entry in self.kept else None

    def _share_kv(self, newer: KeptState) -> None:
        """Older kept states that `newer` extends drop their own KV for `newer`'s (cut on restore)."""
        kv = [i for i, axis in enumerate(self.seq_axes) if axis is not None]
        if not kv or not all(self.engine.can_cut(newer.states[i]) for i in kv):
            return
        for older in self.kept:
            own_kv = older.kv_tensor_len == older.length
            if own_kv and older.length < newer.length and is_prefix(older.token_ids, newer.token_ids):
                for i in kv:
                    self.engine.release(older.states[i])
                    older.states[i] = self.engine.retain(newer.states[i])
                    older.sizes[i] = newer.sizes[i]
                older.kv_tensor_len = newer.length

    def _touch(self, entry: KeptState) -> None:
        self._clock += 1
        entry.last_used = self._clock

    def held_bytes(self) -> int:
        """Bytes of the distinct tensors the kept states hold (a shared KV counts once)."""
        sizes: dict[int, int] = {}
        for entry in self.kept:
            for tensor, size in entry.tensors():
                sizes[id(tensor)] = size
        return sum(sizes.values())

    def held_tensors(self) -> list[Tensor]:
        distinct: dict[int, Tensor] = {}
        for entry in self.kept:
            for tensor, _ in entry.tensors():
                distinct[id(tensor)] = tensor
        return list(distinct.values())

    def _evict(self) -> None:
        while self.kept and (len(self.kept) > self.max_kept or self.held_bytes() > self.budget_bytes):
            victim = min(self.kept, key=lambda s: s.last_used)
            logger.debug("dropping the %s kept state of %d tokens (budget)", victim.label, victim.length)
            self._drop(victim)
            self.evicted += 1

    def _drop(self, entry: KeptState) -> None:
        self.kept.remove(entry)
        for tensor, _ in entry.tensors():
            self.engine.release(tensor)

    def keep_newest(self, label: str, count: int) -> None:
        """Drop all but the `count` most recently used kept states labelled `label` (drafts: each edit
        adds one; only the latest few are worth their recurrent states)."""
        labelled = sorted((s for s in self.kept if s.label == label), key=lambda s: s.last_used)
        for old in labelled[: max(0, len(labelled) - count)]:
            self._drop(old)

    def clear(self) -> None:
        for entry in list(self.kept):
            self._drop(entry)

    def stats(self) -> CacheStats:
        return CacheStats(
            kept=len(self.kept),
            held_bytes=self.held_bytes(),
            budget_bytes=self.budget_bytes,
            evicted=self.evicted,
            remember_ms=self.remember_seconds * 1000,
            labels=[s.label for s in self.kept],
        )
