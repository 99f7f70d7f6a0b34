"""In-process transformers reward model: the numerical reference backend.

- Input: the chat template renders [user: prompt, assistant: response] (no generation
  prompt); without a template, plain `prompt + response` with the tokenizer's special
  tokens. Special tokens are added only when the text does not already start with BOS,
  so there is never a duplicate BOS.
- Truncation is explicit: at most `max_length` tokens; "left" keeps the end of the
  response (and a leading BOS), "right" keeps the start. `Prepared.truncated` says so.
- The batch is right-padded here and the score is read at index length-1 of each row,
  never by looking for the pad id (a response may itself end with the pad token).
- The body may run in bf16/fp16; the score head runs in fp32. For decoder
  `*ForSequenceClassification` models (head at `.score`, body at `base_model_prefix`)
  the body's hidden state at the last real token goes through an fp32 copy of the head,
  whose weights are re-read from the checkpoint at full precision. Other architectures
  fall back to the model's own logits: per-token ("token reward", [B, T, 1] or [B, T])
  are gathered at the last real token; pooled [B, 1] logits are taken as they come.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hero_service.rm.base import Prepared, RMInput
from hero_service.rm.tokenize import ChatTokenizer, check_truncation, load_tokenizer

if TYPE_CHECKING:
    from hero_service.config import Settings

log = logging.getLogger(__name__)


def _torch_dtype(name: str) -> Any:
    import torch

    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in dtypes:
        raise ValueError(f"rm_dtype must be one of {sorted(dtypes)}, got {name!r}")
    return dtypes[name]


def _checkpoint_tensors(path: Path, names: list[str]) -> dict[str, Any]:
    """Read the named tensors from the safetensors checkpoint at their stored precision."""
    from safetensors import safe_open

    index = path / "model.safetensors.index.json"
    if index.is_file():
        weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
        files: dict[str, list[str]] = {}
        for n in names:
            if n in weight_map:
                files.setdefault(weight_map[n], []).append(n)
    elif (path / "model.safetensors").is_file():
        files = {"model.safetensors": names}
    else:
        return {}
    found: dict[str, Any] = {}
    for fname, wanted in files.items():
        with safe_open(str(path / fname), framework="pt") as f:
            keys = set(f.keys())
            for n in wanted:
                if n in keys:
                    found[n] = f.get_tensor(n)
    return found


class HFRewardModel:
    name = "hf"

    def __init__(
        self,
        path: str,
        device: str = "cpu",
        dtype: str = "float32",
        max_length: int = 512,
        truncation_side: str = "left",
        threads: int = 0,
        *,
        system_prompt: str = "",
        trust_remote_code: bool = False,
        model: Any = None,
        tokenizer: Any = None,
    ) -> None:
        """Load the RM from a local directory. `model`/`tokenizer` inject preloaded objects."""
        check_truncation(max_length, truncation_side)
        torch_dtype = _torch_dtype(dtype)
        if model is None or tokenizer is None:
            if not path:
                raise ValueError(
                    "rm_model is empty: the hf backend needs a local model directory "
                    "(HERO_RM_MODEL / --rm-model)"
                )
            if not Path(path).is_dir():
                raise ValueError(f"rm_model {path!r} is not an existing local directory")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModelForSequenceClassification

        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self.device = torch.device(device)
        self.dtype = torch_dtype
        if tokenizer is None:
            tokenizer = load_tokenizer(path, trust_remote_code)
        if model is None:
            model = AutoModelForSequenceClassification.from_pretrained(
                path,
                num_labels=1,
                dtype=torch_dtype,
                local_files_only=True,
                trust_remote_code=trust_remote_code,
            )
            n_labels = getattr(model.config, "num_labels", 1)
            if n_labels != 1:
                raise ValueError(f"rm_model {path!r} has num_labels={n_labels}, expected 1")
        self.model: Any = model.to(self.device).eval()

        limit = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)
        self.chat = ChatTokenizer(
            path,
            max_length,
            truncation_side,
            system_prompt=system_prompt,
            tokenizer=tokenizer,
            max_positions=limit if isinstance(limit, int) else 0,
        )
        self.tokenizer: Any = tokenizer
        self.max_length = self.chat.max_length
        self.truncation_side = truncation_side
        self.has_template = self.chat.has_template
        self.pad_id = self.chat.pad_id
        self.bos_id = self.chat.bos_id

        self._body: Any = None
        self._head: Any = None
        self._setup_fp32_head(Path(path) if path else None)
        self.head_mode = "fp32_head" if self._head is not None else "model_logits"

    @classmethod
    def from_settings(cls, settings: Settings) -> HFRewardModel:
        return cls(
            settings.rm_model,
            device=settings.rm_device,
            dtype=settings.rm_dtype,
            max_length=settings.rm_max_length,
            truncation_side=settings.rm_truncation_side,
            threads=settings.torch_threads,
            system_prompt=settings.rm_system_prompt,
        )

    # --- fp32 head -------------------------------------------------------------------

    def _setup_fp32_head(self, path: Path | None) -> None:
        torch = self._torch
        model = self.model
        head = getattr(model, "score", None)
        prefix = getattr(model, "base_model_prefix", "")
        body = getattr(model, prefix, None) if prefix else None
        if not isinstance(head, torch.nn.Module) or not isinstance(body, torch.nn.Module):
            return
        head32 = copy.deepcopy(head).float()
        if self.dtype != torch.float32 and path is not None:
            names = {f"score.{k}": k for k in head32.state_dict()}
            exact = _checkpoint_tensors(path, list(names))
            state = head32.state_dict()
            for full, short in names.items():
                t = exact.get(full)
                if t is not None and tuple(t.shape) == tuple(state[short].shape):
                    state[short] = t.float()
            head32.load_state_dict(state)
        self._body, self._head = body, head32.to(self.device).eval()
        if not self._head_matches_model(head):
            log.warning(
                "hf RM %s: body+score does not reproduce the model's logits; "
                "using the model's own logits (head not in fp32)",
                type(model).__name__,
            )
            self._body = self._head = None

    def _head_matches_model(self, native_head: Any) -> bool:
        """Check that score(body(x)[last]) is what the model itself computes."""
        torch = self._torch
        ids = [i for i in self.tokenizer("1 + 2 = 3, so x = 3.")["input_ids"] if i != self.pad_id]
        ids = ids or [self.bos_id if self.bos_id is not None else 1]
        t = torch.tensor([ids], device=self.device)
        mask = torch.ones_like(t)
        lengths = torch.tensor([len(ids)], device=self.device)
        with torch.inference_mode():
            own = self._pool(self.model(input_ids=t, attention_mask=mask).logits, lengths)
            hidden = self._last_hidden(t, mask, lengths)
            mine = native_head(hidden).float()[:, 0]
        tol = 1e-4 if self.dtype == torch.float32 else 2e-2
        return bool(torch.allclose(own, mine, rtol=tol, atol=tol))

    def _last_hidden(self, ids: Any, mask: Any, lengths: Any) -> Any:
        out = self._body(input_ids=ids, attention_mask=mask)
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        rows = self._torch.arange(hidden.shape[0], device=hidden.device)
        return hidden[rows, lengths - 1]

    def _pool(self, logits: Any, lengths: Any) -> Any:
        """Model logits -> one fp32 score per row, per-token outputs read at length-1."""
        torch = self._torch
        b = logits.shape[0]
        rows = torch.arange(b, device=logits.device)
        if logits.dim() == 3:  # token reward [B, T, C]
            if logits.shape[-1] != 1:
                raise ValueError(f"expected one label, model returned logits {tuple(logits.shape)}")
            return logits[rows, lengths - 1, 0].float()
        if logits.dim() == 2:
            if logits.shape[1] == 1:  # pooled [B, 1]
                return logits[:, 0].float()
            return logits[rows, lengths - 1].float()  # token reward [B, T]
        if logits.dim() == 1:
            return logits.float()
        raise ValueError(f"unexpected logits shape {tuple(logits.shape)}")

    # --- Backend protocol ------------------------------------------------------------

    def prepare(self, item: RMInput) -> Prepared:
        return self.chat.prepare(item)

    def padded_tokens(self, batch: list[Prepared]) -> int:
        return len(batch) * max((p.n_tokens for p in batch), default=0)

    def forward(self, batch: list[Prepared]) -> list[float]:
        if not batch:
            return []
        torch = self._torch
        seqs: list[tuple[int, ...]] = [p.payload for p in batch]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):  # right padding: real tokens never see the pads
            ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
            mask[i, : len(s)] = 1
        lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long, device=self.device)
        ids, mask = ids.to(self.device), mask.to(self.device)
        with torch.inference_mode():
            if self._head is not None:
                hidden = self._last_hidden(ids, mask, lengths)
                scores = self._head(hidden.float())[:, 0]
            else:
                scores = self._pool(self.model(input_ids=ids, attention_mask=mask).logits, lengths)
        return [float(x) for x in scores.float().cpu()]
