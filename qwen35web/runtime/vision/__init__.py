"""Images in: transformers' Qwen2-VL image processing, natively and in the page.

Split in two so it can run where there is no numpy: `decode` (Pillow natively; the browser's
decoder in the page) turns a file into RGB bytes at the size `processor_config.smart_resize`
gives; the per-pixel arithmetic (rescale, normalize, temporal duplication, patch order) is a small
ONNX graph built at export (`export.vision.patchify_graph`), fed by `patchify`.
"""
