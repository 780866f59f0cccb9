"""`ViaRLSelectorTrainer`: ViaRL stage 1, a frame selector trained by REINFORCE++ on TRL, rewarded by a frozen answer
model (ViaRL, [arXiv 2505.15447](https://huggingface.co/papers/2505.15447); REINFORCE++,
[arXiv 2501.03262](https://huggingface.co/papers/2501.03262)).

One step, for each row of the generation batch:

1. the T candidates of its video (`temporal_rl.viarl.candidates.candidate_frames`, once per distinct video per step,
   through the frame cache); the row's `num_candidates` column is set to the real T (a short video has fewer
   candidates) and `num_frames_to_select` to N (at most T), and its prompt is rebuilt with them
   (`build_selector_messages`);
2. the selector (the policy) sees the labelled low-resolution candidates and samples G completions
   `<think>...</think><index>i_1, ..., i_N</index>`;
3. the rewards: `selector_format`, `selector_index`, `selector_length` and `selector_answer` (`AnswerModelReward`:
   the frozen answer model answers from the N chosen high-resolution frames, or the uniform fallback for an invalid
   list, which earns no answer credit), weighted by `reward_weights`;
4. REINFORCE++ advantages per token, by the registered estimator `args.advantage_estimator`
   (`temporal_rl.advantages.ADVANTAGE_ESTIMATORS`), in place of GRPO's group-normalised ones: the k1 KL
   `log pi_old - log pi_ref` folded into the token rewards with `kl_coef`, the scalar reward on the last valid token,
   discounted returns, whitened over all valid tokens of the global batch;
5. TRL's loss: the PPO clipped surrogate (`epsilon`) with these (B, L) advantages, `loss_type="dapo"` (a token-level
   mean over the batch); `beta` is 0, so TRL adds no k3 KL term.

pi_old is the sampling policy's log-probs (TRL's when it computed them, else one no-grad forward); pi_ref is the
selector with its LoRA adapters disabled (or the frozen "ref" copy of a pretrained adapter, as TRL does): no second
copy of the selector. The answer model is loaded once, frozen (`eval()`, no gradients), optionally 4-bit and with a
LoRA adapter (`load_answer_model`), and is not handed to accelerate (it is never trained).

This module owns the selector's rollout and advantages and the answer-model reward. Frames come from
`temporal_rl.viarl.candidates`, the selector's text side from `temporal_rl.viarl.selector`, the maths from
`temporal_rl.advantages`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import datasets
import torch
from trl.models.utils import disable_gradient_checkpointing
from trl.trainer.utils import use_adapter

from temporal_rl.advantages import get_advantage_estimator
from temporal_rl.generation import GenerationOptions, PreparedPrompt, generate_batch
from temporal_rl.grpo.trainer import TemporalGRPOTrainer
from temporal_rl.grpo.video_rows import VideoRows, encode_video_prompts
from temporal_rl.prompts import PromptOptions
from temporal_rl.rewards import get_reward_funcs
from temporal_rl.rewards.parsing import completion_text
from temporal_rl.rewards.scoring import choice_score
from temporal_rl.rewards.selector import (
    NUM_CANDIDATES_COLUMN,
    NUM_SELECT_COLUMN,
    SelectorLengthReward,
    answer_reward,
    is_valid_selection,
    parse_indices,
)
from temporal_rl.rewards.task_rewards import column_rows
from temporal_rl.viarl.answer_stage import answer_prompt
from temporal_rl.viarl.candidates import CandidateFrames, candidate_frames, select_frames
from temporal_rl.viarl.config import ViaRLSelectorConfig
from temporal_rl.viarl.selector import build_selector_messages, fallback_indices

# The in-memory column through which each row hands its `CandidateFrames` to the answer reward (never stored).
CANDIDATES_COLUMN = "candidate_frames"
ANSWER_TASKS = ("mcq", "grounded_qa")


# ----------------------------------------------------------------------------------------------------------------
# The answer model


def freeze(model: torch.nn.Module) -> torch.nn.Module:
    """`model` in eval mode with every parameter's `requires_grad` off (returned for chaining)."""
    model.eval()
    model.requires_grad_(False)
    return model


def load_answer_model(
    name_or_path: str,
    adapter: str | None = None,
    load_in_4bit: bool = False,
    dtype: str | torch.dtype = "auto",
    device: str | torch.device | None = None,
):
    """The frozen answer model and its processor.

    Args:
        name_or_path: Hub id or directory of a checkpoint of a supported family (`temporal_rl.families`).
        adapter: a LoRA adapter directory (e.g. the answer stage of a previous ViaRL cycle); merged into the weights,
            except on a 4-bit model, where it stays a PEFT layer.
        load_in_4bit: NF4 weights with double quantization (`temporal_rl.models.loading.load_model`'s path; the vision
            tower and the head stay in the compute dtype).
        dtype: "auto" (the checkpoint's), a name ("bfloat16") or a `torch.dtype`.
        device: where to put a non-quantized model (a 4-bit one is placed by its device map).

    Returns:
        `(model, processor)`, the model in eval mode with no parameter requiring gradients.
    """
    from trl import ModelConfig

    from temporal_rl.models.loading import load_model, load_processor

    dtype_name = dtype if isinstance(dtype, str) else str(dtype).removeprefix("torch.")
    model_args = ModelConfig(model_name_or_path=name_or_path, dtype=dtype_name, load_in_4bit=load_in_4bit)
    model = load_model(model_args, adapter=adapter, merge_adapter=True, device=device)
    return freeze(model), load_processor(model_args)


class AnswerModelReward:
    """The ViaRL answer reward: the frozen answer model answers from the frames each completion selects.

    For each completion: parse its index list; the answer model gets those candidates at the answer resolution in
    time order (`select_frames`), or the uniform fallback when the list is invalid (`fallback_indices`); it answers
    the row's question with its options (`PromptOptions`, greedy, `generate_batch`); the reward is
    `answer_reward(valid, correct, weight)`: `weight` if the list was valid and the option letter right, else 0.
    Identical (video, question, selection) prompts of a batch are generated once.

    TRL contract: `f(completions, **columns) -> list[float | None]`. The columns it reads: `candidate_frames` (the
    row's `CandidateFrames`, set by `ViaRLSelectorTrainer`), `num_candidates`, `num_frames_to_select`, `task`,
    `question`, `options`, `answer` and `id`. None for rows without candidates or T/N, and for tasks without options
    (only mcq and grounded_qa are scored, by the option letter).

    Logs per scored row, through TRL's `log_metric`: `selector/answer_accuracy` (the answer model right, whatever
    frames it got), `selector/fallback_rate` (invalid list), and per call `selector/answer_generations` (distinct
    prompts generated).

    Args:
        model: the answer model (frozen; see `load_answer_model`).
        processor: its processor.
        prompt_options: the wording of its prompt.
        batch_size: prompts per `generate` call.
        max_new_tokens: its answer length (greedy).
        weight: the reward of a right answer from a valid list (1.0: the trainer weighs it by `answer_weight`).
    """

    __name__ = "selector_answer_reward"

    def __init__(
        self,
        model,
        processor,
        *,
        prompt_options: PromptOptions = PromptOptions(),
        batch_size: int = 8,
        max_new_tokens: int = 128,
        weight: float = 1.0,
    ):
        self.model, self.processor, self.prompt_options = model, processor, prompt_options
        self.generation = GenerationOptions(max_new_tokens=max_new_tokens, do_sample=False, batch_size=batch_size)
        self.weight = float(weight)

    def __repr__(self) -> str:
        return f"AnswerModelReward({type(self.model).__name__}, {self.generation}, weight={self.weight})"

    def prepare(self, record: dict, candidates: CandidateFrames, indices: Sequence[int]) -> PreparedPrompt:
        """The answer model's input for `record`'s question on the candidates at `indices` (in time order)."""
        return answer_prompt(self.processor, record, select_frames(candidates, indices), self.prompt_options)

    def answer(self, prompts: Sequence[PreparedPrompt]) -> list[str]:
        """The answer model's greedy answers, `generation.batch_size` prompts per `generate` call."""
        texts = []
        size = self.generation.batch_size
        for start in range(0, len(prompts), size):
            chunk = generate_batch(self.model, self.processor, prompts[start : start + size], self.generation)
            texts.extend(generation.completions[0] for generation in chunk)
        return texts

    def __call__(self, completions: Sequence[Any], log_metric=None, **columns) -> list[float | None]:
        size = len(completions)

        def column(name: str) -> list:
            return column_rows(columns.get(name), size, name)

        names = (CANDIDATES_COLUMN, NUM_CANDIDATES_COLUMN, NUM_SELECT_COLUMN, "task", "question", "options", "answer")
        rows = list(zip(*(column(name) for name in names), column("id"), strict=True))
        prompts: dict[tuple, PreparedPrompt] = {}
        plans: list[tuple | None] = []  # per row: (prompt key, valid) or None
        for completion, (candidates, num_candidates, num_select, task, question, options, gold, row_id) in zip(
            completions, rows, strict=True
        ):
            if candidates is None or num_candidates is None or num_select is None or task not in ANSWER_TASKS:
                plans.append(None)
                continue
            if not gold:
                plans.append(None)
                continue
            parsed = parse_indices(completion_text(completion))
            valid = is_valid_selection(parsed, num_candidates, num_select)
            indices = tuple(sorted(fallback_indices(parsed, int(num_candidates), int(num_select))))
            options = list(options or [])
            key = (candidates.video.path, candidates.num_candidates, question, tuple(options), indices)
            if key not in prompts:
                record = {"id": row_id, "task": task, "question": question, "options": options}
                prompts[key] = self.prepare(record, candidates, indices)
            plans.append((key, valid))
        keys = list(prompts)
        answers = dict(zip(keys, self.answer([prompts[key] for key in keys]), strict=True))
        rewards: list[float | None] = []
        for plan, (*_, options, gold, _row_id) in zip(plans, rows, strict=True):
            if plan is None:
                rewards.append(None)
                continue
            key, valid = plan
            _, correct = choice_score(answers[key], gold, list(options or []) or None)
            rewards.append(answer_reward(1.0 if valid else 0.0, correct, self.weight))
            if log_metric is not None:
                log_metric("selector/answer_accuracy", 1.0 if correct else 0.0)
                log_metric("selector/fallback_rate", 0.0 if valid else 1.0)
        if log_metric is not None:
            log_metric("selector/answer_generations", float(len(keys)))
        return rewards


# ----------------------------------------------------------------------------------------------------------------
# Rewards and prompts from the config


def selector_reward_funcs(config: ViaRLSelectorConfig, answer: AnswerModelReward) -> list:
    """The reward functions named by `config.reward_funcs`, in order: `selector_answer` is `answer`,
    `selector_length` a `SelectorLengthReward` with the config's bounds and bonus 1 (`length_bonus` is its weight),
    the others from the registry."""
    funcs = []
    for name in config.reward_funcs:
        if name == "selector_answer":
            funcs.append(answer)
        elif name == "selector_length":
            funcs.append(SelectorLengthReward(config.length_min_tokens, config.length_max_tokens, bonus=1.0))
        else:
            funcs.extend(get_reward_funcs([name]))
    return funcs


def add_selector_prompts(dataset: datasets.Dataset, config: ViaRLSelectorConfig) -> datasets.Dataset:
    """Add the `prompt` column (the selector's messages with the configured T and N) to a canonical dataset.

    The trainer rebuilds each prompt at every step with the video's real T; this column is what TRL sees before.
    """
    label = config.selector_label()

    def prompt_of(row: dict) -> dict:
        messages = build_selector_messages(
            row, config.num_candidates, config.num_frames_to_select, video=row["video"], label=label,
            video_position=config.selector_video_position,
        )  # fmt: skip
        return {"prompt": messages}

    return dataset.map(prompt_of, desc="selector prompts")


# ----------------------------------------------------------------------------------------------------------------
# Scalar rewards


def sequence_rewards(rewards_per_func: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each completion's scalar reward and whether any reward function scored it.

    Args:
        rewards_per_func: (B, F), NaN where a function returned None.
        weights: (F,).

    Returns:
        `(rewards, scored)`: (B,) weighted sum of the non-NaN entries (as TRL's `sum_then_normalize`), and (B,) bool,
        False for rows every function left out (their reward is 0 here; the trainer gives them no advantage).
    """
    scored = ~torch.isnan(rewards_per_func).all(dim=1)
    rewards = (rewards_per_func * weights.to(rewards_per_func.device).unsqueeze(0)).nansum(dim=1)
    return torch.where(scored, rewards, torch.zeros_like(rewards)), scored


# ----------------------------------------------------------------------------------------------------------------
# The trainer


class ViaRLSelectorTrainer(TemporalGRPOTrainer):
    """ViaRL's frame selector by REINFORCE++ (see the module docstring), on a canonical dataset.

    Overrides of `TemporalGRPOTrainer` / `trl.GRPOTrainer` (TRL 1.16.0):

    - `_encode_prompts`: the selector is shown each video's labelled candidates (`selector_video`), not the file;
    - `_generate_and_score_completions`: sets each row's candidates, T, N and prompt before the rollout; after it,
      computes pi_old (if TRL did not) and pi_ref and replaces GRPO's advantages by REINFORCE++'s (B, L) ones;
    - `_calculate_rewards`: keeps the gathered per-function rewards for the scalar rewards of step 4.

    TRL's `_compute_loss` takes the (B, L) advantages as they are. Needs a PEFT (LoRA) selector when `kl_coef > 0`:
    the reference policy is the model with its adapters disabled (or TRL-style, a frozen "ref" copy of the adapter
    of a `PeftModel` passed in). Gradient checkpointing works as in TRL.

    Args:
        model: the selector: a model (with `peft_config`), a `PeftModel`, or a path.
        args: a `ViaRLSelectorConfig`.
        train_dataset, eval_dataset: canonical datasets (`temporal_rl.data.load_dataset`); a `prompt` column is added.
        processing_class: the selector's processor.
        reward_funcs: default from `args.reward_funcs` (`selector_reward_funcs`).
        answer_model, answer_processor: an already loaded answer model (frozen here); default: loaded from
            `args.answer_model_name_or_path` by `load_answer_model`.
        **kwargs: `peft_config`, callbacks, ... as for `GRPOTrainer`.
    """

    _tag_names = ["trl", "temporal-rl", "video", "viarl", "reinforce++"]

    def __init__(
        self,
        model,
        args: ViaRLSelectorConfig,
        train_dataset: datasets.Dataset,
        eval_dataset: datasets.Dataset | None = None,
        processing_class=None,
        reward_funcs=None,
        answer_model=None,
        answer_processor=None,
        **kwargs,
    ):
        if not isinstance(args, ViaRLSelectorConfig):
            raise TypeError(f"args must be a ViaRLSelectorConfig, got {type(args).__name__}")
        from peft import PeftModel

        is_peft = isinstance(model, PeftModel)
        if args.kl_coef > 0 and not is_peft and kwargs.get("peft_config") is None:
            raise ValueError(
                "kl_coef > 0 needs a reference policy, which is the selector with its LoRA adapters disabled: train "
                "adapters (use_peft: true / peft_config) or set kl_coef: 0"
            )
        if is_peft and args.kl_coef > 0 and "ref" not in model.peft_config:
            _add_reference_adapter(model)
        if answer_model is None:
            answer_model, answer_processor = load_answer_model(
                args.answer_model_name_or_path,
                args.answer_adapter,
                load_in_4bit=args.answer_load_in_4bit,
                dtype=args.answer_dtype,
            )
        elif answer_processor is None:
            raise ValueError("answer_model was given without answer_processor; pass both")
        answer = AnswerModelReward(
            freeze(answer_model),
            answer_processor,
            prompt_options=args.prompt_options(),
            batch_size=args.answer_batch_size,
            max_new_tokens=args.answer_max_new_tokens,
        )
        if reward_funcs is None:
            reward_funcs = selector_reward_funcs(args, answer)
        if "prompt" not in train_dataset.column_names:
            train_dataset = add_selector_prompts(train_dataset, args)
        if eval_dataset is not None and "prompt" not in eval_dataset.column_names:
            eval_dataset = add_selector_prompts(eval_dataset, args)
        super().__init__(
            model=model,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            reward_funcs=reward_funcs,
            **kwargs,
        )
        self.answer_reward = answer
        if not getattr(answer_model, "is_quantized", False) and getattr(answer_model, "hf_device_map", None) is None:
            answer_model.to(self.accelerator.device)
        self.label_style = args.label_style()
        self._step_candidates: dict[str, CandidateFrames] = {}
        self._rollout_rewards_per_func: torch.Tensor | None = None

    # -- candidates and prompts ------------------------------------------------------------------------------------

    def _candidates(self, path: str) -> CandidateFrames:
        """The video's candidates, decoded (or read from the frame cache) once per step."""
        if path not in self._step_candidates:
            self._step_candidates[path] = candidate_frames(
                path,
                self.args.num_candidates,
                self.args.selector_long_side,
                self.args.answer_long_side,
                self.frame_cache,
                label_style=self.label_style,
            )
        return self._step_candidates[path]

    def _selector_rows(self, inputs: list[dict]) -> list[dict]:
        """Copies of the rows with their candidates, real T, N (at most T) and the selector prompt built with them."""
        label = self.args.selector_label()
        rows = []
        for row in inputs:
            candidates = self._candidates(row["video"])
            count = candidates.num_candidates
            select = min(self.args.num_frames_to_select, count)
            prompt = build_selector_messages(
                row, count, select, video=row["video"], label=label, video_position=self.args.selector_video_position
            )
            rows.append(
                {
                    **row,
                    "prompt": prompt,
                    NUM_CANDIDATES_COLUMN: count,
                    NUM_SELECT_COLUMN: select,
                    CANDIDATES_COLUMN: candidates,
                }
            )
        return rows

    def _encode_prompts(self, prompts: list, template_kwargs: dict) -> tuple[list[list[int]], VideoRows, int]:
        """Prompt ids and video inputs showing each prompt its labelled candidates (one processor call per prompt)."""
        prompt_ids, rows, videos = encode_video_prompts(
            self.processing_class, prompts, lambda path: self._candidates(path).selector_video(), template_kwargs
        )
        return prompt_ids, rows, sum(self._candidates(path).decoded_frames for path in videos)

    # -- rollout ----------------------------------------------------------------------------------------------------

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._rollout_rewards_per_func = rewards_per_func
        return rewards_per_func

    def _generate_and_score_completions(self, inputs):
        try:
            rows = self._selector_rows(inputs)
            output = super()._generate_and_score_completions(rows)
            rewards_per_func = self._rollout_rewards_per_func
        finally:
            self._step_candidates, self._rollout_rewards_per_func = {}, None
        mode = "train" if self.model.training else "eval"
        group_size = self.num_generations if mode == "train" else self.num_generations_eval
        # The gathered batch's rewards (NaN where no reward scored a row): a group baseline may span processes.
        rewards, scored = sequence_rewards(rewards_per_func, self.reward_weights)
        rewards = torch.where(scored, rewards, torch.full_like(rewards, float("nan")))
        local = slice(self.accelerator.process_index * len(rows), (self.accelerator.process_index + 1) * len(rows))
        mask = output["completion_mask"].bool()
        if "tool_mask" in output:
            mask = mask & output["tool_mask"].bool()
        mask = mask & scored[local].unsqueeze(1)
        old, ref = self._rollout_log_probs(output)
        advantages = self._token_advantages(rewards, old, ref, mask, local, group_size)
        output["advantages"] = advantages
        self._log_rollout(mode, old, ref, mask, advantages)
        return output

    def _rollout_log_probs(self, output: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L) log-probs of the sampled completion tokens under pi_old and pi_ref (each row with its video).

        pi_old: TRL's `old_per_token_logps` when it computed them, else a no-grad forward of the policy now (the
        policy that sampled). pi_ref: the same forward with the adapters disabled, or with the "ref" adapter.
        """
        input_ids = torch.cat([output["prompt_ids"], output["completion_ids"]], dim=1)
        attention_mask = torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1)
        logits_to_keep = output["completion_ids"].size(1)
        mode = "train" if self.model.training else "eval"
        batch_size = self.args.per_device_train_batch_size if mode == "train" else self.args.per_device_eval_batch_size

        def logps(model):
            return self._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size=batch_size
            )[0]

        with (
            torch.no_grad(),
            disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs),
            self._videos_of(VideoRows.from_batch(output)),
        ):
            old = output.get("old_per_token_logps")
            if old is None:
                old = logps(self.model)
            if self.args.kl_coef == 0:
                return old, old
            unwrapped = self.accelerator.unwrap_model(self.model)
            with use_adapter(unwrapped, adapter_name="ref" if "ref" in unwrapped.peft_config else None):
                ref = logps(self.model)
        return old, ref

    def _sum_across_processes(self, tensor: torch.Tensor) -> torch.Tensor:
        return self.accelerator.reduce(tensor, reduction="sum")

    def _token_advantages(
        self, rewards: torch.Tensor, old: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor, rows: slice, group: int
    ) -> torch.Tensor:
        """(B, L) advantages of this process's rows by the configured estimator (`args.advantage_estimator`), from the
        gathered batch's rewards of which `rows` are this process's."""
        estimator = get_advantage_estimator(self.args.advantage_estimator)
        return estimator(
            rewards,
            old,
            ref,
            mask,
            beta=self.args.kl_coef,
            gamma=self.args.gamma,
            group_size=group,
            rows=rows,
            global_stats=self._sum_across_processes,
        )

    def _log_rollout(self, mode: str, old, ref, mask, advantages) -> None:
        """The mean k1 KL over the global batch's valid tokens; each row's first-token advantage in the completions
        table (in place of GRPO's per-sequence one that TRL logged)."""
        kl = torch.where(mask, old - ref, torch.zeros_like(old))
        totals = self._sum_across_processes(torch.stack([kl.sum(), mask.sum().to(kl.dtype)]))
        self._metrics[mode]["reinforce_pp/kl"].append((totals[0] / totals[1].clamp(min=1.0)).item())
        first = self.accelerator.gather(advantages[:, 0].contiguous()).tolist()
        logged = self._logs["advantages"]
        for _ in range(min(len(first), len(logged))):
            logged.pop()
        logged.extend(first)


def _add_reference_adapter(model) -> None:
    """Add a frozen "ref" copy of a `PeftModel`'s default adapter (TRL's reference for a pretrained adapter)."""
    model.add_adapter("ref", model.peft_config["default"])
    for name, param in model.named_parameters():
        if ".default." in name:
            model.get_parameter(name.replace(".default.", ".ref.")).data.copy_(param.data)


def train_selector(data_args, config: ViaRLSelectorConfig, model_args, adapter: str | None = None):
    """ViaRL stage 1: the frame selector by REINFORCE++, rewarded by the frozen answer model of the config.

    `adapter`: a LoRA adapter of the selector to continue (the previous ViaRL cycle's), loaded trainable onto
    `model_args.model_name_or_path`. Saves the selector's LoRA adapter (or model) and its processor to
    `config.output_dir`.
    """
    from temporal_rl.training import train_job

    return train_job(ViaRLSelectorTrainer, data_args, config, model_args, adapter=adapter)
