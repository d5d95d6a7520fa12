"""The numbers of the quantized formats, apart from any graph: the block (MatMulNBits) and column
(DynamicQuantizeMatMul) layouts, and the rounding the PyTorch reference applies in `--validate`."""
