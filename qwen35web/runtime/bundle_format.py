"""The bundle format, defined once: file names, format version, and manifest.json as typed records.

The exporter writes a bundle with these types (`Manifest.to_json`) and every reader (the native
runtime, `site build`, the page through Pyodide) parses it with them (`Manifest.from_json`), so
the writer and the readers cannot drift apart. Standard library only, because it also runs in
Pyodide. Every malformed manifest raises `BundleError` with one sentence starting
"manifest.json:"; nothing else escapes, whatever JSON it holds.

A bundle is a directory:

    manifest.json           this format (FORMAT_VERSION), listing every other file
    model.onnx              the decoder graph (graph_io's contract); weights in external data
    model.onnx.data, ...    its external data, split by onnx-ir into files of at most 1 GiB
    sampler.onnx            the sampler graph (logits -> top-k candidates)
    tokenizer.json, tokenizer_config.json, config.json, and the model's optional files
    validation.json         with `--validate`: the report against PyTorch
"""

from __future__ import annotations

import json
import posixpath
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from qwen35web.runtime import graph_io
from qwen35web.runtime.bundle_vision import VISION_SECTION, VisionInfo
from qwen35web.runtime.errors import BundleError
from qwen35web.runtime.graph_io import TensorSpec

# 2: position_ids [3, batch_size, sequence_length] (MRoPE rows), dims named batch_size,
#    total_sequence_length for the presents, typed manifest (activation_dtype, logits, sampler).
FORMAT_VERSION = 2
SUPPORTED_FORMAT_VERSIONS = (FORMAT_VERSION,)

MANIFEST = "manifest.json"
MODEL_FILE = "model.onnx"
MODEL_DATA_FILE = MODEL_FILE + ".data"  # external data; onnx-ir numbers the files when it splits
SAMPLER_FILE = "sampler.onnx"
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
TOKENIZER_FILES = (TOKENIZER_FILE, TOKENIZER_CONFIG_FILE)
CONFIG_FILE = "config.json"
# The one buffer limit, 1 GiB: no external-data file is larger (a browser fetches, hashes and caches
# each one comfortably; the exporters split larger weights) and no tensor may be (one WebGPU buffer:
# maxBufferSize of the adapter measured here, platform notes; bench.fidelity's recipe rule).
MAX_BUFFER_BYTES = 1 << 30
CHAT_TEMPLATE_FILE = "chat_template.jinja"
OPTIONAL_MODEL_FILES = ("generation_config.json", CHAT_TEMPLATE_FILE, "special_tokens_map.json")
VALIDATION_FILE = "validation.json"

# webgpu: fused, with the delta rule on GatedDeltaNet (onnxruntime-web WebGPU only).
OPS = ("fused", "portable", "webgpu")
WEBGPU_ONLY_OPS = ("webgpu",)  # graphs with a kernel only onnxruntime-web's WebGPU backend has
LOGITS = ("all", "last")  # logits for every position [B, T, V], or the last one only [B, 1, V]
ACTIVATION_DTYPES = ("float32", "float16")
TENSOR_DTYPES = ("float32", "float16", "int64")

REEXPORT_HINT = "re-export the model with `qwen35web export`"

# model.onnx's metadata_props: the graph carries the facts its I/O follows from, so a bare graph
# (no manifest yet, e.g. during --validate) can still be driven (export/ort_runner.py).
GRAPH_MODEL_FACTS = "qwen35web.model"
GRAPH_ACTIVATION_DTYPE = "qwen35web.activation_dtype"


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise BundleError(f"manifest.json: {message}")


def _object(value: Any, message: str) -> dict[str, Any]:
    _require(isinstance(value, dict), message)
    return typing.cast(dict[str, Any], value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_list(value: Any, message: str) -> tuple[int, ...]:
    _require(isinstance(value, list) and all(_is_int(i) for i in value), message)
    return tuple(value)


def check_relative_path(path: Any) -> str:
    """A bundle file name: relative, POSIX, normalised, never escaping the bundle."""
    _require(isinstance(path, str) and path != "", "a file name must be a non-empty string")
    normal = posixpath.normpath(path)
    escapes = normal.startswith("../") or normal == ".." or normal.startswith("/") or "\\" in path
    _require(
        not escapes and normal == path and ":" not in path and "\x00" not in path,
        f"file path {path!r} is not a plain relative path inside the bundle",
    )
    return typing.cast(str, path)


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative, POSIX, inside the bundle
    size: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "sha256": self.sha256}

    @classmethod
    def from_json(cls, path: Any, data: Any) -> FileEntry:
        path = check_relative_path(path)
        info = _object(data, f"entry for {path!r} must be an object")
        size: Any = info.get("size")
        digest: Any = info.get("sha256")
        _require(_is_int(size) and size >= 0, f"entry for {path!r} needs a non-negative integer 'size'")
        valid_digest = isinstance(digest, str) and len(digest) == 64
        _require(
            valid_digest and all(c in "0123456789abcdef" for c in digest),
            f"entry for {path!r} needs a 64-hex-digit 'sha256'",
        )
        return cls(path, size, digest)


def tensor_spec_to_json(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "dtype": spec.dtype, "shape": list(spec.shape)}


def tensor_spec_from_json(item: Any) -> TensorSpec:
    entry = _object(item, "each io entry must be an object")
    name: Any = entry.get("name")
    dtype: Any = entry.get("dtype")
    shape: Any = entry.get("shape")
    _require(isinstance(name, str) and name != "", "each io entry needs a 'name'")
    _require(dtype in TENSOR_DTYPES, f"io entry {name!r} has unsupported dtype {dtype!r}")
    _require(
        isinstance(shape, list) and all(_is_int(d) or isinstance(d, str) for d in shape),
        f"io entry {name!r} needs a 'shape' list of ints and names",
    )
    return TensorSpec(name, dtype, tuple(shape))


@dataclass(frozen=True)
class GraphIO:
    """A graph's inputs and outputs, in order."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "inputs": [tensor_spec_to_json(i) for i in self.inputs],
            "outputs": [tensor_spec_to_json(o) for o in self.outputs],
        }

    @classmethod
    def from_json(cls, data: Any, where: str) -> GraphIO:
        io = _object(data, f"'{where}' must be an object with 'inputs' and 'outputs'")
        inputs, outputs = io.get("inputs"), io.get("outputs")
        _require(
            isinstance(inputs, list) and isinstance(outputs, list),
            f"'{where}' needs 'inputs' and 'outputs' lists",
        )
        assert isinstance(inputs, list) and isinstance(outputs, list)
        return cls(tuple(map(tensor_spec_from_json, inputs)), tuple(map(tensor_spec_from_json, outputs)))


@dataclass(frozen=True)
class SamplerInfo:
    """The sampler graph's file and I/O (see export/sampler_graph.py)."""

    file: str
    io: GraphIO

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, **self.io.to_json()}

    @classmethod
    def from_json(cls, data: Any) -> SamplerInfo:
        sampler = _object(data, "'sampler' must be an object")
        return cls(check_relative_path(sampler.get("file")), GraphIO.from_json(sampler, "sampler"))


@dataclass(frozen=True)
class ModelFacts:
    """Everything the exporter and the runtimes need to know about one Qwen3.5 text decoder.

    The exporter reads it from config.json (export/config.py, `spec_from_config`), traces
    the graph from it and records it in the manifest's "model" object; the runtimes derive the
    state shapes from it (graph_io.past_states).
    """

    model_type: str  # of the checkpoint: qwen3_5_text or qwen3_5
    weight_prefix: str  # "model." or "model.language_model."
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    layer_types: tuple[str, ...]
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    linear_num_key_heads: int
    linear_num_value_heads: int
    linear_key_head_dim: int
    linear_value_head_dim: int
    conv_kernel: int
    rms_norm_eps: float
    rope_theta: float
    partial_rotary_factor: float
    mrope_section: tuple[int, ...]  # rotary frequencies per position row (t, h, w), interleaved
    tie_word_embeddings: bool
    eos_token_ids: tuple[int, ...]
    pad_token_id: int | None
    max_position_embeddings: int

    @property
    def num_layers(self) -> int:
        return len(self.layer_types)

    @property
    def conv_dim(self) -> int:
        """Channels of the depthwise conv: q | k | v."""
        key_dim = self.linear_num_key_heads * self.linear_key_head_dim
        return 2 * key_dim + self.linear_num_value_heads * self.linear_value_head_dim

    @property
    def rotary_dim(self) -> int:
        return int(self.head_dim * self.partial_rotary_factor)

    def to_json(self) -> dict[str, Any]:
        facts = asdict(self)
        for name in ("layer_types", "eos_token_ids", "mrope_section"):
            facts[name] = list(facts[name])
        # Derived, written for readers of the JSON; ignored when parsing.
        facts["num_layers"] = self.num_layers
        facts["conv_dim"] = self.conv_dim
        return facts

    @classmethod
    def from_json(cls, data: Any) -> ModelFacts:
        model = _object(data, "'model' must be an object")
        hints = typing.get_type_hints(cls)
        values = {f.name: _fact(model, f.name, hints[f.name]) for f in fields(cls)}
        known = (graph_io.LINEAR_ATTENTION, graph_io.FULL_ATTENTION)
        _require(values["layer_types"] != (), "model.layer_types must list every layer")
        _require(
            all(t in known for t in values["layer_types"]), "model.layer_types has an unknown layer type"
        )
        _require(all(n >= 0 for n in values["mrope_section"]), "model.mrope_section must be non-negative")
        return cls(**values)


def _fact(model: dict[str, Any], name: str, hint: Any) -> Any:
    """model[name] checked against its field's type: sizes positive, token ids non-negative."""
    value: Any = model.get(name)
    where = f"model.{name}"
    if isinstance(hint, types.UnionType):  # `int | None`: a token id
        _require(value is None or (_is_int(value) and value >= 0), f"{where} must be an id or null")
        return value
    if typing.get_origin(hint) is tuple:
        (item,) = {h for h in typing.get_args(hint) if h is not Ellipsis}
        ok = isinstance(value, list) and all(isinstance(v, item) and not isinstance(v, bool) for v in value)
        _require(ok, f"{where} must be a list of {item.__name__}s")
        return tuple(value)
    if hint is float:
        _require(isinstance(value, int | float) and not isinstance(value, bool), f"{where} must be a number")
        return float(value)
    if hint is int:
        _require(_is_int(value) and value > 0, f"{where} must be a positive integer")
        return value
    _require(isinstance(value, hint), f"{where} must be a {hint.__name__}")
    return value


@dataclass(frozen=True)
class Manifest:
    """manifest.json: what the bundle holds and how its graph is called."""

    model: ModelFacts
    io: GraphIO  # the decoder graph's I/O: exactly graph_io's contract for `model`
    sampler: SamplerInfo
    ops: str  # "fused" (onnxruntime contrib kernels), "portable" (standard ONNX + functions), "webgpu"
    dtype: str  # the weight format given to the exporter: fp32, fp16, q4, q4f16, q8
    activation_dtype: str  # "float32" or "float16": of the activations, conv and key/value states
    logits: str  # "all" or "last"
    quantization: dict[str, Any] | None  # the weight format's parameters; None when not quantized
    chat_template: str | None
    eos_token_ids: tuple[int, ...]
    pad_token_id: int | None
    external_data: tuple[str, ...]  # model.onnx's weight files, in the bundle
    files: dict[str, FileEntry]  # every file but manifest.json
    provenance: dict[str, Any]  # tool and library versions of the export
    # The checkpoint's generation_config.json (or the user's, or the model card's values; `source` says
    # which): eos ids and sampling defaults (do_sample, temperature, top_p, top_k, repetition_penalty,
    # presence_penalty, frequency_penalty); the runtime's defaults when the user gives none.
    generation: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    vision: VisionInfo | None = None  # a vision-language bundle's tower (bundle_vision.py)
    # What the chat template does when nobody passes enable_thinking: true (its generation prompt leaves
    # <think> open), false (it closes or omits reasoning), None (no reasoning switch, or no template).
    thinking_default: bool | None = None

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self.io.inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self.io.outputs

    @property
    def vocab_size(self) -> int:
        return self.model.vocab_size

    @property
    def max_positions(self) -> int:
        return self.model.max_position_embeddings

    def past_states(self) -> list[graph_io.PastState]:
        return graph_io.past_states(self.model, self.activation_dtype)

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "model": self.model.to_json(),
            "io": self.io.to_json(),
            "external_data": list(self.external_data),
            "sampler": self.sampler.to_json(),
            "ops": self.ops,
            "dtype": self.dtype,
            "activation_dtype": self.activation_dtype,
            "logits": self.logits,
            "quantization": self.quantization,
            "chat_template": self.chat_template,
            "thinking_default": self.thinking_default,
            "eos_token_ids": list(self.eos_token_ids),
            "pad_token_id": self.pad_token_id,
            "files": {path: entry.to_json() for path, entry in self.files.items()},
            "provenance": self.provenance,
            "generation": self.generation,
        } | ({VISION_SECTION: self.vision.to_json()} if self.vision is not None else {})

    @classmethod
    def from_json(cls, data: Any) -> Manifest:
        top = _object(data, "top level must be an object")
        version = check_format_version(top)
        files = _object(top.get("files"), "'files' must be an object")
        entries = {path: FileEntry.from_json(path, info) for path, info in files.items()}
        _require(isinstance(top.get("dtype"), str), "'dtype' must be a string")
        manifest = cls(
            model=ModelFacts.from_json(top.get("model")),
            io=GraphIO.from_json(top.get("io"), "io"),
            sampler=SamplerInfo.from_json(top.get("sampler")),
            ops=_choice(top, "ops", OPS),
            dtype=top["dtype"],
            activation_dtype=_choice(top, "activation_dtype", ACTIVATION_DTYPES),
            logits=_choice(top, "logits", LOGITS),
            quantization=_optional_object(top, "quantization"),
            chat_template=_optional_str(top, "chat_template"),
            thinking_default=_optional_bool(top, "thinking_default"),
            eos_token_ids=_int_list(top.get("eos_token_ids", []), "'eos_token_ids' must be a list of ints"),
            pad_token_id=_optional_int(top, "pad_token_id"),
            external_data=_external_data(top, entries),
            files=entries,
            provenance=_optional_object(top, "provenance") or {},
            generation=_generation(top),
            format_version=version,
            vision=VisionInfo.from_json(top.get(VISION_SECTION)),
        )
        _check_consistency(manifest)
        return manifest


# manifest `generation` key -> what its value must be
_GENERATION_FIELDS: dict[str, Any] = {
    "eos_token_ids": list,
    "do_sample": bool,
    "temperature": float,
    "top_p": float,
    "top_k": int,
    "repetition_penalty": float,
    "presence_penalty": float,
    "frequency_penalty": float,
    "source": str,  # where the sampling defaults come from (generation_config.json, the model card, ...)
}


def _generation(top: dict[str, Any]) -> dict[str, Any]:
    section = _optional_object(top, "generation") or {}
    for key, value in section.items():
        kind = _GENERATION_FIELDS.get(key)
        _require(kind is not None, f"'generation' has an unknown field {key!r}")
        if kind is list:
            _int_list(value, "'generation.eos_token_ids' must be a list of ints")
        elif kind is float:
            _require(_is_int(value) or isinstance(value, float), f"'generation.{key}' must be a number")
        elif kind is int:
            _require(_is_int(value), f"'generation.{key}' must be an integer")
        elif kind is str:
            _require(isinstance(value, str), f"'generation.{key}' must be a string")
        else:
            _require(isinstance(value, bool), f"'generation.{key}' must be true or false")
    return dict(section)


def check_format_version(top: dict[str, Any]) -> int:
    """The manifest's format version, or one line saying this tool cannot read it."""
    version = top.get("format_version")
    _require(_is_int(version), "'format_version' must be an integer")
    _require(
        version in SUPPORTED_FORMAT_VERSIONS,
        f"the bundle has format_version {version}; this qwen35web reads format "
        f"{', '.join(map(str, SUPPORTED_FORMAT_VERSIONS))}: {REEXPORT_HINT}",
    )
    return typing.cast(int, version)


def _choice(top: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = top.get(key)
    _require(value in allowed, f"'{key}' must be one of {', '.join(allowed)}")
    return typing.cast(str, value)


def _optional_object(top: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = top.get(key)
    _require(value is None or isinstance(value, dict), f"'{key}' must be an object or null")
    return value


def _optional_str(top: dict[str, Any], key: str) -> str | None:
    value = top.get(key)
    _require(value is None or isinstance(value, str), f"'{key}' must be a string or null")
    return value


def _optional_bool(top: dict[str, Any], key: str) -> bool | None:
    value = top.get(key)
    _require(value is None or isinstance(value, bool), f"'{key}' must be true, false or null")
    return value


def _optional_int(top: dict[str, Any], key: str) -> int | None:
    value = top.get(key)
    _require(value is None or _is_int(value), f"'{key}' must be an int or null")
    return value


def _external_data(top: dict[str, Any], entries: dict[str, FileEntry]) -> tuple[str, ...]:
    external = top.get("external_data", [])
    _require(
        isinstance(external, list) and all(isinstance(p, str) and p in entries for p in external),
        "'external_data' must list files that 'files' lists",
    )
    return tuple(external)


def _check_consistency(manifest: Manifest) -> None:
    """The files the runtime opens are listed, and the graph I/O is the contract for the model."""
    vision_files = manifest.vision.files() if manifest.vision is not None else ()
    for required in (MODEL_FILE, TOKENIZER_FILE, manifest.sampler.file, *vision_files):
        _require(required in manifest.files, f"'files' does not list {required}")
    model, activations = manifest.model, manifest.activation_dtype
    expected = GraphIO(
        tuple(graph_io.graph_inputs(model, activations, with_images=manifest.vision is not None)),
        tuple(graph_io.graph_outputs(model, activations, last_position_only=manifest.logits == "last")),
    )
    _require(
        manifest.io == expected,
        f"'io' is not the graph contract of its model (format {FORMAT_VERSION}): {REEXPORT_HINT}",
    )


def graph_metadata(model: ModelFacts, activation_dtype: str) -> dict[str, str]:
    """The metadata_props the exporter writes into model.onnx."""
    return {GRAPH_MODEL_FACTS: json.dumps(model.to_json()), GRAPH_ACTIVATION_DTYPE: activation_dtype}


def facts_from_graph_metadata(metadata: dict[str, str]) -> tuple[ModelFacts, str]:
    """The model facts and activation dtype recorded in a graph's metadata_props."""
    if GRAPH_MODEL_FACTS not in metadata or metadata.get(GRAPH_ACTIVATION_DTYPE) not in ACTIVATION_DTYPES:
        raise BundleError(f"{MODEL_FILE}: no model facts in its metadata (not exported by qwen35web export?)")
    return ModelFacts.from_json(json.loads(metadata[GRAPH_MODEL_FACTS])), metadata[GRAPH_ACTIVATION_DTYPE]
