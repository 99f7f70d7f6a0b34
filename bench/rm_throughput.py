"""RM serving throughput under a per-sample load: the service vs the limit vs serve_rm.

    python bench/rm_throughput.py                      # defaults: embedded scorer, c=64
    python bench/rm_throughput.py --concurrency 32 --json /tmp/rm.json
    python bench/rm_throughput.py --rm-backend hf --rm-model DIR --rm-max-length 1024
    python bench/rm_throughput.py --rm-backend hf --rm-model DIR --group-size 8 \\
        --service-args "--rm-backend vllm --rm-vllm-engine-args '{\\"enforce_eager\\": true}'"

Per-sample load: `--concurrency` keep-alive connections (bench/_loadgen.py, a lean asyncio
HTTP/1.1 client; `--client httpx` for httpx.AsyncClient), each request carries ONE response
(how OpenRLHF's agent calls a remote RM: one query per finished rollout). Every request
has its own prompt unless --group-size (GRPO: N rollouts of a prompt, sent back to back).
Two input sizes: short (~64-token response, ~32-token prompt) and long (~1k-token
response, ~64-token prompt; the embedded MiniLM scorer reads at most 256 tokens). The
three measurements run in interleaved rounds (order rotated) so that a busy machine slows
all of them alike; the request count is cut to fit --budget-s when the machine is slow:

- limit: the raw batched forward pass of the same backend object on the same inputs,
  in this process (pre-tokenized, length-sorted batches of --max-batch-size); also the
  batch-1 forward, the best a server without cross-request batching can do.
- service: `hero serve` (real uvicorn on loopback), `POST /rm_score` with one response.
- serve_rm: bench/serve_rm_baseline.py, OpenRLHF's serve_rm.py design (synchronous model
  call inside the async handler, no batching across requests), `POST /get_reward`.

The load generator shares the CPU with the servers: on a 2-core machine the ratios are
the figures to read, not the absolute rates. The CPU each side spent per request (server
process, load generator) is printed and kept in the JSON. Results + command:
docs/rm-serving.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import _loadgen  # bench/ is on sys.path when run as a script
import httpx

from hero_service.tools import devserver
from hero_service.tools.devserver import free_port

REPO = Path(__file__).resolve().parent.parent
_VOCAB = (
    "we compute the value of x so that the sum of both terms equals the product then "
    "simplify each fraction and check the integer cases step by step therefore the answer "
    "is boxed first next finally note that since because hence it follows"
)
WORDS = _VOCAB.split()
SIZES = {"short": (32, 64), "long": (64, 1000)}  # (prompt tokens, response tokens)


@dataclass
class Phase:
    name: str
    n: int
    seconds: float
    rate: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def make_items(
    tokenizer: Any, size: str, n: int, seed: int, group: int = 1
) -> list[tuple[str, str, str]]:
    """(prompt, response, reference) with about the target token counts; `group`
    consecutive items share a prompt (GRPO rollouts), responses are all distinct."""
    p_tok, r_tok = SIZES[size]
    rng = random.Random(seed)

    def text(target: int) -> str:
        words: list[str] = []
        while True:
            words.extend(
                rng.choice(WORDS) if rng.random() > 0.15 else str(rng.randint(0, 999))
                for _ in range(max(4, (target - count(words)) // 2))
            )
            if count(words) >= target:
                return " ".join(words)

    def count(words: list[str]) -> int:
        return len(tokenizer(" ".join(words), add_special_tokens=False)["input_ids"])

    items = []
    prompt, ref = "", ""
    for i in range(n):
        if i % group == 0:
            ref = str(rng.randint(0, 999))
            prompt = f"Problem {i // group}: " + text(p_tok)
        response = text(r_tok - 8) + f" Therefore the answer is \\boxed{{{ref}}}."
        items.append((prompt, response, ref))
    return items


# --- the limit: the raw batched forward pass -------------------------------------------


def prepare_all(backend: Any, items: list[tuple[str, str, str]]) -> tuple[list[Any], float]:
    from hero_service.rm.base import RMInput

    t0 = time.perf_counter()
    prepared = [backend.prepare(RMInput(p, r, ref)) for p, r, ref in items]
    return prepared, time.perf_counter() - t0


def forward_batched(backend: Any, prepared: list[Any], batch: int) -> float:
    """Seconds for the raw forward passes: length-sorted batches of `batch`."""
    order = sorted(prepared, key=lambda p: p.n_tokens)
    t0 = time.perf_counter()
    for i in range(0, len(order), batch):
        backend.forward(order[i : i + batch])
    return time.perf_counter() - t0


def forward_one_by_one(backend: Any, prepared: list[Any]) -> float:
    t0 = time.perf_counter()
    for p in prepared:
        backend.forward([p])
    return time.perf_counter() - t0


# --- servers and the load generator -------------------------------------------------


def start(cmd: list[str], url: str, ready_path: str, log: Path, timeout: float = 240) -> Any:
    port = int(url.rsplit(":", 1)[1])
    return devserver.start(cmd, port, log, ready_path=ready_path, timeout=timeout).proc


def stop(proc: Any) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


async def load_httpx(
    url: str, path: str, bodies: list[dict[str, Any]], concurrency: int
) -> _loadgen.LoadResult:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    res = _loadgen.LoadResult(0.0)
    nxt = 0
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=600) as client:

        async def worker() -> None:
            nonlocal nxt
            while nxt < len(bodies):
                body = bodies[nxt]
                nxt += 1
                t = time.perf_counter()
                r = await client.post(path, json=body)
                res.latencies_s.append(time.perf_counter() - t)
                if r.status_code != 200:
                    if not res.errors:
                        res.first_error = f"HTTP {r.status_code} {r.text[:300]}"
                    res.errors += 1

        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        res.wall_s = time.perf_counter() - t0
        res.client_cpu_s = time.process_time() - cpu0
        return res


def load(
    url: str, path: str, bodies: list[dict[str, Any]], concurrency: int, client: str = "raw"
) -> _loadgen.LoadResult:
    fn = _loadgen.run if client == "raw" else load_httpx
    res = asyncio.run(fn(url, path, bodies, concurrency))
    if res.errors:
        print(f"  {path}: {res.errors} errors, first: {res.first_error}", flush=True)
    return res


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a server process and its children (verifier workers)."""
    import psutil

    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


def summarize(name: str, wall: float, lat: list[float], errors: int) -> Phase:
    lat = sorted(lat)
    n = len(lat)
    return Phase(
        name, n, wall, n / wall, 1000 * lat[n // 2], 1000 * lat[min(n - 1, int(n * 0.99))], errors
    )


def rm_batch_stats(url: str) -> tuple[float, float]:
    text = httpx.get(url + "/metrics", timeout=10).text
    vals = {}
    for line in text.splitlines():
        for k in ("hero_rm_batch_size_sum", "hero_rm_batch_size_count"):
            if line.startswith(k + " "):
                vals[k] = float(line.split()[1])
    return vals.get("hero_rm_batch_size_sum", 0.0), vals.get("hero_rm_batch_size_count", 0.0)


# --- main ---------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--short", type=int, default=768, help="timed short requests")
    ap.add_argument("--long", type=int, default=128, help="timed long requests (0 = skip)")
    ap.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="interleaved rounds of limit / service / serve_rm (drift hits all three)",
    )
    ap.add_argument(
        "--budget-s",
        type=float,
        default=140.0,
        help="timed seconds to aim for: fewer requests than asked when the machine is slow",
    )
    ap.add_argument("--rm-backend", default="embedded", choices=["embedded", "hf"])
    ap.add_argument("--rm-model", default="")
    ap.add_argument("--rm-max-length", type=int, default=1024)
    ap.add_argument("--max-batch-size", type=int, default=32)
    ap.add_argument("--max-batch-tokens", type=int, default=65536)
    ap.add_argument("--baseline-batch-size", type=int, default=16)
    ap.add_argument(
        "--torch-threads",
        type=int,
        default=0,
        help="torch threads of every model (limit, service, serve_rm); 0 = torch's default "
        "(all cores), as both servers run by default. On a busy machine 1 is steadier",
    )
    ap.add_argument(
        "--group-size",
        type=int,
        default=1,
        help="consecutive requests sharing a prompt (GRPO-like; 1 = every prompt distinct)",
    )
    ap.add_argument(
        "--service-args",
        default="",
        help='extra `hero serve` flags, e.g. "--rm-backend vllm --rm-dtype bfloat16" '
        "(the limit and serve_rm keep --rm-backend)",
    )
    ap.add_argument(
        "--client",
        default="raw",
        choices=["raw", "httpx"],
        help="load generator: raw = lean asyncio HTTP/1.1 (bench/_loadgen.py); httpx = "
        "httpx.AsyncClient, which costs ~1 ms CPU per call on the shared cores",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default="", help="also write the results here")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    t_start = time.perf_counter()

    import torch

    from hero_service.config import Settings
    from hero_service.rm import build_backend

    settings = Settings(
        rm_backend=args.rm_backend,
        rm_model=args.rm_model,
        rm_max_length=args.rm_max_length,
        torch_threads=args.torch_threads,
        state_path=":memory:",
    )
    backend = build_backend(settings)
    threads = torch.get_num_threads()
    sizes = [("short", args.short)] + ([("long", args.long)] if args.long else [])
    warm = min(args.concurrency, 16)
    inputs = {
        s: make_items(backend.tokenizer, s, n + warm, args.seed + i, args.group_size)
        for i, (s, n) in enumerate(sizes)
    }
    print(
        f"backend={args.rm_backend} torch_threads={threads} cores={os.cpu_count()} "
        f"concurrency={args.concurrency} max_batch_size={args.max_batch_size} "
        f"rounds={args.rounds}",
        flush=True,
    )

    tmp = Path(tempfile.mkdtemp(prefix="rm-bench-"))
    common = [
        "--rm-backend",
        args.rm_backend,
        "--rm-max-length",
        str(args.rm_max_length),
        "--torch-threads",
        str(args.torch_threads),
    ] + (["--rm-model", args.rm_model] if args.rm_model else [])
    svc_port, base_port = free_port(), free_port()
    svc_url, base_url = f"http://127.0.0.1:{svc_port}", f"http://127.0.0.1:{base_port}"
    svc_cmd = [
        sys.executable,
        "-m",
        "hero_service.tools.cli",
        "serve",
        "--port",
        str(svc_port),
        "--state-path",
        ":memory:",
        "--log-level",
        "warning",
        "--verifier-workers",
        "1",
        "--rm-max-batch-size",
        str(args.max_batch_size),
        "--rm-max-batch-tokens",
        str(args.max_batch_tokens),
        *common,
    ]
    if "max_inflight_requests" in Settings.model_fields:
        svc_cmd += ["--max-inflight-requests", "0"]
    svc_cmd += shlex.split(args.service_args)
    base_cmd = [
        sys.executable,
        str(REPO / "bench" / "serve_rm_baseline.py"),
        "--port",
        str(base_port),
        "--batch-size",
        str(args.baseline_batch_size),
        *common,
    ]
    procs = [start(svc_cmd, svc_url, "/ready", tmp / "service.log")]
    results: dict[str, Any] = {"config": vars(args) | {"torch_threads_effective": threads}}
    try:
        procs.append(start(base_cmd, base_url, "/health", tmp / "baseline.log"))
        c = args.concurrency
        for s, n in sizes:
            items = inputs[s]
            svc_bodies = [{"prompt": p, "responses": [r], "reference": ref} for p, r, ref in items]
            base_bodies = [
                {"query": [r], "prompts": [p], "references": [ref]} for p, r, ref in items
            ]
            # warm-up: every path once; their rough rates size the run to the budget
            prepared, _ = prepare_all(backend, items[warm:])
            backend.forward(prepared[: args.max_batch_size])
            est = args.max_batch_size / forward_batched(
                backend, prepared[: args.max_batch_size], args.max_batch_size
            )
            w_svc = load(svc_url, "/rm_score", svc_bodies[:warm], c, args.client).wall_s
            w_base = load(base_url, "/get_reward", base_bodies[:warm], c, args.client).wall_s
            # seconds per input over all paths (the batch-1 forward runs on 1/8 of them)
            per_item = 1 / est + w_svc / warm + (1 + 1 / 8) * w_base / warm
            share = args.budget_s / len(sizes)
            n = max(c, min(n, int(share / per_item)))
            items, prepared = items[: warm + n], prepared[:n]

            acc: dict[str, list[Any]] = {"limit": [], "limit1": []}
            svc: dict[str, Any] = {
                "wall": 0.0,
                "lat": [],
                "err": 0,
                "server_cpu": 0.0,
                "client_cpu": 0.0,
            }
            base: dict[str, Any] = {
                "wall": 0.0,
                "lat": [],
                "err": 0,
                "server_cpu": 0.0,
                "client_cpu": 0.0,
            }
            before = rm_batch_stats(svc_url)
            # rounds of >= 4 x concurrency requests, so each round runs at full concurrency
            rounds = max(1, min(args.rounds, n // (4 * c)))
            k = n // rounds
            for r in range(rounds):
                lo, hi = warm + r * k, (warm + (r + 1) * k if r < rounds - 1 else len(items))
                part = prepared[lo - warm : hi - warm]

                steps = ["limit", "service", "serve_rm"]
                for step in steps[r % 3 :] + steps[: r % 3]:  # rotate the order per round
                    if step == "limit":
                        t = forward_batched(backend, part, args.max_batch_size)
                        acc["limit"].append((len(part), t))
                        one = part[: max(4, len(part) // 8)]
                        acc["limit1"].append((len(one), forward_one_by_one(backend, one)))
                        continue
                    url, path, bodies, into, pid = (
                        (svc_url, "/rm_score", svc_bodies, svc, procs[0].pid)
                        if step == "service"
                        else (base_url, "/get_reward", base_bodies, base, procs[1].pid)
                    )
                    server_cpu0 = cpu_seconds(pid)
                    res = load(url, path, bodies[lo:hi], c, args.client)
                    into["server_cpu"] += cpu_seconds(pid) - server_cpu0
                    into["client_cpu"] += res.client_cpu_s
                    into["wall"] += res.wall_s
                    into["lat"] += res.latencies_s
                    into["err"] += res.errors
            after = rm_batch_stats(svc_url)
            _, tok_s = prepare_all(backend, items[warm:])
            lim_n = sum(x for x, _ in acc["limit"])
            lim_t = sum(t for _, t in acc["limit"])
            one_n = sum(x for x, _ in acc["limit1"])
            one_t = sum(t for _, t in acc["limit1"])
            tokens = [p.n_tokens for p in prepared]
            lim = {
                "batched_rate": lim_n / lim_t,
                "batched_with_tokenization_rate": lim_n / (lim_t + tok_s),
                "batch1_rate": one_n / one_t,
                "tokens_mean": statistics.fmean(tokens),
                "tokens_max": max(tokens),
                "truncated": sum(p.truncated for p in prepared),
            }
            sp = summarize("service", svc["wall"], svc["lat"], svc["err"])
            if after[1] > before[1]:
                sp.extra["mean_batch"] = (after[0] - before[0]) / (after[1] - before[1])
            bp = summarize("serve_rm", base["wall"], base["lat"], base["err"])
            for ph, d in ((sp, svc), (bp, base)):  # CPU per request: where the cores went
                ph.extra["server_cpu_ms_per_req"] = 1000 * d["server_cpu"] / max(1, ph.n)
                ph.extra["client_cpu_ms_per_req"] = 1000 * d["client_cpu"] / max(1, ph.n)
            results[s] = {
                "n": n,
                "rounds": rounds,
                "limit": lim,
                "service": asdict(sp),
                "serve_rm": asdict(bp),
            }
            print(
                f"[{s}] n={n} rounds={rounds} ~{lim['tokens_mean']:.0f} tokens/input "
                f"({lim['truncated']} truncated): "
                f"limit {lim['batched_rate']:.1f}/s (batch-1 {lim['batch1_rate']:.1f}/s), "
                f"service {sp.rate:.1f}/s (mean batch {sp.extra.get('mean_batch', 0):.1f}, "
                f"p50 {sp.p50_ms:.0f} ms, p99 {sp.p99_ms:.0f} ms), "
                f"serve_rm {bp.rate:.1f}/s (p50 {bp.p50_ms:.0f} ms, p99 {bp.p99_ms:.0f} ms), "
                f"errors {sp.errors + bp.errors}; CPU ms/request: service "
                f"{sp.extra['server_cpu_ms_per_req']:.1f}, serve_rm "
                f"{bp.extra['server_cpu_ms_per_req']:.1f}, load generator "
                f"{sp.extra['client_cpu_ms_per_req']:.1f} / "
                f"{bp.extra['client_cpu_ms_per_req']:.1f}",
                flush=True,
            )
    finally:
        for proc in procs:
            stop(proc)

    print()
    print(
        "| input | limit: batched fwd | batch-1 fwd | service | serve_rm | service/limit "
        "| service/serve_rm | service p50 / p99 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for s, _ in sizes:
        r = results[s]
        lim, sv, base_r = r["limit"], r["service"], r["serve_rm"]
        r["ratios"] = {
            "service_over_limit": sv["rate"] / lim["batched_rate"],
            "service_over_serve_rm": sv["rate"] / base_r["rate"],
            "batch_speedup_bound": lim["batched_rate"] / lim["batch1_rate"],
        }
        print(
            f"| {s} (~{lim['tokens_mean']:.0f} tok) | {lim['batched_rate']:.1f}/s "
            f"| {lim['batch1_rate']:.1f}/s | {sv['rate']:.1f}/s | {base_r['rate']:.1f}/s "
            f"| **{r['ratios']['service_over_limit']:.2f}x** "
            f"| **{r['ratios']['service_over_serve_rm']:.2f}x** "
            f"| {sv['p50_ms']:.0f} / {sv['p99_ms']:.0f} ms |"
        )
    print(f"\n(total {time.perf_counter() - t_start:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    errors = sum(results[s][k]["errors"] for s, _ in sizes for k in ("service", "serve_rm"))
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
