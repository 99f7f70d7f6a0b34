"""The group barrier: per-sample requests held until their group is complete.

Modern trainers (verl's reward loop, OpenRLHF >= 0.10) send one rollout per request, but
HERO shapes a whole group at once. The barrier holds samples by (job, group key) until
`group_size` have arrived or the group's deadline (counted from its first sample) passes,
scores the group ONCE through the pipeline and hands every waiting request its own share.

Rules (docs/integrations.md repeats them for users):
- A sample is identified inside its group by `sample_index`, else by `request_id`, else it
  is anonymous. Identical response texts are distinct samples: nothing is deduplicated.
- A retry of an identified sample joins the waiting sample or, once the group is scored,
  replays its answer (`replayed`); it is never counted twice. The same identity with other
  content is a 409. An anonymous sample whose client disconnects before the group is
  scored is withdrawn, so the client's retry does not count it twice either.
- A new sample for a group that was already scored is "late": 409 (explicit group ids).
  Reusable keys (/get_reward's (job, prompt, label)) instead open a new group: the same
  prompt legitimately comes back in a later step or epoch.
- A group whose deadline passes is scored with what it has and marked `partial`.
- Memory is bounded: open groups and waiting samples (429 past the limits), group size
  (422), scored groups remembered for retries (TTL + count, oldest dropped first).
- On SIGTERM (shut) every open group fails with 503 and is not folded: nobody was
  answered, so retries after the restart score it normally.
- If scoring fails, every waiter gets the error and the group is forgotten, so retries
  form it again; nothing was folded into the job's running sigma.

Everything runs on the event loop thread: state changes never await, so no locks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from hero_client.schema import (
    GroupIn,
)
from hero_service.api.groups import (
    ClientGone,
    Gone,
    GroupClosed,
    GroupKey,
    OpenGroup,
    SampleIn,
    SampleOutcome,
    ScoredGroups,
    Slot,
    SlotKey,
    check_group,
    check_sample,
    late,
    same_content,
    sample_digest,
)
from hero_service.config import Settings
from hero_service.errors import (
    BackendError,
    Conflict,
    NotReady,
    Overloaded,
    ServiceError,
)
from hero_service.metrics import Metrics
from hero_service.pipeline import Pipeline
from hero_service.result import Scored
from hero_service.state import payload_digest

log = logging.getLogger("hero_service.api.barrier")


class Barrier:
    def __init__(self, settings: Settings, metrics: Metrics, pipeline: Pipeline) -> None:
        self.settings = settings
        self.metrics = metrics
        self.pipeline = pipeline
        self._live: dict[GroupKey, OpenGroup] = {}
        self._closed = ScoredGroups(
            settings.barrier_max_closed_groups, settings.barrier_closed_ttl_s
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._n_open = 0
        self._n_pending = 0
        self._seq = 0
        self._closing = False
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        metrics.barrier_open_groups.set_function(lambda: self.open_groups)
        metrics.barrier_pending_samples.set_function(lambda: self.pending_samples)

    @property
    def open_groups(self) -> int:
        return self._n_open

    @property
    def pending_samples(self) -> int:
        return self._n_pending

    # -- intake --------------------------------------------------------------------------
    async def submit(self, s: SampleIn, gone: Gone | None = None) -> SampleOutcome:
        """Add a sample and wait for its group's result (raises the group's error)."""
        try:
            g, slot, replay = self._admit(s)
        except ServiceError as e:
            self.metrics.barrier_samples.labels(
                "late" if isinstance(e, GroupClosed) else "rejected"
            ).inc()
            raise
        if replay is not None:
            self.metrics.barrier_samples.labels("replayed").inc()
            return replay
        return await self._wait(g, slot, gone)

    def _admit(self, s: SampleIn) -> tuple[OpenGroup, Slot, SampleOutcome | None]:
        if self._closing:
            raise NotReady("service is shutting down; retry shortly")
        check_sample(s, self.settings.max_group_size)
        key: GroupKey = (s.job_id, s.group_key)
        g = self._live.get(key)
        if g is None and not s.reusable:
            done = self._closed.get(key)
            if done is not None:
                slot = self._existing(done, s)
                return done, slot, self._outcome(done, slot, replayed=True, wait_s=0.0)
        if g is not None:
            check_group(g, s)
            slot_or_none = g.find(s)
            if slot_or_none is not None:
                same_content(g, slot_or_none, s)
                self.metrics.barrier_samples.labels("joined").inc()
                return g, slot_or_none, None
            if g.state != "open":
                raise late(g, s)
        else:
            g = self._open(key, s)
        return g, self._add(g, s), None

    def _existing(self, g: OpenGroup, s: SampleIn) -> Slot:
        slot = g.find(s)
        if slot is None:
            raise late(g, s)
        same_content(g, slot, s)
        return slot

    def _open(self, key: GroupKey, s: SampleIn) -> OpenGroup:
        st = self.settings
        if self._n_open >= st.barrier_max_open_groups:
            self.metrics.rejected.labels("barrier").inc()
            raise Overloaded(
                "barrier",
                f"{self._n_open} groups are waiting for samples, the limit (setting "
                f"barrier_max_open_groups); retry shortly",
                retry_after=1.0,
            )
        loop = asyncio.get_running_loop()
        g = OpenGroup(
            key=key,
            group_id=s.group_id,
            reusable=s.reusable,
            size=s.group_size,
            prompt=s.prompt,
            reference=s.reference,
            shaping=s.shaping,
            verifier=s.verifier,
            created=time.monotonic(),
            future=loop.create_future(),
        )
        # Waiters may all be gone when a group fails: mark the exception as retrieved.
        g.future.add_done_callback(lambda f: f.cancelled() or f.exception())
        deadline = min(s.deadline_s or st.barrier_deadline_s, st.barrier_max_deadline_s)
        g.timer = loop.call_later(deadline, self._expire, g)
        self._live[key] = g
        self._n_open += 1
        return g

    def _add(self, g: OpenGroup, s: SampleIn) -> Slot:
        if self._n_pending >= self.settings.barrier_max_pending_samples:
            self.metrics.rejected.labels("barrier").inc()
            if not g.slots:
                self._drop(g)
            raise Overloaded(
                "barrier",
                f"{self._n_pending} samples are waiting for their groups, the limit (setting "
                f"barrier_max_pending_samples); retry shortly",
                retry_after=1.0,
            )
        self._seq += 1
        if s.sample_index is not None:
            key: SlotKey = ("i", s.sample_index)
        elif s.request_id is not None:
            key = ("r", s.request_id)
        else:
            key = ("a", self._seq)
        slot = Slot(
            key, s.sample_index, s.request_id, s.response, s.label, sample_digest(s), self._seq
        )
        g.slots[key] = slot
        if s.request_id is not None:
            g.by_rid[s.request_id] = key
        self._n_pending += 1
        if len(g.slots) >= g.size:
            self._close(g, partial=False)
        return slot

    # -- waiting -------------------------------------------------------------------------
    async def _wait(self, g: OpenGroup, slot: Slot, gone: Gone | None) -> SampleOutcome:
        t0 = time.monotonic()
        g.waiters += 1
        try:
            waits: set[asyncio.Future[Any]] = {g.future} if gone is None else {g.future, gone}
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if not g.future.done():
                raise ClientGone()
        except (ClientGone, asyncio.CancelledError):
            if slot.anonymous and g.state == "open" and g.slots.get(slot.key) is slot:
                self._withdraw(g, slot)
            raise
        finally:
            g.waiters -= 1
            if g.waiters == 0 and not g.future.done():
                self._abandon(g)
        replayed = g.future.result().replayed  # raises the scoring error, if any
        return self._outcome(g, slot, replayed, time.monotonic() - t0)

    def _withdraw(self, g: OpenGroup, slot: Slot) -> None:
        del g.slots[slot.key]
        self._n_pending -= 1
        self.metrics.barrier_samples.labels("withdrawn").inc()
        if not g.slots:
            self._drop(g)
            self.metrics.barrier_groups.labels("abandoned").inc()

    def _abandon(self, g: OpenGroup) -> None:
        """Every waiter is gone (disconnects, deadlines): nobody would receive the rewards,
        so the group's text is freed now and its scoring (queued RM inputs, verifications)
        is cancelled; nothing is folded. A retry forms the group again."""
        if g.state == "open":
            self._n_pending -= len(g.slots)
            g.slots.clear()
            self._drop(g)
            self.metrics.barrier_groups.labels("abandoned").inc()
        elif g.state == "scoring" and g.task is not None:
            g.task.cancel()

    def _drop(self, g: OpenGroup) -> None:
        """Forget an open group that has no samples left."""
        if g.timer is not None:
            g.timer.cancel()
        if self._live.get(g.key) is g:
            del self._live[g.key]
        self._n_open -= 1
        g.state = "failed"
        g.future.cancel()

    def _outcome(self, g: OpenGroup, slot: Slot, replayed: bool, wait_s: float) -> SampleOutcome:
        scored = g.future.result()
        pos = g.positions[slot.key]
        return SampleOutcome(
            group=scored.groups[0],
            timings=scored.timings,
            position=pos,
            sample_index=slot.sample_index if slot.sample_index is not None else pos,
            group_size=g.size,
            count=len(g.positions),
            partial=g.partial,
            replayed=replayed or scored.replayed,
            wait_s=wait_s,
        )

    # -- closing and scoring -------------------------------------------------------------
    def _expire(self, g: OpenGroup) -> None:
        if g.state == "open":
            self._close(g, partial=True)

    def _close(self, g: OpenGroup, partial: bool) -> None:
        g.state = "scoring"
        g.partial = partial
        if g.timer is not None:
            g.timer.cancel()
            g.timer = None
        order = sorted(
            g.slots.values(),
            key=lambda sl: (
                (0, sl.sample_index, 0) if sl.sample_index is not None else (1, 0, sl.seq)
            ),
        )
        g.positions = {sl.key: i for i, sl in enumerate(order)}
        if g.reusable and self._live.get(g.key) is g:
            del self._live[g.key]  # the next sample with this key opens a new group
        self._n_open -= 1
        self._n_pending -= len(g.slots)
        self.metrics.barrier_wait.observe(time.monotonic() - g.created)
        self.metrics.barrier_fill_ratio.observe(len(g.slots) / g.size)
        task = g.task = asyncio.get_running_loop().create_task(self._score(g, order))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _score(self, g: OpenGroup, order: list[Slot]) -> None:
        try:
            result = await self._run_pipeline(g, order)
        except asyncio.CancelledError:
            self._failed(g, NotReady("the group was not scored (its clients left, or a shutdown)"))
            raise
        except ServiceError as e:
            self._failed(g, e)
        except Exception as e:  # a bug or a backend crash: every waiter must still hear
            log.exception("scoring barrier group %r failed", g.group_id)
            self._failed(g, BackendError(f"scoring the group failed: {type(e).__name__}"))
        else:
            g.task = None
            g.state = "closed"
            g.closed_at = time.monotonic()
            g.future.set_result(result)
            self.metrics.barrier_groups.labels("partial" if g.partial else "complete").inc()
            self.metrics.barrier_samples.labels("scored").inc(len(order))
            for sl in order:
                sl.response = ""  # keep only digests of scored samples
            if not g.reusable:
                if self._live.get(g.key) is g:
                    del self._live[g.key]
                self._closed.remember(g)

    def _failed(self, g: OpenGroup, e: ServiceError) -> None:
        g.state = "failed"
        if self._live.get(g.key) is g:
            del self._live[g.key]  # retries form the group again; nothing was folded in
        if not g.future.done():
            g.future.set_exception(e)
        self.metrics.barrier_groups.labels("failed").inc()
        self.metrics.barrier_samples.labels("failed").inc(len(g.slots))

    async def _run_pipeline(self, g: OpenGroup, order: list[Slot]) -> Scored:
        labels = [sl.label for sl in order]
        group = GroupIn(
            group_id=g.group_id,
            prompt=g.prompt,
            reference=g.reference,
            responses=[sl.response for sl in order],
            labels=[int(x) for x in labels if x is not None] if None not in labels else None,
        )
        # Explicit group ids are unique per job (verl's uid), so the pipeline's request-id
        # store also guards against scoring one group twice (e.g. across a restart).
        rid = None if g.reusable else f"barrier:{g.group_id}"
        payload = {
            "group": group.model_dump(),
            "shaping": g.shaping.model_dump() if g.shaping else None,
            "verifier": g.verifier,
        }
        digest = payload_digest(json.dumps(payload, sort_keys=True, ensure_ascii=False))
        job_id = g.key[0]
        try:
            return await self.pipeline.score(job_id, [group], rid, digest, g.shaping, g.verifier)
        except Conflict as e:
            if e.field != "request_id":
                raise
            raise Conflict(
                f"group {g.group_id!r} of job {job_id!r} was already scored with other "
                f"samples (for instance before a restart); its samples cannot be scored again",
                "group_id",
            ) from None

    # -- lifecycle -----------------------------------------------------------------------
    def shut_soon(self) -> None:
        """From a signal handler: shut on the event loop, not between two bytecodes."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.shut)

    def shut(self) -> None:
        """Stop taking samples; every open group fails with 503 and is NOT folded into its
        job (nobody would receive its rewards), so a retry after the restart or on another
        replica scores it normally. Groups already being scored finish and answer."""
        self._closing = True
        err = NotReady(
            "service is shutting down; this sample's group was not scored and not counted. "
            "Retry it (another replica, or this one after the restart)"
        )
        for g in [g for g in self._live.values() if g.state == "open"]:
            if g.timer is not None:
                g.timer.cancel()
            self._n_open -= 1
            self._n_pending -= len(g.slots)
            self._failed(g, err)

    async def close(self, timeout: float = 30.0) -> None:
        """Shut, then wait for the groups being scored."""
        self.shut()
        tasks = list(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5.0)
