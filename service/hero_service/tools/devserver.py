"""`hero serve` (or any HTTP server) as a child process on a free loopback port, ready
when its readiness path answers 200: the one server-start helper of the tests, the
benchmarks (bench/) and the load tests (loadtests/)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hero_serve(port: int, *args: str) -> list[str]:
    """The command line of `hero serve` on loopback `port` with this interpreter."""
    return [sys.executable, "-m", "hero_service.tools.cli", "serve", "--port", str(port), *args]


@dataclass
class ServerProcess:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self, sig: int | None = None, timeout: float = 30.0) -> None:
        """SIGTERM (or `sig`) and wait; SIGKILL if it does not exit within `timeout`."""
        if self.proc.poll() is None:
            if sig is None:
                self.proc.terminate()
            else:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log_tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def wait_ready(self, path: str = "/ready", timeout: float = 240.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.proc.kill()
        raise RuntimeError(f"server not ready in {timeout:.0f}s:\n{self.log_tail()}")


def spawn(
    cmd: Sequence[str], port: int, log: Path, env: Mapping[str, str] | None = None
) -> ServerProcess:
    """Start `cmd` (listening on `port`) with its output in `log`; HF_HUB_OFFLINE=1."""
    e = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    with log.open("ab") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT, env=e)
    return ServerProcess(f"http://127.0.0.1:{port}", proc, log)


def start(
    cmd: Sequence[str],
    port: int,
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    ready_path: str = "/ready",
    timeout: float = 240.0,
) -> ServerProcess:
    """spawn, then wait until `ready_path` answers 200 (RuntimeError with the log's tail
    if the process exits or the time runs out)."""
    server = spawn(cmd, port, log, env)
    server.wait_ready(ready_path, timeout)
    return server
