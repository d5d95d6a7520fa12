"""A minimal onnxruntime driver for an exported graph: zero states, prefill, feed states back.

Used by `--validate` and by tests. The generation runtime proper lives in qwen35web.runtime; this
is only the graph-level loop. The states follow from the model facts the graph carries in its
metadata (bundle_format.graph_metadata), through graph_io.past_states like everywhere else.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from qwen35web.runtime.bundle_format import facts_from_graph_metadata
from qwen35web.runtime.graph_io import (
    ATTENTION_MASK,
    IMAGE_EMBEDS,
    INPUT_IDS,
    LOGITS,
    MROPE_ROWS,
    POSITION_IDS,
    past_states,
    text_positions,
)


def batch_text_positions(batch: int, start: int, count: int) -> np.ndarray:
    """position_ids [3, B, T] of text for every row: graph_io.text_positions, broadcast over B."""
    rows = np.array(text_positions(start, count), dtype=np.int64)  # [3, T]
    return np.ascontiguousarray(np.broadcast_to(rows[:, None, :], (MROPE_ROWS, batch, count)))


class GraphRunner:
    def __init__(self, model_path: Path, threads: int | None = None):
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        facts, activation_dtype = facts_from_graph_metadata(self.session.get_modelmeta().custom_metadata_map)
        self.states = past_states(facts, activation_dtype)
        self.output_names = [o.name for o in self.session.get_outputs()]
        # A vision bundle's decoder also takes image_embeds [N, hidden]: text here, so 0 rows.
        inputs = {i.name: i for i in self.session.get_inputs()}
        self.no_images = (
            {IMAGE_EMBEDS: np.zeros((0, facts.hidden_size), dtype=np.float32)}
            if IMAGE_EMBEDS in inputs
            else {}
        )

    def zero_states(self, batch: int) -> list[np.ndarray]:
        """Zero conv/recurrent states and an empty KV cache for `batch` rows."""
        return [np.zeros(state.dims(batch), dtype=state.dtype) for state in self.states]

    def feeds(
        self,
        ids: np.ndarray,
        past_len: int,
        states: list[np.ndarray],
        mask: np.ndarray | None = None,
        positions: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """The graph's feeds for `ids` [B, T] after `past_len` tokens (see `step`)."""
        batch, seq = ids.shape
        if mask is None:
            mask = np.ones((batch, past_len + seq), dtype=np.int64)
        if positions is None:
            positions = batch_text_positions(batch, past_len, seq)
        feeds = {
            INPUT_IDS: ids.astype(np.int64),
            ATTENTION_MASK: mask,
            POSITION_IDS: np.ascontiguousarray(positions, dtype=np.int64),
        }
        feeds.update(self.no_images)
        feeds.update({state.name: s for state, s in zip(self.states, states, strict=True)})
        return feeds

    def step(
        self,
        ids: np.ndarray,
        past_len: int,
        states: list[np.ndarray],
        mask: np.ndarray | None = None,
        positions: np.ndarray | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Run `ids` [B, T] after `past_len` tokens; returns logits [B, T, V] and the new states.

        `positions` [3, B, T] are the MRoPE rows; by default text positions past_len.. in all three.
        """
        feeds = self.feeds(ids, past_len, states, mask, positions)
        outputs = self.session.run(self.output_names, feeds)
        by_name = dict(zip(self.output_names, outputs, strict=True))
        return by_name[LOGITS], [by_name[state.present] for state in self.states]

    def greedy(
        self, prompt: np.ndarray, new_tokens: int, chunk: int | None = None, suppress: tuple[int, ...] = ()
    ) -> list[int]:
        """Greedy continuation of one prompt [T]; the prompt is prefilled in chunks of `chunk` tokens.

        `suppress` ids are never chosen: pass the eos ids to match transformers' `min_new_tokens`.
        """
        states = self.zero_states(1)
        chunk = chunk or len(prompt)
        past = 0
        for start in range(0, len(prompt), chunk):
            piece = prompt[start : start + chunk][None]
            logits, states = self.step(piece, past, states)
            past += piece.shape[1]
        tokens: list[int] = []
        for _ in range(new_tokens):
            last = logits[0, -1].copy()
            last[list(suppress)] = -np.inf
            token = int(np.argmax(last))
            tokens.append(token)
            logits, states = self.step(np.array([[token]]), past, states)
            past += 1
        return tokens
