"""`ViaRLSelectorConfig`: every knob of ViaRL's frame selector trained by REINFORCE++ against a frozen answer model.

Invalid combinations fail in `__post_init__` with a message that says how to fix them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from temporal_rl.advantages import ADVANTAGE_ESTIMATORS
from temporal_rl.grpo.config import TemporalGRPOConfig
from temporal_rl.prompts import VIDEO_POSITIONS

# ViaRL's rewards, by name, and the config field holding each one's weight (`reward_weights` is derived from these).
SELECTOR_REWARD_WEIGHT_FIELDS = {
    "selector_format": "format_weight",
    "selector_index": "index_weight",
    "selector_length": "length_bonus",
    "selector_answer": "answer_weight",
}
# TRL loss types that are a PPO clipped surrogate averaged over tokens (REINFORCE++'s loss).
SELECTOR_LOSS_TYPES = ("dapo", "bnpo")
LABEL_COLOUR_NAMES = {
    (255, 0, 0): "red",
    (0, 255, 0): "green",
    (0, 0, 255): "blue",
    (255, 255, 0): "yellow",
    (255, 255, 255): "white",
    (0, 0, 0): "black",
}


@dataclass
class ViaRLSelectorConfig(TemporalGRPOConfig):
    """ViaRL stage 1: a frame selector trained by REINFORCE++, rewarded by a frozen answer model.

    The selector sees `num_candidates` labelled low-resolution frames and the question, and lists
    `num_frames_to_select` indices; the answer model answers from those frames at high resolution. The `video_*`
    sampling fields of `VideoArguments` are not used (the candidates are T uniform frames); `frame_cache_dir` is, and
    `think` / `span_format` / `video_position` shape the answer model's prompt.

    > Parameters that control the answer model

    answer_model_name_or_path: the frozen answer model (ViaRL: Qwen2.5-VL-7B-Instruct). Required.
    answer_adapter: a LoRA adapter directory loaded onto it (the answer stage of a previous cycle).
    answer_load_in_4bit: load it in 4 bits (NF4): less memory, but the accuracy reward is then the quantized model's.
    answer_dtype: its dtype ("auto": the checkpoint's).
    answer_batch_size: distinct (video, selection) prompts per `generate` call of the answer model.
    answer_max_new_tokens: its greedy answer length (ViaRL: 128).

    > Parameters that control the candidate frames

    num_candidates: T, frames sampled uniformly from each video (even; ViaRL: 128). A video with fewer frames gives
        fewer candidates, and its rows say so (the `num_candidates` column is set from the real T).
    num_frames_to_select: N, indices the selector lists (ViaRL: 8); clamped to T for a video with fewer frames.
    selector_long_side, answer_long_side: long side in pixels of the selector's and the answer model's frames (ViaRL:
        112 and 896), each side a multiple of 28.
    label_colour, label_position, label_scale, label_margin: how the index is drawn on each selector frame
        (`temporal_rl.video.labels.LabelStyle`).
    label_description: how the selector's prompt names the label; None: derived from the colour and position
        ("red number in the bottom-right corner").
    selector_video_position: where the selector's prompt puts the video: "first" (before the question, ViaRL) or
        "last" (after it; the tiny random models learned to read frames only so, docs/measurements.md).
        `video_position` is the answer model's.

    > Parameters that control REINFORCE++

    advantage_estimator: a name in `temporal_rl.advantages.ADVANTAGE_ESTIMATORS`: "reinforce++" (global whitening of
        the returns), "reinforce++-baseline" (each prompt's mean reward subtracted first) or "viarl-local" (whitening
        over this process's rows, as ViaRL's code).
    kl_coef: the k1 KL (log pi_old - log pi_ref per token) folded into the token rewards (ViaRL: 1e-3). TRL's `beta`
        (a k3 loss term) must stay 0.
    gamma: discount of the returns (1).
    format_weight, index_weight, length_bonus, answer_weight: the weights of the rewards `selector_format`,
        `selector_index`, `selector_length`, `selector_answer` (each a 0/1 score; ViaRL: 1, 1, 0.2, 2; maximum 4.2).
        `reward_weights` is derived from them (other reward names get 1.0).
    length_min_tokens, length_max_tokens: completion lengths that earn the length bonus (ViaRL: 80..512; 110 for
        N=16).

    The loss is TRL's PPO clipped surrogate (`epsilon` = 0.2) with `loss_type="dapo"`: the sum over all valid tokens
    of the accumulation window divided by their global count, a token-level mean over the batch (REINFORCE++).
    `"bnpo"` (a token mean per micro-batch) is accepted too.
    """

    trainer_built_rewards: ClassVar[tuple[str, ...]] = ("selector_length", "selector_answer")

    reward_funcs: list[str] = field(
        default_factory=lambda: list(SELECTOR_REWARD_WEIGHT_FIELDS),
        metadata={"help": "Reward names: selector_format, selector_index, selector_length, selector_answer, ..."},
    )
    answer_model_name_or_path: str | None = field(
        default=None, metadata={"help": "The frozen answer model (Hub id or directory). Required."}
    )
    answer_adapter: str | None = field(
        default=None, metadata={"help": "LoRA adapter directory to load onto the answer model."}
    )
    answer_load_in_4bit: bool = field(default=False, metadata={"help": "Load the answer model in 4 bits (NF4)."})
    answer_dtype: str = field(
        default="auto", metadata={"help": "Answer model dtype: auto, bfloat16, float16 or float32."}
    )
    answer_batch_size: int = field(
        default=8, metadata={"help": "Distinct (video, selection) prompts per answer-model generate call."}
    )
    answer_max_new_tokens: int = field(default=128, metadata={"help": "Answer model's greedy answer length."})
    num_candidates: int = field(default=128, metadata={"help": "T: candidate frames per video (even)."})
    num_frames_to_select: int = field(default=8, metadata={"help": "N: frames the selector picks."})
    selector_long_side: int = field(default=112, metadata={"help": "Long side (px) of the selector's frames."})
    answer_long_side: int = field(default=896, metadata={"help": "Long side (px) of the answer model's frames."})
    label_colour: list[int] = field(
        default_factory=lambda: [255, 0, 0], metadata={"help": "RGB of the index drawn on each selector frame."}
    )
    label_position: str = field(
        default="bottom-right",
        metadata={"help": "Corner of the index: bottom-right, bottom-left, top-right or top-left."},
    )
    label_scale: int | None = field(default=None, metadata={"help": "Pixels per font dot (default: from frame size)."})
    label_margin: int | None = field(default=None, metadata={"help": "Pixels between label and frame edges."})
    label_description: str | None = field(
        default=None, metadata={"help": "How the selector prompt names the label (default: from colour and position)."}
    )
    selector_video_position: str = field(
        default="first",
        metadata={"help": "Where the selector's prompt puts the video: first (ViaRL) or last (after the question)."},
    )
    advantage_estimator: str = field(
        default="reinforce++", metadata={"help": "reinforce++, reinforce++-baseline or viarl-local."}
    )
    kl_coef: float = field(default=1e-3, metadata={"help": "k1 KL coefficient folded into the token rewards."})
    gamma: float = field(default=1.0, metadata={"help": "Discount of the returns."})
    format_weight: float = field(default=1.0, metadata={"help": "Weight of selector_format."})
    index_weight: float = field(default=1.0, metadata={"help": "Weight of selector_index."})
    answer_weight: float = field(default=2.0, metadata={"help": "Weight of selector_answer."})
    length_bonus: float = field(default=0.2, metadata={"help": "Weight of selector_length."})
    length_min_tokens: int = field(default=80, metadata={"help": "Fewest completion tokens earning the bonus."})
    length_max_tokens: int = field(default=512, metadata={"help": "Most completion tokens earning the bonus."})

    def __post_init__(self):
        import math

        if self.beta != 0.0:
            raise ValueError(
                f"beta={self.beta}: TRL's beta adds a k3 KL loss term, which REINFORCE++ does not have; set beta: 0 "
                "and use kl_coef (the k1 KL folded into the token rewards)"
            )
        super().__post_init__()
        if not self.answer_model_name_or_path:
            raise ValueError("answer_model_name_or_path is required: the frozen model that answers from the frames")
        for name in ("answer_batch_size", "answer_max_new_tokens", "selector_long_side", "answer_long_side"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("selector_long_side", "answer_long_side"):
            if getattr(self, name) < 28:
                raise ValueError(f"{name} must be at least 28 px (one Qwen patch block), got {getattr(self, name)}")
        if self.answer_dtype not in ("auto", "bfloat16", "float16", "float32"):
            raise ValueError(f"answer_dtype must be auto, bfloat16, float16 or float32, got {self.answer_dtype!r}")
        if not isinstance(self.num_candidates, int) or self.num_candidates < 2 or self.num_candidates % 2:
            raise ValueError(
                "num_candidates must be an even integer >= 2 (Qwen encodes frames in pairs), got "
                f"{self.num_candidates!r}"
            )
        if not isinstance(self.num_frames_to_select, int) or not 1 <= self.num_frames_to_select <= self.num_candidates:
            raise ValueError(
                f"num_frames_to_select must be between 1 and num_candidates ({self.num_candidates}), "
                f"got {self.num_frames_to_select!r}"
            )
        if self.selector_video_position not in VIDEO_POSITIONS:
            raise ValueError(
                f"selector_video_position must be one of {', '.join(VIDEO_POSITIONS)}, got "
                f"{self.selector_video_position!r}"
            )
        self.label_style()  # fails on a bad colour, position, scale or margin
        self.selector_label()
        if self.advantage_estimator not in ADVANTAGE_ESTIMATORS:
            raise ValueError(
                f"unknown advantage_estimator {self.advantage_estimator!r}; expected one of "
                f"{', '.join(ADVANTAGE_ESTIMATORS)} (temporal_rl.advantages.ADVANTAGE_ESTIMATORS)"
            )
        if not (math.isfinite(self.kl_coef) and self.kl_coef >= 0):
            raise ValueError(f"kl_coef must be a finite number >= 0, got {self.kl_coef}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")
        if self.loss_type not in SELECTOR_LOSS_TYPES:
            raise ValueError(
                f"loss_type {self.loss_type!r} is not REINFORCE++'s token-level mean of the PPO clipped surrogate; "
                "use loss_type: dapo (the mean over all tokens of the batch) or bnpo (per micro-batch)"
            )
        if not 0 <= self.length_min_tokens <= self.length_max_tokens:
            raise ValueError(
                f"need 0 <= length_min_tokens <= length_max_tokens, got {self.length_min_tokens} and "
                f"{self.length_max_tokens}"
            )
        if (
            "selector_length" in self.reward_funcs
            and self.max_completion_length is not None
            and self.length_min_tokens > self.max_completion_length
        ):
            raise ValueError(
                f"length_min_tokens ({self.length_min_tokens}) exceeds max_completion_length "
                f"({self.max_completion_length}): no completion could earn the length bonus; lower length_min_tokens "
                "or raise max_completion_length"
            )
        weights = []
        for name in self.reward_funcs:
            field_name = SELECTOR_REWARD_WEIGHT_FIELDS.get(name)
            weight = float(getattr(self, field_name)) if field_name else 1.0
            if not math.isfinite(weight):
                raise ValueError(f"the weight of {name} must be finite, got {weight}")
            weights.append(weight)
        if self.reward_weights is not None and [float(w) for w in self.reward_weights] != weights:
            raise ValueError(
                "reward_weights is derived from format_weight, index_weight, length_bonus and answer_weight (other "
                "rewards get 1.0); set those fields instead of reward_weights"
            )
        self.reward_weights = weights

    def label_style(self):
        """The `temporal_rl.video.labels.LabelStyle` of the selector's frames."""
        from temporal_rl.video.labels import LabelStyle

        return LabelStyle(
            colour=tuple(self.label_colour),
            position=self.label_position,
            scale=self.label_scale,
            margin=self.label_margin,
        )

    def selector_label(self) -> str:
        """How the selector's prompt names the drawn index: `label_description`, else derived from the style."""
        if self.label_description:
            return self.label_description
        colour = LABEL_COLOUR_NAMES.get(tuple(self.label_colour))
        if colour is None:
            raise ValueError(
                f"label_colour {list(self.label_colour)} has no name the prompt can use; set label_description "
                "(e.g. 'orange number in the bottom-right corner')"
            )
        return f"{colour} number in the {self.label_position} corner"
