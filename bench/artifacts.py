"""Build the benchmark's checkpoints and exports (this project's and onnxruntime-genai's), cached on disk.

Each model shape gets two random checkpoints from the same seed: the text layout this project exports
and the `Qwen3_5ForConditionalGeneration` (vl) layout the genai builder needs. Same seed, same
config, so both hold the same text weights. A finished directory is reused; delete it to rebuild.
"""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

REAL_CONFIGS = Path(__file__).resolve().parent / "configs"
MODEL_CONFIGS: dict[str, Path | None] = {"tiny": None, "0.8b": REAL_CONFIGS / "qwen3_5-0.8b.json"}


@dataclass(frozen=True)
class Variant:
    """One exported graph to time: `engine` says which graph I/O convention it follows."""

    name: str  # e.g. "fused-fp32", "genai-int4"
    engine: str  # "ours" | "genai"
    model_path: Path  # model.onnx
    checkpoint: Path  # the text-layout checkpoint (for config lookups)


def _run(args: list[str], log_path: Path) -> bool:
    log.info("running %s", " ".join(args))
    with log_path.open("w") as sink:
        result = subprocess.run(args, stdout=sink, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        log.warning("failed (rc=%d), see %s", result.returncode, log_path)
    return result.returncode == 0


def build_checkpoint(out: Path, model: str, layout: str) -> Path:
    if (out / "model.safetensors").exists():
        return out
    args = [sys.executable, "-m", "devtools.random_checkpoint", str(out), "--layout", layout]
    config = MODEL_CONFIGS[model]
    if config is not None:
        args += ["--config", str(config)]
    if not _run(args, out.parent / f"{out.name}.log"):
        raise RuntimeError(f"random checkpoint {out} failed")
    return out


def project_supports_q4() -> bool:
    """q4 is being added by another engineer: only use it if the CLI accepts it."""
    help_text = subprocess.run(
        [sys.executable, "-m", "qwen35web", "export", "--help"], capture_output=True, text=True, check=False
    ).stdout
    return "q4" in help_text


def genai_available() -> bool:
    return importlib.util.find_spec("onnxruntime_genai") is not None


def export_ours(text_ckpt: Path, out: Path, ops: str, dtype: str, *extra: str) -> Path | None:
    if not (out / "model.onnx").exists():
        args = [
            sys.executable,
            "-m",
            "qwen35web",
            "export",
            str(text_ckpt),
            str(out),
            "--ops",
            ops,
            "--dtype",
            dtype,
            "--logits",
            "last",  # what generation needs; the genai graphs compute every position's logits
            "--force",
            *extra,
        ]
        if not _run(args, out.parent / f"{out.name}.log"):
            return None
    return out / "model.onnx"


def _genai(vl_ckpt: Path, out: Path, precision: str) -> Path | None:
    if not (out / "model.onnx").exists():
        args = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(vl_ckpt), "-o", str(out)]
        args += ["-p", precision, "-e", "cpu"]
        if not _run(args, out.parent / f"{out.name}.log"):
            return None
    return out / "model.onnx"


def project_bundle(root: Path, model: str, name: str, ops: str, dtype: str, *extra: str) -> Path | None:
    """One of this project's bundles for a model shape (checkpoint and export cached under root)."""
    base = root / model
    base.mkdir(parents=True, exist_ok=True)
    text_ckpt = build_checkpoint(base / "ckpt-text", model, "text")
    model_path = export_ours(text_ckpt, base / name, ops, dtype, *extra)
    return model_path.parent if model_path is not None else None


def build_variants(root: Path, model: str, with_genai: bool = True) -> tuple[Path, list[Variant]]:
    """Checkpoints + every export for one model shape; returns (text checkpoint, variants that built)."""
    base = root / model
    base.mkdir(parents=True, exist_ok=True)
    text_ckpt = build_checkpoint(base / "ckpt-text", model, "text")
    plans: list[tuple[str, str, Path | None]] = [
        ("fused-fp32", "ours", export_ours(text_ckpt, base / "fused-fp32", "fused", "fp32")),
        ("portable-fp32", "ours", export_ours(text_ckpt, base / "portable-fp32", "portable", "fp32")),
    ]
    if project_supports_q4():
        plans.append(("fused-q4", "ours", export_ours(text_ckpt, base / "fused-q4", "fused", "q4")))
    plans.append(("fused-q8", "ours", export_ours(text_ckpt, base / "fused-q8", "fused", "q8")))
    # The wasm recipe: int8 projections, the tied embedding/head once as fp16 E^T computed in fp32.
    head = (
        "fused-q8-fp16head",
        "ours",
        export_ours(text_ckpt, base / "fused-q8-fp16head", "fused", "q8", "--keep-float-embedding"),
    )
    plans.append(head)
    if with_genai and genai_available():
        vl_ckpt = build_checkpoint(base / "ckpt-vl", model, "vl")
        plans.append(("genai-fp32", "genai", _genai(vl_ckpt, base / "genai-fp32", "fp32")))
        plans.append(("genai-int4", "genai", _genai(vl_ckpt, base / "genai-int4", "int4")))
    variants = [Variant(name, engine, path, text_ckpt) for name, engine, path in plans if path is not None]
    return text_ckpt, variants
