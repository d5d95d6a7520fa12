"""A minimal onnxruntime driver for an exported graph: zero states, prefill, feed states back.

Used by `--validate` and by tests. The generation runtime proper lives in qwen35web.runtime; this is
only the graph-level loop, driven by the graph's own input/output metadata.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from qwen35web.runtime.graph_io import (
    ATTENTION_MASK,
    INPUT_IDS,
    LOGITS,
    POSITION_IDS,
    is_state_input,
    present_for,
)

_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64}


class GraphRunner:
    def __init__(self, model_path: Path, threads: int | None = None):
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self.state_inputs = [i for i in self.session.get_inputs() if is_state_input(i.name)]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def zero_states(self, batch: int) -> list[np.ndarray]:
        """Zero conv/recurrent states and an empty KV cache, shaped from the graph's inputs."""
        states = []
        for meta in self.state_inputs:
            dims = [d if isinstance(d, int) else 0 for d in meta.shape]
            dims[0] = batch
            states.append(np.zeros(dims, dtype=_ORT_DTYPES[meta.type]))
        return states

    def step(
        self, ids: np.ndarray, past_len: int, states: list[np.ndarray], mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Run `ids` [B, T] after `past_len` tokens; returns logits [B, T, V] and the new states."""
        batch, seq = ids.shape
        if mask is None:
            mask = np.ones((batch, past_len + seq), dtype=np.int64)
        positions = np.broadcast_to(np.arange(past_len, past_len + seq, dtype=np.int64), (batch, seq))
        feeds = {
            INPUT_IDS: ids.astype(np.int64),
            ATTENTION_MASK: mask,
            POSITION_IDS: np.ascontiguousarray(positions),
        }
        feeds.update({meta.name: s for meta, s in zip(self.state_inputs, states, strict=True)})
        outputs = self.session.run(self.output_names, feeds)
        by_name = dict(zip(self.output_names, outputs, strict=True))
        new_states = [by_name[present_for(meta.name)] for meta in self.state_inputs]
        return by_name[LOGITS], new_states

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
