"""The blocking client, `HeroClient`. GENERATED from _async.py by scripts/unasync.py:
do not edit; edit _async.py and run the script (tests/test_client_sync.py checks)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, TypeVar

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_after_delay

from hero_client import _base as b
from hero_client import schema as s
from hero_client._base import USER_AGENT, Call, Shaping
from hero_client._exceptions import HeroError, HeroTimeoutError
from hero_client.retry import NO_RETRY, RetryPolicy, log_retry

T = TypeVar("T")


class HeroClient:
    """Blocking client for the HERO reward service.

    Scoring calls get a request id generated once per call (unless you pass one), so the
    automatic retries (connection errors, timeouts, 429, 502, 503, 504; exponential
    backoff with jitter; Retry-After honoured) never score a group twice. Results are the
    pydantic models of `hero_client.schema`; errors are the tree documented in
    `hero_client._exceptions` (all exported from `hero_client`).

    `transport` (an httpx transport, e.g. `httpx.MockTransport`) or a ready `http_client`
    can be injected for tests. `limits` sizes the connection pool (httpx's default: 100
    connections); a per-sample call holds a connection while its group waits in the
    server's barrier, so a caller with many samples in flight needs a larger pool.
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        token: str | None = None,
        timeout: float | httpx.Timeout = b.DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        limits: httpx.Limits | None = None,
        http_client: httpx.Client | None = None,
        auto_request_id: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.timeout = b.make_timeout(timeout)
        self.retry = retry or RetryPolicy()
        self.auto_request_id = auto_request_id
        self._sleep = sleep
        self._own = http_client is None
        self._http = http_client or httpx.Client(
            base_url=base_url,
            timeout=self.timeout,
            transport=transport,
            headers=b.headers(token, USER_AGENT),
            limits=limits or httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )

    # -- plumbing ------------------------------------------------------------------------
    def close(self) -> None:
        if self._own:
            self._http.close()

    def __enter__(self) -> HeroClient:
        return self

    def __exit__(
        self,
        et: type[BaseException] | None,
        ev: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _rid(self, request_id: str | None) -> str | None:
        return request_id or (b.new_request_id() if self.auto_request_id else None)

    def _t(self, timeout: float | httpx.Timeout | None) -> httpx.Timeout:
        return self.timeout if timeout is None else b.make_timeout(timeout)

    def _once(self, call: Call[T]) -> T:
        try:
            resp = self._http.request(
                call.method,
                call.path,
                json=call.body,
                params=call.params,
                timeout=call.timeout if call.timeout is not None else self.timeout,
            )
        except httpx.TransportError as e:
            raise b.transport_error(e, call.method, call.path) from e
        if resp.status_code in call.accept:
            return call.parse(resp)
        raise b.api_error(resp)

    def send(self, call: Call[T], retry: RetryPolicy | None = None) -> T:
        """Send a prepared call with the retry policy; raises the last attempt's error."""
        policy = retry or self.retry
        retrying = Retrying(
            stop=stop_after_attempt(policy.max_attempts) | stop_after_delay(policy.max_elapsed_s),
            wait=policy.wait,
            retry=retry_if_exception(policy.retryable),
            reraise=True,
            sleep=self._sleep,
            before_sleep=log_retry,
        )
        try:
            result: T = retrying(self._once, call)
        except HeroError as e:
            e.attempts = retrying.statistics.get("attempt_number", 1)
            raise
        return result

    # -- scoring -------------------------------------------------------------------------
    def score_group(
        self,
        job_id: str,
        *,
        reference: str,
        responses: Sequence[str],
        prompt: str = "",
        labels: Sequence[int] | None = None,
        shaping: Shaping = None,
        verifier: str | None = None,
        request_id: str | None = None,
        timeout: float | httpx.Timeout | None = None,
    ) -> s.ScoreGroupResponse:
        """Score one group (all rollouts of one prompt)."""
        return self.send(
            b.score_group(
                job_id,
                prompt,
                reference,
                responses,
                labels,
                shaping,
                verifier,
                self._rid(request_id),
                self._t(timeout),
            )
        )

    def score_batch(
        self,
        job_id: str,
        groups: Sequence[s.GroupIn | Mapping[str, Any]],
        *,
        shaping: Shaping = None,
        verifier: str | None = None,
        request_id: str | None = None,
        timeout: float | httpx.Timeout | None = None,
    ) -> s.ScoreBatchResponse:
        """Score many groups of one job in one call (they share the pre-call sigma_bar)."""
        return self.send(
            b.score_batch(
                job_id, groups, shaping, verifier, self._rid(request_id), self._t(timeout)
            )
        )

    def score_sample(
        self,
        job_id: str,
        *,
        group_id: str,
        group_size: int,
        reference: str,
        response: str,
        prompt: str = "",
        sample_index: int | None = None,
        label: int | None = None,
        deadline_s: float | None = None,
        shaping: Shaping = None,
        verifier: str | None = None,
        request_id: str | None = None,
        timeout: float | httpx.Timeout | None = None,
    ) -> s.ScoreSampleResponse:
        """Score one rollout through the server's group barrier (waits for its group)."""
        return self.send(
            b.score_sample(
                job_id,
                group_id,
                group_size,
                response,
                reference,
                prompt,
                sample_index,
                label,
                deadline_s,
                shaping,
                verifier,
                self._rid(request_id),
                b.sample_timeout(self._t(timeout), deadline_s),
            )
        )

    def get_reward(
        self,
        query: Sequence[str],
        prompts: Sequence[str] | None = None,
        labels: Sequence[str | int | float | None] | None = None,
        *,
        job_id: str | None = None,
        group_size: int | None = None,
        deadline_s: float | None = None,
        verifier: str | None = None,
        preset: str | None = None,
        scores: Literal["verifier", "reward"] | None = None,
        timeout: float | httpx.Timeout | None = None,
    ) -> s.GetRewardResponse:
        """OpenRLHF-compatible /get_reward (batch, or one sample through the barrier)."""
        return self.send(
            b.get_reward(
                query,
                prompts,
                labels,
                job_id,
                group_size,
                deadline_s,
                verifier,
                preset,
                scores,
                b.sample_timeout(self._t(timeout), deadline_s),
            )
        )

    # -- debug and jobs ------------------------------------------------------------------
    def verify(
        self,
        reference: str,
        responses: Sequence[str],
        *,
        verifier: str | None = None,
        prompt: str = "",
    ) -> s.VerifyResponse:
        """The rule verifier alone (no state is touched); `prompt` is the question, read
        only by the judge stage (verifier cascade+judge)."""
        return self.send(b.verify(reference, responses, verifier, prompt))

    def rm_score(
        self, responses: Sequence[str], *, prompt: str = "", reference: str | None = None
    ) -> s.RMScoreResponse:
        """The reward model alone (raw scores)."""
        return self.send(b.rm_score(responses, prompt, reference))

    def get_job(self, job_id: str) -> s.JobState:
        return self.send(b.get_job(job_id))

    def list_jobs(self) -> list[s.JobState]:
        return self.send(b.list_jobs())

    def import_job(self, state: s.JobState) -> s.JobState:
        """Create or overwrite a job from an exported state (restore from a checkpoint)."""
        return self.send(b.import_job(state))

    def reset_job(self, job_id: str) -> bool:
        """Forget a job; False if it did not exist."""
        return self.send(b.reset_job(job_id))

    # -- ops -----------------------------------------------------------------------------
    def health(self) -> s.Health:
        return self.send(b.health())

    def ready(self) -> s.Ready:
        return self.send(b.ready())

    def config(self) -> s.ServiceConfig:
        """The server's reward model, default verifier and shaping."""
        return self.send(b.config())

    def metrics(self) -> str:
        return self.send(b.metrics())

    def wait_ready(self, timeout_s: float = 300.0, interval_s: float = 1.0) -> s.Ready:
        """Poll /ready until the service is ready; HeroTimeoutError after `timeout_s`."""
        end = time.monotonic() + timeout_s
        last: BaseException | None = None
        while True:
            try:
                r = self.send(b.ready(), NO_RETRY)
                if r.ready:
                    return r
            except HeroError as e:
                last = e
            if time.monotonic() >= end:
                raise HeroTimeoutError(f"service not ready after {timeout_s} s (last: {last})")
            self._sleep(interval_s)
