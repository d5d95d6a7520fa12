"""The checkpoint's multi-token-prediction head (`mtp.*`), which the bundle leaves out.

Published Qwen3.5 checkpoints carry one MTP layer for speculative decoding; transformers does not
load it and the bundle's decoder does not use it, so its tensors are never read. Their shapes are
still checked against the text model's, and a mismatch is a warning (one line), not an error:
nothing exported depends on them, but a converter that mangled them may have mangled more.
"""

from __future__ import annotations

import logging

from qwen35web.export.checkpoint import Checkpoint
from qwen35web.runtime.bundle_format import ModelFacts
from qwen35web.runtime.graph_io import FULL_ATTENTION

log = logging.getLogger(__name__)

PREFIX = "mtp."


def expected_mtp_shapes(spec: ModelFacts, checkpoint: Checkpoint) -> dict[str, tuple[int, ...]]:
    """fc([embedding; hidden]) [H, 2H], three norms [H], and one full-attention decoder layer whose
    tensors have the shapes of the text model's first full-attention layer."""
    hidden = spec.hidden_size
    shapes: dict[str, tuple[int, ...]] = {
        "mtp.fc.weight": (hidden, 2 * hidden),
        "mtp.norm.weight": (hidden,),
        "mtp.pre_fc_norm_embedding.weight": (hidden,),
        "mtp.pre_fc_norm_hidden.weight": (hidden,),
    }
    if FULL_ATTENTION in spec.layer_types:
        layer = f"{spec.weight_prefix}layers.{spec.layer_types.index(FULL_ATTENTION)}."
        for name, entry in checkpoint.entries.items():
            if name.startswith(layer):
                shapes["mtp.layers.0." + name.removeprefix(layer)] = entry.shape
    return shapes


def check_mtp(spec: ModelFacts, checkpoint: Checkpoint) -> list[str]:
    """The MTP tensors whose shapes do not fit the text model (logged as one warning); [] when none."""
    present = {name: entry.shape for name, entry in checkpoint.entries.items() if name.startswith(PREFIX)}
    if not present:
        return []
    expected = expected_mtp_shapes(spec, checkpoint)
    odd = [
        f"{name} {list(shape)}"
        for name, shape in sorted(present.items())
        if name.startswith("mtp.layers.0.") or name in expected
        if expected.get(name) != shape
    ]
    if odd:
        log.warning(
            "the checkpoint's MTP head (not exported) has %d tensor(s) of unexpected shape, first %s",
            len(odd),
            odd[0],
        )
    return odd
