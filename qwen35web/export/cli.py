"""`qwen35web export MODEL OUT_DIR [--ops fused|portable] [--dtype ...] [--validate] [--force]`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from qwen35web.cli_support import OneLineParser, fail
from qwen35web.export.errors import ExportError
from qwen35web.export.formats import FORMATS, VISION_FORMATS, default_help
from qwen35web.export.model_source import resolve_model
from qwen35web.export.pipeline import LAYOUTS, ExportOptions, run_export
from qwen35web.export.quantization.nbits import ACCURACY_LEVELS, EMBEDDING_BITS
from qwen35web.runtime.bundle_format import LOGITS, OPS

log = logging.getLogger("qwen35web.export")


def build_parser(prog: str = "qwen35web export") -> argparse.ArgumentParser:
    parser = OneLineParser(prog=prog, description="Export a Qwen3.5 checkpoint to an ONNX bundle.")
    parser.add_argument(
        "model",
        help="a Hugging Face checkpoint directory, or a Hub repo id such as Qwen/Qwen3.5-0.8B "
        "(downloaded, or read from the local cache with HF_HUB_OFFLINE=1)",
    )
    parser.add_argument("out_dir", type=Path, help="bundle directory to create")
    parser.add_argument(
        "--ops",
        choices=OPS,
        default="fused",
        help="fused: onnxruntime contrib kernels (default); portable: ONNX function bodies; webgpu: "
        "fused with the delta rule on GatedDeltaNet, which only onnxruntime-web's WebGPU backend runs",
    )
    parser.add_argument(
        "--dtype",
        choices=list(FORMATS),
        default="fp32",
        help="weights (default fp32): " + "; ".join(f"{f.name}: {f.summary}" for f in FORMATS.values()),
    )
    parser.add_argument(
        "--logits",
        choices=LOGITS,
        default="all",
        help="all: logits [B, T, V] (validation, perplexity); last: [B, 1, V], faster prefill for generation",
    )
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="bundle",
        help="bundle: this project's (default); transformers.js: a folder @huggingface/transformers "
        "4.3 loads as a text model (onnx/model<dtype suffix>.onnx, config.json for it; no manifest)",
    )
    parser.add_argument(
        "--validate", action="store_true", help="compare with PyTorch; exit 3 above tolerance"
    )
    _add_recipe_arguments(parser)
    parser.add_argument(
        "--revision", default=None, help="with a repo id: the branch, tag or commit to export"
    )
    parser.add_argument("--force", action="store_true", help="replace OUT_DIR if it exists")
    parser.add_argument(
        "--text-only",
        action="store_true",
        help="leave a vision-language checkpoint's vision tower out (a text-only bundle)",
    )
    parser.add_argument(
        "--vision-dtype",
        choices=("auto", *VISION_FORMATS),
        default="auto",
        help="the vision graph's weight format (auto: fp32 beside fp32, fp16 beside the WebGPU formats "
        "fp16/q4f16, else q8: bench/results/vision.md)",
    )
    parser.add_argument(
        "--generation-config",
        type=Path,
        default=None,
        metavar="FILE",
        help="a generation_config.json whose eos ids and sampling settings the bundle records instead of "
        "the checkpoint's (or, where it has none, the Qwen3.5 model card's)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    return parser


def _add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """The quantized formats' knobs; each left out takes the registry's default for the model's size."""
    parser.add_argument(
        "--block-size",
        type=int,
        default=None,
        help=f"int4 block size along K (q4, q4f16); {default_help('block_size')}",
    )
    parser.add_argument(
        "--accuracy-level",
        type=int,
        default=None,
        choices=ACCURACY_LEVELS,
        help="MatMulNBits compute type: 1 fp32, 2 fp16, 4 int8 (q4, q4f16); "
        + default_help("accuracy_level"),
    )
    parser.add_argument(
        "--embedding",
        choices=list(EMBEDDING_BITS),
        default=None,
        help="the token table and LM head, stored once when tied: int4/int8 blocks or float (q4, q4f16), "
        f"int8 columns or float (q8); {default_help('embedding')}",
    )
    parser.add_argument(
        "--keep-float-embedding",
        action="store_true",
        help="the same as --embedding float (q4, q4f16, q8)",
    )


def _embedding(args: argparse.Namespace) -> str | None:
    if not args.keep_float_embedding:
        return args.embedding
    if args.embedding not in (None, "float"):
        fail(f"--keep-float-embedding contradicts --embedding {args.embedding}")
    return "float"


def main(argv: list[str] | None = None, prog: str = "qwen35web export") -> int:
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr, force=True)
    log.setLevel(logging.INFO)
    try:
        run_export(_options(args, resolve_model(args.model, args.revision)))
    except ExportError as err:
        sys.stderr.write(f"error: {err}\n")
        return err.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted; nothing was written\n")
        return 130
    except Exception as err:  # a bug of ours: still one line, unless asked for the traceback
        if args.debug:
            raise
        sys.stderr.write(f"error: internal error: {type(err).__name__}: {err} (rerun with --debug)\n")
        return 1
    files = [path for path in args.out_dir.rglob("*") if path.is_file()]
    size = sum(path.stat().st_size for path in files)
    log.info("wrote %s (%d files, %.1f MB)", args.out_dir, len(files), size / 1e6)
    return 0


def _options(args: argparse.Namespace, model_dir: Path) -> ExportOptions:
    return ExportOptions(
        model_dir,
        args.out_dir,
        args.ops,
        args.dtype,
        args.validate,
        args.force,
        block_size=args.block_size,
        accuracy_level=args.accuracy_level,
        embedding=_embedding(args),
        logits=args.logits,
        layout=args.layout,
        text_only=args.text_only,
        vision_dtype=args.vision_dtype,
        generation_config=args.generation_config,
    )
