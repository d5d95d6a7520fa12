"""One export, start to finish: check inputs, load lazily, trace, choose ops, write and validate."""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir

from qwen35web.export import bundle, formats, layout_transformers_js
from qwen35web.export.card_sampling import generation_section
from qwen35web.export.chat_facts import stop_token_ids, thinking_default
from qwen35web.export.checkpoint import Checkpoint
from qwen35web.export.config import read_config_json, spec_from_config
from qwen35web.export.errors import BadInputError, ValidationFailedError
from qwen35web.export.lazy_weights import optimize_with_weights, weightless_decoder
from qwen35web.export.mtp import check_mtp
from qwen35web.export.passes.export_passes import export_passes
from qwen35web.export.sampler_graph import sampler_model
from qwen35web.export.trace import activation_dtype_name, trace_to_onnx
from qwen35web.export.vision.bundle import check_vision_checkpoint, export_vision_files, wants_vision
from qwen35web.runtime.bundle_format import (
    LOGITS,
    MAX_BUFFER_BYTES,
    MODEL_FILE,
    OPS,
    SAMPLER_FILE,
    VALIDATION_FILE,
    GraphIO,
    Manifest,
    ModelFacts,
    SamplerInfo,
)
from qwen35web.runtime.bundle_vision import VisionInfo
from qwen35web.runtime.graph_io import TensorSpec

log = logging.getLogger(__name__)

# Where the files go: the bundle (bundle_format.py), or transformers.js's folder (layout_transformers_js.py).
LAYOUTS = ("bundle", layout_transformers_js.LAYOUT)


@dataclass(frozen=True)
class ExportOptions:
    model_dir: Path
    out_dir: Path
    ops: str = "fused"
    dtype: str = "fp32"
    validate: bool = False
    force: bool = False
    max_data_file_bytes: int = MAX_BUFFER_BYTES
    # A quantized format's recipe; None: the format's default for the model's size (formats.py).
    block_size: int | None = None  # int4 block along K (q4, q4f16)
    accuracy_level: int | None = None  # MatMulNBits compute: 1 fp32, 2 fp16, 4 int8
    embedding: str | None = None  # the token table and LM head: int4 | int8 | float
    logits: str = "all"
    layout: str = "bundle"
    text_only: bool = False  # leave a VL checkpoint's vision tower out
    vision_dtype: str = "auto"  # the vision graph's format; see vision_format()
    generation_config: Path | None = None  # a user's generation_config.json instead of the checkpoint's


def io_contract(model: ir.Model) -> GraphIO:
    """Names, element types and (symbolic) shapes of the graph's inputs and outputs."""

    def describe(value: ir.Value) -> TensorSpec:
        shape = tuple(d if isinstance(d, int) else str(d) for d in (value.shape or []))
        dtype = np.dtype(value.dtype.numpy()).name if value.dtype is not None else "undefined"  # "float32"
        return TensorSpec(value.name or "", dtype, shape)

    return GraphIO(tuple(map(describe, model.graph.inputs)), tuple(map(describe, model.graph.outputs)))


def _check_options(options: ExportOptions) -> None:
    if options.ops not in OPS:
        raise BadInputError(f"--ops must be one of {', '.join(OPS)}, got {options.ops!r}")
    if options.dtype not in formats.FORMATS:
        raise BadInputError(f"--dtype must be one of {', '.join(formats.FORMATS)}, got {options.dtype!r}")
    if options.logits not in LOGITS:
        raise BadInputError(f"--logits must be one of {', '.join(LOGITS)}, got {options.logits!r}")
    if options.layout not in LAYOUTS:
        raise BadInputError(f"--layout must be one of {', '.join(LAYOUTS)}, got {options.layout!r}")
    if options.ops == "webgpu" and options.validate:
        raise BadInputError(
            "--validate runs the graph on onnxruntime's CPU provider, which has no GatedDeltaNet kernel: "
            "validate the --ops fused export of the same model instead"
        )


def choose_format(options: ExportOptions, spec: ModelFacts) -> formats.Choice:
    """The weight format and recipe: the options' knobs over the registry's default for the size."""
    return formats.choose(
        options.dtype,
        spec,
        block_size=options.block_size,
        accuracy_level=options.accuracy_level,
        embedding=options.embedding,
    )


def _manifest(
    spec: ModelFacts,
    model: ir.Model,
    options: ExportOptions,
    data_files: list[str],
    staging: Path,
    generation: dict[str, Any],
    choice: formats.Choice,
    vision: VisionInfo | None,
    stop_ids: tuple[int, ...],
) -> Manifest:
    """The finished bundle's manifest (every file written, so the file table is complete)."""
    template = bundle.chat_template(options.model_dir)
    return Manifest(
        model=spec,
        io=io_contract(model),
        external_data=tuple(data_files),
        sampler=SamplerInfo(SAMPLER_FILE, io_contract(ir.serde.deserialize_model(sampler_model()))),
        ops=options.ops,
        dtype=options.dtype,
        activation_dtype=activation_dtype_name(choice.format.trace_dtype),
        logits=options.logits,
        quantization=formats.manifest_fields(choice)["quantization"],
        chat_template=template,
        thinking_default=thinking_default(template),
        eos_token_ids=stop_ids,
        pad_token_id=spec.pad_token_id,
        files=bundle.file_table(staging),
        provenance=bundle.provenance(),
        generation=generation,
        vision=vision,
    )


def vision_format(options: ExportOptions) -> str:
    """The vision graph's format: `--vision-dtype`, or for auto the decoder format's `vision_auto`
    (formats.py says why each)."""
    if options.vision_dtype != "auto":
        return options.vision_dtype
    return formats.FORMATS[options.dtype].vision_auto


def run_export(options: ExportOptions) -> Manifest | layout_transformers_js.TransformersJsFolder:
    """Export one checkpoint to a bundle (returns its manifest) or another layout (what it wrote).

    Raises ExportError subclasses.
    """
    _check_options(options)
    config = read_config_json(options.model_dir)
    spec = spec_from_config(config)
    choice = choose_format(options, spec)
    template = bundle.chat_template(options.model_dir)
    generation = generation_section(options.model_dir, spec.vocab_size, template, options.generation_config)
    if options.layout == layout_transformers_js.LAYOUT:
        layout_transformers_js.check_supported(config, options.dtype)
    bundle.check_tokenizer_files(options.model_dir)
    stop_ids = stop_token_ids(
        spec.eos_token_ids,
        generation,
        options.model_dir,
        bundle.chat_template(options.model_dir),
        spec.vocab_size,
    )
    bundle.check_output_dir(options.out_dir, options.force)
    checkpoint = Checkpoint(options.model_dir)
    check_mtp(spec, checkpoint)  # never exported; odd shapes are a warning
    # Weights are streamed: traced as fakes, read one at a time when a pass or the writer needs them.
    decoder = weightless_decoder(spec, checkpoint, choice.format.trace_dtype)
    decoder.last_position_only = options.logits == "last"
    with_vision = wants_vision(config, options)
    if with_vision:
        decoder.image_token_id = check_vision_checkpoint(options.model_dir, config)
    traced = trace_to_onnx(decoder, choice.format.trace_dtype, optimize=False)
    passes = export_passes(options.ops, choice, options.max_data_file_bytes)
    model = passes(optimize_with_weights(traced, spec, checkpoint)).model
    report = None
    with bundle.staging_dir(options.out_dir, options.force) as staging:
        log.info("writing %s", options.out_dir)
        data_files = bundle.save_graph(model, staging, options.max_data_file_bytes)
        del model, decoder
        gc.collect()  # the traced graph referenced the decoder's tensors: free them before validating
        bundle.copy_model_files(options.model_dir, staging)
        vision = None
        if with_vision:
            vision = export_vision_files(options.model_dir, staging, config, vision_format(options))
        if options.validate:
            report = _validate(staging, spec, config, checkpoint, choice)
            (staging / VALIDATION_FILE).write_text(json.dumps(report, indent=2) + "\n")
        written: Manifest | layout_transformers_js.TransformersJsFolder
        if options.layout == layout_transformers_js.LAYOUT:
            written = layout_transformers_js.arrange(
                staging, data_files, config, spec, options.dtype, stop_ids
            )
        else:
            onnx.save(sampler_model(), str(staging / SAMPLER_FILE))
            written = _manifest(
                spec, _load_io(staging), options, data_files, staging, generation, choice, vision, stop_ids
            )
            bundle.write_manifest(staging, written)
    if report is not None and not report["passed"]:
        worst = report["worst"]
        raise ValidationFailedError(
            f"validation failed: max-abs {worst['max_abs']:.3g}, KL {worst['kl']:.3g}, greedy agreement "
            f"{worst['greedy_agreement']:.2f} (tolerance {report['tolerance']}); see "
            f"{options.out_dir / VALIDATION_FILE}"
        )
    return written


def _validate(
    staging: Path, spec: ModelFacts, config: dict[str, Any], checkpoint: Checkpoint, choice: formats.Choice
) -> dict[str, Any]:
    from qwen35web.export.reference import load_reference
    from qwen35web.export.validate import compare

    round_reference = choice.format.round_reference
    round_weights: Callable[[Any], None] | None = None
    if round_reference is not None:

        def round_weights(module: Any) -> None:  # the weights (and inputs) the graph computes with
            round_reference(module, choice.recipe)

    return compare(
        staging / MODEL_FILE,
        lambda: load_reference(spec, config, checkpoint),
        spec.vocab_size,
        (choice.format.name, choice.format.tolerance),
        round_weights,
        spec.eos_token_ids,
    )


def _load_io(staging: Path) -> ir.Model:
    # Only the graph's I/O is needed: load without the external weights.
    proto = onnx.load(str(staging / MODEL_FILE), load_external_data=False)
    return ir.serde.deserialize_model(proto)
