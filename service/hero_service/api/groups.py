"""The barrier's vocabulary: a sample as the routes hand it over, its outcome, the slots
and groups the barrier keeps (barrier.py), and the client-disconnect watch."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

from starlette.requests import Request

from hero_client.schema import GroupResult, ShapingOverrides, Timings
from hero_service.errors import Conflict, InvalidInput
from hero_service.result import Scored

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
class Slot:
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
class OpenGroup:
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
    slots: dict[SlotKey, Slot] = field(default_factory=dict)
    by_rid: dict[str, SlotKey] = field(default_factory=dict)
    positions: dict[SlotKey, int] = field(default_factory=dict)
    state: State = "open"
    partial: bool = False
    closed_at: float = 0.0
    timer: asyncio.TimerHandle | None = None
    waiters: int = 0  # requests waiting on `future`; at 0 the group is abandoned
    task: asyncio.Task[None] | None = None  # its scoring, cancelled when nobody waits

    def find(self, s: SampleIn) -> Slot | None:
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


def sample_digest(s: SampleIn) -> str:
    return hashlib.sha256(
        json.dumps([s.response, s.label], ensure_ascii=False).encode("utf-8", "surrogatepass")
    ).hexdigest()


def shaping_key(s: ShapingOverrides | None) -> str:
    return s.model_dump_json(exclude_none=True) if s is not None else "{}"


def check_sample(s: SampleIn, limit: int) -> None:
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


def check_group(g: OpenGroup, s: SampleIn) -> None:
    """Every sample of a group sends the same group-level fields."""
    checks: list[tuple[str, object, object]] = [
        ("group_size", g.size, s.group_size),
        ("prompt", g.prompt, s.prompt),
        ("reference", g.reference, s.reference),
        ("verifier", g.verifier, s.verifier),
        ("shaping", shaping_key(g.shaping), shaping_key(s.shaping)),
    ]
    for name, have, got in checks:
        if have != got:
            shown = f" {have!r}" if name in ("group_size", "verifier", "shaping") else ""
            raise Conflict(
                f"group {g.group_id!r} of job {g.key[0]!r} already has a different "
                f"{name}{shown}; every sample of a group must send the same {name}",
                name,
            )


def same_content(g: OpenGroup, slot: Slot, s: SampleIn) -> None:
    """A retry of an identified sample resends the same sample."""
    if slot.digest != sample_digest(s):
        f = "sample_index" if s.sample_index is not None else "request_id"
        ident = s.sample_index if s.sample_index is not None else s.request_id
        raise Conflict(
            f"{f} {ident!r} of group {g.group_id!r} was already sent with a different "
            f"response or label; a retry must resend the same sample",
            f,
        )


def late(g: OpenGroup, s: SampleIn) -> GroupClosed:
    """409 for a new sample of a group that is being or was already scored."""
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


class ScoredGroups:
    """Scored groups remembered for retries and late samples: TTL + count, oldest first."""

    def __init__(self, cap: int, ttl_s: float) -> None:
        self.cap = cap
        self.ttl_s = ttl_s
        self._groups: OrderedDict[GroupKey, OpenGroup] = OrderedDict()

    def remember(self, g: OpenGroup) -> None:
        if self.cap <= 0:
            return
        self._groups[g.key] = g
        self._groups.move_to_end(g.key)
        self._prune()
        while len(self._groups) > self.cap:
            self._groups.popitem(last=False)

    def _prune(self) -> None:
        horizon = time.monotonic() - self.ttl_s
        while self._groups:
            first = next(iter(self._groups.values()))
            if first.closed_at >= horizon:
                break
            self._groups.popitem(last=False)

    def get(self, key: GroupKey) -> OpenGroup | None:
        self._prune()
        return self._groups.get(key)
