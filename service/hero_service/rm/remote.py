"""A reward model served elsewhere, over HTTP: vLLM `/classify` or `/pooling`, TEI `/predict`.

- The chat template is applied on OUR side, by the tokenizer hf.py holds too
  (`ChatTokenizer`, rm/tokenize.py: template, one BOS, truncation), so `remote` and `hf`
  score the same token ids.
- vLLM: token ids are sent (`rm_remote_send="ids"`, default) so the server neither
  re-templates nor adds a second BOS; `"text"` sends the decoded ids with
  `add_special_tokens: false`. Always `use_activation: false`: vLLM applies a sigmoid to
  one-label classifiers by default and we want the raw logit. `/classify` answers
  `data[i].probs[0]`; `/pooling` answers `data[i].data`, a flat list or per-token
  rows (token reward models), whose last value is taken.
- TEI: `/predict` takes text only and adds its tokenizer's special tokens itself, so those
  are stripped from our ids before decoding; `raw_scores: true` (TEI also defaults to a
  sigmoid). Without a local tokenizer, TEI gets `[prompt, response]` pairs.
- One pooled `httpx.AsyncClient`; at most `rm_remote_max_batch` sequences per HTTP request
  and `rm_remote_max_concurrency` requests in flight; at most `rm_max_queue` sequences
  waiting (then 429). Connect errors, dropped connections and HTTP 429/502/503 are retried
  with exponential backoff and jitter (a Retry-After header is honoured, capped); a read
  timeout is not retried. Exhausted 429s surface as Overloaded (429), everything else as
  BackendError (502).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from hero_client.retry import parse_retry_after
from hero_service.errors import BackendError, Overloaded
from hero_service.metrics import Metrics
from hero_service.rm.base import Prepared, RMInput, RMResult
from hero_service.rm.remote_wire import parse_scores
from hero_service.rm.tokenize import ChatTokenizer

if TYPE_CHECKING:
    from hero_service.config import Settings

log = logging.getLogger(__name__)

REMOTE_APIS: Final = ("vllm_classify", "vllm_pooling", "tei")
ENDPOINTS: Final = {"vllm_classify": "/classify", "vllm_pooling": "/pooling", "tei": "/predict"}
RETRY_STATUS: Final = frozenset({429, 502, 503})


class _Retryable(Exception):
    """One failed attempt that may succeed if tried again."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass
class RemoteConfig:
    url: str
    api: str = "vllm_classify"
    model: str = ""
    send: str = "ids"
    pooling_task: str = "classify"
    api_key: str = ""
    connect_timeout_s: float = 5.0
    timeout_s: float = 60.0
    retries: int = 4
    backoff_s: float = 0.2
    backoff_max_s: float = 5.0
    max_concurrency: int = 64
    max_batch: int = 32
    max_queue: int = 4096
    truncation_side: str = "left"

    @classmethod
    def from_settings(cls, s: Settings) -> RemoteConfig:
        return cls(
            url=s.rm_remote_url,
            api=s.rm_remote_api,
            model=s.rm_remote_model,
            send=s.rm_remote_send,
            pooling_task=s.rm_remote_pooling_task,
            api_key=s.rm_remote_api_key,
            connect_timeout_s=s.rm_remote_connect_timeout_s,
            timeout_s=s.rm_remote_timeout_s,
            retries=s.rm_remote_retries,
            backoff_s=s.rm_remote_backoff_s,
            backoff_max_s=s.rm_remote_backoff_max_s,
            max_concurrency=s.rm_remote_max_concurrency,
            max_batch=s.rm_remote_max_batch,
            max_queue=s.rm_max_queue,
            truncation_side=s.rm_truncation_side,
        )


class RemoteScorer:
    """`RMScorer` for an RM behind vLLM's or TEI's HTTP API."""

    def __init__(
        self, cfg: RemoteConfig, metrics: Metrics, tokenizer: ChatTokenizer | None
    ) -> None:
        if not cfg.url:
            raise ValueError("rm_remote_url is empty: the remote backend needs the RM's base URL")
        if not cfg.url.startswith(("http://", "https://")):
            raise ValueError(f"rm_remote_url must start with http:// or https://, got {cfg.url!r}")
        if cfg.api not in REMOTE_APIS:
            raise ValueError(f"rm_remote_api must be one of {REMOTE_APIS}, got {cfg.api!r}")
        if cfg.send not in ("ids", "text"):
            raise ValueError(f"rm_remote_send must be 'ids' or 'text', got {cfg.send!r}")
        if tokenizer is None and cfg.api != "tei":
            raise ValueError(
                f"rm_remote_api={cfg.api!r} needs a local tokenizer to apply the chat template "
                "on our side: set rm_tokenizer (or rm_model) to a local model/tokenizer directory"
            )
        self.cfg = cfg
        self.metrics = metrics
        self.tokenizer = tokenizer
        self.endpoint = cfg.url.rstrip("/") + ENDPOINTS[cfg.api]
        self._client: httpx.AsyncClient | None = None
        self._sem: asyncio.Semaphore | None = None
        self._pending = 0  # sequences accepted and not yet answered
        self._waiting = 0  # sequences waiting for a connection slot
        self.requests = 0  # HTTP attempts, for tests and the benchmark
        self.retries = 0

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics) -> RemoteScorer:
        cfg = RemoteConfig.from_settings(settings)
        path = settings.rm_tokenizer or settings.rm_model
        tok: ChatTokenizer | None = None
        if path:
            tok = ChatTokenizer(
                path,
                settings.rm_max_length,
                settings.rm_truncation_side,
                system_prompt=settings.rm_system_prompt,
            )
        return cls(cfg, metrics, tok)

    @property
    def name(self) -> str:
        return f"remote:{self.cfg.api}"

    def start(self) -> None:
        if self._client is not None:
            return
        c = self.cfg
        headers = {"Authorization": f"Bearer {c.api_key}"} if c.api_key else {}
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(c.timeout_s, connect=c.connect_timeout_s, pool=c.timeout_s),
            limits=httpx.Limits(
                max_connections=c.max_concurrency, max_keepalive_connections=c.max_concurrency
            ),
            headers=headers,
        )
        self._sem = asyncio.Semaphore(c.max_concurrency)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # --- scoring ---------------------------------------------------------------------

    @property
    def truncation(self) -> tuple[int | None, str | None]:
        if self.tokenizer is not None:
            return self.tokenizer.max_length, self.tokenizer.truncation_side
        return None, (self.cfg.truncation_side if self.cfg.api == "tei" else None)

    async def score(self, items: list[RMInput]) -> list[float]:
        return [r.score for r in await self.score_details(items)]

    async def score_details(self, items: list[RMInput]) -> list[RMResult]:
        if not items:
            return []
        if self._client is None or self._sem is None:
            raise BackendError("remote reward model client is not started")
        if self._pending + len(items) > self.cfg.max_queue:
            self.metrics.rejected.labels("rm").inc()
            raise Overloaded("rm", f"reward-model queue is full ({self.cfg.max_queue} sequences)")
        self._pending += len(items)
        try:
            if self.tokenizer is not None:
                tok = self.tokenizer

                def prepare() -> list[tuple[Prepared, Any]]:
                    return [(p, self._wire_input(p)) for p in map(tok.prepare, items)]

                prepared = await asyncio.to_thread(prepare)
                for p, _ in prepared:
                    if p.truncated:
                        self.metrics.rm_truncated.inc()
                inputs: list[Any] = [w for _, w in prepared]
                n_tokens = [p.n_tokens for p, _ in prepared]
                cut: list[bool | None] = [p.truncated for p, _ in prepared]
            else:  # TEI without a local tokenizer: cross-encoder style pairs
                inputs = [[x.prompt, x.response] for x in items]
                n_tokens = [0] * len(items)
                cut = [None] * len(items)
            # vLLM takes a list of texts or a list of id lists, not a mix: one group each.
            groups: dict[bool, list[int]] = {}
            for i, w in enumerate(inputs):
                groups.setdefault(isinstance(w, str), []).append(i)
            step = max(1, self.cfg.max_batch)
            spans = [idx[k : k + step] for idx in groups.values() for k in range(0, len(idx), step)]
            parts = await asyncio.gather(
                *(
                    self._post_chunk([inputs[i] for i in span], sum(n_tokens[i] for i in span))
                    for span in spans
                )
            )
            out = [0.0] * len(inputs)
            for span, part in zip(spans, parts, strict=True):
                for i, s in zip(span, part, strict=True):
                    out[i] = s
            return [RMResult(x, n or None, c) for x, n, c in zip(out, n_tokens, cut, strict=True)]
        finally:
            self._pending -= len(items)

    def _wire_input(self, p: Prepared) -> Any:
        """What goes on the wire for one sequence: its ids, or text that encodes to them."""
        tok = self.tokenizer
        assert tok is not None
        ids: tuple[int, ...] = p.payload
        if self.cfg.api == "tei":
            return tok.text_for_server_specials(ids)
        if self.cfg.send == "text":
            text = tok.decode(ids)
            # A cut made by truncation can re-tokenize differently: then send the ids.
            if list(tok.tokenizer(text, add_special_tokens=False)["input_ids"]) == list(ids):
                return text
        return list(ids)

    def _body(self, inputs: list[Any]) -> dict[str, Any]:
        c = self.cfg
        if c.api == "tei":
            return {
                "inputs": inputs,
                "raw_scores": True,
                "truncate": True,
                "truncation_direction": "Left" if c.truncation_side == "left" else "Right",
            }
        body: dict[str, Any] = {
            "input": inputs,
            "use_activation": False,
            "add_special_tokens": False,  # our ids/text already carry them
        }
        if c.model:
            body["model"] = c.model
        if c.api == "vllm_pooling":
            body["task"] = c.pooling_task
        return body

    async def _post_chunk(self, inputs: list[Any], n_tokens: int) -> list[float]:
        assert self._sem is not None
        t0 = time.perf_counter()
        self._waiting += len(inputs)
        self.metrics.rm_queue_depth.set(self._waiting)
        try:
            await self._sem.acquire()
        finally:
            self._waiting -= len(inputs)
            self.metrics.rm_queue_depth.set(self._waiting)
        try:
            waited = time.perf_counter() - t0
            for _ in inputs:
                self.metrics.rm_queue_duration.observe(waited)
            t1 = time.perf_counter()
            scores = await self._post_with_retries(self._body(inputs), len(inputs))
            self.metrics.rm_inference_duration.observe(time.perf_counter() - t1)
            self.metrics.rm_batch_size.observe(len(inputs))
            if n_tokens:
                self.metrics.rm_batch_tokens.observe(n_tokens)
            return scores
        finally:
            self._sem.release()

    async def _post_with_retries(self, body: dict[str, Any], n: int) -> list[float]:
        c = self.cfg
        backoff = wait_exponential_jitter(
            initial=c.backoff_s, max=c.backoff_max_s, jitter=c.backoff_s
        )

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome is not None else None
            base = float(backoff(state))
            if isinstance(exc, _Retryable) and exc.retry_after is not None:
                return min(max(base, exc.retry_after), c.backoff_max_s)
            return base

        def before_sleep(state: RetryCallState) -> None:
            self.retries += 1
            exc = state.outcome.exception() if state.outcome is not None else None
            log.warning("remote RM attempt %d failed (%s); retrying", state.attempt_number, exc)

        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(c.retries + 1),
                wait=wait,
                retry=retry_if_exception(lambda e: isinstance(e, _Retryable)),
                before_sleep=before_sleep,
                reraise=True,
            ):
                with attempt:
                    return await self._post_once(body, n)
        except _Retryable as e:
            attempts = c.retries + 1
            if e.status == 429:
                raise Overloaded(
                    "rm",
                    f"remote reward model is overloaded (429 after {attempts} attempts)",
                    retry_after=e.retry_after or 1.0,
                ) from None
            raise BackendError(
                f"remote reward model unavailable after {attempts} attempts: {e}"
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post_once(self, body: dict[str, Any], n: int) -> list[float]:
        assert self._client is not None
        self.requests += 1
        errors = self.metrics.rm_errors
        try:
            r = await self._client.post(self.endpoint, json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as e:
            errors.labels("remote_connect").inc()
            raise _Retryable(f"{type(e).__name__}: {e}") from None
        except httpx.TimeoutException as e:
            errors.labels("remote_timeout").inc()
            raise BackendError(
                f"remote reward model timed out ({type(e).__name__}, timeout {self.cfg.timeout_s}s)"
            ) from None
        except httpx.HTTPError as e:
            errors.labels("remote_http").inc()
            raise BackendError(
                f"remote reward model request failed: {type(e).__name__}: {e}"
            ) from None
        if r.status_code in RETRY_STATUS:
            errors.labels(f"remote_{r.status_code}").inc()
            raise _Retryable(
                f"HTTP {r.status_code}: {r.text[:200]}", r.status_code, parse_retry_after(r)
            )
        if r.status_code != 200:
            errors.labels("remote_http").inc()
            raise BackendError(f"remote reward model returned HTTP {r.status_code}: {r.text[:300]}")
        try:
            scores = parse_scores(self.cfg.api, r.json(), n)
        except (ValueError, KeyError, TypeError, IndexError) as e:
            errors.labels("remote_bad_response").inc()
            raise BackendError(f"unexpected response from remote reward model: {e}") from None
        return scores
