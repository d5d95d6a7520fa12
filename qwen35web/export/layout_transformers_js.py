"""`qwen35web export --layout transformers.js`: a folder @huggingface/transformers 4.3 loads as is.

The graph is the bundle's (graph_io's contract is already transformers.js's: its cache names, a
batch dim named `batch_size`, position_ids int64 [3, batch_size, seq]); what differs is where the
files lie and what config.json says. The pipeline writes the bundle's pieces into its staging
directory as usual (bundle.save_graph, bundle.copy_model_files, `--validate`), then `arrange`
turns them into this layout before the directory is published:

    config.json             the text config as transformers.js reads it (see `config_for`)
    generation_config.json  the checkpoint's (or a new one) with the bundle's stop ids as eos_token_id
    tokenizer.json, tokenizer_config.json, and the checkpoint's optional tokenizer files
    onnx/model<suffix>.onnx              <suffix> by dtype: formats.py's transformers_js_suffix
    onnx/model<suffix>.onnx_data, _data_1, ...   its external data, named as transformers.js asks
    validation.json         with `--validate`

What transformers.js 4.3.2 reads, and why each entry is here (src/ under its npm package):
- `model_type` qwen3_5_text with `architectures` [Qwen3_5ForCausalLM] maps to the DecoderOnly
  model type (models/registry.js): one session named `model`, file `onnx/model<suffix>.onnx`
  (models/session_config.js). A `qwen3_5` type or a ...ForConditionalGeneration architecture
  would ask for embed_tokens.onnx and decoder_model_merged.onnx instead.
- `layer_types` names the caches it feeds (configs.js getCacheNames): past_conv.i and
  past_recurrent.i for linear attention, past_key_values.i.key/value for full attention; it
  builds the first step's zero caches from the session's input metadata, resolving only a dim
  named `batch_size` (every other symbolic dim becomes 0: the empty KV cache).
- `vision_config.spatial_merge_size`: its get_rope_index reads it even for text-only input.
- `transformers.js_config.dtype` picks the file suffix when the caller gives no dtype, and
  `use_external_data_format` ({file: chunks}) is the only way it loads external data; it then
  fetches `<file>_data`, `<file>_data_1`, ... (utils/model-loader.js). onnxruntime resolves the
  locations written inside the graph, so those are rewritten to the same names.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from qwen35web.export.errors import BadInputError
from qwen35web.export.formats import FORMATS
from qwen35web.export.generation_config import GENERATION_CONFIG
from qwen35web.export.reference import text_config_dict
from qwen35web.runtime.bundle_format import CONFIG_FILE, MODEL_FILE, ModelFacts

log = logging.getLogger(__name__)

LAYOUT = "transformers.js"
ONNX_DIR = "onnx"  # transformers.js's default `subfolder`

MAX_DATA_CHUNKS = 100  # transformers.js refuses more (utils/hub/constants.js, MAX_EXTERNAL_DATA_CHUNKS)

TEXT_MODEL_TYPE = "qwen3_5_text"
ARCHITECTURE = "Qwen3_5ForCausalLM"
CONFIG_KEY = "transformers.js_config"
# Qwen3.5's vision tower merges 2x2 patches (transformers' Qwen3_5VisionConfig default); a text
# checkpoint has no vision_config, and transformers.js only needs the field to exist for text.
DEFAULT_SPATIAL_MERGE_SIZE = 2


@dataclass(frozen=True)
class TransformersJsFolder:
    """What `arrange` laid out, relative to the folder."""

    graph: str  # onnx/model<suffix>.onnx
    data_files: tuple[str, ...]  # its external data, in order
    dtype: str  # transformers.js's name for it (= our --dtype)


def graph_file(dtype: str) -> str:
    """The ONNX file transformers.js opens for `dtype`: model.onnx, model_q4.onnx, ..."""
    return f"model{FORMATS[dtype].transformers_js_suffix}.onnx"


def data_file_names(graph: str, count: int) -> list[str]:
    """transformers.js's names for `count` external data chunks of `graph` (getExternalDataChunkNames)."""
    return [f"{graph}_data" + ("" if index == 0 else f"_{index}") for index in range(count)]


def check_supported(config: dict[str, Any], dtype: str) -> None:
    """Refuse, before any work, what this layout cannot write: an unnamed dtype, a bad vision_config."""
    if dtype not in FORMATS:
        raise BadInputError(f"--layout {LAYOUT} has no file name for --dtype {dtype!r}")
    vision_config(config)


def vision_config(config: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's vision_config, or a text model's stand-in; spatial_merge_size always set."""
    vision = config.get("vision_config")
    vision = dict(vision) if isinstance(vision, dict) else {}
    merge = vision.get("spatial_merge_size", DEFAULT_SPATIAL_MERGE_SIZE)
    if not isinstance(merge, int) or isinstance(merge, bool) or merge <= 0:
        raise BadInputError(
            f"config.json: vision_config.spatial_merge_size must be a positive integer, got {merge!r}"
        )
    vision["spatial_merge_size"] = merge
    return vision


def config_for(config: dict[str, Any], graph: str, chunks: int, dtype: str) -> dict[str, Any]:
    """config.json for transformers.js: the text config at the top level (either checkpoint layout)."""
    text = {k: v for k, v in text_config_dict(config).items() if k not in ("text_config", "vision_config")}
    runtime: dict[str, Any] = {"dtype": dtype}
    if chunks:
        runtime["use_external_data_format"] = {graph: chunks}
    return {
        **text,
        "model_type": TEXT_MODEL_TYPE,
        "architectures": [ARCHITECTURE],
        "vision_config": vision_config(config),
        CONFIG_KEY: runtime,
    }


def _node_tensors(nodes: Iterable[onnx.NodeProto]) -> Iterator[onnx.TensorProto]:
    for node in nodes:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            for subgraph in [attribute.g] if attribute.HasField("g") else attribute.graphs:
                yield from _graph_tensors(subgraph)


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor a graph stores: initializers and attribute tensors, subgraphs included."""
    yield from graph.initializer
    yield from _node_tensors(graph.node)


def _model_tensors(proto: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    yield from _graph_tensors(proto.graph)
    for function in proto.functions:
        yield from _node_tensors(function.node)


def _relocate(proto: onnx.ModelProto, renames: dict[str, str]) -> int:
    """Point every external tensor at its renamed file; returns how many tensors moved."""
    moved = 0
    for tensor in _model_tensors(proto):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        for entry in tensor.external_data:
            if entry.key == "location":
                if entry.value not in renames:  # save_graph wrote it: a bug of ours, not bad input
                    raise AssertionError(f"tensor {tensor.name} lies in {entry.value!r}, not a written file")
                entry.value = renames[entry.value]
                moved += 1
    return moved


def _write_generation_config(staging: Path, model: ModelFacts, stop_ids: tuple[int, ...]) -> None:
    """generation_config.json with the bundle's stop ids (chat_facts.stop_token_ids), so transformers.js
    ends a reply where the bundle does: the checkpoint's file with its eos list replaced, or one made of
    the stop and pad ids when it has none."""
    path = staging / GENERATION_CONFIG
    generation: dict[str, Any] = {}
    if path.is_file():  # read and checked by generation_config.read_generation_config already
        generation = json.loads(path.read_text(encoding="utf-8"))
    generation["eos_token_id"] = list(stop_ids)
    if model.pad_token_id is not None:
        generation.setdefault("pad_token_id", model.pad_token_id)
    path.write_text(json.dumps(generation, indent=2) + "\n", encoding="utf-8")


def arrange(
    staging: Path,
    data_files: list[str],
    config: dict[str, Any],
    model: ModelFacts,
    dtype: str,
    stop_ids: tuple[int, ...],
) -> TransformersJsFolder:
    """Turn the staged bundle pieces (model.onnx, its `data_files`, config.json) into the layout.

    Runs inside the staging directory, so a failure here leaves nothing behind. The weights are
    renamed, not copied; only the graph's structure (no weights) is read and written again.
    """
    check_supported(config, dtype)
    if len(data_files) > MAX_DATA_CHUNKS:
        raise BadInputError(
            f"the weights take {len(data_files)} files; transformers.js loads at most {MAX_DATA_CHUNKS}"
        )
    graph = graph_file(dtype)
    new_names = data_file_names(graph, len(data_files))
    proto = onnx.load(str(staging / MODEL_FILE), load_external_data=False)
    moved = _relocate(proto, dict(zip(data_files, new_names, strict=True)))
    log.info("%d weights in %s as transformers.js names them", moved, ", ".join(new_names))
    onnx_dir = staging / ONNX_DIR
    onnx_dir.mkdir()
    for old, new in zip(data_files, new_names, strict=True):
        os.rename(staging / old, onnx_dir / new)
    onnx.save(proto, str(onnx_dir / graph))
    (staging / MODEL_FILE).unlink()
    tjs_config = config_for(config, graph, len(new_names), dtype)
    (staging / CONFIG_FILE).write_text(json.dumps(tjs_config, indent=2) + "\n", encoding="utf-8")
    _write_generation_config(staging, model, stop_ids)
    return TransformersJsFolder(
        f"{ONNX_DIR}/{graph}", tuple(f"{ONNX_DIR}/{name}" for name in new_names), dtype
    )
