"""A real redis-server for the tests (own port, own dir, AOF with fsync on every write),
and a pytest plugin with a two-replica cluster shared by the reliability test modules."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from tests.conftest import Server, free_port, start_server

HAVE_REDIS = shutil.which("redis-server") is not None


@dataclass
class RedisServer:
    dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> RedisServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            "redis-server",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.dir),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
            "--protected-mode", "yes",
        ]  # fmt: skip
        log = (self.dir / "redis.log").open("ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return self
            except redis.exceptions.BusyLoadingError:
                pass
            except redis.exceptions.ConnectionError:
                if self.proc.poll() is not None:
                    break
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start:\n{(self.dir / 'redis.log').read_text()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown save; only what AOF fsynced survives."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True)


@dataclass
class Cluster:
    """One Redis and two `hero serve` replicas sharing it (string verifier: fast)."""

    tmp: Path
    redis: RedisServer
    servers: list[Server]
    args: tuple[str, ...]

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    def restart(self, i: int) -> None:
        self.servers[i] = _replica(self.tmp, i, self.args)


def _replica(tmp: Path, i: int, args: tuple[str, ...]) -> Server:
    d = tmp / f"r{i}"
    d.mkdir(exist_ok=True)
    return start_server(d, *args)


REPLICA_ARGS = (
    "--verifier", "string",
    "--verifier-workers", "1",
    "--max-inflight-requests", "0",
    "--log-level", "warning",
)  # fmt: skip


@pytest.fixture
def make_redis(tmp_path: Path) -> Iterator[Callable[[], RedisServer]]:
    """Start extra redis-servers (each in its own dir); all stopped at the end."""
    made: list[RedisServer] = []

    def make() -> RedisServer:
        rs = RedisServer(tmp_path / f"redis{len(made)}").start()
        made.append(rs)
        return rs

    yield make
    for rs in made:
        rs.stop()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if not HAVE_REDIS:
        pytest.skip("redis-server is not on PATH")
    tmp = tmp_path_factory.mktemp("cluster")
    rs = RedisServer(tmp / "redis").start()
    args = (*REPLICA_ARGS, "--state-url", rs.url)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as ex:  # the two replicas start side by side
        servers = list(ex.map(lambda i: _replica(tmp, i, args), range(2)))
    c = Cluster(tmp, rs, servers, args)
    yield c
    for s in c.servers:
        s.stop()
    rs.stop()
