"""Trainer adapters against a real server.

TRL's GRPOTrainer runs for real here. verl's and OpenRLHF's own code runs in its own venv
(tests/test_trainers_real.py, scripts/verl_tests.sh); the tests below drive the adapters
through stand-ins of the same interfaces (verl 0.9.1 / 0.7.0 base classes, DataProto
layout, OpenRLHF 0.11.2's loading), for the cases that need injected faults.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import random
import sys
import threading
import types
import uuid
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import httpx
import numpy as np
import pytest
import torch

import hero_client.adapters.openrlhf as orl_adapter
import hero_client.adapters.trl as trl_adapter
import hero_client.adapters.verl as verl_adapter
from hero_client import (
    ConflictError,
    GroupLayoutError,
    HeroClient,
    HeroConnectionError,
    NotFoundError,
)
from hero_client.adapters.trl import make_hero_reward
from hero_client.schema import GET_REWARD_LOG_KEYS
from tests.conftest import Server

pytestmark = pytest.mark.slow  # trainers against a server process


def job() -> str:
    return "a-" + uuid.uuid4().hex[:12]


def whole_group(url: str, prompt: str, reference: str, responses: list[str]) -> dict[str, Any]:
    body = {"job_id": job(), "prompt": prompt, "reference": reference, "responses": responses}
    r = httpx.post(url + "/score_group", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return dict(r.json())


def load_as(name: str, path: str) -> ModuleType:
    """How verl (load_extern_object) and OpenRLHF (agent/reward files) load our file."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class CharTokenizer:
    """A stand-in tokenizer: one id per character."""

    def __call__(self, text: str, **kw: Any) -> dict[str, Any]:
        return {"input_ids": torch.tensor([[ord(c) for c in text]])}

    def decode(self, ids: Any, skip_special_tokens: bool = False) -> str:
        vals = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        return "".join(chr(int(i)) for i in vals if int(i) > 0)


# -- TRL (the real GRPOTrainer) --------------------------------------------------------------
def _tiny_causal_lm(path: Path) -> str:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from tests.tiny_models import _tokenizer

    tok: Any = _tokenizer(0, False, 600)
    cfg = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=256,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        Qwen2ForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def test_trl_grpo_trainer_trains_on_hero_rewards(server: Server, tmp_path: Path) -> None:
    pytest.importorskip("trl")
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    model = _tiny_causal_lm(tmp_path / "lm")
    ds = Dataset.from_list(
        [{"prompt": f"Compute {a} + {a}. Step:", "answer": str(2 * a)} for a in range(16)]
    )
    j = job()
    reward = make_hero_reward(server.url, job_id=j, num_generations=4, verifier="string")
    seen: list[int] = []
    orig = reward._score_groups

    def spy(*a: Any) -> Any:
        seen.append(len(a[0]))
        return orig(*a)

    reward._score_groups = spy  # type: ignore[method-assign]
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=8,
        max_steps=2,
        learning_rate=1e-4,
        scale_rewards="none",  # keeps HERO's per-group weight
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        disable_tqdm=True,
        seed=0,
    )
    trainer = GRPOTrainer(model=model, reward_funcs=[reward], args=args, train_dataset=ds)
    trainer.train()
    assert seen == [8, 8]  # two steps, each two whole groups in one /score_batch call
    logged = [h for h in trainer.state.log_history if "rewards/hero/mean" in h]
    assert len(logged) == 2
    with HeroClient(server.url) as c:
        assert c.get_job(j).count == 4  # 2 steps x 2 groups, each folded once


def test_trl_reward_checks_group_layout(server: Server) -> None:
    reward = make_hero_reward(server.url, job_id=job(), num_generations=2, mode="group")
    with pytest.raises(GroupLayoutError, match="multiple of num_generations"):
        reward(prompts=["p", "p", "q"], completions=["1", "2", "3"], answer=["1", "1", "1"])
    with pytest.raises(GroupLayoutError, match="one prompt"):
        reward(prompts=["p", "q"], completions=["1", "2"], answer=["1", "1"])
    chat = reward(
        prompts=[[{"role": "user", "content": "1+0?"}]] * 2,
        completions=[[{"role": "assistant", "content": "\\boxed{1}"}], [{"content": "2"}]],
        solution=["1", "1"],
    )
    assert chat[0] is not None and chat[1] is not None and chat[0] > chat[1]


def test_trl_barrier_mode_joins_groups_split_across_processes(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes with 6 completions each and num_generations=4: the middle group
    straddles them; the server's barrier assembles it."""
    j = job()
    prompts = ["A"] * 4 + ["B"] * 4 + ["C"] * 4
    refs = ["1"] * 4 + ["2"] * 4 + ["3"] * 4
    comps = [f"\\boxed{{{x}}}" for x in (1, 2, 1, 1, 2, 2, 9, 2, 3, 3, 3, 0)]
    rank = threading.local()
    monkeypatch.setattr(trl_adapter, "_distributed", lambda: (rank.value, lambda x: "n0"))
    out: dict[int, list[float | None]] = {}

    def process(r: int) -> None:
        rank.value = r
        f = make_hero_reward(server.url, job_id=j, num_generations=4, verifier="string")
        sl = slice(6 * r, 6 * r + 6)
        out[r] = f(prompts=prompts[sl], completions=comps[sl], answer=refs[sl])

    threads = [threading.Thread(target=process, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    got = [float(x or 0.0) for x in out[0] + out[1]]
    for g, (p, ref) in enumerate([("A", "1"), ("B", "2"), ("C", "3")]):
        # each group's rewards are its whole-group normalized scores times one weight
        # (the weight depends on the job's running sigma, so on the order groups finish)
        norm = whole_group(server.url, p, ref, comps[4 * g : 4 * g + 4])["normalized"]
        mine = got[4 * g : 4 * g + 4]
        w = mine[0] / norm[0]
        assert mine == pytest.approx([w * x for x in norm])
    with HeroClient(server.url) as c:
        assert c.get_job(j).count == 3


# -- verl: stand-ins for verl 0.9.1's classes -----------------------------------------------
class DataProtoItem:
    def __init__(self, batch: dict[str, Any], nt: dict[str, Any], meta: dict[str, Any]):
        self.batch, self.non_tensor_batch, self.meta_info = batch, nt, meta


class DataProto:
    """verl.DataProto's surface used by reward managers: tensors in `batch`, numpy object
    arrays in `non_tensor_batch`, slicing keeps meta_info, an int index gives an item."""

    def __init__(self, batch: dict[str, Any], nt: dict[str, Any], meta: dict[str, Any] | None):
        self.batch, self.non_tensor_batch, self.meta_info = batch, nt, meta or {}

    def __len__(self) -> int:
        return len(next(iter(self.batch.values())))

    def __getitem__(self, i: int | slice) -> Any:
        b = {k: v[i] for k, v in self.batch.items()}
        nt = {k: v[i] for k, v in self.non_tensor_batch.items()}
        if isinstance(i, slice):
            return DataProto(b, nt, self.meta_info)
        return DataProtoItem(b, nt, self.meta_info)


def _verl_batch(rows: list[dict[str, Any]], meta: dict[str, Any] | None = None) -> DataProto:
    """Left-padded prompts, right-padded responses, as verl lays them out."""
    p_len = max(len(r["prompt_text"]) for r in rows)
    r_len = max(len(r["response"]) for r in rows) + 2
    prompts = torch.zeros(len(rows), p_len, dtype=torch.long)
    responses = torch.zeros(len(rows), r_len, dtype=torch.long)
    mask = torch.zeros(len(rows), p_len + r_len, dtype=torch.long)
    for i, r in enumerate(rows):
        p = [ord(c) for c in r["prompt_text"]]
        a = [ord(c) for c in r["response"]]
        prompts[i, p_len - len(p) :] = torch.tensor(p)
        responses[i, : len(a)] = torch.tensor(a)
        mask[i, p_len - len(p) : p_len + len(a)] = 1
    nt: dict[str, Any] = {
        "uid": np.array([r["uid"] for r in rows], dtype=object),
        "data_source": np.array(["math"] * len(rows), dtype=object),
        "reward_model": np.array(
            [{"ground_truth": r["truth"], "style": "rule"} for r in rows], dtype=object
        ),
        "extra_info": np.array([r.get("extra", {}) for r in rows], dtype=object),
        "raw_prompt": np.array(
            [[{"role": "user", "content": r["prompt_text"]}] for r in rows] + [None], dtype=object
        )[:-1],
    }
    if all("session_id" in r for r in rows):
        nt["session_id"] = np.array([r["session_id"] for r in rows], dtype=object)
    return DataProto({"prompts": prompts, "responses": responses, "attention_mask": mask}, nt, meta)


def _install_verl(monkeypatch: pytest.MonkeyPatch, version: str = "0.9.1") -> None:
    class RewardManagerBase091:  # verl/experimental/reward_loop/reward_manager/base.py
        def __init__(self, config: Any, tokenizer: Any, compute_score: Any) -> None:
            self.config, self.tokenizer, self.compute_score = config, tokenizer, compute_score
            self.loop = asyncio.get_event_loop()

    class RewardManagerBase070:  # verl 0.7.0: no compute_score
        def __init__(self, config: Any, tokenizer: Any) -> None:
            self.config, self.tokenizer = config, tokenizer
            self.loop = asyncio.get_event_loop()

    class RewardManagerBase(RewardManagerBase070 if version == "0.7.0" else RewardManagerBase091):  # type: ignore[misc]
        async def run_single(self, data: Any) -> dict[str, Any]:
            raise NotImplementedError

        @classmethod
        def assemble_rm_scores(cls, data: Any, scores: list[float]) -> torch.Tensor:
            prompt_length = data.batch["prompts"].size(1)
            valid = data.batch["attention_mask"][:, prompt_length:].sum(dim=1)
            rm = torch.zeros_like(data.batch["responses"], dtype=torch.float32)
            rm[torch.arange(rm.size(0)), valid - 1] = rm.new_tensor(scores)
            return rm

    class AbstractRewardManager:  # verl/workers/reward_manager/abstract.py
        def _extract_reward_from_rm_scores(self, data: Any, return_dict: bool = False) -> Any:
            return None

    registry: dict[str, type] = {}

    def register(name: str) -> Any:
        def deco(cls: type) -> type:
            registry[name] = cls
            return cls

        return deco

    mods = {
        "verl": types.ModuleType("verl"),
        "verl.experimental": types.ModuleType("verl.experimental"),
        "verl.experimental.reward_loop": types.ModuleType("verl.experimental.reward_loop"),
        "verl.experimental.reward_loop.reward_manager": types.ModuleType("x"),
        "verl.experimental.reward_loop.reward_manager.base": types.ModuleType("x"),
        "verl.workers": types.ModuleType("verl.workers"),
        "verl.workers.reward_manager": types.ModuleType("x"),
        "verl.workers.reward_manager.abstract": types.ModuleType("x"),
    }
    mods["verl.experimental.reward_loop.reward_manager.base"].RewardManagerBase = RewardManagerBase  # type: ignore[attr-defined]
    mods["verl.workers.reward_manager.abstract"].AbstractRewardManager = AbstractRewardManager  # type: ignore[attr-defined]
    mods["verl.workers.reward_manager"].register = register  # type: ignore[attr-defined]
    mods["verl.workers.reward_manager"].registry = registry  # type: ignore[attr-defined]
    for k, v in mods.items():
        monkeypatch.setitem(sys.modules, k, v)
    monkeypatch.setattr(verl_adapter, "_BUILT", {})


VERL_CONFIG = {
    "trainer": {"experiment_name": "unused"},
    "actor_rollout_ref": {"rollout": {"n": 3}},
}


async def test_verl_reward_loop_manager_assembles_groups_by_uid(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_verl(monkeypatch)
    j = job()
    monkeypatch.setenv("HERO_URL", server.url)
    monkeypatch.setenv("HERO_JOB_ID", j)
    monkeypatch.setenv("HERO_VERIFIER", "string")
    # reward.reward_manager.source=importlib, module.path=<file>, name=HeroRewardManager
    cls = load_as("custom_module", verl_adapter.__file__).HeroRewardManager
    config = {**VERL_CONFIG, "reward": {"hero": {"deadline_s": 120}}}
    workers = [cls(config=config, tokenizer=CharTokenizer(), compute_score=None) for _ in "ab"]
    groups = {"u1": ["\\boxed{4}", "\\boxed{5}", "so \\boxed{4}"], "u2": ["2", "\\boxed{6}", "x"]}
    truth = {"u1": "4", "u2": "6"}
    rows = [
        {"uid": u, "prompt_text": f"q-{u}", "truth": truth[u], "response": t, "session_id": i}
        for u, ts in groups.items()
        for i, t in enumerate(ts)
    ]
    random.Random(3).shuffle(rows)  # verl's per-sample calls land on random workers
    data = _verl_batch(rows)
    outs = await asyncio.gather(
        *(random.Random(i).choice(workers).run_single(data[i : i + 1]) for i in range(len(rows)))
    )
    keys = {tuple(o["reward_extra_info"]) for o in outs}
    assert keys == {verl_adapter.EXTRA_KEYS}  # verl reads the key set from the first sample
    assert all(isinstance(v, float) for o in outs for v in o["reward_extra_info"].values())
    for u, ts in groups.items():
        want = whole_group(server.url, f"q-{u}", truth[u], ts)
        for row, o in zip(rows, outs, strict=True):
            if row["uid"] == u:
                x = o["reward_extra_info"]
                assert x["hero_normalized"] == pytest.approx(want["normalized"][row["session_id"]])
                assert o["reward_score"] == pytest.approx(x["hero_weight"] * x["hero_normalized"])
                assert x["acc"] == want["verifier"][row["session_id"]]
                assert o["reward_extra_info"]["hero_group_count"] == 3.0
    rm = cls.assemble_rm_scores(data, [o["reward_score"] for o in outs])
    assert rm.shape == data.batch["responses"].shape
    with HeroClient(server.url) as c:
        assert c.get_job(j).count == 2
    # validation as verl's reward loop sends it: AgentLoopWorker._compute_score builds the
    # sample WITHOUT meta_info, and verl's padding row repeats the same uid. The sample's own
    # marker (extra_info.split, or extra_info.hero_validation) routes it to the verifier.
    for extra in ({"split": "test"}, {"hero_validation": True}):
        row = {
            "uid": "v",
            "prompt_text": "q",
            "truth": "4",
            "response": "\\boxed{4}",
            "extra": extra,
        }
        outs = await asyncio.gather(*(workers[0].run_single(_verl_batch([row])) for _ in "ab"))
        for v in outs:
            assert v["reward_score"] == 1.0 and v["reward_extra_info"]["hero_validation"] == 1.0
            assert tuple(v["reward_extra_info"]) == verl_adapter.EXTRA_KEYS
    with HeroClient(server.url) as c:
        assert c.get_job(j).count == 2  # validation never folds into the job


async def test_verl_reward_loop_falls_back_when_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = verl_adapter.config_from_verl(
        VERL_CONFIG, url="http://127.0.0.1:9", max_attempts=1, fallback_reward=-1.0
    )
    assert cfg.job_id == "unused" and cfg.group_size == 3
    out = await verl_adapter.HeroRewardLoop(cfg).score(uid="u", response="r", ground_truth="1")
    assert out["reward_score"] == -1.0 and out["reward_extra_info"]["hero_error"] == 1.0
    assert tuple(out["reward_extra_info"]) == verl_adapter.EXTRA_KEYS


def test_verl_legacy_batch_manager_groups_by_uid(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_verl(monkeypatch)
    j = job()
    monkeypatch.setenv("HERO_URL", server.url)
    cls = verl_adapter.register_legacy("hero")
    assert sys.modules["verl.workers.reward_manager"].registry["hero"] is cls  # type: ignore[attr-defined]
    mgr = cls(tokenizer=CharTokenizer(), num_examine=0, hero_job_id=j, hero_verifier="string")
    groups = {"a": ["\\boxed{1}", "\\boxed{2}"], "b": ["\\boxed{3}", "\\boxed{3}"]}
    rows = [
        {"uid": "b", "prompt_text": "pb", "truth": "3", "response": groups["b"][0]},
        {"uid": "a", "prompt_text": "pa", "truth": "1", "response": groups["a"][0]},
        {"uid": "b", "prompt_text": "pb", "truth": "3", "response": groups["b"][1]},
        {"uid": "a", "prompt_text": "pa", "truth": "1", "response": groups["a"][1]},
    ]  # _balance_batch reorders: groups are found by uid, never by position
    data = _verl_batch(rows)
    out = mgr(data, return_dict=True)
    tensor, extra = out["reward_tensor"], out["reward_extra_info"]
    valid = data.batch["attention_mask"][:, data.batch["prompts"].shape[-1] :].sum(-1)
    got = [float(tensor[i, int(valid[i]) - 1]) for i in range(4)]
    assert float(tensor.sum()) == pytest.approx(sum(got))  # one score per row, at the end
    ref = httpx.post(  # the same two groups in one batch call on a fresh job
        server.url + "/score_batch",
        json={
            "job_id": job(),
            "groups": [
                {"prompt": "pb", "reference": "3", "responses": groups["b"]},
                {"prompt": "pa", "reference": "1", "responses": groups["a"]},
            ],
        },
        timeout=60,
    ).json()["groups"]
    wb, wa = ref[0]["rewards"], ref[1]["rewards"]
    assert got == pytest.approx([wb[0], wa[0], wb[1], wa[1]], rel=1e-5)
    assert set(extra) == set(verl_adapter.EXTRA_KEYS) and all(len(v) == 4 for v in extra.values())
    with HeroClient(server.url) as c:
        assert c.get_job(j).count == 2


def test_verl_legacy_batch_manager_honours_meta_validate(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """verl 0.7.0's _validate sets meta_info["validate"] on the batch it hands the manager."""
    _install_verl(monkeypatch, "0.7.0")
    j = job()
    monkeypatch.setenv("HERO_URL", server.url)
    cls = verl_adapter.register_legacy("hero")
    mgr = cls(tokenizer=CharTokenizer(), num_examine=0, hero_job_id=j, hero_verifier="string")
    rows = [
        {"uid": "a", "prompt_text": "pa", "truth": "1", "response": "\\boxed{1}"},
        {"uid": "a", "prompt_text": "pa", "truth": "1", "response": "\\boxed{2}"},
        {"uid": "b", "prompt_text": "pb", "truth": "3", "response": "\\boxed{3}"},
    ]
    out = mgr(_verl_batch(rows, meta={"validate": True}), return_dict=True)
    tensor, extra = out["reward_tensor"], out["reward_extra_info"]
    assert tensor.sum(-1).tolist() == [1.0, 0.0, 1.0]  # the verifier label
    assert extra["hero_validation"] == [1.0, 1.0, 1.0] and extra["acc"] == [1.0, 0.0, 1.0]
    with HeroClient(server.url) as c, pytest.raises(NotFoundError):
        c.get_job(j)  # nothing folded: the job was never even created
    # a training batch with one marked validation row: only the other rows form groups
    rows[2]["extra"] = {"split": "val"}
    out = mgr(_verl_batch(rows), return_dict=True)
    assert out["reward_extra_info"]["hero_validation"] == [0.0, 0.0, 1.0]
    with HeroClient(server.url) as c:
        assert c.get_job(j).count == 1


async def test_verl_reward_loop_manager_constructs_on_verl_070(
    server: Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """verl 0.7.0's RewardManagerBase.__init__ takes (config, tokenizer)."""
    _install_verl(monkeypatch, "0.7.0")
    monkeypatch.setenv("HERO_URL", server.url)
    cls = load_as("custom_module", verl_adapter.__file__).HeroRewardManager
    # verl 0.7.0 RewardLoopWorker: reward_manager_cls(config=, tokenizer=, compute_score=,
    # reward_router_address=, reward_model_tokenizer=)
    m = cls(config=VERL_CONFIG, tokenizer=CharTokenizer(), compute_score=None)
    assert m.hero.cfg.group_size == 3 and m.compute_score is None
    assert "NEVER" not in caplog.text
    # an RM enabled without a custom reward function: verl bypasses the manager; say so loudly
    rm_on = {**VERL_CONFIG, "reward": {"reward_model": {"enable": True}}}
    with caplog.at_level("ERROR", logger="hero_client.adapters"):
        cls(config=rm_on, tokenizer=CharTokenizer(), compute_score=None)
    assert "NEVER calls HeroRewardManager" in caplog.text


async def test_verl_reward_loop_honours_per_prompt_rollout_n(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The v1 trainer's `__rollout_n__` (per prompt) wins over rollout.n."""
    _install_verl(monkeypatch)
    j = job()
    monkeypatch.setenv("HERO_URL", server.url)
    cls = load_as("custom_module", verl_adapter.__file__).HeroRewardManager
    config = {**VERL_CONFIG, "reward": {"hero": {"job_id": j, "deadline_s": 120}}}
    m = cls(config=config, tokenizer=CharTokenizer(), compute_score=None)
    sizes = {"u2": 2, "u5": 5}
    rows = [
        {
            "uid": u,
            "prompt_text": f"q-{u}",
            "truth": "1",
            "response": f"\\boxed{{{i}}}",
            "session_id": i,
            "extra": {"__rollout_n__": n} if u == "u5" else {},
        }
        for u, n in sizes.items()
        for i in range(n)
    ]
    data = _verl_batch(rows)
    data.non_tensor_batch["__rollout_n__"] = np.array(
        [None if r["uid"] == "u5" else 2 for r in rows], dtype=object
    )
    outs = await asyncio.gather(*(m.run_single(data[i : i + 1]) for i in range(len(rows))))
    counts = [o["reward_extra_info"]["hero_group_count"] for o in outs]
    assert counts == [2.0] * 2 + [5.0] * 5  # rollout.n is 3: neither group would complete
    assert not any(o["reward_extra_info"]["hero_partial"] for o in outs)


async def test_verl_reward_loop_pool_holds_every_waiting_sample(server: Server) -> None:
    """Defect 1: 240 samples on one reward worker, the first half of every group waiting
    in the barrier before any second half is sent. A pool capped at httpx's 100 stalls the
    samples that would complete the groups until the deadline (partial groups)."""
    j = job()
    cfg = verl_adapter.config_from_verl(VERL_CONFIG, url=server.url, job_id=j, group_size=4)
    cfg = dataclasses.replace(cfg, deadline_s=60.0, verifier="string")
    loop = verl_adapter.HeroRewardLoop(cfg)

    def one(g: int, i: int) -> Any:
        return loop.score(
            uid=f"g{g}", response=f"\\boxed{{{i}}}", ground_truth="1", prompt=f"p{g}", session_id=i
        )

    first = [asyncio.create_task(one(g, i)) for g in range(60) for i in (0, 1)]
    with HeroClient(server.url) as c:
        for _ in range(600):  # bounded: until the server holds the first halves
            if _pending(c) >= 100:
                break
            await asyncio.sleep(0.05)
    second = [asyncio.create_task(one(g, i)) for g in range(60) for i in (2, 3)]
    outs = await asyncio.gather(*first, *second)
    assert [o["reward_extra_info"]["hero_partial"] for o in outs] == [0.0] * 240
    assert {o["reward_extra_info"]["hero_group_count"] for o in outs} == {4.0}


def _pending(c: HeroClient) -> float:
    for line in c.metrics().splitlines():
        if line.startswith("hero_barrier_pending_samples"):
            return float(line.split()[-1])
    return 0.0


async def test_no_silent_fake_rewards(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    """A partial group, a late sample (409) and exhausted retries are flagged per sample,
    counted, and logged; or they raise."""
    from hero_client.adapters import PartialGroupError, reset_stats, stats

    reset_stats()
    j = job()
    base = dataclasses.replace(
        verl_adapter.config_from_verl(VERL_CONFIG, url=server.url, job_id=j),
        deadline_s=0.5,
        verifier="string",
    )
    keep = verl_adapter.HeroRewardLoop(base)
    kw = {"ground_truth": "1", "prompt": "p"}
    with caplog.at_level("WARNING", logger="hero_client.adapters"):
        # partial: 1 of 3 samples by the deadline; kept, flagged, counted, logged
        p = await keep.score(uid="late", response="\\boxed{1}", session_id=0, **kw)
        assert p["reward_extra_info"]["hero_partial"] == 1.0 and p["reward_score"] != 0.0
        assert "scored partial (1 of 3" in caplog.text
        # late: the group is closed, a 409; the fallback reward, flagged hero_error
        late = await keep.score(uid="late", response="\\boxed{2}", session_id=1, **kw)
        assert late["reward_score"] == 0.0 and late["reward_extra_info"]["hero_error"] == 1.0
        assert "not scored" in caplog.text
    assert stats()["partial"] == 1 and stats()["fallback"] == 1
    # on_partial=fallback: the partial sample gets the fallback, as an error
    fb = verl_adapter.HeroRewardLoop(
        dataclasses.replace(base, on_partial="fallback", fallback_reward=-1.0)
    )
    out = await fb.score(uid="p2", response="\\boxed{1}", session_id=0, **kw)
    assert out["reward_score"] == -1.0 and out["reward_extra_info"]["hero_error"] == 1.0
    assert out["reward_extra_info"]["hero_partial"] == 1.0
    # raise: a partial group, then a 409 and an unreachable server
    strict = verl_adapter.HeroRewardLoop(
        dataclasses.replace(base, on_partial="raise", fallback_reward=None)
    )
    with pytest.raises(PartialGroupError):
        await strict.score(uid="p3", response="\\boxed{1}", session_id=0, **kw)
    with pytest.raises(ConflictError):
        await strict.score(uid="p3", response="\\boxed{1}", session_id=1, **kw)
    gone = verl_adapter.HeroRewardLoop(
        dataclasses.replace(base, url="http://127.0.0.1:9", max_attempts=1, fallback_reward=None)
    )
    with pytest.raises(HeroConnectionError):
        await gone.score(uid="x", response="1", **kw)
    assert stats()["raised"] == 3


# -- OpenRLHF: stand-ins for openrlhf 0.11.2 --------------------------------------------------
def _install_openrlhf(monkeypatch: pytest.MonkeyPatch) -> type:
    class AgentExecutorBase:  # openrlhf/utils/agent.py
        pass

    class SingleTurnAgentExecutor(AgentExecutorBase):
        """The generation half of OpenRLHF 0.11.2's SingleTurnAgentExecutor.execute."""

        def __init__(self, remote_rm_url: Any = None) -> None:
            self.reward_endpoints = [remote_rm_url] if remote_rm_url else []

        async def execute(
            self,
            prompt: str,
            label: str,
            sampling_params: Any,
            max_length: int,
            hf_tokenizer: Any,
            llm_engine: Any,
            images: Any = None,
        ) -> dict[str, Any]:
            ids = hf_tokenizer(text=prompt, add_special_tokens=False)["input_ids"][0].tolist()
            out = (await llm_engine.generate(ids, sampling_params)).outputs[0]
            obs = ids + list(out.token_ids)
            return {
                "prompt": prompt,
                "label": label,
                "images": images,
                "mm_train_inputs": None,
                "observation_tokens": obs,
                "action_ranges": [(len(ids), len(obs))],
                "rollout_log_probs": None,
                "truncated": out.finish_reason == "length",
                "reward": None,
                "scores": None,
                "extra_logs": {},
            }

    m = types.ModuleType("openrlhf.utils.agent")
    m.AgentExecutorBase = AgentExecutorBase  # type: ignore[attr-defined]
    m.SingleTurnAgentExecutor = SingleTurnAgentExecutor  # type: ignore[attr-defined]
    for k in ("openrlhf", "openrlhf.utils"):
        monkeypatch.setitem(sys.modules, k, types.ModuleType(k))
    monkeypatch.setitem(sys.modules, "openrlhf.utils.agent", m)
    return AgentExecutorBase


class FakeEngine:
    """Generates a scripted response per call, finishing in a random order."""

    def __init__(self, script: dict[str, list[str]]) -> None:
        self.script = {k: list(v) for k, v in script.items()}
        self.rng = random.Random(5)

    async def generate(self, ids: list[int], params: Any, multi_modal_data: Any = None) -> Any:
        prompt = "".join(chr(i) for i in ids)
        text = self.script[prompt].pop(0)
        await asyncio.sleep(self.rng.random() * 0.2)
        if text == "FAIL":
            raise RuntimeError("generation failed")
        return SimpleNamespace(
            outputs=[
                SimpleNamespace(
                    token_ids=[ord(c) for c in text], text=text, finish_reason="stop", logprobs=None
                )
            ]
        )


async def test_openrlhf_agent_executor_scores_each_group_once(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = _install_openrlhf(monkeypatch)
    j = job()
    monkeypatch.setenv("HERO_URL", server.url)
    monkeypatch.setenv("HERO_JOB_ID", j)
    monkeypatch.setenv("HERO_VERIFIER", "string")
    monkeypatch.setattr(orl_adapter, "_BUILT", {})
    # --train.agent_func_path <file>: OpenRLHF's _load_agent_executor
    mod = load_as("agent_module", orl_adapter.__file__)
    assert issubclass(mod.AgentExecutor, base)
    executor = mod.AgentExecutor()
    script = {
        "P1:": ["\\boxed{2}", "\\boxed{3}", "\\boxed{2}", "\\boxed{2}"],
        "P2:": ["\\boxed{7}", "FAIL", "\\boxed{8}", "\\boxed{7}"],
    }
    engine = FakeEngine(script)
    tok = CharTokenizer()

    async def generate_responses(prompt: str, label: str, n: int) -> list[Any]:
        # RolloutRayActor.generate_responses: n concurrent execute() for one prompt
        tasks = [
            executor.execute(prompt, label, SimpleNamespace(max_tokens=16), 64, tok, engine)
            for _ in range(n)
        ]
        return list(await asyncio.gather(*tasks, return_exceptions=True))

    # one actor serves several prompts at once
    r1, r2 = await asyncio.gather(
        generate_responses("P1:", "2", 4), generate_responses("P2:", "7", 4)
    )
    assert isinstance(r2[1], RuntimeError)  # the failed rollout left its group
    w1 = whole_group(server.url, "P1:", "2", script["P1:"])
    w2 = whole_group(server.url, "P2:", "7", ["\\boxed{7}", "\\boxed{8}", "\\boxed{7}"])
    for outs, want in ((r1, w1), ((r2[0], r2[2], r2[3]), w2)):
        # each group is the whole group: same normalized scores, one weight (which depends
        # on the job's running sigma, so on which group finished first)
        norm = [o["extra_logs"]["hero_normalized"] for o in outs]
        assert norm == pytest.approx(want["normalized"])
        assert [o["reward"] for o in outs] == pytest.approx(
            [o["extra_logs"]["hero_weight"] * n for o, n in zip(outs, norm, strict=True)]
        )
    assert [o["scores"] for o in r1] == [1.0, 0.0, 1.0, 1.0]  # verifier: dynamic filtering
    for o in (*r1, r2[0]):
        assert tuple(o["extra_logs"]) == GET_REWARD_LOG_KEYS
        assert all(isinstance(v, float) for v in o["extra_logs"].values())
        torch.tensor([o["reward"]])  # what _process_response_into_experience does
    assert r2[0]["extra_logs"]["hero_group_count"] == 3.0
    with HeroClient(server.url) as c:
        assert c.get_job(j).count == 2


async def test_openrlhf_reward_func_file(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    j = job()
    monkeypatch.setenv("HERO_URL", server.url)
    monkeypatch.setenv("HERO_JOB_ID", j)
    monkeypatch.setenv("HERO_GROUP_SIZE", "3")
    monkeypatch.setenv("HERO_VERIFIER", "string")
    # --reward.remote_url <file>.py: SingleTurnAgentExecutor loads reward_func and calls it
    # with one sample at a time through asyncio.to_thread
    mod = load_as("reward_func", orl_adapter.__file__)
    prompt = "<|user|>1+1?<|assistant|>"
    resps = ["\\boxed{2}", "\\boxed{3}", "\\boxed{2}"]
    outs = await asyncio.gather(
        *(asyncio.to_thread(mod.reward_func, [prompt + t], [prompt], ["2"]) for t in resps)
    )
    want = whole_group(server.url, prompt, "2", resps)["rewards"]
    assert sorted(o["rewards"][0] for o in outs) == pytest.approx(sorted(want))
    assert [o["scores"][0] for o in outs] == [1.0, 0.0, 1.0]
    for o in outs:
        assert all(len(v) == 1 and isinstance(v[0], float) for v in o["extra_logs"].values())
    with HeroClient(server.url) as c:
        assert c.get_job(j).count == 1


async def test_openrlhf_reward_func_surfaces_partial_groups(
    server: Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """/get_reward answers 200 with hero_partial=1 for a group cut by its deadline; the
    reward_func file counts it, logs it, and applies HERO_ON_PARTIAL."""
    from hero_client.adapters import reset_stats, stats

    reset_stats()
    for k, v in {
        "HERO_URL": server.url,
        "HERO_JOB_ID": job(),
        "HERO_GROUP_SIZE": "3",
        "HERO_DEADLINE_S": "0.5",
        "HERO_VERIFIER": "string",
    }.items():
        monkeypatch.setenv(k, v)
    mod = load_as("reward_func", orl_adapter.__file__)
    with caplog.at_level("WARNING", logger="hero_client.adapters"):
        out = await asyncio.to_thread(mod.reward_func, ["q: \\boxed{2}"], ["q: "], ["2"])
    assert out["extra_logs"]["hero_partial"] == [1.0] and out["rewards"][0] != 0.0
    assert "scored partial (1 of 3" in caplog.text and stats()["partial"] == 1
    monkeypatch.setenv("HERO_ON_PARTIAL", "fallback")
    monkeypatch.setenv("HERO_FALLBACK_REWARD", "-1")
    mod = load_as("reward_func", orl_adapter.__file__)
    out = await asyncio.to_thread(mod.reward_func, ["r: \\boxed{2}"], ["r: "], ["2"])
    assert out["rewards"] == [-1.0] and out["extra_logs"]["hero_error"] == [1.0]
    assert stats()["fallback"] == 1
