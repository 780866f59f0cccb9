"""Video frames for the models, split along its seams. Import from the modules; this file imports nothing.

| module        | owns                                                                   | imports PyAV |
|---------------|------------------------------------------------------------------------|--------------|
| `sampling.py` | Qwen's frame budget (`FrameSampling`), frame counts, indices and sizes, | no           |
|               | `SampledVideo` (what every frame source returns)                       |              |
| `decode.py`   | PyAV decoding (seeking and sequential passes), `VideoError`            | yes          |
| `cache.py`    | the on-disk frame cache and `load_video`, the one way to get frames    | yes          |
| `inputs.py`   | frames -> a Qwen2.5-VL processor call with their real fps              | no           |

Everything that needs frames calls `temporal_rl.video.cache.load_video(path, sampling, cache)`.
"""
