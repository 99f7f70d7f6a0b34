"""Deployment files: Kubernetes manifests against the official schemas (kubernetes-validate,
offline, strict: unknown fields fail), the compose file parsed and cross-checked, the
Dockerfile's variants; every HERO_* variable they set must be a real setting."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from hero_service.config import Settings
from tests.conftest import REPO

DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
K8S_VERSION = "1.33.0"


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _manifests() -> list[tuple[str, dict[str, Any]]]:
    return [
        (p.name, d) for p in sorted(K8S.glob("*.yaml")) if p.name != "kustomization.yaml"
        for d in _docs(p)
    ]  # fmt: skip


def _by_kind(kind: str) -> list[dict[str, Any]]:
    return [d for _, d in _manifests() if d["kind"] == kind]


def _check_env(names: list[str], where: str) -> None:
    fields = set(Settings.model_fields)
    for n in names:
        if n.startswith("HERO_"):
            assert n[5:].lower() in fields, f"{where}: {n} is not a setting"


def _pod_specs() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for d in _by_kind("Deployment") + _by_kind("StatefulSet"):
        out.append((d["metadata"]["name"], d["spec"]["template"]["spec"]))
    for d in _by_kind("CronJob"):
        out.append((d["metadata"]["name"], d["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
    return out


@pytest.mark.parametrize("name,doc", _manifests(), ids=lambda x: x if isinstance(x, str) else "")
def test_manifest_matches_kubernetes_schema(name: str, doc: dict[str, Any]) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    k = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(k["resources"]) == files


def test_references_resolve() -> None:
    names = {(d["kind"], d["metadata"]["name"]) for _, d in _manifests()}
    cm = {d["metadata"]["name"]: d for d in _by_kind("ConfigMap")}
    secrets = {d["metadata"]["name"]: d for d in _by_kind("Secret")}
    for pod, spec in _pod_specs():
        for c in spec["containers"]:
            for src in c.get("envFrom", []):
                ref = src["configMapRef"]["name"]
                assert ref in cm, f"{pod}: configmap {ref}"
                _check_env(list(cm[ref]["data"]), ref)
            env = c.get("env", [])
            _check_env([e["name"] for e in env], pod)
            for e in env:
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]]["stringData"], f"{pod}: {ref}"
        for v in spec.get("volumes", []):
            if "secret" in v:
                assert ("Secret", v["secret"]["secretName"]) in names
            if "configMap" in v:
                assert ("ConfigMap", v["configMap"]["name"]) in names
            if "persistentVolumeClaim" in v:
                assert ("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"]) in names


def test_hero_deployment_is_production_shaped() -> None:
    (dep,) = [d for d in _by_kind("Deployment") if d["metadata"]["name"] == "hero"]
    spec = dep["spec"]
    assert spec["replicas"] >= 2 and spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]["spec"]
    (c,) = pod["containers"]
    port = {p["name"]: p["containerPort"] for p in c["ports"]}["http"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert c["startupProbe"]["httpGet"]["path"] == "/health"
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["securityContext"]["runAsNonRoot"] is True
    env = {e["name"]: e.get("value", "") for e in c["env"]}
    assert env["HERO_STATE_URL"].startswith("redis://") and "hero-redis" in env["HERO_STATE_URL"]
    cfg = next(d for d in _by_kind("ConfigMap") if d["metadata"]["name"] == "hero-config")["data"]
    assert cfg["HERO_PORT"] == str(port) and cfg["HERO_HOST"] == "0.0.0.0"
    # the pod's grace period covers the drain and the in-flight grace
    drain, grace = float(cfg["HERO_SHUTDOWN_DRAIN_S"]), float(cfg["HERO_SHUTDOWN_GRACE_S"])
    assert pod["terminationGracePeriodSeconds"] > drain + grace
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert str(Path(cfg["HERO_AUTH_TOKENS_FILE"]).parent) in mounts
    # Service, PDB and Deployment select the same pods
    labels = spec["template"]["metadata"]["labels"]
    (svc,) = [d for d in _by_kind("Service") if d["metadata"]["name"] == "hero"]
    (pdb,) = _by_kind("PodDisruptionBudget")
    for sel in (svc["spec"]["selector"], pdb["spec"]["selector"]["matchLabels"]):
        assert sel.items() <= labels.items()
    assert svc["spec"]["ports"][0]["targetPort"] in ("http", port)
    Settings(**{k[5:].lower(): v for k, v in cfg.items()})  # the config validates


def test_redis_persists_every_write() -> None:
    conf = next(d for d in _by_kind("ConfigMap") if d["metadata"]["name"] == "hero-redis-config")
    lines = set(conf["data"]["redis.conf"].splitlines())
    assert {"appendonly yes", "appendfsync always", "maxmemory-policy volatile-ttl"} <= lines
    (sts,) = _by_kind("StatefulSet")
    mounts = sts["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert any(m["mountPath"] == "/data" for m in mounts) and sts["spec"]["volumeClaimTemplates"]


# -- compose ---------------------------------------------------------------------------------
def test_compose_file() -> None:
    c = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    s = c["services"]
    assert set(s) == {"hero", "redis", "prometheus", "grafana"}
    for name, svc in s.items():
        if "image" in svc:
            assert ":" in svc["image"] and not svc["image"].endswith(":latest"), name
        for p in svc.get("ports", []):
            assert str(p).startswith("127.0.0.1:"), f"{name} publishes {p} beyond loopback"
        for v in svc.get("volumes", []):
            src = v.split(":")[0]
            if src.startswith("."):
                assert (DEPLOY / src).exists(), f"{name}: {src} missing"
            else:
                assert src in c["volumes"], f"{name}: volume {src} not declared"
        for dep in svc.get("depends_on", {}):
            assert dep in s
    cmd = " ".join(s["redis"]["command"])
    assert "--appendonly yes" in cmd and "--appendfsync always" in cmd
    env = s["hero"]["environment"]
    _check_env(list(env), "compose")
    assert env["HERO_STATE_URL"] == "redis://redis:6379/0"
    assert s["hero"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert s["hero"]["build"]["context"] == ".." and (DEPLOY / ".." / "Dockerfile").exists()
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    static = [sc for j in prom["scrape_configs"] for sc in j.get("static_configs", [])]
    targets = [t for sc in static for t in sc["targets"]]
    assert f"hero:{env['HERO_PORT']}" in targets
    # Grafana's dashboard provider reads the folder compose mounts the dashboards at
    mounts = dict(v.split(":")[:2] for v in s["grafana"]["volumes"])
    prov = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/hero.yml").read_text())
    assert prov["providers"][0]["options"]["path"] == mounts["./grafana/dashboards"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"


# -- Dockerfile --------------------------------------------------------------------------------
def test_dockerfile_variants() -> None:
    text = (REPO / "Dockerfile").read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
    assert args["BASE"].startswith("python:3.11")  # CPU by default
    assert args["TORCH_INDEX"].endswith("/cpu") and "redis" in args["EXTRAS"].split(",")
    assert 'pip install ".[${EXTRAS}]"' in text
    # the documented CUDA/vLLM build names only args the file declares
    cuda = re.findall(r"--build-arg (\w+)=(\S+)", text)
    assert {k for k, _ in cuda} <= set(args) and ("EXTRAS", "redis,vllm") in cuda
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n.*/health", text, re.M)
    assert re.search(r"^EXPOSE 8000$", text, re.M)
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for e in ("redis", "vllm"):
        assert e in extras, f"Dockerfile variant needs the {e} extra"
