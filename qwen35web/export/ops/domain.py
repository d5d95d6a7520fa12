"""The project's own ONNX operator domain.

Custom ops are emitted by the exporter in this domain; a pass then either attaches their
portable ONNX function bodies (``--ops portable``) or lowers them to onnxruntime's fused
``com.microsoft`` kernels (``--ops fused``).
"""

from __future__ import annotations

import onnxscript

DOMAIN = "ai.qwen35web"
DOMAIN_VERSION = 1
# Opset of the standard ops used inside function bodies and lowerings.
ONNX_OPSET = 18
MS_DOMAIN = "com.microsoft"

custom_opset = onnxscript.values.Opset(DOMAIN, DOMAIN_VERSION)
