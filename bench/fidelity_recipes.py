"""The recipe candidates `make fidelity` measures, and the per-size default each format gets from them.

Rule (stated in qwen35web/export/formats.py, which holds the result): for each quantized format and
model size, the default is the candidate that meets both targets (+2 % perplexity, >= 95 % top-1
against PyTorch fp32) on the trained tiny model's held-out split, with the fewest weight bytes read
per decoded token at that size, among those whose largest tensor fits one WebGPU buffer (1 GiB);
of equal bytes (accuracy levels), the one listed first (level 4, the fastest kernel).
Only the tiny model is trained, so fidelity is measured there for every size; the bytes are
computed from each size's real config (bench/configs/).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.fidelity_scores import Score, meets_quantized_targets
from qwen35web.export.config import ModelSpec, read_config_json, spec_from_config
from qwen35web.export.formats import FORMATS, Recipe, size_class
from qwen35web.runtime.bundle_format import MAX_BUFFER_BYTES

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "models" / "tiny-qwen35"
CONFIGS = REPO / "bench" / "configs"


@dataclass(frozen=True)
class Candidate:
    dtype: str
    recipe: Recipe

    @property
    def name(self) -> str:
        """e.g. "q4-b16-int8", "q4-b16-float-acc1", "q8-float"."""
        parts = [self.dtype]
        if self.recipe.block_size is not None:
            parts.append(f"b{self.recipe.block_size}")
        parts.append(str(self.recipe.embedding))
        if self.recipe.accuracy_level not in (None, 4):
            parts.append(f"acc{self.recipe.accuracy_level}")
        return "-".join(parts)


def _nbits(dtype: str, block_size: int, embedding: str, accuracy_level: int = 4) -> Candidate:
    return Candidate(dtype, Recipe(block_size=block_size, accuracy_level=accuracy_level, embedding=embedding))


CANDIDATES = [
    *(_nbits("q4", block, embedding) for block in (16, 32) for embedding in ("int4", "int8", "float")),
    _nbits("q4", 64, "int8"),
    _nbits("q4", 16, "int8", accuracy_level=1),
    _nbits("q4", 16, "float", accuracy_level=1),
    *(_nbits("q4f16", 16, embedding) for embedding in ("int4", "int8", "float")),
    _nbits("q4f16", 32, "int8"),
    Candidate("q8", Recipe(embedding="int8")),
    Candidate("q8", Recipe(embedding="float")),
]


def size_specs() -> dict[str, ModelSpec]:
    """One config per size class: the tiny trained model and the four real Qwen3.5 shapes."""
    specs = [spec_from_config(read_config_json(TINY))]
    text_configs = sorted(CONFIGS.glob("qwen3_5-*b.json"))  # not the -vision.json towers beside them
    specs += [spec_from_config(json.loads(path.read_text())) for path in text_configs]
    by_size = {size_class(spec).name: spec for spec in specs}
    assert len(by_size) == len(specs), "two configs fall in one size class"
    return by_size


def costs(candidate: Candidate, specs: dict[str, ModelSpec]) -> dict[str, dict[str, int]]:
    """Per size: bytes per token, weight bytes, largest tensor."""
    weight_format = FORMATS[candidate.dtype]
    result = {}
    for size, spec in specs.items():
        cost = weight_format.cost(spec, candidate.recipe)
        result[size] = {
            "bytes_per_token": cost.bytes_per_token,
            "weight_bytes": cost.weight_bytes,
            "largest_tensor_bytes": cost.largest_tensor_bytes,
        }
    return result


def choose_defaults(scores: dict[str, Score], specs: dict[str, ModelSpec]) -> dict[str, dict[str, Any]]:
    """{dtype: {size: entry}} by the rule above; an entry names the candidate, or says none passed."""
    chosen: dict[str, dict[str, Any]] = {}
    for dtype in dict.fromkeys(c.dtype for c in CANDIDATES):
        measured = [c for c in CANDIDATES if c.dtype == dtype and c.name in scores]
        passing = [c for c in measured if meets_quantized_targets(scores[c.name])]
        chosen[dtype] = {}
        for size in specs:
            # Ties (accuracy levels cost the same bytes) go to the candidate listed first.
            fitting = [
                (cost[size]["bytes_per_token"], CANDIDATES.index(c), c, cost[size])
                for c in passing
                if (cost := costs(c, specs))[size]["largest_tensor_bytes"] <= MAX_BUFFER_BYTES
            ]
            if not fitting:
                chosen[dtype][size] = {"candidate": None, "reason": "no measured candidate passes and fits"}
                continue
            _, _, candidate, cost = min(fitting, key=lambda item: item[:2])
            name = candidate.name
            entry = scores[name]
            chosen[dtype][size] = {
                "candidate": name,
                "recipe": candidate.recipe.knobs(),
                **cost,
                "relative_perplexity_change": entry.relative_perplexity_change,
                "top1_agreement": entry.top1_agreement,
            }
    return chosen


def _gb(value: int) -> str:
    return f"{value / 1e9:.3f}" if value >= 1e8 else f"{value / 1e6:.2f} M"


def markdown(scores: dict[str, Score], chosen: dict[str, dict[str, Any]], specs: dict[str, ModelSpec]) -> str:
    sizes = list(specs)
    lines = [
        "## Default recipes by model size",
        "",
        "Chosen by the rule in bench/fidelity_recipes.py: meets +2 % perplexity and ≥ 95 % top-1 on the "
        "tiny model's held-out split (the only trained model), then the fewest weight bytes per decoded "
        "token at that size, largest tensor ≤ 1 GiB (one WebGPU buffer). Bytes per token: every "
        "projection, the LM head, the norms and one table row, as held at run time, from each size's "
        "config (GB unless marked M; tiny is models/tiny-qwen35, the others bench/configs/). The limit on "
        "the largest tensor is 1 GiB = 1.074 GB; for q8, the wasm format, the binding limit is the 4 GB wasm "
        "heap instead, which changes no choice here.",
        "",
        "| format | size | recipe | Δppl (tiny) | top-1 (tiny) | bytes/token | weights | largest tensor |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for dtype, by_size in chosen.items():
        for size, entry in by_size.items():
            if entry["candidate"] is None:
                lines.append(f"| {dtype} | {size} | — ({entry['reason']}) | | | | | |")
                continue
            lines.append(
                f"| {dtype} | {size} | {entry['candidate']} | {entry['relative_perplexity_change']:+.2e} "
                f"| {100 * entry['top1_agreement']:.2f} % | {_gb(entry['bytes_per_token'])} "
                f"| {_gb(entry['weight_bytes'])} | {_gb(entry['largest_tensor_bytes'])} |"
            )
    lines += [
        "",
        "## Candidates: fidelity on the tiny model, bytes per token at each size",
        "",
        "| candidate | Δppl | top-1 | targets | " + " | ".join(f"bytes/token {s}" for s in sizes) + " |",
        "|---|---:|---:|---|" + "---:|" * len(sizes),
    ]
    for candidate in CANDIDATES:
        entry = scores.get(candidate.name)
        if entry is None:
            continue
        per_size = costs(candidate, specs)
        cells = []
        for size in sizes:
            too_big = per_size[size]["largest_tensor_bytes"] > MAX_BUFFER_BYTES
            cells.append(_gb(per_size[size]["bytes_per_token"]) + (" (tensor > 1 GiB)" if too_big else ""))
        fidelity = f"{entry.relative_perplexity_change:+.2e} | {100 * entry.top1_agreement:.2f} %"
        target = "pass" if meets_quantized_targets(entry) else "miss"
        lines.append(f"| {candidate.name} | {fidelity} | {target} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
