"""temporal_rl: RL fine-tuning of video language models on TRL, two methods on one shared foundation.

| layer        | packages and modules                                                        | may import            |
|--------------|-----------------------------------------------------------------------------|-----------------------|
| foundation   | `data`, `prompts`, `video/`, `rewards/`, `models/`, `families`,             | the foundation        |
|              | `generation`, `advantages`, `resumable`, `configs`, `sft`, `training`,      |                       |
|              | `environment` (pinned threads, offline hubs, for runs and child processes)  |                       |
| Temporal-RLT | `grpo/` (video GRPO: config, trainer), `filtering/` (variance-aware filter) | the foundation        |
| ViaRL        | `viarl/` (candidates, selector, REINFORCE++ trainer, answer stage, cycles)  | the foundation, `grpo`|
| evaluation   | `eval/` (metrics, baselines, evaluation runs), `hub` (publishing)           | the foundation, `eval`|
| experiments  | `experiments/` (demo, filter experiment, ViaRL experiment)                  | anything but another  |
|              |                                                                             | experiment            |

Nothing imports upwards: the foundation never imports a method, a method never imports evaluation or an experiment,
and `data_tools` imports only the records, prompts, rewards and the numpy-only video modules (never a trainer).
tests/test_architecture.py enforces this table. Each package's docstring says what it owns. This file imports
nothing: import from the modules.
"""
