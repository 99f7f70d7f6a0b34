"""Trainer adapters. Each module imports its trainer lazily (only when the trainer uses
the adapter), so `import hero_client` never needs torch, trl, verl or openrlhf.

- `hero_client.adapters.trl`: `make_hero_reward(...)`, a GRPOTrainer reward function.
- `hero_client.adapters.verl`: `HeroRewardManager` (reward loop, verl >= 0.7.1) and
  `HeroBatchRewardManager` (legacy batch path), both grouping by `uid`.
- `hero_client.adapters.openrlhf`: `AgentExecutor` (gathers a prompt's n rollouts into one
  group call, `--train.agent_func_path`) and `reward_func` (`--reward.remote_url x.py`).

`stats()` counts, for this process, the samples every adapter handed back: scored,
partial, fallback (not scored: the fallback reward, hero_error=1), raised, validation.

Recipes: docs/integrations.md.
"""

from hero_client.adapters._common import PartialGroupError, reset_stats, stats

__all__ = ["PartialGroupError", "reset_stats", "stats"]
