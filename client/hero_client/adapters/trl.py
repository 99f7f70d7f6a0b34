"""TRL GRPOTrainer: `make_hero_reward(...)` returns a reward function scored by HERO.

    from hero_client.adapters.trl import make_hero_reward
    reward = make_hero_reward("http://127.0.0.1:8000", job_id="run-1", num_generations=8)
    trainer = GRPOTrainer(model=..., reward_funcs=[reward],
                          args=GRPOConfig(num_generations=8, scale_rewards="none", ...))

GRPOTrainer calls `reward(prompts=..., completions=..., **dataset_columns)` with the
`num_generations` completions of each prompt consecutive (its RepeatSampler). A call holds
whole groups only when the per-process batch is a multiple of num_generations, which is
always true on one process. `mode`:
- "group": split the call into groups of num_generations, check that each has one prompt
  and one reference, score them all in one /score_batch call (raises GroupLayoutError when
  the layout is not whole groups);
- "barrier": send every completion to /score_sample with its position in the global batch
  (process index x per-process batch + i), so groups split across processes are
  assembled by the server;
- "auto" (default): "group" when the call holds whole groups, else "barrier".

Keep HERO's variance weight alive: `scale_rewards="none"` (TRL's default "group" divides
by the group std and cancels it), and use HERO as the only reward function (no
reward_weights mixing). TRL is imported only by the barrier mode (for the process index).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import httpx

from hero_client._base import Shaping
from hero_client._exceptions import GroupLayoutError, HeroError, InvalidArgumentError
from hero_client._sync import HeroClient
from hero_client.adapters._common import count, log, message_text
from hero_client.schema import GroupIn

REFERENCE_COLUMNS = ("reference", "answer", "solution", "ground_truth", "label")
RewardFunc = Callable[..., list[float | None]]


def _distributed() -> tuple[int, Callable[[str], str]]:
    """(process index, broadcast of a string from process 0) under accelerate, if any."""
    try:
        from accelerate import PartialState
        from accelerate.utils import broadcast_object_list
    except ImportError:  # pragma: no cover - TRL always brings accelerate
        return 0, lambda x: x
    state = PartialState()
    if state.num_processes <= 1:
        return state.process_index, lambda x: x

    def bcast(x: str) -> str:
        box = [x]
        broadcast_object_list(box, from_process=0)
        return str(box[0])

    return state.process_index, bcast


class HeroTRLReward:
    """The reward function object (callable); build it with `make_hero_reward`."""

    def __init__(
        self,
        client: HeroClient,
        job_id: str,
        num_generations: int,
        reference_key: str | None = None,
        mode: Literal["auto", "group", "barrier"] = "auto",
        shaping: Shaping = None,
        verifier: str | None = None,
        deadline_s: float | None = None,
        fallback_reward: float | None = None,
        name: str = "hero",
    ) -> None:
        if num_generations < 1:
            raise InvalidArgumentError("num_generations must be at least 1")
        self.client = client
        self.job_id = job_id
        self.num_generations = num_generations
        self.reference_key = reference_key
        self.mode = mode
        self.shaping = shaping
        self.verifier = verifier
        self.deadline_s = deadline_s
        self.fallback_reward = fallback_reward
        self.__name__ = name  # TRL names the reward column after this
        self._calls = 0
        self._nonce: str | None = None

    def _references(self, n: int, kwargs: dict[str, Any]) -> list[str]:
        keys = [self.reference_key] if self.reference_key else list(REFERENCE_COLUMNS)
        for k in keys:
            if k in kwargs and kwargs[k] is not None:
                col = list(kwargs[k])
                if len(col) != n:
                    raise GroupLayoutError(
                        f"column {k!r} has {len(col)} values for {n} completions"
                    )
                return [message_text(x) for x in col]
        raise InvalidArgumentError(
            f"no reference column among {keys}: pass reference_key= naming the dataset "
            f"column that holds the gold answer (columns seen: {sorted(kwargs)})"
        )

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any
    ) -> list[float | None]:
        n = len(completions)
        if len(prompts) != n:
            raise GroupLayoutError(f"{len(prompts)} prompts for {n} completions")
        refs = self._references(n, kwargs)
        ptext = [message_text(p) for p in prompts]
        ctext = [message_text(c) for c in completions]
        self._calls += 1
        whole = n % self.num_generations == 0
        if self.mode == "group" or (self.mode == "auto" and whole):
            rewards, logs = self._score_groups(ptext, ctext, refs)
        else:
            rewards, logs = self._score_barrier(ptext, ctext, refs)
        log_metric = kwargs.get("log_metric")
        if callable(log_metric) and logs:
            for k, v in logs.items():
                log_metric(k, v)
        return rewards

    # -- whole groups in one call --------------------------------------------------------
    def _score_groups(
        self, prompts: list[str], completions: list[str], refs: list[str]
    ) -> tuple[list[float | None], dict[str, float]]:
        g_n = self.num_generations
        n = len(completions)
        if n % g_n:
            raise GroupLayoutError(
                f"the reward function got {n} completions, not a multiple of "
                f"num_generations={g_n}: make per_device_train_batch_size x "
                f"steps_per_generation a multiple of num_generations, or use mode='barrier'"
            )
        groups = []
        for start in range(0, n, g_n):
            sl = slice(start, start + g_n)
            if len(set(prompts[sl])) != 1 or len(set(refs[sl])) != 1:
                raise GroupLayoutError(
                    f"completions {start}..{start + g_n - 1} do not share one prompt and one "
                    f"reference: TRL's sampler puts the num_generations completions of a "
                    f"prompt next to each other; check that num_generations={g_n} matches "
                    f"GRPOConfig.num_generations"
                )
            groups.append(
                GroupIn(prompt=prompts[start], reference=refs[start], responses=completions[sl])
            )
        try:
            out = self.client.score_batch(
                self.job_id, groups, shaping=self.shaping, verifier=self.verifier
            )
        except HeroError as e:
            return self._fallback(n, e), {}
        count("scored", n)
        rewards: list[float | None] = [r for g in out.groups for r in g.rewards]
        weights = [g.weight for g in out.groups]
        ver = [v for g in out.groups for v in g.verifier]
        logs = {
            "hero/weight": sum(weights) / len(weights),
            "hero/verifier": sum(ver) / len(ver),
            "hero/sigma_bar": out.sigma_bar,
        }
        return rewards, logs

    # -- groups split across processes: the server's barrier -----------------------------
    def _score_barrier(
        self, prompts: list[str], completions: list[str], refs: list[str]
    ) -> tuple[list[float | None], dict[str, float]]:
        rank, bcast = _distributed()
        if self._nonce is None:  # same on every process: group ids must agree
            self._nonce = bcast(secrets.token_hex(6))
        n, g_n = len(completions), self.num_generations

        def one(i: int) -> float | None:
            pos = rank * n + i  # position in the global generation batch
            key = hashlib.sha256(f"{prompts[i]}\0{refs[i]}".encode()).hexdigest()[:12]
            gid = f"trl-{self._nonce}-c{self._calls}-g{pos // g_n}-{key}"
            try:
                r = self.client.score_sample(
                    self.job_id,
                    group_id=gid,
                    group_size=g_n,
                    prompt=prompts[i],
                    reference=refs[i],
                    response=completions[i],
                    sample_index=pos % g_n,
                    deadline_s=self.deadline_s,
                    shaping=self.shaping,
                    verifier=self.verifier,
                )
            except HeroError as e:
                return self._fallback(1, e)[0]
            if r.partial:
                total = count("partial")
                log.warning(
                    "hero: group %r scored partial (%d of %d completions by its deadline); "
                    "%d partial completions so far",
                    gid,
                    r.group_count,
                    g_n,
                    total,
                )
            else:
                count("scored")
            return r.reward

        with ThreadPoolExecutor(max_workers=max(1, n), thread_name_prefix="hero") as ex:
            return list(ex.map(one, range(n))), {}

    def _fallback(self, n: int, e: HeroError) -> list[float | None]:
        if self.fallback_reward is None:
            count("raised", n)
            raise e
        total = count("fallback", n)
        log.warning(
            "hero: %d completions not scored (%s); using %s (%d such completions so far)",
            n,
            e,
            self.fallback_reward,
            total,
        )
        return [self.fallback_reward] * n


def make_hero_reward(
    url: str = "http://127.0.0.1:8000",
    *,
    job_id: str,
    num_generations: int,
    client: HeroClient | None = None,
    token: str | None = None,
    reference_key: str | None = None,
    mode: Literal["auto", "group", "barrier"] = "auto",
    shaping: Shaping = None,
    verifier: str | None = None,
    deadline_s: float | None = None,
    timeout_s: float = 300.0,
    fallback_reward: float | None = None,
    name: str = "hero",
) -> HeroTRLReward:
    """A GRPOTrainer reward function backed by the HERO service at `url`.

    `num_generations` must equal GRPOConfig.num_generations. `reference_key` names the
    dataset column with the gold answer (default: the first of reference, answer,
    solution, ground_truth, label). `fallback_reward=None` (default) raises when the
    service cannot be reached within the client's retry budget; a number is used instead
    (TRL also accepts None per completion, which it treats as NaN).
    """
    return HeroTRLReward(
        # no pool cap: in barrier mode every completion of a call waits in the barrier at once
        client
        or HeroClient(
            url, token=token, timeout=timeout_s, limits=httpx.Limits(max_connections=None)
        ),
        job_id,
        num_generations,
        reference_key,
        mode,
        shaping,
        verifier,
        deadline_s,
        fallback_reward,
        name,
    )


__all__ = ["REFERENCE_COLUMNS", "HeroTRLReward", "RewardFunc", "make_hero_reward"]
