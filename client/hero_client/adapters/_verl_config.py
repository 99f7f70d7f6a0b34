"""The verl adapter's configuration (HERO_* env, then the verl config's `hero` block) and
what it reads from verl's samples: validation markers, per-prompt group sizes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from hero_client._exceptions import InvalidArgumentError
from hero_client.adapters._common import AdapterConfig

VALIDATION_SPLITS = frozenset({"test", "val", "valid", "validation", "eval"})


def _get(cfg: Any, path: str) -> Any:
    cur = cfg
    for part in path.split("."):
        if cur is None:
            return None
        if isinstance(cur, Mapping):
            cur = cur.get(part)
        else:
            try:
                cur = cur.get(part) if hasattr(cur, "get") else getattr(cur, part, None)
            except Exception:
                return None
    return cur


def config_from_verl(config: Any = None, **overrides: Any) -> AdapterConfig:
    """HERO_* env, then the config's `hero` / `reward.hero` block, then `overrides`."""
    values: dict[str, Any] = {}
    job = _get(config, "trainer.experiment_name")
    n = _get(config, "actor_rollout_ref.rollout.n")
    known = {f.name for f in fields(AdapterConfig)}
    for block in (_get(config, "hero"), _get(config, "reward.hero")):
        if block is not None:
            for k in block:
                if k not in known:
                    raise InvalidArgumentError(
                        f"unknown hero setting {k!r} in the verl config (known: {sorted(known)})"
                    )
                values[k] = block[k]
    values.update({k: v for k, v in overrides.items() if v is not None})
    base = AdapterConfig.from_env()
    defaults: dict[str, Any] = {}
    if base.job_id == AdapterConfig.job_id and job:
        defaults["job_id"] = str(job)
    if base.group_size is None and n:
        defaults["group_size"] = int(n)
    return AdapterConfig.from_env(**{**defaults, **values})


def _is_validation(meta: Mapping[str, Any] | None, extra_info: Any) -> bool:
    """meta_info["validate"] (batch manager), or the sample's own marker (reward loop)."""
    if meta and meta.get("validate"):
        return True
    if not isinstance(extra_info, Mapping):
        return False
    if _truthy(extra_info.get("hero_validation")):
        return True
    split = extra_info.get("split")
    return isinstance(split, str) and split.lower() in VALIDATION_SPLITS


def _truthy(x: Any) -> bool:
    if isinstance(x, str):
        return x.lower() in ("1", "true", "yes")
    return bool(x) if x is not None else False


def _rollout_n(nt: Mapping[str, Any], extra_info: Any) -> int | None:
    """The sample's own group size: `__rollout_n__` in the sample or its extra_info."""
    for src in (nt, extra_info if isinstance(extra_info, Mapping) else {}):
        n = src.get("__rollout_n__")
        if n is not None:
            try:
                return int(n)
            except (TypeError, ValueError):
                pass
    return None


def _rm_bypasses_manager(config: Any) -> bool:
    """verl's reward loop skips the manager when an RM is enabled and no custom function is
    set (RewardLoopWorker.compute_score calls compute_score_disrm instead)."""
    for rm, custom in (
        ("reward.reward_model.enable", "reward.custom_reward_function.path"),
        ("reward_model.enable", "custom_reward_function.path"),  # verl <= 0.7
    ):
        if _truthy(_get(config, rm)) and _get(config, custom) is None:
            return True
    return False
