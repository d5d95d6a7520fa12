"""Export Qwen3.5 checkpoints to self-describing ONNX bundles (see docs/)."""
