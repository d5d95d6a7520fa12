"""The gated delta rule (Gated DeltaNet's recurrence) as the custom op ``ai.qwen35web::GatedDeltaRule``.

Inputs (q/k already L2-normalised by the caller, q not yet scaled):
    query [B, T, Hk, Dk], key [B, T, Hk, Dk], value [B, T, Hv, Dv],
    g [B, T, Hv] (log-space decay, <= 0), beta [B, T, Hv] (in (0, 1)),
    initial_state [B, Hv, Dk, Dv] (float32).
Attribute: scale (float; the model passes Dk ** -0.5).
Outputs: output [B, T, Hv, Dv] (dtype of value), final_state [B, Hv, Dk, Dv] (float32).

Hv is a multiple of Hk; key head h serves the consecutive value heads h*r .. (h+1)*r - 1 with
r = Hv // Hk. Per value head, with state S [Dk, Dv], in float32, for each token t:
    S <- S * exp(g_t); delta = beta_t * (v_t - S^T k_t); S <- S + k_t (outer) delta; o_t = S^T (scale * q_t)

This module holds the op's numpy reference (the spec), the torch custom op (eager = transformers'
torch fallback), the translation for ``torch.onnx.export``, the portable ONNX function body
(built in ``gated_delta_rule_body``) and the lowering to onnxruntime's
``com.microsoft::LinearAttention`` kernel.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import onnx
import onnx_ir as ir
import torch

from qwen35web.export.ops.domain import DOMAIN, DOMAIN_VERSION, MS_DOMAIN, custom_opset
from qwen35web.export.ops.gated_delta_rule_body import (
    CHUNK_SIZE,
    INPUT_NAMES,
    OP_TYPE,
    OUTPUT_NAMES,
    SCALE_ATTRIBUTE,
    build_function_proto,
)

__all__ = [
    "CHUNK_SIZE",
    "OP_TYPE",
    "TORCH_OP",
    "TORCH_OP_NAME",
    "function_proto",
    "gated_delta_rule",
    "lower_to_ort",
    "onnx_translation",
    "reference",
    "register_onnx_schema",
]

logger = logging.getLogger(__name__)

TORCH_OP_NAME = "qwen35web::gated_delta_rule"


# --------------------------------------------------------------------------------------------
# Spec: plain numpy reference
# --------------------------------------------------------------------------------------------


def reference(
    query: np.ndarray,
    key: np.ndarray,
    value: np.ndarray,
    g: np.ndarray,
    beta: np.ndarray,
    initial_state: np.ndarray,
    scale: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The op's spec in loop form, float32: returns (output [B, T, Hv, Dv], final_state [B, Hv, Dk, Dv])."""
    key_heads, value_heads = key.shape[2], value.shape[2]
    group = value_heads // key_heads
    # Each key head serves `group` consecutive value heads.
    q = np.repeat(query.astype(np.float32), group, axis=2) * np.float32(scale)  # [B, T, Hv, Dk]
    k = np.repeat(key.astype(np.float32), group, axis=2)  # [B, T, Hv, Dk]
    v = value.astype(np.float32)  # [B, T, Hv, Dv]
    decay = np.exp(g.astype(np.float32))  # [B, T, Hv]
    rate = beta.astype(np.float32)  # [B, T, Hv]
    state = initial_state.astype(np.float32).copy()  # [B, Hv, Dk, Dv]
    output = np.zeros(v.shape, dtype=np.float32)
    for t in range(v.shape[1]):
        state *= decay[:, t, :, None, None]
        predicted = np.einsum("bhkv,bhk->bhv", state, k[:, t])  # S^T k_t, [B, Hv, Dv]
        delta = rate[:, t, :, None] * (v[:, t] - predicted)  # [B, Hv, Dv]
        state += k[:, t, :, :, None] * delta[:, :, None, :]
        output[:, t] = np.einsum("bhkv,bhk->bhv", state, q[:, t])
    return output.astype(value.dtype), state


# --------------------------------------------------------------------------------------------
# Torch custom op
# --------------------------------------------------------------------------------------------


def _query_for_fixed_scale(query: torch.Tensor, scale: float) -> torch.Tensor:
    """transformers' fallbacks always scale q by Dk**-0.5; fold any other ``scale`` into q first."""
    builtin_scale = query.shape[-1] ** -0.5
    if math.isclose(scale, builtin_scale, rel_tol=1e-7):
        return query
    return (query.float() * (scale / builtin_scale)).to(query.dtype)


@torch.library.custom_op(TORCH_OP_NAME, mutates_args=())
def _gated_delta_rule_op(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    initial_state: torch.Tensor,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    # Imported lazily: transformers is heavy and only the eager path needs it.
    from transformers.models.qwen3_5.modeling_qwen3_5 import (
        torch_chunk_gated_delta_rule,
        torch_recurrent_gated_delta_rule,
    )

    single_token = query.shape[1] == 1
    fallback = torch_recurrent_gated_delta_rule if single_token else torch_chunk_gated_delta_rule
    output, final_state = fallback(
        _query_for_fixed_scale(query, scale),
        key,
        value,
        g=g,
        beta=beta,
        initial_state=initial_state,
        output_final_state=True,
        use_qk_l2norm_in_kernel=False,
    )
    return output.to(value.dtype).contiguous(), final_state.to(torch.float32).contiguous()


@_gated_delta_rule_op.register_fake
def _gated_delta_rule_fake(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    initial_state: torch.Tensor,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.empty_like(value), torch.empty_like(initial_state, dtype=torch.float32)


TORCH_OP = torch.ops.qwen35web.gated_delta_rule.default


def gated_delta_rule(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    initial_state: torch.Tensor,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the op (shapes in the module docstring); ``scale`` defaults to Dk ** -0.5."""
    if scale is None:
        scale = query.shape[-1] ** -0.5
    output, final_state = TORCH_OP(query, key, value, g, beta, initial_state, float(scale))
    return output, final_state


# --------------------------------------------------------------------------------------------
# ONNX: schema, exporter translation, portable body
# --------------------------------------------------------------------------------------------


def _onnx_schema() -> onnx.defs.OpSchema:
    parameter = onnx.defs.OpSchema.FormalParameter
    type_params = {"query": "T", "key": "T", "value": "T", "g": "TG", "beta": "TB", "initial_state": "S"}
    floats = ["tensor(float)", "tensor(float16)", "tensor(bfloat16)"]
    return onnx.defs.OpSchema(
        OP_TYPE,
        DOMAIN,
        DOMAIN_VERSION,
        doc=__doc__ or "",
        inputs=[parameter(name, type_params[name]) for name in INPUT_NAMES],
        outputs=[parameter(OUTPUT_NAMES[0], "T"), parameter(OUTPUT_NAMES[1], "S")],
        type_constraints=[
            ("T", floats, "query, key, value and output"),
            ("TG", floats, "log-space decay g"),
            ("TB", floats, "update rate beta"),
            ("S", ["tensor(float)"], "recurrent state, always float32"),
        ],
        attributes=[
            onnx.defs.OpSchema.Attribute(SCALE_ATTRIBUTE, onnx.defs.OpSchema.AttrType.FLOAT, "query scale")
        ],
    )


def register_onnx_schema() -> None:
    """Make ``GatedDeltaRule`` known to onnx (onnxscript looks ops up there); safe to call again."""
    if not onnx.defs.has(OP_TYPE, DOMAIN):
        onnx.defs.register_schema(_onnx_schema())
        logger.debug("registered onnx schema %s::%s", DOMAIN, OP_TYPE)


register_onnx_schema()


def onnx_translation(query, key, value, g, beta, initial_state, scale: float):
    """``custom_translation_table`` entry: emits one ``ai.qwen35web::GatedDeltaRule`` node.

    Parameters are left unannotated on purpose: the exporter reads annotations to build the
    signature, and unannotated ones are taken as tensor inputs.
    """
    register_onnx_schema()
    emit = getattr(custom_opset, OP_TYPE)
    output, final_state = emit(query, key, value, g, beta, initial_state, scale=scale)
    return output, final_state


def function_proto() -> onnx.FunctionProto:
    """The portable body (standard ONNX ops, opset ONNX_OPSET) for ModelProto.functions."""
    return build_function_proto()


# --------------------------------------------------------------------------------------------
# Fused lowering to onnxruntime's com.microsoft::LinearAttention
# --------------------------------------------------------------------------------------------


def _static_dim(node: ir.Node, candidates: list[tuple[int, int]], what: str) -> int:
    """First static (input index, axis) dim among ``candidates``; heads and head dims are static."""
    for input_index, axis in candidates:
        value = node.inputs[input_index]
        if value is None or value.shape is None or len(value.shape) <= axis:
            continue
        dim = value.shape[axis]
        if isinstance(dim, int):
            return dim
    raise ValueError(f"{node.name or OP_TYPE}: cannot find a static {what} in the input shapes")


def _as_float32(value: ir.Value, new_nodes: list[ir.Node], name: str) -> ir.Value:
    """The kernel computes in float32 anyway; feeding float32 keeps every EP on the float32 path."""
    if value.dtype == ir.DataType.FLOAT:
        return value
    cast = ir.node("Cast", [value], {"to": ir.DataType.FLOAT}, name=f"{name}_cast")
    cast.outputs[0].name = f"{name}_f32"
    new_nodes.append(cast)
    return cast.outputs[0]


def _reshape(value: ir.Value, shape: list[int], new_nodes: list[ir.Node], name: str) -> ir.Value:
    shape_tensor = ir.tensor(np.array(shape, dtype=np.int64))
    target = ir.node("Constant", [], {"value": shape_tensor}, name=f"{name}_shape")
    target.outputs[0].name = f"{name}_shape"
    reshape = ir.node("Reshape", [value, target.outputs[0]], name=f"{name}_reshape")
    reshape.outputs[0].name = name
    new_nodes.extend([target, reshape])
    return reshape.outputs[0]


def lower_to_ort(node: ir.Node) -> tuple[list[ir.Node], list[ir.Value]]:
    """Replacement nodes for one ``GatedDeltaRule`` node using ``com.microsoft::LinearAttention``.

    The kernel takes 3D packed [B, T, H*D] q/k/v and supports fewer key heads than value heads
    natively (q_num_heads=Hk, kv_num_heads=Hv, key packed with Hk heads; value head j reads key
    head j // (Hv // Hk)), so no repeat is needed. Inputs that are not float32 are cast up and
    the output is cast back like ``value``.
    """
    if len(node.inputs) != len(INPUT_NAMES) or any(x is None for x in node.inputs):
        raise ValueError(f"{node.name or OP_TYPE}: expected the {len(INPUT_NAMES)} inputs {INPUT_NAMES}")
    query, key, value, g, beta, initial_state = (x for x in node.inputs if x is not None)
    key_heads = _static_dim(node, [(0, 2), (1, 2)], "key head count")
    value_heads = _static_dim(node, [(2, 2), (3, 2), (4, 2), (5, 1)], "value head count")
    value_dim = _static_dim(node, [(2, 3), (5, 3)], "value head dim")
    scale = node.attributes[SCALE_ATTRIBUTE].as_float()
    prefix = node.name or "gated_delta_rule"
    new_nodes: list[ir.Node] = []
    packed = [
        _reshape(_as_float32(x, new_nodes, name), [0, 0, -1], new_nodes, f"{name}_packed")
        for name, x in ((f"{prefix}_query", query), (f"{prefix}_key", key), (f"{prefix}_value", value))
    ]  # [B, T, H*D]
    decay, rate = (_as_float32(x, new_nodes, f"{prefix}_{role}") for role, x in (("g", g), ("beta", beta)))
    attention = ir.node(
        "LinearAttention",
        [*packed, initial_state, decay, rate],
        {
            "q_num_heads": key_heads,
            "kv_num_heads": value_heads,
            "update_rule": "gated_delta",
            "scale": scale,
        },
        domain=MS_DOMAIN,
        num_outputs=2,
        name=f"{prefix}_linear_attention",
    )
    packed_output, final_state = attention.outputs  # [B, T, Hv*Dv], [B, Hv, Dk, Dv]
    packed_output.name = f"{prefix}_packed_output"
    final_state.name = f"{prefix}_final_state"
    new_nodes.append(attention)
    output = _reshape(packed_output, [0, 0, value_heads, value_dim], new_nodes, f"{prefix}_output_f32")
    if value.dtype != ir.DataType.FLOAT:
        cast_back = ir.node("CastLike", [output, value], name=f"{prefix}_output_cast")
        cast_back.outputs[0].name = f"{prefix}_output"
        new_nodes.append(cast_back)
        output = cast_back.outputs[0]
    return new_nodes, [output, final_state]
