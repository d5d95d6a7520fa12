"""The graph I/O contract: every input's and output's name, dtype and shape, defined once.

The names are transformers.js's names for Qwen3.5 caches and its dim names (it resolves only a
batch dim literally named `batch_size`), so the bundle also works with runtimes that already know
them. Everything else (the exporter, the passes, the manifest, the runtimes) asks this module
instead of spelling a name or deriving a state shape. Stdlib only: the runtime also runs in
Pyodide; the exporter imports it from here.

    input_ids       int64 [batch_size, sequence_length]
    attention_mask  int64 [batch_size, total_sequence_length]       total = past + new tokens
    position_ids    int64 [3, batch_size, sequence_length]          MRoPE rows: temporal, height,
                                                                    width (all equal for text)
    image_embeds    float32 [num_image_tokens, hidden]              vision bundles only: the merged
                    image features of this call's image-pad tokens, in order (0 rows: none)
    past_* / present_* per layer (see `past_states`), logits float32 [batch_size, T or 1, vocab]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
POSITION_IDS = "position_ids"
IMAGE_EMBEDS = "image_embeds"
LOGITS = "logits"

# Symbolic dims of the graph's I/O.
BATCH = "batch_size"
SEQUENCE = "sequence_length"
PAST = "past_sequence_length"
TOTAL = "total_sequence_length"  # past + sequence: the mask's length and the presents' cache length
MROPE_ROWS = 3  # position_ids rows: temporal, height, width
IMAGE_TOKENS = "num_image_tokens"  # image_embeds rows: the image-pad tokens in this call

Dim = int | str  # a static size, or the name of a symbolic axis

# The bundle's sampler graph (see export/sampler_graph.py).
SAMPLER_LOGITS, SAMPLER_PENALTY_IDS, SAMPLER_PENALTY, SAMPLER_TEMPERATURE, SAMPLER_K = (
    "logits",
    "penalty_ids",
    "penalty",
    "temperature",
    "k",
)
# Additive logit biases (presence/frequency penalties): inputs of samplers exported since they exist.
SAMPLER_BIAS_IDS, SAMPLER_BIAS = "bias_ids", "bias"
SAMPLER_TOP_LOGITS, SAMPLER_TOP_IDS, SAMPLER_LOG_NORMALIZER = "top_logits", "top_ids", "log_normalizer"
SAMPLER_INPUTS = (
    SAMPLER_LOGITS,
    SAMPLER_PENALTY_IDS,
    SAMPLER_PENALTY,
    SAMPLER_BIAS_IDS,
    SAMPLER_BIAS,
    SAMPLER_TEMPERATURE,
    SAMPLER_K,
)
SAMPLER_OUTPUTS = (SAMPLER_TOP_LOGITS, SAMPLER_TOP_IDS, SAMPLER_LOG_NORMALIZER)

LINEAR_ATTENTION = "linear_attention"
FULL_ATTENTION = "full_attention"

StateKind = Literal["conv", "recurrent", "key", "value"]


def past_conv(layer: int) -> str:
    return f"past_conv.{layer}"


def past_recurrent(layer: int) -> str:
    return f"past_recurrent.{layer}"


def past_key(layer: int) -> str:
    return f"past_key_values.{layer}.key"


def past_value(layer: int) -> str:
    return f"past_key_values.{layer}.value"


def present_conv(layer: int) -> str:
    return f"present_conv.{layer}"


def present_recurrent(layer: int) -> str:
    return f"present_recurrent.{layer}"


def present_key(layer: int) -> str:
    return f"present.{layer}.key"


def present_value(layer: int) -> str:
    return f"present.{layer}.value"


@dataclass(frozen=True)
class StateIO:
    """One piece of per-layer state: the graph input it enters by and the output it leaves by."""

    layer: int
    kind: StateKind
    past: str
    present: str


def state_io(layer_types: list[str]) -> list[StateIO]:
    """Per-layer states in graph order: layer by layer, (conv, recurrent) or (key, value)."""
    states: list[StateIO] = []
    for i, layer_type in enumerate(layer_types):
        if layer_type == LINEAR_ATTENTION:
            states.append(StateIO(i, "conv", past_conv(i), present_conv(i)))
            states.append(StateIO(i, "recurrent", past_recurrent(i), present_recurrent(i)))
        elif layer_type == FULL_ATTENTION:
            states.append(StateIO(i, "key", past_key(i), present_key(i)))
            states.append(StateIO(i, "value", past_value(i), present_value(i)))
        else:
            raise ValueError(f"unknown layer type {layer_type!r} at layer {i}")
    return states


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output as the manifest records it."""

    name: str
    dtype: str  # "float32", "float16", "int64"
    shape: tuple[Dim, ...]  # ints are static, strings name symbolic axes


class StateFacts(Protocol):
    """The model facts the state shapes follow from (bundle_format.ModelFacts has them all)."""

    @property
    def layer_types(self) -> Sequence[str]: ...
    @property
    def conv_dim(self) -> int: ...
    @property
    def conv_kernel(self) -> int: ...
    @property
    def linear_num_value_heads(self) -> int: ...
    @property
    def linear_key_head_dim(self) -> int: ...
    @property
    def linear_value_head_dim(self) -> int: ...
    @property
    def num_key_value_heads(self) -> int: ...
    @property
    def head_dim(self) -> int: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def hidden_size(self) -> int: ...


@dataclass(frozen=True)
class PastState:
    """One past-state input and the present output that carries its next value."""

    io: StateIO
    dtype: str
    shape: tuple[Dim, ...]  # of the past input; symbolic: BATCH, and PAST for key/value
    present_shape: tuple[Dim, ...]  # of the present output: key/value grow to TOTAL

    @property
    def name(self) -> str:
        return self.io.past

    @property
    def present(self) -> str:
        return self.io.present

    @property
    def past_axis(self) -> int | None:
        """The axis that grows with the sequence (key/value caches), None for fixed-size states."""
        return self.shape.index(PAST) if PAST in self.shape else None

    def dims(self, batch: int, past: int = 0) -> list[int]:
        """Concrete dims of the past input for `batch` rows and `past` cached tokens (0: empty)."""
        sizes = {BATCH: batch, PAST: past}
        return [d if isinstance(d, int) else sizes[d] for d in self.shape]


def _state_shape(facts: StateFacts, kind: StateKind, length: str) -> tuple[Dim, ...]:
    if kind == "conv":  # the last K-1 inputs of the depthwise conv
        return (BATCH, facts.conv_dim, facts.conv_kernel - 1)
    if kind == "recurrent":  # the delta rule's state, per value head: [Hv, Dk, Dv]
        return (BATCH, facts.linear_num_value_heads, facts.linear_key_head_dim, facts.linear_value_head_dim)
    return (BATCH, facts.num_key_value_heads, length, facts.head_dim)  # [B, Hkv, P, hd]


def past_states(facts: StateFacts, activation_dtype: str) -> list[PastState]:
    """Every past-state input in graph order: name, dtype, shape; the one derivation of them.

    The recurrent state is float32 whatever the activations (it accumulates over the whole
    sequence); conv and key/value states are in the activations' dtype (`activation_dtype`).
    """
    states = []
    for io in state_io(list(facts.layer_types)):
        dtype = "float32" if io.kind == "recurrent" else activation_dtype
        shape, present = _state_shape(facts, io.kind, PAST), _state_shape(facts, io.kind, TOTAL)
        states.append(PastState(io, dtype, shape, present))
    return states


def graph_inputs(facts: StateFacts, activation_dtype: str, with_images: bool = False) -> list[TensorSpec]:
    """The decoder graph's inputs, in order (module docstring); `with_images`: a vision bundle's."""
    specs = [
        TensorSpec(INPUT_IDS, "int64", (BATCH, SEQUENCE)),
        TensorSpec(ATTENTION_MASK, "int64", (BATCH, TOTAL)),
        TensorSpec(POSITION_IDS, "int64", (MROPE_ROWS, BATCH, SEQUENCE)),
    ]
    if with_images:
        specs.append(TensorSpec(IMAGE_EMBEDS, "float32", (IMAGE_TOKENS, facts.hidden_size)))
    return specs + [TensorSpec(s.name, s.dtype, s.shape) for s in past_states(facts, activation_dtype)]


def graph_outputs(facts: StateFacts, activation_dtype: str, last_position_only: bool) -> list[TensorSpec]:
    """The decoder graph's outputs, in order: logits for every position (or the last), presents."""
    logits = TensorSpec(LOGITS, "float32", (BATCH, 1 if last_position_only else SEQUENCE, facts.vocab_size))
    presents = [TensorSpec(s.present, s.dtype, s.present_shape) for s in past_states(facts, activation_dtype)]
    return [logits, *presents]


def text_positions(start: int, count: int) -> list[list[int]]:
    """position_ids rows for `count` text tokens from position `start`: three equal rows [3, T]."""
    return [list(range(start, start + count)) for _ in range(MROPE_ROWS)]


def grid_positions(start: int, height: int, width: int) -> list[list[int]]:
    """position_ids rows [3][height * width] of one image's patch grid placed at `start`.

    transformers' Qwen3.5 rule (get_rope_index, one frame): every patch has temporal position
    `start`, row i height position start + i, column j width position start + j, row-major. Text
    after the image continues at start + max(height, width), one past the largest position.
    """
    cells = [(i, j) for i in range(height) for j in range(width)]
    return [[start] * len(cells), [start + i for i, _ in cells], [start + j for _, j in cells]]
