"""Batched generation: canonical records in, K completion texts per record out.

The one generation engine of the project: the evaluation runner (`temporal_rl.eval.run`) asks it for one greedy
completion per record, the variance-aware data filter for K sampled completions per prompt. Per record it

1. builds the chat prompt (`temporal_rl.prompts.build_messages` + the processor's chat template),
2. loads the video once through the frame cache (`temporal_rl.video.cache.load_video`),
3. runs the processor once (`temporal_rl.video.inputs.model_inputs`; not once per sample: the K samples come from
   `num_return_sequences`),

then left-pads the prepared prompts of a batch into one tensor batch, generates, and decodes. The tokens the model
family never generates (`temporal_rl.families`: Qwen's vision special tokens `<|vision_start|>`, `<|vision_end|>`,
`<|image_pad|>`, `<|video_pad|>`) are suppressed: a sampled `<|video_pad|>` asks the next forward for a video that
is not there. Frames are sampled with the family's frame-side factor (`VideoFormat.frame_sampling`).

Decoding is defined by `GenerationOptions` alone: the model's own generation config contributes only its
end-of-sequence and padding ids (real Qwen2.5-VL checkpoints ship `top_k=1`, which would make every "sampled"
completion greedy).

A record that cannot be prepared (missing field, unknown task, missing or undecodable video) raises
`PromptError`, naming the record and the reason; `iter_generations` hands it to the caller's `on_error`, which
decides whether to skip the record or stop.

Typical use:

    sampling, cache = FrameSampling(fps=2.0), FrameCache()
    options = GenerationOptions(do_sample=True, temperature=1.0, num_return_sequences=8, batch_size=4)
    for generation in iter_generations(model, processor, records, sampling, cache, generation=options):
        generation.completions      # 8 texts

This module owns prompt preparation for generation, batching, decoding settings and decoded outputs. It does not
score completions (`temporal_rl.rewards`) nor write files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import GenerationConfig

from temporal_rl.data import RecordError, check_video_duration
from temporal_rl.families import video_format
from temporal_rl.models.lora_generation import lean_lora_generation
from temporal_rl.prompts import DEFAULT_MAX_PROMPT_TOKENS, PromptOptions
from temporal_rl.video.cache import FrameCache, load_video
from temporal_rl.video.decode import VideoError
from temporal_rl.video.inputs import model_inputs
from temporal_rl.video.sampling import FrameSampling

REQUIRED_FIELDS = ("id", "video", "task", "question")


class PromptError(RuntimeError):
    """A record cannot be turned into a model input. The message names the record and what is wrong."""

    def __init__(self, record_id: str, reason: str):
        self.record_id, self.reason = record_id, reason
        super().__init__(f"record {record_id!r}: {reason}")


@dataclass(frozen=True)
class GenerationOptions:
    """Decoding settings. Greedy by default.

    Args:
        max_new_tokens: completion length cap, in tokens.
        do_sample: sample instead of greedy decoding.
        temperature, top_p, top_k: sampling settings (top_k=0 disables top-k); ignored when greedy.
        num_return_sequences: K, completions per record; K > 1 needs `do_sample`.
        batch_size: records per `generate` call (a batch holds batch_size * K sequences).
        seed: seeds torch once at the start of `iter_generations` (sampled runs repeat exactly for the same
            batches).
        max_prompt_tokens: the longest prompt, in tokens with the video's included, that is generated for; a longer
            one is a `PromptError` (skipped and listed by the caller) instead of a batch that cannot be allocated.
            None: no limit.
        check_durations: refuse (a `PromptError`) a record whose `duration` disagrees with its decoded video's
            (`temporal_rl.data.check_video_duration`); False only for a deliberate mismatch, such as asking each
            question of another clip's video (`temporal_rl.eval.video_dependence.swap_videos`).
    """

    max_new_tokens: int = 256
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    num_return_sequences: int = 1
    batch_size: int = 8
    seed: int | None = None
    max_prompt_tokens: int | None = DEFAULT_MAX_PROMPT_TOKENS
    check_durations: bool = True

    def __post_init__(self):
        for name in ("max_new_tokens", "num_return_sequences", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GenerationOptions: {name} must be a positive integer, got {value!r}")
        if self.max_prompt_tokens is not None and (
            not isinstance(self.max_prompt_tokens, int)
            or isinstance(self.max_prompt_tokens, bool)
            or self.max_prompt_tokens < 1
        ):
            raise ValueError(
                "GenerationOptions: max_prompt_tokens must be a positive integer or None, "
                f"got {self.max_prompt_tokens!r}"
            )
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"GenerationOptions: top_k must be an integer >= 0, got {self.top_k!r}")
        if self.do_sample and not self.temperature > 0:
            raise ValueError(f"GenerationOptions: temperature must be > 0 when sampling, got {self.temperature!r}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"GenerationOptions: top_p must be in (0, 1], got {self.top_p!r}")
        if self.num_return_sequences > 1 and not self.do_sample:
            raise ValueError(
                f"GenerationOptions: num_return_sequences={self.num_return_sequences} needs do_sample=True "
                "(greedy decoding gives the same completion every time)"
            )


@dataclass
class PreparedPrompt:
    """One record's model input: the processor output for its prompt and video, batch dimension 1.

    Attributes:
        record_id: the record's id.
        inputs: `input_ids`, `attention_mask` (and `mm_token_type_ids`) of shape (1, T); the video tensors
            (`pixel_values_videos` (P, D), `video_grid_thw` (1, 3), the family's per-video tensors such as
            `second_per_grid_ts` (1,)).
    """

    record_id: str
    inputs: dict[str, torch.Tensor]

    @property
    def num_tokens(self) -> int:
        """T, the prompt's length in tokens (video tokens included)."""
        return int(self.inputs["input_ids"].shape[1])


@dataclass
class Generation:
    """The K completions of one record.

    Attributes:
        record_id: the record's id.
        completions: K decoded texts (special tokens removed).
        completion_ids: K lists of generated token ids, up to and including the end-of-sequence token.
        completion_tokens: K token counts (`len` of each `completion_ids` entry).
        prompt_tokens: the prompt's length in tokens, video tokens included.
    """

    record_id: str
    completions: list[str]
    completion_ids: list[list[int]] = field(repr=False)
    completion_tokens: list[int]
    prompt_tokens: int


# ---------------------------------------------------------------------------------------------------------------
# Pure tensor functions


def left_pad_batch(features: Sequence[dict[str, torch.Tensor]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Stack per-prompt processor outputs into one left-padded batch.

    Token-aligned tensors (shape (1, T_i), the same T_i as `input_ids`) are padded on the left to
    T = max T_i: `input_ids` with `pad_token_id`, the others (`attention_mask`, `mm_token_type_ids`) with 0.
    Every other tensor (the flattened video patches (P_i, D), `video_grid_thw` (1, 3), per-video tensors such as
    `second_per_grid_ts` (1,)) is concatenated along dimension 0, in prompt order.

    Args:
        features: B dicts of tensors, each with `input_ids` of shape (1, T_i).
        pad_token_id: the id that fills padded `input_ids` positions.

    Returns:
        One dict: token-aligned tensors of shape (B, T), the rest of shape (sum of their first dimensions, ...).

    Example:
        ```python
        >>> a = {"input_ids": torch.tensor([[5, 6, 7]]), "attention_mask": torch.ones(1, 3, dtype=torch.long)}
        >>> b = {"input_ids": torch.tensor([[8]]), "attention_mask": torch.ones(1, 1, dtype=torch.long)}
        >>> batch = left_pad_batch([a, b], pad_token_id=0)
        >>> batch["input_ids"].tolist(), batch["attention_mask"].tolist()
        ([[5, 6, 7], [0, 0, 8]], [[1, 1, 1], [0, 0, 1]])
        ```
    """
    if not features:
        raise ValueError("left_pad_batch needs at least one prompt")
    keys = list(features[0])
    lengths = [int(f["input_ids"].shape[1]) for f in features]
    longest = max(lengths)
    batch = {}
    for key in keys:
        values = [f[key] for f in features]
        token_aligned = all(v.dim() == 2 and v.shape == (1, n) for v, n in zip(values, lengths, strict=True))
        if token_aligned:
            pad_value = pad_token_id if key == "input_ids" else 0
            batch[key] = torch.cat(
                [torch.nn.functional.pad(v, (longest - v.shape[1], 0), value=pad_value) for v in values]
            )
        else:
            batch[key] = torch.cat(values, dim=0)
    return batch


def completion_lengths(generated: torch.Tensor, eos_token_ids: Iterable[int]) -> list[int]:
    """Tokens per generated row, up to and including its first end-of-sequence token (the row's length if none).

    Args:
        generated: (N, L) generated token ids (prompt removed); rows that stopped early are padded after the EOS.
        eos_token_ids: the ids that end a completion.

    Returns:
        N lengths in [1, L] (0 when L is 0).

    Example:
        ```python
        >>> completion_lengths(torch.tensor([[4, 9, 0, 0], [4, 4, 4, 4]]), eos_token_ids=[9])
        [2, 4]
        ```
    """
    rows, width = generated.shape
    if width == 0:
        return [0] * rows
    is_eos = torch.isin(generated, torch.tensor(sorted(set(eos_token_ids)), dtype=generated.dtype))
    first_eos = torch.where(is_eos.any(dim=1), is_eos.int().argmax(dim=1) + 1, torch.full((rows,), width))
    return [int(n) for n in first_eos]


# ---------------------------------------------------------------------------------------------------------------
# Tokens and decoding settings


def _tokenizer(processor: Any) -> Any:
    return getattr(processor, "tokenizer", processor)


def vision_token_ids(processor: Any) -> list[int]:
    """The ids generation must never sample, by the processor's family (`VideoFormat.never_generated_ids`)."""
    return video_format(processor).never_generated_ids(processor)


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]


def eos_token_ids(model: Any, processor: Any) -> list[int]:
    """The ids that end a completion: the model's generation config's, else the tokenizer's EOS."""
    ids = _as_list(getattr(getattr(model, "generation_config", None), "eos_token_id", None))
    return ids or _as_list(_tokenizer(processor).eos_token_id)


def pad_token_id(model: Any, processor: Any) -> int:
    """The padding id: the tokenizer's pad token, else the model's, else the first EOS id."""
    tokenizer_pad = _tokenizer(processor).pad_token_id
    if tokenizer_pad is not None:
        return int(tokenizer_pad)
    model_pad = getattr(getattr(model, "generation_config", None), "pad_token_id", None)
    return int(model_pad) if model_pad is not None else eos_token_ids(model, processor)[0]


def generation_config(options: GenerationOptions, model: Any, processor: Any) -> GenerationConfig:
    """A `GenerationConfig` from `options` alone, with the model's EOS and pad ids and the vision tokens suppressed."""
    settings: dict[str, Any] = dict(
        max_new_tokens=options.max_new_tokens,
        do_sample=options.do_sample,
        num_return_sequences=options.num_return_sequences,
        eos_token_id=eos_token_ids(model, processor),
        pad_token_id=pad_token_id(model, processor),
        suppress_tokens=vision_token_ids(processor),
        repetition_penalty=1.0,
    )
    if options.do_sample:
        settings.update(temperature=options.temperature, top_p=options.top_p, top_k=options.top_k)
    else:
        settings.update(temperature=None, top_p=None, top_k=None)
    return GenerationConfig(**settings)


# ---------------------------------------------------------------------------------------------------------------
# Records -> prompts -> completions


# Characters per token tokenized, at most, to find a text over the prompt-length limit: English runs about 4, any
# text over 16 characters a token is not worth tokenizing to refuse.
CHARS_PER_TOKEN_CHECKED = 16


def text_tokens_at_least(record: dict, processor: Any, max_prompt_tokens: int) -> int:
    """A lower bound on the tokens of a record's question and options, found cheaply (0 when they are short).

    Byte-level BPE never makes more tokens than UTF-8 bytes, so a text of at most `max_prompt_tokens` bytes cannot
    be over the limit alone (0; the full prompt is measured after the processor). A longer one is tokenized up to
    `CHARS_PER_TOKEN_CHECKED * max_prompt_tokens` characters, never its whole 1 MB: the count of that prefix, less
    one for the token the cut may split, is a bound below the whole text's.
    """
    options = record.get("options") if isinstance(record.get("options"), list) else []
    text = "\n".join(str(part) for part in [record.get("question", ""), *options])
    if len(text.encode("utf-8", errors="replace")) <= max_prompt_tokens:
        return 0
    prefix = text[: CHARS_PER_TOKEN_CHECKED * max_prompt_tokens]
    count = len(_tokenizer(processor)(prefix, add_special_tokens=False)["input_ids"])
    return count if len(prefix) == len(text) else max(count - 1, 0)


def prepare_prompt(
    record: dict,
    processor: Any,
    sampling: FrameSampling,
    cache: FrameCache | None,
    prompt: PromptOptions = PromptOptions(),
    max_prompt_tokens: int | None = None,
    check_duration: bool = True,
) -> PreparedPrompt:
    """Build one record's model input: chat prompt, frames (loaded once, through `cache`), one processor call.

    Args:
        record: a canonical record; `video` is used as given (absolute as `read_records` returns it, else
            relative to the working directory).
        processor: the model's processor (chat template, tokenizer, video processor).
        sampling: the frame budget (with the family's frame-side factor, `VideoFormat.frame_sampling`).
        cache: the on-disk frame cache (None: decode every time).
        prompt: think / span format.
        max_prompt_tokens: refuse a prompt longer than this (tokens, video included); None: no limit.
        check_duration: refuse a record whose `duration` disagrees with its decoded video's (False: a deliberate
            mismatch, `GenerationOptions.check_durations`).

    Raises:
        PromptError: the record lacks a field, has an unknown task or missing options, its video is missing or
            undecodable or lasts other than its `duration` says (`temporal_rl.data.check_video_duration`), or
            its prompt is longer than `max_prompt_tokens`.
    """
    record_id = str(record.get("id", "<no id>")) if isinstance(record, dict) else "<not a record>"
    if not isinstance(record, dict):
        raise PromptError(record_id, f"expected a record (dict), got {type(record).__name__}")
    missing = [name for name in REQUIRED_FIELDS if not record.get(name)]
    if missing:
        raise PromptError(record_id, f"field {missing[0]!r} is missing or empty")
    if max_prompt_tokens is not None:
        text_tokens = text_tokens_at_least(record, processor, max_prompt_tokens)
        if text_tokens > max_prompt_tokens:
            raise PromptError(
                record_id,
                f"prompt too long: at least {text_tokens} tokens in its question and options alone, over "
                f"max_prompt_tokens={max_prompt_tokens}",
            )
    try:
        messages = prompt.messages(record)
        video = load_video(record["video"], video_format(processor).frame_sampling(sampling), cache)
        if check_duration and _is_seconds(record.get("duration")):
            check_video_duration(record["duration"], video.duration)
    except (ValueError, VideoError) as err:  # RecordError is a ValueError
        reason = str(err) if not isinstance(err, RecordError) else err.reason
        raise PromptError(record_id, reason) from err
    prepared = PreparedPrompt(record_id, model_inputs(processor, messages, video))
    if max_prompt_tokens is not None and prepared.num_tokens > max_prompt_tokens:
        raise PromptError(
            record_id,
            f"prompt too long: {prepared.num_tokens} tokens (video included), over max_prompt_tokens="
            f"{max_prompt_tokens}",
        )
    return prepared


def _is_seconds(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _model_device(model: Any) -> torch.device:
    device = getattr(model, "device", None)
    return device if isinstance(device, torch.device) else next(model.parameters()).device


@torch.no_grad()
def generate_batch(
    model: Any, processor: Any, prompts: Sequence[PreparedPrompt], options: GenerationOptions = GenerationOptions()
) -> list[Generation]:
    """Generate K = `options.num_return_sequences` completions for each prepared prompt, in one `generate` call.

    The prompts are left-padded into one batch on the model's device; `generate` expands each prompt to its K
    rows itself (the videos are not processed again).

    Returns:
        One `Generation` per prompt, in order.
    """
    if not prompts:
        return []
    k = options.num_return_sequences
    batch = left_pad_batch([p.inputs for p in prompts], pad_token_id(model, processor))
    device = _model_device(model)
    batch = {key: value.to(device) for key, value in batch.items()}
    config = generation_config(options, model, processor)
    with lean_lora_generation(model):  # an unmerged LoRA adapter in 2 operations per layer (decoding is op-bound)
        output = model.generate(**batch, generation_config=config)
    sequences = output if torch.is_tensor(output) else output.sequences
    generated = sequences[:, batch["input_ids"].shape[1] :].cpu()  # (B * K, L), rows grouped by prompt
    lengths = completion_lengths(generated, config.eos_token_id)
    ids = [generated[row, :length].tolist() for row, length in enumerate(lengths)]
    texts = _tokenizer(processor).batch_decode(ids, skip_special_tokens=True)
    return [
        Generation(
            record_id=prompt.record_id,
            completions=texts[i * k : (i + 1) * k],
            completion_ids=ids[i * k : (i + 1) * k],
            completion_tokens=lengths[i * k : (i + 1) * k],
            prompt_tokens=prompt.num_tokens,
        )
        for i, prompt in enumerate(prompts)
    ]


def iter_generations(
    model: Any,
    processor: Any,
    records: Iterable[dict],
    sampling: FrameSampling,
    cache: FrameCache | None,
    *,
    prompt: PromptOptions = PromptOptions(),
    generation: GenerationOptions = GenerationOptions(),
    on_error: Callable[[dict, PromptError], None] | None = None,
) -> Iterator[Generation]:
    """Generate for every record, `generation.batch_size` records per `generate` call, yielding in record order.

    Args:
        model: a model of a supported family (or a PEFT model around one), on any device; inputs follow it.
        processor: its processor.
        records: canonical records (`temporal_rl.data.read_records`).
        sampling, cache: the frame budget and the frame cache.
        prompt: think / span format.
        generation: decoding settings and the batch size.
        on_error: called with (record, error) for a record that cannot be prepared, which is then left out;
            when None the `PromptError` propagates.

    Yields:
        One `Generation` per record that could be prepared, a batch at a time.
    """
    if generation.seed is not None:
        torch.manual_seed(generation.seed)
    pending: list[PreparedPrompt] = []
    for record in records:
        try:
            limit, check = generation.max_prompt_tokens, generation.check_durations
            pending.append(prepare_prompt(record, processor, sampling, cache, prompt, limit, check))
        except PromptError as err:
            if on_error is None:
                raise
            on_error(record, err)
            continue
        if len(pending) == generation.batch_size:
            yield from generate_batch(model, processor, pending, generation)
            pending = []
    yield from generate_batch(model, processor, pending, generation)
