"""Shared fixtures: the service in-process (`app`, `http`: the fast tier) and a real
`hero serve` process on loopback (`server`, `server_http`: slow tests only)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hero_service.config import Settings
from hero_service.tools.devserver import ServerProcess as Server
from hero_service.tools.devserver import free_port, hero_serve, start
from tests.inproc import InProcess

REPO = Path(__file__).resolve().parent.parent
pytest_plugins = ["tests.verifying"]  # the live `verifier` fixture of the verifier tests


def start_server(
    tmp: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 180.0
) -> Server:
    """`hero serve` on a free port with a state file in `tmp`, quiet, one torch thread."""
    port = free_port()
    cmd = hero_serve(
        port,
        "--state-path",
        str(tmp / "state.sqlite3"),
        "--log-level",
        "warning",
        "--torch-threads",
        "1",
        *args,
    )
    return start(cmd, port, tmp / f"server-{port}.log", env=env, timeout=timeout)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("srv"))
    yield s
    s.stop()


@pytest.fixture
def server_http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


@pytest.fixture(scope="session")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    """The service in this process (the defaults of `hero serve`, one torch thread)."""
    state = tmp_path_factory.mktemp("app") / "state.sqlite3"
    proc = InProcess(Settings(state_path=str(state), torch_threads=1))
    yield proc
    proc.close()


@pytest.fixture
def http(app: InProcess) -> Iterator[httpx.Client]:
    with app.client(timeout=60) as c:
        yield c


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that needs a server process must be marked slow (the fast tier has none)."""
    for item in items:
        uses = {"server", "server_http"} & set(getattr(item, "fixturenames", ()))
        if uses and item.get_closest_marker("slow") is None:
            raise pytest.UsageError(f"{item.nodeid} uses {sorted(uses)}: mark it slow")
