"""One rollout's rule verdict: what the verifier stages and the judge stage hand on."""

from __future__ import annotations

from dataclasses import dataclass

from hero_client.schema import JudgeOutcome, VerifierStatus


@dataclass(frozen=True)
class Verdict:
    label: int
    status: VerifierStatus
    answer: str | None
    reason: str | None = None
    # Which stage decided (docs/verifier.md "Stages"): extract, exact, prefilter, code,
    # multiple_answers, guard, string, numeric, math_verify, choice, judge, ...
    stage: str | None = None
    judge: JudgeOutcome | None = None  # what the judge stage said; None: not asked
