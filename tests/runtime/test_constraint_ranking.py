"""The whole-row pass of constrained sampling ranks raw logits first (constraint._shortlist) and
must pick exactly what ranking every allowed id by its scaled logit picks: over a table of random
rows, with ties, rounding under a temperature, penalties, biases and banned ids."""

from __future__ import annotations

import heapq
import random
from array import array
from types import SimpleNamespace

import pytest

from qwen35web.runtime.constraint import GrammarConstraint, _shortlist, best_allowed, output_constraint
from qwen35web.runtime.grammar import DEAD, LazyDfa
from qwen35web.runtime.json_grammar import response_format_grammar
from qwen35web.runtime.sampling import SamplingParams, scaled_logits
from qwen35web.runtime.token_trie import TokenTrie
from qwen35web.runtime.tools import ToolChoice
from tests.runtime.tool_fixtures import PERSON_SCHEMA

VOCAB = 40_000
SCHEMA_FORMAT = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON_SCHEMA}}


def reference(allowed, logit_of, size, banned):
    """The plain ranking (the constraint's first design): every allowed id by (scaled logit, -id)."""
    return heapq.nlargest(size, set(allowed) - banned, key=lambda t: (logit_of(t), -t))


def random_row(rng: random.Random, kind: str, allowed: array) -> list[float]:
    if kind == "strided":  # the best values sit exactly where the floor's sample looks
        row = [rng.gauss(0.0, 1.0) for _ in range(VOCAB)]
        for token in allowed[::16]:
            row[token] = 10.0 + rng.random()
        return row
    if kind == "gauss":
        return [rng.gauss(0.0, 3.0) for _ in range(VOCAB)]
    if kind == "ties":  # few distinct values: ties everywhere, won by the lower id
        return [float(rng.randrange(6)) for _ in range(VOCAB)]
    if kind == "close":  # neighbours a few ulps apart, which a temperature rounds together
        base = 1.2345678
        return [base + rng.randrange(8) * 2.0**-52 * base for _ in range(VOCAB)]
    if kind == "masked":  # most of the row -inf, as a masked model would give
        return [rng.gauss(0.0, 1.0) if rng.random() < 0.01 else float("-inf") for _ in range(VOCAB)]
    return [-abs(rng.gauss(0.0, 1e-3)) for _ in range(VOCAB)]  # "small": near zero, one sign


CASES = [
    (kind, params, seed)
    for seed in range(2)
    for kind in ("gauss", "ties", "close", "masked", "small", "strided")
    for params in (
        SamplingParams(greedy=True),
        SamplingParams(temperature=1.0),
        SamplingParams(temperature=0.7, top_k=40),
        SamplingParams(temperature=3.0, repetition_penalty=1.3),
    )
]


@pytest.mark.parametrize(("kind", "params", "seed"), CASES)
def test_the_fast_whole_row_pass_picks_what_ranking_every_id_picks(kind, params, seed):
    rng = random.Random(f"{kind}/{seed}")
    allowed = array("i", sorted(rng.sample(range(VOCAB), rng.choice([VOCAB - 7, VOCAB // 2, 30_000]))))
    row = random_row(rng, kind, allowed)
    seen = rng.sample(range(VOCAB), 50)
    biases = (rng.sample(range(VOCAB), 20), [rng.uniform(-2.0, 2.0) for _ in range(20)])
    banned = frozenset(rng.sample(list(allowed), 3)) if seed else frozenset()
    logit_of = scaled_logits(row, params, seen, biases)
    size = 1 if params.greedy else params.candidates
    expected = reference(allowed, logit_of, size, banned)
    assert best_allowed(allowed, logit_of, size, banned) == expected
    # the same ranking through a plain callable (no raw row to shortlist from)
    assert best_allowed(allowed, lambda t: logit_of(t), size, banned) == expected


def test_a_large_allowed_set_is_ranked_from_the_raw_row():
    rng = random.Random(0)
    row = [rng.gauss(0.0, 1.0) for _ in range(VOCAB)]
    shortlist = _shortlist(array("i", range(VOCAB)), scaled_logits(row, SamplingParams(), [], ([], [])), 256)
    assert shortlist is not None and 256 <= len(shortlist) < 1024


def _vocabulary(rng: random.Random) -> list[bytes | None]:
    """Every byte, then random words (ASCII, quotes, braces, multibyte UTF-8); id 9 ends the turn."""
    pieces = ["a", "b", "z", "7", " ", '"', "{", "}", ":", ",", "\\", "é", "省", "\n"]
    words = {"".join(rng.choice(pieces) for _ in range(rng.randint(2, 6))).encode() for _ in range(14_000)}
    vocab: list[bytes | None] = [bytes([b]) for b in range(256)] + sorted(words)
    vocab[9] = None
    return vocab


@pytest.mark.parametrize("params", [SamplingParams(greedy=True), SamplingParams(temperature=0.8, top_k=40)])
@pytest.mark.parametrize("opening", [b'{"name": "', b'{"name": "Ada', b"{", b'{"name": "Ada", "age": 3'])
def test_a_state_not_yet_walked_picks_what_its_walked_allowed_set_picks(params, opening):
    rng = random.Random(repr((params, opening)))
    vocab = _vocabulary(rng)
    constraint = GrammarConstraint(
        LazyDfa(response_format_grammar(SCHEMA_FORMAT)), TokenTrie(vocab), vocab.__getitem__, frozenset({9})
    )
    constraint.state = constraint.dfa.walk(constraint.dfa.start, opening)
    row = [rng.gauss(0.0, 2.0) for _ in range(len(vocab) + 40)]  # the row is wider than the vocabulary
    logit_of = scaled_logits(row, params, rng.sample(range(len(vocab)), 30), ([], []))
    size = 1 if params.greedy else params.candidates
    banned = frozenset({9})
    ends = constraint.eos_ids if constraint.dfa.accepting[constraint.state] else ()
    walked = constraint.trie.allowed(constraint.dfa, constraint.state, ends)
    expected = reference(walked, logit_of, size, banned)
    unwalked = constraint._best_unwalked(logit_of, size, banned)
    inside_a_string = opening.endswith((b'"', b"Ada"))
    assert (unwalked is not None) == inside_a_string  # taken where most tokens fit, refused elsewhere
    assert unwalked is None or unwalked == expected
    picked = constraint.pick_whole(logit_of, params, random.Random(0), 100, banned)
    assert picked == (expected[0] if params.greedy else picked) and picked in walked


@pytest.mark.parametrize(
    "opening", [b"", b"{", b'{"name": "', b'{"name": "Ada", ', b'{"name": "Ada", "age": 3']
)
def test_the_trie_walk_finds_every_token_the_automaton_allows(opening):
    vocab = _vocabulary(random.Random(7))
    dfa = LazyDfa(response_format_grammar(SCHEMA_FORMAT))
    state = dfa.walk(dfa.start, opening)
    expected = [t for t, data in enumerate(vocab) if data and dfa.walk(state, data) != DEAD]
    assert list(TokenTrie(vocab).allowed(dfa, state, [len(vocab) + 3])) == [*expected, len(vocab) + 3]


class _ByteTokenizer:
    """Every byte one token; 256 ends the turn."""

    def token_bytes(self, token: int) -> bytes | None:
        return bytes((token,)) if token < 256 else None


def test_a_repeated_grammar_reuses_its_automaton_and_allowed_sets():
    manifest = SimpleNamespace(vocab_size=257, eos_token_ids=[256])
    runtime, prompt = (
        SimpleNamespace(tokenizer=_ByteTokenizer(), manifest=manifest),
        SimpleNamespace(opens_reasoning=False),
    )
    first = output_constraint(runtime, prompt, [], ToolChoice(), SCHEMA_FORMAT)
    assert first is not None
    first.advance(ord("{"))
    again = output_constraint(runtime, prompt, [], ToolChoice(), SCHEMA_FORMAT)
    other = output_constraint(runtime, prompt, [], ToolChoice(), {"type": "json_object"})
    assert again is not None and other is not None
    assert again.dfa is first.dfa and again._allowed is first._allowed and again.state == again.dfa.start
    assert other.dfa is not first.dfa
