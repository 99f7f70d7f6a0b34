"""Schemathesis against the live OpenAPI spec of a real server: valid and invalid
requests for every operation, >= 2000 in all, zero 5xx, zero hangs (each call has a
timeout; a hang fails the test). Bounded in count and time."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings

from tests.conftest import Server, start_server

pytestmark = pytest.mark.slow  # API fuzzing against a server process

MIN_REQUESTS = 2000
PER_OPERATION = 170  # hypothesis stops early for small input spaces; the total is checked
CALL_TIMEOUT_S = 30.0
SEEN: Counter[str] = Counter()


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(
        tmp_path_factory.mktemp("fuzz"),
        "--verifier", "string",
        "--verifier-workers", "1",
        "--verifier-deadline-s", "5",
        "--max-inflight-requests", "0",
        "--rm-max-length", "64",
        "--state-path", ":memory:",
        # the barrier holds a sample until its group fills: keep those waits short
        "--barrier-deadline-s", "0.2",
        "--barrier-max-deadline-s", "0.3",
    )  # fmt: skip
    yield s
    s.stop()


@pytest.fixture(scope="module")
def api_schema(fuzz_server: Server) -> Any:
    return schemathesis.openapi.from_url(fuzz_server.url + "/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=PER_OPERATION,
    deadline=None,
    database=None,
    derandomize=True,  # the same requests every run
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_5xx_no_hang(case: Any) -> None:
    t0 = time.monotonic()
    response = case.call(timeout=CALL_TIMEOUT_S)  # raises on a hang
    SEEN[f"{case.method} {case.path}"] += 1
    SEEN["_total"] += 1
    SEEN[f"_{response.status_code // 100}xx"] += 1
    assert response.status_code < 500, (
        f"{case.method} {case.path} -> {response.status_code} "
        f"in {time.monotonic() - t0:.2f}s: {response.text[:500]}\n{case.as_curl_command()}"
    )


def test_enough_requests_were_sent() -> None:
    print(dict(SEEN))
    if SEEN["_total"] == 0:
        pytest.skip("the fuzz test did not run (selected out)")
    assert SEEN["_total"] >= MIN_REQUESTS, dict(SEEN)
    assert SEEN["_5xx"] == 0
