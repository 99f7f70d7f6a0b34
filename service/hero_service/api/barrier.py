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
- If scoring fails, every waiter gets the error and the group is forgotten, so retries
  form it again; nothing was folded into the job's running sigma.

Everything runs on the event loop thread: state changes never await, so no locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.requests import Request

from hero_client.schema import (
    GroupIn,
    GroupResult,
    ShapingOverrides,
    Timings,
)
from hero_service.config import Settings
from hero_service.errors import (
    BackendError,
    Conflict,
    InvalidInput,
    NotReady,
    Overloaded,
    ServiceError,
)
from hero_service.metrics import Metrics
from hero_service.pipeline import Pipeline
from hero_service.result import Scored
from hero_service.state import payload_digest

log = logging.getLogger("hero_service.api.barrier")

SlotKey = tuple[str, object]  # ("i", index) | ("r", request id) | ("a", arrival number)
GroupKey = tuple[str, str]  # (job_id, group key)
State = Literal["open", "scoring", "closed", "failed"]
# Completes when the waiting client has disconnected (see disconnect_watch).
Gone = asyncio.Future[object]


CLIENT_CLOSED = 499  # nginx's code: the client went away before the answer was ready


@contextlib.asynccontextmanager
async def disconnect_watch(request: Request) -> AsyncIterator[asyncio.Future[object]]:
    """A future that completes when the client disconnects (the body is already read, so
    the only message left to receive is http.disconnect)."""

    async def watch() -> object:
        while True:
            msg = await request.receive()
            if msg["type"] == "http.disconnect":
                return True

    task: asyncio.Future[object] = asyncio.ensure_future(watch())
    try:
        yield task
    finally:
        task.cancel()


class ClientGone(Exception):
    """The waiting client disconnected; there is nobody to answer."""


class GroupClosed(Conflict):
    """409: a new sample for a group that was already scored (it arrived too late)."""


@dataclass(frozen=True)
class SampleIn:
    """One sample as the routes hand it to the barrier."""

    job_id: str
    group_id: str  # shown in answers
    group_key: str  # what groups samples: the group id, or a digest for /get_reward
    reusable: bool  # True: a scored group's key may open a new group (no late samples)
    group_size: int
    prompt: str
    reference: str
    response: str
    label: int | None = None
    sample_index: int | None = None
    request_id: str | None = None
    deadline_s: float | None = None
    shaping: ShapingOverrides | None = None
    verifier: str | None = None


@dataclass(frozen=True)
class SampleOutcome:
    """A sample's answer: the whole scored group and where the sample sits in it."""

    group: GroupResult
    timings: Timings
    position: int
    sample_index: int
    group_size: int
    count: int
    partial: bool
    replayed: bool
    wait_s: float


@dataclass
class _Slot:
    key: SlotKey
    sample_index: int | None
    request_id: str | None
    response: str
    label: int | None
    digest: str
    seq: int

    @property
    def anonymous(self) -> bool:
        return self.key[0] == "a"


@dataclass
class _Group:
    key: GroupKey
    group_id: str
    reusable: bool
    size: int
    prompt: str
    reference: str
    shaping: ShapingOverrides | None
    verifier: str | None
    created: float
    future: asyncio.Future[Scored]
    slots: dict[SlotKey, _Slot] = field(default_factory=dict)
    by_rid: dict[str, SlotKey] = field(default_factory=dict)
    positions: dict[SlotKey, int] = field(default_factory=dict)
    state: State = "open"
    partial: bool = False
    closed_at: float = 0.0
    timer: asyncio.TimerHandle | None = None

    def find(self, s: SampleIn) -> _Slot | None:
        if s.sample_index is not None:
            slot = self.slots.get(("i", s.sample_index))
            if slot is None and s.request_id in self.by_rid:
                other = self.by_rid[s.request_id]
                raise Conflict(
                    f"request_id {s.request_id!r} was already used in group {self.group_id!r} "
                    f"for sample_index {other[1]}, not {s.sample_index}",
                    "request_id",
                )
            return slot
        if s.request_id is not None and s.request_id in self.by_rid:
            return self.slots[self.by_rid[s.request_id]]
        return None


def _sample_digest(s: SampleIn) -> str:
    return hashlib.sha256(
        json.dumps([s.response, s.label], ensure_ascii=False).encode("utf-8", "surrogatepass")
    ).hexdigest()


def _shaping_key(s: ShapingOverrides | None) -> str:
    return s.model_dump_json(exclude_none=True) if s is not None else "{}"


class Barrier:
    def __init__(self, settings: Settings, metrics: Metrics, pipeline: Pipeline) -> None:
        self.settings = settings
        self.metrics = metrics
        self.pipeline = pipeline
        self._live: dict[GroupKey, _Group] = {}
        self._closed: OrderedDict[GroupKey, _Group] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._n_open = 0
        self._n_pending = 0
        self._seq = 0
        self._closing = False
        metrics.barrier_open_groups.set_function(lambda: self._n_open)
        metrics.barrier_pending_samples.set_function(lambda: self._n_pending)

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

    def _admit(self, s: SampleIn) -> tuple[_Group, _Slot, SampleOutcome | None]:
        if self._closing:
            raise NotReady("service is shutting down; retry shortly")
        self._check_sample(s)
        key: GroupKey = (s.job_id, s.group_key)
        g = self._live.get(key)
        if g is None and not s.reusable:
            done = self._closed_get(key)
            if done is not None:
                slot = self._existing(done, s)
                return done, slot, self._outcome(done, slot, replayed=True, wait_s=0.0)
        if g is not None:
            self._check_group(g, s)
            slot_or_none = g.find(s)
            if slot_or_none is not None:
                self._same_content(g, slot_or_none, s)
                self.metrics.barrier_samples.labels("joined").inc()
                return g, slot_or_none, None
            if g.state != "open":
                raise self._late(g, s)
        else:
            g = self._open(key, s)
        return g, self._add(g, s), None

    def _check_sample(self, s: SampleIn) -> None:
        limit = self.settings.max_group_size
        if s.group_size > limit:
            raise InvalidInput(
                f"group_size is {s.group_size}, over the limit of {limit} (setting max_group_size)",
                "group_size",
            )
        if s.sample_index is not None and s.sample_index >= s.group_size:
            raise InvalidInput(
                f"sample_index is {s.sample_index} but group_size is {s.group_size} "
                f"(indices run from 0 to {s.group_size - 1})",
                "sample_index",
            )

    def _check_group(self, g: _Group, s: SampleIn) -> None:
        checks: list[tuple[str, object, object]] = [
            ("group_size", g.size, s.group_size),
            ("prompt", g.prompt, s.prompt),
            ("reference", g.reference, s.reference),
            ("verifier", g.verifier, s.verifier),
            ("shaping", _shaping_key(g.shaping), _shaping_key(s.shaping)),
        ]
        for name, have, got in checks:
            if have != got:
                shown = f" {have!r}" if name in ("group_size", "verifier", "shaping") else ""
                raise Conflict(
                    f"group {g.group_id!r} of job {g.key[0]!r} already has a different "
                    f"{name}{shown}; every sample of a group must send the same {name}",
                    name,
                )

    def _existing(self, g: _Group, s: SampleIn) -> _Slot:
        slot = g.find(s)
        if slot is None:
            raise self._late(g, s)
        self._same_content(g, slot, s)
        return slot

    def _same_content(self, g: _Group, slot: _Slot, s: SampleIn) -> None:
        if slot.digest != _sample_digest(s):
            f = "sample_index" if s.sample_index is not None else "request_id"
            ident = s.sample_index if s.sample_index is not None else s.request_id
            raise Conflict(
                f"{f} {ident!r} of group {g.group_id!r} was already sent with a different "
                f"response or label; a retry must resend the same sample",
                f,
            )

    def _late(self, g: _Group, s: SampleIn) -> GroupClosed:
        if g.state == "closed":
            when = f"{time.monotonic() - g.closed_at:.1f} s ago"
            what = f"{len(g.positions)} of {g.size} samples" + (", partial" if g.partial else "")
            head = f"group {g.group_id!r} of job {g.key[0]!r} was already scored {when} ({what})"
        else:
            head = f"group {g.group_id!r} of job {g.key[0]!r} is already being scored"
        return GroupClosed(
            f"{head}; this sample arrived after the group closed and was not scored. "
            f"Samples must arrive within the group's deadline (deadline_s, setting "
            f"barrier_deadline_s); a retry of a scored sample needs its sample_index or "
            f"request_id to be replayed",
            "group_id",
        )

    def _open(self, key: GroupKey, s: SampleIn) -> _Group:
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
        g = _Group(
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

    def _add(self, g: _Group, s: SampleIn) -> _Slot:
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
        slot = _Slot(
            key, s.sample_index, s.request_id, s.response, s.label, _sample_digest(s), self._seq
        )
        g.slots[key] = slot
        if s.request_id is not None:
            g.by_rid[s.request_id] = key
        self._n_pending += 1
        if len(g.slots) >= g.size:
            self._close(g, partial=False)
        return slot

    # -- waiting -------------------------------------------------------------------------
    async def _wait(self, g: _Group, slot: _Slot, gone: Gone | None) -> SampleOutcome:
        t0 = time.monotonic()
        try:
            waits: set[asyncio.Future[Any]] = {g.future} if gone is None else {g.future, gone}
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if not g.future.done():
                raise ClientGone()
        except (ClientGone, asyncio.CancelledError):
            if slot.anonymous and g.state == "open" and g.slots.get(slot.key) is slot:
                self._withdraw(g, slot)
            raise
        replayed = g.future.result().replayed  # raises the scoring error, if any
        return self._outcome(g, slot, replayed, time.monotonic() - t0)

    def _withdraw(self, g: _Group, slot: _Slot) -> None:
        del g.slots[slot.key]
        self._n_pending -= 1
        self.metrics.barrier_samples.labels("withdrawn").inc()
        if not g.slots:
            self._drop(g)
            self.metrics.barrier_groups.labels("abandoned").inc()

    def _drop(self, g: _Group) -> None:
        """Forget an open group that has no samples left."""
        if g.timer is not None:
            g.timer.cancel()
        if self._live.get(g.key) is g:
            del self._live[g.key]
        self._n_open -= 1
        g.state = "failed"
        g.future.cancel()

    def _outcome(self, g: _Group, slot: _Slot, replayed: bool, wait_s: float) -> SampleOutcome:
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
    def _expire(self, g: _Group) -> None:
        if g.state == "open":
            self._close(g, partial=True)

    def _close(self, g: _Group, partial: bool) -> None:
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
        task = asyncio.get_running_loop().create_task(self._score(g, order))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _score(self, g: _Group, order: list[_Slot]) -> None:
        try:
            result = await self._run_pipeline(g, order)
        except asyncio.CancelledError:
            self._failed(g, NotReady("service shut down before the group was scored; retry"))
            raise
        except ServiceError as e:
            self._failed(g, e)
        except Exception as e:  # a bug or a backend crash: every waiter must still hear
            log.exception("scoring barrier group %r failed", g.group_id)
            self._failed(g, BackendError(f"scoring the group failed: {type(e).__name__}"))
        else:
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
                self._remember(g)

    def _failed(self, g: _Group, e: ServiceError) -> None:
        g.state = "failed"
        if self._live.get(g.key) is g:
            del self._live[g.key]  # retries form the group again; nothing was folded in
        if not g.future.done():
            g.future.set_exception(e)
        self.metrics.barrier_groups.labels("failed").inc()
        self.metrics.barrier_samples.labels("failed").inc(len(g.slots))

    async def _run_pipeline(self, g: _Group, order: list[_Slot]) -> Scored:
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

    # -- memory of scored groups ---------------------------------------------------------
    def _remember(self, g: _Group) -> None:
        cap = self.settings.barrier_max_closed_groups
        if cap <= 0:
            return
        self._closed[g.key] = g
        self._closed.move_to_end(g.key)
        self._prune()
        while len(self._closed) > cap:
            self._closed.popitem(last=False)

    def _prune(self) -> None:
        horizon = time.monotonic() - self.settings.barrier_closed_ttl_s
        while self._closed:
            first = next(iter(self._closed.values()))
            if first.closed_at >= horizon:
                break
            self._closed.popitem(last=False)

    def _closed_get(self, key: GroupKey) -> _Group | None:
        self._prune()
        return self._closed.get(key)

    # -- lifecycle -----------------------------------------------------------------------
    async def close(self, timeout: float = 30.0) -> None:
        """Stop taking samples, score every open group now (partial), wait for scoring."""
        self._closing = True
        for g in [g for g in self._live.values() if g.state == "open"]:
            self._close(g, partial=True)
        tasks = list(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5.0)
