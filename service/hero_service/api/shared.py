"""The group barrier shared by replicas through Redis (/score_sample with a Redis state store).

A plain Service spreads a group's samples over replicas, so the samples are recorded in
Redis and whichever replica sees the group full (or past its deadline) first claims it
and scores it ONCE; every replica's waiters poll the group's claim key and answer from
the result stored there. Keys, under `<prefix>bar:<job>:<group>`:
  :s  hash   slot ("i:<index>" / "r:<request id>" / "a:<uuid>") -> sample JSON
  :m  string group fields (size, prompt, ..., first sample's time)
  :c  string "scoring:<token>" (TTL, refreshed by the scorer: a dead scorer's claim
      lapses and a waiter takes it over), "done:<JSON>" (result and slot order, kept
      barrier_closed_ttl_s), or "failed:<JSON>" (a few seconds; retries form it again)
  :w  int    requests waiting on the group, on every replica. When the last one leaves
      (client gone), an unclaimed group is dropped and a group being scored is cancelled:
      nothing is folded, a retry forms it again. A replica killed while its requests wait
      never decrements: its groups fall back to the deadline.
Scoring goes through the pipeline with request id `barrier:<group id>`, so a takeover
after a scorer died having committed replays the commit: never folded twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from hero_client.schema import GroupIn
from hero_service.api.groups import (
    ClientGone,
    Gone,
    SampleIn,
    SampleOutcome,
    check_sample,
    sample_digest,
    shaping_key,
)
from hero_service.api.shared_lua import ADD, CLAIM, GEN, KEEP, LEAVE
from hero_service.config import Settings
from hero_service.errors import (
    STATUS,
    BackendError,
    Conflict,
    NotReady,
    ServiceError,
    StateUnavailable,
)
from hero_service.metrics import Metrics
from hero_service.pipeline import Pipeline
from hero_service.result import Scored
from hero_service.state import payload_digest

log = logging.getLogger("hero_service.api.shared")
_CLAIM_TTL_S = 6  # refreshed every 2 s while scoring; a dead scorer's lapses in <= 6 s
_WATCH_S = 0.5  # how often a scorer checks that someone still waits on its group


class SharedBarrier:
    def __init__(self, settings: Settings, metrics: Metrics, pipeline: Pipeline) -> None:
        self.settings = settings
        self.metrics = metrics
        self.pipeline = pipeline
        self.r: Redis = Redis.from_url(
            settings.state_url,
            decode_responses=True,
            encoding_errors="surrogatepass",
            socket_timeout=settings.state_timeout_s,
            socket_connect_timeout=settings.state_timeout_s,
        )
        self._add = self.r.register_script(ADD)
        self._claim = self.r.register_script(CLAIM)
        self._gen = self.r.register_script(GEN)
        self._keep = self.r.register_script(KEEP)
        self._leave = self.r.register_script(LEAVE)
        self._closing = False
        self._scoring: set[asyncio.Task[None]] = set()
        self._waiting: dict[str, int] = {}  # group key -> samples waiting on this replica

    @property
    def open_groups(self) -> int:
        return len(self._waiting)

    @property
    def pending_samples(self) -> int:
        return sum(self._waiting.values())

    def _base(self, s: SampleIn) -> str:
        return f"{self.settings.redis_key_prefix}bar:{len(s.job_id)}:{s.job_id}:{s.group_key}"

    def _keys(self, s: SampleIn, gen: str) -> tuple[str, str, str, str]:
        base = self._base(s) + (f":{gen}" if gen else "")
        return base + ":s", base + ":m", base + ":c", base + ":w"

    def _rid(self, s: SampleIn, gen: str) -> str:
        return f"barrier:{s.group_id}" + (f":{gen}" if gen else "")

    @staticmethod
    def _meta(s: SampleIn) -> dict[str, Any]:
        return {
            "size": s.group_size,
            "prompt": s.prompt,
            "reference": s.reference,
            "verifier": s.verifier,
            "shaping": shaping_key(s.shaping),
        }

    async def submit(self, s: SampleIn, gone: Gone | None = None) -> SampleOutcome:
        try:
            return await self._submit(s, gone)
        except RedisError as e:  # like the job store: 503 + Retry-After, never a 500
            raise StateUnavailable(f"barrier state in Redis unreachable: {type(e).__name__}") from e

    async def _submit(self, s: SampleIn, gone: Gone | None) -> SampleOutcome:
        if self._closing:
            raise NotReady("service is shutting down; retry shortly")
        check_sample(s, self.settings.max_group_size)
        if s.sample_index is not None:
            slot = f"i:{s.sample_index}"
        elif s.request_id is not None:
            slot = f"r:{s.request_id}"
        else:
            slot = f"a:{uuid.uuid4().hex}"
        digest = sample_digest(s)
        st = self.settings
        deadline = min(s.deadline_s or st.barrier_deadline_s, st.barrier_max_deadline_s)
        meta = {**self._meta(s), "first": time.time(), "deadline": deadline}
        sample = json.dumps({"response": s.response, "label": s.label, "digest": digest})
        ttl = int(deadline + st.request_deadline_s + 60)
        gen = ""  # explicit group ids: one group per id; reusable keys: generations
        for _ in range(8):  # bounded: a generation rolls over once per scored group
            if s.reusable:
                gen = await self._gen(
                    keys=[self._base(s) + ":g"], args=[gen, uuid.uuid4().hex, ttl]
                )
            keys = self._keys(s, gen)
            out, arg, claim, have_meta = await self._add(
                keys=list(keys), args=[slot, sample, json.dumps(meta), ttl]
            )
            if out != "late" or not s.reusable:
                break
        if out == "late":
            self.metrics.barrier_samples.labels("late").inc()
            return self._from_claim(s, slot, digest, claim, 0.0)
        self._waiting[keys[0]] = self._waiting.get(keys[0], 0) + 1
        try:  # this request now counts as a waiter (:w) until it leaves
            if out == "have" and json.loads(arg)["digest"] != digest:
                raise Conflict(
                    f"{slot} of group {s.group_id!r} was already sent with another response"
                )
            stored = json.loads(have_meta) if have_meta else meta
            if {k: stored[k] for k in self._meta(s)} != self._meta(s):
                raise Conflict(
                    f"group {s.group_id!r} of job {s.job_id!r} already has different group "
                    "fields (group_size, prompt, reference, verifier or shaping)",
                    "group_id",
                )
            if out == "have":
                self.metrics.barrier_samples.labels("joined").inc()
            return await self._wait(s, gen, slot, digest, stored, gone)
        finally:
            self._waiting[keys[0]] -= 1
            if not self._waiting[keys[0]]:
                del self._waiting[keys[0]]
            await asyncio.shield(self._left(keys))

    async def _left(self, keys: tuple[str, str, str, str]) -> None:
        try:
            dropped = await self._leave(keys=list(keys), args=[0 if self._closing else 1])
        except RedisError as e:  # the counter's TTL cleans up; the deadline bounds the group
            log.warning("could not record a barrier waiter leaving: %s", e)
            return
        if dropped:
            self.metrics.barrier_groups.labels("abandoned").inc()

    async def _wait(
        self,
        s: SampleIn,
        gen: str,
        slot: str,
        digest: str,
        meta: dict[str, Any],
        gone: Gone | None,
    ) -> SampleOutcome:
        t0 = time.monotonic()
        keys = self._keys(s, gen)
        ends = meta["first"] + meta["deadline"]
        delay = 0.02
        limit = t0 + meta["deadline"] + self.settings.request_deadline_s + 30
        while time.monotonic() < limit:  # bounded: deadline, then scoring, then give up
            if gone is not None and gone.done():
                if slot.startswith("a:"):
                    await self.r.hdel(keys[0], slot)  # withdrawn, unless already claimed
                raise ClientGone()
            if self._closing:
                raise NotReady("service is shutting down; retry (the group was not lost)")
            claim = cast("str | None", await self.r.get(keys[2]))
            if claim is not None and not claim.startswith("scoring:"):
                return self._from_claim(s, slot, digest, claim, time.monotonic() - t0)
            if claim is None:
                n = int(await self.r.hlen(keys[0]))
                if n >= s.group_size or time.time() >= ends:
                    await self._try_claim(s, gen, gone)
                    delay = 0.02
                    continue
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.2)
        raise NotReady(f"group {s.group_id!r} was not scored in time; retry")

    async def _try_claim(self, s: SampleIn, gen: str, gone: Gone | None) -> None:
        token = uuid.uuid4().hex
        keys = self._keys(s, gen)
        got = await self._claim(keys=[keys[0], keys[2]], args=[token, _CLAIM_TTL_S])
        if not got:
            return
        flat = got[1:]
        samples = {flat[i]: json.loads(flat[i + 1]) for i in range(0, len(flat), 2)}
        if not samples:  # everyone withdrew: nothing to score
            await self.r.delete(keys[2])
            return
        # scored while anyone (on any replica) waits on it, even if this request goes away
        task = asyncio.ensure_future(self._score(s, keys, self._rid(s, gen), token, samples))
        self._scoring.add(task)
        task.add_done_callback(self._scoring.discard)
        waits: set[asyncio.Future[Any]] = {task} if gone is None else {task, gone}
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)

    async def _score(
        self,
        s: SampleIn,
        keys: tuple[str, str, str, str],
        rid: str,
        token: str,
        samples: dict[str, Any],
    ) -> None:
        partial = len(samples) < s.group_size
        order = sorted(samples, key=lambda k: (0, int(k[2:]), "") if k[0] == "i" else (1, 0, k))
        labels = [samples[k]["label"] for k in order]
        group = GroupIn(
            group_id=s.group_id,
            prompt=s.prompt,
            reference=s.reference,
            responses=[samples[k]["response"] for k in order],
            labels=[int(x) for x in labels] if None not in labels else None,
        )
        payload = {
            "group": group.model_dump(),
            "shaping": s.shaping.model_dump() if s.shaping else None,
            "verifier": s.verifier,
        }
        digest = payload_digest(json.dumps(payload, sort_keys=True, ensure_ascii=False))

        work = asyncio.ensure_future(
            self.pipeline.score(s.job_id, [group], rid, digest, s.shaping, s.verifier)
        )
        abandoned = False

        async def keep_claim() -> None:
            nonlocal abandoned
            last = time.monotonic()
            while True:
                await asyncio.sleep(_WATCH_S)
                if int(await self.r.get(keys[3]) or 0) <= 0 and not self._closing:
                    abandoned = True  # every waiter, on every replica, is gone
                    work.cancel()
                    return
                if time.monotonic() - last >= _CLAIM_TTL_S / 3:
                    last = time.monotonic()
                    await self._keep(keys=[keys[2]], args=["scoring:" + token, _CLAIM_TTL_S])

        keeper = asyncio.ensure_future(keep_claim())
        try:
            result = await work
        except asyncio.CancelledError:
            if not abandoned:
                raise
            # nothing folded (or, if the commit won the race, a retry replays it: same rid)
            await self.r.delete(keys[0], keys[1], keys[2])
            self.metrics.barrier_groups.labels("abandoned").inc()
            log.info("shared barrier group %r abandoned by its clients", s.group_id)
            return
        except Exception as e:  # every replica's waiters must hear, bugs included
            if not isinstance(e, ServiceError):
                log.exception("scoring shared barrier group %r failed", s.group_id)
                e = BackendError(f"scoring the group failed: {type(e).__name__}")
            failed = {"kind": e.kind, "message": e.message, "field": e.field}
            await self.r.set(keys[2], "failed:" + json.dumps(failed), ex=5)
            await self.r.delete(keys[0], keys[1])
            self.metrics.barrier_groups.labels("failed").inc()
            return
        finally:
            keeper.cancel()
        done = {
            "result": result.stored(),
            "slots": order,
            "digests": [samples[k]["digest"] for k in order],
            "partial": partial,
            "size": s.group_size,
        }
        ttl = int(self.settings.barrier_closed_ttl_s)
        await self.r.set(keys[2], "done:" + json.dumps(done), ex=ttl)
        await self.r.delete(keys[0])
        self.metrics.barrier_groups.labels("partial" if partial else "complete").inc()
        self.metrics.barrier_samples.labels("scored").inc(len(order))

    def _from_claim(
        self, s: SampleIn, slot: str, digest: str, claim: str, wait_s: float
    ) -> SampleOutcome:
        kind, _, body = claim.partition(":")
        data = json.loads(body) if body else {}
        if kind == "failed":
            err = ServiceError(data["message"], data["field"])
            err.kind = data["kind"] if data["kind"] in STATUS else "internal_error"
            raise err
        if kind == "scoring":
            raise Conflict(
                f"group {s.group_id!r} of job {s.job_id!r} is already being scored; this "
                "sample arrived after the group closed and was not scored",
                "group_id",
            )
        if kind != "done" or slot not in data["slots"]:
            raise Conflict(
                f"group {s.group_id!r} of job {s.job_id!r} was already scored; this sample "
                "arrived after the group closed and was not scored (a retry of a scored "
                "sample needs its sample_index or request_id to be replayed)",
                "group_id",
            )
        pos = data["slots"].index(slot)
        if data["digests"][pos] != digest:
            raise Conflict(f"{slot} of group {s.group_id!r} was scored with another response")
        scored = Scored.from_stored(data["result"])
        return SampleOutcome(
            group=scored.groups[0],
            timings=scored.timings,
            position=pos,
            sample_index=s.sample_index if s.sample_index is not None else pos,
            group_size=data["size"],
            count=len(data["slots"]),
            partial=data["partial"],
            replayed=wait_s == 0.0,
            wait_s=wait_s,
        )

    def shut(self) -> None:
        """SIGTERM: waiters here get 503; their samples stay in Redis for the retries
        (another replica, or this one after the restart) and groups being scored finish."""
        self._closing = True

    async def close(self, timeout: float = 30.0) -> None:
        self.shut()
        if self._scoring:
            await asyncio.wait(list(self._scoring), timeout=timeout)
        await self.r.aclose()


__all__ = ["SharedBarrier"]
