"""Every Prometheus metric of the service, defined here and nowhere else.

Each app gets its own registry so several apps (tests, replicas in one process) never
collide. Label sets are bounded: job ids are capped (`max_job_labels`, overflow -> "other").
The training job's id is the label `job_id`, never `job`: Prometheus owns `job` (the
scrape job) and would rename ours to `exported_job`.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LAT = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_SIZE = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_TOK = tuple(2.0**i for i in range(4, 20))


class Metrics:
    def __init__(self, max_job_labels: int = 100) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._jobs: set[str] = set()
        self._max_jobs = max_job_labels
        self._lock = threading.Lock()

        self.requests = Counter(
            "hero_requests_total",
            "HTTP requests by route and status code.",
            ["route", "code"],
            registry=r,
        )
        self.request_duration = Histogram(
            "hero_request_duration_seconds",
            "End-to-end request latency.",
            ["route"],
            buckets=_LAT,
            registry=r,
        )
        self.groups = Counter(
            "hero_groups_total",
            "Scored groups by collapse kind.",
            ["job_id", "collapse"],
            registry=r,
        )
        self.rollouts = Counter("hero_rollouts_total", "Scored rollouts.", ["job_id"], registry=r)
        self.verifier_outcomes = Counter(
            "hero_verifier_outcomes_total",
            "Verifier results by verifier and status.",
            ["verifier", "status"],
            registry=r,
        )
        self.verifier_confusion = Counter(
            "hero_verifier_confusion_total",
            "Verifier label vs trusted label (tp/fp/tn/fn), when requests carry labels.",
            ["job_id", "outcome"],
            registry=r,
        )
        self.verifier_stage = Counter(
            "hero_verifier_stage_total",
            "Verifier decisions by verifier, deciding stage and status.",
            ["verifier", "stage", "status"],
            registry=r,
        )
        self.verifier_stage_confusion = Counter(
            "hero_verifier_stage_confusion_total",
            "Verifier label vs trusted label (tp/fp/tn/fn) by the stage that decided; "
            "stage=judge holds the judge's flips.",
            ["stage", "outcome"],
            registry=r,
        )
        # Judge stage (verify/judge.py): counts are per distinct (question, reference, answer)
        # except flips, which count rollouts.
        self.judge_requests = Counter(
            "hero_judge_requests_total",
            "Judge HTTP calls by outcome (true / false / timeout / error / unparsed).",
            ["outcome"],
            registry=r,
        )
        self.judge_duration = Histogram(
            "hero_judge_duration_seconds",
            "Judge HTTP call latency (answered calls).",
            buckets=_LAT,
            registry=r,
        )
        self.judge_flips = Counter(
            "hero_judge_flips_total",
            "Rollouts the judge flipped from incorrect to correct.",
            registry=r,
        )
        self.judge_skipped = Counter(
            "hero_judge_skipped_total",
            "Eligible answers not sent to the judge: breaker_open, busy (no slot before the "
            "deadline); their rule verdict stands.",
            ["reason"],
            registry=r,
        )
        self.judge_cache = Counter(
            "hero_judge_cache_total", "Judge LRU cache lookups.", ["result"], registry=r
        )
        self.judge_breaker_state = Gauge(
            "hero_judge_breaker_state",
            "Judge circuit breaker: 0 closed, 1 half-open (one probe), 2 open (judge skipped).",
            registry=r,
        )
        self.judge_breaker_trips = Counter(
            "hero_judge_breaker_trips_total", "Times the judge breaker opened.", registry=r
        )
        self.verifier_duration = Histogram(
            "hero_verifier_duration_seconds",
            "Per-answer verification latency (cache misses).",
            ["verifier"],
            buckets=_LAT,
            registry=r,
        )
        self.verifier_cache = Counter(
            "hero_verifier_cache_total",
            "Verifier LRU cache lookups.",
            ["result"],
            registry=r,
        )
        self.verifier_pool_size = Gauge(
            "hero_verifier_pool_workers", "Configured verifier worker processes.", registry=r
        )
        self.verifier_queue = Gauge(
            "hero_verifier_inflight", "Verifications submitted and not finished.", registry=r
        )
        self.disagreement = Counter(
            "hero_rm_verifier_disagreement_total",
            "Unlabelled proxy: verifier-correct rollouts the RM ranks lowest in the group "
            "(verified_low_rm) and verifier-incorrect ones it ranks highest (rejected_high_rm).",
            ["job_id", "kind"],
            registry=r,
        )
        self.weight = Histogram(
            "hero_weight",
            "Variance-aware weight per group.",
            ["job_id"],
            buckets=(0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0),
            registry=r,
        )
        self.sigma_bar = Gauge(
            "hero_sigma_bar", "Job's running mean of sigma.", ["job_id"], registry=r
        )
        self.rm_batch_size = Histogram(
            "hero_rm_batch_size", "Sequences per RM forward pass.", buckets=_SIZE, registry=r
        )
        self.rm_batch_tokens = Histogram(
            "hero_rm_batch_tokens", "Padded tokens per RM forward pass.", buckets=_TOK, registry=r
        )
        self.rm_padding_ratio = Histogram(
            "hero_rm_padding_ratio",
            "Padding share of each RM batch.",
            buckets=(0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9),
            registry=r,
        )
        self.rm_queue_depth = Gauge(
            "hero_rm_queue_depth", "Sequences waiting for the RM.", registry=r
        )
        self.rm_queue_duration = Histogram(
            "hero_rm_queue_duration_seconds",
            "Time a sequence waits for its batch.",
            buckets=_LAT,
            registry=r,
        )
        self.rm_inference_duration = Histogram(
            "hero_rm_inference_duration_seconds",
            "RM forward pass duration.",
            buckets=_LAT,
            registry=r,
        )
        self.rm_errors = Counter(
            "hero_rm_errors_total", "RM backend failures by kind.", ["kind"], registry=r
        )
        self.rm_dropped = Counter(
            "hero_rm_dropped_total",
            "Queued RM inputs dropped before their forward pass: the caller went away.",
            registry=r,
        )
        self.rm_truncated = Counter(
            "hero_rm_truncated_total", "Sequences truncated to rm_max_length.", registry=r
        )
        self.rejected = Counter(
            "hero_overload_rejections_total",
            "Requests refused with 429 by stage.",
            ["stage"],
            registry=r,
        )
        self.refused = Counter(
            "hero_refused_requests_total",
            "Requests refused before any work: unauthorized (401, no body read), "
            "body_timeout (408, upload stalled past body_read_timeout_s).",
            ["reason"],
            registry=r,
        )
        self.replays = Counter(
            "hero_idempotent_replays_total",
            "Requests answered from the idempotency store.",
            registry=r,
        )
        # Capacities, so dashboards and alerts can show saturation as a ratio.
        self.rm_queue_capacity = Gauge(
            "hero_rm_queue_capacity",
            "Max sequences the RM queue holds before 429 (setting rm_max_queue).",
            registry=r,
        )
        self.verifier_queue_capacity = Gauge(
            "hero_verifier_queue_capacity",
            "Max verifications in flight before 429 (setting verifier_max_queue).",
            registry=r,
        )
        self.job_label_cap = Gauge(
            "hero_job_label_cap",
            'Distinct job ids kept as metric labels; later jobs report as job_id="other".',
            registry=r,
        )
        self.job_label_cap.set(max_job_labels)
        self.job_label_overflow = Counter(
            "hero_job_label_overflow_total",
            'Scored calls whose job id was folded into job_id="other" by the label cap.',
            registry=r,
        )

        # Group barrier (barrier.py): per-sample requests waiting for their group.
        self.barrier_open_groups = Gauge(
            "hero_barrier_open_groups", "Groups waiting for samples in the barrier.", registry=r
        )
        self.barrier_pending_samples = Gauge(
            "hero_barrier_pending_samples",
            "Samples waiting in open barrier groups.",
            registry=r,
        )
        self.barrier_pending_bytes = Gauge(
            "hero_barrier_pending_bytes",
            "Bytes of request bodies held by /score_sample and /get_reward (api/pending.py).",
            registry=r,
        )
        self.barrier_pending_bytes_limit = Gauge(
            "hero_barrier_pending_bytes_limit",
            "barrier_max_pending_bytes: past it, barrier requests get 429 (0 = no limit).",
            registry=r,
        )
        self.barrier_groups = Counter(
            "hero_barrier_groups_total",
            "Barrier groups closed, by outcome (complete / partial / failed / abandoned).",
            ["outcome"],
            registry=r,
        )
        self.barrier_samples = Counter(
            "hero_barrier_samples_total",
            "Per-sample barrier requests by outcome (scored / joined / replayed / late / "
            "withdrawn / rejected / failed).",
            ["outcome"],
            registry=r,
        )
        self.barrier_wait = Histogram(
            "hero_barrier_wait_seconds",
            "Time from a group's first sample until it was closed for scoring.",
            buckets=_LAT,
            registry=r,
        )
        self.barrier_fill_ratio = Histogram(
            "hero_barrier_fill_ratio",
            "Samples scored / group_size for each barrier group (1 = complete).",
            buckets=(0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0),
            registry=r,
        )

        # Reliability (api/middleware.py, state stores): admission, deadlines, state outages.
        self.inflight_requests = Gauge(
            "hero_inflight_requests",
            "Scoring requests admitted and not finished (this replica).",
            registry=r,
        )
        self.inflight_limit = Gauge(
            "hero_inflight_requests_limit",
            "max_inflight_requests of this replica (0 = unlimited).",
            registry=r,
        )
        self.admission_queue = Gauge(
            "hero_admission_queued_requests",
            "Scoring requests waiting for an in-flight slot (this replica).",
            registry=r,
        )
        self.deadline_exceeded = Counter(
            "hero_deadline_exceeded_total",
            "Requests cut off by request_deadline_s (answered 503 deadline_exceeded).",
            ["route"],
            registry=r,
        )
        self.client_gone = Counter(
            "hero_client_gone_total",
            "Scoring requests whose client disconnected before the answer; their work was "
            "cancelled (queued RM inputs and verifications dropped).",
            ["route"],
            registry=r,
        )
        self.state_errors = Counter(
            "hero_state_errors_total",
            "Requests answered 503 state_unavailable (state store unreachable or contended).",
            registry=r,
        )
        self.state_up = Gauge(
            "hero_state_up", "1 while the last probe of the job-state store succeeded.", registry=r
        )

    def job_label(self, job_id: str) -> str:
        """Bound label cardinality: the first `max_job_labels` jobs keep their id."""
        with self._lock:
            if job_id in self._jobs:
                return job_id
            if len(self._jobs) < self._max_jobs:
                self._jobs.add(job_id)
                return job_id
        self.job_label_overflow.inc()
        return "other"
