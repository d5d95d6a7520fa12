"""``GatedDeltaRule`` lowered to onnxruntime's ``com.microsoft::GatedDeltaNet`` (the `--ops webgpu` graph).

onnxruntime-web 1.31.1's WebGPU execution provider has a GatedDeltaNet kernel; no CPU build has one
(so neither onnxruntime natively nor onnxruntime-web's wasm backend can run this graph: they keep the
``LinearAttention`` lowering in ``gated_delta_rule.lower_to_ort``, `--ops fused`).

The kernel's contract, as this lowering relies on it. Sources: the operator schema registered in
onnxruntime 1.31.1 (``onnxruntime.capi.onnxruntime_pybind11_state.get_all_operator_schema()``, op
``GatedDeltaNet``, domain ``com.microsoft``, since version 1: its doc, inputs, outputs, attributes,
type constraints), the WebGPU kernel in microsoft/onnxruntime
(``onnxruntime/contrib_ops/webgpu/bert/gated_delta_net.cc`` and ``gated_delta_net.wgsl.template``),
and the strings of ``node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.asyncify.wasm`` of
onnxruntime-web 1.31.1 (the build the page loads for WebGPU), which carry the same shader text and
error messages:

* Inputs, in order: ``query, key, value, cu_seqlens, decay, beta, initial_state, a_log, dt_bias,
  capture_count, state_update_active``; outputs ``output, final_state, state_update``.
* ``query``/``key``/``value`` are token-major, rank 3 ``[total_tokens, H, D]`` or rank 4
  ``[B, S, H, D]`` (the same memory; the schema names the rank-4 spelling for exporters). Ours are
  rank 4 ``[B, T, H, D]`` already, so no reshape is needed. Without ``cu_seqlens`` the packing is
  uniform (every sequence of the batch has T tokens), which is what the decoder feeds.
* Heads: ``num_heads_q == num_heads_k`` and ``num_heads_v`` a positive multiple of them; the shader
  reads key/query head ``value_head / (num_heads_v / num_heads_q)``, i.e. each key head serves
  consecutive value heads, as Qwen3.5 (and ``GatedDeltaRule``) groups them. No head attributes:
  the kernel reads the counts from the shapes.
* ``decay`` ``[..., tokens, num_heads_v]`` is the log-space decay g (WebGPU: scalar decay only;
  a per-key-dimension decay is refused); ``beta`` ``[..., tokens, num_heads_v]`` the update rate.
  Both are type ``TS`` = float32 only, so an fp16 graph casts them up; q/k/v/output are type ``T``
  (float, float16, bfloat16 in the schema; the WebGPU kernel registers the EP's float types).
* State: ``initial_state``/``final_state`` are float32 and **V-major** ``[B, Hv, Dv, Dk]``. The
  project's state is ``[B, Hv, Dk, Dv]`` (docs/graph-io.md), so the lowering transposes it in and
  out inside the graph: the graph's inputs, outputs, snapshots and manifest are those of every
  other bundle. (Cost: two transposes of the state per linear-attention layer per call.)
* Recurrence (schema doc), per value head: ``S_t = exp(g_t) S_{t-1} + k_t (beta_t (v_t -
  exp(g_t) S_{t-1}^T k_t))^T``, ``o_t = scale * S_t^T q_t``: the same as ``GatedDeltaRule``, where
  ``scale`` multiplies q. ``scale`` 0.0 (the default) means ``Dk ** -0.5``; we pass ours.
* ``update_rule`` 'gated_delta' (the default). Fused extras, left off here because the decoder
  computes them before the op: ``gate_activation='qwen'`` (g = -exp(a_log) * softplus(decay +
  dt_bias) in float32, with ``a_log``/``dt_bias`` ``[Hv]``), ``beta_activation='sigmoid'``,
  ``qk_l2_norm=1`` (the shader adds 1e-12 to the squared norm, transformers adds 1e-6).
* Limits on WebGPU: ``head_size_qk <= 256`` (Qwen3.5: 128); ``state_update_capacity`` 0 (compact
  state updates, the speculative-decoding hook, are not used here).
* ``chunk_size`` (default 64) is a tuning hint: on WebGPU the default keeps the recurrent shader for
  every T (one workgroup per batch x value head x 4 value channels, looping over tokens); 16 opts
  into a chunkwise prefill route "on supported Apple silicon" (schema doc). The recurrent route is
  exact for any T, so prefill and decode are the same kernel here.
"""

from __future__ import annotations

import onnx_ir as ir

from qwen35web.export.ops.domain import MS_DOMAIN
from qwen35web.export.ops.gated_delta_rule_body import INPUT_NAMES, OP_TYPE, SCALE_ATTRIBUTE

__all__ = ["KERNEL", "STATE_PERM", "lower_to_gated_delta_net"]

KERNEL = "GatedDeltaNet"
# [B, Hv, Dk, Dv] <-> [B, Hv, Dv, Dk]: its own inverse.
STATE_PERM = (0, 1, 3, 2)


def _as_float32(value: ir.Value, new_nodes: list[ir.Node], name: str) -> ir.Value:
    """decay and beta are float32-only inputs (type ``TS``)."""
    if value.dtype == ir.DataType.FLOAT:
        return value
    cast = ir.node("Cast", [value], {"to": ir.DataType.FLOAT}, name=f"{name}_cast")
    cast.outputs[0].name = f"{name}_f32"
    new_nodes.append(cast)
    return cast.outputs[0]


def _transposed_state(value: ir.Value, new_nodes: list[ir.Node], name: str) -> ir.Value:
    transpose = ir.node("Transpose", [value], {"perm": list(STATE_PERM)}, name=name)
    transpose.outputs[0].name = name
    new_nodes.append(transpose)
    return transpose.outputs[0]


def lower_to_gated_delta_net(node: ir.Node) -> tuple[list[ir.Node], list[ir.Value]]:
    """Replacement nodes for one ``GatedDeltaRule`` node: Transpose, GatedDeltaNet, Transpose.

    q/k/v go in as they are (rank 4, their own dtype); g and beta are cast to float32 where they
    are not; the state is transposed to the kernel's V-major layout and back.
    """
    if len(node.inputs) != len(INPUT_NAMES) or any(x is None for x in node.inputs):
        raise ValueError(f"{node.name or OP_TYPE}: expected the {len(INPUT_NAMES)} inputs {INPUT_NAMES}")
    query, key, value, g, beta, initial_state = (x for x in node.inputs if x is not None)
    scale = node.attributes[SCALE_ATTRIBUTE].as_float()
    prefix = node.name or "gated_delta_rule"
    new_nodes: list[ir.Node] = []
    decay = _as_float32(g, new_nodes, f"{prefix}_decay")
    rate = _as_float32(beta, new_nodes, f"{prefix}_beta")
    state_in = _transposed_state(initial_state, new_nodes, f"{prefix}_state_v_major")  # [B, Hv, Dv, Dk]
    kernel = ir.node(
        KERNEL,
        # query, key, value, cu_seqlens (absent: uniform packing), decay, beta, initial_state
        [query, key, value, None, decay, rate, state_in],
        {"update_rule": "gated_delta", "scale": scale},
        domain=MS_DOMAIN,
        num_outputs=2,
        name=f"{prefix}_gated_delta_net",
    )
    output, final_state_v_major = kernel.outputs  # [B, T, Hv, Dv], [B, Hv, Dv, Dk]
    output.name = f"{prefix}_output"
    final_state_v_major.name = f"{prefix}_final_state_v_major"
    new_nodes.append(kernel)
    final_state = _transposed_state(
        final_state_v_major, new_nodes, f"{prefix}_final_state"
    )  # [B, Hv, Dk, Dv]
    return new_nodes, [output, final_state]
