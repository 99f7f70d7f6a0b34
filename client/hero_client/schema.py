"""The wire schema of the HERO reward service: the one place it is defined.

The server imports these models; the client returns them. Field names here are the
public contract: add fields, never rename or remove them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

JOB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$"
# Bounds of a job's state (docs/reliability.md, "Import"): with every sigma (and RM score)
# at most SIGMA_BAR_MAX and at most JOB_COUNT_MAX groups, the cumulative mean's running
# sum (sigma_bar * count + new sigmas) stays far below the float maximum.
SIGMA_BAR_MAX = 1e150
JOB_COUNT_MAX = 2**53
TIMESTAMP_MAX = 1e11  # seconds since the epoch (year 5138)

PresetName = Literal["paper_main", "paper_appendix", "easy_to_verify", "mixed"]
SigmaMean = Literal["ema", "cumulative"]
AdvantageMode = Literal["none", "centered", "grpo"]
# "cascade+judge": cascade, then a model judge for rule-negative answers (docs/verifier.md).
VerifierName = Literal["math_verify", "string", "exact", "cascade", "choice", "cascade+judge"]
Collapse = Literal["all_correct", "all_incorrect", "mixed"]
VerifierStatus = Literal["correct", "incorrect", "no_answer", "timeout", "error", "rejected"]
# What the judge stage said about a rule-negative answer: true (flipped to correct), false,
# unavailable (not asked: circuit breaker open or judge saturated), timeout, error.
JudgeOutcome = Literal["true", "false", "unavailable", "timeout", "error"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ShapingOverrides(_Strict):
    """HERO shaping parameters; every field optional, applied on top of a preset."""

    preset: PresetName | None = None
    alpha: float | None = Field(None, description="Half-width of the incorrect band [-a, a].")
    beta: float | None = Field(None, description="Half-width of the correct band [1-b, 1+b].")
    eps: float | None = None
    w_min: float | None = None
    w_max: float | None = None
    k: float | None = Field(None, description="Sigmoid steepness of the variance weight.")
    sigma_mean: SigmaMean | None = Field(None, description="Running mean of sigma: ema|cumulative.")
    momentum: float | None = Field(None, description="EMA momentum (weight of the old mean).")
    advantage: AdvantageMode | None = Field(None, description="Also return advantages.")


class ShapingConfigOut(BaseModel):
    """A fully resolved shaping configuration."""

    alpha: float
    beta: float
    eps: float
    w_min: float
    w_max: float
    k: float
    sigma_mean: SigmaMean
    momentum: float
    advantage: AdvantageMode


class _GroupFields(_Strict):
    prompt: str = Field("", description="The prompt the responses answer.")
    reference: str = Field(..., min_length=1, description="Gold answer for the rule verifier.")
    responses: list[str] = Field(..., min_length=1, description="The group's rollouts.")
    labels: list[int] | None = Field(
        None, description="Trusted 0/1 correctness labels, for verifier FPR auditing only."
    )

    @field_validator("reference")
    @classmethod
    def _reference_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("reference must not be blank")
        return v

    @field_validator("labels")
    @classmethod
    def _labels_binary(cls, v: list[int] | None) -> list[int] | None:
        if v is not None:
            for i, x in enumerate(v):
                if x not in (0, 1):
                    raise ValueError(f"labels[{i}] must be 0 or 1, got {x!r}")
        return v


class GroupIn(_GroupFields):
    """One group inside a batch request."""

    group_id: str | None = Field(None, max_length=256)


class ScoreGroupRequest(_GroupFields):
    job_id: str = Field(..., pattern=JOB_ID_PATTERN)
    request_id: str | None = Field(None, min_length=1, max_length=256)
    shaping: ShapingOverrides | None = None
    verifier: VerifierName | None = None


class ScoreBatchRequest(_Strict):
    job_id: str = Field(..., pattern=JOB_ID_PATTERN)
    groups: list[GroupIn] = Field(..., min_length=1)
    request_id: str | None = Field(None, min_length=1, max_length=256)
    shaping: ShapingOverrides | None = None
    verifier: VerifierName | None = None


class Timings(BaseModel):
    verify_s: float = 0.0
    rm_s: float = 0.0
    shaping_s: float = 0.0
    total_s: float = 0.0


class GroupResult(BaseModel):
    group_id: str | None = None
    rewards: list[float]
    verifier: list[int]
    verifier_status: list[VerifierStatus]
    answers: list[str | None]
    verifier_stage: list[str | None] | None = Field(
        None, description="Per response, the verifier stage that decided (docs/verifier.md)."
    )
    judge: list[JudgeOutcome | None] | None = Field(
        None,
        description="Per response, what the judge stage said (None: not asked); only with "
        "verifier cascade+judge.",
    )
    rm_scores: list[float]
    normalized: list[float]
    weight: float
    sigma: float
    sigma_bar: float
    collapse: Collapse
    advantages: list[float] | None = None


class ScoreGroupResponse(GroupResult):
    job_id: str
    request_id: str | None = None
    replayed: bool = False
    timings: Timings = Field(default_factory=Timings)


class ScoreBatchResponse(BaseModel):
    job_id: str
    request_id: str | None = None
    replayed: bool = False
    sigma_bar: float
    groups: list[GroupResult]
    timings: Timings = Field(default_factory=Timings)


class JobState(BaseModel):
    """A job's state: GET /jobs/{id} exports it, PUT /jobs/{id} imports it unchanged.

    `sigma_bar` null means the job has no running mean: never scored, or its value was
    lost (older versions stored NaN as null). `count` is then kept as given, and the next
    call seeds sigma_bar with its own mean sigma and restarts count, as for a new job."""

    job_id: str = Field(..., pattern=JOB_ID_PATTERN)
    sigma_bar: float | None = Field(
        None,
        ge=0,
        le=SIGMA_BAR_MAX,
        allow_inf_nan=False,
        description="Running mean of sigma; None before the first group.",
    )
    count: int = Field(0, ge=0, le=JOB_COUNT_MAX, description="Groups folded into sigma_bar.")
    config: ShapingConfigOut
    created_at: float = Field(..., ge=0, le=TIMESTAMP_MAX, allow_inf_nan=False)
    updated_at: float = Field(..., ge=0, le=TIMESTAMP_MAX, allow_inf_nan=False)


class ErrorBody(BaseModel):
    """Every error the service returns has this body."""

    error: str = Field(..., description="Machine-readable kind, e.g. validation_error.")
    message: str
    field: str | None = None
    details: list[dict[str, object]] | None = None


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str


class Ready(BaseModel):
    ready: bool
    components: dict[str, bool]


class ServiceConfig(BaseModel):
    """GET /config: what scores this server's requests (no secrets). Recorded by
    `hero score` and shown in the `hero report` header."""

    version: str
    rm_backend: str = Field(..., description="embedded, hf, vllm or remote.")
    rm_model: str = Field(..., description="The reward model (name or path).")
    verifier: str = Field(..., description="Default rule verifier of new requests.")
    shaping_preset: str = Field(..., description="Preset new jobs start from.")
    shaping: ShapingConfigOut = Field(..., description="Default shaping (preset + overrides).")
    judge: str | None = Field(
        None,
        description="The judge stage's model (verifier cascade+judge), if one is configured.",
    )


class VerifyRequest(_Strict):
    """Debug: the rule verifier alone."""

    prompt: str = Field("", description="The question; only the judge stage reads it.")
    reference: str = Field(..., min_length=1)
    responses: list[str] = Field(..., min_length=1)
    verifier: VerifierName | None = None


class VerifyResponse(BaseModel):
    verifier: list[int]
    verifier_status: list[VerifierStatus]
    answers: list[str | None]
    reasons: list[str | None]
    verifier_name: VerifierName
    verifier_stage: list[str | None] | None = Field(
        None, description="Per response, the verifier stage that decided (docs/verifier.md)."
    )
    judge: list[JudgeOutcome | None] | None = Field(
        None,
        description="Per response, what the judge stage said (None: not asked); only with "
        "verifier cascade+judge.",
    )


class RMScoreRequest(_Strict):
    """Debug: the reward model alone."""

    prompt: str = ""
    responses: list[str] = Field(..., min_length=1)
    reference: str | None = None


class RMScoreResponse(BaseModel):
    rm_scores: list[float]
    backend: str
    # What the reward model read, per response (None: the scorer does not tokenize on
    # our side, e.g. TEI without a local tokenizer), and the truncation policy applied.
    n_tokens: list[int | None] | None = None
    truncated: list[bool | None] | None = None
    max_length: int | None = None
    truncation_side: Literal["left", "right"] | None = None


class ScoreSampleRequest(_Strict):
    """One rollout of a group; the server holds it until the group is complete.

    The server waits until `group_size` samples of (`job_id`, `group_id`) have arrived or
    the group's deadline passes, scores the group once, and answers every waiting request
    with its own reward. Retrying with the same `sample_index` (or `request_id`) joins the
    waiting sample or replays its answer: it is never counted twice.
    """

    job_id: str = Field(..., pattern=JOB_ID_PATTERN)
    group_id: str = Field(
        ..., min_length=1, max_length=256, description="Group key, e.g. verl's uid."
    )
    group_size: int = Field(..., ge=1, description="How many samples the group will have.")
    prompt: str = Field("", description="The prompt; must match across the group.")
    reference: str = Field(
        ..., min_length=1, description="Gold answer; must match across the group."
    )
    response: str = Field(..., description="This sample's rollout.")
    sample_index: int | None = Field(
        None, ge=0, description="Position in the group (0..group_size-1); identifies retries."
    )
    request_id: str | None = Field(
        None, min_length=1, max_length=256, description="Identifies retries of this sample."
    )
    label: int | None = Field(
        None, description="Trusted 0/1 correctness label, for verifier FPR auditing only."
    )
    deadline_s: float | None = Field(
        None,
        gt=0,
        description="Seconds the group waits from its first sample (first sample's value "
        "wins; capped by the server's barrier_max_deadline_s).",
    )
    shaping: ShapingOverrides | None = None
    verifier: VerifierName | None = None

    @field_validator("reference")
    @classmethod
    def _reference_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("reference must not be blank")
        return v

    @field_validator("label")
    @classmethod
    def _label_binary(cls, v: int | None) -> int | None:
        if v is not None and v not in (0, 1):
            raise ValueError(f"label must be 0 or 1, got {v!r}")
        return v


class ScoreSampleResponse(BaseModel):
    """One sample's share of its scored group."""

    job_id: str
    group_id: str
    request_id: str | None = None
    sample_index: int = Field(..., description="The sample's index (its position if not given).")
    position: int = Field(..., description="Index of this sample in the scored group.")
    reward: float
    verifier: int
    verifier_status: VerifierStatus
    answer: str | None = None
    verifier_stage: str | None = None
    judge: JudgeOutcome | None = None
    rm_score: float
    normalized: float
    advantage: float | None = None
    weight: float
    sigma: float
    sigma_bar: float
    collapse: Collapse
    group_size: int = Field(..., description="The group size the samples asked for.")
    group_count: int = Field(..., description="Samples actually scored in the group.")
    partial: bool = Field(..., description="True when the deadline passed before all arrived.")
    replayed: bool = Field(False, description="True for a retry answered from memory.")
    wait_s: float = Field(0.0, description="Seconds this sample waited for its group.")
    timings: Timings = Field(default_factory=Timings)


# The numeric extra_logs keys /get_reward always returns (OpenRLHF needs the same keys).
GET_REWARD_LOG_KEYS = (
    "hero_verifier",
    "hero_rm_score",
    "hero_normalized",
    "hero_weight",
    "hero_sigma",
    "hero_sigma_bar",
    "hero_all_correct",
    "hero_all_incorrect",
    "hero_partial",
    "hero_group_count",
    "hero_prompt_mismatch",
    "hero_error",
)


class GetRewardRequest(BaseModel):
    """OpenRLHF's remote reward request (`--reward.remote_url`): parallel lists.

    OpenRLHF >= 0.10 sends one sample per request; <= 0.9 sends batches. Unknown keys are
    ignored so that other OpenRLHF-style clients keep working.
    """

    model_config = ConfigDict(extra="ignore")

    query: list[str] = Field(..., description="prompt + response, as decoded by the trainer.")
    prompts: list[str] | None = Field(None, description="The prompts (same length as query).")
    labels: list[str | int | float | None] | None = Field(
        None, description="Reference answers (same length as query)."
    )


class GetRewardResponse(BaseModel):
    """OpenRLHF's expected answer: `rewards` train, `scores` drive dynamic filtering."""

    rewards: list[float]
    scores: list[float]
    extra_logs: dict[str, list[float]]
