"""Locust load test for the HERO service (closed loop; loadtests/replay.py is the open-loop
generator). Loopback targets only.

    pip install -e '.[load]'
    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 --headless \\
        -u 8 -r 2 -t 60s --csv out/locust GroupUser OpenRLHFUser

Users:
  GroupUser     POST /score_group with a whole group (clients that hold the group)
  OpenRLHFUser  OpenRLHF >= 0.10: the N rollouts of one prompt as N concurrent one-sample
                POST /get_reward?job_id=..&group_size=N calls (the server's barrier
                reassembles the group); waits for all N, then the next prompt
  SampleUser    verl-style per-sample POST /score_sample with a group id (uid)
Environment: HERO_LOAD_GROUP_SIZE (8), HERO_LOAD_JOB (locust).
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import random
import socket
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import gevent
from gevent.pool import Group
from locust import HttpUser, between, events, task

try:
    from hero_service.tools.synth import groups as synth_groups
except ImportError:  # a locust-only environment: the generator is plain Python
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "service"))
    from hero_service.tools.synth import groups as synth_groups

GROUP_SIZE = int(os.environ.get("HERO_LOAD_GROUP_SIZE", "8"))
JOB = os.environ.get("HERO_LOAD_JOB", "locust")
POOL = list(synth_groups(500, GROUP_SIZE, seed=1))
_seq = itertools.count()


@events.test_start.add_listener
def _loopback_only(environment: Any, **_: Any) -> None:
    host = urlsplit(environment.host or "").hostname or ""
    addrs = {ai[4][0] for ai in socket.getaddrinfo(host, None)}
    if not addrs or any(not ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs):
        environment.runner.quit()
        raise SystemExit(f"locustfile: refusing non-loopback host {environment.host}")


def _next() -> tuple[int, dict[str, Any]]:
    k = next(_seq)
    g = dict(POOL[k % len(POOL)])
    g["prompt"] = f"{g['prompt']} (request {k})"
    return k, g


class GroupUser(HttpUser):
    wait_time = between(0.0, 0.5)

    @task
    def score_group(self) -> None:
        _, g = _next()
        body = {
            "job_id": f"{JOB}-group",
            "prompt": g["prompt"],
            "reference": g["reference"],
            "responses": g["responses"],
        }
        self.client.post("/score_group", json=body, name="/score_group")


class OpenRLHFUser(HttpUser):
    wait_time = between(0.0, 0.5)

    def _one(self, prompt: str, response: str, reference: str, n: int) -> None:
        gevent.sleep(random.uniform(0.0, 0.5))  # generations finish at different times
        body = {"query": [prompt + response], "prompts": [prompt], "labels": [reference]}
        self.client.post(
            f"/get_reward?job_id={JOB}-openrlhf&group_size={n}",
            json=body,
            name="/get_reward (1 sample)",
        )

    @task
    def rollouts_of_one_prompt(self) -> None:
        _, g = _next()
        pool = Group()
        for r in g["responses"]:
            pool.spawn(self._one, g["prompt"], r, g["reference"], len(g["responses"]))
        pool.join()


class SampleUser(HttpUser):
    wait_time = between(0.0, 0.5)

    def _one(self, k: int, i: int, g: dict[str, Any]) -> None:
        body = {
            "job_id": f"{JOB}-sample",
            "group_id": f"uid-{k}",
            "group_size": len(g["responses"]),
            "sample_index": i,
            "prompt": g["prompt"],
            "reference": g["reference"],
            "response": g["responses"][i],
        }
        self.client.post("/score_sample", json=body, name="/score_sample")

    @task
    def rollouts_of_one_prompt(self) -> None:
        k, g = _next()
        pool = Group()
        for i in range(len(g["responses"])):
            pool.spawn(self._one, k, i, g)
        pool.join()
