"""Models: loading checkpoints and building the offline ones (foundation; imports nothing of temporal_rl's but the
prompts' wording for the tiny tokenizer).

- `loading.py`: `TemporalModelConfig` (TRL's `ModelConfig` with LoRA on the language model only), `load_model` (the
  one model loader: dtype, 4-bit, a LoRA adapter, the device), `load_inference_model`, `load_processor`.
- `tiny.py`: the offline tiny Qwen2.5-VL (tokenizer, processor, config, weights), `python -m temporal_rl.models.tiny`.
- `qwen.py`: the real 3B / 7B architectures from their public configs (meta device or random weights).
"""
