"""Train a tiny Qwen3.5-architecture model on the CPU from text that ships with Python.

The result is the demo's default model and a fidelity instrument: a real `Qwen3_5ForCausalLM`
(Gated DeltaNet and full-attention layers, Hv = 2·Hk) whose greedy output is readable, so an
export that breaks it shows up as garbled text, not only as a logit difference.

    python -m devtools.train_tiny OUT_DIR [--steps N] [--seed S]

Modules: `corpus` (documents and the held-out split), `tokenizer_train` (byte-level BPE with
Qwen3.5's pre-tokenizer), `model_config` (the architecture), `batches` (token windows),
`train` (the loop), `evaluate` (perplexity and greedy samples), `card` (model card and log), `run`
(all of it, into a checkpoint directory).
"""
