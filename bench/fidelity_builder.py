"""The onnxruntime-genai builder's int4 recipes as rows of `make fidelity`: its graphs, scored like ours.

The builder (`python -m onnxruntime_genai.models.builder`, the `bench` extra) reads only the
`Qwen3_5ForConditionalGeneration` layout, so the trained tiny model (text layout) is rewritten into
that layout first: its text weights renamed under `model.language_model.`, beside a small random
vision tower the text decoder never reads. Two recipes, each the builder's default for its target:

  builder-int4       `-p int4 -e cpu`:    fp32 activations (against our q4)
  builder-int4-f16   `-p int4 -e webgpu`: fp16 activations (against our q4f16)

What their graphs hold (read from the graphs by `graph_cost`, and by `recipe_cost` from a config):
every projection int4 MatMulNBits, symmetric (no zero points), blocks of 32, accuracy level 4,
scales in the activations' type; the linear-attention gates `in_proj_a`/`in_proj_b` left dense
(the builder excludes them from quantization at every size); the tied table and LM head stored
once as int4 blocks of 32 (GatherBlockQuantized for the lookup, MatMulNBits for the head).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from bench.fidelity_scores import Predictions, Score, concat, failed, predictions_from_logits, score
from bench.graph_spec import describe
from qwen35web.export.config import ModelSpec
from qwen35web.export.decoder import Qwen35Decoder
from qwen35web.export.weight_sizes import FormatCost, Storage

log = logging.getLogger(__name__)

BLOCK_SIZE = 32  # the builder's default block_size
DENSE_GATES = ("in_proj_a", "in_proj_b")  # kept dense by the builder (its qwen.py, "decay and beta gates")
# Tables read one row per token (the lookup; the rotary caches, one position): not counted whole.
_ROW_READ_OPS = ("Gather", "GatherBlockQuantized", "MRotaryEmbedding", "RotaryEmbedding")


@dataclass(frozen=True)
class BuilderRecipe:
    name: str  # the row's name in the fidelity table
    compares_with: str  # our format it stands beside
    execution_provider: str  # the builder's -e
    float_bits: int  # the activations' (and scales', dense weights') width

    def label(self) -> str:
        return (
            f"onnxruntime-genai 0.18 builder `-p int4 -e {self.execution_provider}`: int4 symmetric "
            f"blocks of {BLOCK_SIZE}, accuracy 4, table+head shared int4, gates a/b fp{self.float_bits}"
        )


BUILDER_RECIPES = (
    BuilderRecipe("builder-int4", "q4", "cpu", 32),
    BuilderRecipe("builder-int4-f16", "q4f16", "webgpu", 16),
)


def vl_checkpoint(text_checkpoint: Path, out: Path) -> Path:
    """The trained text checkpoint in the layout the builder reads (reused when present)."""
    if (out / "model.safetensors").exists():
        return out
    from safetensors.torch import load_file, save_file

    from devtools.byte_tokenizer import VISION_TOKEN_IDS
    from devtools.random_checkpoint import TINY_VISION_CONFIG, preprocessor_config, random_vision_model

    config = json.loads((text_checkpoint / "config.json").read_text())
    tensors = {
        ("model.language_model." + key.removeprefix("model.") if key.startswith("model.") else key): value
        for key, value in load_file(str(text_checkpoint / "model.safetensors")).items()
        if not (key == "lm_head.weight" and config["tie_word_embeddings"])
    }
    tower = random_vision_model(TINY_VISION_CONFIG, config["hidden_size"], seed=1)
    tensors.update({"model.visual." + k: v.contiguous().clone() for k, v in tower.state_dict().items()})
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    text_config = {k: v for k, v in config.items() if k not in ("architectures", "transformers_version")}
    vision = {"model_type": "qwen3_5_vision", **TINY_VISION_CONFIG, "out_hidden_size": config["hidden_size"]}
    vl_config = {
        "model_type": "qwen3_5",
        "architectures": ["Qwen3_5ForConditionalGeneration"],
        "text_config": text_config,
        "vision_config": vision,
        "tie_word_embeddings": config["tie_word_embeddings"],
        **VISION_TOKEN_IDS,
    }
    (out / "config.json").write_text(json.dumps(vl_config, indent=2))
    (out / "preprocessor_config.json").write_text(json.dumps(preprocessor_config(TINY_VISION_CONFIG)))
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        if (text_checkpoint / name).exists():
            shutil.copy(text_checkpoint / name, out / name)
    return out


def build(vl: Path, out: Path, precision: str, execution_provider: str) -> Path:
    """The builder's graph (reused when present); raises with the log's tail if the builder fails."""
    model = out / "model.onnx"
    if model.exists():
        return model
    args = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(vl), "-o", str(out)]
    args += ["-p", precision, "-e", execution_provider, "-c", str(out.parent / "builder-cache")]
    log.info("running %s", " ".join(args))
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not model.exists():
        raise RuntimeError(f"builder failed (rc {result.returncode}): {result.stderr[-500:]}")
    return model


def _zero_feeds(model_path: Path, seq: int) -> dict[str, np.ndarray]:
    spec = describe(model_path)
    feeds = {}
    for state in spec.states:
        dims = [1 if d == "batch" else 0 if d == "past" else int(d) for d in state.dims]
        feeds[state.past] = np.zeros(dims, dtype=state.dtype)
    positions = np.arange(seq, dtype=np.int64)[None]  # [1, T]
    if spec.position_rank == 3:
        positions = np.broadcast_to(positions, (3, 1, seq))  # M-RoPE, text only: [3, 1, T]
    feeds["position_ids"] = np.ascontiguousarray(positions)
    feeds["attention_mask"] = np.ones((1, seq), dtype=np.int64)
    return feeds


def predictions(model_path: Path, windows: list[tuple[torch.Tensor, torch.Tensor]]) -> Predictions:
    """Each window [1, T] from empty states, as our rows are run; logits of every position."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    parts = []
    for inputs, targets in windows:
        ids = inputs.numpy()  # [1, T]
        feeds = {**_zero_feeds(model_path, ids.shape[1]), "input_ids": ids}
        (logits,) = session.run(["logits"], feeds)  # [1, T, V]
        parts.append(predictions_from_logits(logits.reshape(-1, logits.shape[-1]), targets.flatten().numpy()))
    return concat(parts)


def _tensor_bytes(tensor: onnx.TensorProto) -> int:
    itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    return math.prod(tensor.dims) * itemsize


def graph_cost(model_path: Path) -> FormatCost:
    """Bytes per decoded token as the graph holds them: every initializer, read whole, except the
    tables a Gather reads one row of (a table the head also reads is counted once, whole)."""
    graph = onnx.load(str(model_path), load_external_data=False).graph
    sizes = {t.name: _tensor_bytes(t) for t in graph.initializer}
    rows = {t.name: t.dims[0] for t in graph.initializer if t.dims}
    whole = {name for node in graph.node if node.op_type not in _ROW_READ_OPS for name in node.input}
    row_only = {
        name
        for node in graph.node
        if node.op_type in _ROW_READ_OPS
        for name in node.input
        if name in sizes and name not in whole
    }
    per_token = sum(size for name, size in sizes.items() if name not in row_only)
    per_token += sum(sizes[name] // rows[name] for name in row_only)
    return FormatCost(per_token, sum(sizes.values()), max(sizes.values()))


def _named_linears(spec: ModelSpec) -> tuple[list[tuple[str, int, int]], int]:
    """[(name, K, N)] of the layers' projections, and the count of the other float parameters."""
    with torch.device("meta"):
        decoder = Qwen35Decoder(spec)
    head = getattr(decoder, "lm_head", None)  # an untied head; None when it is the table
    linears = [(name, m) for name, m in decoder.named_modules() if isinstance(m, nn.Linear) and m is not head]
    counted = {id(m.weight) for _, m in linears} | {id(decoder.model.embed_tokens.weight)}
    if head is not None:
        counted.add(id(head.weight))
    rest = sum(p.numel() for p in decoder.parameters() if id(p) not in counted)
    return [(name, m.in_features, m.out_features) for name, m in linears], rest


def recipe_cost(recipe: BuilderRecipe, spec: ModelSpec) -> FormatCost:
    """The builder recipe's bytes for any config: a tied table and head stored once, int4 (the
    head reads it whole); an untied table left float (a lookup reads one row) and an int4 head."""
    scale_bytes = recipe.float_bits // 8
    blocks = Storage("blocks", 4, BLOCK_SIZE, scale_bytes, zero_points=False)
    dense = Storage("float", recipe.float_bits)
    linears, other_elements = _named_linears(spec)
    body = sum(
        (dense if name.rsplit(".", 1)[-1] in DENSE_GATES else blocks).nbytes(k, n) for name, k, n in linears
    )
    head = blocks.nbytes(spec.hidden_size, spec.vocab_size)
    table = 0 if spec.tie_word_embeddings else dense.nbytes(spec.vocab_size, spec.hidden_size)
    others = other_elements * scale_bytes
    largest = max(
        [blocks.data_nbytes(k, n) for _, k, n in linears]
        + [
            blocks.data_nbytes(spec.hidden_size, spec.vocab_size),
            dense.data_nbytes(*((0, 0) if not table else (spec.vocab_size, spec.hidden_size))),
        ]
    )
    row = table // spec.vocab_size
    return FormatCost(body + head + others + row, body + head + others + table, largest)


def builder_scores(
    checkpoint: Path, work: Path, windows: list[tuple[torch.Tensor, torch.Tensor]], reference: Predictions
) -> list[Score]:
    """One row per builder recipe (an error row if the builder is missing or fails)."""
    scores = []
    for recipe in BUILDER_RECIPES:
        path = f"onnxruntime {recipe.name}"
        try:
            vl = vl_checkpoint(checkpoint, work / "ckpt-vl")
            model = build(vl, work / recipe.name, "int4", recipe.execution_provider)
            started = time.monotonic()
            entry = score(
                path, "onnxruntime", recipe.name, recipe.compares_with, predictions(model, windows), reference
            )
            entry.seconds = time.monotonic() - started
            entry.recipe = {
                "builder": recipe.label(),
                "graph_bytes_per_token": graph_cost(model).bytes_per_token,
            }
        except Exception as err:  # no builder installed, or it failed: a row saying so
            log.exception("%s failed", path)
            entry = failed(
                path, "onnxruntime", recipe.name, recipe.compares_with, f"{type(err).__name__}: {err}"
            )
        log.info("%s: ppl %.6f, top-1 %.4f", path, entry.perplexity, entry.top1_agreement)
        scores.append(entry)
    return scores
