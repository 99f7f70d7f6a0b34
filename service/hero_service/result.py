"""The canonical result of one scoring call: what `Pipeline.score` returns, what the job
store keeps for an idempotent replay, and what every edge (/score_group, /score_batch,
the barrier, /get_reward) builds its own answer from."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from hero_client.schema import GroupResult, Timings


class _Stored(BaseModel):
    """The stored form. A /score_batch answer stored before this form existed has the
    same three fields (plus job_id, request_id, replayed: ignored)."""

    sigma_bar: float
    groups: list[GroupResult]
    timings: Timings


@dataclass(frozen=True)
class Scored:
    groups: list[GroupResult]
    sigma_bar: float  # the job's running mean before this call: every group was shaped with it
    timings: Timings
    replayed: bool = False

    def stored(self) -> str:
        return _Stored.model_construct(
            sigma_bar=self.sigma_bar, groups=self.groups, timings=self.timings
        ).model_dump_json()

    @classmethod
    def from_stored(cls, text: str) -> Scored:
        """A stored result, replayed. Reads the current form and the per-route answers
        stored before it (kept up to idempotency_ttl_s, 7 days by default)."""
        data: dict[str, Any] = json.loads(text)
        if "groups" in data:
            s = _Stored.model_validate(data)
            return cls(s.groups, s.sigma_bar, s.timings, replayed=True)
        # an old /score_group or barrier answer: one group's fields at the top level
        group = GroupResult.model_validate(
            {k: data[k] for k in GroupResult.model_fields if k in data}
        )
        timings = Timings.model_validate(data.get("timings") or {})
        return cls([group], group.sigma_bar, timings, replayed=True)
