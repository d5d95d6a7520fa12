"""One sequence's trip through the graph: states in, presents out, fed back as the next pasts.

The runner owns every tensor it creates and releases each one as soon as it is replaced, so a
long generation holds exactly one set of states (on the GPU for WebGPU) and one logits tensor.
"""

from __future__ import annotations

from qwen35web.runtime import graph_io as io
from qwen35web.runtime.bundle_format import Manifest
from qwen35web.runtime.engine import MODEL_ROLE, SAMPLER_ROLE, Engine, Tensor
from qwen35web.runtime.errors import GenerationInputError
from qwen35web.runtime.penalties import OLD_SAMPLER

Positions = list[list[int]]  # MRoPE rows [3][T]: temporal, height, width


class ModelRunner:
    def __init__(self, engine: Engine, manifest: Manifest):
        self.engine = engine
        self.state_specs = manifest.past_states()
        self.present_names = [s.present for s in self.state_specs]
        self.past_len = 0  # tokens the states hold (the KV cache's length)
        self.next_position = 0  # where text continues: one past the largest position fed so far
        self.token_ids: list[int] = []  # what the states hold, in order (prefix_cache matches on it)
        self.states: list[Tensor] = []
        self.logits: Tensor | None = None
        # A vision bundle's decoder takes image_embeds [N, hidden] on every call (0 rows: none).
        self.image_width = manifest.model.hidden_size if manifest.vision is not None else None
        # Samplers exported before presence/frequency penalties take no additive biases.
        self.sampler_takes_biases = io.SAMPLER_BIAS_IDS in {s.name for s in manifest.sampler.io.inputs}

    def reset(self) -> None:
        """Forget the sequence: zero states, empty KV cache."""
        self._release_all()
        self.states = [self.engine.zeros(s.dtype, s.dims(batch=1)) for s in self.state_specs]
        self.past_len = 0
        self.next_position = 0
        self.token_ids = []

    def load_state(
        self,
        states: list[Tensor],
        logits: Tensor | None,
        token_ids: list[int],
        next_position: int | None = None,
    ) -> None:
        """Continue from states that hold `token_ids` (a kept state's); the runner now owns them.

        `next_position` is where positions continue (text-only: the token count)."""
        self._release_all()
        self.states, self.logits = states, logits
        self.token_ids = list(token_ids)
        self.past_len = len(token_ids)
        self.next_position = len(token_ids) if next_position is None else next_position

    def _release_all(self) -> None:
        for tensor in self.states:
            self.engine.release(tensor)
        self.states = []
        if self.logits is not None:
            self.engine.release(self.logits)
            self.logits = None

    async def forward(
        self,
        ids: list[int],
        positions: Positions | None = None,
        image_embeds: Tensor | None = None,
        keys: list[int] | None = None,
    ) -> None:
        """Run `ids` after what the states hold; keeps the logits [1, T, V] for sampling.

        `positions` are the new tokens' MRoPE rows [3][T] (an image's tokens have distinct rows);
        by default text, whose three rows count on from `next_position`. Text fed afterwards
        continues one past the largest position, as transformers' Qwen3.5 does after an image.
        `image_embeds` [N, hidden] float32: the features of this call's N image-pad tokens, in order
        (the caller keeps ownership). `keys` is what `token_ids` records for these tokens (default
        the ids; an image's pad tokens are recorded as its key, see vision.images).
        """
        if not self.states:
            self.reset()
        seq, past = len(ids), self.past_len
        rows = io.text_positions(self.next_position, seq) if positions is None else positions
        if len(rows) != io.MROPE_ROWS or any(len(row) != seq for row in rows):
            raise GenerationInputError(f"positions must be {io.MROPE_ROWS} rows of {seq} ints, one per token")
        inputs = {
            io.INPUT_IDS: self.engine.int64(ids, [1, seq]),
            io.ATTENTION_MASK: self.engine.ones_int64([1, past + seq]),
            io.POSITION_IDS: self.engine.int64([p for row in rows for p in row], [io.MROPE_ROWS, 1, seq]),
        }
        feeds = dict(inputs)
        if self.image_width is not None:
            if image_embeds is None:
                inputs[io.IMAGE_EMBEDS] = image_embeds = self.engine.zeros("float32", [0, self.image_width])
            feeds[io.IMAGE_EMBEDS] = image_embeds
        elif image_embeds is not None:
            raise GenerationInputError("this bundle takes no images (exported text-only)")
        feeds.update({spec.name: state for spec, state in zip(self.state_specs, self.states, strict=True)})
        outputs = await self.engine.run(MODEL_ROLE, feeds, [io.LOGITS, *self.present_names])
        self._release_all()
        for tensor in inputs.values():
            self.engine.release(tensor)
        self.states = [outputs[name] for name in self.present_names]
        self.logits = outputs[io.LOGITS]
        self.past_len = past + seq
        self.next_position = max([self.next_position, *(p + 1 for row in rows for p in row)])
        self.token_ids.extend(ids if keys is None else keys)

    async def candidates(
        self,
        k: int,
        temperature: float,
        penalty: float,
        penalty_ids: list[int],
        biases: tuple[list[int], list[float]] = ([], []),
    ) -> tuple[list[float], list[int], float]:
        """The k best next tokens after the last forward: scaled logits, ids, log-normaliser.
        `biases`: (distinct ids, amounts subtracted from their logits) before the temperature."""
        assert self.logits is not None, "forward() first"
        ids = penalty_ids if penalty != 1.0 and penalty_ids else [0]
        feeds = {
            io.SAMPLER_LOGITS: self.logits,
            io.SAMPLER_PENALTY_IDS: self.engine.int64(ids, [1, len(ids)]),
            io.SAMPLER_PENALTY: self.engine.float32([penalty], [1]),
            io.SAMPLER_TEMPERATURE: self.engine.float32([temperature], [1]),
            io.SAMPLER_K: self.engine.int64([k], [1]),
        }
        if self.sampler_takes_biases:
            bias_ids, amounts = biases if biases[0] else ([0], [0.0])  # x - 0 is x: no bias
            feeds[io.SAMPLER_BIAS_IDS] = self.engine.int64(bias_ids, [1, len(bias_ids)])
            feeds[io.SAMPLER_BIAS] = self.engine.float32(amounts, [1, len(amounts)])
        elif biases[0]:
            raise GenerationInputError(OLD_SAMPLER)
        outputs = await self.engine.run(SAMPLER_ROLE, feeds, list(io.SAMPLER_OUTPUTS))
        top_logits = await self.engine.read(outputs[io.SAMPLER_TOP_LOGITS])
        top_ids = await self.engine.read(outputs[io.SAMPLER_TOP_IDS])
        (log_normalizer,) = await self.engine.read(outputs[io.SAMPLER_LOG_NORMALIZER])
        for name, tensor in feeds.items():
            if name != io.SAMPLER_LOGITS:
                self.engine.release(tensor)
        for tensor in outputs.values():
            self.engine.release(tensor)
        return top_logits, [int(i) for i in top_ids], float(log_normalizer)

    async def last_logits(self) -> list[float]:
        """Full logits of the last position (parity tests; O(vocab), never on the token path)."""
        assert self.logits is not None, "forward() first"
        return await self.engine.read_last_row(self.logits)

    def close(self) -> None:
        self._release_all()
