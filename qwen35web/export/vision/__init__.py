"""The vision tower of a Qwen3.5 vision-language checkpoint, exported as its own ONNX graph."""
