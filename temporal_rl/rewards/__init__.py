"""Rewards: completion text -> score, for TRL's GRPOTrainer. No torch, no trainer state (foundation; imports
nothing of temporal_rl's outside this package).

- `parsing.py`: pure text parsers (spans, option letters, tags, free-text answers); never raise.
- `temporal.py`: span maths (temporal IoU, IoP, clipping).
- `scoring.py`: one completion against one record's gold (shared with `temporal_rl.eval`).
- `task_rewards.py`: the registered TRL reward functions of the tasks (format, accuracy, IoU, ...).
- `selector.py`: the frame selector's output format and its registered rewards (ViaRL).
- `registry.py`: `REWARDS`, `register_reward`, `get_reward_funcs`.

Use in a recipe:

```python
from temporal_rl.rewards import get_reward_funcs

reward_funcs = get_reward_funcs(["format", "iou", "accuracy"])  # or "my_pkg.my_module.my_reward"
```

Add a reward: decorate a function `f(completions, **kwargs) -> list[float | None]` with
`@register_reward("name")` in the module that defines it; the dataset columns arrive as keyword lists over the batch
rows. A module of this package is imported below, so its rewards are registered by `import temporal_rl.rewards`
alone: no torch, no PyAV, no import of a method's package (tests/test_rewards.py checks it in a fresh interpreter).
"""

from temporal_rl.rewards.registry import REWARDS, get_reward_funcs, register_reward
from temporal_rl.rewards.selector import (
    SelectorLengthReward,
    selector_format_reward,
    selector_index_reward,
    selector_length_reward,
)
from temporal_rl.rewards.task_rewards import (
    accuracy_reward,
    exact_match_reward,
    format_reward,
    iou_reward,
    think_format_reward,
)

__all__ = [
    "REWARDS",
    "SelectorLengthReward",
    "accuracy_reward",
    "exact_match_reward",
    "format_reward",
    "get_reward_funcs",
    "iou_reward",
    "register_reward",
    "selector_format_reward",
    "selector_index_reward",
    "selector_length_reward",
    "think_format_reward",
]
