"""Rewards: completion text -> score, for TRL's GRPOTrainer. No torch, no trainer state.

- `parsing.py`: pure text parsers (spans, option letters, tags, free-text answers); never raise.
- `temporal.py`: span maths (temporal IoU, IoP, clipping).
- `scoring.py`: one completion against one record's gold (shared with `temporal_rl.eval`).
- `task_rewards.py`: the registered TRL reward functions.
- `registry.py`: `REWARDS`, `register_reward`, `get_reward_funcs`.

Use in a recipe:

```python
from temporal_rl.rewards import get_reward_funcs

reward_funcs = get_reward_funcs(["format", "iou", "accuracy"])  # or "my_pkg.my_module.my_reward"
```

Add a reward: decorate a function `f(completions, **kwargs) -> list[float | None]` with
`@register_reward("name")`; the dataset columns arrive as keyword lists over the batch rows.
"""

from temporal_rl.rewards.registry import REWARDS, get_reward_funcs, register_reward
from temporal_rl.rewards.task_rewards import (
    accuracy_reward,
    exact_match_reward,
    format_reward,
    iou_reward,
    think_format_reward,
)

__all__ = [
    "REWARDS",
    "accuracy_reward",
    "exact_match_reward",
    "format_reward",
    "get_reward_funcs",
    "iou_reward",
    "register_reward",
    "think_format_reward",
]
