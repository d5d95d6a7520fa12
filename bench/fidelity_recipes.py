"""The recipe candidates `make fidelity` measures, and the per-size default each format gets from them.

Rule (the result is held in qwen35web/export/formats.py). Fidelity is measured on the trained tiny
model's held-out split for every size (the only trained model); bytes read per decoded token are
computed from each size's real config (bench/configs/); a candidate whose largest tensor does not fit
one WebGPU buffer (1 GiB) at a size is out at that size.

- q4 and q4f16 (issue 22), against the onnxruntime-genai builder's int4 for the same activations
  (bench.fidelity_builder: builder-int4 for q4, builder-int4-f16 for q4f16), per size:
  1. among the candidates at least as good as the builder on all three — relative perplexity change
     (<=), top-1 agreement with PyTorch fp32 (>=) and bytes per token at that size (<=) — the one
     with the fewest bytes;
  2. where none is: among those at least as faithful (the first two), the fewest bytes; the entry's
     `rule` says so;
  3. where none is even that (or the builder's row is missing): rule of q8 below.
- q8 (no builder peer): meets +2 % perplexity and >= 95 % top-1, then the fewest bytes.

Ties in bytes (accuracy levels) go to the candidate listed first (level 4, the fastest kernel).
Candidates the tiny model cannot hold (`unmeasurable`: a block that does not divide its widths) are
skipped and listed: their scores would be another recipe's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.fidelity_builder import BUILDER_RECIPES, recipe_cost
from bench.fidelity_scores import Score, meets_quantized_targets
from qwen35web.export.config import ModelSpec, read_config_json, spec_from_config
from qwen35web.export.formats import FORMATS, Recipe, size_class
from qwen35web.export.weight_sizes import weight_shapes
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


# Candidates (issue 22): blocks of 64 to 256 with an int8 table and head, and of 64 and 128 with an
# int4 one, read fewer bytes per token than the builder's int4 at some size (its blocks of 32 are
# symmetric: no zero points); blocks of 16 and 32 are the previous rule's, and b16-float is the
# recipe the table's wasm row runs. Left out since the previous table: float tables at block 32
# and for q4f16, and accuracy level 1 (the same bytes as level 4, not more faithful). Those the
# trained model cannot measure (`unmeasurable`: today blocks 128 and 256, its width is 192) are
# skipped and listed.
CANDIDATES = [
    *(_nbits("q4", 16, embedding) for embedding in ("int4", "int8", "float")),
    *(_nbits("q4", block, "int4") for block in (32, 64, 128)),
    *(_nbits("q4", block, "int8") for block in (32, 64, 128, 256)),
    *(_nbits("q4f16", block, "int4") for block in (16, 32, 64, 128)),
    *(_nbits("q4f16", block, "int8") for block in (16, 32, 64, 128)),
    Candidate("q8", Recipe(embedding="int8")),
    Candidate("q8", Recipe(embedding="float")),
]


def unmeasurable(candidate: Candidate, tiny: ModelSpec) -> str | None:
    """Why the trained model cannot measure this recipe, or None. Blocks that do not divide its
    width leave the table and head float (quantize_embedding needs D % block == 0) and pad the
    projections' last block: what it would score is another recipe than the one every real size
    gets (their widths are multiples of 256)."""
    block = candidate.recipe.block_size
    if block is None:
        return None
    widths = {tiny.hidden_size, *(k for k, _ in weight_shapes(tiny).projections)}
    if any(width % block for width in widths):
        return f"block {block} does not divide the trained model's widths {sorted(widths)}"
    return None


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


# How each default was chosen (an entry's "rule").
BEATS_BUILDER = "at least as good as the builder on Δppl, top-1 and bytes/token; fewest bytes"
NONE_BEATS_BUILDER = (
    "none is at least as good as the builder on all three: fidelity at least the builder's, fewest bytes"
)
NOTHING_AS_FAITHFUL = "none is as faithful as the builder: the targets, fewest bytes"
TARGETS = "meets +2 % Δppl and 95 % top-1; fewest bytes"


def _as_faithful(entry: Score, peer: Score) -> bool:
    return (
        entry.relative_perplexity_change <= peer.relative_perplexity_change
        and entry.top1_agreement >= peer.top1_agreement
    )


def _fewest_bytes(pool: list[tuple[Candidate, dict[str, int]]]) -> tuple[Candidate, dict[str, int]] | None:
    """Ties (accuracy levels cost the same bytes) go to the candidate listed first."""
    ranked = sorted(pool, key=lambda item: (item[1]["bytes_per_token"], CANDIDATES.index(item[0])))
    return ranked[0] if ranked else None


def _pick(
    dtype: str, size: str, scores: dict[str, Score], specs: dict[str, ModelSpec], peer: Score | None
) -> tuple[tuple[Candidate, dict[str, int]] | None, str]:
    """(candidate, its cost at `size`) by the rule above, and which branch of the rule chose it."""
    fitting = [
        (c, cost[size])
        for c in CANDIDATES
        if c.dtype == dtype and c.name in scores and not scores[c.name].error
        if (cost := costs(c, specs))[size]["largest_tensor_bytes"] <= MAX_BUFFER_BYTES
    ]
    if peer is not None:
        recipe = next(r for r in BUILDER_RECIPES if r.name == peer.bundle)
        peer_bytes = recipe_cost(recipe, specs[size]).bytes_per_token
        faithful = [(c, cost) for c, cost in fitting if _as_faithful(scores[c.name], peer)]
        beating = [(c, cost) for c, cost in faithful if cost["bytes_per_token"] <= peer_bytes]
        if beating:
            return _fewest_bytes(beating), BEATS_BUILDER
        if faithful:
            return _fewest_bytes(faithful), NONE_BEATS_BUILDER
    passing = [(c, cost) for c, cost in fitting if meets_quantized_targets(scores[c.name])]
    return _fewest_bytes(passing), TARGETS if peer is None else NOTHING_AS_FAITHFUL


def choose_defaults(
    scores: dict[str, Score], specs: dict[str, ModelSpec], builder: dict[str, Score]
) -> dict[str, dict[str, Any]]:
    """{dtype: {size: entry}} by the rule above; an entry names the candidate, or says none qualified.

    `builder`: the builder's rows by recipe name (bench.fidelity_builder); a format whose builder
    row is missing or failed is chosen by the targets alone, and its entries say so.
    """
    chosen: dict[str, dict[str, Any]] = {}
    for dtype in dict.fromkeys(c.dtype for c in CANDIDATES):
        peers = [builder[r.name] for r in BUILDER_RECIPES if r.compares_with == dtype and r.name in builder]
        peer = next((p for p in peers if not p.error), None)
        chosen[dtype] = {}
        for size in specs:
            picked, rule = _pick(dtype, size, scores, specs, peer)
            if picked is None:
                chosen[dtype][size] = {
                    "candidate": None,
                    "reason": "no measured candidate qualifies and fits",
                }
                continue
            candidate, cost = picked
            entry = scores[candidate.name]
            chosen[dtype][size] = {
                "candidate": candidate.name,
                "recipe": candidate.recipe.knobs(),
                "rule": rule,
                **cost,
                "relative_perplexity_change": entry.relative_perplexity_change,
                "top1_agreement": entry.top1_agreement,
                "meets_targets": meets_quantized_targets(entry),
            }
            if peer is not None:
                chosen[dtype][size]["builder"] = _builder_entry(peer, specs[size])
    return chosen


def _builder_entry(peer: Score, spec: ModelSpec) -> dict[str, Any]:
    recipe = next(r for r in BUILDER_RECIPES if r.name == peer.bundle)
    cost = recipe_cost(recipe, spec)
    return {
        "name": recipe.name,
        "bytes_per_token": cost.bytes_per_token,
        "weight_bytes": cost.weight_bytes,
        "relative_perplexity_change": peer.relative_perplexity_change,
        "top1_agreement": peer.top1_agreement,
    }


def _gb(value: int) -> str:
    return f"{value / 1e9:.3f}" if value >= 1e8 else f"{value / 1e6:.2f} M"


def _fidelity_cells(entry: dict[str, Any]) -> str:
    return f"{entry['relative_perplexity_change']:+.2e} | {100 * entry['top1_agreement']:.2f} %"


def markdown(
    scores: dict[str, Score],
    chosen: dict[str, dict[str, Any]],
    specs: dict[str, ModelSpec],
    skipped: dict[str, str] | None = None,
) -> str:
    sizes = list(specs)
    lines = [
        "## Default recipes by model size",
        "",
        "Chosen by the rule in bench/fidelity_recipes.py. q4 and q4f16 (issue 22): beside the "
        "onnxruntime-genai builder's int4 recipe for the same activations (rows builder-int4 and "
        "builder-int4-f16 above), the candidate with the fewest bytes per token among those at least as "
        "good as the builder on relative Δppl, top-1 and bytes per token at that size; where none is, "
        "the fewest bytes among those at least as faithful as the builder (Δppl and top-1), and the "
        "`rule` column says so. q8 (no builder peer): meets +2 % Δppl and ≥ 95 % top-1, then the fewest "
        "bytes. Always: largest tensor ≤ 1 GiB (one WebGPU buffer). Fidelity is measured on the tiny "
        "model's held-out split (the only trained model) for every size. Bytes per token: every "
        "projection, the LM head, the norms and one table row, as held at run time, from each size's "
        "config (GB unless marked M; tiny is models/tiny-qwen35, the others bench/configs/); the "
        "builder's from what its graphs hold (bench/fidelity_builder.py). For q8, the wasm format, the "
        "binding limit is the 4 GB wasm heap instead of 1 GiB, which changes no choice here.",
        "",
        "| format | size | recipe | Δppl (tiny) | top-1 (tiny) | bytes/token | weights | largest tensor "
        "| builder bytes/token | ours / builder bytes | rule |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for dtype, by_size in chosen.items():
        for size, entry in by_size.items():
            if entry["candidate"] is None:
                lines.append(f"| {dtype} | {size} | — ({entry['reason']}) | | | | | | | | |")
                continue
            peer = entry.get("builder")
            versus = (
                f"{_gb(peer['bytes_per_token'])} | {entry['bytes_per_token'] / peer['bytes_per_token']:.3f}"
                if peer
                else "— | —"
            )
            lines.append(
                f"| {dtype} | {size} | {entry['candidate']} | {_fidelity_cells(entry)} "
                f"| {_gb(entry['bytes_per_token'])} | {_gb(entry['weight_bytes'])} "
                f"| {_gb(entry['largest_tensor_bytes'])} | {versus} | {entry['rule']} |"
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
    lines += _builder_rows(scores, specs)
    if skipped:
        lines += ["", "Not measured (the trained model cannot hold these recipes):", ""]
        lines += [f"- {name}: {reason}" for name, reason in skipped.items()]
    return "\n".join(lines) + "\n"


def _builder_rows(scores: dict[str, Score], specs: dict[str, ModelSpec]) -> list[str]:
    """The builder's recipes as candidate rows, then how its bytes were counted."""
    rows, notes = [], []
    for recipe in BUILDER_RECIPES:
        entry = scores.get(recipe.name)
        if entry is None or entry.error:
            continue
        cells = [_gb(recipe_cost(recipe, spec).bytes_per_token) for spec in specs.values()]
        fidelity = f"{entry.relative_perplexity_change:+.2e} | {100 * entry.top1_agreement:.2f} %"
        target = "pass" if meets_quantized_targets(entry) else "miss"
        rows.append(f"| {recipe.name} (peer) | {fidelity} | {target} | " + " | ".join(cells) + " |")
        counted = (entry.recipe or {}).get("graph_bytes_per_token")
        formula = recipe_cost(recipe, specs["tiny"]).bytes_per_token
        notes.append(
            f"- {recipe.name}: {recipe.label()}. Its tiny graph holds {counted} bytes read per token "
            "(initializers; tables and rotary caches one row); the formula used at every size gives "
            f"{formula}."
        )
    return [*rows, "", *notes] if notes else rows
