"""All service configuration in one settings object (env vars HERO_*, CLI flags)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from hero_client.schema import AdvantageMode, PresetName, SigmaMean, VerifierName
from hero_service.shaping import PRESETS, ShapingConfig, ShapingError

# Rule stages whose `incorrect` is a proof of difference, never reviewed by the judge (hedges
# and unit mismatches, absurd input, numbers or endpoints or component counts that differ,
# a wrong letter); `text`, `relation`, `string` and `math_verify` are reviewed.
SKIP_STAGES = (
    "guard",
    "prefilter",
    "numeric",
    "rounding",
    "angle",
    "interval",
    "components",
    "choice",
    "unit",  # two units that no exact conversion reconciles (verify/units.py)
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HERO_", extra="forbid")

    # server
    host: str = Field("127.0.0.1", description="Bind address (loopback by default).")
    port: int = Field(8000, ge=0, le=65535, description="Bind port.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level."
    )
    auth_tokens: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Bearer tokens (comma-separated in env/flag); empty disables auth.",
    )
    metrics_max_jobs: int = Field(
        100, ge=1, description="Job ids kept as metric labels; later jobs report as 'other'."
    )

    # state
    state_path: str = Field(
        "hero-state.sqlite3", description="SQLite file for per-job state (':memory:' for none)."
    )
    idempotency_ttl_s: float = Field(
        7 * 86400.0, gt=0, description="How long a request id is remembered."
    )

    # verifier
    verifier: VerifierName = Field(
        "cascade", description="Default rule verifier (cascade+judge needs judge_url)."
    )
    verifier_workers: int = Field(2, ge=1, le=64, description="Verifier worker processes.")
    verifier_deadline_s: float = Field(
        10.0, gt=0, description="Outer wall-clock deadline per verification (parent kills)."
    )
    verifier_inner_timeout_s: int = Field(
        3, ge=1, description="Math-Verify's own SIGALRM timeout inside a worker."
    )
    verifier_max_tasks: int = Field(500, ge=1, description="Recycle a worker after N tasks.")
    verifier_memory_mb: int = Field(1536, ge=256, description="Address-space cap per worker.")
    verifier_cache_size: int = Field(100_000, ge=0, description="LRU (reference, answer) cache.")
    verifier_max_queue: int = Field(
        20_000, ge=1, description="Max verifications waiting for a worker before 429."
    )
    verifier_max_per_request: int = Field(
        0,
        ge=0,
        description="Most verifier workers one request may hold at once (0 = no cap; "
        "requests always share the workers round-robin).",
    )

    # judge stage (verify/judge.py, docs/verifier.md "Judge stage"): an OpenAI-compatible
    # chat-completions server asked about rule-negative answers under verifier cascade+judge.
    judge_url: str = Field(
        "",
        description="Base URL of the judge's OpenAI-compatible server, e.g. http://tinyv:8000 "
        "(empty: no judge; cascade+judge is refused).",
    )
    judge_model: str = Field(
        "", description="Model name sent to the judge (empty: the first of its /v1/models)."
    )
    judge_api_key: str = Field("", description="Bearer token for the judge, if any.")
    judge_timeout_s: float = Field(
        10.0, gt=0, description="Deadline per judge call (queueing + HTTP); then the rule stands."
    )
    judge_connect_timeout_s: float = Field(2.0, gt=0, description="Judge connect timeout.")
    judge_max_concurrency: int = Field(16, ge=1, description="Max judge calls in flight.")
    judge_cache_size: int = Field(
        100_000, ge=0, description="LRU (question, reference, answer) -> judge verdict."
    )
    judge_breaker_failures: int = Field(
        5, ge=1, description="Consecutive judge failures (errors, timeouts) that open the breaker."
    )
    judge_breaker_reset_s: float = Field(
        30.0, gt=0, description="Seconds the open breaker skips the judge before one probe call."
    )
    judge_prompt_file: str = Field(
        "",
        description="Prompt template file with {question}, {reference}, {answer} "
        "(empty: TinyV's prompt).",
    )
    judge_top_logprobs: int = Field(
        5, ge=1, le=20, description="Top logprobs requested for the judge's first token."
    )
    judge_threshold: float = Field(
        0.5,
        ge=0,
        lt=1,
        description="Flip when P(True) / (P(True) + P(False)) of the first token is above this.",
    )
    judge_max_answer_ratio: float = Field(
        4.0,
        gt=0,
        description="Ask only about answers up to ratio x len(reference) + "
        "judge_answer_slack_chars characters (longer ones look like enumerations).",
    )
    judge_answer_slack_chars: int = Field(
        16, ge=0, description="Characters allowed on top of judge_max_answer_ratio."
    )
    judge_max_question_chars: int = Field(
        4000, ge=0, description="The question sent to the judge is cut to its last N characters."
    )
    judge_skip_stages: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(SKIP_STAGES),
        description="Rule stages whose incorrect verdicts the judge never reviews: they "
        "prove a difference (comma-separated).",
    )

    # reward model
    rm_backend: Literal["embedded", "hf", "vllm", "remote"] = Field(
        "embedded", description="Reward-model backend (vllm needs the vllm extra)."
    )
    rm_model: str = Field("", description="Model path for the hf backend.")
    rm_device: str = Field("cpu", description="torch device for in-process backends.")
    rm_dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="Body dtype for in-process backends (head stays fp32)."
    )
    rm_max_length: int = Field(512, ge=8, description="Max tokens per sequence (truncated).")
    rm_truncation_side: Literal["left", "right"] = Field(
        "left", description="Which side to cut when a sequence is too long."
    )
    rm_system_prompt: str = Field(
        "",
        description="System turn put before (prompt, response) in the RM's chat template "
        "(hf, vllm, remote). AceMath-7B-RM is scored with 'Please reason step by step, and "
        "check your final answer within \\boxed{}.'. Empty: no system turn.",
    )
    rm_max_batch_size: int = Field(32, ge=1, description="Max sequences per forward pass.")
    rm_max_batch_tokens: int = Field(
        16384, ge=8, description="Token budget per forward pass, padding included."
    )
    rm_max_queue: int = Field(4096, ge=1, description="Max sequences waiting before 429.")
    torch_threads: int = Field(0, ge=0, description="torch intra-op threads (0 = default).")

    # reward model: remote and in-process vLLM backends (rm/remote.py, rm/vllm.py).
    # Both apply the chat template on our side with hf.py's tokenization code, so all
    # backends score the same token ids; rm_max_length / rm_truncation_side apply too.
    rm_tokenizer: str = Field(
        "",
        description="Local tokenizer dir for the remote backend's chat template "
        "(default: rm_model).",
    )
    rm_remote_url: str = Field("", description="Base URL of the remote RM server.")
    rm_remote_api: Literal["vllm_classify", "vllm_pooling", "tei"] = Field(
        "vllm_classify", description="Remote protocol: vLLM /classify, vLLM /pooling, TEI /predict."
    )
    rm_remote_model: str = Field("", description="Model name sent to vLLM (served model name).")
    rm_remote_pooling_task: Literal["classify", "token_classify"] = Field(
        "classify",
        description="Task for vllm_pooling: classify (seq-cls RMs) or token_classify "
        "(token reward models such as Qwen2ForRewardModel; the last token's score is used).",
    )
    rm_remote_send: Literal["ids", "text"] = Field(
        "ids", description="vLLM input: token ids (default) or text with add_special_tokens=false."
    )
    rm_remote_api_key: str = Field("", description="Bearer token for the remote RM, if any.")
    rm_remote_connect_timeout_s: float = Field(5.0, gt=0, description="Connect timeout.")
    rm_remote_timeout_s: float = Field(60.0, gt=0, description="Read timeout per HTTP request.")
    rm_remote_retries: int = Field(
        4, ge=0, description="Retries on connect errors and HTTP 429/502/503."
    )
    rm_remote_backoff_s: float = Field(0.2, ge=0, description="First retry backoff (doubles).")
    rm_remote_backoff_max_s: float = Field(5.0, ge=0, description="Max backoff per retry.")
    rm_remote_max_concurrency: int = Field(
        64, ge=1, description="Max HTTP requests in flight to the remote RM (pooled connections)."
    )
    rm_remote_max_batch: int = Field(
        32, ge=1, description="Max sequences per HTTP request to the remote RM."
    )
    rm_vllm_max_num_seqs: int = Field(256, ge=1, description="vLLM max sequences per step.")
    rm_vllm_max_num_batched_tokens: int = Field(
        0, ge=0, description="vLLM token budget per step (0 = vLLM's default)."
    )
    rm_vllm_gpu_memory_utilization: float = Field(
        0.85, gt=0, le=1, description="vLLM share of GPU memory (GPU only)."
    )
    rm_vllm_prefix_caching: bool = Field(
        True, description="vLLM prefix caching (rollouts of one prompt share its KV)."
    )
    rm_vllm_engine_args: str = Field(
        "", description="Extra vLLM engine args as JSON, e.g. '{\"enforce_eager\": true}'."
    )

    # barrier: per-sample scoring (/score_sample, /get_reward) assembles groups server-side
    # (api/barrier.py). Deadlines count from a group's first sample and must stay well under
    # the trainer's HTTP timeout (OpenRLHF waits 180 s).
    barrier_deadline_s: float = Field(
        30.0, gt=0, description="Default seconds a group waits for its samples."
    )
    barrier_max_deadline_s: float = Field(
        600.0, gt=0, description="Largest deadline_s a request may ask for (longer is capped)."
    )
    barrier_max_open_groups: int = Field(
        10_000, ge=1, description="Groups waiting for samples before new groups get 429."
    )
    barrier_max_pending_samples: int = Field(
        200_000, ge=1, description="Samples waiting in open groups before new ones get 429."
    )
    barrier_max_pending_bytes: int = Field(
        256 * 1024 * 1024,
        ge=0,
        description="Bytes of /score_sample and /get_reward bodies held at once before new "
        "ones get 429 (0 = no limit).",
    )
    barrier_shared: bool = Field(
        True,
        description="With a Redis state_url, /score_sample groups are assembled in Redis, "
        "so a group's samples may reach any replica (api/shared.py).",
    )
    barrier_closed_ttl_s: float = Field(
        900.0, gt=0, description="How long a scored group's answers are kept for retries."
    )
    barrier_max_closed_groups: int = Field(
        100_000, ge=0, description="Scored groups remembered for retries and late samples."
    )
    compat_job_id: str = Field(
        "default",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$",
        description="Job id for /get_reward when the URL gives no job_id.",
    )
    compat_fallback_reward: float = Field(
        0.0, description="Reward /get_reward returns for a sample it failed to score."
    )

    # request limits
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="Max request body (413).")
    body_read_timeout_s: float = Field(
        10.0,
        ge=0,
        description="Longest time to receive a request body; a stalled upload gets 408 and "
        "frees its slot (0 = no limit).",
    )
    max_group_size: int = Field(1024, ge=1, description="Max responses per group.")
    max_batch_groups: int = Field(1024, ge=1, description="Max groups per /score_batch call.")
    max_response_chars: int = Field(200_000, ge=1, description="Max characters per response.")
    max_prompt_chars: int = Field(200_000, ge=1, description="Max characters of a prompt.")
    max_reference_chars: int = Field(10_000, ge=1, description="Max characters of a reference.")

    # reliability: shared state, backpressure, shutdown, auth (issue 6; docs/reliability.md).
    # state_url selects the store: empty -> SQLite at state_path; redis://host:6379/0 ->
    # Redis, shared by every replica serving a job (state/redis.py).
    state_url: str = Field(
        "", description="Job-state store URL: empty (SQLite at state_path) or redis://H:P/DB."
    )
    state_timeout_s: float = Field(
        2.0, gt=0, description="Connect/read timeout of the state store (Redis) in seconds."
    )
    redis_key_prefix: str = Field("hero:", description="Prefix of every Redis key.")
    max_inflight_requests: int = Field(
        64,
        ge=0,
        description="Scoring requests in flight per replica before 429 (0 = no limit; the "
        "barrier routes are bounded by their own limits).",
    )
    max_queued_requests: int = Field(
        64, ge=0, description="Scoring requests that may wait for an in-flight slot."
    )
    queue_wait_s: float = Field(
        0.25,
        ge=0,
        description="Longest wait for an in-flight slot before 429 (0 = no queue).",
    )
    request_deadline_s: float = Field(
        120.0, ge=0, description="Per-request deadline of scoring routes (503; 0 = none)."
    )
    shutdown_drain_s: float = Field(
        0.0,
        ge=0,
        description="On SIGTERM: seconds to report not-ready before closing the listener.",
    )
    shutdown_grace_s: float = Field(
        30.0, ge=0, description="On SIGTERM: seconds in-flight requests get to finish."
    )
    auth_tokens_file: str = Field(
        "", description="File with bearer tokens, one per line (e.g. a mounted Secret)."
    )
    auth_open_paths: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [
            "/health",
            "/ready",
            "/metrics",
            "/docs",
            "/redoc",
            "/openapi.json",
        ],
        description="Paths served without a token when auth is on (comma-separated).",
    )

    @field_validator("auth_tokens", "auth_open_paths", "judge_skip_stages", mode="before")
    @classmethod
    def _comma_list(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = json.loads(v) if v.lstrip().startswith("[") else v.split(",")
        return [x.strip() for x in v if x.strip()] if isinstance(v, list) else v

    @field_validator("judge_url")
    @classmethod
    def _judge_url(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("judge_url must be empty or an http(s):// base URL")
        return v

    @field_validator("state_url")
    @classmethod
    def _state_url(cls, v: str) -> str:
        if v and not v.startswith(("redis://", "rediss://", "unix://", "sqlite://")):
            raise ValueError("state_url must be empty, sqlite:///PATH or redis://HOST:PORT/DB")
        return v

    def bearer_tokens(self) -> list[str]:
        """auth_tokens plus the tokens in auth_tokens_file (read now: rotate + restart)."""
        tokens = list(self.auth_tokens)
        if self.auth_tokens_file:
            with open(self.auth_tokens_file, encoding="utf-8") as f:
                tokens += [t.strip() for t in f if t.strip() and not t.startswith("#")]
        return tokens

    # default shaping (a preset, then explicit overrides)
    shaping_preset: PresetName = Field(
        "paper_main", description="Named HERO preset new jobs start from."
    )
    alpha: float | None = Field(None, description="Incorrect band [-alpha, alpha] (preset: 0.1).")
    beta: float | None = Field(None, description="Correct band [1-beta, 1+beta] (preset: 0.1).")
    eps: float | None = Field(None, description="Min-max normalisation epsilon (1e-6).")
    w_min: float | None = Field(None, description="Lowest variance weight (preset: 0.5).")
    w_max: float | None = Field(None, description="Highest variance weight (preset: 2.0).")
    k: float | None = Field(None, description="Sigmoid steepness of the weight (preset: 5).")
    sigma_mean: SigmaMean = Field(
        "ema", description="Running mean of sigma per job: ema or cumulative."
    )
    momentum: float | None = Field(None, description="EMA momentum (0.9).")
    advantage: AdvantageMode = Field(
        "none", description="Also return advantages: none, centered, grpo (w after std)."
    )

    @model_validator(mode="after")
    def _check_shaping(self) -> Settings:
        self.default_shaping()  # raises ShapingError (a ValueError) on a bad combination
        return self

    @model_validator(mode="after")
    def _check_judge(self) -> Settings:
        if self.verifier == "cascade+judge" and not self.judge_url:
            raise ValueError("verifier cascade+judge needs judge_url")
        return self

    def default_shaping(self) -> ShapingConfig:
        over: dict[str, Any] = {
            "alpha": self.alpha,
            "beta": self.beta,
            "eps": self.eps,
            "w_min": self.w_min,
            "w_max": self.w_max,
            "k": self.k,
            "momentum": self.momentum,
            "sigma_mean": self.sigma_mean,
            "advantage": self.advantage,
        }
        try:
            return PRESETS[self.shaping_preset].with_overrides(over)
        except ShapingError as e:
            raise ValueError(f"invalid shaping setting {e}") from None
