"""`TemporalGRPOConfig`: TRL's `GRPOConfig` for video prompts (Temporal-RLT's GRPO), parsed by `TrlParser`.

Invalid combinations fail in `__post_init__` with a message that says how to fix them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from trl import GRPOConfig

from temporal_rl.configs import TrainingBudgetArguments, VideoArguments


@dataclass
class TemporalGRPOConfig(TrainingBudgetArguments, VideoArguments, GRPOConfig):
    """`GRPOConfig` for video prompts: the video fields of `VideoArguments` plus the rewards by name.

    > Parameters that control the rewards

    reward_funcs: names in `temporal_rl.rewards.REWARDS` or dotted import paths; `reward_weights` (GRPOConfig)
        weights them in the same order. Temporal-R1's released weighting is 0.5 iou + 0.5 format.

    > Parameters that control the vision encoder

    share_vision_encoder: encode each distinct video of a step once. With a frozen vision tower (LoRA on the
        language model) its output is computed once per rollout and reused by every completion of the group and
        every loss-side forward; with a trainable one it is shared within each forward. Same log-probs and
        gradients as encoding every row (`temporal_rl.grpo.vision_sharing`).
    """

    reward_funcs: list[str] = field(
        default_factory=lambda: ["format", "iou"],
        metadata={"help": "Reward names (temporal_rl.rewards.REWARDS) or dotted import paths."},
    )
    share_vision_encoder: bool = field(
        default=True,
        metadata={
            "help": "Encode each distinct video once per step (frozen vision tower) or once per forward "
            "(trainable one) instead of once per row and forward. Same results; false for the unshared path."
        },
    )
    # Reward names a subclass's trainer constructs itself (not in the registry), e.g. the ViaRL answer reward.
    trainer_built_rewards: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self):
        super().__post_init__()
        self.validate_video()
        self.validate_budget()
        from temporal_rl.rewards import get_reward_funcs

        if not self.reward_funcs:
            raise ValueError("reward_funcs is empty: name at least one reward, e.g. [format, iou]")
        # fails with the list of known names; a subclass's trainer builds the names in `trainer_built_rewards`
        get_reward_funcs([name for name in self.reward_funcs if name not in self.trainer_built_rewards])
        if self.reward_weights is not None and len(self.reward_weights) != len(self.reward_funcs):
            raise ValueError(
                f"reward_weights has {len(self.reward_weights)} values but reward_funcs names "
                f"{len(self.reward_funcs)} rewards ({', '.join(self.reward_funcs)}): give one weight per reward"
            )
        if "think_format" in self.reward_funcs and not self.think:
            raise ValueError("the think_format reward requires think: true (the prompt must ask for <think>)")
        if self.num_generations is not None and self.num_generations < 2:
            raise ValueError("num_generations must be at least 2: GRPO's advantage compares completions of a prompt")
