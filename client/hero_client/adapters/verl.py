"""verl reward managers backed by HERO, grouping samples by verl's `uid`.

- `HeroRewardManager` (reward loop; the default from verl 0.7.0, the only path from 0.7.1):
  verl calls `run_single(data)` once per sample, on a random reward-loop worker, so the
  group is assembled by the server's barrier: every sample goes to `/score_sample` with
  group_id = uid, group_size = `actor_rollout_ref.rollout.n` (or HERO_GROUP_SIZE) and, on
  the v1 trainer, sample_index = session_id.

      reward.reward_manager.source=importlib
      reward.reward_manager.name=HeroRewardManager
      reward.reward_manager.module.path=pkg://hero_client.adapters.verl   # or this file's path
      algorithm.norm_adv_by_std_in_grpo=False      # keeps HERO's weight alive

- `HeroBatchRewardManager` (legacy batch path, verl <= 0.7.0 with use_reward_loop=False):
  gets the whole batch, groups it by uid (never by position: verl reorders the batch) and
  scores it in one `/score_batch` call.

Settings come from HERO_* environment variables (HERO_URL, HERO_TOKEN, HERO_JOB_ID,
HERO_GROUP_SIZE, HERO_DEADLINE_S, HERO_TIMEOUT_S, HERO_FALLBACK_REWARD, HERO_VERIFIER,
HERO_PRESET), overridden by a `hero` block in the config when there is one
(`+reward.hero.url=...`). The job id defaults to `trainer.experiment_name`.

Validation samples are scored by the rule verifier alone: no group, no running-sigma
update, reward = verifier label. verl's reward loop hands the manager no `meta_info`
(`AgentLoopWorker._compute_score` builds the sample without it), so a validation sample is
recognised per sample: `extra_info.split` in test/val/validation/eval (verl's example
data preprocessing sets it), or the marker `extra_info.hero_validation = True`. The batch
manager also honours `meta_info["validate"]`. Mark the validation set: an unmarked
validation sample would wait in the barrier for `rollout.n` samples that never come.

The group size is per sample when the data says so: `__rollout_n__` (the v1 trainer's
per-prompt n) in the sample or in its `extra_info`, else `rollout.n` / HERO_GROUP_SIZE.

Every sample returns the same reward_extra_info keys (verl reads the key set from the
first sample): "acc" (the verifier label, for verl's accuracy metrics), the hero_* logs
of /get_reward, and "hero_validation". A sample that cannot be scored (retries exhausted,
409 for a late sample) gets HERO_FALLBACK_REWARD (default 0.0; `none` raises) with
hero_error = 1; a sample of a partial group keeps its reward with hero_partial = 1
(HERO_ON_PARTIAL=fallback|raise to change that). Both are counted
(`hero_client.adapters.stats()`) and logged as warnings.

The connection pool has no cap (HERO_MAX_CONNECTIONS): every sample waiting in the
barrier holds a connection. verl's reward-loop workers are Ray async actors, which take
at most `max_concurrency` (Ray's default: 1000) calls at once; keep the samples in flight
per worker (rollout batch x n / reward.num_workers) under that.

verl is imported only when verl loads a manager class from this module (module
`__getattr__`), so importing hero_client never needs verl or torch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from hero_client._async import AsyncHeroClient
from hero_client._exceptions import HeroError
from hero_client._sync import HeroClient
from hero_client.adapters._common import (
    LOG_KEYS,
    AdapterConfig,
    count,
    error_logs,
    log,
    message_text,
    on_failure,
    on_partial_group,
    sample_logs,
)
from hero_client.adapters._verl_config import (
    _is_validation,
    _rm_bypasses_manager,
    _rollout_n,
    config_from_verl,
)
from hero_client.schema import GroupIn

EXTRA_KEYS: tuple[str, ...] = ("acc", *LOG_KEYS, "hero_validation")


def _extra(logs: Mapping[str, float], acc: float, validation: bool) -> dict[str, float]:
    out = {k: float(logs.get(k, 0.0)) for k in LOG_KEYS}
    return {"acc": acc, **out, "hero_validation": float(validation)}


class HeroRewardLoop:
    """The reward-loop logic, free of verl types (tested on its own)."""

    def __init__(self, cfg: AdapterConfig, client: AsyncHeroClient | None = None) -> None:
        self.cfg = cfg
        self._client = client

    @property
    def client(self) -> AsyncHeroClient:
        if self._client is None:  # created on the event loop that uses it
            self._client = self.cfg.async_client()
        return self._client

    async def score(
        self,
        *,
        uid: str,
        response: str,
        ground_truth: str,
        prompt: str = "",
        session_id: int | None = None,
        validation: bool = False,
        group_size: int | None = None,
    ) -> dict[str, Any]:
        """{"reward_score": float, "reward_extra_info": {...}} for one sample."""
        size = group_size or self.cfg.group_size
        try:
            if validation:
                v = await self.client.verify(ground_truth, [response], verifier=self.cfg.verifier)
                label = float(v.verifier[0])
                logs = dict.fromkeys(LOG_KEYS, 0.0)
                logs["hero_verifier"] = label
                count("validation")
                return {"reward_score": label, "reward_extra_info": _extra(logs, label, True)}
            if not size:
                raise HeroError("group size unknown: set HERO_GROUP_SIZE or rollout.n")
            r = await self.client.score_sample(
                self.cfg.job_id,
                group_id=uid,
                group_size=size,
                prompt=prompt,
                reference=ground_truth,
                response=response,
                sample_index=session_id
                if session_id is not None and 0 <= session_id < size
                else None,
                deadline_s=self.cfg.deadline_s,
                shaping=self.cfg.shaping,
                verifier=self.cfg.verifier,
            )
        except HeroError as e:
            fb = on_failure(self.cfg, f"sample of group {uid!r}", 1, e)
            return {"reward_score": fb, "reward_extra_info": _extra(error_logs(), 0.0, validation)}
        if r.partial and not on_partial_group(self.cfg, uid, r.group_count, size):
            fb = on_failure(self.cfg, f"sample of group {uid!r}", 1, HeroError("partial group"))
            logs = error_logs()
            logs["hero_partial"] = 1.0
            logs["hero_group_count"] = float(r.group_count)
            return {"reward_score": fb, "reward_extra_info": _extra(logs, 0.0, False)}
        count("scored")
        logs = {
            "hero_verifier": float(r.verifier),
            "hero_rm_score": r.rm_score,
            "hero_normalized": r.normalized,
            "hero_weight": r.weight,
            "hero_sigma": r.sigma,
            "hero_sigma_bar": r.sigma_bar,
            "hero_all_correct": float(r.collapse == "all_correct"),
            "hero_all_incorrect": float(r.collapse == "all_incorrect"),
            "hero_partial": float(r.partial),
            "hero_group_count": float(r.group_count),
        }
        extra = _extra(logs, float(r.verifier), False)
        return {"reward_score": r.reward, "reward_extra_info": extra}


class HeroBatchScorer:
    """The legacy batch logic, free of verl types: group by uid, one /score_batch call."""

    def __init__(self, cfg: AdapterConfig, client: HeroClient | None = None) -> None:
        self.cfg = cfg
        self.client = client or cfg.sync_client()

    def score(
        self,
        uids: Sequence[Any],
        responses: Sequence[str],
        ground_truths: Sequence[str],
        prompts: Sequence[str] | None = None,
        validation: Sequence[bool] | None = None,
    ) -> tuple[list[float], dict[str, list[float]]]:
        """Rewards and extra info per row; rows flagged in `validation` are scored by the
        verifier alone and never join a group."""
        n = len(responses)
        rewards = [0.0] * n
        extra = {k: [0.0] * n for k in EXTRA_KEYS}
        val = [i for i in range(n) if validation is not None and validation[i]]
        if val:
            self._verify_rows(val, responses, ground_truths, rewards, extra)
        order: dict[str, list[int]] = {}
        for i, u in enumerate(uids):
            if validation is None or not validation[i]:
                order.setdefault(str(u), []).append(i)
        if not order:
            return rewards, extra
        groups = []
        for uid, idx in order.items():
            refs = {ground_truths[i] for i in idx}
            if len(refs) != 1:
                log.warning("hero: uid %r has %d different ground truths", uid, len(refs))
            groups.append(
                GroupIn(
                    group_id=uid,
                    prompt=prompts[idx[0]] if prompts is not None else "",
                    reference=ground_truths[idx[0]],
                    responses=[responses[i] for i in idx],
                )
            )
        try:
            out = self.client.score_batch(
                self.cfg.job_id, groups, shaping=self.cfg.shaping, verifier=self.cfg.verifier
            )
        except HeroError as e:
            rows = [i for idx in order.values() for i in idx]
            fb = on_failure(self.cfg, f"batch of {len(rows)} samples", len(rows), e)
            for i in rows:
                rewards[i] = fb
                extra["hero_error"][i] = 1.0
            return rewards, extra
        count("scored", sum(len(idx) for idx in order.values()))
        for idx, g in zip(order.values(), out.groups, strict=True):
            for pos, i in enumerate(idx):
                rewards[i] = g.rewards[pos]
                row = _extra(sample_logs(g, pos, False, len(idx)), float(g.verifier[pos]), False)
                for k, v in row.items():
                    extra[k][i] = v
        return rewards, extra

    def _verify_rows(
        self,
        rows: list[int],
        responses: Sequence[str],
        ground_truths: Sequence[str],
        rewards: list[float],
        extra: dict[str, list[float]],
    ) -> None:
        by_ref: dict[str, list[int]] = {}
        for i in rows:
            by_ref.setdefault(ground_truths[i], []).append(i)
        for ref, idx in by_ref.items():
            for i in idx:
                extra["hero_validation"][i] = 1.0
            try:
                v = self.client.verify(ref, [responses[i] for i in idx], verifier=self.cfg.verifier)
            except HeroError as e:
                fb = on_failure(self.cfg, f"{len(idx)} validation samples", len(idx), e)
                for i in idx:
                    rewards[i] = fb
                    extra["hero_error"][i] = 1.0
                continue
            count("validation", len(idx))
            for i, label in zip(idx, v.verifier, strict=True):
                rewards[i] = float(label)
                extra["acc"][i] = float(label)
                extra["hero_verifier"][i] = float(label)


# -- verl classes, built on first access -------------------------------------------------
def _valid_response_text(tokenizer: Any, item: Any) -> str:
    ids = item.batch["responses"]
    length = ids.shape[-1]
    valid = int(item.batch["attention_mask"][-length:].sum())
    return str(tokenizer.decode(ids[:valid], skip_special_tokens=True))


def _build_reward_loop_manager() -> type:
    import inspect

    from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase

    # verl 0.7.0's base takes (config, tokenizer); later ones (config, tokenizer, compute_score)
    base_takes_score = "compute_score" in inspect.signature(RewardManagerBase.__init__).parameters

    class HeroRewardManager(RewardManagerBase):  # type: ignore[misc]
        """verl reward-loop manager: each sample joins its uid's group on the server."""

        def __init__(
            self,
            config: Any,
            tokenizer: Any,
            compute_score: Any = None,
            reward_router_address: str | None = None,
            reward_model_tokenizer: Any = None,
            **kwargs: Any,
        ) -> None:
            if base_takes_score:
                super().__init__(config, tokenizer, compute_score)
            else:
                super().__init__(config, tokenizer)
                self.compute_score = compute_score
            if _rm_bypasses_manager(config):
                log.error(
                    "hero: reward_model.enable=True without a custom reward function: verl's "
                    "reward loop scores every sample with its own reward model and NEVER "
                    "calls HeroRewardManager. Set reward.reward_model.enable=False (HERO "
                    "runs its own RM), or set custom_reward_function.path."
                )
            self.hero = HeroRewardLoop(config_from_verl(config, **kwargs))

        async def run_single(self, data: Any) -> dict[str, Any]:
            data = data[-1:]  # multi-sequence outputs: the last one carries the reward
            item = data[0]
            nt = item.non_tensor_batch
            text = await asyncio.get_running_loop().run_in_executor(
                None, _valid_response_text, self.tokenizer, item
            )
            session = nt.get("session_id")
            extra_info = nt.get("extra_info")
            return await self.hero.score(
                uid=str(nt["uid"]),
                response=text,
                ground_truth=message_text(nt["reward_model"]["ground_truth"]),
                prompt=message_text(nt.get("raw_prompt", "")),
                session_id=int(session) if session is not None else None,
                validation=_is_validation(getattr(data, "meta_info", None), extra_info),
                group_size=_rollout_n(nt, extra_info),
            )

    return HeroRewardManager


def _build_batch_manager() -> type:
    import torch
    from verl.workers.reward_manager.abstract import AbstractRewardManager

    class HeroBatchRewardManager(AbstractRewardManager):  # type: ignore[misc]
        """verl legacy batch manager: the batch grouped by uid, one /score_batch call."""

        def __init__(
            self,
            tokenizer: Any,
            num_examine: int = 0,
            compute_score: Any = None,
            reward_fn_key: str = "data_source",
            **kwargs: Any,
        ) -> None:
            self.tokenizer = tokenizer
            self.num_examine = num_examine
            self.reward_fn_key = reward_fn_key
            hero = {k[5:]: v for k, v in kwargs.items() if k.startswith("hero_")}
            self.scorer = HeroBatchScorer(config_from_verl(None, **hero))

        def __call__(self, data: Any, return_dict: bool = False) -> Any:
            # TensorDict has no `in`: keys() is needed
            has_rm = "rm_scores" in data.batch.keys()  # noqa: SIM118
            if has_rm and hasattr(self, "_extract_reward_from_rm_scores"):
                return self._extract_reward_from_rm_scores(data, return_dict)
            prompt_len = data.batch["prompts"].shape[-1]
            valid = data.batch["attention_mask"][:, prompt_len:].sum(dim=-1)
            responses = data.batch["responses"]
            texts = [
                self.tokenizer.decode(responses[i][: int(valid[i])], skip_special_tokens=True)
                for i in range(len(data))
            ]
            nt = data.non_tensor_batch
            truths = [message_text(x["ground_truth"]) for x in nt["reward_model"]]
            prompts = [message_text(p) for p in nt["raw_prompt"]] if "raw_prompt" in nt else None
            infos = nt["extra_info"] if "extra_info" in nt else [None] * len(data)
            meta = getattr(data, "meta_info", None)
            val = [_is_validation(meta, x) for x in infos]
            rewards, extra = self.scorer.score(list(nt["uid"]), texts, truths, prompts, val)
            reward_tensor = torch.zeros_like(data.batch["responses"], dtype=torch.float32)
            for i, r in enumerate(rewards):
                reward_tensor[i, int(valid[i]) - 1] = r
            if return_dict:
                return {"reward_tensor": reward_tensor, "reward_extra_info": extra}
            return reward_tensor

    return HeroBatchRewardManager


_BUILDERS = {
    "HeroRewardManager": _build_reward_loop_manager,
    "HeroBatchRewardManager": _build_batch_manager,
}
_BUILT: dict[str, type] = {}


def __getattr__(name: str) -> Any:
    if name in _BUILDERS:
        if name not in _BUILT:
            _BUILT[name] = _BUILDERS[name]()
        return _BUILT[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def register_legacy(name: str = "hero") -> type:
    """Register HeroBatchRewardManager in verl's legacy registry as `name`
    (then `reward_model.reward_manager=hero`)."""
    from verl.workers.reward_manager import register

    cls: type = __getattr__("HeroBatchRewardManager")
    register(name)(cls)
    return cls


# HeroRewardManager and HeroBatchRewardManager are provided by __getattr__ (verl needed).
__all__ = ["EXTRA_KEYS", "HeroBatchScorer", "HeroRewardLoop", "config_from_verl", "register_legacy"]
