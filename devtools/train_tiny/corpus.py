"""The training text: documentation that ships with CPython itself, so nothing is downloaded.

Sources (both under the PSF License Agreement, a permissive licence):
- `pydoc_data.topics`: the language reference topics that `help()` shows (statements, operators,
  data model, ...), one document per topic.
- The docstrings of the standard library's own `.py` files, read with `ast` (nothing is imported,
  so no module runs), one document per module, class or function, headed by its qualified name.

A small share of documents is also rendered as chat turns in Qwen's `<|im_start|>` format (a
question about a name or topic, answered by the first paragraph of its documentation), so the
chat mode of the demo ends its answers with `<|im_end|>`.

The split is by source (`key`): a held-out topic or docstring is held out in every form it takes.
The training split also holds synthetic chat and tool-call dialogues (`dialogues`), built from the
training sources' exchanges; the held-out split is documentation only.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import logging
import re
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

HELD_OUT_PER_MILLE = 20  # ~2 % of sources
CHAT_PER_MILLE = 350  # share of eligible sources that also appear as one chat exchange
MIN_DOCSTRING_CHARS = 40
MAX_ANSWER_CHARS = 600
# Test suites and vendored wheels are code, not documentation.
SKIPPED_DIRS = frozenset(
    {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__", "_bundled"}
)
VERSION_NOTES = ("New in version", "Changed in version", "Deprecated since version")
DIALOGUES = 1200  # synthetic chat and tool-call dialogues in the training split (TrainSettings.dialogues)
DIALOGUE_SEED = 0  # the held-out tool-call set (devtools.train_tiny.tool_eval) uses another
QUESTIONS = ("What does {name} do?", "Explain {name}.", "What is {name} for?")


Exchange = tuple[str, str]  # (question, answer)


@dataclass(frozen=True)
class Document:
    key: str  # the source, e.g. "topic:if" or "doc:json.dumps"; the held-out split is by key
    text: str


@dataclass(frozen=True)
class Corpus:
    train: list[Document]
    held_out: list[Document]

    def fingerprint(self) -> str:
        """sha256 over every document: two runs trained on the same text show the same value."""
        digest = hashlib.sha256()
        for doc in self.train + self.held_out:
            digest.update(doc.key.encode() + b"\0" + doc.text.encode() + b"\0")
        return digest.hexdigest()


def _per_mille(text: str, salt: str) -> int:
    """A stable pseudo-random number in [0, 1000) derived from text (not Python's salted hash)."""
    return int.from_bytes(hashlib.sha256((salt + text).encode()).digest()[:8], "little") % 1000


def chat_turns(question: str, answer: str) -> str:
    """One exchange exactly as the checkpoint's chat template renders it (plus the answer's end)."""
    return f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n{answer}<|im_end|>\n"


def first_paragraph(text: str) -> str:
    """The first prose paragraph, on one line, cut at a sentence end near MAX_ANSWER_CHARS.

    Indented paragraphs (grammar rules, code) and version notes are skipped.
    """
    paragraphs = [p for p in text.strip().split("\n\n") if p.strip()]
    prose = [p for p in paragraphs if not p[0].isspace() and not p.startswith(VERSION_NOTES)]
    paragraph = " ".join((prose or paragraphs or [""])[0].split())
    if len(paragraph) <= MAX_ANSWER_CHARS:
        return paragraph
    cut = paragraph.rfind(". ", 0, MAX_ANSWER_CHARS)
    return paragraph[: cut + 1] if cut > 0 else paragraph[:MAX_ANSWER_CHARS]


def topic_documents() -> Iterator[tuple[Document, Exchange | None]]:
    """(document, (question, answer) or None) for each `help()` topic, in sorted order."""
    from pydoc_data.topics import topics

    for name in sorted(topics):
        text = topics[name].strip()
        title, _, body = text.partition("\n")
        # The body starts with the title's "*****" underline.
        body = body.lstrip("*\n").strip()
        # "Assignment statements" reads as "assignment statements"; "Code Objects" keeps its capitals.
        subject = title if any(c.isupper() for c in title[1:]) else title[0].lower() + title[1:]
        answer = first_paragraph(body)
        yield Document(f"topic:{name}", text), (f"Tell me about {subject}.", answer) if answer else None


def _module_name(relative: Path) -> str:
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _walk_docstrings(body: list[ast.stmt], prefix: str) -> Iterator[tuple[str, bool, str]]:
    """(qualified name, is a public callable or class, docstring) for classes and functions, depth-first."""
    for node in body:
        if not isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        name = f"{prefix}.{node.name}"
        doc = ast.get_docstring(node)
        if doc:
            yield name, not node.name.startswith("_"), doc
        if isinstance(node, ast.ClassDef):
            yield from _walk_docstrings(node.body, name)


def _stdlib_files(root: Path) -> Iterator[tuple[str, Path]]:
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if not SKIPPED_DIRS.intersection(relative.parts):
            yield _module_name(relative), path


def docstring_documents() -> Iterator[tuple[Document, Exchange | None]]:
    """(document, (question, answer) or None) for each distinct standard-library docstring, in path order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    seen: set[str] = set()
    for module, path in _stdlib_files(root):
        try:
            tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError):  # e.g. lib2to3's deliberately broken grammar samples
            continue
        module_doc = ast.get_docstring(tree)
        entries = [(module, False, module_doc)] if module_doc else []
        entries += list(_walk_docstrings(tree.body, module))
        for name, public, doc in entries:
            if len(doc) < MIN_DOCSTRING_CHARS or doc in seen:
                continue
            seen.add(doc)
            public = public and not any(part.startswith("_") for part in module.split("."))
            yield Document(f"doc:{name}", f"{name}\n\n{doc}"), _docstring_chat(name, doc) if public else None


def _docstring_chat(name: str, doc: str) -> Exchange | None:
    answer = first_paragraph(doc)
    # One-line stubs ("Return self.") and signature lines make poor answers.
    is_signature = answer.startswith(name.rsplit(".", 1)[-1] + "(")
    if len(answer) < 30 or not re.search(r"[.!?]$", answer) or is_signature:
        return None
    question = QUESTIONS[_per_mille(name, "question") % len(QUESTIONS)].format(name=name)
    return question, answer


def build_corpus(max_documents: int | None = None, dialogues: int = DIALOGUES) -> Corpus:
    """Every document, split by source into train and held-out (~2 %), then `dialogues` synthetic
    chat and tool-call dialogues (devtools.train_tiny.dialogues) added to the training split;
    `max_documents` trims the documentation for tests. The held-out split is documentation only,
    so its perplexity stays comparable across recipes."""
    from devtools.train_tiny.dialogues import make_dialogues

    train: list[Document] = []
    held_out: list[Document] = []
    exchanges: list[Exchange] = []  # every training source's exchange: the dialogues draw from these
    sources = itertools.islice(itertools.chain(topic_documents(), docstring_documents()), max_documents)
    for doc, exchange in sources:
        is_held_out = _per_mille(doc.key, "held-out") < HELD_OUT_PER_MILLE
        target = held_out if is_held_out else train
        target.append(doc)
        if exchange is not None and not is_held_out:
            exchanges.append(exchange)
        if exchange is not None and _per_mille(doc.key, "chat") < CHAT_PER_MILLE:
            target.append(Document(doc.key, chat_turns(*exchange)))
    if dialogues:
        made = make_dialogues(dialogues, DIALOGUE_SEED, exchanges)
        train += [Document(f"dialogue:{d.kind}:{i}", d.render()) for i, d in enumerate(made)]
    logger.info(
        "corpus: %d train (%d dialogues) / %d held-out documents, %d / %d characters (Python %s)",
        len(train),
        dialogues,
        len(held_out),
        sum(len(d.text) for d in train),
        sum(len(d.text) for d in held_out),
        sys.version.split()[0],
    )
    return Corpus(train, held_out)
