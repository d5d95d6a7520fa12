"""The whole decoder as one graph-shaped module: (ids, mask, positions, *past) -> (logits, *present)."""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from qwen35web.export.checkpoint import Checkpoint
from qwen35web.export.modeling import DecoderLayer, ZeroCenteredRMSNorm
from qwen35web.runtime.bundle_format import ModelFacts

log = logging.getLogger(__name__)


class TextModel(nn.Module):
    def __init__(self, spec: ModelFacts):
        super().__init__()
        self.embed_tokens = nn.Embedding(spec.vocab_size, spec.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(spec, t) for t in spec.layer_types)
        self.norm = ZeroCenteredRMSNorm(spec.hidden_size, spec.rms_norm_eps)


def rotary_inv_freq(spec: ModelFacts) -> torch.Tensor:
    """Inverse frequencies of the rotary part of each head (same float32 arithmetic as transformers)."""
    dim = spec.rotary_dim
    return 1.0 / (spec.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))


def mrope_rows(spec: ModelFacts) -> list[int]:
    """The position row (0 t, 1 h, 2 w) each rotary frequency reads, as transformers interleaves them.

    transformers' Qwen3.5 computes the angles of all three rows and then, for rows 1 and 2, overwrites
    frequencies offset, offset+3, ... below 3 * mrope_section[row] with that row's angles: with
    section (11, 11, 10) frequency j reads row j % 3 up to j = 32, so t h w t h w ... (rows clip at
    rot/2 frequencies, as Python slices do).
    """
    rows = [0] * (spec.rotary_dim // 2)
    for row in (1, 2):
        for j in range(row, min(3 * spec.mrope_section[row], len(rows)), 3):
            rows[j] = row
    return rows


def set_rotary_buffers(decoder: Qwen35Decoder) -> None:
    """The rotary tables are computed, never read from a checkpoint (also for a fake decoder)."""
    decoder.inv_freq = rotary_inv_freq(decoder.spec)
    decoder.mrope_rows = torch.tensor(mrope_rows(decoder.spec), dtype=torch.long)


class Qwen35Decoder(nn.Module):
    """Graph-shaped Qwen3.5 text decoder; `state_dict()` names follow `Qwen3_5ForCausalLM`."""

    def __init__(self, spec: ModelFacts):
        super().__init__()
        self.spec = spec
        self.model = TextModel(spec)
        if not spec.tie_word_embeddings:
            self.lm_head = nn.Linear(spec.hidden_size, spec.vocab_size, bias=False)
        self.inv_freq: torch.Tensor
        self.mrope_rows: torch.Tensor
        self.register_buffer("inv_freq", rotary_inv_freq(spec), persistent=False)
        self.register_buffer("mrope_rows", torch.tensor(mrope_rows(spec), dtype=torch.long), persistent=False)
        # Generation only ever samples from the last position: computing the head for it alone
        # skips a [T, D] x [D, V] product in prefill (a third of a 0.8B wasm prefill).
        self.last_position_only = False
        # A vision bundle's decoder: set, the graph takes image_embeds after position_ids and puts
        # them where input_ids holds this id (graph_io.IMAGE_EMBEDS).
        self.image_token_id: int | None = None

    def _rope(self, position_ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin [B, 1, T, rot] from position_ids [3, B, T] (MRoPE rows t, h, w), interleaved.

        Each frequency j takes its angle from row mrope_rows[j]: picking the position first and
        multiplying once is the same float32 product transformers picks after computing all three.
        For text the rows are equal and this is plain RoPE.
        """
        rows = position_ids.index_select(0, self.mrope_rows)  # [rot/2, B, T]
        freqs = rows.permute(1, 2, 0).float() * self.inv_freq  # [B, T, rot/2]
        emb = torch.cat((freqs, freqs), dim=-1).unsqueeze(1)  # [B, 1, T, rot]
        # Angles in fp32 (positions reach 262k), applied in the activations' dtype as transformers does.
        return emb.cos().to(dtype), emb.sin().to(dtype)

    @staticmethod
    def _attention_bias(attention_mask: torch.Tensor, seq: int) -> torch.Tensor:
        """Additive bias [B, 1, T, P+T]: causal within the window, padding keys masked."""
        total = attention_mask.shape[1]
        query_pos = torch.arange(seq, device=attention_mask.device) + (total - seq)  # [T]
        key_pos = torch.arange(total, device=attention_mask.device)  # [P+T]
        allowed = (key_pos.unsqueeze(0) <= query_pos.unsqueeze(1)).unsqueeze(0).unsqueeze(0)
        allowed = allowed & (attention_mask > 0).unsqueeze(1).unsqueeze(1)  # [B, 1, T, P+T]
        zero = torch.zeros((), dtype=torch.float32)
        return torch.where(allowed, zero, torch.finfo(torch.float32).min)

    def _merge_images(
        self, input_ids: torch.Tensor, x: torch.Tensor, image_embeds: torch.Tensor
    ) -> torch.Tensor:
        """x [B, T, D] with the image-pad tokens' rows replaced by image_embeds [N, D], in order.

        The n-th pad token (row-major over [B, T]) takes row n. Pad tokens past the N rows keep their
        token embedding, as transformers' model embeds them when it is given no pixels (a text-only
        call, or a pad id the model itself generated); a zero row appended keeps the gather valid."""
        assert self.image_token_id is not None
        is_image = torch.eq(input_ids, self.image_token_id).flatten()  # [B*T]
        rows = torch.cat((image_embeds.to(x.dtype), x.new_zeros((1, x.shape[-1]))), 0)  # [N + 1, D]
        order = torch.cumsum(is_image.to(torch.long), 0) - 1  # [B*T]
        covered = is_image & (order < image_embeds.shape[0])  # [B*T]
        index = torch.where(covered, order, image_embeds.shape[0])  # [B*T]
        picked = rows.index_select(0, index).reshape(x.shape)  # [B, T, D]
        return torch.where(covered.reshape(input_ids.shape).unsqueeze(-1), picked, x)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        *rest: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        seq = input_ids.shape[1]
        x = self.model.embed_tokens(input_ids)  # [B, T, D]
        past = rest
        if self.image_token_id is not None:
            x, past = self._merge_images(input_ids, x, rest[0]), rest[1:]
        token_mask = attention_mask[:, attention_mask.shape[1] - seq :].to(x.dtype)  # [B, T]
        rope = self._rope(position_ids, x.dtype)
        attn_bias = self._attention_bias(attention_mask, seq)
        present: list[torch.Tensor] = []
        for i, layer in enumerate(self.model.layers):
            x, new_state = layer(x, token_mask, rope, attn_bias, (past[2 * i], past[2 * i + 1]))
            present.extend(new_state)
        if self.last_position_only:
            x = x[:, -1:, :]  # [B, 1, D]; inputs are left-padded, so this is every row's last token
        x = self.model.norm(x)
        head = self.model.embed_tokens.weight if self.spec.tie_word_embeddings else self.lm_head.weight
        logits = F.linear(x, head).float()  # [B, T, V], or [B, 1, V] with last_position_only
        return (logits, *present)


def checkpoint_name(spec: ModelFacts, name: str) -> str:
    """Our parameter name -> the checkpoint's (the text model sits under a layout-dependent prefix)."""
    return spec.weight_prefix + name.removeprefix("model.") if name.startswith("model.") else name


def load_decoder(
    spec: ModelFacts, checkpoint: Checkpoint, dtype: torch.dtype = torch.float32
) -> Qwen35Decoder:
    """Build on the meta device, check every tensor's shape, then read the weights one by one."""
    with torch.device("meta"):
        decoder = Qwen35Decoder(spec)
    expected = {checkpoint_name(spec, n): tuple(p.shape) for n, p in decoder.named_parameters()}
    checkpoint.check_expected(expected)
    names = list(decoder.named_parameters())
    for name, param in tqdm(names, desc="loading weights", unit="tensor", disable=None, leave=False):
        tensor = checkpoint.load(checkpoint_name(spec, name), dtype)
        module_name, _, attr = name.rpartition(".")
        setattr(decoder.get_submodule(module_name), attr, nn.Parameter(tensor, requires_grad=False))
        del param
    set_rotary_buffers(decoder)
    log.info("loaded %d tensors from %s", len(expected), checkpoint.model_dir)
    return decoder.eval()
