"""A serve_rm-style baseline RM server, for bench/rm_throughput.py.

Mirrors how OpenRLHF's reference server (openrlhf/cli/serve_rm.py) works: one
`POST /get_reward {"query": [...]}` handler that runs the model SYNCHRONOUSLY inside the
async handler (the event loop is blocked for the whole forward pass), with no batching
across requests; each request is scored on its own, chunked by `--batch-size`.
It uses the same in-process backend object as the service (`build_backend`: same
tokenization, same model, same threads), so the only difference measured is serving.

    python bench/serve_rm_baseline.py --port 8100 [--rm-backend embedded] [--rm-model DIR]

Request: {"query": [response, ...], "prompts": [prompt, ...], "references": [ref, ...]}
(prompts/references are optional and broadcast when of length 1; OpenRLHF sends the
rendered conversation in `query`; our scorers take (prompt, response, reference)).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from fastapi import FastAPI, Request  # module level: FastAPI resolves the annotations here
from fastapi.responses import JSONResponse

from hero_service.rm.base import RMInput


def create_app(backend: Any, batch_size: int) -> FastAPI:
    app = FastAPI()

    @app.post("/get_reward")
    async def get_reward(request: Request) -> JSONResponse:
        data = await request.json()
        queries: list[str] = data.get("query") or []
        n = len(queries)
        prompts = data.get("prompts") or [""]
        refs = data.get("references") or [None]
        prompts = prompts * n if len(prompts) == 1 else prompts
        refs = refs * n if len(refs) == 1 else refs
        items = [RMInput(p, q, r) for p, q, r in zip(prompts, queries, refs, strict=True)]
        rewards: list[float] = []
        for i in range(0, n, batch_size):  # synchronous: blocks the event loop
            chunk = [backend.prepare(x) for x in items[i : i + batch_size]]
            rewards.extend(backend.forward(chunk))
        return JSONResponse({"rewards": rewards, "scores": rewards, "extra_logs": {}})

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8100)
    ap.add_argument("--batch-size", type=int, default=16, help="OpenRLHF --batch_size")
    ap.add_argument("--rm-backend", default="embedded", choices=["embedded", "hf"])
    ap.add_argument("--rm-model", default="")
    ap.add_argument("--rm-max-length", type=int, default=512)
    ap.add_argument("--torch-threads", type=int, default=0)
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import uvicorn

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
    uvicorn.run(
        create_app(backend, args.batch_size), host=args.host, port=args.port, log_level="warning"
    )


if __name__ == "__main__":
    main()
