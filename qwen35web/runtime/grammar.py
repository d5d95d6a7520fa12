"""A small grammar over bytes, run as a deterministic automaton built lazily (pure Python).

Constrained sampling (constraint.py) needs to know, after each token, which next tokens keep the
output on track. The grammars (JSON under a schema, a tool call's XML) are built from a handful of
combinators: literals, byte classes, sequences, alternatives, bounded or unbounded repeats (with a
separator), "any text up to a terminator", and references (for recursive JSON). A position in the
grammar is a stack of frames `(node, progress)`; because alternatives can stay open for a while
(`anyOf`, optional members), the automaton's state is the set of such stacks. `LazyDfa` numbers
each set it meets and remembers each transition, so a byte step is one dict lookup once seen, and
the states that repeat (inside a string, between members) are cheap to cache against. The shortest
way to the end from a state (`completion`) comes from its stacks: the rest of the terminal on top,
then each frame's shortest text (computed once per grammar).

Unbounded repeat counts are saturated (only "below the minimum" or "at least one" matter), so a
long string or number does not make new states.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

LIT, CLASS, SEQ, ALT, REP, UNTIL, REF = range(7)
_DONE = -1

Frame = tuple["Node", int]
Config = tuple[Frame, ...]
StateSet = frozenset[Config]


class Node:
    """One grammar element. Hashing is by identity: each node is built once per grammar."""

    __slots__ = ("a", "b", "c", "d", "kind")

    def __init__(self, kind: int, a: Any = None, b: Any = None, c: Any = None, d: Any = None):
        self.kind, self.a, self.b, self.c, self.d = kind, a, b, c, d


def lit(text: bytes | str) -> Node:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return Node(LIT, data) if data else seq()


def byte_class(members: Iterable[int]) -> Node:
    mask = bytearray(256)
    for byte in members:
        mask[byte] = 1
    return Node(CLASS, bytes(mask))


def byte_range(low: int, high: int) -> Node:
    return byte_class(range(low, high + 1))


def seq(*items: Node) -> Node:
    return items[0] if len(items) == 1 else Node(SEQ, tuple(items))


def alt(*options: Node) -> Node:
    return options[0] if len(options) == 1 else Node(ALT, tuple(options))


def rep(item: Node, least: int = 0, most: int | None = None, separator: Node | None = None) -> Node:
    """`item` repeated least..most times (most None: unbounded), `separator` between them."""
    return Node(REP, item, least, most, separator)


def opt(item: Node) -> Node:
    return rep(item, 0, 1)


def until(terminator: bytes) -> Node:
    """Any bytes, ending with (and including) the first `terminator`."""
    failure = [0] * len(terminator)  # KMP failure table
    k = 0
    for i in range(1, len(terminator)):
        while k and terminator[i] != terminator[k]:
            k = failure[k - 1]
        if terminator[i] == terminator[k]:
            k += 1
        failure[i] = k
    return Node(UNTIL, terminator, tuple(failure))


class Ref(Node):
    """A node defined later (recursion): set `.a` to the target."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(REF)


def _consume(node: Node, progress: int, byte: int) -> int | None:
    """The frame's progress after `byte`, _DONE when the terminal is complete, None: not allowed."""
    kind = node.kind
    if kind == LIT:
        if node.a[progress] != byte:
            return None
        return _DONE if progress + 1 == len(node.a) else progress + 1
    if kind == CLASS:
        return _DONE if node.a[byte] else None
    terminator, failure = node.a, node.b  # UNTIL: progress = how much of the terminator matched
    while progress and terminator[progress] != byte:
        progress = failure[progress - 1]
    if terminator[progress] == byte:
        progress += 1
    return _DONE if progress == len(terminator) else progress


def _mark_next(node: Node, progress: int, marks: bytearray) -> None:
    """Mark the bytes the terminal `node` takes at `progress` (what _consume accepts)."""
    if node.kind == LIT:
        marks[node.a[progress]] = 1
    elif node.kind == CLASS:
        for byte in range(256):
            if node.a[byte]:
                marks[byte] = 1
    else:  # UNTIL takes every byte
        marks[:] = b"\x01" * 256


def _closure(configs: Iterable[Config]) -> StateSet:
    """Expand every stack until a terminal (or nothing: the end) is on top."""
    out: set[Config] = set()
    seen: set[Config] = set()
    work = list(configs)
    while work:
        config = work.pop()
        if config in seen:
            continue
        seen.add(config)
        if not config:
            out.add(config)
            continue
        node, progress = config[-1]
        rest = config[:-1]
        kind = node.kind
        if kind == SEQ:
            work.append(rest + tuple((item, 0) for item in reversed(node.a)))
        elif kind == ALT:
            work.extend((*rest, (option, 0)) for option in node.a)
        elif kind == REP:
            least, most, separator = node.b, node.c, node.d
            if progress >= least:
                work.append(rest)
            if most is None or progress < most:
                count = progress + 1 if most is not None else min(progress + 1, max(least, 1))
                grown: Config = (*rest, (node, count), (node.a, 0))
                if separator is not None and progress > 0:
                    grown += ((separator, 0),)
                work.append(grown)
        elif kind == REF:
            work.append((*rest, (node.a, 0)))
        else:
            out.add(config)
    return frozenset(out)


def _step(state: StateSet, byte: int) -> StateSet:
    moved: list[Config] = []
    for config in state:
        if not config:
            continue
        node, progress = config[-1]
        after = _consume(node, progress, byte)
        if after is None:
            continue
        moved.append(config[:-1] if after == _DONE else (*config[:-1], (node, after)))
    return _closure(moved)


def _nodes(root: Node) -> list[Node]:
    found: list[Node] = []
    stack, visited = [root], set()
    while stack:
        node = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        found.append(node)
        if node.kind in (SEQ, ALT):
            stack.extend(node.a)
        elif node.kind == REP:
            stack.extend(n for n in (node.a, node.d) if n is not None)
        elif node.kind == REF:
            stack.append(node.a)
    return found


def _shortest_texts(root: Node) -> dict[Node, bytes]:
    """Each node's shortest text, by fixed-point iteration (references make the grammar cyclic)."""
    nodes = _nodes(root)
    best: dict[Node, bytes | None] = dict.fromkeys(nodes)
    changed = True
    while changed:
        changed = False
        for node in nodes:
            text = _shortest_of(node, best)
            if text is not None and (best[node] is None or len(text) < len(best[node] or b"")):
                best[node] = text
                changed = True
    missing = [node for node, text in best.items() if text is None]
    if missing:
        raise ValueError("a grammar element has no finite text")
    return {node: text or b"" for node, text in best.items()}


def _shortest_of(node: Node, best: dict[Node, bytes | None]) -> bytes | None:
    kind = node.kind
    if kind == LIT:
        return node.a
    if kind == CLASS:
        return bytes((node.a.index(1),))
    if kind == UNTIL:
        return node.a
    if kind == REF:
        return best[node.a]
    if kind == SEQ:
        parts = [best[item] for item in node.a]
        return None if any(p is None for p in parts) else b"".join(p or b"" for p in parts)
    if kind == ALT:
        options: list[bytes] = [text for text in (best[o] for o in node.a) if text is not None]
        return min(options, key=len) if options else None
    least, item = node.b, best[node.a]  # REP
    if least == 0:
        return b""
    separator = best[node.d] if node.d is not None else b""
    if item is None or separator is None:
        return None
    return item + (separator + item) * (least - 1)


DEAD = -1


class LazyDfa:
    """The grammar's automaton, each state and transition built the first time it is needed."""

    def __init__(self, root: Node):
        self._sets: list[StateSet] = []
        self._index: dict[StateSet, int] = {}
        self._rows: list[dict[int, int]] = []
        self.accepting: list[bool] = []
        self._shortest = _shortest_texts(root)
        self._completions: dict[int, bytes] = {}
        self._next_bytes: dict[int, bytes] = {}
        self.start = self._intern(_closure([((root, 0),)]))

    def _intern(self, state: StateSet) -> int:
        number = self._index.get(state)
        if number is None:
            number = self._index[state] = len(self._sets)
            self._sets.append(state)
            self._rows.append({})
            self.accepting.append(() in state)
        return number

    @property
    def size(self) -> int:
        return len(self._sets)

    def step(self, state: int, byte: int) -> int:
        row = self._rows[state]
        after = row.get(byte)
        if after is None:
            moved = _step(self._sets[state], byte)
            after = row[byte] = self._intern(moved) if moved else DEAD
        return after

    def next_bytes(self, state: int) -> bytes:
        """The bytes `state` moves on (ascending), read off its terminals without building the moves."""
        known = self._next_bytes.get(state)
        if known is None:
            marks = bytearray(256)  # [byte] 1: some stack's terminal takes it
            for config in self._sets[state]:
                if config:
                    _mark_next(*config[-1], marks)
            known = self._next_bytes[state] = bytes(b for b in range(256) if marks[b])
        return known

    def walk(self, state: int, data: bytes) -> int:
        for byte in data:
            state = self.step(state, byte)
            if state == DEAD:
                return DEAD
        return state

    def completion(self, state: int) -> bytes:
        """The shortest bytes that take `state` to the end: per stack, the rest of the terminal on
        top, then each frame below done the shortest way; the shortest over the stacks."""
        known = self._completions.get(state)
        if known is None:
            options = [self._finish(config) for config in self._sets[state]]
            # Ties broken by the bytes: sets iterate in an order that differs between interpreters.
            known = self._completions[state] = min(options, key=lambda text: (len(text), text))
        return known

    def _finish(self, config: Config) -> bytes:
        parts = []
        for depth, (node, progress) in enumerate(reversed(config)):
            if depth == 0 and node.kind in (LIT, UNTIL):
                parts.append(node.a[progress:])
            elif node.kind == REP and progress:
                missing = max(0, node.b - progress)
                separator = self._shortest[node.d] if node.d is not None else b""
                parts.append((separator + self._shortest[node.a]) * missing)
            else:
                parts.append(self._shortest[node])
        return b"".join(parts)
