"""The chat tokenizer every RM backend that tokenizes on our side holds (hf, remote,
vllm): chat template (optional system turn), exactly one BOS, explicit truncation
(left keeps the BOS). One implementation, so the backends cannot drift apart."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from hero_service.rm.base import Prepared, RMInput

TRUNCATION_SIDES: Final = ("left", "right")


def check_system_prompt(system_prompt: str, has_template: bool) -> str:
    if system_prompt and not has_template:
        raise ValueError(
            "rm_system_prompt is set but the RM tokenizer has no chat template to put a "
            "system turn in (unset HERO_RM_SYSTEM_PROMPT, or use a chat model's tokenizer)"
        )
    return system_prompt


def check_truncation(max_length: int, truncation_side: str) -> None:
    if truncation_side not in TRUNCATION_SIDES:
        raise ValueError(f"rm_truncation_side must be 'left' or 'right', got {truncation_side!r}")
    if max_length < 2:
        raise ValueError(f"rm_max_length must be >= 2, got {max_length}")


def load_tokenizer(path: str, trust_remote_code: bool = False) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(
        path, local_files_only=True, trust_remote_code=trust_remote_code
    )


class ChatTokenizer:
    def __init__(
        self,
        path: str,
        max_length: int = 512,
        truncation_side: str = "left",
        *,
        system_prompt: str = "",
        trust_remote_code: bool = False,
        tokenizer: Any = None,
        max_positions: int | None = None,
    ) -> None:
        """`tokenizer` injects a loaded one; `max_positions` (the model's context) caps
        max_length, read from PATH/config.json when not given."""
        check_truncation(max_length, truncation_side)
        if tokenizer is None:
            if not path or not Path(path).is_dir():
                raise ValueError(
                    f"tokenizer path {path!r} is not an existing local directory "
                    "(HERO_RM_TOKENIZER / HERO_RM_MODEL)"
                )
            tokenizer = load_tokenizer(path, trust_remote_code)
        self.tokenizer: Any = tokenizer
        limit = max_positions if max_positions is not None else _max_positions(path)
        self.max_length = min(max_length, limit) if limit else max_length
        self.truncation_side = truncation_side
        self.bos_id: int | None = tokenizer.bos_token_id
        self.bos_token: str | None = tokenizer.bos_token
        self.has_template = bool(getattr(tokenizer, "chat_template", None))
        self.system_prompt = check_system_prompt(system_prompt, self.has_template)
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id
        self.pad_id: int = int(pad) if pad is not None else 0
        # The special tokens the tokenizer adds around plain text (e.g. [BOS] or [CLS] .. [SEP]).
        empty: list[int] = list(tokenizer("", add_special_tokens=True)["input_ids"])
        self._auto_prefix, self._auto_suffix = _split_specials(
            empty, tokenizer.bos_token_id, tokenizer.eos_token_id
        )

    def ids(self, item: RMInput) -> list[int]:
        tok = self.tokenizer
        if self.has_template:
            system = [{"role": "system", "content": self.system_prompt}]
            messages = [
                *(system if self.system_prompt else []),
                {"role": "user", "content": item.prompt},
                {"role": "assistant", "content": item.response},
            ]
            text: str = tok.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=False
            )
        else:
            text = item.prompt + item.response
        has_bos = bool(self.bos_token) and text.startswith(str(self.bos_token))
        ids: list[int] = list(tok(text, add_special_tokens=not has_bos)["input_ids"])
        while self.bos_id is not None and len(ids) > 1 and ids[0] == ids[1] == self.bos_id:
            ids.pop(0)  # belt and braces: never two BOS in front
        return ids

    def prepare(self, item: RMInput) -> Prepared:
        ids = self.ids(item)
        n = self.max_length
        truncated = len(ids) > n
        if truncated:
            if self.truncation_side == "right":
                ids = ids[:n]
            elif self.bos_id is not None and ids[0] == self.bos_id:
                ids = [ids[0], *ids[len(ids) - (n - 1) :]]
            else:
                ids = ids[len(ids) - n :]
        if not ids:
            raise ValueError("the reward-model input tokenized to nothing")
        return Prepared(len(ids), tuple(ids), truncated)

    def decode(self, ids: Sequence[int]) -> str:
        """Text that the same tokenizer encodes back to `ids` (special tokens kept)."""
        text: str = self.tokenizer.decode(
            list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False
        )
        return text

    def text_for_server_specials(self, ids: Sequence[int]) -> str:
        """Text for a server that adds the tokenizer's own special tokens (TEI): ours
        are stripped first so the server does not duplicate them."""
        body = list(ids)
        pre, suf = self._auto_prefix, self._auto_suffix
        if pre and body[: len(pre)] == pre:
            body = body[len(pre) :]
        if suf and body[len(body) - len(suf) :] == suf:
            body = body[: len(body) - len(suf)]
        return self.decode(body)


def _split_specials(
    empty: list[int], bos_id: int | None, eos_id: int | None
) -> tuple[list[int], list[int]]:
    """Split the ids of an empty string into leading and trailing special tokens:
    [BOS] -> prefix; [EOS] -> suffix; [CLS, SEP] or [BOS, EOS] -> one of each."""
    if not empty:
        return [], []
    if len(empty) == 1:
        if empty[0] == eos_id and empty[0] != bos_id:
            return [], empty
        return empty, []
    return empty[:1], empty[1:]


def _max_positions(path: str) -> int | None:
    cfg = Path(path) / "config.json" if path else None
    if cfg is None or not cfg.is_file():
        return None
    try:
        data = json.loads(cfg.read_text())
    except (OSError, ValueError):
        return None
    v = data.get("max_position_embeddings")
    return v if isinstance(v, int) and v > 0 else None
