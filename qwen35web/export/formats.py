"""The weight formats (`--dtype`), each defined once: what it traces in, the passes it runs, the
rounding the PyTorch reference applies in `--validate`, its manifest entry, its validation
tolerance, its default recipe for each model size, its file suffix in the transformers.js layout
and the vision graph's format it takes under `--vision-dtype auto`. The vision tower's own formats
(`--vision-dtype`: its trace dtype, its q4 recipe, its validation bound) are here too, in
`VISION_FORMATS`.

A recipe is the knobs of a quantized format (block size, accuracy level, the precision of the token
table and LM head). The defaults were chosen by measurement (`python -m bench fidelity`, the rule in
bench/fidelity_recipes.py; bench/results/fidelity.md has the tables, tests/export/test_formats.py checks
that the defaults below are the ones it recorded). Fidelity is measured on the trained tiny model's
held-out split (the only trained model) for every size; bytes per decoded token come from each
size's real config (bench/configs/).

q4 and q4f16 (issue 22) are chosen against the onnxruntime-genai builder's int4 for the same
activations (symmetric int4 blocks of 32, accuracy 4, the tied table and head shared as int4, the
linear-attention gates dense): at each size, the recipe with the fewest bytes per token among those
at least as good as the builder on relative perplexity change, top-1 agreement and bytes per token;
where none is, the fewest bytes among those at least as faithful as the builder. Measured (the
trained tiny model as retrained with the chat and tool-call set): none is at any size. Every
int4-table recipe reads fewer bytes but the q4 ones are less faithful or larger than the int8-table
choice (the builder's Δppl +4.99e-3 / top-1 91.5 %); every int8-table one reads more bytes than the
builder (an int8 head costs 8.4-8.6 bits per weight where the builder's costs 5, and the head is a
third of a 0.8B's weights). So q4 is int4 blocks of 64 with an int8 table and head at every size
(+2.73e-3 / 94.8 %; 1.01x (9B) to 1.18x (0.8B) the builder's bytes). q4f16 (fp16 scales, so small
blocks cost less) is int4 blocks of 16 with an int4 table and head at 0.8B and 2B (+4.19e-3 /
94.0 %; 1.16x the builder's bytes, 8 % fewer than blocks of 64 with an int8 table), and blocks of
64 with an int8 table and head at 4B and 9B, where the head is a smaller share. Blocks of 128 and
256 are not measurable on the tiny model (its width, 192, is not a multiple). Natively (0.8B shape)
q4 decodes at 0.75-0.80x the builder's speed (bench/results/fidelity.md, 1 and 2 threads; 0.62-1.03x
over three runs at 1-min load 2.4-7).
q8 keeps the targets' rule: its int8 table and head.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

import onnx_ir as ir
import torch

from qwen35web.export.config import ModelSpec
from qwen35web.export.errors import BadInputError
from qwen35web.export.passes.quantize import QuantizeSettings, quantize_matmuls, quantize_weights
from qwen35web.export.passes.quantize_int8 import EMBEDDINGS as Q8_EMBEDDINGS
from qwen35web.export.passes.quantize_int8 import quantize_matmuls_int8, quantize_weights_int8
from qwen35web.export.quantization.nbits import ACCURACY_LEVELS, EMBEDDING_BITS
from qwen35web.export.quantization.rounding import fake_quantize_module, fake_quantize_module_int8
from qwen35web.export.weight_sizes import FormatCost, Storage, format_cost, weight_shapes

BLOCK_SIZES = (16, 32, 64, 128, 256)


@dataclass(frozen=True)
class Recipe:
    """A quantized format's knobs; None where the format has no such knob."""

    block_size: int | None = None  # MatMulNBits block along K
    accuracy_level: int | None = None  # MatMulNBits compute: 1 fp32, 2 fp16, 4 int8
    embedding: str | None = None  # the token table and LM head: int4 | int8 | float

    def knobs(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def label(self) -> str:
        """e.g. "block 16, accuracy 4, embedding int8"; "-" for a float format."""
        names = {"block_size": "block", "accuracy_level": "accuracy", "embedding": "embedding"}
        return ", ".join(f"{names[k]} {v}" for k, v in self.knobs().items()) or "-"


@dataclass(frozen=True)
class Tolerance:
    """How far `--validate` lets the graph be from PyTorch (holding the same rounded weights)."""

    max_abs: float  # on logits
    kl: float  # mean KL(torch || onnx) over positions, nats
    greedy_agreement: float  # fraction of greedy tokens equal


@dataclass(frozen=True)
class SizeClass:
    """Models with fewer than `below` parameters (and at least the previous class's bound)."""

    name: str
    below: float


SIZE_CLASSES = (
    SizeClass("tiny", 0.3e9),  # the trained demo model (3.6 M) and the tests' random ones
    SizeClass("0.8B", 1.4e9),
    SizeClass("2B", 3e9),
    SizeClass("4B", 6.5e9),
    SizeClass("9B", math.inf),
)


def size_class(spec: ModelSpec) -> SizeClass:
    count = weight_shapes(spec).parameter_count()
    return next(size for size in SIZE_CLASSES if count < size.below)


@dataclass(frozen=True)
class WeightFormat:
    name: str
    summary: str  # for --help
    trace_dtype: torch.dtype
    tolerance: Tolerance
    defaults: Mapping[str, Recipe]  # by SizeClass.name
    embeddings: tuple[str, ...] = ()  # the recipe's embedding choices; () when it has no such knob
    quantize: Callable[[ir.Model, Recipe], ir.Model] | None = None  # runs after the fusions
    round_reference: Callable[[torch.nn.Module, Recipe], None] | None = None
    manifest_entry: Callable[[Recipe], dict[str, Any]] | None = None  # the manifest's "quantization"
    storage: Callable[[Recipe], tuple[Storage, Storage]] = field(
        default=lambda r: (Storage("float", 32),) * 2
    )
    # onnx/model<suffix>.onnx in the transformers.js layout: transformers.js's own table
    # (utils/dtypes.js, DEFAULT_DTYPE_SUFFIX_MAPPING), whose dtype names are ours too.
    transformers_js_suffix: str = ""
    vision_auto: str = "q8"  # the vision graph's format beside this one (`--vision-dtype auto`)

    def knob_names(self) -> tuple[str, ...]:
        return tuple(next(iter(self.defaults.values())).knobs())

    def cost(self, spec: ModelSpec, recipe: Recipe) -> FormatCost:
        projection, head = self.storage(recipe)
        return format_cost(weight_shapes(spec), projection, head, 8 * self.trace_dtype.itemsize)


def _same_for_every_size(recipe: Recipe) -> dict[str, Recipe]:
    return {size.name: recipe for size in SIZE_CLASSES}


def _nbits(fp16: bool) -> Callable[[ir.Model, Recipe], ir.Model]:
    def run(model: ir.Model, recipe: Recipe) -> ir.Model:
        assert recipe.block_size is not None and recipe.accuracy_level is not None and recipe.embedding
        return quantize_weights(
            model,
            block_size=recipe.block_size,
            accuracy_level=recipe.accuracy_level,
            fp16_scales=fp16,
            embedding=recipe.embedding,
        )

    return run


def _round_nbits(module: torch.nn.Module, recipe: Recipe) -> None:
    assert recipe.block_size is not None and recipe.embedding is not None
    fake_quantize_module(module, block_size=recipe.block_size, embedding=recipe.embedding)


def _nbits_manifest(recipe: Recipe) -> dict[str, Any]:
    return {"bits": 4, **recipe.knobs()}


def _nbits_storage(fp16: bool) -> Callable[[Recipe], tuple[Storage, Storage]]:
    def storage(recipe: Recipe) -> tuple[Storage, Storage]:
        assert recipe.block_size is not None and recipe.embedding is not None
        scale_bytes = 2 if fp16 else 4
        projection = Storage("blocks", 4, recipe.block_size, scale_bytes)
        bits = EMBEDDING_BITS[recipe.embedding]
        float_head = Storage("float", 16 if fp16 else 32)
        return projection, float_head if bits is None else replace(projection, bits=bits)

    return storage


# Judged against PyTorch with the same rounded weights; what remains is the kernel's int8 compute
# (accuracy level 4). Greedy flips on near-flat random logits are not a graph error.
_NBITS_TOLERANCE = Tolerance(max_abs=1.0, kl=1e-2, greedy_agreement=0.0)

# Chosen by bench.fidelity (bench/results/fidelity.md, "Default recipes by model size"), per size.
Q4_DEFAULTS = _same_for_every_size(Recipe(block_size=64, accuracy_level=4, embedding="int8"))
Q4F16_DEFAULTS = {
    **_same_for_every_size(Recipe(block_size=64, accuracy_level=4, embedding="int8")),
    "0.8B": Recipe(block_size=16, accuracy_level=4, embedding="int4"),
    "2B": Recipe(block_size=16, accuracy_level=4, embedding="int4"),
}
Q8_DEFAULTS = _same_for_every_size(Recipe(embedding="int8"))


def _q8(model: ir.Model, recipe: Recipe) -> ir.Model:
    assert recipe.embedding is not None
    return quantize_weights_int8(model, embedding=recipe.embedding)


def _round_q8(module: torch.nn.Module, recipe: Recipe) -> None:
    assert recipe.embedding is not None
    fake_quantize_module_int8(module, embedding=recipe.embedding)


def _q8_storage(recipe: Recipe) -> tuple[Storage, Storage]:
    # A float table is stored fp16 and read as fp32 (the Cast is folded at load): fp32 at run time.
    head = Storage("columns", 8) if recipe.embedding == "int8" else Storage("float", 32)
    return Storage("columns", 8), head


FORMATS: dict[str, WeightFormat] = {
    f.name: f
    for f in (
        WeightFormat(
            "fp32",
            "full precision",
            torch.float32,
            Tolerance(max_abs=1e-4, kl=1e-6, greedy_agreement=1.0),
            _same_for_every_size(Recipe()),
            transformers_js_suffix="",
            vision_auto="fp32",  # parity with PyTorch end to end
        ),
        WeightFormat(
            "fp16",
            "half precision, recurrent state fp32",
            torch.float16,
            Tolerance(max_abs=5e-2, kl=1e-3, greedy_agreement=0.75),
            _same_for_every_size(Recipe()),
            storage=lambda r: (Storage("float", 16),) * 2,
            transformers_js_suffix="_fp16",
            vision_auto="fp16",  # a WebGPU format: see below FORMATS
        ),
        WeightFormat(
            "q4",
            "int4 MatMulNBits, fp32 activations (native, WebGPU)",
            torch.float32,
            _NBITS_TOLERANCE,
            Q4_DEFAULTS,
            tuple(EMBEDDING_BITS),
            _nbits(fp16=False),
            _round_nbits,
            _nbits_manifest,
            _nbits_storage(fp16=False),
            transformers_js_suffix="_q4",
            vision_auto="q8",  # a CPU/wasm format: see below FORMATS
        ),
        WeightFormat(
            "q4f16",
            "int4 MatMulNBits, fp16 activations",
            torch.float16,
            _NBITS_TOLERANCE,
            Q4F16_DEFAULTS,
            tuple(EMBEDDING_BITS),
            _nbits(fp16=True),
            _round_nbits,
            _nbits_manifest,
            _nbits_storage(fp16=True),
            transformers_js_suffix="_q4f16",
            vision_auto="fp16",  # a WebGPU format: see below FORMATS
        ),
        WeightFormat(
            "q8",
            "int8 DynamicQuantizeMatMul (the fast one in wasm)",
            torch.float32,
            # PyTorch holds the same int8 weights and rounds every projection's input per tensor to
            # uint8, as the kernel does. It cannot follow the graph exactly: one activation a hair
            # across a rounding step flips a whole uint8 step, and on a deep random model that
            # compounds (0.8B shape: KL 3e-3, max-abs 0.4 whole-prompt; tiny: KL 4e-16). Chunked
            # prefill rounds each chunk with its own scale, so its logits differ from the one-pass
            # reference by design (0.8B: max-abs 1.6).
            Tolerance(max_abs=2.5, kl=1e-2, greedy_agreement=0.0),
            Q8_DEFAULTS,
            Q8_EMBEDDINGS,
            _q8,
            _round_q8,
            lambda recipe: {"bits": 8, "scheme": "symmetric, one scale per output column", **recipe.knobs()},
            _q8_storage,
            transformers_js_suffix="_quantized",
            vision_auto="q8",  # a CPU/wasm format: see below FORMATS
        ),
    )
}

# Why each `vision_auto`: the vision graph's format follows the decoder's backend. fp32 beside fp32
# (parity); fp16 beside the WebGPU formats (fp16, q4f16): the GPU runs half precision and int8
# DynamicQuantizeMatMul has no WebGPU kernel; q8 beside the CPU/wasm formats (q8, q4): measured the
# fastest per image within 0.999 cosine of fp32 natively and on wasm (bench/results/vision.md).


@dataclass(frozen=True)
class VisionFormat:
    """A format of the vision graph (`--vision-dtype`): fewer than the decoder's, with its own q4."""

    name: str
    trace_dtype: torch.dtype
    # compare_vision's bound against transformers' tower: max_abs for fp32; the lower formats are
    # held to a cosine similarity instead (their error is their own).
    tolerance: Mapping[str, float]
    # Run on the fp32 graph's MatMuls (after Gemm -> MatMul); returns (count, float bytes,
    # quantized bytes). None: a float format, traced in `trace_dtype`.
    quantize: Callable[[ir.Graph], tuple[int, int, int]] | None = None


# The vision q4: 4-bit blocks of 32 along K, asymmetric, accuracy level 4 (export/vision/precision.py).
VISION_Q4_SETTINGS = QuantizeSettings(block_size=32, accuracy_level=4, symmetric=False, fp16_scales=False)

VISION_FORMATS: dict[str, VisionFormat] = {
    f.name: f
    for f in (
        VisionFormat("fp32", torch.float32, {"max_abs": 1e-4}),
        VisionFormat("fp16", torch.float16, {"min_cosine": 0.9999}),
        VisionFormat("q8", torch.float32, {"min_cosine": 0.999}, quantize_matmuls_int8),
        VisionFormat(
            "q4",
            torch.float32,
            {"min_cosine": 0.95},
            lambda graph: quantize_matmuls(graph, VISION_Q4_SETTINGS),
        ),
    )
}


@dataclass(frozen=True)
class Choice:
    """The format and recipe one export uses, and where each knob came from."""

    format: WeightFormat
    recipe: Recipe
    size: SizeClass
    given: tuple[str, ...]  # knobs the user set; the others are the size's defaults


def choose(dtype: str, spec: ModelSpec, **given: Any) -> Choice:
    """The format `dtype` with the user's knobs (None: not given) over the size's default recipe.

    Raises BadInputError, naming the flag, for an unknown format or value, or a knob the format lacks.
    """
    if dtype not in FORMATS:
        raise BadInputError(f"--dtype must be one of {', '.join(FORMATS)}, got {dtype!r}")
    weight_format = FORMATS[dtype]
    size = size_class(spec)
    knobs = {name: value for name, value in given.items() if value is not None}
    for name, value in knobs.items():
        _check_knob(weight_format, name, value)
    recipe = replace(weight_format.defaults[size.name], **knobs)
    return Choice(weight_format, recipe, size, tuple(knobs))


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_knob(weight_format: WeightFormat, name: str, value: Any) -> None:
    if name not in weight_format.knob_names():
        users = [f.name for f in FORMATS.values() if name in f.knob_names()]
        raise BadInputError(
            f"{_flag(name)} applies to --dtype {' or '.join(users)}, not {weight_format.name}"
        )
    allowed: tuple[Any, ...] = {
        "block_size": BLOCK_SIZES,
        "accuracy_level": ACCURACY_LEVELS,
        "embedding": weight_format.embeddings,
    }[name]
    if value not in allowed:
        choices = ", ".join(str(a) for a in allowed)
        raise BadInputError(f"{_flag(name)} must be one of {choices} for {weight_format.name}, got {value}")


def manifest_fields(choice: Choice) -> dict[str, Any]:
    """The manifest's recipe entry: None for a float format."""
    if choice.format.manifest_entry is None:
        return {"quantization": None}
    entry = choice.format.manifest_entry(choice.recipe)
    defaulted = [name for name in choice.recipe.knobs() if name not in choice.given]
    return {"quantization": {**entry, "size_class": choice.size.name, "defaults": defaulted}}


def default_help(knob: str) -> str:
    """What --help says about a knob's default: each format's per-size value, collapsed when equal."""
    parts = []
    for weight_format in FORMATS.values():
        if knob not in weight_format.knob_names():
            continue
        values = {size: getattr(recipe, knob) for size, recipe in weight_format.defaults.items()}
        if len(set(values.values())) == 1:
            parts.append(f"{weight_format.name} {next(iter(values.values()))} at every size")
        else:
            parts.append(f"{weight_format.name} " + "/".join(f"{v} ({s})" for s, v in values.items()))
    return "default: " + "; ".join(parts) + " (bench/results/fidelity.md)"
