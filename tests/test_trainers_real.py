"""verl's and OpenRLHF's own code against a real HERO server (the `verl` venv).

Run with `bash scripts/verl_tests.sh` (builds the venv with scripts/verl_env.sh). Outside
that venv every test here skips. Only the LLM server is a stand-in (`ScriptedLLM`): verl's
RewardLoopManager, AgentLoopManager (v0 streaming) and AgentLoopManagerTQ (v1,
TransferQueue) run in local Ray with the configuration of docs/integrations.md, and
OpenRLHF's SingleTurnAgentExecutor posts to /get_reward with its own HTTP client.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import random
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hero_client import HeroClient
from tests.conftest import REPO, Server

pytestmark = [pytest.mark.verl, pytest.mark.slow]

verl = pytest.importorskip("verl", reason="needs the verl venv (scripts/verl_tests.sh)")
ray = pytest.importorskip("ray")
torch = pytest.importorskip("torch")

from verl.workers.rollout.llm_server import LLMServerClient  # noqa: E402
from verl.workers.rollout.replica import TokenOutput  # noqa: E402

N = 4  # rollout.n
PROMPTS = 60  # 60 x 4 = 240 samples on ONE reward worker (issue 12, defect 1)


def job() -> str:
    return "verl-" + uuid.uuid4().hex[:10]


# -- the LLM stand-in ----------------------------------------------------------------------
class ScriptedLLM(LLMServerClient):  # type: ignore[misc]
    """verl's LLM client with the server replaced: answers "Compute a + b." with a boxed
    sum, right or wrong at random. To reproduce defect 1 (samples that complete groups
    stuck behind waiting samples), the first half of every group is answered at once and
    the second half only after every prompt's first half has been answered."""

    def __init__(self, config: Any, model_path: str, half: int) -> None:
        self.config = config
        self.model_path = model_path
        self.half = half  # first-half answers to give before any second-half one
        self._tok: Any = None
        self._seen: dict[str, int] = {}
        self._first = 0
        self._gate: asyncio.Event | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "model_path": self.model_path, "half": self.half}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"], state["model_path"], state["half"])  # type: ignore[misc]

    async def generate(self, request_id: str, *, prompt_ids: list[int], **kw: Any) -> Any:
        if self._tok is None:
            from transformers import AutoTokenizer

            self._tok = AutoTokenizer.from_pretrained(self.model_path)
            self._gate = asyncio.Event()
        assert self._gate is not None
        prompt = self._tok.decode(prompt_ids, skip_special_tokens=True)
        a, b = map(int, re.findall(r"Compute (\d+) \+ (\d+)", prompt)[-1])
        k = self._seen.get(prompt, 0)
        self._seen[prompt] = k + 1
        if k < N // 2:
            self._first += 1
            if self._first >= self.half:
                self._gate.set()
        else:
            await self._gate.wait()
            await asyncio.sleep(0.5)  # lets the first halves reach the barrier
        rng = random.Random(request_id)
        ans = a + b if rng.random() < 0.5 else a + b + rng.randint(1, 9)
        text = f"{a} + {b} = {ans}. So \\boxed{{{ans}}}"
        ids = [*self._tok.encode(text, add_special_tokens=False), self._tok.eos_token_id]
        return TokenOutput(token_ids=ids, log_probs=None, stop_reason="completed")


# -- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> str:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from tests.tiny_models import _tokenizer

    path = tmp_path_factory.mktemp("lm")
    tok: Any = _tokenizer(0, True, 600)
    cfg = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=True,
    )
    Qwen2ForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def local_ray(server: Server) -> Iterator[None]:
    # HERO_URL as documented (env passed to the Ray workers); the workers import the
    # stand-in from tests/, so the repo goes on their path.
    env = {
        "HERO_URL": server.url,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        # e.g. HERO_MAX_CONNECTIONS=100 (httpx's default pool) brings defect 1 back
        **{k: v for k, v in os.environ.items() if k.startswith("HERO_") and k != "HERO_URL"},
    }
    ray.init(
        _node_ip_address="127.0.0.1",
        include_dashboard=False,
        num_cpus=4,
        runtime_env={"env_vars": env},
        log_to_driver=True,
    )
    # pytest imports this file under its bare name, which the Ray workers cannot import
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.shutdown()


@pytest.fixture(autouse=True)
def _no_leftover_actors() -> Iterator[None]:
    """verl names its reward-loop workers (`reward_loop_worker_0`): a test that fails before
    its managers go away must not make the next test's managers collide with them."""
    yield
    if ray.is_initialized():
        for a in ray.util.list_named_actors(all_namespaces=True):
            with contextlib.suppress(ValueError):  # already gone
                ray.kill(ray.get_actor(a["name"], namespace=a["namespace"]))


def verl_config(model: str, job_id: str, *extra: str) -> Any:
    """verl's own ppo_trainer config with the documented HERO settings."""
    from hydra import compose, initialize_config_dir

    conf = str(Path(verl.__file__).parent / "trainer" / "config")
    with initialize_config_dir(config_dir=conf, version_base=None):
        return compose(
            "ppo_trainer",
            overrides=[
                # docs/integrations.md, "verl"
                "reward.reward_manager.source=importlib",
                "reward.reward_manager.name=HeroRewardManager",
                "reward.reward_manager.module.path=pkg://hero_client.adapters.verl",
                "algorithm.norm_adv_by_std_in_grpo=False",
                "+reward.hero.deadline_s=120",
                f"+reward.hero.job_id={job_id}",
                # the run: one reward worker, one agent-loop worker, the tiny local model
                "reward.num_workers=1",
                "actor_rollout_ref.rollout.agent.num_workers=1",
                f"actor_rollout_ref.rollout.n={N}",
                "actor_rollout_ref.rollout.name=vllm",
                "actor_rollout_ref.rollout.prompt_length=64",
                "actor_rollout_ref.rollout.response_length=32",
                f"actor_rollout_ref.model.path={model}",
                f"trainer.experiment_name={job_id}",
                *extra,
            ],
        )


def rows(prompts: int, split: str = "train", rollout_n: list[int] | None = None) -> list[dict]:
    out = []
    for i in range(prompts):
        a, b = 7 * i + 3, 11 * i % 97
        row: dict[str, Any] = {
            "raw_prompt": [{"role": "user", "content": f"Compute {a} + {b}."}],
            "data_source": "hero-test",
            "reward_model": {"style": "rule", "ground_truth": str(a + b)},
            "extra_info": {"split": split, "index": i},
            "index": i,
            "uid": str(uuid.uuid4()),
        }
        if rollout_n is not None:
            row["__rollout_n__"] = rollout_n[i]
            row["extra_info"]["__rollout_n__"] = rollout_n[i]
        out.append(row)
    return out


def check_group(
    c: HeroClient, template: Any, texts: list[str], rewards: list[float], info: dict[str, Any]
) -> None:
    """The group's rewards equal /score_group's on a job with the sigma_bar it was
    weighted with (the running sigma of the training job when the group was scored)."""
    ref_job = job()
    c.import_job(
        template.model_copy(update={"job_id": ref_job, "sigma_bar": info["sigma_bar"], "count": 1})
    )
    want = c.score_group(ref_job, prompt=info["prompt"], reference=info["ref"], responses=texts)
    assert rewards == pytest.approx(want.rewards, abs=1e-5)


# -- verl v0: RewardLoopManager + AgentLoopManager (streaming reward) ----------------------
def test_verl_reward_loop_streams_240_samples_on_one_worker(
    server: Server, local_ray: None, tiny_lm: str
) -> None:
    from verl import DataProto
    from verl.experimental.agent_loop import AgentLoopManager
    from verl.experimental.reward_loop import RewardLoopManager

    j = job()
    config = verl_config(tiny_lm, j)
    rlm = RewardLoopManager(config=config)
    assert len(rlm.reward_loop_workers) == 1
    llm = ScriptedLLM(config, tiny_lm, half=PROMPTS * N // 2)
    alm = AgentLoopManager.create(
        config=config, llm_client=llm, reward_loop_worker_handles=rlm.reward_loop_worker_handles
    )
    data = rows(PROMPTS)
    batch = DataProto.from_single_dict(
        {
            "dummy_tensor": torch.zeros(len(data), 1, dtype=torch.uint8),
            **{k: np.array([r[k] for r in data], dtype=object) for k in data[0]},
        }
    )
    batch = batch.repeat(repeat_times=N, interleave=True)  # what ray_trainer does
    out = alm.generate_sequences(batch)
    assert len(out) == PROMPTS * N

    nt = out.non_tensor_batch
    assert not nt["hero_error"].any() and not nt["hero_partial"].any()  # every group complete
    assert (nt["hero_group_count"] == N).all()
    # the reward sits on the last response token, nothing elsewhere
    rm = out.batch["rm_scores"]
    resp_len = out.batch["response_mask"].sum(-1)
    last = rm[torch.arange(len(out)), resp_len - 1]
    assert float((rm.sum(-1) - last).abs().max()) == 0.0
    assert (rm != 0).sum(-1).le(1).all()
    texts = [
        alm_tok_decode(tiny_lm, out.batch["responses"][i][: int(resp_len[i])])
        for i in range(len(out))
    ]
    with HeroClient(server.url) as c:
        template = c.get_job(j)
        assert template.count == PROMPTS  # each group folded exactly once
        by_uid: dict[str, list[int]] = {}
        src = batch.non_tensor_batch  # the output keeps the input's order (ray_trainer unions them)
        for i, u in enumerate(src["uid"]):
            by_uid.setdefault(str(u), []).append(i)
        assert len(by_uid) == PROMPTS and all(len(v) == N for v in by_uid.values())
        for idx in by_uid.values():
            i0 = idx[0]
            info = {
                "sigma_bar": float(nt["hero_sigma_bar"][i0]),
                "prompt": src["raw_prompt"][i0][0]["content"],
                "ref": src["reward_model"][i0]["ground_truth"],
            }
            check_group(c, template, [texts[i] for i in idx], [float(last[i]) for i in idx], info)

    # validation as ray_trainer._validate sends it: meta_info validate (which the reward loop
    # never sees), val_kwargs.n = 1, padded to the agent workers with repeated rows (same
    # uid). The samples carry extra_info.split = "test": verifier only, nothing folded.
    from verl.protocol import pad_dataproto_to_divisor

    val = rows(3, split="test")
    vbatch = DataProto.from_single_dict(
        {
            "dummy_tensor": torch.zeros(len(val), 1, dtype=torch.uint8),
            **{k: np.array([r[k] for r in val], dtype=object) for k in val[0]},
        },
        meta_info={"validate": True, "global_steps": 1},
    )
    vbatch, pad = pad_dataproto_to_divisor(vbatch, 2)
    assert pad == 1 and vbatch.non_tensor_batch["uid"][3] == vbatch.non_tensor_batch["uid"][0]
    vout = alm.generate_sequences(vbatch)
    vnt = vout.non_tensor_batch
    assert (vnt["hero_validation"] == 1.0).all() and not vnt["hero_error"].any()
    assert vout.batch["rm_scores"].sum(-1).tolist() == [float(x) for x in vnt["acc"]]
    with HeroClient(server.url) as c:
        assert c.get_job(j).count == PROMPTS  # validation never folds into the job


_TOK: dict[str, Any] = {}


def alm_tok_decode(model: str, ids: Any) -> str:
    if model not in _TOK:
        from transformers import AutoTokenizer

        _TOK[model] = AutoTokenizer.from_pretrained(model)
    return str(_TOK[model].decode(ids, skip_special_tokens=True))


# -- verl v1: AgentLoopManagerTQ (TransferQueue), per-prompt n ------------------------------
def test_verl_v1_transfer_queue_path_with_per_prompt_n(
    server: Server, local_ray: None, tiny_lm: str
) -> None:
    tq = pytest.importorskip("transfer_queue")
    from verl.experimental.reward_loop import RewardLoopManager
    from verl.trainer.ppo.v1 import AgentLoopManagerTQ
    from verl.utils import tensordict_utils as tu

    j = job()
    config = verl_config(
        tiny_lm,
        j,
        "trainer.use_v1=True",
        "transfer_queue.enable=True",
        "transfer_queue.backend.SimpleStorage.num_data_storage_units=1",
    )
    prompts = 12
    ns = [(2, 3, 4)[i % 3] for i in range(prompts)]  # __rollout_n__: the v1 per-prompt n
    tq.init(config.transfer_queue)
    try:
        rlm = RewardLoopManager(config=config)
        llm = ScriptedLLM(config, tiny_lm, half=sum(min(n, N // 2) for n in ns))
        alm = AgentLoopManagerTQ.create(
            config=config,
            llm_client=llm,
            reward_loop_worker_handles=rlm.reward_loop_worker_handles,
        )
        data = rows(prompts, rollout_n=ns)
        batch = tu.get_tensordict({k: [r[k] for r in data] for k in data[0]})
        tu.assign_non_tensor_data(batch, "global_steps", 1)
        uids = [r["uid"] for r in data]
        tags = [{"is_prompt": True, "status": "pending", "global_steps": 1} for _ in uids]
        tq.kv_batch_put(keys=uids, partition_id="train", tags=tags)  # _submit_batch_to_rollout
        alm.generate_sequences(batch)
        status: dict[str, str] = {}
        for _ in range(600):  # bounded: each prompt ends "finished" or "failure"
            listed = tq.kv_list("train").get("train", {})
            status = {u: listed.get(u, {}).get("status", "") for u in uids}
            if all(s in ("finished", "failure") for s in status.values()):
                break
            ray.get(ray.put(None))  # yield to Ray
            import time

            time.sleep(0.5)
        assert set(status.values()) == {"finished"}
        keys = [f"{u}_{s}_0" for u, n in zip(uids, ns, strict=True) for s in range(n)]
        got = tq.kv_batch_get(
            keys=keys,
            partition_id="train",
            select_fields=["responses", "rm_scores", "extra_fields"],
        )
    finally:
        tq.close()
    responses = [got["responses"][i] for i in range(len(keys))]
    rm_scores = [got["rm_scores"][i] for i in range(len(keys))]
    infos = [got["extra_fields"][i]["reward_extra_info"] for i in range(len(keys))]
    for rm in rm_scores:  # the reward sits on the last response token
        assert float(rm[:-1].abs().sum()) == 0.0
    with HeroClient(server.url) as c:
        template = c.get_job(j)
        assert template.count == prompts
        k = 0
        for r, n in zip(data, ns, strict=True):
            idx = list(range(k, k + n))
            k += n
            assert [infos[i]["hero_group_count"] for i in idx] == [float(n)] * n
            assert not any(infos[i]["hero_partial"] or infos[i]["hero_error"] for i in idx)
            texts = [alm_tok_decode(tiny_lm, responses[i]) for i in idx]
            info = {
                "sigma_bar": float(infos[idx[0]]["hero_sigma_bar"]),
                "prompt": r["raw_prompt"][0]["content"],
                "ref": r["reward_model"]["ground_truth"],
            }
            check_group(c, template, texts, [float(rm_scores[i][-1]) for i in idx], info)


# -- OpenRLHF 0.11.2's own code (wheel installed with --no-deps) ----------------------------
class ScriptedEngine:
    """The vLLM engine OpenRLHF's executors call: `generate(ids, params)`; answers finish
    in a random order."""

    def __init__(self, tok: Any) -> None:
        self.tok = tok
        self.rng = random.Random(7)

    async def generate(self, ids: list[int], params: Any, multi_modal_data: Any = None) -> Any:
        from types import SimpleNamespace

        prompt = self.tok.decode(ids, skip_special_tokens=True)
        a, b = map(int, re.findall(r"Compute (\d+) \+ (\d+)", prompt)[-1])
        ans = a + b if self.rng.random() < 0.5 else a + b + self.rng.randint(1, 9)
        text = f" So \\boxed{{{ans}}}"
        await asyncio.sleep(self.rng.random() * 0.2)
        out = SimpleNamespace(
            token_ids=self.tok.encode(text, add_special_tokens=False),
            text=text,
            finish_reason="stop",
            logprobs=None,
        )
        return SimpleNamespace(outputs=[out])


async def _rollouts(executor: Any, tok: Any, prompts: int, n: int) -> list[list[dict]]:
    """RolloutRayActor.generate_responses: n concurrent execute() per prompt, several
    prompts at once on one actor."""
    from types import SimpleNamespace

    engine = ScriptedEngine(tok)
    params = SimpleNamespace(max_tokens=16, logprobs=None)

    async def one_prompt(i: int) -> list[dict]:
        prompt = f"<|user|>Compute {7 * i + 3} + {11 * i % 97}.<|assistant|>"
        label = str(7 * i + 3 + 11 * i % 97)
        calls = [executor.execute(prompt, label, params, 128, tok, engine) for _ in range(n)]
        return list(await asyncio.gather(*calls))

    return list(await asyncio.gather(*(one_prompt(i) for i in range(prompts))))


def _check_openrlhf_groups(server: Server, j: str, groups: list[list[dict]], tok: Any) -> None:
    with HeroClient(server.url) as c:
        template = c.get_job(j)
        assert template.count == len(groups)  # every group scored once, whole
        for outs in groups:
            logs = [o["extra_logs"] for o in outs]
            val = [
                x if isinstance(x, float) else x[0] for x in (lg["hero_group_count"] for lg in logs)
            ]
            assert val == [float(len(outs))] * len(outs)
            assert not any(_f(lg["hero_partial"]) or _f(lg["hero_error"]) for lg in logs)
            texts = [
                tok.decode(o["observation_tokens"][a:b], skip_special_tokens=True)
                for o in outs
                for a, b in o["action_ranges"]
            ]
            info = {
                "sigma_bar": _f(logs[0]["hero_sigma_bar"]),
                "prompt": outs[0]["prompt"],
                "ref": outs[0]["label"],
            }
            check_group(c, template, texts, [_f(o["reward"]) for o in outs], info)


def _f(x: Any) -> float:
    return float(x[0] if isinstance(x, list) else x)


async def test_openrlhf_own_remote_reward_client(
    server: Server, tiny_lm: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenRLHF's SingleTurnAgentExecutor posts each rollout to /get_reward itself
    (`--reward.remote_url 'http://.../get_reward?job_id=..&group_size=n'`); then the
    same executor with our reward_func file (`--reward.remote_url hero_openrlhf.py`);
    then our AgentExecutor on OpenRLHF's real base class (`--train.agent_func_path`)."""
    pytest.importorskip("openrlhf")
    from openrlhf.utils.agent import SingleTurnAgentExecutor
    from transformers import AutoTokenizer

    import hero_client.adapters.openrlhf as orl_adapter

    tok = AutoTokenizer.from_pretrained(tiny_lm)
    # 1. a plain URL: OpenRLHF's own aiohttp client, one sample per request (the barrier)
    j = job()
    url = f"{server.url}/get_reward?job_id={j}&group_size=4&deadline_s=120"
    groups = await _rollouts(SingleTurnAgentExecutor(url), tok, prompts=8, n=4)
    _check_openrlhf_groups(server, j, groups, tok)
    # 2. our reward_func file, loaded by OpenRLHF's own loader
    j = job()
    for k, v in {"HERO_URL": server.url, "HERO_JOB_ID": j, "HERO_GROUP_SIZE": "4"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("HERO_DEADLINE_S", "120")
    # OpenRLHF calls reward_func through asyncio.to_thread: every sample waiting in the
    # barrier holds one of the loop's default threads (min(32, cpus + 4), 6 on 2 cores), so
    # only one group of 4 is in flight here (docs/integrations.md, OpenRLHF)
    groups = await _rollouts(SingleTurnAgentExecutor(orl_adapter.__file__), tok, prompts=1, n=4)
    _check_openrlhf_groups(server, j, groups, tok)
    # 3. our AgentExecutor, subclassing OpenRLHF's real SingleTurnAgentExecutor
    j = job()
    monkeypatch.setenv("HERO_JOB_ID", j)
    spec = importlib.util.spec_from_file_location("agent_module", orl_adapter.__file__)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # what OpenRLHF's _load_agent_executor does
    assert issubclass(mod.AgentExecutor, SingleTurnAgentExecutor)
    groups = await _rollouts(mod.AgentExecutor(), tok, prompts=8, n=4)
    _check_openrlhf_groups(server, j, groups, tok)


# -- verl 0.7.0's RewardManagerBase (its files, beside the newest verl) ---------------------
V070_SCRIPT = r"""
import asyncio, importlib.util, json, sys, types
import numpy as np, torch
import verl
from omegaconf import OmegaConf
from transformers import AutoTokenizer

assert verl.__version__ == "0.7.0", verl.__version__
root = verl.__path__[0] + "/experimental/reward_loop"
# those packages' __init__ import 0.7.0's vLLM-era helpers (transformers < 5); the base
# class itself is loaded from its own file, unchanged
for name, path in (("verl.experimental.reward_loop", root),
                   ("verl.experimental.reward_loop.reward_manager", root + "/reward_manager")):
    pkg = types.ModuleType(name)
    pkg.__path__ = [path]
    sys.modules[name] = pkg
name = "verl.experimental.reward_loop.reward_manager.base"
spec = importlib.util.spec_from_file_location(name, root + "/reward_manager/base.py")
base = importlib.util.module_from_spec(spec)
sys.modules[name] = base
spec.loader.exec_module(base)
from verl import DataProto
from verl.utils.import_utils import load_extern_object

model, adapter, job = sys.argv[1:4]
config = OmegaConf.create({
    "trainer": {"experiment_name": job},
    "actor_rollout_ref": {"rollout": {"n": 2}},
    "reward_model": {"enable": False, "reward_loop_source": "importlib",
                     "reward_loop_module_path": adapter,
                     "reward_loop_class_name": "HeroRewardManager"},
    "custom_reward_function": {"path": None},
})
tok = AutoTokenizer.from_pretrained(model)

async def main():
    # verl 0.7.0's RewardLoopWorker._init_reward_fn, to the letter
    cls = load_extern_object(module_path=adapter, object_name="HeroRewardManager")
    assert issubclass(cls, base.RewardManagerBase)
    mgr = cls(config, tok, None, None, None)
    outs = []
    for text in ("so \\boxed{5}", "so \\boxed{6}"):
        p = tok.encode("Compute 2 + 3.", add_special_tokens=False)
        r = tok.encode(text, add_special_tokens=False)
        batch = {
            "prompts": torch.tensor([p]), "responses": torch.tensor([r]),
            "attention_mask": torch.ones(1, len(p) + len(r), dtype=torch.long),
        }
        nt = {"uid": np.array(["g"], dtype=object),
              "reward_model": np.array([{"ground_truth": "5"}], dtype=object),
              "raw_prompt": np.array([None], dtype=object)}
        nt["raw_prompt"][0] = [{"role": "user", "content": "Compute 2 + 3."}]
        outs.append(mgr.run_single(DataProto.from_dict(tensors=batch, non_tensors=nt)))
    res = await asyncio.gather(*outs)
    print(json.dumps([[o["reward_score"], o["reward_extra_info"]] for o in res]))

asyncio.run(main())
"""


def test_verl_070_reward_manager_base(server: Server, tiny_lm: str) -> None:
    """verl 0.7.0's own RewardManagerBase (config, tokenizer) and load_extern_object:
    the manager constructs and scores a group (scripts/verl_env.sh puts verl 0.7.0's
    files in <venv>/verl-0.7.0)."""
    import json
    import subprocess

    import hero_client.adapters.verl as verl_adapter

    v070 = Path(sys.prefix) / "verl-0.7.0"
    if not (v070 / "verl").is_dir():
        pytest.skip("verl 0.7.0's files not in the venv (scripts/verl_env.sh)")
    j = job()
    env = {**os.environ, "PYTHONPATH": str(v070), "HERO_URL": server.url, "HF_HUB_OFFLINE": "1"}
    p = subprocess.run(
        [sys.executable, "-c", V070_SCRIPT, tiny_lm, verl_adapter.__file__, j],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    outs = json.loads(p.stdout.strip().splitlines()[-1])
    assert [o[1]["hero_group_count"] for o in outs] == [2.0, 2.0]
    assert [o[1]["acc"] for o in outs] == [1.0, 0.0]
    with HeroClient(server.url) as c:
        template = c.get_job(j)
        assert template.count == 1
        texts = ["so \\boxed{5}", "so \\boxed{6}"]
        info = {"sigma_bar": outs[0][1]["hero_sigma_bar"], "prompt": "Compute 2 + 3.", "ref": "5"}
        check_group(c, template, texts, [o[0] for o in outs], info)
