"""One training run end to end: corpus → tokenizer → model → training → checkpoint directory.

The directory is assembled next to OUT_DIR and renamed into place, so an interrupted run leaves
no half-written checkpoint behind.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from devtools.train_tiny.batches import WindowSampler, token_stream
from devtools.train_tiny.card import model_card, training_log
from devtools.train_tiny.corpus import build_corpus
from devtools.train_tiny.demo_tools import DEMO_TOOLS, DEMO_TOOLS_FILE
from devtools.train_tiny.evaluate import card_samples, held_out_score
from devtools.train_tiny.model_config import build_model, parameter_count, tiny_config
from devtools.train_tiny.tokenizer_train import ENDOFTEXT, special_token_ids, train_tokenizer, write_tokenizer
from devtools.train_tiny.train import TrainSettings, reproducible, train

logger = logging.getLogger(__name__)


def train_checkpoint(out_dir: Path, settings: TrainSettings, replace: bool = False) -> dict[str, Any]:
    """Train with `settings` and write the checkpoint, its MODEL_CARD.md and training_log.json to out_dir."""
    if out_dir.exists() and any(out_dir.iterdir()) and not replace:
        raise FileExistsError(f"{out_dir} exists and is not empty (use --force to replace it)")
    with reproducible(settings.seed, settings.threads):
        staging = _train_into_staging(out_dir, settings)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    staging.rename(out_dir)
    logger.info("wrote %s", out_dir)
    return json.loads((out_dir / "training_log.json").read_text())


def _train_into_staging(out_dir: Path, settings: TrainSettings) -> Path:
    """Everything but the final rename: returns the staging directory next to out_dir."""
    started = time.monotonic()
    corpus = build_corpus(settings.max_documents, settings.dialogues)
    tokenizer = train_tokenizer((doc.text for doc in corpus.train), settings.vocab_size)
    special_ids = special_token_ids(tokenizer)
    separator = special_ids[ENDOFTEXT]
    train_stream = token_stream(tokenizer, corpus.train, separator)
    held_out_stream = token_stream(tokenizer, corpus.held_out, separator)
    held_out_bytes = sum(len(doc.text.encode()) for doc in corpus.held_out)
    if not corpus.held_out:
        raise ValueError("the corpus slice holds no held-out document; use more documents")
    logger.info("tokens: %d train, %d held out", len(train_stream), len(held_out_stream))

    config = tiny_config(tokenizer.get_vocab_size(), special_ids, **settings.model_overrides)
    model = build_model(config, settings.seed)
    logger.info("model: %d parameters", parameter_count(model))
    sampler = WindowSampler(train_stream, settings.context + 1, settings.batch_size, settings.seed)

    def evaluate() -> dict[str, Any]:
        score = held_out_score(model, held_out_stream, held_out_bytes, settings.context)
        return dataclasses.asdict(score)

    history = train(model, sampler.batches(), settings, evaluate)
    samples = card_samples(model, tokenizer, settings.sample_tokens)
    log = training_log(
        settings=settings,
        config=config,
        corpus=corpus,
        token_counts={"train": len(train_stream), "held_out": len(held_out_stream)},
        parameters=parameter_count(model),
        history=history,
        samples=samples,
        total_seconds=time.monotonic() - started,
    )

    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model.save_pretrained(staging)
    write_tokenizer(tokenizer, staging)
    (staging / DEMO_TOOLS_FILE).write_text(json.dumps(DEMO_TOOLS, indent=1) + "\n")
    (staging / "training_log.json").write_text(json.dumps(log, indent=1) + "\n")
    (staging / "MODEL_CARD.md").write_text(model_card(log, (staging / "model.safetensors").stat().st_size))
    return staging
