"""Test-only code the verifier pool's spawned workers import (the repo root is on their
sys.path, as on the parent's): fault injection, and the pool's live worker pids."""

from __future__ import annotations

import os
import signal

from hero_service.verify.pool import VerifierPool


def crash_task(kind: str) -> str:
    """Misbehave on purpose inside a worker."""
    if kind == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "hang":
        while True:
            pass
    if kind == "memory":
        blob = bytearray(10 * 1024**3)
        return str(len(blob))
    raise RuntimeError("injected failure")


def worker_pids(pool: VerifierPool) -> list[int]:
    return [p.pid for p in pool.procs() if p.is_alive()]
