"""Per-patch facts computed from `image_grid_thw` inside the graph: where each patch sits.

transformers precomputes these in Python loops (`vision_utils.get_vision_*`); here they are tensor
arithmetic over the patch index, so the traced graph is dynamic in the number of images and in
their grids. Patches arrive in the image processor's order: image by image, frame by frame, then
merge block by merge block (row-major over blocks), and row-major inside a block.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PatchLayout:
    """Int64 [N] tensors, one entry per patch."""

    row: torch.Tensor  # patch row within its frame
    col: torch.Tensor  # patch column within its frame
    height: torch.Tensor  # its frame's grid height (patches)
    width: torch.Tensor  # its frame's grid width (patches)
    segment: torch.Tensor  # global frame number: attention stays within a segment


def patch_layout(grid_thw: torch.Tensor, num_patches: int | torch.SymInt, merge: int) -> PatchLayout:
    """grid_thw int64 [I, 3] (t, h, w per image); num_patches = sum(t * h * w), the rows of pixel_values."""
    t, h, w = grid_thw[:, 0], grid_thw[:, 1], grid_thw[:, 2]  # [I]
    counts = t * h * w  # [I]
    ends = torch.cumsum(counts, dim=0)  # [I]
    # [N]; num_patches is symbolic while tracing (torch's stubs do not list SymInt)
    index = torch.arange(num_patches, dtype=torch.int64, device=grid_thw.device)  # type: ignore[arg-type]
    # A patch's image: how many images end at or before it ([N, I] compare, I is small).
    image = (index[:, None] >= ends[None, :]).sum(dim=1)  # [N]
    frame_size = (h * w)[image]  # [N]
    within = index - (ends - counts)[image]  # [N] index inside its image
    frame = torch.div(within, frame_size, rounding_mode="floor")
    position = within - frame * frame_size  # [N] index inside its frame
    width = w[image]
    blocks_w = torch.div(width, merge, rounding_mode="floor")
    block = torch.div(position, merge * merge, rounding_mode="floor")
    in_block = position - block * (merge * merge)
    block_row = torch.div(block, blocks_w, rounding_mode="floor")
    block_col = block - block_row * blocks_w
    in_row = torch.div(in_block, merge, rounding_mode="floor")
    in_col = in_block - in_row * merge
    frames_before = (torch.cumsum(t, dim=0) - t)[image]  # [N]
    return PatchLayout(
        row=block_row * merge + in_row,
        col=block_col * merge + in_col,
        height=h[image],
        width=width,
        segment=frames_before + frame,
    )


def _axis_taps(index: torch.Tensor, size: torch.Tensor, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear taps (align_corners=True) into a `side`-long axis for `index` on an axis of `size`.

    Returns int64 taps [N, 2] and float32 weights [N, 2]; the float steps follow transformers'
    `_interpolation_axis_taps_weights` so the weights are the same floats.
    """
    source = index.to(torch.float32) * (side - 1) / torch.clamp(size - 1, min=1).to(torch.float32)  # [N]
    floor = torch.floor(source)
    offsets = torch.arange(2, dtype=torch.int64, device=index.device)  # floor, floor + 1
    taps = torch.clamp(floor.to(torch.int64)[:, None] + offsets, 0, side - 1)  # [N, 2]
    distance = torch.abs(source[:, None] - floor[:, None] - offsets.to(torch.float32))
    weights = torch.clamp(1 - distance, min=0)  # [N, 2]
    return taps, weights


def interpolation_taps(layout: PatchLayout, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices int64 [N, 4] into the flattened side x side position table, and weights float32 [N, 4]."""
    row_taps, row_weights = _axis_taps(layout.row, layout.height, side)
    col_taps, col_weights = _axis_taps(layout.col, layout.width, side)
    indices = (row_taps[:, :, None] * side + col_taps[:, None, :]).reshape(-1, 4)
    weights = (row_weights[:, :, None] * col_weights[:, None, :]).reshape(-1, 4)
    return indices, weights


def rotary_inverse_frequencies(head_dim: int, theta: float) -> torch.Tensor:
    """float32 [head_dim / 4]: one set for rows and the same for columns (axial rotary)."""
    spatial = head_dim // 2
    return 1.0 / (theta ** (torch.arange(0, spatial, 2, dtype=torch.float32) / spatial))


def rotary_cos_sin(
    layout: PatchLayout, inverse_frequencies: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin float32 [N, head_dim]: [row freqs | col freqs] twice, for rotate-half pairs."""
    row = layout.row.to(torch.float32)[:, None] * inverse_frequencies  # [N, D/4]
    col = layout.col.to(torch.float32)[:, None] * inverse_frequencies  # [N, D/4]
    angles = torch.cat([row, col], dim=-1)  # [N, D/2]
    angles = torch.cat([angles, angles], dim=-1)  # [N, D]
    return angles.cos(), angles.sin()
