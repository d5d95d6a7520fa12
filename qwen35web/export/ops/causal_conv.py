"""Causal depthwise conv1d with carried state: the conv in front of every Gated DeltaNet layer.

One op, ``ai.qwen35web::CausalConv1DWithState``, serves prefill, chunked prefill and decode:

    padded        = concat(past_state, x, axis=time)            # [B, C, K-1+T]
    y[b, c, t]    = act(sum_k weight[c, 0, k] * padded[b, c, t+k])   # [B, C, T]
    present_state = padded[:, :, -(K-1):]                       # [B, C, K-1]

with ``act`` SiLU or the identity. The state keeps K-1 columns (transformers keeps K; its first
column never reaches an output, see docs/).

The module holds the op's numpy spec (``reference``), the torch custom op the model code calls
(``causal_conv1d_with_state`` / ``TORCH_OP``), the exporter translation into one custom-domain
node (``onnx_translation``), the portable ONNX function body (``function_proto``) and the lowering
to onnxruntime's ``com.microsoft::CausalConvWithState`` (``lower_to_ort``).

Node attributes: ``activation`` ("silu" | "none", default "silu") and ``channels`` (int, = C).
``channels`` exists only because the portable body's ``Conv`` needs ``group=C`` as a static
attribute and an ONNX function cannot compute attributes from shapes; the translation fills it
from the weight's static shape and the fused lowering drops it.
"""

from __future__ import annotations

import logging
from typing import TypeVar, no_type_check

import numpy as np
import onnx
import onnx_ir as ir
import onnxscript
import torch
import torch.nn.functional as F
from onnxscript import onnx_types
from onnxscript import opset18 as op

from qwen35web.export.ops.domain import DOMAIN, DOMAIN_VERSION, MS_DOMAIN, custom_opset

logger = logging.getLogger(__name__)

OP_TYPE = "CausalConv1DWithState"
TORCH_OP_NAME = "qwen35web::causal_conv1d_with_state"
ORT_OP_TYPE = "CausalConvWithState"
ACTIVATIONS = ("silu", "none")
DEFAULT_ACTIVATION = "silu"
_FLOAT_TYPES = ["tensor(float)", "tensor(float16)", "tensor(bfloat16)"]


def _check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"{OP_TYPE}: activation must be one of {ACTIVATIONS}, got {activation!r}")


# --------------------------------------------------------------------------------------------
# 1. The spec: plain numpy, loop form, fp32.
# --------------------------------------------------------------------------------------------
def reference(
    x: np.ndarray, weight: np.ndarray, past_state: np.ndarray, activation: str = DEFAULT_ACTIVATION
) -> tuple[np.ndarray, np.ndarray]:
    """Causal depthwise conv over ``concat(past_state, x)`` along time; the op's specification.

    Args:
        x: [B, C, T] new time steps, channels first.
        weight: [C, 1, K] depthwise kernel, no bias; tap K-1 multiplies the current step.
        past_state: [B, C, K-1] the K-1 steps before ``x`` (zeros at the start of a sequence).
        activation: "silu" (y * sigmoid(y)) or "none".

    Returns:
        y: [B, C, T] float32, ``y[b, c, t] = act(sum_k weight[c, 0, k] * padded[b, c, t + k])``
            where ``padded = concat(past_state, x)`` is [B, C, K-1+T].
        present_state: [B, C, K-1] float32, the last K-1 columns of ``padded``; when T < K-1 this
            still holds the newest columns of ``past_state``.
    """
    _check_activation(activation)
    kernel = weight.astype(np.float32)[:, 0, :]  # [C, K]
    taps = kernel.shape[-1]
    padded = np.concatenate([past_state, x], axis=-1).astype(np.float32)  # [B, C, K-1+T]
    steps = x.shape[-1]
    y = np.zeros(x.shape, dtype=np.float32)  # [B, C, T]
    for t in range(steps):
        for k in range(taps):
            y[:, :, t] += kernel[None, :, k] * padded[:, :, t + k]
    if activation == "silu":
        # sigmoid as exp(-softplus(-y)): no overflow warning for very negative y.
        y = y * np.exp(-np.logaddexp(np.float32(0), -y)).astype(np.float32)
    present_state = padded[:, :, padded.shape[-1] - past_state.shape[-1] :].copy()  # [B, C, K-1]
    return y, present_state


# --------------------------------------------------------------------------------------------
# 2. The torch side: custom op (what the model code calls and the exporter sees).
# --------------------------------------------------------------------------------------------
@torch.library.custom_op(TORCH_OP_NAME, mutates_args=())
def _causal_conv1d_with_state(
    x: torch.Tensor, weight: torch.Tensor, past_state: torch.Tensor, activation: str = DEFAULT_ACTIVATION
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eager implementation; the same ops and casts as transformers' ``causal_conv1d_update``."""
    _check_activation(activation)
    padded = torch.cat([past_state, x], dim=-1).to(weight.dtype)  # [B, C, K-1+T]
    y = F.conv1d(padded, weight, groups=x.shape[1])  # [B, C, T]
    if activation == "silu":
        y = F.silu(y)
    state_len = past_state.shape[-1]
    present_state = padded[:, :, padded.shape[-1] - state_len :]  # [B, C, K-1]
    # Outputs of a custom op may not be views: copy the state slice out of `padded`.
    return y.to(x.dtype), present_state.to(past_state.dtype).contiguous()


@_causal_conv1d_with_state.register_fake
def _causal_conv1d_with_state_fake(
    x: torch.Tensor, weight: torch.Tensor, past_state: torch.Tensor, activation: str = DEFAULT_ACTIVATION
) -> tuple[torch.Tensor, torch.Tensor]:
    return x.new_empty(x.shape), past_state.new_empty(past_state.shape)


TORCH_OP = torch.ops.qwen35web.causal_conv1d_with_state.default


def causal_conv1d_with_state(
    x: torch.Tensor, weight: torch.Tensor, past_state: torch.Tensor, activation: str = DEFAULT_ACTIVATION
) -> tuple[torch.Tensor, torch.Tensor]:
    """Model-facing wrapper: x [B, C, T], weight [C, 1, K], past_state [B, C, K-1] → (y, present)."""
    return TORCH_OP(x, weight, past_state, activation)


# --------------------------------------------------------------------------------------------
# 3. Exporter translation: one node in the project domain.
# --------------------------------------------------------------------------------------------
def _op_schema() -> onnx.defs.OpSchema:
    formal = onnx.defs.OpSchema.FormalParameter
    attribute = onnx.defs.OpSchema.Attribute
    return onnx.defs.OpSchema(
        OP_TYPE,
        DOMAIN,
        DOMAIN_VERSION,
        doc=(__doc__ or "").strip().splitlines()[0],
        inputs=[formal("x", "T"), formal("weight", "T"), formal("past_state", "T")],
        outputs=[formal("y", "T"), formal("present_state", "T")],
        type_constraints=[("T", _FLOAT_TYPES, "float tensors")],
        attributes=[
            attribute(
                "activation", onnx.helper.make_attribute("activation", DEFAULT_ACTIVATION), "silu|none"
            ),
            attribute("channels", onnx.defs.OpSchema.AttrType.INT, "C, the depthwise group count"),
        ],
    )


def register_onnx_schema() -> None:
    """Register the op's schema with onnx (idempotent).

    onnxscript, which torch.onnx's exporter traces translations with, resolves ``opset.OpName``
    through ``onnx.defs.get_schema`` and refuses an op it cannot find; the schema also tells it
    the node has two outputs.
    """
    if onnx.defs.has(OP_TYPE, DOMAIN):
        return
    onnx.defs.register_schema(_op_schema())
    logger.debug("registered onnx schema %s::%s", DOMAIN, OP_TYPE)


register_onnx_schema()


# torch.onnx reads the translation's annotations to build its dispatch signature.
TFloat = TypeVar("TFloat", onnx_types.FLOAT, onnx_types.FLOAT16, onnx_types.BFLOAT16)


def _static_channels(weight: ir.Value) -> int:
    shape = weight.shape
    if shape is None or not isinstance(shape[0], int):
        raise ValueError(f"{OP_TYPE}: the weight's channel count must be static, got shape {shape}")
    return shape[0]


def onnx_translation(
    x: TFloat, weight: TFloat, past_state: TFloat, activation: str = DEFAULT_ACTIVATION
) -> tuple[TFloat, TFloat]:
    """``custom_translation_table`` entry for ``TORCH_OP``: emits one ``CausalConv1DWithState``.

    The exporter calls it with onnxscript-traced values (``ir.Value`` at run time); the annotations
    are onnxscript tensor types because torch.onnx derives the op signature from them.
    """
    _check_activation(activation)
    register_onnx_schema()
    y, present_state = custom_opset.CausalConv1DWithState(
        x,
        weight,
        past_state,
        activation=activation,
        channels=_static_channels(weight),  # type: ignore[arg-type]
    )
    return y, present_state


# --------------------------------------------------------------------------------------------
# 4. Portable body: standard ONNX ops only.
# --------------------------------------------------------------------------------------------
@onnxscript.script(custom_opset, default_opset=op)
@no_type_check  # an onnxscript body, not Python: its op stubs' typing does not model it
def CausalConv1DWithState(x, weight, past_state, channels: int, activation: str = "silu"):
    # Function name = OP_TYPE: onnxscript names the FunctionProto after the Python function.
    padded = op.Concat(past_state, x, axis=-1)  # [B, C, K-1+T]
    # A length-(K-1+T) valid conv with a K-tap kernel yields exactly T outputs: no output slice.
    conv = op.Conv(padded, weight, group=channels)  # [B, C, T]
    padded_len = op.Shape(padded, start=2, end=3)  # [1] = K-1+T
    state_len = op.Shape(past_state, start=2, end=3)  # [1] = K-1, read at run time
    time_axis = op.Constant(value_ints=[2])
    present_state = op.Slice(padded, padded_len - state_len, padded_len, time_axis)  # [B, C, K-1]
    # ONNX 18 cannot compare strings (Equal gained string in 19), so test activation == "silu" by
    # counting the distinct values of ["silu", activation]. The chain is constant: onnxruntime
    # folds it when it inlines the function.
    silu_name = op.Constant(value_strings=["silu"])  # [1]
    given_name = op.Reshape(op.Constant(value_string=activation), op.Constant(value_ints=[1]))  # [1]
    distinct = op.Unique(op.Concat(silu_name, given_name, axis=0))  # [1] or [2]
    is_silu = op.Equal(op.Shape(distinct), op.Constant(value_ints=[1]))  # [1] bool
    y = op.Where(is_silu, conv * op.Sigmoid(conv), conv)  # [B, C, T]
    return y, present_state


def function_proto(activation: str | None = None) -> onnx.FunctionProto:
    """The portable body as a FunctionProto (domain DOMAIN, name OP_TYPE); a fresh copy per call.

    With `activation` given, the body is specialised to it: the string test and the unused branch
    are dropped. String tensors have no WebGPU kernel, and onnxruntime-web cannot place them once
    the function is inlined into a WebGPU session, so a graph whose nodes all share one activation
    gets the specialised body (see `function_proto_for`).
    """
    proto = CausalConv1DWithState.to_function_proto()
    if proto.name != OP_TYPE or proto.domain != DOMAIN:
        raise AssertionError(f"function body is {proto.domain}::{proto.name}, expected {DOMAIN}::{OP_TYPE}")
    if activation is not None:
        _check_activation(activation)
        _specialise(proto, activation)
    return proto


def _specialise(proto: onnx.FunctionProto, activation: str) -> None:
    """Replace the final Where(is_silu, silu, conv) by the chosen branch, then drop dead nodes."""
    nodes = list(proto.node)
    where = next(n for n in nodes if n.op_type == "Where" and list(n.output) == ["y"])
    chosen = where.input[1] if activation == "silu" else where.input[2]
    nodes[nodes.index(where)] = onnx.helper.make_node("Identity", [chosen], ["y"])
    needed = set(proto.output)
    kept = []
    for node in reversed(nodes):  # the body is in topological order
        if any(out in needed for out in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    del proto.node[:]
    proto.node.extend(reversed(kept))


def function_proto_for(nodes: list[ir.Node]) -> onnx.FunctionProto:
    """The body for a graph's nodes: specialised when they all use one activation, else general."""
    activations = set()
    for node in nodes:
        attr = node.attributes.get("activation")
        activations.add(attr.value if attr is not None else DEFAULT_ACTIVATION)
    return function_proto(activations.pop()) if len(activations) == 1 else function_proto()


# --------------------------------------------------------------------------------------------
# 5. Fused lowering: onnxruntime's com.microsoft::CausalConvWithState.
# --------------------------------------------------------------------------------------------
def lower_to_ort(node: ir.Node) -> tuple[list[ir.Node], list[ir.Value]]:
    """Replacement for one ``CausalConv1DWithState`` node: a single ORT contrib node.

    The contrib op has the same input layout (x [B, C, T], weight [C, 1, K], past_state
    [B, C, K-1]) plus an optional bias, left empty; its ``activation`` defaults to "none", so it
    is always written out. The caller must add a ``com.microsoft`` opset import (version 1).
    """
    if node.domain != DOMAIN or node.op_type != OP_TYPE:
        raise ValueError(f"lower_to_ort expects {DOMAIN}::{OP_TYPE}, got {node.domain}::{node.op_type}")
    x, weight, past_state = node.inputs
    activation = node.attributes.get_string("activation", DEFAULT_ACTIVATION)
    _check_activation(activation)
    fused = ir.node(
        ORT_OP_TYPE,
        inputs=[x, weight, None, past_state],
        attributes={"activation": activation, "ndim": 1},
        domain=MS_DOMAIN,
        num_outputs=2,
        name=f"{node.name}_ort" if node.name else None,
    )
    return [fused], list(fused.outputs)
