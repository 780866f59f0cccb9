"""`TemporalGRPOTrainer`: TRL's GRPOTrainer made correct for video prompts.

Stock TRL 1.16 generates with the video but computes the old, reference and policy log-probs of the loss without it
(no `pixel_values_videos`, no grid, flat positions) and raises no error: it trains a different model than it
sampled from. Here every forward — generation, old and reference log-probs, the policy forward — sees each row's
own video, grid, per-video tensors (Qwen2.5-VL's `second_per_grid_ts`) and token types, through TRL's shuffle and
split.

The vision tower runs once per distinct video per step (`args.share_vision_encoder`, on by default): with a frozen
tower (LoRA on the language model) its outputs are computed when the rollout's prompts are encoded, kept in a
`VisionFeatureCache` under per-row keys that travel with the rows, read by generation and by every loss-side
forward (also by the later optimizer steps of a rollout, `steps_per_generation > 1`), and released once the
rollout's last slice has been trained on. With a trainable tower, each forward encodes each of its distinct videos
once, with gradients. Off, every forward encodes every row's video, as stock TRL would.

This module owns the TRL override points and nothing else: frames come from `temporal_rl.video`, prompts from
`temporal_rl.prompts`, rewards from `temporal_rl.rewards`, per-row video bookkeeping from `video_inputs`, the
sharing mechanism from `vision_sharing`, and what differs between model families from `temporal_rl.families`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import datasets
import torch
from trl import GRPOTrainer

from temporal_rl.data import RecordError, check_video_duration
from temporal_rl.families import family_of
from temporal_rl.generation import vision_token_ids
from temporal_rl.grpo.config import TemporalGRPOConfig
from temporal_rl.grpo.video_rows import VideoRows, encode_video_prompts
from temporal_rl.grpo.vision_sharing import (
    PatchCounter,
    VisionFeatureCache,
    encode_videos,
    find_video_model,
    supplied_video_features,
    vision_is_frozen,
)
from temporal_rl.models.lora_generation import lean_lora_generation
from temporal_rl.prompts import PromptOptions
from temporal_rl.rewards import get_reward_funcs
from temporal_rl.video.cache import load_video
from temporal_rl.video.inputs import mm_token_type_ids
from temporal_rl.video.sampling import SampledVideo


def add_video_prompts(dataset: datasets.Dataset, options: PromptOptions) -> datasets.Dataset:
    """Add the `prompt` column (chat messages with the row's video path) to a canonical dataset."""

    def prompt_of(row: dict) -> dict:
        return {"prompt": options.messages(row, video=row["video"])}

    return dataset.map(prompt_of, desc="video prompts")


def declared_durations(*splits: datasets.Dataset | None) -> dict[str, list[tuple[str, float]]]:
    """Video path -> [(record id, the duration the record states, s)] over the rows of `splits` that state one: what
    each decoded video is checked against (`check_declared_durations`). Splits without the columns add nothing."""
    declared: dict[str, list[tuple[str, float]]] = {}
    for split in splits:
        if split is None or not {"video", "duration"} <= set(split.column_names):
            continue
        ids = split["id"] if "id" in split.column_names else [None] * len(split)
        for record_id, video, duration in zip(ids, split["video"], split["duration"], strict=True):
            if isinstance(duration, (int, float)) and not isinstance(duration, bool):
                declared.setdefault(video, []).append((record_id, float(duration)))
    return declared


def check_declared_durations(video: SampledVideo, declared: list[tuple[str, float]]) -> None:
    """Refuse a video whose decoded length disagrees with a record's stated `duration` (as SFT and generation do).

    Raises:
        RecordError: naming the record's id and field `duration`, with both durations.
    """
    for record_id, duration in declared:
        try:
            check_video_duration(duration, video.duration)
        except RecordError as err:
            raise RecordError(f"record {record_id!r}: {err.reason}", field="duration") from None


class TemporalGRPOTrainer(GRPOTrainer):
    """GRPO on canonical video data (grounding, mcq, grounded_qa rows, mixed in a batch if wanted).

    Takes a canonical dataset (`temporal_rl.data.load_dataset`) and adds the prompts itself; rewards default to
    `args.reward_funcs` by name. Overrides of `trl.GRPOTrainer` (TRL 1.16.0):

    - `_tokenize_prompts`: frames from the frame cache with their real fps (one processor call per distinct
      prompt and video), records each row's video inputs, and caches the vision outputs of a frozen tower;
    - `_generate_single_turn`: supplies the shared vision outputs to generation, and runs it with the LoRA layers
      in two operations each (`temporal_rl.models.lora_generation`: decoding is bound by operations per token);
    - `_generate_and_score_completions`: adds the rows' video inputs to the rollout batch, so they are shuffled
      and split with the rows they belong to;
    - `_compute_loss`: makes the batch's video inputs those of the policy forward;
    - `_get_per_token_logps_and_entropies`: feeds each chunk of rows its videos (or their shared vision
      outputs), grids, times and token types;
    - `training_step` / `prediction_step`: release a rollout's cached vision outputs once it is consumed, and log
      `video/vision_patches`, the patches the vision tower(s) encoded in the step (counted by a hook on them).

    Every video loaded is checked against the `duration` its records state (`check_declared_durations`, as SFT and
    generation do). The constructor also stops generation from sampling vision special tokens. Images are not
    supported. `self.share_vision_encoder` (from `args.share_vision_encoder`) switches the sharing. `self.family` is
    the model's family (`temporal_rl.families`): frame sizes, placeholder ids, per-video tensors and vision outputs
    come from it.
    """

    _tag_names = ["trl", "grpo", "temporal-rl", "video"]

    def __init__(
        self,
        model,
        args: TemporalGRPOConfig,
        train_dataset: datasets.Dataset,
        eval_dataset: datasets.Dataset | None = None,
        processing_class=None,
        reward_funcs=None,
        **kwargs,
    ):
        if not isinstance(args, TemporalGRPOConfig):
            raise TypeError(f"args must be a TemporalGRPOConfig, got {type(args).__name__}")
        if "prompt" not in train_dataset.column_names:
            train_dataset = add_video_prompts(train_dataset, args.prompt_options())
        if eval_dataset is not None and "prompt" not in eval_dataset.column_names:
            eval_dataset = add_video_prompts(eval_dataset, args.prompt_options())
        super().__init__(
            model=model,
            reward_funcs=reward_funcs if reward_funcs is not None else get_reward_funcs(args.reward_funcs),
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            **kwargs,
        )
        self.family = family_of(self.model)
        self.frame_sampling = self.family.video.frame_sampling(args.frame_sampling())
        self._image_pad_token_id, self._video_pad_token_id = self.family.video.placeholder_ids(self.processing_class)
        self.frame_cache = args.frame_cache()
        self._declared_durations = declared_durations(train_dataset, eval_dataset)
        self._video_rows: VideoRows | None = None
        self.share_vision_encoder = args.share_vision_encoder
        self.lean_lora_generation = True  # `temporal_rl.models.lora_generation`; False: PEFT's forward (benchmarks)
        self._vision_cache = VisionFeatureCache()
        self._rollout_keys: dict[str, list[int]] = {"train": [], "eval": []}  # cache keys of each mode's rollout
        self._patch_counter = PatchCounter()
        for counted in (self.model, self.ref_model):
            if counted is not None:
                self._patch_counter.attach(find_video_model(counted).visual)
        suppressed = sorted(
            set(self.generation_config.suppress_tokens or []) | set(vision_token_ids(self.processing_class))
        )
        self.generation_config.suppress_tokens = suppressed
        if self.generation_kwargs is not None:
            self.generation_kwargs["suppress_tokens"] = suppressed

    @contextmanager
    def _videos_of(self, rows: VideoRows) -> Iterator[None]:
        previous, self._video_rows = self._video_rows, rows
        try:
            yield
        finally:
            self._video_rows = previous

    def _encode_prompts(self, prompts: list, template_kwargs: dict) -> tuple[list[list[int]], VideoRows, int]:
        """Prompt token ids, per-row video inputs and the number of frames decoded, for B conversational prompts.

        The one place a subclass changes what video a prompt is shown (the ViaRL selector shows labelled
        candidate frames); everything else of `_tokenize_prompts` stays.
        """
        prompt_ids, rows, videos = encode_video_prompts(
            self.processing_class, prompts, self._load_video, template_kwargs
        )
        return prompt_ids, rows, sum(v.decoded_frames for v in videos.values())

    def _load_video(self, path: str) -> SampledVideo:
        """The frames of `path`, checked against the duration every record of that video states."""
        video = load_video(path, self.frame_sampling, self.frame_cache)
        check_declared_durations(video, self._declared_durations.get(path, []))
        return video

    def _tokenize_prompts(self, prompts: list):
        template_kwargs = dict(self.chat_template_kwargs or {})
        if self.chat_template is not None:
            template_kwargs["chat_template"] = self.chat_template
        prompt_ids, rows, decoded_frames = self._encode_prompts(prompts, template_kwargs)
        mode = "train" if self.model.training else "eval"
        if self.share_vision_encoder:
            rows = self._cache_vision_outputs(rows, mode)
        # Kept until the rollout is scored: generation and the old and reference log-probs inside the parent's
        # `_generate_and_score_completions` read the rows from here.
        self._video_rows = rows
        self._metrics[mode]["video/frames_decoded"].append(float(decoded_frames))
        # With sharing, generation gets the vision outputs from `_generate_single_turn`, not pixels.
        fields = rows.layout_kwargs(0, len(rows)) if self.share_vision_encoder else rows.model_kwargs(0, len(rows))
        fields["mm_token_type_ids"] = [
            mm_token_type_ids(torch.tensor(ids), self._image_pad_token_id, self._video_pad_token_id).tolist()
            for ids in prompt_ids
        ]
        return prompt_ids, None, fields

    def _cache_vision_outputs(self, rows: VideoRows, mode: str) -> VideoRows:
        """The rows with keys to their vision outputs, computed once for the rollout when the tower is frozen
        (computed here, under the loss forwards' autocast); the rows unchanged when it is trainable."""
        self._release_rollout(mode)  # normally released already, when its batch was consumed
        video_model = find_video_model(self.model)
        if not vision_is_frozen(video_model.visual):
            return rows
        with torch.no_grad(), self.accelerator.autocast():
            outputs = encode_videos(
                self.family, video_model, rows.pixel_values_videos, rows.video_grid_thw, self.accelerator.device
            )
        keys = self._vision_cache.store(outputs, owner=video_model.visual)
        self._rollout_keys[mode] = sorted(set(keys))
        return dataclasses.replace(rows, feature_keys=keys)

    def _release_rollout(self, mode: str) -> None:
        self._vision_cache.release(self._rollout_keys[mode])
        self._rollout_keys[mode] = []

    def _shared_vision(self, model, rows: VideoRows) -> AbstractContextManager:
        """A scope in which the forwards of `model` over `rows` get the rows' vision outputs: from the cache when
        they were cached from this model's tower, else encoded in the forward, each distinct video once."""
        video_model = find_video_model(model)
        if rows.feature_keys is not None and self._vision_cache.owner is video_model.visual:
            keys = rows.feature_keys

            def features():
                return self._vision_cache.lookup(keys)
        else:

            def features():
                return encode_videos(self.family, video_model, rows.pixel_values_videos, rows.video_grid_thw)

        return supplied_video_features(self.family, video_model, features, self._video_pad_token_id)

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        scope = self._shared_vision(self.model, self._video_rows) if self.share_vision_encoder else nullcontext()
        adapters = nullcontext()
        if self.lean_lora_generation:  # LoRA layers in 2 operations each while decoding, at the loss's precision
            dtype = torch.bfloat16 if self.args.bf16 else torch.float16 if self.args.fp16 else None
            adapters = lean_lora_generation(self.model, compute_dtype=dtype)
        with scope, adapters:
            return super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, num_generations, has_tool_images=has_tool_images
            )

    def training_step(self, model, inputs, num_items_in_batch):
        output = super().training_step(model, inputs, num_items_in_batch)
        if self._step % (self.args.steps_per_generation * self.num_iterations) == 0:
            self._release_rollout("train")  # the parent generates anew at the next step: this one is consumed
        if self._step % self.current_gradient_accumulation_steps == 0:
            self._metrics["train"]["video/vision_patches"].append(float(self._patch_counter.take()))
        return output

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        try:
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)
        finally:
            self._release_rollout("eval")
            self._metrics["eval"]["video/vision_patches"].append(float(self._patch_counter.take()))

    def _generate_and_score_completions(self, inputs):
        try:
            output = super()._generate_and_score_completions(inputs)
            output.update(self._video_rows.as_batch())
        finally:
            self._video_rows = None
        return output

    def _compute_loss(self, model, inputs):
        with self._videos_of(VideoRows.from_batch(inputs)):
            return super()._compute_loss(model, inputs)

    def _get_per_token_logps_and_entropies(
        self,
        model,
        input_ids,
        attention_mask,
        logits_to_keep,
        batch_size=None,
        compute_entropy=False,
        compute_aux_loss=False,
        **image_inputs,
    ):
        """Per-token log-probs (B, logits_to_keep) of the completion tokens, each row with its own video.

        Same contract and chunking as the parent's; the image arguments it receives from TRL are all None here.
        With sharing, each chunk's forward gets its rows' vision outputs (cached, or encoded once per distinct
        video of the chunk) instead of their pixels.
        """
        if any(value is not None for value in image_inputs.values()):
            raise ValueError("TemporalGRPOTrainer trains on videos only; image inputs are not supported")
        rows = self._video_rows
        if rows is None or len(rows) != input_ids.size(0):
            raise RuntimeError(
                f"no video inputs for this forward ({0 if rows is None else len(rows)} rows for "
                f"{input_ids.size(0)} sequences): a video forward must run inside a rollout or a loss computation"
            )
        batch_size = batch_size or input_ids.size(0)
        all_logps, all_entropies, all_aux_losses = [], [], []
        for start in range(0, input_ids.size(0), batch_size):
            end = min(start + batch_size, input_ids.size(0))
            ids, mask = input_ids[start:end], attention_mask[start:end]
            if self.share_vision_encoder:
                chunk = rows.select(start, end)
                video_inputs, scope = chunk.layout_kwargs(0, len(chunk), ids.device), self._shared_vision(model, chunk)
            else:
                video_inputs, scope = rows.model_kwargs(start, end, ids.device), nullcontext()
            model_inputs = {
                "input_ids": ids,
                "attention_mask": mask,
                "mm_token_type_ids": mm_token_type_ids(ids, self._image_pad_token_id, self._video_pad_token_id),
                **video_inputs,
            }
            if compute_aux_loss:
                model_inputs["output_router_logits"] = True
            labels = ids.masked_fill(mask == 0, -100)
            labels[:, :-logits_to_keep] = -100  # only the completion tokens are scored
            with self.accelerator.autocast(), scope:
                outputs = model(**model_inputs, labels=labels, fused_lm_head=True)
            all_logps.append(outputs.log_probs[:, -logits_to_keep:])
            if compute_entropy:
                all_entropies.append(outputs.entropy[:, -logits_to_keep:])
            if compute_aux_loss:
                all_aux_losses.append(outputs.aux_loss)
        logps = torch.cat(all_logps, dim=0)
        entropies = torch.cat(all_entropies, dim=0) if compute_entropy else None
        aux_loss = torch.stack(all_aux_losses).mean() if compute_aux_loss else None
        return logps, entropies, aux_loss


def train_grpo(data_args, config: TemporalGRPOConfig, model_args) -> TemporalGRPOTrainer:
    """GRPO with the configured rewards on the canonical data, every forward with its video (`recipes/grpo.py`).

    Args:
        data_args: `temporal_rl.configs.DataArguments`.
        config: the `TemporalGRPOConfig`.
        model_args: `temporal_rl.models.loading.TemporalModelConfig`; LoRA when `use_peft`.

    Returns:
        The trainer, after training and saving the model or adapter with the processor in `config.output_dir`.
    """
    from temporal_rl.training import train_job

    return train_job(TemporalGRPOTrainer, data_args, config, model_args)
