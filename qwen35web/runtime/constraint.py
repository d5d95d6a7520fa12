"""Constrained sampling: output that parses and validates whatever the weights.

`output_constraint` turns a reply's `response_format` (JSON schema / any JSON object) or forced
`tool_choice` (a named function, or "required") into a grammar (json_grammar.py), run as a lazily
built automaton (grammar.py). `GrammarConstraint` is what the decode loop consults
(generation.TokenConstraint) when it chooses each token:

1. The sampler's candidates (its top-k, at most 256) are checked first, each by walking the
   automaton over the token's bytes; the token is drawn among those that fit, their probabilities
   renormalised (greedy: the best that fits).
2. Only when none fits does the loop read the whole row of logits (`runner.last_logits`) and ask
   `pick_whole`, which calls no Python function per vocabulary id (248k: ~200 ms in Pyodide):
   - in a state that allows most first bytes (inside a string), the row's best raw logits are
     checked one by one (`fits`) and the best that fit are ranked: no trie walk, which there would
     visit most of the trie's ~590k nodes;
   - elsewhere the allowed ids come from the token trie (token_trie.py; a narrow state's walk looks
     up only the few bytes it allows), cached per automaton state as an ascending array, and a
     large set is shortlisted from raw values (`_shortlist`) before the exact ranking.
   Both rank raw logits first: the scaled logit (sampling.ScaledLogits) is raw / temperature on
   every id but the penalised and biased ones, which are always added, so the token chosen is the
   one ranking every allowed id by its scaled logit would choose (tests/runtime/
   test_constraint_ranking.py). We chose the raw row over asking the sampler graph for k = the
   vocabulary: at 248k tokens its sorted TopK plus reading back 248k logits and ids measured
   ~400 ms natively (bench/results/constrained-sampling.jsonl), reading the row ~15 ms.
3. It always ends: when the shortest way to finish (`LazyDfa.completion`) needs as many tokens as
   are left (max_new_tokens, or the context), the rest is forced along that way — every byte is a
   token in a byte-level vocabulary — and the end-of-turn token comes last. End-of-turn is allowed
   exactly when the output is complete.

When the prompt leaves a `<think>` open, the reasoning is free text up to `</think>` (it counts
against the same budget), then the constrained output begins.
"""

from __future__ import annotations

import heapq
import json
import math
import random
import weakref
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from qwen35web.runtime.grammar import DEAD, LazyDfa, Node, alt, byte_class, lit, rep, seq, until
from qwen35web.runtime.json_grammar import MAX_WHITESPACE, response_format_grammar, tool_call_grammar
from qwen35web.runtime.prompt import THINK_CLOSE, Prompt
from qwen35web.runtime.sampling import SamplingParams, ScaledLogits, choose
from qwen35web.runtime.token_trie import TokenTrie
from qwen35web.runtime.tools import Tool, ToolChoice, tool_parameters

_CACHED_ALLOWED = 64  # automaton states whose allowed token sets are kept
_BROAD_BYTES = 128  # first bytes a state allows from which a whole-row pass ranks before walking
_SAMPLE_STRIDE = 16  # every n-th allowed id estimates the shortlist's floor
_ROUNDING_MARGIN = 2.0**-40  # relative: far above the 2**-52 by which raw / T can merge two values
_TINY = 1e-300  # absolute, for a threshold at 0 (a tiny value / T can round to 0)


@dataclass
class ConstraintStats:
    steps: int = 0
    full_passes: int = 0  # steps where no candidate fitted
    forced: int = 0  # steps forced along the shortest way to the end


@dataclass
class GrammarConstraint:
    dfa: LazyDfa
    trie: TokenTrie
    token_bytes: Any  # id -> bytes | None
    eos_ids: frozenset[int]
    state: int = 0
    finished: bool = False
    stats: ConstraintStats = field(default_factory=ConstraintStats)
    _allowed: dict[int, array[int]] = field(default_factory=dict)  # state -> ascending ids
    _finish_tokens: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.state = self.dfa.start

    def fits(self, token: int) -> bool:
        if token in self.eos_ids:
            return self.dfa.accepting[self.state]
        data = self.token_bytes(token)
        return bool(data) and self.dfa.walk(self.state, data) != DEAD

    def pick(
        self,
        top_logits: list[float],
        top_ids: list[int],
        log_normalizer: float,
        params: SamplingParams,
        rng: random.Random,
        remaining: int,
    ) -> int | None:
        self.stats.steps += 1
        if self._tokens_to_finish(self.state) + 1 >= remaining:
            return self._forced(top_ids)
        if params.greedy:  # the first that fits and leaves room to end: no need to check the rest
            fits = (t for t in top_ids if self.fits(t) and self._ends_in_time(t, remaining - 1))
            return next(fits, None)
        fitting = [(v, t) for v, t in zip(top_logits, top_ids, strict=True) if self.fits(t)]
        return self._draw_in_time(fitting, params, rng, remaining)

    def pick_whole(
        self,
        logit_of: Callable[[int], float],
        params: SamplingParams,
        rng: random.Random,
        remaining: int,
        banned: frozenset[int],
    ) -> int:
        self.stats.full_passes += 1
        size = 1 if params.greedy else params.candidates
        best = None
        if self.state not in self._allowed and isinstance(logit_of, ScaledLogits) and self._broad():
            best = self._best_unwalked(logit_of, size, banned)
        if best is None:
            best = best_allowed(self._allowed_ids(), logit_of, size, banned)
        picked = self._draw_in_time([(logit_of(t), t) for t in best], params, rng, remaining)
        if picked is None:  # the best few all leave no room: take the way to the end
            return self._forced([])
        return picked

    def _broad(self) -> bool:
        """Whether the state allows most first bytes (inside a string): where the trie walk costs
        most and most of the best raw logits fit. Elsewhere the rank-then-check pass would only
        scan the row to fail, and the (pruned) walk is cheap."""
        return len(self.dfa.next_bytes(self.state)) >= _BROAD_BYTES

    def _best_unwalked(self, logit_of: ScaledLogits, size: int, banned: frozenset[int]) -> list[int] | None:
        """best_allowed without walking the trie: the ids with the best raw logits of the whole row
        are checked one by one (`fits`). A state that allows most of the vocabulary (inside a
        string) is exactly where a walk costs most (~590k trie nodes) and this costs least; None
        when too few of them fit (the state allows little: its walk is cheap)."""
        count = size + len(banned) + len(logit_of.adjusted)
        row, bound = logit_of.row, self.trie.size
        if logit_of.temperature <= 0 or min(len(row), bound) < count * _SAMPLE_STRIDE * 4:
            return None
        # A floor that ~4 count ids of the row pass: enough when a quarter of them fit.
        sample = row[:bound:_SAMPLE_STRIDE]
        floor = _below(heapq.nlargest(-(-4 * count // _SAMPLE_STRIDE) + 4, sample)[-1])
        above = [t for t, v in enumerate(row) if v >= floor]
        fitting = [t for t in above if (t < bound or t in self.eos_ids) and self.fits(t)]
        if len(fitting) < count:
            return None
        values = [row[t] for t in fitting]
        low = _below(heapq.nlargest(count, values)[-1])
        if not math.isfinite(low) or low < floor:
            return None  # every fitting id within rounding of the count-th must be among them
        shortlist = [t for t, v in zip(fitting, values, strict=True) if v >= low]
        listed = set(shortlist)
        shortlist += [
            t
            for t in logit_of.adjusted
            if t not in listed and (t < bound or t in self.eos_ids) and self.fits(t)
        ]
        return _ranked(shortlist, logit_of, size, banned)

    def _draw_in_time(
        self, fitting: list[tuple[float, int]], params: SamplingParams, rng: random.Random, remaining: int
    ) -> int | None:
        fitting = fitting if params.greedy else fitting[: params.candidates]
        while fitting:
            token = fitting[0][1] if params.greedy else _draw(fitting, params, rng)
            if self._ends_in_time(token, remaining - 1):
                return token
            fitting = [(v, t) for v, t in fitting if t != token]
        return None

    def _ends_in_time(self, token: int, left: int) -> bool:
        """Whether, after `token`, the output can still end within `left` more tokens."""
        if token in self.eos_ids:
            return True
        after = self.dfa.walk(self.state, self.token_bytes(token) or b"")
        return self._tokens_to_finish(after) + 1 <= left

    def _tokens_to_finish(self, state: int) -> int:
        """Tokens the forced way to the end takes from `state` (longest tokens first)."""
        known = self._finish_tokens.get(state)
        if known is None:
            rest, known = self.dfa.completion(state), 0
            while rest:
                _, size = self.trie.longest_prefix(rest)
                rest = rest[max(size, 1) :]
                known += 1
            self._finish_tokens[state] = known
        return known

    def _allowed_ids(self) -> array[int]:
        allowed = self._allowed.get(self.state)
        if allowed is None:
            ends = self.eos_ids if self.dfa.accepting[self.state] else ()
            allowed = self.trie.allowed(self.dfa, self.state, ends)
            if len(self._allowed) >= _CACHED_ALLOWED:
                self._allowed.pop(next(iter(self._allowed)))
            self._allowed[self.state] = allowed
        return allowed

    def _forced(self, top_ids: list[int]) -> int:
        """A step along the shortest way to the end, in the fewest tokens (the longest that fits)."""
        self.stats.forced += 1
        completion = self.dfa.completion(self.state)
        if not completion:
            return next((t for t in top_ids if t in self.eos_ids), min(self.eos_ids))
        token, size = self.trie.longest_prefix(completion)
        assert size > 0, "the vocabulary has no token for the next byte"
        return token

    def advance(self, token: int) -> None:
        if token in self.eos_ids:
            self.finished = True
            return
        self.state = self.dfa.walk(self.state, self.token_bytes(token) or b"")
        assert self.state != DEAD, "a constraint chose a token it does not allow"


def best_allowed(
    allowed: Sequence[int], logit_of: Callable[[int], float], size: int, banned: frozenset[int]
) -> list[int]:
    """The `size` allowed ids with the largest scaled logits, best first (ties: the lower id)."""
    pool: Iterable[int] = allowed
    if isinstance(logit_of, ScaledLogits):
        pool = _shortlist(allowed, logit_of, size + len(banned) + len(logit_of.adjusted)) or allowed
    return _ranked(pool, logit_of, size, banned)


def _ranked(
    pool: Iterable[int], logit_of: Callable[[int], float], size: int, banned: frozenset[int]
) -> list[int]:
    return heapq.nlargest(size, (t for t in pool if t not in banned), key=lambda t: (logit_of(t), -t))


def _shortlist(allowed: Sequence[int], logit_of: ScaledLogits, count: int) -> list[int] | None:
    """Allowed ids that hold the best `count` by scaled logit, found from raw values alone (no
    Python call per id). Every id left out is neither adjusted (penalised or biased: those are
    added) nor within rounding of the count-th raw value, so its scaled logit, raw / T, is below
    that of `count` ids kept, less the banned and adjusted ones: the best are all kept.
    None when the row does not allow that argument (a non-finite threshold)."""
    row = logit_of.row
    if logit_of.temperature <= 0 or len(allowed) < count * _SAMPLE_STRIDE * 4:
        return None  # few ids (or no temperature to divide by): ranking them all is cheap
    # A floor from every 16th allowed id, low enough that ~2 count ids pass it: one pass then
    # keeps only those (a Python loop over ids is cheaper in Pyodide than a call per id).
    sample = [row[t] for t in allowed[::_SAMPLE_STRIDE]]
    floor = _below(heapq.nlargest(-(-2 * count // _SAMPLE_STRIDE) + 4, sample)[-1])
    above = [t for t in allowed if row[t] >= floor]
    if len(above) < count:  # an unlucky sample: rank them all
        floor, above = -math.inf, list(allowed)
    values = [row[t] for t in above]
    low = _below(heapq.nlargest(count, values)[-1])
    if not math.isfinite(low):
        return None
    if low < floor:  # the count-th value is right at the floor: what lies below it counts too
        return _shortlist_all(allowed, row, low, logit_of.adjusted)
    shortlist = [t for t, v in zip(above, values, strict=True) if v >= low]
    return _with_adjusted(shortlist, allowed, logit_of.adjusted)


def _shortlist_all(
    allowed: Sequence[int], row: Sequence[float], low: float, adjusted: frozenset[int]
) -> list[int]:
    return _with_adjusted([t for t in allowed if row[t] >= low], allowed, adjusted)


def _with_adjusted(shortlist: list[int], allowed: Sequence[int], adjusted: frozenset[int]) -> list[int]:
    listed = set(shortlist)
    return shortlist + [t for t in adjusted if t not in listed and _contains(allowed, t)]


def _below(value: float) -> float:
    """A little below `value`: raw / T may round two raw values to one scaled value (a tie, won by
    the lower id), so raw values a few ulps below a threshold are kept too."""
    return value - abs(value) * _ROUNDING_MARGIN - _TINY


def _contains(ascending: Sequence[int], token: int) -> bool:
    index = bisect_left(ascending, token)
    return index < len(ascending) and ascending[index] == token


def _draw(fitting: list[tuple[float, int]], params: SamplingParams, rng: random.Random) -> int:
    """A draw among the fitting candidates (ranked), their probabilities renormalised."""
    peak = fitting[0][0]
    log_z = peak + math.log(sum(math.exp(v - peak) for v, _ in fitting))
    return choose([v for v, _ in fitting], [t for _, t in fitting], log_z, params, rng)


def _forced_calls(tools: list[Tool], choice: ToolChoice) -> Node:
    if choice.name is not None:
        return tool_call_grammar(choice.name, tool_parameters(tools, choice.name) or {})
    calls = alt(
        *(
            tool_call_grammar(t["function"]["name"], tool_parameters(tools, t["function"]["name"]) or {})
            for t in tools
        )
    )
    return rep(calls, 1, None, lit("\n"))


def output_grammar(
    tools: list[Tool], choice: ToolChoice, response_format: Any, opens_reasoning: bool
) -> Node | None:
    """The grammar a reply must follow, or None when it is free."""
    body = _forced_calls(tools, choice) if choice.forced else response_format_grammar(response_format)
    if body is None:
        return None
    if opens_reasoning:
        after_reasoning = rep(byte_class(b" \t\n\r"), 0, MAX_WHITESPACE)
        body = seq(until(THINK_CLOSE.encode()), after_reasoning, body)
    return body


def output_constraint(
    runtime: Any, prompt: Prompt, tools: list[Tool], choice: ToolChoice, response_format: Any
) -> GrammarConstraint | None:
    """The constraint for a reply on `runtime` (None when the reply is free). A request with the
    same grammar as a recent one (an agent's next turn) reuses its automaton and allowed sets."""
    grammar = output_grammar(tools, choice, response_format, prompt.opens_reasoning)
    if grammar is None:
        return None
    tokenizer = runtime.tokenizer
    trie = TokenTrie.for_tokenizer(tokenizer, runtime.manifest.vocab_size)
    kept = _AUTOMATA.setdefault(trie, {})
    key = json.dumps(
        [tools, [choice.mode, choice.name], response_format, prompt.opens_reasoning],
        sort_keys=True,
        default=repr,
    )
    automaton = kept.pop(key, None) or _Automaton(LazyDfa(grammar))
    kept[key] = automaton  # the most recent last
    while len(kept) > _KEPT_AUTOMATA:
        kept.pop(next(iter(kept)))
    return GrammarConstraint(
        automaton.dfa,
        trie,
        tokenizer.token_bytes,
        frozenset(runtime.manifest.eos_token_ids),
        _allowed=automaton.allowed,
        _finish_tokens=automaton.finish_tokens,
    )


@dataclass
class _Automaton:
    """What constraints of one grammar over one vocabulary share: states keep their numbers."""

    dfa: LazyDfa
    allowed: dict[int, array[int]] = field(default_factory=dict)
    finish_tokens: dict[int, int] = field(default_factory=dict)


_KEPT_AUTOMATA = 4  # recent grammars per vocabulary whose automata are kept
_AUTOMATA: weakref.WeakKeyDictionary[TokenTrie, dict[str, _Automaton]] = weakref.WeakKeyDictionary()
