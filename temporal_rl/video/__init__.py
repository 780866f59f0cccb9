"""Video frames for the models, split along its seams. Import from the modules; this file imports nothing.

| module        | owns                                                                     | imports PyAV |
|---------------|--------------------------------------------------------------------------|--------------|
| `sampling.py` | Qwen's frame budget (`FrameSampling`), frame counts, indices and sizes,  | no           |
|               | `uniform_indices`, `SampledVideo` (what every frame source returns)      |              |
| `decode.py`   | PyAV decoding (seeking and sequential passes), `VideoError`              | yes          |
| `cache.py`    | the on-disk frame cache and `load_video`, the one way to get frames      | yes          |
| `inputs.py`   | `model_inputs`: messages + frames -> one processor call (any family)     | no           |
| `labels.py`   | the 5x7 digit font and index labels drawn on frames                      | no           |

Everything that needs frames calls `temporal_rl.video.cache.load_video(path, sampling, cache)`; a prompt and its
frames become model inputs through `temporal_rl.video.inputs.model_inputs`. Foundation: imports nothing of
temporal_rl's outside this package but the model-family seam (`temporal_rl.families`, in `inputs.py`).
"""
