"""OpenRLHF (>= 0.10) integrations. This one file serves both OpenRLHF hooks:

1. `--train.agent_func_path <this file>` (recommended): OpenRLHF loads `AgentExecutor`
   from it. It is OpenRLHF's own SingleTurnAgentExecutor (generation unchanged) plus a
   group gatherer: the n rollouts of a prompt are n concurrent `execute()` calls started
   together by `RolloutRayActor.generate_responses` (asyncio.gather); the gatherer groups
   the calls that start in the same event-loop turn for the same (prompt, label), waits
   for all of them to finish generating, and makes ONE /score_group call. No server-side
   barrier, no deadline, no group size to configure (HERO_GROUP_SIZE, if set, is only
   checked). A rollout that fails leaves its group, which is scored without it.

2. `--reward.remote_url <this file>`: OpenRLHF calls `reward_func(queries, prompts,
   labels)` for each sample in a worker thread; it forwards the sample to the server's
   `/get_reward` (the barrier) with the client's retries and bearer token. Each waiting
   sample holds a thread of asyncio's default pool (min(32, cpus + 4) threads), so keep
   the samples in flight per actor below that, or prefer (1) or a plain URL
   (`--reward.remote_url http://host:8000/get_reward?job_id=...&group_size=n`).

Settings: HERO_URL, HERO_TOKEN, HERO_JOB_ID, HERO_GROUP_SIZE (needed by 2), HERO_DEADLINE_S,
HERO_TIMEOUT_S, HERO_FALLBACK_REWARD, HERO_ON_PARTIAL, HERO_MAX_CONNECTIONS, HERO_VERIFIER,
HERO_PRESET; pass them to the Ray workers (e.g. `ray job submit --runtime-env-json
'{"env_vars": {...}}'`).

No silent fake rewards: a sample that could not be scored (or that the server flagged
hero_error / hero_partial) is logged as a warning, counted (`hero_client.adapters.stats()`)
and flagged in its extra_logs; HERO_FALLBACK_REWARD=none raises instead, HERO_ON_PARTIAL
decides what a partial group's sample gets (keep, fallback, raise).

Rewards: HERO's r_final. Scores (dynamic filtering): the verifier label, so groups that
are all correct or all wrong are filtered by `--algo.dynamic_filtering_range 0 1`.
extra_logs: the numeric hero_* keys of /get_reward. Keep HERO's weight alive with
`--algo.advantage.estimator dr_grpo` (or reinforce_baseline), not group_norm.

OpenRLHF is imported only when `AgentExecutor` is first accessed.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from hero_client._async import AsyncHeroClient
from hero_client._exceptions import HeroError
from hero_client._sync import HeroClient
from hero_client.adapters._common import (
    AdapterConfig,
    count,
    error_logs,
    log,
    on_failure,
    on_partial_group,
    sample_logs,
)


# Plain classes, not dataclasses: OpenRLHF executes this file under another module name
# without registering it in sys.modules, which dataclasses cannot cope with.
class SampleReward:
    """What OpenRLHF stores for one rollout."""

    __slots__ = ("extra_logs", "reward", "score")

    def __init__(self, reward: float, score: float, extra_logs: dict[str, float]) -> None:
        self.reward = reward
        self.score = score
        self.extra_logs = extra_logs


class _Cohort:
    __slots__ = ("fired", "key", "members", "sealed")

    def __init__(self, key: tuple[str, str]) -> None:
        self.key = key
        self.members: list[_Member] = []
        self.sealed = False
        self.fired = False


class _Member:
    __slots__ = ("cohort", "future", "gone", "text")

    def __init__(self, cohort: _Cohort, future: asyncio.Future[SampleReward]) -> None:
        self.cohort = cohort
        self.future = future
        self.text: str | None = None
        self.gone = False


class GroupGatherer:
    """Gathers the concurrent rollouts of one prompt into one /score_group call."""

    def __init__(self, cfg: AdapterConfig, client: AsyncHeroClient | None = None) -> None:
        self.cfg = cfg
        self._client = client
        self._forming: dict[tuple[str, str], _Cohort] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._warned = False

    @property
    def client(self) -> AsyncHeroClient:
        if self._client is None:
            self._client = self.cfg.async_client()
        return self._client

    def enter(self, prompt: str, label: str) -> _Member:
        """Call at the very start of execute(), before the first await."""
        loop = asyncio.get_running_loop()
        key = (prompt, label)
        c = self._forming.get(key)
        if c is None:
            c = _Cohort(key)
            self._forming[key] = c
            loop.call_soon(self._seal, c)  # runs after every task started this turn
        m = _Member(c, loop.create_future())
        c.members.append(m)
        return m

    async def submit(self, m: _Member, text: str) -> SampleReward:
        """This rollout's response; waits for the rest of its group, then its reward."""
        m.text = text
        self._maybe_fire(m.cohort)
        return await m.future

    def leave(self, m: _Member) -> None:
        """A rollout that failed: its group is scored without it."""
        m.gone = True
        self._maybe_fire(m.cohort)

    def _seal(self, c: _Cohort) -> None:
        if self._forming.get(c.key) is c:
            del self._forming[c.key]
        c.sealed = True
        want = self.cfg.group_size
        if want and len(c.members) != want and not self._warned:
            self._warned = True
            log.warning(
                "hero: %d rollouts of one prompt started together, HERO_GROUP_SIZE is %d; "
                "scoring the %d as one group (n_samples_per_prompt?)",
                len(c.members),
                want,
                len(c.members),
            )
        self._maybe_fire(c)

    def _maybe_fire(self, c: _Cohort) -> None:
        if not c.sealed or c.fired:
            return
        live = [m for m in c.members if not m.gone]
        if live and all(m.text is not None for m in live):
            c.fired = True
            task = asyncio.get_running_loop().create_task(self._score(c, live))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _score(self, c: _Cohort, live: list[_Member]) -> None:
        prompt, label = c.key
        try:
            r = await self.client.score_group(
                self.cfg.job_id,
                prompt=prompt,
                reference=label,
                responses=[m.text or "" for m in live],
                shaping=self.cfg.shaping,
                verifier=self.cfg.verifier,
            )
        except HeroError as e:
            try:
                fb = on_failure(self.cfg, f"group of {len(live)} rollouts", len(live), e)
            except HeroError:
                for m in live:
                    if not m.future.done():
                        m.future.set_exception(e)
                return
            for m in live:
                if not m.future.done():
                    m.future.set_result(SampleReward(fb, 0.0, error_logs()))
            return
        count("scored", len(live))
        for pos, m in enumerate(live):
            if not m.future.done():
                logs = sample_logs(r, pos, False, len(live))
                m.future.set_result(SampleReward(r.rewards[pos], float(r.verifier[pos]), logs))


def _action_text(out: dict[str, Any], tokenizer: Any) -> str:
    tokens = out["observation_tokens"]
    parts = [tokens[a:b] for a, b in out["action_ranges"]]
    return "".join(str(tokenizer.decode(p, skip_special_tokens=True)) for p in parts)


def _build_agent_executor() -> type:
    from openrlhf.utils.agent import SingleTurnAgentExecutor

    class HeroAgentExecutor(SingleTurnAgentExecutor):  # type: ignore[misc]
        """OpenRLHF's single-turn executor whose rewards come from HERO, per group."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(remote_rm_url=None)  # generation only; HERO scores
            self.hero = GroupGatherer(AdapterConfig.from_env(**kwargs))

        async def execute(
            self,
            prompt: Any,
            label: Any,
            sampling_params: Any,
            max_length: int,
            hf_tokenizer: Any,
            llm_engine: Any,
            images: Any = None,
        ) -> dict[str, Any]:
            member = self.hero.enter(str(prompt), "" if label is None else str(label))
            try:
                out: dict[str, Any] = await super().execute(
                    prompt, label, sampling_params, max_length, hf_tokenizer, llm_engine, images
                )
                text = _action_text(out, hf_tokenizer)
            except BaseException:
                self.hero.leave(member)
                raise
            r = await self.hero.submit(member, text)
            out.update(reward=r.reward, scores=r.score, extra_logs=r.extra_logs)
            return out

    return HeroAgentExecutor


_BUILT: dict[str, type] = {}


def __getattr__(name: str) -> Any:
    if name in ("AgentExecutor", "HeroAgentExecutor"):
        if "exec" not in _BUILT:
            _BUILT["exec"] = _build_agent_executor()
        return _BUILT["exec"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- --reward.remote_url this_file.py ------------------------------------------------------
_client_lock = threading.Lock()
_client: tuple[AdapterConfig, HeroClient] | None = None


def _shared_client() -> tuple[AdapterConfig, HeroClient]:
    global _client
    with _client_lock:
        if _client is None:
            cfg = AdapterConfig.from_env()
            _client = (cfg, cfg.sync_client())
        return _client


def reward_func(
    queries: list[str], prompts: list[str], labels: list[Any], **kwargs: Any
) -> dict[str, Any]:
    """OpenRLHF's reward-function hook: forwards to /get_reward (server-side barrier)."""
    cfg, client = _shared_client()
    try:
        r = client.get_reward(
            queries,
            prompts,
            labels,
            job_id=cfg.job_id,
            group_size=cfg.group_size,
            deadline_s=cfg.deadline_s,
            verifier=cfg.verifier,
            preset=cfg.preset,
        )
    except HeroError as e:
        n = len(queries)
        fb = on_failure(cfg, f"{n} samples", n, e)
        logs = {k: [v] * n for k, v in error_logs().items()}
        return {"rewards": [fb] * n, "scores": [0.0] * n, "extra_logs": logs}
    out = r.model_dump()
    # The server answers 200 for every well-formed request (any other status ends an
    # OpenRLHF run): its own failures come back flagged, and are surfaced here.
    logs = out.get("extra_logs", {})
    for i in range(len(queries)):
        if logs.get("hero_error", [0.0] * len(queries))[i]:
            fb = on_failure(cfg, "sample", 1, HeroError("the server could not score it"))
            out["rewards"][i] = fb
        elif logs.get("hero_partial", [0.0] * len(queries))[i]:
            got = int(logs.get("hero_group_count", [0.0] * len(queries))[i])
            if not on_partial_group(cfg, prompts[i][-40:], got, cfg.group_size):
                out["rewards"][i] = on_failure(cfg, "sample", 1, HeroError("partial group"))
                logs["hero_error"][i] = 1.0
        else:
            count("scored")
    return out


# Only the plain names: AgentExecutor / HeroAgentExecutor come from __getattr__.
__all__ = ["GroupGatherer", "SampleReward", "reward_func"]
