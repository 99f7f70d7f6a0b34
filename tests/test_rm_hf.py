"""HFRewardModel with real forward passes on tiny local models (tests/tiny_models.py)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from tiny_models import cached_tiny_rm, math_lines
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hero_service.config import Settings
from hero_service.metrics import Metrics
from hero_service.rm import build_backend
from hero_service.rm.base import RMInput
from hero_service.rm.batcher import DynamicBatcher
from hero_service.rm.hf import HFRewardModel

TOL = 1e-5


# --- fixtures and references ---------------------------------------------------------


@pytest.fixture(scope="session")
def rm_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-rm")


@pytest.fixture(scope="session", params=["qwen2", "llama"])
def chat_dir(request: pytest.FixtureRequest, rm_base: Path) -> str:
    return cached_tiny_rm(rm_base, request.param)


@pytest.fixture(scope="session")
def qwen_dir(rm_base: Path) -> str:
    return cached_tiny_rm(rm_base, "qwen2")


@pytest.fixture(scope="session")
def plain_dir(rm_base: Path) -> str:
    """No chat template: plain prompt + response with the tokenizer's special tokens."""
    return cached_tiny_rm(rm_base, "qwen2", chat_template=False)


_REFS: dict[str, tuple[Any, Any]] = {}


def reference(path: str) -> tuple[Any, Any]:
    """The fp32 model and tokenizer as transformers loads them, independent of hf.py."""
    if path not in _REFS:
        model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True)
        _REFS[path] = (model.eval(), AutoTokenizer.from_pretrained(path, local_files_only=True))
    return _REFS[path]


def ref_ids(tok: Any, prompt: str, response: str) -> list[int]:
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
    return list(
        tok.apply_chat_template(
            messages, tokenize=True, add_generation_prompt=False, return_dict=False
        )
    )


def ref_score(model: Any, ids: list[int]) -> float:
    """Unbatched forward, per-token head, logit at the last token (no pooling by pad id)."""
    with torch.inference_mode():
        hidden = model.model(input_ids=torch.tensor([ids])).last_hidden_state
        return float(model.score(hidden)[0, -1, 0])


def pairs(n: int, seed: int = 1) -> list[RMInput]:
    rng = random.Random(seed)
    lines = math_lines(200, seed + 100)
    out = []
    for _ in range(n):
        prompt = rng.choice(lines).split("=")[0]
        response = " ".join(rng.choice(lines) for _ in range(rng.randint(0, 4)))
        out.append(RMInput(prompt, response or "7"))
    return out


# --- (a) reference parity ----------------------------------------------------------


def test_scores_match_unbatched_reference(chat_dir: str) -> None:
    model, tok = reference(chat_dir)
    rm = HFRewardModel(chat_dir)
    assert rm.head_mode == "fp32_head"
    items = pairs(12)
    prepared = [rm.prepare(x) for x in items]
    assert len({p.n_tokens for p in prepared}) > 3  # mixed lengths: real padding
    got = rm.forward(prepared)
    for x, p, s in zip(items, prepared, got, strict=True):
        ids = ref_ids(tok, x.prompt, x.response)
        assert list(p.payload) == ids
        assert s == pytest.approx(ref_score(model, ids), abs=TOL)
        with torch.inference_mode():  # HF's own pooling agrees when no pad id is inside
            own = float(model(input_ids=torch.tensor([ids])).logits[0, 0])
        assert s == pytest.approx(own, abs=TOL)
    assert max(got) - min(got) > 1e-2  # the scores are not all the same


# --- (b) batch invariance ------------------------------------------------------------


def test_batch_invariance(chat_dir: str) -> None:
    rm = HFRewardModel(chat_dir)
    items = pairs(16, seed=2)
    prepared = [rm.prepare(x) for x in items]
    alone = [rm.forward([p])[0] for p in prepared]
    order = list(range(len(items)))
    random.Random(0).shuffle(order)
    batched = rm.forward([prepared[i] for i in order])
    assert rm.padded_tokens(prepared) > sum(p.n_tokens for p in prepared)
    for pos, i in enumerate(order):
        assert batched[pos] == pytest.approx(alone[i], abs=TOL)


# --- (c) a response that ends with the pad token id ----------------------------------


def test_response_ending_in_pad_token_scored_at_true_last_token(plain_dir: str) -> None:
    model, tok = reference(plain_dir)
    rm = HFRewardModel(plain_dir)
    assert not rm.has_template
    x = RMInput("Compute 3 + 4 = ?", " x = 7. \\boxed{7}" + tok.pad_token)
    p = rm.prepare(x)
    ids = list(p.payload)
    assert ids[-1] == tok.pad_token_id and ids.count(tok.pad_token_id) == 1
    ref = ref_score(model, ids)
    with torch.inference_mode():  # HF pools at the rightmost non-pad token: one too early
        hf_pooled = float(model(input_ids=torch.tensor([ids])).logits[0, 0])
    assert abs(hf_pooled - ref) > 1e-3
    assert rm.forward([p])[0] == pytest.approx(ref, abs=TOL)
    others = [rm.prepare(y) for y in pairs(5, seed=3)]
    batched = rm.forward([*others[:2], p, *others[2:]])
    assert batched[2] == pytest.approx(ref, abs=TOL)


# --- (d) truncation ----------------------------------------------------------------


def test_truncation_left_and_right(qwen_dir: str) -> None:
    model, tok = reference(qwen_dir)
    long = RMInput("Compute 12 + 30", " ".join(math_lines(6, 7)) + " \\boxed{42}")
    full = ref_ids(tok, long.prompt, long.response)
    n = 16
    assert len(full) > n

    left = HFRewardModel(qwen_dir, max_length=n)  # default side: left
    assert left.truncation_side == "left"
    p = left.prepare(long)
    assert p.truncated and p.n_tokens == n
    assert list(p.payload) == [tok.bos_token_id, *full[-(n - 1) :]]  # BOS kept, end kept
    assert tok.decode(list(p.payload), skip_special_tokens=True).endswith("\\boxed{42}")
    assert left.forward([p])[0] == pytest.approx(ref_score(model, list(p.payload)), abs=TOL)

    right = HFRewardModel(qwen_dir, max_length=n, truncation_side="right")
    q = right.prepare(long)
    assert q.truncated and list(q.payload) == full[:n]
    assert right.forward([q])[0] == pytest.approx(ref_score(model, full[:n]), abs=TOL)

    short = RMInput("Find x", "7")
    for rm in (left, right):
        s = rm.prepare(short)
        assert not s.truncated and list(s.payload) == ref_ids(tok, short.prompt, short.response)

    with pytest.raises(ValueError, match="truncation_side"):
        HFRewardModel(qwen_dir, truncation_side="middle")


# --- (e) chat template, BOS --------------------------------------------------------


def test_chat_template_applied_without_duplicate_bos(chat_dir: str) -> None:
    _, tok = reference(chat_dir)
    rm = HFRewardModel(chat_dir)
    assert rm.has_template
    x = RMInput("Compute 3 + 4", "x = 7. \\boxed{7}")
    ids = list(rm.prepare(x).payload)
    text = tok.apply_chat_template(
        [{"role": "user", "content": x.prompt}, {"role": "assistant", "content": x.response}],
        tokenize=False,
        add_generation_prompt=False,
    )
    assert text.startswith(tok.bos_token)
    assert tok(text)["input_ids"][:2] == [tok.bos_token_id] * 2  # the trap being avoided
    assert ids == tok(text, add_special_tokens=False)["input_ids"]
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    tokens = tok.convert_ids_to_tokens(ids)
    assert "<|user|>" in tokens and "<|assistant|>" in tokens
    assert ids[-1] == tok.eos_token_id  # assistant turn closed, no generation prompt


def test_plain_concatenation_with_special_tokens(plain_dir: str) -> None:
    _, tok = reference(plain_dir)
    rm = HFRewardModel(plain_dir)
    x = RMInput("Compute 3 + 4.", " x = 7")
    ids = list(rm.prepare(x).payload)
    assert ids == tok(x.prompt + x.response)["input_ids"]
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    y = RMInput(tok.bos_token + "Compute 3 + 4.", " x = 7")  # prompt already has BOS
    assert list(rm.prepare(y).payload) == ids


# --- (f) DynamicBatcher in front of the model ----------------------------------------


async def test_batcher_concurrent_equals_sequential(qwen_dir: str) -> None:
    rm = HFRewardModel(qwen_dir)
    batcher = DynamicBatcher(rm, Metrics(), max_batch_size=32, max_batch_tokens=16384)
    batcher.start()
    try:
        items = pairs(64, seed=4)
        sequential = [(await batcher.score([x]))[0] for x in items]
        assert batcher.batches == len(items)
        before = batcher.batches
        concurrent = await asyncio.gather(*(batcher.score([x]) for x in items))
        used = batcher.batches - before
    finally:
        await batcher.close()
    assert 1 <= used < len(items)  # batches of more than one were formed
    for s, c in zip(sequential, concurrent, strict=True):
        assert c[0] == pytest.approx(s, abs=TOL)


# --- token-reward head, fp32 head, settings ------------------------------------------


class TokenRewardWrapper(torch.nn.Module):
    """A model without `.score` that returns per-token rewards, [B, T, 1] or [B, T]."""

    def __init__(self, inner: Any, squeeze: bool) -> None:
        super().__init__()
        self.inner = inner
        self.squeeze = squeeze
        self.config = inner.config

    def forward(self, input_ids: Any, attention_mask: Any) -> SimpleNamespace:
        h = self.inner.model(input_ids=input_ids, attention_mask=attention_mask)
        logits = self.inner.score(h.last_hidden_state)
        return SimpleNamespace(logits=logits[..., 0] if self.squeeze else logits)


@pytest.mark.parametrize("squeeze", [False, True])
def test_token_reward_head_read_at_last_real_token(plain_dir: str, squeeze: bool) -> None:
    model, tok = reference(plain_dir)
    rm = HFRewardModel(plain_dir)
    token_rm = HFRewardModel("", model=TokenRewardWrapper(model, squeeze), tokenizer=tok)
    assert token_rm.head_mode == "model_logits"
    items = [*pairs(6, seed=5), RMInput("Find x", " 7" + tok.pad_token)]
    prepared = [rm.prepare(x) for x in items]
    expected = [ref_score(model, list(p.payload)) for p in prepared]
    for got in (rm.forward(prepared), token_rm.forward(prepared)):
        for g, e in zip(got, expected, strict=True):
            assert g == pytest.approx(e, abs=TOL)


def test_bf16_body_fp32_head(qwen_dir: str) -> None:
    model, _ = reference(qwen_dir)
    rm = HFRewardModel(qwen_dir, dtype="bfloat16")
    assert rm.head_mode == "fp32_head"
    assert rm.model.model.embed_tokens.weight.dtype == torch.bfloat16
    assert rm._head.weight.dtype == torch.float32
    assert torch.equal(rm._head.weight, model.score.weight)  # full precision from checkpoint
    items = pairs(16, seed=6)
    prepared = [rm.prepare(x) for x in items]
    for p in prepared:  # fp32 head on the bf16 body's hidden state at the last token
        ids = torch.tensor([p.payload])
        with torch.inference_mode():
            out = rm.model.model(input_ids=ids, attention_mask=torch.ones_like(ids))
        h = out.last_hidden_state[0, -1]
        assert h.dtype == torch.bfloat16
        expected = float(h.float() @ model.score.weight[0].detach())
        assert rm.forward([p])[0] == pytest.approx(expected, abs=TOL)
    got = rm.forward(prepared)
    ref = HFRewardModel(qwen_dir).forward(prepared)
    assert torch.corrcoef(torch.tensor([got, ref]))[0, 1] > 0.99  # bf16 noise only


def test_missing_model_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rm_model"):
        HFRewardModel("")
    with pytest.raises(ValueError, match="rm_model"):
        HFRewardModel(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="rm_model"):
        build_backend(Settings(rm_backend="hf"))


def test_from_settings(qwen_dir: str) -> None:
    s = Settings(rm_backend="hf", rm_model=qwen_dir, rm_max_length=32, rm_truncation_side="right")
    rm = build_backend(s)
    assert isinstance(rm, HFRewardModel)
    assert rm.name == "hf" and rm.max_length == 32 and rm.truncation_side == "right"
    assert rm.dtype == torch.float32 and str(rm.device) == "cpu"


ACEMATH_SYSTEM = "Please reason step by step, and check your final answer within \\boxed{}."


def test_system_prompt_goes_first_in_the_template_and_changes_the_score(qwen_dir: str) -> None:
    model, tok = reference(qwen_dir)
    s = Settings(rm_backend="hf", rm_model=qwen_dir, rm_system_prompt=ACEMATH_SYSTEM)
    rm = build_backend(s)
    assert isinstance(rm, HFRewardModel)
    x = RMInput("Compute 3 + 4", "x = 7. \\boxed{7}")
    messages = [
        {"role": "system", "content": ACEMATH_SYSTEM},
        {"role": "user", "content": x.prompt},
        {"role": "assistant", "content": x.response},
    ]
    want = list(
        tok.apply_chat_template(
            messages, tokenize=True, add_generation_prompt=False, return_dict=False
        )
    )
    ids = list(rm.prepare(x).payload)
    assert ids == want and ids.count(tok.bos_token_id) == 1
    plain_ids = ref_ids(tok, x.prompt, x.response)
    assert len(ids) > len(plain_ids) and ids[0] == plain_ids[0]  # BOS, then the system turn
    assert ids[-len(plain_ids) + 1 :] == plain_ids[1:]  # then the same user/assistant turns
    (score,) = rm.forward([rm.prepare(x)])
    assert score == pytest.approx(ref_score(model, want), abs=TOL)
    plain = HFRewardModel(qwen_dir)
    assert abs(plain.forward([plain.prepare(x)])[0] - score) > 1e-6  # the turn is scored


def test_system_prompt_without_a_chat_template_is_refused(plain_dir: str) -> None:
    from hero_service.rm.tokenize import ChatTokenizer

    with pytest.raises(ValueError, match=r"rm_system_prompt.*no chat template"):
        HFRewardModel(plain_dir, system_prompt=ACEMATH_SYSTEM)
    with pytest.raises(ValueError, match=r"rm_system_prompt.*no chat template"):
        ChatTokenizer(plain_dir, system_prompt=ACEMATH_SYSTEM)


def test_remote_tokenizer_renders_the_same_system_turn(qwen_dir: str) -> None:
    from hero_service.rm.tokenize import ChatTokenizer

    hf = HFRewardModel(qwen_dir, system_prompt=ACEMATH_SYSTEM)
    remote = ChatTokenizer(qwen_dir, system_prompt=ACEMATH_SYSTEM)
    for x in pairs(5):
        assert remote.prepare(x).payload == hf.prepare(x).payload
